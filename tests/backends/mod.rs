//! Shared by the store tests: one PostgreSQL schema per test, temporary
//! SQLite files, a real server on a loopback port, a TCP proxy that can cut
//! a store off from its database, and the conformance suite.
#![allow(dead_code, unreachable_pub)]

#[macro_use]
pub mod conformance;

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Once;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use reqwest::header::AUTHORIZATION;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, watch};
use tower_api_keys::ApiKeys;
use tower_api_keys::store::{PostgresStore, SqliteStore};

static NEXT: AtomicU64 = AtomicU64::new(0);

/// A name no other test of any process uses.
pub fn unique(tag: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{tag}_{}_{}_{nanos:x}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Runs `body`, then `cleanup` even when `body` panicked, then re-raises the
/// panic: tests leave nothing behind, pass or fail.
pub async fn run_then<B, C>(body: B, cleanup: C)
where
    B: Future<Output = ()> + Send + 'static,
    C: Future<Output = ()>,
{
    let outcome = tokio::spawn(body).await;
    cleanup.await;
    if let Err(error) = outcome {
        match error.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(error) => panic!("the test body did not finish: {error}"),
        }
    }
}

// ---------------------------------------------------------------- PostgreSQL

/// The server the PostgreSQL tests use, from `TEST_POSTGRES_URL`; `None`
/// (after saying so on stderr, where the test harness cannot swallow it)
/// when it is unset.
pub fn pg_url() -> Option<String> {
    static BANNER: Once = Once::new();
    crate::common::service_url(
        "TEST_POSTGRES_URL",
        "PostgreSQL",
        "postgres://postgres@127.0.0.1:5432/test",
        &BANNER,
    )
}

/// A schema of its own for one test, dropped by [`PgSchema::drop_now`].
#[derive(Debug, Clone)]
pub struct PgSchema {
    pub url: String,
    pub name: String,
}

impl PgSchema {
    /// `None` when `TEST_POSTGRES_URL` is unset.
    pub fn new() -> Option<Self> {
        let url = pg_url()?;
        Some(Self {
            url,
            name: unique("tak_test"),
        })
    }

    pub fn connect_options(&self) -> PgConnectOptions {
        self.url
            .parse::<PgConnectOptions>()
            .expect("TEST_POSTGRES_URL parses")
    }

    /// A migrated store in this schema, on a pool of its own.
    pub async fn store(&self) -> PostgresStore {
        self.store_with(
            PostgresStore::pool_options().acquire_timeout(Duration::from_secs(2)),
            self.connect_options(),
        )
        .await
    }

    /// A migrated store in this schema, on a pool built from `pool` and
    /// `connect`.
    pub async fn store_with(
        &self,
        pool: PgPoolOptions,
        connect: PgConnectOptions,
    ) -> PostgresStore {
        let store = PostgresStore::from_pool(pool.connect_lazy_with(connect))
            .in_schema(&self.name)
            .expect("a valid schema name");
        store.migrate().await.expect("migrations apply");
        store
    }

    /// A plain pool on the test database, for looking behind the store.
    pub async fn admin(&self) -> PgPool {
        PgPoolOptions::new()
            .max_connections(2)
            .connect(&self.url)
            .await
            .expect("connect to TEST_POSTGRES_URL")
    }

    /// Ends every server process whose `application_name` is `app`.
    pub async fn terminate(&self, app: &str) -> i64 {
        let admin = self.admin().await;
        let ended: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE application_name = $1 AND pid <> pg_backend_pid()) AS t",
        )
        .bind(app)
        .fetch_one(&admin)
        .await
        .expect("terminate backends");
        admin.close().await;
        ended
    }

    pub async fn drop_now(&self) {
        let admin = self.admin().await;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP SCHEMA IF EXISTS \"{}\" CASCADE",
            self.name
        )))
        .execute(&admin)
        .await
        .expect("drop the test schema");
        admin.close().await;
    }

    /// Runs `body` with this schema and drops the schema afterwards, also
    /// when `body` panics.
    pub async fn run<B, F>(body: B)
    where
        B: FnOnce(PgSchema) -> F,
        F: Future<Output = ()> + Send + 'static,
    {
        let Some(schema) = Self::new() else { return };
        let cleanup = schema.clone();
        run_then(body(schema), async move { cleanup.drop_now().await }).await;
    }
}

// -------------------------------------------------------------------- SQLite

/// A directory removed on drop.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new() -> Self {
        let path = std::env::temp_dir().join(unique("tak-test"));
        std::fs::create_dir_all(&path).expect("create a temporary directory");
        Self(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    /// `sqlite://<dir>/<name>`.
    pub fn sqlite_url(&self, name: &str) -> String {
        format!("sqlite://{}", self.0.join(name).display())
    }

    pub async fn sqlite_store(&self, name: &str) -> SqliteStore {
        SqliteStore::connect(&self.sqlite_url(name))
            .await
            .expect("open the SQLite store")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
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
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a loopback port");
        let addr = listener.local_addr().expect("local address");
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await;
        });
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
        self.client
            .get(format!("http://{}/", self.addr))
            .header(AUTHORIZATION, format!("Bearer {key}"))
            .send()
            .await
            .expect("the server answers")
            .status()
            .as_u16()
    }

    /// The whole response of `GET /` with `key`.
    pub async fn get(&self, key: &str) -> reqwest::Response {
        self.client
            .get(format!("http://{}/", self.addr))
            .header(AUTHORIZATION, format!("Bearer {key}"))
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

/// The socket address of a PostgreSQL URL's server.
pub async fn pg_socket(url: &str) -> SocketAddr {
    let options: PgConnectOptions = url.parse().expect("URL parses");
    let host = options.get_host().to_owned();
    let port = options.get_port();
    tokio::net::lookup_host((host.as_str(), port))
        .await
        .expect("resolve the PostgreSQL host")
        .next()
        .expect("an address")
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
