//! The layer in front of an MCP route: a Streamable HTTP MCP server (rmcp)
//! whose one tool answers with the name of the API key that called it.
//!
//! Run with `cargo run --example mcp_minimal`; it prints a key. Point an MCP
//! client at http://127.0.0.1:8080/mcp with `Authorization: Bearer <key>`.

use std::sync::Arc;

use axum::Router;
use rmcp::handler::server::tool::{Extension, ToolRouter};
use rmcp::model::{ServerCapabilities, ServerConfig};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ServerHandler, tool, tool_handler, tool_router};
use tower_api_keys::{ApiKeys, AuthenticatedKey, MemoryStore, NewKey};

#[derive(Clone)]
struct Hello {
    tool_router: ToolRouter<Self>,
}

#[tool_router]
impl Hello {
    #[tool(description = "Say which API key called")]
    async fn whoami(&self, Extension(http): Extension<http::request::Parts>) -> String {
        // The layer put the key's identity in the HTTP request's extensions.
        let key = http.extensions.get::<AuthenticatedKey>();
        format!("hello, {}", key.map_or("nobody", |key| key.name()))
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for Hello {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let keys = ApiKeys::builder(MemoryStore::new()).realm("mcp").build()?;
    let created = keys.create(NewKey::new("me", "laptop")).await?;
    println!("{}", created.secret.expose_secret()); // shown once
    let mcp = StreamableHttpService::new(
        || {
            Ok(Hello {
                tool_router: Hello::tool_router(),
            })
        },
        Arc::new(LocalSessionManager::default()),
        StreamableHttpServerConfig::default(),
    );
    let app = Router::new().nest_service("/mcp", mcp).layer(keys.layer());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
    axum::serve(listener, app).await?;
    keys.shutdown().await;
    Ok(())
}
