//! The streaming reverse proxy of `/mcp`.
//!
//! 1. The API-key layer has authenticated the request already.
//! 2. A request carrying an `Mcp-Session-Id` must belong to a session this
//!    key opened ([`crate::session`]); otherwise 404, and the upstream never
//!    sees it.
//! 3. Headers: `Authorization` is removed, and so is any other header that
//!    repeats the key (the key never leaves the proxy); hop-by-hop headers
//!    are dropped; `Host` is the upstream's; any `x-api-key*` sent by the
//!    client is replaced by the proxy's own identity headers.
//!    Everything else passes, the MCP headers included (`Accept`,
//!    `Content-Type`, `Mcp-Session-Id`, `MCP-Protocol-Version`,
//!    `Last-Event-ID`, `Mcp-Method`, `Mcp-Name`, `Mcp-Param-*`).
//! 4. Bodies stream both ways, frame by frame: an SSE event is sent on as it
//!    arrives. When the client goes away, its response body is dropped,
//!    which drops the upstream response and closes that connection.
//! 5. The upstream's status and headers are kept; an upstream that cannot be
//!    reached gives 502 with the reason.
//! 6. A response still streaming ends within about a second of its key
//!    being revoked or expiring, and when the proxy shuts down.

use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt as _;
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, Version, header};
use http_body_util::{BodyStream, StreamBody};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};
use tokio_util::sync::CancellationToken;
use tower_api_keys::{ApiKeys, Caller};

use crate::session::{Holder, MCP_SESSION_ID, SessionBindings, SessionCheck};

/// The key's id, sent upstream.
pub static KEY_ID: HeaderName = HeaderName::from_static("x-api-key-id");
/// The key's name, percent-encoded UTF-8.
pub static KEY_NAME: HeaderName = HeaderName::from_static("x-api-key-name");
/// The key's owner, percent-encoded UTF-8.
pub static KEY_OWNER: HeaderName = HeaderName::from_static("x-api-key-owner");
/// The key's scopes, space-separated (`*` for full access), percent-encoded.
pub static KEY_SCOPES: HeaderName = HeaderName::from_static("x-api-key-scopes");
/// The key's display prefix (`bmc_K7xR2pQm`), for the upstream's logs.
pub static KEY_PREFIX: HeaderName = HeaderName::from_static("x-api-key-prefix");
/// The key's metadata as JSON, percent-encoded; sent when it is not `null`.
pub static KEY_METADATA: HeaderName = HeaderName::from_static("x-api-key-metadata");
/// `access_token` when an OAuth access token, not a key, authenticated the
/// request (absent for keys).
pub static KEY_CREDENTIAL: HeaderName = HeaderName::from_static("x-api-key-credential");

/// Bytes escaped in identity header values: controls, non-ASCII, and `%`
/// itself, so that decoding is always right.
const HEADER_TEXT: &AsciiSet = &CONTROLS.add(b'%');

/// Where requests go: the upstream MCP server's endpoint.
#[derive(Debug, Clone)]
pub struct Target {
    /// `http://host:port/path` of the upstream's MCP endpoint.
    url: Uri,
    /// `host:port`, sent as `Host`.
    authority: HeaderValue,
}

impl Target {
    /// Parses the upstream's MCP endpoint, such as `http://127.0.0.1:9000/mcp`.
    /// Only `http` is supported (this example links no TLS).
    pub fn parse(url: &str) -> Result<Self, String> {
        let uri: Uri = url
            .parse()
            .map_err(|error| format!("invalid upstream URL {url:?}: {error}"))?;
        if uri.scheme() != Some(&http::uri::Scheme::HTTP) {
            return Err(format!(
                "the upstream URL must start with http:// (this example has no TLS): {url:?}"
            ));
        }
        let authority = uri
            .authority()
            .ok_or_else(|| format!("the upstream URL has no host: {url:?}"))?;
        let authority = HeaderValue::from_str(authority.as_str())
            .map_err(|error| format!("invalid upstream host {url:?}: {error}"))?;
        Ok(Self {
            url: uri,
            authority,
        })
    }

