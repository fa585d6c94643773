//! The "Settings → API Keys" web page: a sign-in box for a managing key,
//! "Create New API Key" with a show-once dialog for the secret, and the
//! table of keys with their last use and a revoke button.
//!
//! The page is static: HTML, one script and one style sheet, embedded in
//! the binary (no CDN, no build step) and served without a key. Everything
//! it shows comes from the JSON management API under `/api/v2/keys`, called
//! from the browser with `Authorization: Bearer <managing key>`. The
//! managing key stays in the tab's `sessionStorage` and is sent in that
//! header only, never in a URL.
//!
//! Every response carries [`CONTENT_SECURITY_POLICY`]: scripts and styles
//! from this origin only, nothing inline, and (with Trusted Types) no HTML
//! parsed from strings, so a key name such as `<img src=x onerror=...>`
//! can only ever be text.

use axum::Router;
use axum::extract::Request;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::{HeaderName, HeaderValue, header};

/// Where the page is served.
pub const PATH: &str = "/settings/api-keys";
/// The page's script.
pub const SCRIPT_PATH: &str = "/settings/api-keys/app.js";
/// The page's style sheet.
pub const STYLE_PATH: &str = "/settings/api-keys/app.css";
/// The page's icon (served so the browser's favicon request does not 404).
pub const ICON_PATH: &str = "/settings/api-keys/icon.svg";

/// The policy on every response of [`router`]: only this origin's script,
/// style sheet, icon and API; no inline script or style, no plugins, no
/// framing, no `<base>`, forms posting here only; and Trusted Types with no
/// policy, so the script cannot turn a string into HTML even by mistake.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
style-src 'self'; connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'self'; \
frame-ancestors 'none'; object-src 'none'; require-trusted-types-for 'script'; trusted-types 'none'";

const INDEX_HTML: &str = include_str!("settings/index.html");
const APP_JS: &str = include_str!("settings/app.js");
const APP_CSS: &str = include_str!("settings/app.css");
const ICON_SVG: &str = include_str!("settings/icon.svg");

/// The page's routes: `GET` (and `HEAD`) [`PATH`], [`SCRIPT_PATH`],
/// [`STYLE_PATH`] and [`ICON_PATH`], none behind a key, each with
/// [`CONTENT_SECURITY_POLICY`], `X-Content-Type-Options: nosniff`,
/// `Referrer-Policy: no-referrer`, `X-Frame-Options: DENY` and
/// `Cache-Control: no-store`. Merge it into the application beside the
/// management API it calls.
pub fn router() -> Router {
    Router::new()
        .route(PATH, get(|| asset("text/html; charset=utf-8", INDEX_HTML)))
        .route(
            SCRIPT_PATH,
            get(|| asset("text/javascript; charset=utf-8", APP_JS)),
        )
        .route(
            STYLE_PATH,
            get(|| asset("text/css; charset=utf-8", APP_CSS)),
        )
        .route(ICON_PATH, get(|| asset("image/svg+xml", ICON_SVG)))
        // On every response of these routes, also a 405 for a wrong method.
        .layer(middleware::from_fn(security_headers))
}

async fn asset(content_type: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}

async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    let fixed: [(HeaderName, &'static str); 7] = [
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::CACHE_CONTROL, "no-store"),
        (
            HeaderName::from_static("cross-origin-opener-policy"),
            "same-origin",
        ),
        (
            HeaderName::from_static("cross-origin-resource-policy"),
            "same-origin",
        ),
    ];
    for (name, value) in fixed {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Nothing inline: no `<script>` with a body, no `style` attribute or
    /// element, no `on...=` handler, no `javascript:` URL; the CSP would
    /// block each, so the page must not need any.
    #[test]
    fn the_page_has_nothing_inline() {
        let html = INDEX_HTML.to_ascii_lowercase();
        assert!(!html.contains("<style"), "an inline style element");
        assert!(!html.contains(" style="), "a style attribute");
        assert!(!html.contains("javascript:"), "a javascript: URL");
        for (at, _) in html.match_indices("<script") {
            let tag = &html[at..at + html[at..].find('>').expect("a closed tag") + 1];
            assert!(tag.contains(" src="), "a script without src: {tag}");
            assert!(
                html[at + tag.len()..].starts_with("</script>"),
                "a script with a body: {tag}"
            );
        }
        let handler = inline_handler(&html);
        assert!(handler.is_none(), "an inline event handler: {handler:?}");
    }

    /// The first ` on<letters>=` attribute in `html`, if any.
    fn inline_handler(html: &str) -> Option<String> {
        html.match_indices(" on").find_map(|(at, _)| {
            let rest = &html[at + 3..];
            let name: String = rest.chars().take_while(char::is_ascii_alphabetic).collect();
            (!name.is_empty() && rest[name.len()..].starts_with('=')).then(|| format!("on{name}"))
        })
    }

    /// The script never parses strings as HTML.
    #[test]
    fn the_script_uses_no_html_sinks() {
        for sink in [
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "document.write",
            "eval(",
            "new Function",
            "localStorage",
            ".style.",
        ] {
            assert!(!APP_JS.contains(sink), "app.js uses {sink}");
        }
    }
}
