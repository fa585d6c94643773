//! The "Settings → API Keys" web page: a sign-in box for a managing key
//! (and, with an OAuth issuer, "Sign in with OAuth"), "Create New API Key"
//! with a show-once dialog for the secret and the setup of MCP clients with
//! it, and the table of keys with their last use and a revoke button.
//!
//! The page is static: HTML, one script and one style sheet, embedded in
//! the binary (no CDN, no build step) and served without a key. Everything
//! it shows comes from the JSON management API under `/api/v2/keys`, called
//! from the browser with `Authorization: Bearer <managing key>`. The
//! managing key stays in the tab's `sessionStorage` and is sent in that
//! header only, never in a URL.
//!
//! With an OAuth issuer, the page is also a public OAuth client of it, in
//! the browser: it learns the issuer, the resource and the scope from
//! [`CONFIG_PATH`], registers itself dynamically (RFC 7591, no secret),
//! signs the user in with the authorization code and PKCE, and then uses
//! the access token exactly as a managing key.
//!
//! Every response carries the page's Content-Security-Policy
//! ([`CONTENT_SECURITY_POLICY`], or [`content_security_policy`] with the
//! issuer's origin): scripts and styles from this origin only, nothing
//! inline, and (with Trusted Types) no HTML parsed from strings, so a key
//! name such as `<img src=x onerror=...>` can only ever be text.

use axum::Router;
use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::{HeaderName, HeaderValue, header};
use serde_json::{Value, json};
use tower_api_keys::management::ManagementApi;

/// Where the page is served.
pub const PATH: &str = "/settings/api-keys";
/// The page's script.
pub const SCRIPT_PATH: &str = "/settings/api-keys/app.js";
/// The page's style sheet.
pub const STYLE_PATH: &str = "/settings/api-keys/app.css";
/// The page's icon (served so the browser's favicon request does not 404).
pub const ICON_PATH: &str = "/settings/api-keys/icon.svg";
/// What the page needs to know of this server, as JSON: the URL of `/mcp`
/// for the setup snippets, and the OAuth sign-in (issuer, resource, scope)
/// or `null`.
pub const CONFIG_PATH: &str = "/settings/api-keys/config.json";

/// The policy on every response of [`router`] without an OAuth issuer:
/// only this origin's script, style sheet, icon and API; no inline script
/// or style, no plugins, no framing, no `<base>`, forms posting here only;
/// and Trusted Types with no policy, so the script cannot turn a string
/// into HTML even by mistake.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
style-src 'self'; connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'self'; \
frame-ancestors 'none'; object-src 'none'; require-trusted-types-for 'script'; trusted-types 'none'";

/// [`CONTENT_SECURITY_POLICY`], with the page also allowed to call
/// `issuer_origin` (its metadata, registration and token endpoints) when
/// there is one: the origin alone, never a path or a wildcard.
pub fn content_security_policy(issuer_origin: Option<&str>) -> String {
    match issuer_origin {
        None => CONTENT_SECURITY_POLICY.to_owned(),
        Some(origin) => CONTENT_SECURITY_POLICY.replacen(
            "connect-src 'self';",
            &format!("connect-src 'self' {origin};"),
            1,
        ),
    }
}

/// The origin of an `http` or `https` issuer URL (`https://host[:port]`,
/// the host in its ASCII form), as a CSP host source; `None` for anything
/// else, which then gets no OAuth sign-in on the page.
pub fn issuer_origin(issuer: &str) -> Option<String> {
    let url = url::Url::parse(issuer).ok()?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return None;
    }
    Some(url.origin().ascii_serialization())
}

const INDEX_HTML: &str = include_str!("settings/index.html");
const APP_JS: &str = include_str!("settings/app.js");
const APP_CSS: &str = include_str!("settings/app.css");
const ICON_SVG: &str = include_str!("settings/icon.svg");