    /// The upstream URL of a request to `/mcp`: its path, with the
    /// request's query.
    fn uri_for(&self, request: &Uri) -> Result<Uri, http::Error> {
        let path = self.url.path();
        let path_and_query = match request.query() {
            Some(query) => format!("{path}?{query}"),
            None => path.to_owned(),
        };
        Uri::builder()
            .scheme("http")
            .authority(self.url.authority().map_or("", |a| a.as_str()))
            .path_and_query(path_and_query)
            .build()
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.url.fmt(f)
    }
}

/// The proxy's state: the target, an HTTP client with a connection pool,
/// the session bindings, the keys (to end the streams of keys that stop
/// being usable), and the shutdown signal that ends open streams.
#[derive(Clone)]
pub struct Proxy {
    target: Target,
    client: Client<HttpConnector, Body>,
    sessions: SessionBindings,
    keys: ApiKeys,
    shutdown: CancellationToken,
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxy")
            .field("target", &self.target)
            .field("sessions", &self.sessions)
            .finish_non_exhaustive()
    }
}

impl Proxy {
    /// How long connecting to the upstream may take before a 502.
    pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

    /// A proxy to `target`, whose callers' keys `keys` checks, with the
    /// session table `sessions`. Cancelling `shutdown` ends the streams in
    /// flight, so a graceful shutdown is not held up by open SSE streams.
    pub fn new(
        target: Target,
        keys: ApiKeys,
        sessions: SessionBindings,
        shutdown: CancellationToken,
    ) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(Self::CONNECT_TIMEOUT));
        connector.set_nodelay(true);
        Self {
            target,
            client: Client::builder(TokioExecutor::new()).build(connector),
            sessions,
            keys,
            shutdown,
        }
    }
}

