//! Shared by the proxy's tests: the library's router on a loopback port in
//! front of the demo upstream, which records what reaches it; the clients
//! (rmcp's, and raw HTTP requests); the store of a PostgreSQL schema of a
//! test's own. Temporary directories, unique names and the schema itself
//! (the PostgreSQL tests skip, and say so, without `TEST_POSTGRES_URL`) are
//! `test_support`'s.
#![allow(dead_code, unreachable_pub, async_fn_in_trait)]

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;
use http::{HeaderMap, Method, StatusCode};
use mcp_proxy::origin::AllowedOrigins;
use mcp_proxy::upstream::WhoAmI;
use mcp_proxy::{proxy, server, store, upstream};
use rmcp::model::CallToolRequestParams;
use rmcp::service::RunningService;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::{RoleClient, ServiceExt as _};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower_api_keys::record::KeyRecord;
use tower_api_keys::store::PostgresStore;
use tower_api_keys::{ApiKeys, NewKey};

pub mod process;
pub mod python;
pub mod settings_page;

pub use test_support::TempDir;
pub use test_support::pg::PgSchema;

pub const ACCEPT_BOTH: &str = "application/json, text/event-stream";
pub const PROTOCOL: &str = "2025-06-18";

// ------------------------------------------------------------ the upstream

/// One request as the upstream received it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: Method,
    pub headers: HeaderMap,
    pub status: StatusCode,
}

/// What reached the upstream: every request, and how each response body
/// ended (read to its end, or dropped before).
#[derive(Debug, Default)]
pub struct Recorded {
    pub requests: Mutex<Vec<Seen>>,
    pub finished: AtomicUsize,
    pub dropped_early: AtomicUsize,
}

impl Recorded {
    pub fn count(&self) -> usize {
        self.requests.lock().unwrap().len()
    }

    pub fn all(&self) -> Vec<Seen> {
        self.requests.lock().unwrap().clone()
    }

    pub fn assert_no_authorization(&self) {
        for seen in self.all() {
            assert!(
                !seen.headers.contains_key(http::header::AUTHORIZATION),
                "the upstream received Authorization on {} {:?}",
                seen.method,
                seen.headers
            );
        }
    }
}

async fn record(State(recorded): State<Arc<Recorded>>, request: Request, next: Next) -> Response {
    let (method, headers) = (request.method().clone(), request.headers().clone());
    let response = next.run(request).await;
    recorded.requests.lock().unwrap().push(Seen {
        method,
        headers,
        status: response.status(),
    });
    let (parts, body) = response.into_parts();
    Response::from_parts(
        parts,
        Body::new(Tracked {
            inner: body,
            ended: false,
            recorded,
        }),
    )
}

/// A response body that reports whether it was read to its end.
struct Tracked {
    inner: Body,
    ended: bool,
    recorded: Arc<Recorded>,
}

impl http_body::Body for Tracked {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(None) = polled
            && !self.ended
        {
            self.ended = true;
            self.recorded.finished.fetch_add(1, Ordering::SeqCst);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        if !self.ended && !http_body::Body::is_end_stream(&self.inner) {
            self.recorded.dropped_early.fetch_add(1, Ordering::SeqCst);
        }
    }
}

// --------------------------------------------------------------- the proxy

#[derive(Default)]
pub struct Options {
    pub protections: server::Protections,
    pub mcp_scope: Option<String>,
    /// Instead of the recording demo upstream.
    pub upstream: Option<String>,
    pub allowed_origins: Vec<String>,
    /// How long an unused session stays bound (default: the proxy's).
    pub session_idle: Option<std::time::Duration>,
    /// Most sessions per key (default: the proxy's).
    pub max_sessions_per_key: Option<usize>,
    /// The connection bounds (default: the proxy's).
    pub limits: Option<mcp_proxy::listener::ConnectionLimits>,
    /// GitHub's public keys, to take secret-scanning reports.
    pub secret_scanning: Option<tower_api_keys::secret_scanning::PublicKeySource>,
    /// Where the proxy listens (default: a new loopback port), for a test
    /// that needs its URL before it starts.
    pub listener: Option<TcpListener>,
}

/// The example's router on a loopback port, over a SQLite store in a
/// temporary directory, in front of the demo upstream wrapped in [`record`].
pub struct Running {
    pub url: String,
    pub keys: ApiKeys,
    pub upstream: Arc<Recorded>,
    pub upstream_addr: SocketAddr,
    pub stop: CancellationToken,
    _dir: TempDir,
}

impl Running {
    pub async fn start() -> Self {
        Self::with(Options::default()).await
    }