/// The page's routes: `GET` (and `HEAD`) [`PATH`], [`SCRIPT_PATH`],
/// [`STYLE_PATH`], [`ICON_PATH`] and [`CONFIG_PATH`], none behind a key,
/// each with the page's Content-Security-Policy,
/// `X-Content-Type-Options: nosniff`, `Referrer-Policy: no-referrer`,
/// `X-Frame-Options: DENY` and `Cache-Control: no-store`. Merge it into the
/// application beside the management API it calls.
///
/// `public_url` is this server's, without a trailing `/`. With
/// `oauth_issuer`, whose access tokens the management API accepts, the page
/// offers to sign in there for the resource `<public_url>/mcp`, asking for
/// the management scope and `mcp_scope` (the scope `/mcp` requires, if
/// any, so that the keys it creates work there), and its policy allows
/// connections to the issuer's origin.
pub fn router(public_url: &str, oauth_issuer: Option<&str>, mcp_scope: Option<&str>) -> Router {
    let mcp_url = format!("{public_url}/mcp");
    let origin = oauth_issuer.and_then(|issuer| {
        let origin = issuer_origin(issuer);
        if origin.is_none() {
            tracing::warn!(
                issuer,
                "the settings page offers no OAuth sign-in: the issuer is not an http(s) URL"
            );
        }
        origin
    });
    let oauth = match (oauth_issuer, &origin) {
        (Some(issuer), Some(_)) => {
            let mut scope = ManagementApi::DEFAULT_SCOPE.to_owned();
            if let Some(extra) = mcp_scope.filter(|s| *s != ManagementApi::DEFAULT_SCOPE) {
                scope = format!("{scope} {extra}");
            }
            json!({"issuer": issuer, "resource": mcp_url, "scope": scope})
        }
        _ => Value::Null,
    };
    let config = json!({"mcp_url": mcp_url, "oauth": oauth}).to_string();
    let policy = HeaderValue::try_from(content_security_policy(origin.as_deref()))
        .expect("an ASCII origin makes a valid header");
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
        .route(
            CONFIG_PATH,
            get(move || async move {
                ([(header::CONTENT_TYPE, "application/json")], config).into_response()
            }),
        )
        // On every response of these routes, also a 405 for a wrong method.
        .layer(middleware::from_fn_with_state(policy, security_headers))
}

async fn asset(content_type: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}

async fn security_headers(
    State(policy): State<HeaderValue>,
    request: Request,
    next: Next,
) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_SECURITY_POLICY, policy);
    let fixed: [(HeaderName, &'static str); 6] = [
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

    /// With an issuer, `connect-src` gains its origin and nothing else of
    /// the policy changes.
    #[test]
    fn the_policy_names_the_issuer_origin_only() {
        assert_eq!(content_security_policy(None), CONTENT_SECURITY_POLICY);
        let origin = issuer_origin("https://login.example.com:8443/tenant/a?x=1#f").unwrap();
        assert_eq!(origin, "https://login.example.com:8443");
        let policy = content_security_policy(Some(&origin));
        assert!(
            policy.contains("; connect-src 'self' https://login.example.com:8443; "),
            "{policy}"
        );
        assert_eq!(
            policy.replacen(" https://login.example.com:8443", "", 1),
            CONTENT_SECURITY_POLICY
        );
        // The default port goes, an IDN host is punycode, an IPv6 one bracketed.
        assert_eq!(
            issuer_origin("https://b\u{fc}cher.example:443/").unwrap(),
            "https://xn--bcher-kva.example"
        );
        assert_eq!(
            issuer_origin("http://[::1]:9000").unwrap(),
            "http://[::1]:9000"
        );
        for bad in [
            "",
            "not a url",
            "ftp://example.com",
            "javascript:alert(1)",
            "data:text/plain,x",
            "file:///etc/passwd",
        ] {
            assert_eq!(issuer_origin(bad), None, "{bad:?}");
        }
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
            ".style.",
        ] {
            assert!(!APP_JS.contains(sink), "app.js uses {sink}");
        }
        // localStorage holds this page's OAuth client id and nothing else:
        // one line of code reaches it, in `clientRegistry`.
        let uses: Vec<&str> = APP_JS
            .lines()
            .map(str::trim)
            .filter(|line| line.contains("localStorage") && !line.starts_with("//"))
            .collect();
        assert_eq!(
            uses,
            ["return window.localStorage;"],
            "app.js and localStorage"
        );
    }
}
