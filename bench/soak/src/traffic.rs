//! The clients: each loops over requests of the mix until the deadline, the
//! stop signal or the request cap, and judges every answer against what the
//! driver knew when it sent the request.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{SecondsFormat, Utc};
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use tokio_util::sync::CancellationToken;

use crate::keys::{Class, Keys};
use crate::mix::{Shot, chance, next_shot};
use crate::stats::Stats;

const PROTOCOL: &str = "2025-06-18";
const ACCEPT_BOTH: &str = "application/json, text/event-stream";
const INITIALIZE: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"soak","version":"0"}}}"#;
/// Each request, body included, is cut off after this.
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Incidents kept in full for the report.
pub(crate) const INCIDENTS_KEPT: usize = 25;
/// The most of a body read (an MCP event stream is read only up to its
/// first result).
const BODY_LIMIT: usize = 64 * 1024;

/// Where a request goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Route {
    Projects,
    McpInitialize,
    McpDelete,
}

impl Route {
    /// Every route, in the order of [`Stats::routes`].
    pub(crate) const ALL: [Route; 3] = [Route::Projects, Route::McpInitialize, Route::McpDelete];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Route::Projects => "GET /api/v2/projects",
            Route::McpInitialize => "POST /mcp initialize",
            Route::McpDelete => "DELETE /mcp (close session)",
        }
    }
}

/// What every client shares.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) client: reqwest::Client,
    pub(crate) base: String,
    pub(crate) keys: Keys,
    pub(crate) epoch: Instant,
    pub(crate) deadline: Instant,
    pub(crate) stop: CancellationToken,
    pub(crate) mcp_percent: u32,
    pub(crate) abandon_percent: u32,
    pub(crate) max_requests: u64,
    pub(crate) requests: AtomicU64,
    pub(crate) wrongly_accepted: AtomicU64,
    pub(crate) wrongly_refused: AtomicU64,
    pub(crate) server_errors: AtomicU64,
    pub(crate) transport_errors: AtomicU64,
    pub(crate) incidents: Mutex<Vec<String>>,
}

impl Shared {
    /// A run of `duration` from now; the counters at zero.
    pub(crate) fn new(
        client: reqwest::Client,
        base: String,
        keys: Keys,
        duration: Duration,
        mcp_percent: u32,
        abandon_percent: u32,
        max_requests: u64,
    ) -> Self {
        let epoch = Instant::now();
        Self {
            client,
            base,
            keys,
            epoch,
            deadline: epoch + duration,
            stop: CancellationToken::new(),
            mcp_percent,
            abandon_percent,
            max_requests,
            requests: AtomicU64::new(0),
            wrongly_accepted: AtomicU64::new(0),
            wrongly_refused: AtomicU64::new(0),
            server_errors: AtomicU64::new(0),
            transport_errors: AtomicU64::new(0),
            incidents: Mutex::new(Vec::new()),
        }
    }

    pub(crate) fn since_start(&self) -> f64 {
        self.epoch.elapsed().as_secs_f64()
    }

    fn incident(&self, text: String) {
        let mut incidents = self.incidents.lock().unwrap_or_else(|e| e.into_inner());
        if incidents.len() < INCIDENTS_KEPT {
            incidents.push(format!("[{:7.2} s] {text}", self.since_start()));
        }
    }
}

/// What came back.
#[derive(Debug)]
struct Answer {
    status: u16,
    session: Option<String>,
    /// The body (for MCP, up to the first event with a result).
    body: String,
}

