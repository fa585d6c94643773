//! RFC 9728 protected-resource metadata for `/mcp`, served without a key.
//!
//! MCP clients read it from the `resource_metadata` of a 401's challenge.
//! Without `--oauth-issuer` it names no authorization server: keys are
//! issued out of band (with `keys create`), so a client needs a key
//! configured as a header rather than a login flow. With it, it names the
//! issuer in `authorization_servers`, and a client without a key signs in
//! there; a client that sends a valid key never sees a 401, so nothing
//! pushes it into OAuth.

use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, header};
use serde_json::{Value, json};

/// Where the document is served, as the challenge names it.
pub const PATH: &str = "/.well-known/oauth-protected-resource";
/// The same document where RFC 9728 §3.1 puts it for the resource `/mcp`
/// (the well-known path inserted before the resource's path).
pub const PATH_FOR_MCP: &str = "/.well-known/oauth-protected-resource/mcp";

/// The URL of the document, for `ApiKeysBuilder::resource_metadata`.
pub fn url(public_url: &str) -> String {
    format!("{public_url}{PATH}")
}

/// The document: `resource` is the public URL of `/mcp`; keys go in the
/// `Authorization` header only; the scope `/mcp` needs, if any; the OAuth
/// issuer, if any.
pub fn document(public_url: &str, mcp_scope: Option<&str>, issuer: Option<&str>) -> Value {
    let mut document = json!({
        "resource": format!("{public_url}/mcp"),
        "resource_name": "MCP proxy (tower-api-keys example)",
        "bearer_methods_supported": ["header"],
    });
    if let Some(scope) = mcp_scope {
        document["scopes_supported"] = json!([scope]);
    }
    if let Some(issuer) = issuer {
        document["authorization_servers"] = json!([issuer]);
    }
    document
}

/// What MCP clients that fall back to OAuth after a refused key are told
/// at the OAuth endpoints they try next: not a login flow, but the problem.
pub const NO_OAUTH: &str = "The API key this client sent was refused: it is unknown, expired or revoked \
(the 401's error_description says which). This server takes API keys, not OAuth, and registers no \
OAuth clients: configure the header Authorization: Bearer <key> with a valid key (create one with \
`mcp-proxy keys create`).";

/// The OAuth discovery documents a client looks for after a 401
/// (`/.well-known/oauth-authorization-server`, `/.well-known/openid-configuration`):
/// 404 with an explanation in OAuth's error shape, which clients show.
pub async fn no_authorization_server() -> Response {
    oauth_error(http::StatusCode::NOT_FOUND, "invalid_request")
}

/// `POST /register`, OAuth dynamic client registration (RFC 7591), which a
/// client tries next: refused with the explanation, in the registration
/// error shape its clients read (`error_description`).
pub async fn no_registration() -> Response {
    oauth_error(http::StatusCode::BAD_REQUEST, "invalid_client_metadata")
}

fn oauth_error(status: http::StatusCode, error: &str) -> Response {
    let body = json!({"error": error, "error_description": NO_OAUTH });
    let mut response = (status, axum::Json(body)).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The handler; any origin may read the document (it is public).
pub async fn serve(State(document): State<Arc<Value>>) -> Response {
    let mut response = axum::Json(document.as_ref().clone()).into_response();
    response.headers_mut().insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    response
}
