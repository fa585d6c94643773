//! The MCP proxy, end to end over real TCP: the rmcp client through the
//! proxy, the refusals, SSE streaming, sessions bound to keys, the headers
//! the upstream receives, and the binary itself, its `keys` commands run as
//! separate processes against the SQLite file a running server uses.
//!
//! The in-process tests run the library's router, the same code as the
//! binary, around an upstream that records what reaches it.
#![allow(dead_code)]

mod common;

use std::net::SocketAddr;
use std::pin::Pin;
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;
use common::{PgSchema, TempDir};
use futures_util::StreamExt as _;
use http::{HeaderMap, Method, StatusCode};
use rmcp::model::CallToolRequestParams;
use rmcp::service::RunningService;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::{RoleClient, ServiceExt as _};
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, BufReader};
use tokio_util::sync::CancellationToken;
use mcp_proxy::origin::AllowedOrigins;
use mcp_proxy::upstream::WhoAmI;
use mcp_proxy::{proxy, server, session, store, upstream};
use tower_api_keys::{ApiKeys, KeyRecord, NewKey, Scopes, SqliteStore};

const ACCEPT_BOTH: &str = "application/json, text/event-stream";
const PROTOCOL: &str = "2025-06-18";

// ------------------------------------------------------------ the upstream

/// One request as the upstream received it.
#[derive(Debug, Clone)]
struct Seen {
    method: Method,
    headers: HeaderMap,
    status: StatusCode,
}

/// What reached the upstream: every request, and how each response body
/// ended (read to its end, or dropped before).
#[derive(Debug, Default)]
struct Recorded {
    requests: Mutex<Vec<Seen>>,
    finished: AtomicUsize,
    dropped_early: AtomicUsize,
}

impl Recorded {
    fn count(&self) -> usize {
        self.requests.lock().unwrap().len()
    }

    fn all(&self) -> Vec<Seen> {
        self.requests.lock().unwrap().clone()
    }

    fn assert_no_authorization(&self) {
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
struct Options {
    protections: server::Protections,
    mcp_scope: Option<String>,
    /// Instead of the recording demo upstream.
    upstream: Option<String>,
    allowed_origins: Vec<String>,
}

/// The example's router on a loopback port, over a SQLite store in a
/// temporary directory, in front of the demo upstream wrapped in [`record`].
struct Running {
    url: String,
    keys: ApiKeys,
    upstream: Arc<Recorded>,
    upstream_addr: SocketAddr,
    stop: CancellationToken,
    _dir: TempDir,
}

async fn serve(listener: tokio::net::TcpListener, app: Router, stop: CancellationToken) {
    tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(stop.cancelled_owned())
            .await
            .expect("serve");
    });
}

impl Running {
    async fn start() -> Self {
        Self::with(Options::default()).await
    }

