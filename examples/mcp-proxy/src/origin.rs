//! The `Origin` check of `/mcp`: a browser page from another site must not
//! drive a local MCP server (DNS rebinding, cross-site requests). Requests
//! without `Origin` (MCP clients that are not browsers, curl) pass.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::{StatusCode, Uri, header};

/// One allowed origin: `scheme://host:port`, or `scheme://host:*` for any
/// port.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Pattern {
    scheme: String,
    host: String,
    /// `None` matches any port.
    port: Option<u16>,
}

/// The origins allowed to call `/mcp`.
#[derive(Debug, Clone, Default)]
pub struct AllowedOrigins {
    patterns: Vec<Pattern>,
}

impl AllowedOrigins {
    /// The loopback origins on any port: `http://localhost:*`,
    /// `http://127.0.0.1:*`, `http://[::1]:*`.
    pub const LOOPBACK: [&str; 3] = ["http://localhost:*", "http://127.0.0.1:*", "http://[::1]:*"];

    /// The allow-list: `public_url`'s origin, and `extra` (or, when `extra`
    /// is empty, [`Self::LOOPBACK`]).
    pub fn new(public_url: &str, extra: &[String]) -> Result<Self, String> {
        let mut patterns = vec![parse(public_url, false)?];
        if extra.is_empty() {
            for origin in Self::LOOPBACK {
                patterns.push(parse(origin, true)?);
            }
        } else {
            for origin in extra {
                patterns.push(parse(origin, true)?);
            }
        }
        Ok(Self { patterns })
    }

    /// Whether an `Origin` header value is allowed. `null` never is.
    pub fn allows(&self, origin: &str) -> bool {
        let Ok(origin) = parse(origin, false) else {
            return false;
        };
        self.patterns.iter().any(|allowed| {
            allowed.scheme == origin.scheme
                && allowed.host == origin.host
                && allowed.port.is_none_or(|port| Some(port) == origin.port)
        })
    }

    /// The allow-list, for the start-up banner.
    pub fn describe(&self) -> String {
        let shown: Vec<String> = self
            .patterns
            .iter()
            .map(|p| match p.port {
                Some(port) => format!("{}://{}:{port}", p.scheme, p.host),
                None => format!("{}://{}:*", p.scheme, p.host),
            })
            .collect();
        shown.join(" ")
    }
}

/// Parses `scheme://host[:port]` (a path of `/` is tolerated, so a public URL
/// can be given as is). A missing port is the scheme's default; with
/// `wildcard`, `:*` means any port.
fn parse(text: &str, wildcard: bool) -> Result<Pattern, String> {
    let invalid = || format!("not an origin (scheme://host[:port]): {text:?}");
    let (text, any_port) = match text.strip_suffix(":*") {
        Some(rest) if wildcard => (rest, true),
        _ => (text, false),
    };
    let uri: Uri = text.parse().map_err(|_| invalid())?;
    let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) else {
        return Err(invalid());
    };
    if !matches!(uri.path(), "" | "/") || uri.query().is_some() || authority.as_str().contains('@')
    {
        return Err(invalid());
    }
    let scheme = scheme.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "http" => Some(80),
        "https" => Some(443),
        _ => None,
    };
    Ok(Pattern {
        host: authority.host().to_ascii_lowercase(),
        port: if any_port {
            None
        } else {
            Some(authority.port_u16().or(default_port).ok_or_else(invalid)?)
        },
        scheme,
    })
}

/// Middleware: 403 for an `Origin` that is not allowed, before anything else
/// (no key is looked up, nothing reaches the upstream).
pub async fn check(
    State(allowed): State<Arc<AllowedOrigins>>,
    request: Request,
    next: Next,
) -> Response {
    let mut origins = request.headers().get_all(header::ORIGIN).iter();
    if let Some(origin) = origins.next() {
        let single = origins.next().is_none();
        let ok = single && origin.to_str().is_ok_and(|origin| allowed.allows(origin));
        if !ok {
            tracing::warn!(origin = ?origin, "refused a request from a foreign origin");
            let body = serde_json::json!({
                "error": "forbidden_origin",
                "error_description": "requests from this Origin are not allowed; see --allowed-origin",
            });
            return (StatusCode::FORBIDDEN, axum::Json(body)).into_response();
        }
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_scheme_host_and_port() {
        let allowed = AllowedOrigins::new("https://mcp.example.com", &[]).unwrap();
        assert!(allowed.allows("https://mcp.example.com"));
        assert!(allowed.allows("https://mcp.example.com:443"));
        assert!(!allowed.allows("http://mcp.example.com"));
        assert!(!allowed.allows("https://mcp.example.com:8443"));
        assert!(allowed.allows("http://localhost:3000"));
        assert!(allowed.allows("http://127.0.0.1"));
        assert!(!allowed.allows("http://localhost.evil.example"));
        assert!(!allowed.allows("null"));
        let custom =
            AllowedOrigins::new("http://127.0.0.1:8080", &["https://app.example.com".into()])
                .unwrap();
        assert!(custom.allows("https://app.example.com"));
        assert!(custom.allows("http://127.0.0.1:8080"));
        assert!(!custom.allows("http://127.0.0.1:3000"));
    }
}
