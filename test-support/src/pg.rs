//! PostgreSQL for the tests: the server of `TEST_POSTGRES_URL`, and a
//! schema of a test's own on it, dropped afterwards pass or fail. The
//! schema's store is the package's business (it needs the library's
//! types); this module knows only the URL, the name and the server.

use std::future::Future;
use std::sync::Once;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

use crate::{run_then, unique};

/// The server the PostgreSQL tests use, from `TEST_POSTGRES_URL`; `None`
/// (after saying so on stderr, where the test harness cannot swallow it)
/// when it is unset.
pub fn pg_url() -> Option<String> {
    static BANNER: Once = Once::new();
    crate::service_url(
        "TEST_POSTGRES_URL",
        "PostgreSQL",
        "postgres://postgres@127.0.0.1:5432/test",
        &BANNER,
    )
}

/// A schema of its own for one test, dropped by [`PgSchema::drop_now`]
/// (or by [`PgSchema::run`] after the test).
#[derive(Debug, Clone)]
pub struct PgSchema {
    /// `TEST_POSTGRES_URL`.
    pub url: String,
    /// The schema's name, unique to the test.
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

    /// The options of `TEST_POSTGRES_URL`.
    pub fn connect_options(&self) -> PgConnectOptions {
        self.url
            .parse::<PgConnectOptions>()
            .expect("TEST_POSTGRES_URL parses")
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

    /// Drops the schema and everything in it.
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

    /// Runs `body` with a new schema and drops the schema afterwards, also
    /// when `body` panics; does nothing (but say so) when
    /// `TEST_POSTGRES_URL` is unset.
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

/// The socket address of a PostgreSQL URL's server.
pub async fn pg_socket(url: &str) -> std::net::SocketAddr {
    let options: PgConnectOptions = url.parse().expect("URL parses");
    let host = options.get_host().to_owned();
    let port = options.get_port();
    tokio::net::lookup_host((host.as_str(), port))
        .await
        .expect("resolve the PostgreSQL host")
        .next()
        .expect("an address")
}
