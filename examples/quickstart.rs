//! The smallest complete app: an axum API behind API keys, with the
//! in-memory store.
//!
//! Run with:
//!
//! ```sh
//! cargo run --example quickstart -- --listen 127.0.0.1:8080
//! ```
//!
//! It prints one freshly created key alone on a line of stdout; then:
//!
//! ```sh
//! curl -H "Authorization: Bearer bmc_..." http://127.0.0.1:8080/api/v2/projects
//! ```

use std::net::SocketAddr;

use axum::routing::get;
use axum::{Json, Router};
use clap::Parser;
use serde_json::json;
use tower_api_keys::{ApiKeys, AuthenticatedKey, MemoryStore, NewKey};

#[derive(Parser)]
#[command(about = "An axum API protected by tower-api-keys")]
struct Args {
    /// Address to serve on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Serve the same routes without the layer (a baseline for benchmarks).
    #[arg(long)]
    unprotected: bool,
    /// Last-used write interval, in milliseconds.
    #[arg(long, default_value_t = 5000)]
    last_used_interval_ms: u64,
}

async fn projects(key: AuthenticatedKey) -> Json<serde_json::Value> {
    project_list(key.owner().as_str())
}

/// The same body, byte for byte (the demo key's owner is `demo`), for
/// `--unprotected`: extracting a key on a route without the layer is a 500,
/// by design.
async fn unprotected_projects() -> Json<serde_json::Value> {
    project_list("demo")
}

fn project_list(owner: &str) -> Json<serde_json::Value> {
    Json(json!([
        {"id": "prj_1", "name": "website", "owner": owner },
        {"id": "prj_2", "name": "mobile-app", "owner": owner },
    ]))
}

/// Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();

    let keys = ApiKeys::builder(MemoryStore::new())
        .realm("quickstart")
        .last_used_interval(std::time::Duration::from_millis(args.last_used_interval_ms))
        .build()?;
    let created = keys.create(NewKey::new("demo", "quickstart")).await?;
    println!("{}", created.secret.expose_secret());

    let api = if args.unprotected {
        Router::new().route("/api/v2/projects", get(unprotected_projects))
    } else {
        Router::new()
            .route("/api/v2/projects", get(projects))
            .route_layer(keys.layer())
    };
    let app = api.route("/healthz", get(|| async { "ok" }));

    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    eprintln!(
        "listening on http://{} (layer {})",
        listener.local_addr()?,
        if args.unprotected { "off" } else { "on" }
    );
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await?;
    let stats = keys.shutdown().await;
    eprintln!(
        "stopped; last-used batches written: {}, write errors: {}",
        stats.batches, stats.write_errors
    );
    Ok(())
}