/// The `/mcp` handler (POST, GET and DELETE), for a key or an access
/// token alike.
pub async fn forward(State(proxy): State<Proxy>, caller: Caller, request: Request) -> Response {
    let mut reservation = None;
    let holder = Holder::of(&caller);
    let session = match proxy
        .sessions
        .check(request.headers(), holder.clone())
        .await
    {
        SessionCheck::Refused => return crate::session::refused(),
        // A POST without a session may open one: it takes one of the key's
        // places before it is forwarded, and gives it back unless it does.
        SessionCheck::NoSession if request.method() == Method::POST => {
            match proxy.sessions.reserve(holder.clone()).await {
                Some(place) => reservation = Some(place),
                None => return proxy.sessions.too_many(),
            }
            None
        }
        SessionCheck::NoSession => None,
        SessionCheck::Bound(id) => Some(id),
    };
    let (parts, body) = request.into_parts();
    let uri = match proxy.target.uri_for(&parts.uri) {
        Ok(uri) => uri,
        Err(error) => return error_response(StatusCode::BAD_REQUEST, "invalid_request", error),
    };
    let mut headers = parts.headers;
    prepare_request_headers(&mut headers, &proxy.target.authority, &caller);
    let method = parts.method;
    let mut upstream_request = http::Request::new(body);
    *upstream_request.method_mut() = method.clone();
    *upstream_request.uri_mut() = uri;
    // The client speaks HTTP/1.1 to the upstream, whatever the caller used.
    *upstream_request.version_mut() = Version::HTTP_11;
    *upstream_request.headers_mut() = headers;

    // Dropping this future (the caller went away before the upstream
    // answered, or the key stopped being usable) drops the upstream request
    // and its connection.
    let response = tokio::select! {
        response = proxy.client.request(upstream_request) => response,
        () = proxy.shutdown.cancelled() => {
            return error_response(StatusCode::SERVICE_UNAVAILABLE, "shutting_down",
                "the proxy is shutting down");
        }
        rejection = proxy.keys.until_refused(&caller) => {
            tracing::info!(holder = %holder, reason = %rejection.reason(), "cut a request waiting on the upstream: its credential is no longer usable");
            return rejection.into_response();
        }
    };
    let response = match response {
        Ok(response) => response,
        Err(error) if client_body_timed_out(&error) => {
            // The client stopped sending its body: its fault, not the
            // upstream's.
            return error_response(
                StatusCode::REQUEST_TIMEOUT,
                "request_timeout",
                "the request body stopped coming; send it whole",
            );
        }
        Err(error) => {
            let reason = error_chain(&error);
            tracing::warn!(upstream = %proxy.target, %reason, "the upstream could not be reached");
            // The client learns nothing of the upstream's address or the
            // operating system's error; the log has both.
            return error_response(
                StatusCode::BAD_GATEWAY,
                "upstream_unavailable",
                "the MCP server behind this proxy could not be reached; try again later",
            );
        }
    };

    let status = response.status();
    if status.is_success()
        && let Some(id) = response
            .headers()
            .get(&MCP_SESSION_ID)
            .and_then(|v| v.to_str().ok())
    {
        match reservation.take() {
            Some(place) => proxy.sessions.bind(id, place).await,
            None if session.as_deref() != Some(id) => tracing::warn!(
                holder = %holder,
                "the upstream issued a session outside a request that may open one; not bound"
            ),
            None => {}
        }
    }
    if let Some(id) = &session
        && ((method == Method::DELETE && status.is_success()) || status == StatusCode::NOT_FOUND)
    {
        // Ended by the client, or forgotten by the upstream.
        proxy.sessions.end(id).await;
    }

    let (mut parts, body) = response.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    // Frame by frame, until the upstream ends, the key can no longer be
    // used, or the proxy shuts down.
    // Waiting costs no query: the keys' change follower says when.
    let (keys, shutdown) = (proxy.keys.clone(), proxy.shutdown.clone());
    let stop = async move {
        tokio::select! {
            () = shutdown.cancelled() => {}
            rejection = keys.until_refused(&caller) => {
                tracing::info!(holder = %holder, reason = %rejection.reason(), "ended a stream: its credential is no longer usable");
            }
        }
    };
    let frames = BodyStream::new(body).take_until(stop);
    Response::from_parts(parts, Body::new(StreamBody::new(frames)))
}

/// Whether forwarding failed because the client's body stopped coming
/// (the listener bounds each wait for more of it).
fn client_body_timed_out(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(error);
    while let Some(error) = cause {
        if error.is::<tower_http::timeout::TimeoutError>() {
            return true;
        }
        cause = error.source();
    }
    false
}

/// Rewrites the caller's headers for the upstream. Public for the fuzz
/// target alone (`fuzz/fuzz_targets/proxy_headers.rs`): not a stable API.
#[doc(hidden)]
pub fn prepare_request_headers(headers: &mut HeaderMap, authority: &HeaderValue, caller: &Caller) {
    // The key (or access token) goes nowhere: not in `Authorization`, nor in any other header
    // that repeats it (`X-Api-Key`, a cookie, ...). It is read before the
    // hop-by-hop headers go, since `Connection: authorization` would take
    // `Authorization` with them and leave the copies unrecognised. Like the
    // layer, it ignores whitespace around the value (`Bearer <key> ` would
    // otherwise hide every copy of `<key>`).
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim_ascii().split_once(' '))
        .map(|(_, token)| token.trim_start().as_bytes().to_vec())
        .filter(|token| !token.is_empty());
    strip_hop_by_hop(headers);
    headers.remove(header::AUTHORIZATION);
    let dropped: Vec<HeaderName> = headers
        .iter()
        .filter(|(name, value)| {
            // Identity comes from the proxy only, also under the names CGI,
            // WSGI and Rack servers read as the same (`X_Api_Key_Owner`).
            is_identity_name(name)
                || presented.as_ref().is_some_and(|token| {
                    value
                        .as_bytes()
                        .windows(token.len())
                        .any(|window| window == token.as_slice())
                })
        })
        .map(|(name, _)| name.clone())
        .collect();
    for name in dropped {
        headers.remove(name);
    }
    headers.insert(header::HOST, authority.clone());
    headers.extend(identity_headers(caller));
}

