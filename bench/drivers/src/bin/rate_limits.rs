//! The quickstart's route with a rate-limited key, for `bench/limits.sh`:
//! the limit counted nowhere (`none`: the key has no limit), in process
//! (`local`), or in Redis (`redis`). The limit is far above any load, so
//! every request is admitted and what is measured is the cost of counting.
//!
//! ```sh
//! cargo run --release -p bench-drivers --bin rate_limits -- --limiter redis --redis redis://127.0.0.1:6379
//! ```
//!
//! It prints the key alone on a line of stdout.

use std::net::SocketAddr;
use std::time::Duration;

use axum::routing::get;
use axum::{Json, Router};
use clap::{Parser, ValueEnum};
use serde_json::json;
use tower_api_keys::limit::{RateLimit, RedisLimits};
use tower_api_keys::{ApiKeys, AuthenticatedKey, MemoryStore, NewKey};

#[derive(Clone, Copy, ValueEnum)]
enum Limiter {
    None,
    Local,
    Redis,
}

#[derive(Parser)]
#[command(about = "One route behind a rate-limited key, for benchmarks")]
struct Args {
    /// Address to serve on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Where the key's limit is counted.
    #[arg(long, value_enum, default_value = "none")]
    limiter: Limiter,
    /// The Redis server, for `--limiter redis`.
    #[arg(long, default_value = "redis://127.0.0.1:6379")]
    redis: String,
}

async fn projects(key: AuthenticatedKey) -> Json<serde_json::Value> {
    let owner = key.owner().as_str();
    Json(json!([
        {"id": "prj_1", "name": "website", "owner": owner },
        {"id": "prj_2", "name": "mobile-app", "owner": owner },
    ]))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let mut builder = ApiKeys::builder(MemoryStore::new()).realm("bench");
    if let Limiter::Redis = args.limiter {
        builder = builder.redis_rate_limits(RedisLimits::new(&args.redis)?.prefix("bench:rl:"));
    }
    let keys = builder.build()?;
    let mut new = NewKey::new("demo", "bench");
    if !matches!(args.limiter, Limiter::None) {
        // Far above any load: nothing is refused, everything is counted.
        new = new.rate_limit(RateLimit::new(u32::MAX, Duration::from_secs(1)));
    }
    let created = keys.create(new).await?;
    println!("{}", created.secret.expose_secret());

    let app = Router::new()
        .route("/api/v2/projects", get(projects))
        .route_layer(keys.layer())
        .route("/healthz", get(|| async { "ok" }));
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    axum::serve(listener, app).await?;
    Ok(())
}