/// One client: requests until the deadline, the stop signal, or the cap.
pub(crate) async fn run_client(shared: Arc<Shared>, seed: u64) -> Stats {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut stats = Stats::new();
    while Instant::now() < shared.deadline
        && !shared.stop.is_cancelled()
        && shared.requests.load(Relaxed) < shared.max_requests
    {
        let shot = next_shot(&mut rng, &shared.keys);
        let route = if chance(&mut rng, shared.mcp_percent) {
            Route::McpInitialize
        } else {
            Route::Projects
        };
        let answer = send(&shared, &mut stats, route, &shot, None).await;
        // A session opened by a request without a key (wrongly accepted,
        // and counted as such) is not closed: there is no key to close it.
        if let (
            Some(Answer {
                status: 200..=299,
                session: Some(session),
                ..
            }),
            Some(key),
        ) = (answer, shot.key.clone())
        {
            stats.sessions_opened += 1;
            if chance(&mut rng, shared.abandon_percent) {
                stats.sessions_abandoned += 1;
            } else {
                let close = Shot::close(key);
                let closed = send(
                    &shared,
                    &mut stats,
                    Route::McpDelete,
                    &close,
                    Some(&session),
                )
                .await;
                if !matches!(
                    closed,
                    Some(Answer {
                        status: 200..=299,
                        ..
                    })
                ) {
                    stats.sessions_unclosed += 1;
                }
            }
        }
    }
    stats
}

/// Sends one request, reads its answer, and tallies it.
async fn send(
    shared: &Shared,
    stats: &mut Stats,
    route: Route,
    shot: &Shot,
    session: Option<&str>,
) -> Option<Answer> {
    let mut url = match route {
        Route::Projects => format!("{}/api/v2/projects", shared.base),
        Route::McpInitialize | Route::McpDelete => format!("{}/mcp", shared.base),
    };
    if let Some(query) = &shot.query {
        url = format!("{url}?{query}");
    }
    let mut request = match route {
        Route::Projects => shared.client.get(&url),
        Route::McpInitialize => shared
            .client
            .post(&url)
            .header(ACCEPT, ACCEPT_BOTH)
            .header(CONTENT_TYPE, "application/json")
            .body(INITIALIZE),
        Route::McpDelete => shared
            .client
            .delete(&url)
            .header("mcp-session-id", session.unwrap_or_default())
            .header("mcp-protocol-version", PROTOCOL),
    };
    for authorization in &shot.authorization {
        request = request.header(AUTHORIZATION, authorization.clone());
    }
    if let Some((name, value)) = &shot.other_header {
        request = request.header(name.clone(), value.clone());
    }

    shared.requests.fetch_add(1, Relaxed);
    *stats.route(route) += 1;
    let sent = Utc::now();
    let class = shot.key.as_ref().map_or(shot.class, |k| k.class_at(sent));
    let started = Instant::now();
    let outcome = receive(request, route).await;
    let latency = started.elapsed();
    let received = Utc::now();
    let class = shot
        .key
        .as_ref()
        .map_or(class, |k| k.settle(class, received));
    let key_name = shot.key.as_ref().map_or("-", |k| k.name.as_str());
    let tally = stats.class(class);
    tally.requests += 1;
    tally.latency.record(latency);
    let answer = match outcome {
        Ok(answer) => answer,
        Err(error) => {
            tally.transport_errors += 1;
            if shared.transport_errors.fetch_add(1, Relaxed) < 5 {
                shared.incident(format!(
                    "transport error: {} {} ({}, key {key_name}): {error}",
                    route.name(),
                    shot.kind,
                    class.name()
                ));
            }
            return None;
        }
    };
    let status = answer.status;
    *tally.statuses.entry(status).or_default() += 1;
    let success = (200..300).contains(&status);

    if success && class.must_refuse() {
        shared.wrongly_accepted.fetch_add(1, Relaxed);
        shared.incident(format!(
            "WRONGLY ACCEPTED: {} {status} for a {} request ({}, key {key_name}), sent {}; {}",
            route.name(),
            class.name(),
            shot.kind,
            sent.to_rfc3339_opts(SecondsFormat::Micros, true),
            shot.key.as_ref().map_or_else(String::new, |k| k.describe())
        ));
    }
    if status >= 500 {
        shared.server_errors.fetch_add(1, Relaxed);
        shared.incident(format!(
            "5xx: {} {status} for a {} request ({}, key {key_name}): {}",
            route.name(),
            class.name(),
            shot.kind,
            answer.body.chars().take(300).collect::<String>()
        ));
    } else if !success && class == Class::Valid {
        shared.wrongly_refused.fetch_add(1, Relaxed);
        shared.incident(format!(
            "wrongly refused: {} {status} for a valid request ({}, key {key_name}): {}",
            route.name(),
            shot.kind,
            answer.body.chars().take(300).collect::<String>()
        ));
    }
    if success {
        if let Some(key) = &shot.key {
            key.last_accepted_sent
                .fetch_max(sent.timestamp_micros(), Relaxed);
        }
        match route {
            Route::McpInitialize if !answer.body.contains("\"result\"") => {
                stats.mcp_without_result += 1;
            }
            Route::Projects if !answer.body.contains("prj_1") => stats.projects_bad_body += 1,
            _ => {}
        }
    }
    if !as_contract_says(shot.status, class, status) {
        *stats.unexpected.entry((shot.kind, status)).or_default() += 1;
    }
    Some(answer)
}