    async fn with(options: Options) -> Self {
        let dir = TempDir::new();
        let stop = CancellationToken::new();
        let upstream = Arc::new(Recorded::default());
        let upstream_app = upstream::router(stop.child_token()).layer(
            middleware::from_fn_with_state(Arc::clone(&upstream), record),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let upstream_addr = listener.local_addr().unwrap();
        serve(listener, upstream_app, stop.clone()).await;

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let db = format!("sqlite:{}", dir.path().join("api-keys.db").display());
        let keys = server::api_keys(
            store::open(&db).await.unwrap(),
            "mcp-test",
            &url,
            &options.protections,
        )
        .unwrap();
        let upstream_url = options
            .upstream
            .unwrap_or_else(|| format!("http://{upstream_addr}/mcp"));
        let settings = server::Settings {
            allowed_origins: AllowedOrigins::new(&url, &options.allowed_origins).unwrap(),
            public_url: url.clone(),
            upstream: proxy::Upstream::parse(&upstream_url).unwrap(),
            mcp_scope: options.mcp_scope,
        };
        serve(
            listener,
            server::router(&keys, &settings, stop.clone()),
            stop.clone(),
        )
        .await;
        Self {
            url,
            keys,
            upstream,
            upstream_addr,
            stop,
            _dir: dir,
        }
    }

    fn mcp(&self) -> String {
        format!("{}/mcp", self.url)
    }

    /// A new full-access key for `acct_1`.
    async fn key(&self, name: &str) -> (String, KeyRecord) {
        self.key_with(NewKey::new("acct_1", name)).await
    }

    async fn key_with(&self, new: NewKey) -> (String, KeyRecord) {
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
fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// The rmcp client over Streamable HTTP with `key` as its bearer token.
async fn connect(
    mcp_url: &str,
    key: &str,
) -> Result<RunningService<RoleClient, ()>, rmcp::service::ClientInitializeError> {
    let config = StreamableHttpClientTransportConfig::with_uri(mcp_url.to_owned())
        // The token alone: the client adds "Bearer ".
        .auth_header(key);
    ().serve(StreamableHttpClientTransport::from_config(config))
        .await
}

async fn whoami(client: &RunningService<RoleClient, ()>) -> WhoAmI {
    let result = client
        .call_tool(CallToolRequestParams::new("whoami"))
        .await
        .unwrap();
    serde_json::from_value(result.structured_content.expect("structured content")).unwrap()
}

fn mcp_post(
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

fn initialize_body() -> serde_json::Value {
    serde_json::json!({
        "jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": { "protocolVersion": PROTOCOL, "capabilities": {},
                    "clientInfo": { "name": "raw", "version": "0" } }
    })
}

/// `initialize` and `notifications/initialized` by hand; the session id.
async fn open_session(http: &reqwest::Client, url: &str, key: &str) -> String {
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
        serde_json::json!({ "jsonrpc": "2.0", "method": "notifications/initialized" }),
    )
    .header("mcp-session-id", &session)
    .header("mcp-protocol-version", PROTOCOL)
    .send()
    .await
    .unwrap();
    assert_eq!(ack.status(), StatusCode::ACCEPTED);
    session
}

fn in_session(builder: reqwest::RequestBuilder, session: &str) -> reqwest::RequestBuilder {
    builder
        .header("mcp-session-id", session)
        .header("mcp-protocol-version", PROTOCOL)
}

fn tools_list() -> serde_json::Value {
    serde_json::json!({ "jsonrpc": "2.0", "id": 7, "method": "tools/list" })
}

fn call_slow(steps: u32, step_ms: u64) -> serde_json::Value {
    serde_json::json!({
        "jsonrpc": "2.0", "id": 2, "method": "tools/call",
        "params": { "name": "slow", "arguments": { "steps": steps, "step_ms": step_ms },
                    "_meta": { "progressToken": "p1" } }
    })
}

// ------------------------------------------------------------------- tests

/// The rmcp client with a valid key: initialize, tools/list, tools/call of
/// `echo` and `whoami`; `whoami` names the calling key, as the proxy passed
/// it (a UTF-8 name survives the header encoding).
#[tokio::test]
async fn the_rmcp_client_initializes_lists_tools_and_whoami_names_the_key() {
    let running = Running::start().await;
    let (key, record) = running.key("Zoë's laptop").await;
    let client = connect(&running.mcp(), &key).await.unwrap();

    let info = client.peer_info().expect("initialized");
    assert_eq!(info.server_info.as_ref().unwrap().name, "demo-upstream");
    let mut tools: Vec<String> = client
        .list_all_tools()
        .await
        .unwrap()
        .iter()
        .map(|tool| tool.name.to_string())
        .collect();
    tools.sort();
    assert_eq!(tools, ["echo", "slow", "whoami"]);

    let echo = client
        .call_tool(
            CallToolRequestParams::new("echo").with_arguments(
                serde_json::json!({ "text": "through the proxy" })
                    .as_object()
                    .unwrap()
                    .clone(),
            ),
        )
        .await
        .unwrap();
    assert_eq!(echo.content[0].as_text().unwrap().text, "through the proxy");

    let who = whoami(&client).await;
    assert_eq!(who.key_id, record.id.to_string());
    assert_eq!(who.key_name, "Zoë's laptop");
    assert_eq!(who.owner, "acct_1");
    assert_eq!(who.scopes, "*");
    assert!(!who.saw_authorization);

    client.cancel().await.unwrap(); // ends the session with DELETE
    let methods: Vec<Method> = running
        .upstream
        .all()
        .into_iter()
        .map(|s| s.method)
        .collect();
    assert!(methods.contains(&Method::POST), "{methods:?}");
    assert!(methods.contains(&Method::DELETE), "{methods:?}");
    running.upstream.assert_no_authorization();
}

/// No key: 401 with the challenge naming the resource metadata, which is
/// served without a key. An unknown key fails the rmcp client's handshake.
/// The upstream sees none of it.
#[tokio::test]
async fn no_key_gets_401_with_the_challenge_and_the_metadata_is_public() {
    let running = Running::start().await;
    let http = http();
    let response = http
        .post(running.mcp())
        .header("accept", ACCEPT_BOTH)
        .header("content-type", "application/json")
        .body(initialize_body().to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let metadata_url = format!("{}/.well-known/oauth-protected-resource", running.url);
    assert_eq!(
        response.headers()["www-authenticate"],
        format!(r#"Bearer realm="mcp-test", resource_metadata="{metadata_url}""#).as_str()
    );

    for url in [metadata_url.clone(), format!("{metadata_url}/mcp")] {
        let metadata = http.get(&url).send().await.unwrap();
        assert_eq!(metadata.status(), StatusCode::OK, "{url}");
        let document: serde_json::Value = metadata.json().await.unwrap();
        assert_eq!(document["resource"], running.mcp());
        assert_eq!(
            document["bearer_methods_supported"],
            serde_json::json!(["header"])
        );
        assert!(
            document.get("authorization_servers").is_none(),
            "{document}"
        );
    }

    let unknown = running.keys.format().generate().unwrap();
    let Err(error) = connect(&running.mcp(), unknown.expose_secret()).await else {
        panic!("an unknown key cannot initialize");
    };
    eprintln!("the rmcp client with an unknown key: {error}");
    assert_eq!(running.upstream.count(), 0, "{:?}", running.upstream.all());
}

/// A key in the query string is refused with 400 (even a valid one, even
/// with a valid header too) and never reaches the upstream.
#[tokio::test]
async fn a_key_in_the_query_string_gets_400_and_never_reaches_the_upstream() {
    let running = Running::start().await;
    let (key, _) = running.key("laptop").await;
    let http = http();
    for (query, header) in [("access_token", false), ("api_key", true)] {
        let mut request = http
            .post(format!("{}?{query}={key}", running.mcp()))
            .header("accept", ACCEPT_BOTH)
            .header("content-type", "application/json")
            .body(initialize_body().to_string());
        if header {
            request = request.bearer_auth(&key);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{query}");
        let challenge = response.headers()["www-authenticate"].to_str().unwrap();
        assert!(
            challenge.contains(r#"error="invalid_request""#),
            "{challenge}"
        );
    }
    assert_eq!(running.upstream.count(), 0);
}

/// An SSE response is streamed: the first progress notification of a slow
/// tool reaches the client while the upstream is still writing that
/// response, well before the result.
#[tokio::test]
async fn sse_events_reach_the_client_before_the_upstream_has_finished() {
    let running = Running::start().await;
    let (key, _) = running.key("laptop").await;
    let http = http();
    let session = open_session(&http, &running.mcp(), &key).await;
    let finished_before = running.upstream.finished.load(Ordering::SeqCst);

    let start = Instant::now();
    let response = in_session(
        mcp_post(&http, &running.mcp(), &key, call_slow(3, 500)),
        &session,
    )
    .send()
    .await
    .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let mut stream = response.bytes_stream();
    let (mut first_progress, mut result) = (None, None);
    let mut text = String::new();
    while result.is_none() {
        let chunk = tokio::time::timeout(Duration::from_secs(10), stream.next())
            .await
            .expect("the stream stalled")
            .expect("the stream ended before the result")
            .unwrap();
        text.push_str(std::str::from_utf8(&chunk).unwrap());
        if first_progress.is_none() && text.contains("notifications/progress") {
            first_progress = Some(start.elapsed());
            assert_eq!(
                running.upstream.finished.load(Ordering::SeqCst),
                finished_before,
                "the upstream had finished its response before the first event arrived"
            );
        }
        if text.contains(r#""id":2"#) {
            result = Some(start.elapsed());
        }
    }
    let (first, done) = (first_progress.expect("a progress event"), result.unwrap());
    eprintln!("first progress event after {first:?}; the result after {done:?}");
    // Nominally 1.5 s apart; the margin only absorbs a loaded machine.
    assert!(
        done >= first + Duration::from_millis(500),
        "{first:?} then {done:?}"
    );
    assert!(text.contains("done after 3 steps"), "{text}");
}

/// A client that goes away mid-stream: the proxy drops the upstream
/// response, so the upstream sees its response body dropped unfinished.
#[tokio::test]
async fn a_client_that_disconnects_cancels_the_upstream_request() {
    let running = Running::start().await;
    let (key, _) = running.key("laptop").await;
    let http = http();
    let session = open_session(&http, &running.mcp(), &key).await;
    let response = in_session(
        mcp_post(&http, &running.mcp(), &key, call_slow(100, 100)),
        &session,
    )
    .send()
    .await
    .unwrap();
    let mut stream = response.bytes_stream();
    assert!(!stream.next().await.unwrap().unwrap().is_empty());
    assert_eq!(running.upstream.dropped_early.load(Ordering::SeqCst), 0);

    let gone = Instant::now();
    drop(stream);
    drop(http);
    while running.upstream.dropped_early.load(Ordering::SeqCst) == 0 {
        assert!(
            gone.elapsed() < Duration::from_secs(10),
            "the upstream response was not dropped after the client left"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!(
        "the upstream response was dropped {:?} after the client left",
        gone.elapsed()
    );
}

/// A session opened with one key is refused (404, as for an unknown
/// session) to another key, for POST, GET and DELETE, without reaching the
/// upstream; so is an unknown session id, and a session after its DELETE.
#[tokio::test]
async fn a_session_opened_with_one_key_is_refused_to_another() {
    let running = Running::start().await;
    let (alice, _) = running.key("alice").await;
    let (bob, _) = running.key("bob").await;
    let http = http();
    let mcp = running.mcp();
    let session = open_session(&http, &mcp, &alice).await;
    let reached = running.upstream.count();

    let attempts = [
        in_session(mcp_post(&http, &mcp, &bob, tools_list()), &session),
        in_session(
            http.get(&mcp)
                .bearer_auth(&bob)
                .header("accept", "text/event-stream"),
            &session,
        ),
        in_session(http.delete(&mcp).bearer_auth(&bob), &session),
        in_session(mcp_post(&http, &mcp, &alice, tools_list()), "not-a-session"),
    ];
    for attempt in attempts {
        let response = attempt.send().await.unwrap();
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        assert_eq!(
            response.text().await.unwrap(),
            "Not Found: Session not found"
        );
    }
    assert_eq!(
        running.upstream.count(),
        reached,
        "a refused request reached the upstream"
    );

    // The key that opened it still can, and the rmcp client of another key
    // gets a session of its own.
    let listed = in_session(mcp_post(&http, &mcp, &alice, tools_list()), &session)
        .send()
        .await
        .unwrap();
    assert_eq!(listed.status(), StatusCode::OK);
    assert!(listed.text().await.unwrap().contains("whoami"));
    let bobs = connect(&mcp, &bob).await.unwrap();
    assert_eq!(whoami(&bobs).await.key_name, "bob");
    bobs.cancel().await.unwrap();

    let deleted = in_session(http.delete(&mcp).bearer_auth(&alice), &session)
        .send()
        .await
        .unwrap();
    assert!(deleted.status().is_success(), "{}", deleted.status());
    let reached = running.upstream.count();
    let after = in_session(mcp_post(&http, &mcp, &alice, tools_list()), &session)
        .send()
        .await
        .unwrap();
    assert_eq!(after.status(), StatusCode::NOT_FOUND);
    assert_eq!(running.upstream.count(), reached);
}

/// A stream that is open when its key is revoked ends within about a
/// second (the proxy looks the key up again every second), and the key is
/// refused from then on.
#[tokio::test]
async fn an_open_stream_ends_soon_after_its_key_is_revoked() {
    let running = Running::start().await;
    let (key, record) = running.key("laptop").await;
    let (other, _) = running.key("other").await;
    let http = http();
    let mcp = running.mcp();
    let session = open_session(&http, &mcp, &key).await;
    let other_session = open_session(&http, &mcp, &other).await;
    let listen = |key: &str, session: &str| {
        in_session(http.get(&mcp).bearer_auth(key), session)
            .header("accept", "text/event-stream")
            .send()
    };
    let stream = listen(&key, &session).await.unwrap();
    assert_eq!(stream.status(), StatusCode::OK);
    let other_stream = listen(&other, &other_session).await.unwrap();
    let mut stream = stream.bytes_stream();
    let mut other_stream = other_stream.bytes_stream();

    running
        .keys
        .revoke(&"acct_1".into(), &record.id)
        .await
        .unwrap();
    let revoked = Instant::now();
    let ended = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(chunk) = stream.next().await {
            if chunk.is_err() {
                break;
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "the stream of the revoked key is still open");
    let took = revoked.elapsed();
    eprintln!("the revoked key's open stream ended {took:?} after the revocation");
    assert!(took < Duration::from_millis(2500), "{took:?}");
    let refused = listen(&key, &session).await.unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);

    // Another key's stream is untouched: still open a while later.
    let still_open = tokio::time::timeout(Duration::from_millis(1500), async {
        loop {
            match other_stream.next().await {
                Some(Ok(_)) => {}
                _ => return,
            }
        }
    })
    .await;
    assert!(still_open.is_err(), "the other key's stream ended too");
}

/// What the upstream receives: never `Authorization`, nor any header that
/// repeats the key; the proxy's identity headers, not the client's; its own `Host`; no hop-by-hop header; the MCP
/// headers as sent. The client gets the upstream's status codes.
#[tokio::test]
async fn the_upstream_never_receives_the_authorization_header() {
    let running = Running::start().await;
    let (key, record) = running.key("alice").await;
    let http = http();
    let mcp = running.mcp();
    let spoof = |builder: reqwest::RequestBuilder| {
        builder
            .header("x-api-key", &key)
            .header("x-forwarded-credentials", format!("token={key}"))
            .header("x-api-key-id", "00000000-0000-0000-0000-000000000000")
            .header("x-api-key-name", "admin")
            .header("x-api-key-admin", "yes")
            .header("connection", "x-hop")
            .header("x-hop", "1")
            .header("proxy-authorization", "Basic cHJveHk6c2VjcmV0")
            .header("host", "mcp.example.test")
    };
    let init = spoof(mcp_post(&http, &mcp, &key, initialize_body()))
        .send()
        .await
        .unwrap();
    assert_eq!(init.status(), StatusCode::OK);
    let session = init.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_owned();
    drop(init.text().await);
    let ack = in_session(
        mcp_post(
            &http,
            &mcp,
            &key,
            serde_json::json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        ),
        &session,
    )
    .send()
    .await
    .unwrap();
    assert_eq!(
        ack.status(),
        StatusCode::ACCEPTED,
        "the upstream's 202 is kept"
    );
    let call = serde_json::json!({
        "jsonrpc": "2.0", "id": 3, "method": "tools/call",
        "params": { "name": "whoami", "arguments": {} }
    });
    let called = spoof(in_session(mcp_post(&http, &mcp, &key, call), &session))
        .header("mcp-method", "tools/call")
        .header("mcp-name", "whoami")
        .header("mcp-param-region", "eu")
        .send()
        .await
        .unwrap();
    assert_eq!(called.status(), StatusCode::OK);
    let text = called.text().await.unwrap();
    assert!(text.contains(&record.id.to_string()), "{text}");
    let get = spoof(in_session(http.get(&mcp).bearer_auth(&key), &session))
        .header("accept", "text/event-stream")
        .header("last-event-id", "0")
        .send()
        .await
        .unwrap();
    drop(get);
    let deleted = spoof(in_session(http.delete(&mcp).bearer_auth(&key), &session))
        .send()
        .await
        .unwrap();
    assert!(deleted.status().is_success());

    let seen = running.upstream.all();
    let methods: Vec<&Method> = seen.iter().map(|s| &s.method).collect();
    assert_eq!(
        methods,
        [
            &Method::POST,
            &Method::POST,
            &Method::POST,
            &Method::GET,
            &Method::DELETE
        ]
    );
    running.upstream.assert_no_authorization();
    let upstream_host = running.upstream_addr.to_string();
    for s in &seen {
        let h = &s.headers;
        assert_eq!(h["host"], upstream_host.as_str());
        assert_eq!(h["x-api-key-id"], record.id.to_string().as_str());
        assert_eq!(h["x-api-key-name"], "alice");
        assert_eq!(h["x-api-key-owner"], "acct_1");
        assert_eq!(h["x-api-key-scopes"], "*");
        assert_eq!(h["x-api-key-prefix"], record.display_prefix.as_str());
        assert_eq!(h.get_all("x-api-key-id").iter().count(), 1);
        for gone in [
            "x-api-key-admin",
            "x-hop",
            "connection",
            "proxy-authorization",
        ] {
            assert!(!h.contains_key(gone), "{gone} reached the upstream: {h:?}");
        }
    }
    let call = &seen[2].headers;
    assert_eq!(call["mcp-session-id"], session.as_str());
    assert_eq!(call["mcp-protocol-version"], PROTOCOL);
    assert_eq!(call["mcp-method"], "tools/call");
    assert_eq!(call["mcp-name"], "whoami");
    assert_eq!(call["mcp-param-region"], "eu");
    assert_eq!(call["accept"], ACCEPT_BOTH);
    assert_eq!(call["content-type"], "application/json");
    assert_eq!(seen[3].headers["last-event-id"], "0");
}

/// A foreign `Origin` gets 403 before anything else, with or without a key;
/// loopback origins pass by default; `--allowed-origin` replaces them.
#[tokio::test]
async fn a_foreign_origin_gets_403_before_authentication() {
    let running = Running::start().await;
    let (key, _) = running.key("browser").await;
    let http = http();
    let mcp = running.mcp();
    let no_key = http
        .post(&mcp)
        .header("origin", "http://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(no_key.status(), StatusCode::FORBIDDEN);
    for origin in [
        "http://evil.example",
        "http://127.0.0.1.evil.example:8080",
        "null",
    ] {
        let response = mcp_post(&http, &mcp, &key, initialize_body())
            .header("origin", origin)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{origin}");
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["error"], "forbidden_origin");
    }
    assert_eq!(running.upstream.count(), 0);
    let local = mcp_post(&http, &mcp, &key, initialize_body())
        .header("origin", "http://localhost:6274")
        .send()
        .await
        .unwrap();
    assert_eq!(local.status(), StatusCode::OK);

    let custom = Running::with(Options {
        allowed_origins: vec!["https://app.example.com".into()],
        ..Options::default()
    })
    .await;
    let (key, _) = custom.key("browser").await;
    for (origin, status) in [
        ("https://app.example.com", StatusCode::OK),
        (custom.url.as_str(), StatusCode::OK),
        ("http://localhost:6274", StatusCode::FORBIDDEN),
    ] {
        let response = mcp_post(&http, &custom.mcp(), &key, initialize_body())
            .header("origin", origin)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), status, "{origin}");
    }
}

/// An upstream that cannot be reached gives 502 with a JSON body that says
/// which upstream and why.
#[tokio::test]
async fn an_unreachable_upstream_gives_502_with_a_clear_body() {
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let running = Running::with(Options {
        upstream: Some(format!("http://{closed}/mcp")),
        ..Options::default()
    })
    .await;
    let (key, _) = running.key("laptop").await;
    let response = mcp_post(&http(), &running.mcp(), &key, initialize_body())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(response.headers()["content-type"], "application/json");
    let body: serde_json::Value = response.json().await.unwrap();
    eprintln!("502 body: {body}");
    assert_eq!(body["error"], "upstream_unavailable");
    let description = body["error_description"].as_str().unwrap();
    assert!(
        description.contains(&format!("http://{closed}/mcp")),
        "{description}"
    );
    assert!(description.contains("onnect"), "{description}");
}

/// The upstream's refusals reach the client with their status: 406 for a
/// missing `text/event-stream` in `Accept`, 415 for a body that is not JSON.
#[tokio::test]
async fn the_upstream_status_codes_are_kept() {
    let running = Running::start().await;
    let (key, _) = running.key("laptop").await;
    let http = http();
    let post = |accept: &str, content_type: &str| {
        http.post(running.mcp())
            .bearer_auth(&key)
            .header("accept", accept)
            .header("content-type", content_type)
            .body(initialize_body().to_string())
            .send()
    };
    let only_json = post("application/json", "application/json").await.unwrap();
    assert_eq!(only_json.status(), StatusCode::NOT_ACCEPTABLE);
    let text = post(ACCEPT_BOTH, "text/plain").await.unwrap();
    assert_eq!(text.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(running.upstream.count(), 2);
}

/// With `--mcp-scope`, `/mcp` needs that scope (403 `insufficient_scope`
/// otherwise) while `/api/v2/projects` does not; full-access keys pass.
#[tokio::test]
async fn mcp_scope_is_required_when_configured() {
    let running = Running::with(Options {
        mcp_scope: Some("mcp".into()),
        ..Options::default()
    })
    .await;
    let (limited, _) = running
        .key_with(NewKey::new("acct_1", "reports").scopes(Scopes::only(["projects:read"])))
        .await;
    let (scoped, _) = running
        .key_with(NewKey::new("acct_1", "agent").scopes(Scopes::only(["mcp"])))
        .await;
    let (full, _) = running.key("admin").await;
    let http = http();
    let refused = mcp_post(&http, &running.mcp(), &limited, initialize_body())
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    let challenge = refused.headers()["www-authenticate"].to_str().unwrap();
    assert!(
        challenge.contains(r#"error="insufficient_scope""#),
        "{challenge}"
    );
    assert!(challenge.contains(r#"scope="mcp""#), "{challenge}");
    let projects = http
        .get(format!("{}/api/v2/projects", running.url))
        .bearer_auth(&limited)
        .send()
        .await
        .unwrap();
    assert_eq!(projects.status(), StatusCode::OK);
    assert_eq!(running.upstream.count(), 0);

    let client = connect(&running.mcp(), &scoped).await.unwrap();
    assert_eq!(whoami(&client).await.scopes, "mcp");
    client.cancel().await.unwrap();
    let client = connect(&running.mcp(), &full).await.unwrap();
    assert_eq!(whoami(&client).await.key_name, "admin");
    client.cancel().await.unwrap();

    let document: serde_json::Value = http
        .get(format!(
            "{}/.well-known/oauth-protected-resource",
            running.url
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(document["scopes_supported"], serde_json::json!(["mcp"]));
}

/// `/api/v2/projects` needs a key and lists the key owner's projects;
/// `/healthz` needs none.
#[tokio::test]
async fn projects_need_a_key_and_healthz_does_not() {
    let running = Running::start().await;
    let (key, _) = running.key("laptop").await;
    let http = http();
    let projects = format!("{}/api/v2/projects", running.url);
    assert_eq!(
        http.get(&projects).send().await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    let listed: serde_json::Value = http
        .get(&projects)
        .bearer_auth(&key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed[0]["owner"], "acct_1");
    assert_eq!(listed.as_array().unwrap().len(), 2);
    let health = http
        .get(format!("{}/healthz", running.url))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), StatusCode::OK);
}

// ------------------------------------------------------ the example binary

/// The `mcp-proxy` binary, built by cargo for this test.
const BINARY: &str = env!("CARGO_BIN_EXE_mcp-proxy");

/// One run of the example binary to its end.
struct Run {
    success: bool,
    stdout: String,
    stderr: String,
    took: Duration,
    ended: Instant,
}

async fn run_example(db: &str, args: &[&str]) -> Run {
    let start = Instant::now();
    let output = tokio::time::timeout(
        Duration::from_secs(30),
        tokio::process::Command::new(BINARY)
            .args(args)
            .args(["--db", db])
            .env("NO_COLOR", "1")
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the example finished")
    .unwrap();
    let ended = Instant::now();
    Run {
        success: output.status.success(),
        stdout: String::from_utf8(output.stdout).unwrap(),
        stderr: String::from_utf8(output.stderr).unwrap(),
        took: ended - start,
        ended,
    }
}

impl Run {
    /// The key printed alone on stdout.
    fn key(&self) -> String {
        assert!(self.success, "failed: {}", self.stderr);
        let key = self.stdout.trim_end_matches('\n');
        assert!(
            !key.contains('\n'),
            "more than the key on stdout: {:?}",
            self.stdout
        );
        assert!(
            key.starts_with("bmc_") && key.len() == 47,
            "not a key: {key:?}"
        );
        key.to_owned()
    }
}

/// `mcp_proxy serve` as a child process.
struct ServerProcess {
    child: tokio::process::Child,
    url: String,
    stdout: tokio::process::ChildStdout,
    stderr: Arc<Mutex<String>>,
}

impl ServerProcess {
    async fn start(db: &str) -> Self {
        let mut child = tokio::process::Command::new(BINARY)
            .args(["serve", "--listen", "127.0.0.1:0", "--db", db])
            .env("NO_COLOR", "1")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let stderr = Arc::new(Mutex::new(String::new()));
        let url = tokio::time::timeout(Duration::from_secs(30), async {
            while let Some(line) = lines.next_line().await.unwrap() {
                stderr.lock().unwrap().push_str(&format!("{line}\n"));
                if let Some(url) = line.strip_prefix("mcp_proxy listening on ") {
                    return url.to_owned();
                }
            }
            panic!("the server exited: {}", stderr.lock().unwrap());
        })
        .await
        .expect("the server started");
        let log = Arc::clone(&stderr);
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                log.lock().unwrap().push_str(&format!("{line}\n"));
            }
        });
        let stdout = child.stdout.take().unwrap();
        Self {
            child,
            url,
            stdout,
            stderr,
        }
    }

    /// Sends SIGTERM and waits for the exit; returns how long it took.
    async fn terminate(&mut self) -> Duration {
        let pid = self.child.id().expect("running").to_string();
        let start = Instant::now();
        let kill = tokio::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .await
            .unwrap();
        assert!(kill.success());
        let status = tokio::time::timeout(Duration::from_secs(15), self.child.wait())
            .await
            .expect("the server stopped after SIGTERM")
            .unwrap();
        assert!(
            status.success(),
            "{status}: {}",
            self.stderr.lock().unwrap()
        );
        start.elapsed()
    }

    /// Everything the server printed on stdout (after it exited).
    async fn stdout_to_end(&mut self) -> String {
        let mut text = String::new();
        self.stdout.read_to_string(&mut text).await.unwrap();
        text
    }
}

async fn status_of(http: &reqwest::Client, url: &str, key: &str) -> StatusCode {
    http.get(format!("{url}/api/v2/projects"))
        .bearer_auth(key)
        .send()
        .await
        .unwrap()
        .status()
}

/// Asks every 10 ms until `url` answers `want` for `key`; how long since
/// `since` that took, failing past `within`.
async fn wait_for(
    http: &reqwest::Client,
    url: &str,
    key: &str,
    want: StatusCode,
    since: Instant,
    within: Duration,
) -> Duration {
    loop {
        let status = status_of(http, url, key).await;
        let took = since.elapsed();
        if status == want {
            return took;
        }
        assert!(
            took < within,
            "still {status} {took:?} later, wanted {want}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The newcomer's path, all through the example binary: `serve` on an empty
/// store prints a bootstrap key that works with curl-like requests and the
/// rmcp client; `keys create` and `keys revoke`, run as separate processes
/// against the same SQLite file, take effect on the running server within
/// a second; SIGTERM stops it promptly although an SSE stream is open; a
/// restart on the same store prints no key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_binary_serves_and_obeys_keys_commands_from_other_processes() {
    let dir = TempDir::new();
    let db = format!("sqlite:{}", dir.path().join("api-keys.db").display());
    let mut server = ServerProcess::start(&db).await;
    let bootstrap = {
        let mut line = String::new();
        let mut reader = BufReader::new(&mut server.stdout);
        tokio::time::timeout(Duration::from_secs(5), reader.read_line(&mut line))
            .await
            .expect("a bootstrap key on stdout")
            .unwrap();
        line.trim_end().to_owned()
    };
    assert!(
        bootstrap.starts_with("bmc_") && bootstrap.len() == 47,
        "{bootstrap:?}"
    );
    let http = http();
    let url = server.url.clone();
    assert_eq!(
        http.get(format!("{url}/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    assert_eq!(status_of(&http, &url, &bootstrap).await, StatusCode::OK);

    // The rmcp client through the built-in demo upstream.
    let client = connect(&format!("{url}/mcp"), &bootstrap).await.unwrap();
    let who = whoami(&client).await;
    assert_eq!(who.key_name, "bootstrap");
    assert_eq!(who.owner, "default");

    let created = run_example(&db, &["keys", "create", "ci", "--scope", "projects:read"]).await;
    let ci = created.key();
    let took = wait_for(
        &http,
        &url,
        &ci,
        StatusCode::OK,
        created.ended,
        Duration::from_secs(1),
    )
    .await;
    eprintln!(
        "keys create ran in {:?}; its key worked {took:?} after the command ended",
        created.took
    );
    for _ in 0..3 {
        assert_eq!(status_of(&http, &url, &ci).await, StatusCode::OK); // cached now
    }

    let prefix = &ci[..12];
    let revoked = run_example(&db, &["keys", "revoke", prefix, "--reason", "test"]).await;
    assert!(revoked.success, "{}", revoked.stderr);
    let took = wait_for(
        &http,
        &url,
        &ci,
        StatusCode::UNAUTHORIZED,
        revoked.ended,
        Duration::from_secs(1),
    )
    .await;
    eprintln!(
        "keys revoke ran in {:?}; the server refused the key {took:?} after the command ended",
        revoked.took
    );
    assert_eq!(status_of(&http, &url, &bootstrap).await, StatusCode::OK);
    let listed = run_example(&db, &["keys", "list"]).await;
    assert!(listed.stdout.contains("revoked: test"), "{}", listed.stdout);

    // The rmcp client's session keeps an SSE stream open; SIGTERM must not
    // wait for it to end.
    let took = server.terminate().await;
    eprintln!("the server stopped {took:?} after SIGTERM with an SSE stream open");
    assert!(took < Duration::from_secs(5), "{took:?}");
    drop(client);
    assert_eq!(
        server.stdout_to_end().await,
        "",
        "the bootstrap key was printed once only"
    );

    let mut again = ServerProcess::start(&db).await;
    assert_eq!(
        status_of(&http, &again.url, &bootstrap).await,
        StatusCode::OK
    );
    again.terminate().await;
    assert_eq!(again.stdout_to_end().await, "", "no second bootstrap key");
}

/// `keys create|list|roll|revoke` through the binary: the key alone on
/// stdout, scopes, expiry, owners, roll with its overlap, a revocation
/// reason in the list, and clear errors for ambiguous or unknown keys.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_keys_commands_create_list_roll_and_revoke() {
    let dir = TempDir::new();
    let db = format!("sqlite:{}", dir.path().join("api-keys.db").display());
    let deploy = run_example(
        &db,
        &[
            "keys",
            "create",
            "deploy",
            "--owner",
            "acme",
            "--scope",
            "projects:read",
            "--scope",
            "mcp",
            "--expires-in",
            "30d",
        ],
    )
    .await;
    let deploy_key = deploy.key();
    assert!(
        deploy.stderr.contains("created key \"deploy\""),
        "{}",
        deploy.stderr
    );
    let laptop = run_example(
        &db,
        &[
            "keys",
            "create",
            "laptop",
            "--expires-at",
            "2099-01-31T00:00:00Z",
        ],
    )
    .await;
    laptop.key();
    let both = run_example(
        &db,
        &[
            "keys",
            "create",
            "x",
            "--expires-in",
            "1d",
            "--expires-at",
            "2099-01-31T00:00:00Z",
        ],
    )
    .await;
    assert!(!both.success && both.stdout.is_empty(), "{}", both.stderr);

    let listed = run_example(&db, &["keys", "list"]).await;
    assert!(listed.success, "{}", listed.stderr);
    let lines: Vec<&str> = listed.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{}", listed.stdout);
    for column in [
        "ID",
        "OWNER",
        "NAME",
        "PREFIX",
        "SCOPES",
        "CREATED",
        "LAST USED",
        "STATUS",
    ] {
        assert!(lines[0].contains(column), "{}", lines[0]);
    }
    assert!(
        lines[1].contains("deploy") && lines[1].contains("mcp projects:read"),
        "{}",
        lines[1]
    );
    assert!(
        lines[1].contains("acme") && lines[1].ends_with("active"),
        "{}",
        lines[1]
    );
    assert!(
        lines[2].contains("laptop") && lines[2].contains("2099-01-31 00:00:00Z"),
        "{}",
        lines[2]
    );
    assert!(
        lines[2].contains("default") && lines[2].contains(" * "),
        "{}",
        lines[2]
    );
    let acme = run_example(&db, &["keys", "list", "--owner", "acme"]).await;
    assert_eq!(acme.stdout.lines().count(), 2, "{}", acme.stdout);

    let rolled = run_example(&db, &["keys", "roll", &deploy_key[..12], "--overlap", "1h"]).await;
    let new_key = rolled.key();
    assert_ne!(new_key, deploy_key);
    let store = SqliteStore::connect(&db).await.unwrap();
    let keys = ApiKeys::builder(store).build().unwrap();
    let old = keys
        .store()
        .find_by_display_prefix(&deploy_key[..12], 2)
        .await
        .unwrap();
    let new = keys
        .store()
        .find_by_display_prefix(&new_key[..12], 2)
        .await
        .unwrap();
    let (old, new) = (&old[0], &new[0]);
    let until = old.expires_at.unwrap() - chrono::Utc::now();
    assert!(
        until > chrono::Duration::minutes(58) && until <= chrono::Duration::hours(1),
        "{until}"
    );
    assert_eq!(new.name, "deploy");
    assert_eq!(new.scopes, Scopes::only(["mcp", "projects:read"]));

    let id = old.id.to_string();
    let revoked = run_example(
        &db,
        &["keys", "revoke", &id, "--reason", "leaked in CI logs"],
    )
    .await;
    assert!(revoked.success, "{}", revoked.stderr);
    assert!(revoked.stdout.is_empty());
    let listed = run_example(&db, &["keys", "list", "--owner", "acme"]).await;
    assert!(
        listed.stdout.contains("revoked: leaked in CI logs"),
        "{}",
        listed.stdout
    );

    let ambiguous = run_example(&db, &["keys", "revoke", "bmc_"]).await;
    assert!(!ambiguous.success);
    assert!(
        ambiguous.stderr.contains("matches several keys"),
        "{}",
        ambiguous.stderr
    );
    let unknown = run_example(&db, &["keys", "revoke", "bmc_nope"]).await;
    assert!(!unknown.success);
    assert!(
        unknown.stderr.contains("no key has the id or prefix"),
        "{}",
        unknown.stderr
    );
    let roll_revoked = run_example(&db, &["keys", "roll", &id]).await;
    assert!(!roll_revoked.success);
    assert!(
        roll_revoked.stderr.contains("revoked"),
        "{}",
        roll_revoked.stderr
    );
    keys.shutdown().await;
}

/// `--db postgres://...` works for the `keys` commands (in a schema of the
/// test's own, through the URL's `search_path`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_keys_commands_work_on_postgres() {
    PgSchema::run(|schema| async move {
        drop(schema.store().await); // creates the schema and its tables
        let separator = if schema.url.contains('?') { '&' } else { '?' };
        let db = format!(
            "{}{separator}options=-c%20search_path%3D{}",
            schema.url, schema.name
        );
        let created = run_example(&db, &["keys", "create", "pg-key", "--owner", "acme"]).await;
        created.key();
        let listed = run_example(&db, &["keys", "list", "--owner", "acme"]).await;
        assert!(listed.success, "{}", listed.stderr);
        assert!(listed.stdout.contains("pg-key"), "{}", listed.stdout);
        let revoked = run_example(&db, &["keys", "revoke", &created.key()[..12]]).await;
        assert!(revoked.success, "{}", revoked.stderr);
    })
    .await;
}

#[tokio::test]
async fn serve_protections_revoke_keys_in_urls_limit_rates_and_metadata_reaches_upstream() {
    let running = Running::with(Options {
        protections: server::Protections {
            revoke_exposed_keys: true,
            rate_limit: Some(tower_api_keys::RateLimit::per_minute(3)),
            max_failed_attempts: None,
        },
        ..Options::default()
    })
    .await;
    let http = http();
    let (key, record) = running
        .key_with(NewKey::new("acct_1", "meta").metadata(serde_json::json!({"plan": "pro"})))
        .await;

    // Metadata goes upstream as JSON (controls, non-ASCII and '%' escaped).
    let init = mcp_post(&http, &running.mcp(), &key, initialize_body())
        .send()
        .await
        .unwrap();
    assert_eq!(init.status(), StatusCode::OK);
    drop(init);
    let seen = running.upstream.all();
    let metadata = seen[0].headers["x-api-key-metadata"].to_str().unwrap();
    assert_eq!(metadata, r#"{"plan":"pro"}"#);

    // The allowance: three requests a minute, the fourth is refused.
    for _ in 0..2 {
        let r = http
            .get(format!("{}/api/v2/projects", running.url))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
    }
    let limited = http
        .get(format!("{}/api/v2/projects", running.url))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(limited.headers().contains_key("retry-after"));
    assert!(limited.headers().contains_key("ratelimit-policy"));

    // A key in a URL is refused and revoked at once.
    let (other, other_record) = running.key("other").await;
    let exposed = http
        .get(format!(
            "{}/api/v2/projects?access_token={other}",
            running.url
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(exposed.status(), StatusCode::BAD_REQUEST);
    let after = http
        .get(format!("{}/api/v2/projects", running.url))
        .bearer_auth(&other)
        .send()
        .await
        .unwrap();
    assert_eq!(after.status(), StatusCode::UNAUTHORIZED);
    let stored = running
        .keys
        .get(&"acct_1".into(), &other_record.id)
        .await
        .unwrap();
    assert_eq!(stored.revoked_reason.as_deref(), Some("exposed in URL"));
    assert_eq!(record.rate_limit, None, "the default allowance applied");
}

#[tokio::test]
async fn a_key_holds_a_bounded_number_of_open_sessions() {
    let running = Running::start().await;
    let http = http();
    let (alice, _) = running.key("alice").await;
    let (bob, _) = running.key("bob").await;
    let mcp = running.mcp();
    let mut sessions = Vec::new();
    for _ in 0..session::SessionBindings::MAX_PER_KEY {
        sessions.push(open_session(&http, &mcp, &alice).await);
    }
    let upstream_before = running.upstream.count();
    let refused = mcp_post(&http, &mcp, &alice, initialize_body())
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(refused.headers()["retry-after"], "60");
    let body: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(body["error"], "too_many_sessions");
    assert_eq!(
        running.upstream.count(),
        upstream_before,
        "refused before the upstream"
    );
    // Other keys are not affected, and closing a session makes room.
    open_session(&http, &mcp, &bob).await;
    let deleted = in_session(http.delete(&mcp).bearer_auth(&alice), &sessions[0])
        .send()
        .await
        .unwrap();
    assert!(deleted.status().is_success(), "{}", deleted.status());
    open_session(&http, &mcp, &alice).await;
}
