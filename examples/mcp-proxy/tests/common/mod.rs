//! Shared by the proxy's tests: a temporary directory for SQLite files, and
//! a PostgreSQL schema of a test's own (the PostgreSQL tests skip, and say
//! so, without `TEST_POSTGRES_URL`).
#![allow(dead_code, unreachable_pub)]

use std::future::Future;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Once;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tower_api_keys::store::PostgresStore;
use tower_api_keys::store::sqlx::postgres::{PgConnectOptions, PgPoolOptions};

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

// -------------------------------------------------------------------- SQLite

/// A directory removed on drop.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new() -> Self {
        let path = std::env::temp_dir().join(unique("mcp-proxy-test"));
        std::fs::create_dir_all(&path).expect("create a temporary directory");
        Self(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

// ---------------------------------------------------------------- PostgreSQL

/// The server the PostgreSQL tests use, from `TEST_POSTGRES_URL`; `None`
/// (after saying so on stderr, where the test harness cannot swallow it)
/// when it is unset.
pub fn pg_url() -> Option<String> {
    match std::env::var("TEST_POSTGRES_URL") {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ => {
            static BANNER: Once = Once::new();
            BANNER.call_once(|| {
                let _ = writeln!(
                    std::io::stderr(),
                    "\n==================================================================\n\
                     SKIPPED: TEST_POSTGRES_URL is not set; PostgreSQL tests did not run\n\
                     (run them with TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test)\n\
                     ==================================================================\n"
                );
            });
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED: TEST_POSTGRES_URL is not set; this PostgreSQL test did not run"
            );
            None
        }
    }
}

/// A schema of its own for one test, dropped after it by [`PgSchema::run`].
#[derive(Debug, Clone)]
pub struct PgSchema {
    pub url: String,
    pub name: String,
}

impl PgSchema {
    /// Runs `body` with a new schema and drops the schema afterwards, also
    /// when `body` panics; does nothing when `TEST_POSTGRES_URL` is unset.
    pub async fn run<B, F>(body: B)
    where
        B: FnOnce(PgSchema) -> F,
        F: Future<Output = ()> + Send + 'static,
    {
        let Some(url) = pg_url() else { return };
        let schema = Self {
            url,
            name: unique("mcp_proxy_test"),
        };
        let cleanup = schema.clone();
        let outcome = tokio::spawn(body(schema)).await;
        cleanup.drop_now().await;
        if let Err(error) = outcome {
            match error.try_into_panic() {
                Ok(panic) => std::panic::resume_unwind(panic),
                Err(error) => panic!("the test body did not finish: {error}"),
            }
        }
    }

    /// A migrated store in this schema, on a pool of its own.
    pub async fn store(&self) -> PostgresStore {
        let connect = self
            .url
            .parse::<PgConnectOptions>()
            .expect("TEST_POSTGRES_URL parses");
        let pool = PostgresStore::pool_options()
            .acquire_timeout(Duration::from_secs(2))
            .connect_lazy_with(connect);
        let store = PostgresStore::from_pool(pool)
            .in_schema(&self.name)
            .expect("a valid schema name");
        store.migrate().await.expect("migrations apply");
        store
    }

    async fn drop_now(&self) {
        use tower_api_keys::store::sqlx;
        let admin = PgPoolOptions::new()
            .max_connections(1)
            .connect(&self.url)
            .await
            .expect("connect to TEST_POSTGRES_URL");
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP SCHEMA IF EXISTS \"{}\" CASCADE",
            self.name
        )))
        .execute(&admin)
        .await
        .expect("drop the test schema");
        admin.close().await;
    }
}