/// Whether `status` is the one the wire contract gives: the exact refusal
/// of a malformed or unknown request, a 2xx for a valid key, a 401 for an
/// expired or revoked one, and either of those inside a grace or an edge.
fn as_contract_says(refusal: Option<u16>, class: Class, status: u16) -> bool {
    let success = (200..300).contains(&status);
    match (refusal, class) {
        (Some(want), _) => status == want,
        (None, Class::Valid) => success,
        (None, Class::Expired | Class::Revoked) => status == 401,
        (None, _) => success || status == 401,
    }
}

/// Reads the answer: the whole body, except for an MCP event stream, read
/// up to its first event carrying a JSON-RPC result (at most 64 KiB).
async fn receive(request: reqwest::RequestBuilder, route: Route) -> Result<Answer, String> {
    let mut response = request.send().await.map_err(|e| error_chain(&e))?;
    let status = response.status().as_u16();
    let session = response
        .headers()
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let stream = response
        .headers()
        .get(CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| error_chain(&e))? {
        body.extend_from_slice(&chunk);
        if route == Route::McpInitialize && stream && first_result(&body) {
            break;
        }
        if body.len() > BODY_LIMIT {
            break;
        }
    }
    Ok(Answer {
        status,
        session,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

/// Whether `body` holds a complete SSE event with a JSON-RPC result or error.
fn first_result(body: &[u8]) -> bool {
    let text = String::from_utf8_lossy(body);
    let events: Vec<&str> = text.split("\n\n").collect();
    // The last piece is an event still incomplete (or empty).
    events[..events.len() - 1].iter().any(|event| {
        event.lines().any(|l| {
            l.starts_with("data:") && (l.contains("\"result\"") || l.contains("\"error\""))
        })
    })
}

/// An error and its causes, on one line.
pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_contract_of_each_class() {
        // Malformed and unknown requests: their exact refusal, nothing else.
        assert!(as_contract_says(Some(400), Class::Malformed, 400));
        assert!(!as_contract_says(Some(400), Class::Malformed, 401));
        assert!(as_contract_says(Some(401), Class::Unknown, 401));
        // Valid keys: a 2xx.
        assert!(as_contract_says(None, Class::Valid, 204));
        assert!(!as_contract_says(None, Class::Valid, 429));
        // Expired and revoked keys: a 401.
        assert!(as_contract_says(None, Class::Revoked, 401));
        assert!(!as_contract_says(None, Class::Expired, 403));
        // Inside a grace or across an edge: either.
        for status in [200, 401] {
            assert!(as_contract_says(None, Class::Revoking, status));
            assert!(as_contract_says(None, Class::AtExpiry, status));
        }
        assert!(!as_contract_says(None, Class::Revoking, 500));
    }

    #[test]
    fn an_event_stream_is_read_up_to_its_first_complete_result() {
        assert!(!first_result(b""));
        assert!(!first_result(b"event: message\ndata: {\"result\":{}}"));
        assert!(first_result(b"event: message\ndata: {\"result\":{}}\n\n"));
        assert!(first_result(b"data: {\"error\":{}}\n\nevent: more"));
        assert!(!first_result(b"data: {\"method\":\"ping\"}\n\n"));
    }

    #[test]
    fn an_error_chain_names_every_cause() {
        let error = WithSource(std::io::Error::other("connection reset"));
        assert_eq!(error_chain(&error), "request failed: connection reset");
    }

    #[derive(Debug)]
    struct WithSource(std::io::Error);

    impl std::fmt::Display for WithSource {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("request failed")
        }
    }

    impl std::error::Error for WithSource {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }
}