    pub async fn with(options: Options) -> Self {
        let dir = TempDir::new();
        let stop = CancellationToken::new();
        let upstream = Arc::new(Recorded::default());
        let upstream_app = upstream::router(stop.child_token()).layer(
            middleware::from_fn_with_state(Arc::clone(&upstream), record),
        );
        let upstream_addr =
            test_support::serve_until(upstream_app, stop.clone().cancelled_owned()).await;

        let listener = match options.listener {
            Some(l) => l,
            None => TcpListener::bind("127.0.0.1:0").await.unwrap(),
        };
        let url = format!("http://{}", listener.local_addr().unwrap());
        let db = format!("sqlite:{}", dir.path().join("api-keys.db").display());
        let keys = server::api_keys(
            store::open(&db).await.unwrap(),
            "mcp-test",
            &url,
            &options.protections,
            None,
        )
        .unwrap();
        let upstream_url = options
            .upstream
            .unwrap_or_else(|| format!("http://{upstream_addr}/mcp"));
        let settings = server::Config {
            allowed_origins: AllowedOrigins::new(&url, &options.allowed_origins).unwrap(),
            public_url: url.clone(),
            upstream: proxy::Target::parse(&upstream_url).unwrap(),
            mcp_scope: options.mcp_scope,
            session_idle: options
                .session_idle
                .unwrap_or(mcp_proxy::session::SessionBindings::DEFAULT_IDLE),
            max_sessions_per_key: options
                .max_sessions_per_key
                .unwrap_or(mcp_proxy::session::SessionBindings::MAX_PER_KEY),
            secret_scanning: options.secret_scanning,
        };
        // The proxy is served as the binary serves it, with its bounds.
        tokio::spawn(mcp_proxy::listener::serve(
            listener,
            server::router(&keys, &settings, stop.clone()),
            options.limits.unwrap_or_default(),
            stop.clone(),
        ));
        Self {
            url,
            keys,
            upstream,
            upstream_addr,
            stop,
            _dir: dir,
        }
    }

    pub fn mcp(&self) -> String {
        format!("{}/mcp", self.url)
    }

    /// A new full-access key for `acct_1`.
    pub async fn key(&self, name: &str) -> (String, KeyRecord) {
        self.key_with(NewKey::new("acct_1", name)).await
    }

    pub async fn key_with(&self, new: NewKey) -> (String, KeyRecord) {
        let created = self.keys.create(new).await.unwrap();
        (created.secret.expose_secret().to_owned(), created.record)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

// ------------------------------------------------------------- the clients

/// A real HTTP client that keeps no idle connection, so dropping a response
/// closes its connection.
pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// The rmcp client over Streamable HTTP with `key` as its bearer token.
pub async fn connect(
    mcp_url: &str,
    key: &str,
) -> Result<RunningService<RoleClient, ()>, rmcp::service::ClientInitializeError> {
    let config = StreamableHttpClientTransportConfig::with_uri(mcp_url.to_owned())
        // The token alone: the client adds "Bearer ".
        .auth_header(key);
    ().serve(StreamableHttpClientTransport::from_config(config))
        .await
}

pub async fn whoami(client: &RunningService<RoleClient, ()>) -> WhoAmI {
    let result = client
        .call_tool(CallToolRequestParams::new("whoami"))
        .await
        .unwrap();
    serde_json::from_value(result.structured_content.expect("structured content")).unwrap()
}

pub fn mcp_post(
    http: &reqwest::Client,
    url: &str,
    key: &str,
    body: serde_json::Value,
) -> reqwest::RequestBuilder {
    http.post(url)
        .bearer_auth(key)
        .header("accept", ACCEPT_BOTH)
        .header("content-type", "application/json")
        .body(body.to_string())
}

pub fn initialize_body() -> serde_json::Value {
    serde_json::json!({
        "jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": PROTOCOL, "capabilities": {},
                    "clientInfo": {"name": "raw", "version": "0" } }
    })
}

/// `initialize` and `notifications/initialized` by hand; the session id.
pub async fn open_session(http: &reqwest::Client, url: &str, key: &str) -> String {
    let init = mcp_post(http, url, key, initialize_body())
        .send()
        .await
        .unwrap();
    assert_eq!(init.status(), StatusCode::OK);
    let session = init.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let body = init.text().await.unwrap();
    assert!(body.contains(PROTOCOL), "{body}");
    let ack = mcp_post(
        http,
        url,
        key,
        serde_json::json!({"jsonrpc": "2.0", "method": "notifications/initialized" }),
    )
    .header("mcp-session-id", &session)
    .header("mcp-protocol-version", PROTOCOL)
    .send()
    .await
    .unwrap();
    assert_eq!(ack.status(), StatusCode::ACCEPTED);
    session
}

pub fn in_session(builder: reqwest::RequestBuilder, session: &str) -> reqwest::RequestBuilder {
    builder
        .header("mcp-session-id", session)
        .header("mcp-protocol-version", PROTOCOL)
}

pub fn tools_list() -> serde_json::Value {
    serde_json::json!({"jsonrpc": "2.0", "id": 7, "method": "tools/list" })
}

pub fn call_slow(steps: u32, step_ms: u64) -> serde_json::Value {
    serde_json::json!({
        "jsonrpc": "2.0", "id": 2, "method": "tools/call",
        "params": {"name": "slow", "arguments": {"steps": steps, "step_ms": step_ms },
                    "_meta": {"progressToken": "p1" } }
    })
}

// ---------------------------------------------------------------- PostgreSQL

/// A migrated store in a test's own PostgreSQL schema (the schema itself,
/// and its skip without `TEST_POSTGRES_URL`, are `test_support`'s).
pub trait SchemaStore {
    /// A migrated store in this schema, on a pool of its own.
    async fn store(&self) -> PostgresStore;
}

impl SchemaStore for PgSchema {
    async fn store(&self) -> PostgresStore {
        let pool = PostgresStore::pool_options()
            .acquire_timeout(Duration::from_secs(2))
            .connect_lazy_with(self.connect_options());
        let store = PostgresStore::from_pool(pool)
            .in_schema(&self.name)
            .expect("a valid schema name");
        store.migrate().await.expect("migrations apply");
        store
    }
}
