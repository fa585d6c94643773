//! The built-in demo upstream: a Streamable HTTP MCP server made with rmcp,
//! with three tools. It knows nothing of API keys; it trusts the identity
//! headers the proxy sets (see [`crate::proxy::identity_headers`]), so it
//! must be reachable only by the proxy (it listens on a loopback port).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use percent_encoding::percent_decode_str;
use rmcp::handler::server::tool::{Extension, ToolRouter};
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{Implementation, ProgressNotificationParam, ServerCapabilities, ServerConfig};
use rmcp::service::RequestContext;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, Json, RoleServer, ServerHandler, tool, tool_handler, tool_router};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::proxy::{KEY_CREDENTIAL, KEY_ID, KEY_NAME, KEY_OWNER, KEY_SCOPES};

/// Arguments of `echo`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct EchoArgs {
    /// Text to send back.
    pub text: String,
}

/// Arguments of `slow`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct SlowArgs {
    /// Number of progress notifications to send.
    pub steps: u32,
    /// Pause after each notification, in milliseconds.
    pub step_ms: u64,
}

/// What `whoami` answers: the caller as the proxy passed it.
#[derive(Debug, Serialize, Deserialize, schemars::JsonSchema)]
pub struct WhoAmI {
    /// `api_key`, or `access_token` for a caller signed in with OAuth.
    #[serde(default)]
    pub credential: String,
    /// The key's id (empty for an access token).
    pub key_id: String,
    /// The key's name.
    pub key_name: String,
    /// The account the key belongs to.
    pub owner: String,
    /// The key's scopes, space-separated; `*` for full access.
    pub scopes: String,
    /// Whether this server received an `Authorization` header (it never
    /// should: the proxy keeps the key).
    pub saw_authorization: bool,
}

/// The demo MCP server.
#[derive(Debug, Clone)]
pub struct DemoUpstream {
    tool_router: ToolRouter<Self>,
}

impl Default for DemoUpstream {
    fn default() -> Self {
        Self {
            tool_router: Self::tool_router(),
        }
    }
}

#[tool_router]
impl DemoUpstream {
    #[tool(description = "Return the given text unchanged")]
    async fn echo(&self, Parameters(EchoArgs { text }): Parameters<EchoArgs>) -> String {
        text
    }

    /// Reads the headers of the HTTP request that carried the call (rmcp
    /// puts its `Parts` in the request's extensions).
    #[tool(description = "Return the name and id of the API key that called this tool")]
    async fn whoami(
        &self,
        Extension(parts): Extension<http::request::Parts>,
    ) -> Result<Json<WhoAmI>, ErrorData> {
        let header = |name: &http::HeaderName| {
            parts
                .headers
                .get(name)
                .and_then(|value| value.to_str().ok())
                .map(|value| percent_decode_str(value).decode_utf8_lossy().into_owned())
        };
        let (Some(key_name), Some(owner)) = (header(&KEY_NAME), header(&KEY_OWNER)) else {
            return Err(ErrorData::invalid_request(
                "no caller identity: call this server through the proxy",
                None,
            ));
        };
        Ok(Json(WhoAmI {
            credential: header(&KEY_CREDENTIAL).unwrap_or_else(|| "api_key".to_owned()),
            key_id: header(&KEY_ID).unwrap_or_default(),
            key_name,
            owner,
            scopes: header(&KEY_SCOPES).unwrap_or_default(),
            saw_authorization: parts.headers.contains_key(http::header::AUTHORIZATION),
        }))
    }

    /// Sends `steps` progress notifications when the call carries a progress
    /// token, pausing `step_ms` after each, then returns: a call whose events
    /// arrive over time, to see the proxy stream them.
    #[tool(description = "Send progress notifications slowly, then return")]
    async fn slow(
        &self,
        Parameters(SlowArgs { steps, step_ms }): Parameters<SlowArgs>,
        context: RequestContext<RoleServer>,
    ) -> Result<String, ErrorData> {
        let token = context.meta.get_progress_token();
        for step in 1..=steps {
            if let Some(token) = &token {
                context
                    .peer
                    .notify_progress(
                        ProgressNotificationParam::new(token.clone(), f64::from(step))
                            .with_total(f64::from(steps))
                            .with_message(format!("step {step}/{steps}")),
                    )
                    .await
                    .map_err(|error| ErrorData::internal_error(error.to_string(), None))?;
            }
            tokio::time::sleep(Duration::from_millis(step_ms)).await;
        }
        Ok(format!("done after {steps} steps"))
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for DemoUpstream {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new(
                "demo-upstream",
                env!("CARGO_PKG_VERSION"),
            ))
            .with_instructions("A demo MCP server behind an API-key proxy: try whoami")
    }
}

/// The demo server at `/mcp`. Cancelling `shutdown` ends its sessions and
/// their event streams.
pub fn router(shutdown: CancellationToken) -> Router {
    let config = StreamableHttpServerConfig::default()
        // Comments on idle streams let a vanished reader be noticed soon.
        .with_sse_keep_alive(Some(Duration::from_secs(5)))
        .with_cancellation_token(shutdown);
    // A session idle for two minutes is closed (rmcp's default is five): each
    // holds some memory, and clients that vanish never close theirs.
    let mut sessions = LocalSessionManager::default();
    sessions.session_config.keep_alive = Some(Duration::from_secs(120));
    let service: StreamableHttpService<DemoUpstream, LocalSessionManager> =
        StreamableHttpService::new(|| Ok(DemoUpstream::default()), Arc::new(sessions), config);
    Router::new().nest_service("/mcp", service)
}

/// Serves [`router`] on a free loopback port until `shutdown` is cancelled;
/// returns the address.
pub async fn spawn(shutdown: CancellationToken) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let app = router(shutdown.clone());
    tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await;
        if let Err(error) = served {
            tracing::error!(%error, "the demo upstream stopped");
        }
    });
    Ok(addr)
}
