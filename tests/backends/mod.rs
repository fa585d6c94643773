//! Shared by the store tests, where they need the library's types: a
//! PostgreSQL schema's and a temporary directory's store, a real server
//! protected by the layer on a loopback port, a TCP proxy that can cut a
//! store off from its database, and the conformance suite. The schema, the
//! directory and the rest that knows nothing of the library are
//! `test_support`'s.
#![allow(dead_code, unreachable_pub, async_fn_in_trait)]

#[macro_use]
pub mod conformance;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, watch};
use tower_api_keys::ApiKeys;
use tower_api_keys::store::{PostgresStore, SqliteStore};

pub use test_support::pg::PgSchema;
pub use test_support::{TempDir, run_then};

/// A migrated store in a test's own PostgreSQL schema (the schema itself,
/// and its skip without `TEST_POSTGRES_URL`, are `test_support`'s).
pub trait SchemaStore {
    /// A migrated store in this schema, on a pool of its own.
    async fn store(&self) -> PostgresStore;

    /// A migrated store in this schema, on a pool built from `pool` and
    /// `connect`.
    async fn store_with(&self, pool: PgPoolOptions, connect: PgConnectOptions) -> PostgresStore;
}

impl SchemaStore for PgSchema {
    async fn store(&self) -> PostgresStore {
        self.store_with(
            PostgresStore::pool_options().acquire_timeout(Duration::from_secs(2)),
            self.connect_options(),
        )
        .await
    }

    async fn store_with(&self, pool: PgPoolOptions, connect: PgConnectOptions) -> PostgresStore {
        let store = PostgresStore::from_pool(pool.connect_lazy_with(connect))
            .in_schema(&self.name)
            .expect("a valid schema name");
        store.migrate().await.expect("migrations apply");
        store
    }
}

/// A SQLite store in a temporary directory.
pub trait SqliteFile {
    /// The store in the file `name` of this directory, created if need be.
    async fn sqlite_store(&self, name: &str) -> SqliteStore;
}

impl SqliteFile for TempDir {
    async fn sqlite_store(&self, name: &str) -> SqliteStore {
        SqliteStore::connect(&self.sqlite_url(name))
            .await
            .expect("open the SQLite store")
    }
}

// ---------------------------------------------------------------------- HTTP

/// A server protected by `keys` on a loopback port, stopped on drop.
#[derive(Debug)]
pub struct Server {
    pub addr: SocketAddr,
    _stop: oneshot::Sender<()>,
    client: reqwest::Client,
}

impl Server {
    pub async fn start(keys: &ApiKeys) -> Self {
        let app = Router::new()
            .route("/", get(|| async { "ok" }))
            .layer(keys.layer());
        let (stop, stopped) = oneshot::channel::<()>();
        let addr = test_support::serve_until(app, async move {
            let _ = stopped.await;
        })
        .await;
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("client");
        Self {
            addr,
            _stop: stop,
            client,
        }
    }

    /// The status of `GET /` with `key` as the bearer token.
    pub async fn status(&self, key: &str) -> u16 {
        self.get(key).await.status().as_u16()
    }

    /// The whole response of `GET /` with `key`.
    pub async fn get(&self, key: &str) -> reqwest::Response {
        self.client
            .get(format!("http://{}/", self.addr))
            .bearer_auth(key)
            .send()
            .await
            .expect("the server answers")
    }

    /// Asks until the status is `want`; returns how long that took, or
    /// panics after `limit`.
    pub async fn wait_for_status(&self, key: &str, want: u16, limit: Duration) -> Duration {
        let started = Instant::now();
        loop {
            let status = self.status(key).await;
            if status == want {
                return started.elapsed();
            }
            assert!(
                started.elapsed() < limit,
                "still {status}, not {want}, after {:?}",
                started.elapsed()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// A well-formed key that no store holds.
pub fn unknown_key() -> String {
    tower_api_keys::key::KeyFormat::default()
        .generate()
        .expect("random bytes")
        .expose_secret()
        .to_owned()
}

// --------------------------------------------------------------------- Proxy

/// A TCP proxy on a loopback port in front of `upstream`. While down, it
/// cuts every connection it carries and closes new ones at once: to its
/// clients the database is gone, while the real server keeps running.
#[derive(Debug)]
pub struct Proxy {
    pub addr: SocketAddr,
    up: watch::Sender<bool>,
}

impl Proxy {
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a loopback port");
        let addr = listener.local_addr().expect("local address");
        let (up, _) = watch::channel(true);
        let state = up.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    return;
                };
                let mut up = state.subscribe();
                if !*up.borrow_and_update() {
                    drop(client);
                    continue;
                }
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = up.wait_for(|up| !*up) => {}
                    }
                });
            }
        });
        Self { addr, up }
    }

    pub fn set_up(&self, up: bool) {
        self.up.send_replace(up);
    }
}

/// A loopback port nothing listens on.
pub async fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a loopback port");
    let port = listener.local_addr().expect("local address").port();
    drop(listener);
    port
}
