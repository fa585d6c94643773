//! RFC 9728 protected-resource metadata for `/mcp`, served without a key.
//!
//! MCP clients read it from the `resource_metadata` of a 401's challenge.
//! It names no authorization server: keys are issued out of band (with
//! `keys create`), not through OAuth, so a client needs a key configured
//! as a header rather than a login flow.

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
/// `Authorization` header only; the scope `/mcp` needs, if any.
pub fn document(public_url: &str, mcp_scope: Option<&str>) -> Value {
    let mut document = json!({
        "resource": format!("{public_url}/mcp"),
        "resource_name": "MCP proxy (tower-api-keys example)",
        "bearer_methods_supported": ["header"],
    });
    if let Some(scope) = mcp_scope {
        document["scopes_supported"] = json!([scope]);
    }
    document
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