/// Whether a header name is, or reads as, one of the identity headers: with
/// `_` and `.` taken as `-`, it starts with `x-api-key`.
fn is_identity_name(name: &HeaderName) -> bool {
    const IDENTITY: &[u8] = b"x-api-key";
    let name = name.as_str().as_bytes();
    name.len() >= IDENTITY.len()
        && name
            .iter()
            .zip(IDENTITY)
            .all(|(&got, &want)| got == want || (want == b'-' && (got == b'_' || got == b'.')))
}

/// The headers that tell the upstream who called. For a key: [`KEY_ID`],
/// [`KEY_NAME`], [`KEY_OWNER`], [`KEY_SCOPES`], [`KEY_PREFIX`] and, when the
/// key has metadata, [`KEY_METADATA`]. For an access token:
/// [`KEY_CREDENTIAL`] `access_token`, [`KEY_OWNER`] (its subject),
/// [`KEY_NAME`] (its client) and [`KEY_SCOPES`]; never the token. Text
/// values are percent-encoded UTF-8 (a name may hold any character).
pub fn identity_headers(caller: &Caller) -> HeaderMap {
    let text = |value: &str| {
        HeaderValue::from_str(&utf8_percent_encode(value, HEADER_TEXT).to_string())
            .expect("percent-encoded text is a valid header value")
    };
    let mut headers = HeaderMap::with_capacity(6);
    let Some(key) = caller.key() else {
        headers.insert(KEY_CREDENTIAL.clone(), text(caller.credential().as_str()));
        headers.insert(KEY_NAME.clone(), text(caller.name()));
        headers.insert(KEY_OWNER.clone(), text(caller.owner().as_str()));
        headers.insert(KEY_SCOPES.clone(), text(&caller.scopes().to_string()));
        return headers;
    };
    headers.insert(KEY_ID.clone(), text(&key.id().to_string()));
    headers.insert(KEY_NAME.clone(), text(key.name()));
    headers.insert(KEY_OWNER.clone(), text(key.owner().as_str()));
    headers.insert(KEY_SCOPES.clone(), text(&key.scopes().to_string()));
    headers.insert(KEY_PREFIX.clone(), text(key.display_prefix()));
    if !key.metadata().is_null() {
        headers.insert(KEY_METADATA.clone(), text(&key.metadata().to_string()));
    }
    headers
}

/// Removes the connection-specific headers of RFC 9110 §7.6.1, and those
/// named in `Connection` (even in a value that also holds non-ASCII bytes).
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let listed: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .flat_map(|value| value.as_bytes().split(|byte| *byte == b','))
        .filter_map(|name| HeaderName::from_bytes(name.trim_ascii()).ok())
        .collect();
    for name in listed {
        headers.remove(name);
    }
    for name in [
        header::CONNECTION,
        header::PROXY_AUTHENTICATE,
        header::PROXY_AUTHORIZATION,
        header::TE,
        header::TRAILER,
        header::TRANSFER_ENCODING,
        header::UPGRADE,
    ] {
        headers.remove(name);
    }
    headers.remove("keep-alive");
    headers.remove("proxy-connection");
}

/// A JSON error like the key layer's: `{"error", "error_description"}`.
fn error_response(status: StatusCode, error: &str, description: impl ToString) -> Response {
    let body = serde_json::json!({"error": error, "error_description": description.to_string() });
    (status, axum::Json(body)).into_response()
}

/// The error with its sources: hyper's own message alone is terse
/// ("client error (Connect)").
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
