//! The quickstart's `/api/v2/projects` on PostgreSQL, authenticated two
//! ways, for `bench/pg_compare.sh`:
//!
//! - `--mode naive`: an axum `from_fn` middleware that hashes the bearer
//!   token and runs one `SELECT ... FROM api_keys WHERE key_hash = $1` on
//!   every request, checking revocation and expiry in SQL, as many apps
//!   start;
//! - `--mode layer`: this crate's layer over `PostgresStore`, behind a
//!   `CountingStore`.
//!
//! Both use the same table (created by `PostgresStore`'s migrations), a pool
//! of 10 connections, and the same handler and body. `GET /stats` (no key)
//! answers `{"requests": .., "lookups": .., "queries": ..}`: requests that
//! reached the protected route, and the key lookups and all queries the app
//! made (for the layer, every store call: lookups, change-log reads,
//! last-used batches).
//!
//! Run with:
//!
//! ```sh
//! cargo run --release -p bench-drivers --bin pg_compare -- seed --db postgres://postgres@127.0.0.1:5432/bench
//! cargo run --release -p bench-drivers --bin pg_compare -- serve --mode naive --db postgres://postgres@127.0.0.1:5432/bench
//! ```

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::http::header::AUTHORIZATION;
use axum::middleware::{Next, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use clap::{Parser, Subcommand, ValueEnum};
use serde_json::json;
use tower::util::MapRequestLayer;
use tower_api_keys::key::KeyHasher;
use tower_api_keys::store::PostgresStore;
use tower_api_keys::store::sqlx::{self, PgPool, Row as _};
use tower_api_keys::test_util::CountingStore;
use tower_api_keys::{ApiKeys, AuthenticatedKey, NewKey};

#[derive(Parser)]
#[command(about = "Naive per-request key lookups against tower-api-keys, on PostgreSQL")]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Creates the tables and one key in the database; prints the key.
    Seed {
        /// PostgreSQL URL.
        #[arg(long)]
        db: String,
    },
    /// Serves the API in one mode until SIGTERM or Ctrl-C.
    Serve {
        #[arg(long, value_enum)]
        mode: Mode,
        /// PostgreSQL URL.
        #[arg(long)]
        db: String,
        /// Address to serve on.
        #[arg(long, default_value = "127.0.0.1:18090")]
        listen: SocketAddr,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum Mode {
    /// One query per request.
    Naive,
    /// This crate's layer over `PostgresStore`.
    Layer,
}

/// The queries the naive middleware made.
#[derive(Clone)]
struct Naive {
    pool: PgPool,
    hasher: KeyHasher,
    queries: Arc<AtomicU64>,
}

/// Reads (key lookups, all queries) made so far.
type Counts = Arc<dyn Fn() -> (u64, u64) + Send + Sync>;

/// The key's owner, as the naive middleware found it.
#[derive(Clone)]
struct Owner(String);

/// Looks the key up on every request.
async fn naive_auth(State(naive): State<Naive>, mut request: Request, next: Next) -> Response {
    let Some(token) = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    else {
        return StatusCode::UNAUTHORIZED.into_response();
    };
    let hash = naive.hasher.hash(token);
    naive.queries.fetch_add(1, Ordering::Relaxed);
    let row = sqlx::query(
        "SELECT owner FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL \
         AND (expires_at IS NULL OR expires_at > now())",
    )
    .bind(hash.as_bytes().as_slice())
    .fetch_optional(&naive.pool)
    .await;
    match row {
        Ok(Some(row)) => {
            let owner: String = row.get("owner");
            request.extensions_mut().insert(Owner(owner));
            next.run(request).await
        }
        Ok(None) => StatusCode::UNAUTHORIZED.into_response(),
        Err(_) => StatusCode::SERVICE_UNAVAILABLE.into_response(),
    }
}

fn project_list(owner: &str) -> Json<serde_json::Value> {
    Json(json!([
        {"id": "prj_1", "name": "website", "owner": owner },
        {"id": "prj_2", "name": "mobile-app", "owner": owner },
    ]))
}

async fn naive_projects(Extension(Owner(owner)): Extension<Owner>) -> Json<serde_json::Value> {
    project_list(&owner)
}

async fn layer_projects(key: AuthenticatedKey) -> Json<serde_json::Value> {
    project_list(key.owner().as_str())
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
    match Args::parse().command {
        Command::Seed { db } => {
            let keys = ApiKeys::builder(PostgresStore::connect(&db).await?).build()?;
            let created = keys.create(NewKey::new("demo", "pg-compare")).await?;
            println!("{}", created.secret.expose_secret());
            keys.shutdown().await;
            Ok(())
        }
        Command::Serve { mode, db, listen } => serve(mode, &db, listen).await,
    }
}

async fn serve(mode: Mode, db: &str, listen: SocketAddr) -> Result<(), Box<dyn std::error::Error>> {
    let requests = Arc::new(AtomicU64::new(0));
    let counter = Arc::clone(&requests);
    let count_requests = MapRequestLayer::new(move |request: Request| {
        counter.fetch_add(1, Ordering::Relaxed);
        request
    });
    let (api, stats, keys): (Router, Counts, _) = match mode {
        Mode::Naive => {
            let pool = PostgresStore::pool_options().connect(db).await?;
            let naive = Naive {
                pool,
                hasher: KeyHasher::sha256(),
                queries: Arc::new(AtomicU64::new(0)),
            };
            let queries = Arc::clone(&naive.queries);
            let api = Router::new()
                .route("/api/v2/projects", get(naive_projects))
                .route_layer(from_fn_with_state(naive, naive_auth))
                .route_layer(count_requests);
            let stats = move || {
                let n = queries.load(Ordering::Relaxed);
                (n, n)
            };
            (api, Arc::new(stats) as _, None)
        }
        Mode::Layer => {
            let store = Arc::new(CountingStore::new(PostgresStore::connect(db).await?));
            let keys = ApiKeys::builder(Arc::clone(&store)).build()?;
            let api = Router::new()
                .route("/api/v2/projects", get(layer_projects))
                .route_layer(keys.layer())
                .route_layer(count_requests);
            let stats = move || {
                let calls = store.calls();
                (calls.find_by_hash, calls.total())
            };
            (api, Arc::new(stats) as _, Some(keys))
        }
    };
    let report = {
        let (requests, stats) = (Arc::clone(&requests), Arc::clone(&stats));
        move || {
            let (lookups, queries) = stats();
            json!({
                "requests": requests.load(Ordering::Relaxed),
                "lookups": lookups,
                "queries": queries,
            })
        }
    };
    let stats_route = {
        let report = report.clone();
        move || async move { Json(report()) }
    };
    let app = api.route("/stats", get(stats_route));

    let listener = tokio::net::TcpListener::bind(listen).await?;
    eprintln!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await?;
    if let Some(keys) = keys {
        keys.shutdown().await;
    }
    eprintln!("stopped: {}", report());
    Ok(())
}
