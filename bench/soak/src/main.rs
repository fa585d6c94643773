//! A bounded loopback soak of the MCP proxy example.
//!
//! Starts the `mcp_proxy` binary on a fresh SQLite file, makes keys with its
//! own `keys` commands (separate processes, like an operator), then runs
//! `--concurrency` clients for `--duration-secs` against it with a mix of
//! valid, unknown, malformed, expiring and revoked keys, revoking and
//! creating keys while it runs. Every answer is checked against what the
//! driver knew when it sent the request. Prints a summary and exits non-zero
//! on any request wrongly accepted, any 5xx, or a server that died.
//!
//! Run with (or `bench/soak.sh`):
//!
//! ```sh
//! cargo build --release --example mcp_proxy --example soak
//! target/release/examples/soak --duration-secs 180 --concurrency 128 \
//!     --proxy-bin target/release/examples/mcp_proxy
//! ```
//!
//! Everything goes to 127.0.0.1; every loop stops by itself.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, Utc};
use clap::Parser;
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderName, HeaderValue};
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::{Child, Command};
use tokio_util::sync::CancellationToken;
use tower_api_keys::KeyFormat;

/// A bounded loopback soak of the MCP proxy example.
#[derive(Debug, Parser)]
struct Args {
    /// How long the clients run.
    #[arg(long, default_value_t = 180)]
    duration_secs: u64,
    /// Clients sending requests at once.
    #[arg(long, default_value_t = 128)]
    concurrency: usize,
    /// The `mcp_proxy` binary (default: next to this one). It is copied to a
    /// temporary directory first, so a rebuild cannot swap it mid-run.
    #[arg(long, value_name = "PATH")]
    proxy_bin: Option<PathBuf>,
    /// Soak a server already running at this URL (such as
    /// http://127.0.0.1:8080) instead of starting one; needs `--db`.
    #[arg(long, requires = "db")]
    url: Option<String>,
    /// With `--url`: the server's key store, for the `keys` commands.
    #[arg(long)]
    db: Option<String>,
    /// With `--url`: the server's process id, to sample its memory.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Share of the run, in percent, before memory is taken as warmed up.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..100))]
    warmup_percent: u32,
    /// Share of requests, in percent, sent to /mcp (an `initialize`).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(0..=100))]
    mcp_percent: u32,
    /// Share of opened MCP sessions, in percent, left open without a DELETE.
    /// Each stays in the demo upstream until its 5-minute idle timeout, so
    /// any share above 0 makes memory grow for the whole of a shorter run.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=100))]
    abandon_percent: u32,
    /// Seconds between memory samples.
    #[arg(long, default_value_t = 2)]
    sample_secs: u64,
    /// Stop after this many requests even if time remains.
    #[arg(long, default_value_t = 100_000_000)]
    max_requests: u64,
    /// Seed of the request mix (random when omitted; printed either way).
    #[arg(long)]
    seed: Option<u64>,
    /// `RUST_LOG` of the server it starts.
    #[arg(long, default_value = "warn")]
    server_log: String,
}

const PROTOCOL: &str = "2025-06-18";
const ACCEPT_BOTH: &str = "application/json, text/event-stream";
/// After a revocation command returns, the server has this long to refuse
/// the key (its cache follows the change log every 500 ms).
const REVOCATION_GRACE: chrono::TimeDelta = chrono::TimeDelta::seconds(1);
/// The finest step of a stored expiry (microseconds); the system clock is
/// finer, so from the expiry instant plus this a key can no longer pass.
const EXPIRY_RESOLUTION: chrono::TimeDelta = chrono::TimeDelta::microseconds(1);
/// Each request, body included, is cut off after this.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Each `keys` command is killed after this.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);
/// Incidents kept in full for the report.
const INCIDENTS_KEPT: usize = 25;

// ------------------------------------------------------------------ keys

/// A key the driver made, and what it knows of its state.
#[derive(Debug)]
struct Key {
    name: String,
    id: String,
    secret: String,
    /// From here a refusal is acceptable: the key may have expired.
    expiry_from: Option<DateTime<Utc>>,
    /// From here a 2xx is wrong: the key has surely expired.
    expired_from: Option<DateTime<Utc>>,
    revoke_started: OnceLock<DateTime<Utc>>,
    revoke_returned: OnceLock<DateTime<Utc>>,
    /// When the last request answered 2xx was sent (µs since the epoch).
    last_accepted_sent: AtomicI64,
}

impl Key {
    fn new(name: String, id: String, secret: String) -> Self {
        Self {
            name,
            id,
            secret,
            expiry_from: None,
            expired_from: None,
            revoke_started: OnceLock::new(),
            revoke_returned: OnceLock::new(),
            last_accepted_sent: AtomicI64::new(i64::MIN),
        }
    }

    /// The class of a request sent with this key at `at`.
    fn class_at(&self, at: DateTime<Utc>) -> Class {
        if let Some(returned) = self.revoke_returned.get() {
            if at >= *returned + REVOCATION_GRACE {
                return Class::Revoked;
            }
            return Class::Revoking;
        }
        if self.revoke_started.get().is_some_and(|s| at >= *s) {
            return Class::Revoking;
        }
        if self.expired_from.is_some_and(|t| at >= t) {
            return Class::Expired;
        }
        if self.expiry_from.is_some_and(|t| at >= t) {
            return Class::AtExpiry;
        }
        Class::Valid
    }

    /// A valid request whose answer came after a revocation began or the
    /// expiry drew near may fairly have been either.
    fn settle(&self, class: Class, received: DateTime<Utc>) -> Class {
        if class != Class::Valid {
            return class;
        }
        if self.revoke_started.get().is_some_and(|s| *s <= received) {
            Class::Revoking
        } else if self.expiry_from.is_some_and(|t| t <= received) {
            Class::AtExpiry
        } else {
            Class::Valid
        }
    }
}

/// The keys the clients use.
#[derive(Debug, Default)]
struct Keys {
    /// Valid at the start; some are revoked during the run, and keys created
    /// during the run join.
    valid: RwLock<Vec<Arc<Key>>>,
    /// Expiring a few seconds into the run.
    expiring: Vec<Arc<Key>>,
    /// Revoked before the run.
    revoked: Vec<Arc<Key>>,
    /// Well-formed, never issued (a flood of the same bad keys).
    unknown: Vec<String>,
}

impl Keys {
    fn pick_valid(&self, rng: &mut Rng) -> Arc<Key> {
        let valid = self.valid.read().unwrap_or_else(|e| e.into_inner());
        Arc::clone(&valid[rng.below(valid.len())])
    }
}

// --------------------------------------------------------------- classes

/// What the driver expects of a request, known when it is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    /// An active key: must get a 2xx.
    Valid,
    /// A well-formed key never issued: must be refused.
    Unknown,
    /// A token or request shape the contract refuses: must be refused.
    Malformed,
    /// Past its expiry: must be refused.
    Expired,
    /// Revoked at least [`REVOCATION_GRACE`] ago: must be refused.
    Revoked,
    /// Between the start of a revocation and the end of its grace: either.
    Revoking,
    /// Answered across the expiry instant: either.
    AtExpiry,
}

impl Class {
    const ALL: [Class; 7] = [
        Class::Valid,
        Class::Unknown,
        Class::Malformed,
        Class::Expired,
        Class::Revoked,
        Class::Revoking,
        Class::AtExpiry,
    ];

    fn name(self) -> &'static str {
        match self {
            Class::Valid => "valid",
            Class::Unknown => "unknown",
            Class::Malformed => "malformed",
            Class::Expired => "expired",
            Class::Revoked => "revoked",
            Class::Revoking => "revoking (grace)",
            Class::AtExpiry => "at expiry (edge)",
        }
    }

    fn must_refuse(self) -> bool {
        matches!(
            self,
            Class::Unknown | Class::Malformed | Class::Expired | Class::Revoked
        )
    }
}

/// The status a request should get, beyond accepted-or-not.
#[derive(Debug, Clone, Copy)]
enum Expect {
    Success,
    Status(u16),
    Either,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    Projects,
    McpInitialize,
    McpDelete,
}

impl Route {
    fn name(self) -> &'static str {
        match self {
            Route::Projects => "GET /api/v2/projects",
            Route::McpInitialize => "POST /mcp initialize",
            Route::McpDelete => "DELETE /mcp (close session)",
        }
    }
}

// ------------------------------------------------------------ statistics

/// Latencies in µs, log-linear buckets (16 per power of two, ≤ 6% wide).
#[derive(Debug, Clone)]
struct Histogram {
    counts: Vec<u64>,
    total: u64,
}

impl Histogram {
    const SUB: u64 = 16;

    fn new() -> Self {
        Self {
            counts: vec![0; 64 * Self::SUB as usize],
            total: 0,
        }
    }

    fn index(micros: u64) -> usize {
        if micros < Self::SUB {
            return micros as usize;
        }
        let shift = 63 - micros.leading_zeros() - 4;
        let sub = (micros >> shift) - Self::SUB;
        ((u64::from(shift) + 1) * Self::SUB + sub) as usize
    }

    /// The middle of bucket `index`, in µs.
    fn value(index: usize) -> u64 {
        let index = index as u64;
        if index < Self::SUB {
            return index;
        }
        let shift = index / Self::SUB - 1;
        let low = (Self::SUB + index % Self::SUB) << shift;
        low + (1 << shift) / 2
    }

    fn record(&mut self, latency: Duration) {
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.counts[Self::index(micros)] += 1;
        self.total += 1;
    }

    fn merge(&mut self, other: &Self) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.total += other.total;
    }

    /// The `q` quantile in milliseconds.
    fn quantile_ms(&self, q: f64) -> Option<f64> {
        if self.total == 0 {
            return None;
        }
        let rank = ((self.total as f64) * q).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (index, count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return Some(Self::value(index) as f64 / 1000.0);
            }
        }
        None
    }
}

#[derive(Debug, Clone)]
struct ClassStats {
    requests: u64,
    statuses: BTreeMap<u16, u64>,
    transport_errors: u64,
    latency: Histogram,
}

impl ClassStats {
    fn new() -> Self {
        Self {
            requests: 0,
            statuses: BTreeMap::new(),
            transport_errors: 0,
            latency: Histogram::new(),
        }
    }
}

/// One client's tallies, merged at the end.
#[derive(Debug, Clone)]
struct Stats {
    classes: Vec<ClassStats>,
    routes: [u64; 3],
    /// (kind of request, status) pairs that differ from the contract.
    unexpected: BTreeMap<(&'static str, u16), u64>,
    sessions_opened: u64,
    sessions_abandoned: u64,
    /// Sessions whose DELETE was refused (their key was revoked or expired
    /// meanwhile): they stay open in the upstream until its idle timeout.
    sessions_unclosed: u64,
    /// MCP answers with a 2xx but no JSON-RPC result in the first event.
    mcp_without_result: u64,
    /// Project lists with a 2xx but not the expected body.
    projects_bad_body: u64,
}

impl Stats {
    fn new() -> Self {
        Self {
            classes: vec![ClassStats::new(); Class::ALL.len()],
            routes: [0; 3],
            unexpected: BTreeMap::new(),
            sessions_opened: 0,
            sessions_abandoned: 0,
            sessions_unclosed: 0,
            mcp_without_result: 0,
            projects_bad_body: 0,
        }
    }

    fn class(&mut self, class: Class) -> &mut ClassStats {
        let index = Class::ALL.iter().position(|c| *c == class).unwrap_or(0);
        &mut self.classes[index]
    }

    fn merge(&mut self, other: &Self) {
        for (a, b) in self.classes.iter_mut().zip(&other.classes) {
            a.requests += b.requests;
            a.transport_errors += b.transport_errors;
            for (status, n) in &b.statuses {
                *a.statuses.entry(*status).or_default() += n;
            }
            a.latency.merge(&b.latency);
        }
        for (a, b) in self.routes.iter_mut().zip(other.routes) {
            *a += b;
        }
        for (k, n) in &other.unexpected {
            *self.unexpected.entry(*k).or_default() += n;
        }
        self.sessions_opened += other.sessions_opened;
        self.sessions_abandoned += other.sessions_abandoned;
        self.sessions_unclosed += other.sessions_unclosed;
        self.mcp_without_result += other.mcp_without_result;
        self.projects_bad_body += other.projects_bad_body;
    }
}

/// A small fast generator for the request mix (SplitMix64); not for keys.
#[derive(Debug)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn chance(&mut self, percent: u32) -> bool {
        self.below(100) < percent as usize
    }
}

// --------------------------------------------------------------- requests

/// One request to send: its shape and what it should get.
#[derive(Debug)]
struct Shot {
    kind: &'static str,
    class: Class,
    key: Option<Arc<Key>>,
    authorization: Vec<HeaderValue>,
    other_header: Option<(HeaderName, HeaderValue)>,
    query: Option<String>,
    /// The exact refusal of a malformed or unknown request.
    status: Option<u16>,
}

fn value(text: &str) -> HeaderValue {
    HeaderValue::from_str(text).expect("a valid header value")
}

/// A request with `key` in one of the accepted shapes.
fn with_key(rng: &mut Rng, key: Arc<Key>) -> Shot {
    let secret = &key.secret;
    let (kind, authorization, query) = match rng.below(10) {
        0 => ("lowercase scheme", format!("bearer {secret}"), None),
        1 => ("several spaces", format!("Bearer   {secret}"), None),
        2 => (
            "ordinary query",
            format!("Bearer {secret}"),
            Some("page=2&sort=name".to_owned()),
        ),
        _ => ("Bearer", format!("Bearer {secret}"), None),
    };
    Shot {
        kind,
        class: Class::Valid,
        key: Some(key),
        authorization: vec![value(&authorization)],
        other_header: None,
        query,
        status: None,
    }
}

/// A request the contract refuses, built around a real (valid) `key`.
fn malformed(rng: &mut Rng, key: &str) -> Shot {
    let body = &key[4..];
    let bearer = |token: &str| value(&format!("Bearer {token}"));
    let mut other_header = None;
    let mut query = None;
    let (kind, authorization, status): (&'static str, Vec<HeaderValue>, u16) = match rng.below(20) {
        0 => ("no Authorization", vec![], 401),
        1 => ("Basic scheme", vec![value("Basic dXNlcjpwYXNz")], 401),
        2 => ("Token scheme", vec![value(&format!("Token {key}"))], 401),
        3 => ("key without a scheme", vec![value(key)], 401),
        4 => {
            other_header = Some((HeaderName::from_static("x-api-key"), value(key)));
            ("key in X-Api-Key only", vec![], 401)
        }
        5 => ("Bearer alone", vec![value("Bearer")], 400),
        6 => (
            "two Authorization headers",
            vec![bearer(key), bearer(key)],
            400,
        ),
        7 => (
            "a space inside the token",
            vec![bearer(&format!("{} {}", &key[..20], &key[20..]))],
            400,
        ),
        8 => (
            "a trailing second token",
            vec![bearer(&format!("{key} extra"))],
            400,
        ),
        9 => (
            "a '!' outside b64token",
            vec![bearer(&format!("{}!", &key[..46]))],
            400,
        ),
        10 => (
            "raw high bytes",
            vec![HeaderValue::from_bytes(b"Bearer bmc_\xff\xfe\x80").expect("obs-text")],
            400,
        ),
        11 => ("one character short", vec![bearer(&key[..46])], 401),
        12 => ("one character long", vec![bearer(&format!("{key}A"))], 401),
        13 => (
            "'+' from the other alphabet",
            vec![bearer(&format!("bmc_{}+", &body[..42]))],
            401,
        ),
        14 => {
            let last = if body.ends_with('B') { 'C' } else { 'B' };
            (
                "non-canonical last character",
                vec![bearer(&format!("bmc_{}{last}", &body[..42]))],
                401,
            )
        }
        15 => ("another prefix", vec![bearer(&format!("sk_{body}"))], 401),
        16 => {
            query = Some(format!("access_token={key}"));
            ("key in ?access_token=", vec![], 400)
        }
        17 => {
            query = Some(format!("api_key={key}"));
            (
                "key in ?api_key= and a valid header",
                vec![bearer(key)],
                400,
            )
        }
        18 => (
            "a 5 KiB Authorization header",
            vec![bearer(&"a".repeat(5 * 1024))],
            431,
        ),
        _ => {
            query = Some(format!("q={}", "a".repeat(9000)));
            ("a URI longer than 8 KiB", vec![bearer(key)], 414)
        }
    };
    Shot {
        kind,
        class: Class::Malformed,
        key: None,
        authorization,
        other_header,
        query,
        status: Some(status),
    }
}

/// The next request of the mix: about half with valid keys, the rest
/// unknown, malformed, expiring and revoked.
fn next_shot(rng: &mut Rng, keys: &Keys) -> Shot {
    let pick = rng.below(100);
    if pick < 50 {
        let key = keys.pick_valid(rng);
        with_key(rng, key)
    } else if pick < 62 {
        let (kind, secret) = if rng.chance(50) {
            let index = rng.below(keys.unknown.len());
            ("unknown key (repeated)", keys.unknown[index].clone())
        } else {
            let fresh = KeyFormat::default()
                .generate()
                .expect("the OS random source");
            ("unknown key (fresh)", fresh.expose_secret().to_owned())
        };
        Shot {
            kind,
            class: Class::Unknown,
            key: None,
            authorization: vec![value(&format!("Bearer {secret}"))],
            other_header: None,
            query: None,
            status: Some(401),
        }
    } else if pick < 80 {
        let key = keys.pick_valid(rng);
        malformed(rng, &key.secret)
    } else if pick < 90 {
        let key = Arc::clone(&keys.expiring[rng.below(keys.expiring.len())]);
        with_key(rng, key)
    } else {
        let key = Arc::clone(&keys.revoked[rng.below(keys.revoked.len())]);
        with_key(rng, key)
    }
}

/// What every client shares.
#[derive(Debug)]
struct Shared {
    client: reqwest::Client,
    base: String,
    keys: Keys,
    epoch: Instant,
    deadline: Instant,
    stop: CancellationToken,
    mcp_percent: u32,
    abandon_percent: u32,
    max_requests: u64,
    requests: AtomicU64,
    wrongly_accepted: AtomicU64,
    wrongly_refused: AtomicU64,
    server_errors: AtomicU64,
    transport_errors: AtomicU64,
    incidents: Mutex<Vec<String>>,
}

impl Shared {
    fn since_start(&self) -> f64 {
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
async fn run_client(shared: Arc<Shared>, seed: u64) -> Stats {
    let mut rng = Rng(seed);
    let mut stats = Stats::new();
    while Instant::now() < shared.deadline
        && !shared.stop.is_cancelled()
        && shared.requests.load(Relaxed) < shared.max_requests
    {
        let shot = next_shot(&mut rng, &shared.keys);
        let route = if rng.chance(shared.mcp_percent) {
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
            if rng.chance(shared.abandon_percent) {
                stats.sessions_abandoned += 1;
            } else {
                // Closed with the same key, as a client ending its session.
                let close = Shot {
                    kind: "Bearer",
                    class: Class::Valid,
                    authorization: vec![value(&format!("Bearer {}", key.secret))],
                    key: Some(key),
                    other_header: None,
                    query: None,
                    status: None,
                };
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
    stats.routes[route as usize] += 1;
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
            shot.key
                .as_ref()
                .map_or_else(String::new, |k| describe_key(k))
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
    let expect = match (shot.status, class) {
        (Some(status), _) => Expect::Status(status),
        (None, Class::Valid) => Expect::Success,
        (None, Class::Expired | Class::Revoked) => Expect::Status(401),
        (None, _) => Expect::Either,
    };
    let as_expected = match expect {
        Expect::Success => success,
        Expect::Status(want) => status == want,
        Expect::Either => success || status == 401,
    };
    if !as_expected {
        *stats.unexpected.entry((shot.kind, status)).or_default() += 1;
    }
    Some(answer)
}

const INITIALIZE: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"soak","version":"0"}}}"#;

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
        if body.len() > 64 * 1024 {
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

fn describe_key(key: &Key) -> String {
    let at = |t: Option<&DateTime<Utc>>| {
        t.map_or_else(
            || "-".to_owned(),
            |t| t.to_rfc3339_opts(SecondsFormat::Micros, true),
        )
    };
    format!(
        "key {} (id {}): revoke started {}, returned {}, expires from {}",
        key.name,
        key.id,
        at(key.revoke_started.get()),
        at(key.revoke_returned.get()),
        at(key.expired_from.as_ref()),
    )
}

// ------------------------------------------------------- the server process

/// The `mcp_proxy` server as a child process, killed when dropped (also on
/// a panic).
#[derive(Debug)]
struct ServerProcess {
    child: Child,
    pid: u32,
    url: String,
    bootstrap: String,
}

impl ServerProcess {
    async fn start(
        bin: &Path,
        db: &str,
        log: &str,
        logs: Arc<Mutex<LogTally>>,
    ) -> Result<Self, String> {
        let mut child = Command::new(bin)
            .args(["serve", "--listen", "127.0.0.1:0", "--db", db])
            .env("NO_COLOR", "1")
            .env("RUST_LOG", log)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
        let pid = child.id().ok_or("the server exited at once")?;
        let stderr = child.stderr.take().ok_or("no stderr")?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let mut err_lines = BufReader::new(stderr).lines();
        let mut out_lines = BufReader::new(stdout).lines();
        let mut banner = String::new();
        let url = tokio::time::timeout(Duration::from_secs(30), async {
            while let Ok(Some(line)) = err_lines.next_line().await {
                banner.push_str(&line);
                banner.push('\n');
                if let Some(url) = line.strip_prefix("mcp_proxy listening on ") {
                    return Some(url.to_owned());
                }
            }
            None
        })
        .await
        .ok()
        .flatten()
        .ok_or_else(|| format!("the server did not start:\n{banner}"))?;
        // The bootstrap key is printed on stdout before the banner.
        let bootstrap = tokio::time::timeout(Duration::from_secs(5), out_lines.next_line())
            .await
            .ok()
            .and_then(Result::ok)
            .flatten()
            .ok_or("no bootstrap key on the server's stdout")?;
        if !is_key(&bootstrap) {
            return Err("the server's stdout holds something else than a key".into());
        }
        // Drain both pipes to the end, so the server never blocks on them.
        tokio::spawn(async move {
            while let Ok(Some(line)) = err_lines.next_line().await {
                logs.lock().unwrap_or_else(|e| e.into_inner()).add(&line);
            }
        });
        tokio::spawn(async move {
            let mut extra = 0;
            while let Ok(Some(_)) = out_lines.next_line().await {
                extra += 1;
            }
            if extra > 0 {
                eprintln!("the server printed {extra} more lines on stdout");
            }
        });
        Ok(Self {
            child,
            pid,
            url,
            bootstrap,
        })
    }

    /// SIGTERM, then waits up to 15 s; how it ended.
    async fn terminate(mut self) -> String {
        if let Ok(Some(status)) = self.child.try_wait() {
            return format!("had already exited ({status})");
        }
        let started = Instant::now();
        let signalled = Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status()
            .await
            .is_ok_and(|s| s.success());
        if !signalled {
            return "could not be sent SIGTERM; killed".into();
        }
        match tokio::time::timeout(Duration::from_secs(15), self.child.wait()).await {
            Ok(Ok(status)) => format!(
                "stopped on SIGTERM in {} ms ({status})",
                started.elapsed().as_millis()
            ),
            _ => "did not stop within 15 s of SIGTERM; killed".into(),
        }
    }
}

/// The server's warnings and errors, counted by message.
#[derive(Debug, Default)]
struct LogTally {
    lines: u64,
    by_message: BTreeMap<String, u64>,
}

impl LogTally {
    fn add(&mut self, line: &str) {
        self.lines += 1;
        // "<time>  WARN target: message fields..." → "WARN target: message"
        let text = line
            .split_once(" WARN ")
            .map(|(_, rest)| format!("WARN {rest}"))
            .or_else(|| {
                line.split_once(" ERROR ")
                    .map(|(_, rest)| format!("ERROR {rest}"))
            })
            .unwrap_or_else(|| line.to_owned());
        let text = strip_fields(&text);
        if self.by_message.len() < 50 || self.by_message.contains_key(&text) {
            *self.by_message.entry(text).or_default() += 1;
        }
    }
}

/// A log line without its `key=value` fields (key prefixes, ids).
fn strip_fields(text: &str) -> String {
    let words: Vec<&str> = text
        .split(' ')
        .take_while(|w| !w.contains('=') || w.starts_with('='))
        .collect();
    let line = words.join(" ");
    line.chars().take(160).collect()
}

fn is_key(text: &str) -> bool {
    text.starts_with("bmc_") && text.len() == 47
}

// ----------------------------------------------------------- the operator

/// Runs the `keys` commands of the binary, each a process of its own.
#[derive(Debug, Clone)]
struct Operator {
    bin: PathBuf,
    db: String,
}

impl Operator {
    async fn run(&self, args: &[&str]) -> Result<(String, String), String> {
        let output = tokio::time::timeout(
            COMMAND_TIMEOUT,
            Command::new(&self.bin)
                .arg("keys")
                .args(args)
                .args(["--db", &self.db])
                .env("NO_COLOR", "1")
                .stdin(Stdio::null())
                .kill_on_drop(true)
                .output(),
        )
        .await
        .map_err(|_| format!("keys {args:?} did not finish in {COMMAND_TIMEOUT:?}"))?
        .map_err(|e| format!("keys {args:?}: {e}"))?;
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        if !output.status.success() {
            return Err(format!(
                "keys {args:?} failed ({}): {stderr}",
                output.status
            ));
        }
        Ok((stdout, stderr))
    }

    /// `keys create NAME [extra...]`: the key, its id parsed from stderr.
    async fn create(&self, name: &str, extra: &[&str]) -> Result<Key, String> {
        let mut args = vec!["create", name];
        args.extend_from_slice(extra);
        let (stdout, stderr) = self.run(&args).await?;
        let secret = stdout.trim_end_matches('\n');
        if !is_key(secret) || secret.contains('\n') {
            return Err(format!("keys create {name}: stdout is not one key alone"));
        }
        let id = stderr
            .split_once(", id ")
            .and_then(|(_, rest)| rest.split_once(')'))
            .map(|(id, _)| id.to_owned())
            .ok_or_else(|| format!("keys create {name}: no id in {stderr:?}"))?;
        Ok(Key::new(name.to_owned(), id, secret.to_owned()))
    }

    /// `keys revoke ID --reason soak`, noting when it started and returned.
    async fn revoke(&self, key: &Key) -> Result<Duration, String> {
        let started = Instant::now();
        let _ = key.revoke_started.set(Utc::now());
        let outcome = self.run(&["revoke", &key.id, "--reason", "soak"]).await;
        let _ = key.revoke_returned.set(Utc::now());
        outcome.map(|_| started.elapsed())
    }
}

/// Sends `key` to the server until it answers `want` (at most `within`).
async fn wait_status(
    client: &reqwest::Client,
    base: &str,
    key: &str,
    want: u16,
    within: Duration,
) -> Result<(), String> {
    let start = Instant::now();
    loop {
        let status = client
            .get(format!("{base}/api/v2/projects"))
            .bearer_auth(key)
            .send()
            .await
            .map(|r| r.status().as_u16())
            .map_err(|e| error_chain(&e))?;
        if status == want {
            return Ok(());
        }
        if start.elapsed() > within {
            return Err(format!("still {status} after {within:?}, wanted {want}"));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

// ------------------------------------------------------------------ memory

/// The resident memory of `pid`, in KiB.
fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

/// CPU seconds (user + system) used so far by `pid` ("self" for this
/// process); /proc counts in USER_HZ, 100 per second on Linux.
fn cpu_secs(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / 100.0)
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split(' ').take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// Growth after warm-up allowed for a "flat" verdict: 10% of the warmed-up
/// size or 8 MiB, whichever is larger.
fn growth_bound_kib(warm: u64) -> u64 {
    (warm / 10).max(8 * 1024)
}

// -------------------------------------------------------------------- main

/// Removes a directory when dropped.
#[derive(Debug)]
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    match soak(args).await {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => std::process::ExitCode::FAILURE,
        Err(error) => {
            eprintln!("soak: {error}");
            std::process::ExitCode::from(2)
        }
    }
}

/// The whole soak; `Ok(passed)`.
async fn soak(args: Args) -> Result<bool, String> {
    let seed = match args.seed {
        Some(seed) => seed,
        None => getrandom::u64().map_err(|e| e.to_string())?,
    };
    let proxy_bin = match &args.proxy_bin {
        Some(path) => path.clone(),
        None => std::env::current_exe()
            .map_err(|e| e.to_string())?
            .with_file_name("mcp_proxy"),
    };
    let nanos = Utc::now().timestamp_nanos_opt().unwrap_or_default();
    let dir = TempDir(std::env::temp_dir().join(format!("soak-{}-{nanos}", std::process::id())));
    std::fs::create_dir_all(&dir.0).map_err(|e| e.to_string())?;
    let bin = dir.0.join("mcp_proxy");
    std::fs::copy(&proxy_bin, &bin)
        .map_err(|e| format!("cannot copy {}: {e}", proxy_bin.display()))?;
    let logs = Arc::new(Mutex::new(LogTally::default()));

    let (server, base, db, pid) = match &args.url {
        Some(url) => {
            let db = args.db.clone().ok_or("--url needs --db")?;
            (
                None,
                url.trim_end_matches('/').to_owned(),
                db,
                args.server_pid,
            )
        }
        None => {
            let db = format!("sqlite:{}", dir.0.join("keys.db").display());
            let server =
                ServerProcess::start(&bin, &db, &args.server_log, Arc::clone(&logs)).await?;
            let (base, pid) = (server.url.clone(), Some(server.pid));
            (Some(server), base, db, pid)
        }
    };
    if !base.starts_with("http://127.0.0.1:") {
        return Err(format!("{base} is not on 127.0.0.1"));
    }
    let operator = Operator {
        bin: bin.clone(),
        db,
    };
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(REQUEST_TIMEOUT)
        .connect_timeout(Duration::from_secs(5))
        .tcp_nodelay(true)
        .build()
        .map_err(|e| e.to_string())?;
    let health = client
        .get(format!("{base}/healthz"))
        .send()
        .await
        .map_err(|e| error_chain(&e))?;
    if !health.status().is_success() {
        return Err(format!("{base}/healthz answered {}", health.status()));
    }
    eprintln!("soak: server at {base}; making keys with `keys create` ...");

    // Keys, made as an operator would, and each used once so the server
    // caches it before it is revoked or expires.
    let mut valid = Vec::new();
    if let Some(server) = &server {
        valid.push(Arc::new(Key::new(
            "bootstrap".into(),
            "-".into(),
            server.bootstrap.clone(),
        )));
    }
    for i in 0..14 {
        valid.push(Arc::new(
            operator.create(&format!("soak-valid-{i:02}"), &[]).await?,
        ));
    }
    let mut revoke_during = Vec::new();
    for i in 0..6 {
        let key = Arc::new(
            operator
                .create(&format!("soak-revoke-during-{i}"), &[])
                .await?,
        );
        revoke_during.push(Arc::clone(&key));
        valid.push(key);
    }
    let mut revoked = Vec::new();
    for i in 0..5 {
        revoked.push(Arc::new(
            operator
                .create(
                    &format!("soak-revoked-before-{i}"),
                    &["--scope", "projects:read", "--scope", "mcp"],
                )
                .await?,
        ));
    }
    for key in valid.iter().chain(&revoked) {
        wait_status(&client, &base, &key.secret, 200, Duration::from_secs(2))
            .await
            .map_err(|e| format!("new key {}: {e}", key.name))?;
    }
    for key in &revoked {
        operator.revoke(key).await?;
    }
    // Expiring keys, made last: two with --expires-in (the instant is known
    // to within the command's run), three with --expires-at.
    let mut expiring = Vec::new();
    for (i, secs) in [5i64, 8].into_iter().enumerate() {
        let before = Utc::now();
        let mut key = operator
            .create(
                &format!("soak-expires-in-{i}"),
                &["--expires-in", &format!("{secs}s")],
            )
            .await?;
        let after = Utc::now();
        key.expiry_from = Some(before + chrono::TimeDelta::seconds(secs) - EXPIRY_RESOLUTION);
        key.expired_from = Some(after + chrono::TimeDelta::seconds(secs) + EXPIRY_RESOLUTION);
        expiring.push(Arc::new(key));
    }
    for (i, secs) in [11i64, 14, 17].into_iter().enumerate() {
        let at = Utc::now() + chrono::TimeDelta::seconds(secs);
        let at = DateTime::from_timestamp(at.timestamp(), 0).unwrap_or(at);
        let mut key = operator
            .create(
                &format!("soak-expires-at-{i}"),
                &[
                    "--expires-at",
                    &at.to_rfc3339_opts(SecondsFormat::Secs, true),
                ],
            )
            .await?;
        key.expiry_from = Some(at);
        key.expired_from = Some(at + EXPIRY_RESOLUTION);
        expiring.push(Arc::new(key));
    }
    for key in &expiring {
        wait_status(&client, &base, &key.secret, 200, Duration::from_secs(2))
            .await
            .map_err(|e| format!("new key {}: {e}", key.name))?;
    }
    // The run starts once every pre-run revocation is past its grace.
    if let Some(last) = revoked.iter().filter_map(|k| k.revoke_returned.get()).max() {
        let wait = (*last + REVOCATION_GRACE - Utc::now())
            .to_std()
            .unwrap_or_default();
        tokio::time::sleep(wait + Duration::from_millis(10)).await;
    }
    let unknown = (0..64)
        .map(|_| {
            KeyFormat::default()
                .generate()
                .map(|k| k.expose_secret().to_owned())
                .map_err(|e| e.to_string())
        })
        .collect::<Result<Vec<_>, _>>()?;

    let rss_before = pid.and_then(rss_kib);
    let server_cpu_before = pid.and_then(|p| cpu_secs(&p.to_string()));
    let own_cpu_before = cpu_secs("self");
    let load_before = load_average();
    let duration = Duration::from_secs(args.duration_secs);
    let epoch = Instant::now();
    let started_at = Utc::now();
    let shared = Arc::new(Shared {
        client: client.clone(),
        base: base.clone(),
        keys: Keys {
            valid: RwLock::new(valid),
            expiring,
            revoked,
            unknown,
        },
        epoch,
        deadline: epoch + duration,
        stop: CancellationToken::new(),
        mcp_percent: args.mcp_percent,
        abandon_percent: args.abandon_percent,
        max_requests: args.max_requests,
        requests: AtomicU64::new(0),
        wrongly_accepted: AtomicU64::new(0),
        wrongly_refused: AtomicU64::new(0),
        server_errors: AtomicU64::new(0),
        transport_errors: AtomicU64::new(0),
        incidents: Mutex::new(Vec::new()),
    });
    eprintln!(
        "soak: {} s at concurrency {}, seed {seed}, load average {load_before}",
        args.duration_secs, args.concurrency
    );

    // Ctrl-C or SIGTERM ends the run early (the summary still prints, and
    // the server is stopped).
    let interrupted = Arc::new(AtomicU64::new(0));
    {
        let (stop, interrupted) = (shared.stop.clone(), Arc::clone(&interrupted));
        tokio::spawn(async move {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
            let term = async {
                match term.as_mut() {
                    Some(term) => {
                        term.recv().await;
                    }
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                () = term => {}
                () = stop.cancelled() => return,
            }
            interrupted.store(1, Relaxed);
            stop.cancel();
        });
    }

    // Memory samples, every few seconds until the run ends.
    let samples: Arc<Mutex<Vec<(f64, u64)>>> = Arc::default();
    let sampler = pid.map(|pid| {
        let (samples, shared) = (Arc::clone(&samples), Arc::clone(&shared));
        let every = Duration::from_secs(args.sample_secs.max(1));
        let most = args.duration_secs / every.as_secs() + 2;
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            for _ in 0..most {
                tick.tick().await;
                if let Some(kib) = rss_kib(pid) {
                    samples
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push((shared.since_start(), kib));
                }
                if Instant::now() >= shared.deadline || shared.stop.is_cancelled() {
                    break;
                }
            }
        })
    });

    // Progress on stderr every 10 s.
    let progress = {
        let shared = Arc::clone(&shared);
        let samples = Arc::clone(&samples);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(10));
            tick.tick().await;
            for _ in 0..(duration.as_secs() / 10 + 1) {
                tokio::select! {
                    _ = tick.tick() => {}
                    () = shared.stop.cancelled() => break,
                }
                if Instant::now() >= shared.deadline {
                    break;
                }
                let rss = samples
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .last()
                    .map_or_else(|| "-".into(), |(_, kib)| format!("{:.1} MiB", mib(*kib)));
                let requests = shared.requests.load(Relaxed);
                eprintln!(
                    "[{:5.0} s] {requests} requests ({:.0}/s), wrongly accepted {}, 5xx {}, wrongly refused {}, transport errors {}, server RSS {rss}, load {}",
                    shared.since_start(),
                    requests as f64 / shared.since_start(),
                    shared.wrongly_accepted.load(Relaxed),
                    shared.server_errors.load(Relaxed),
                    shared.wrongly_refused.load(Relaxed),
                    shared.transport_errors.load(Relaxed),
                    load_average(),
                );
            }
        })
    };

    // The operator during the run: at 25%, 50% and 75%, revokes two valid
    // keys and creates one that joins the valid pool.
    let during = {
        let (shared, operator) = (Arc::clone(&shared), operator.clone());
        tokio::spawn(async move {
            let mut log = Vec::new();
            for (step, pair) in revoke_during.chunks(2).enumerate() {
                let at = duration.mul_f64(0.25 * (step + 1) as f64);
                tokio::select! {
                    () = tokio::time::sleep_until((shared.epoch + at).into()) => {}
                    () = shared.stop.cancelled() => break,
                }
                for key in pair {
                    match operator.revoke(key).await {
                        Ok(took) => log.push(format!(
                            "revoked {} at +{:.1} s ({} ms)",
                            key.name,
                            shared.since_start() - took.as_secs_f64(),
                            took.as_millis()
                        )),
                        Err(error) => return Err(error),
                    }
                }
                let name = format!("soak-created-during-{step}");
                let key = operator.create(&name, &[]).await?;
                log.push(format!("created {name} at +{:.1} s", shared.since_start()));
                shared
                    .keys
                    .valid
                    .write()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(Arc::new(key));
            }
            Ok::<_, String>(log)
        })
    };

    let clients: Vec<_> = (0..args.concurrency)
        .map(|i| {
            let shared = Arc::clone(&shared);
            tokio::spawn(run_client(
                shared,
                seed.wrapping_add(i as u64 * 0x1000_0001),
            ))
        })
        .collect();
    let mut stats = Stats::new();
    // Clients stop at the deadline; each request is cut off at 30 s.
    let hard_stop = epoch + duration + REQUEST_TIMEOUT + Duration::from_secs(30);
    let mut stuck = 0;
    for handle in clients {
        let abort = handle.abort_handle();
        match tokio::time::timeout_at(hard_stop.into(), handle).await {
            Ok(Ok(client_stats)) => stats.merge(&client_stats),
            Ok(Err(error)) => return Err(format!("a client failed: {error}")),
            Err(_) => {
                abort.abort();
                stuck += 1;
            }
        }
    }
    let elapsed = epoch.elapsed();
    shared.stop.cancel();
    let load_after = load_average();
    let cpu_share = |before: Option<f64>, after: Option<f64>| match (before, after) {
        (Some(b), Some(a)) => format!("{:.0}% of a core", (a - b) / elapsed.as_secs_f64() * 100.0),
        _ => "?".to_owned(),
    };
    let server_cpu = cpu_share(
        server_cpu_before,
        pid.and_then(|p| cpu_secs(&p.to_string())),
    );
    let own_cpu = cpu_share(own_cpu_before, cpu_secs("self"));
    let operator_log = match during.await {
        Ok(Ok(log)) => log,
        Ok(Err(error)) => return Err(format!("the operator failed during the run: {error}")),
        Err(error) => return Err(format!("the operator task failed: {error}")),
    };
    let _ = progress.await;
    if let Some(sampler) = sampler {
        let _ = sampler.await;
    }
    let server_alive = match &server {
        Some(_) => pid.and_then(rss_kib).is_some(),
        None => true,
    };
    let listed = operator.run(&["list"]).await.map(|(stdout, _)| stdout);
    let shutdown = match server {
        Some(server) => Some(server.terminate().await),
        None => None,
    };

    // ------------------------------------------------------------ report
    let requests: u64 = stats.classes.iter().map(|c| c.requests).sum();
    let wrongly_accepted = shared.wrongly_accepted.load(Relaxed);
    let server_errors = shared.server_errors.load(Relaxed);
    let wrongly_refused = shared.wrongly_refused.load(Relaxed);
    let transport_errors = shared.transport_errors.load(Relaxed);
    println!();
    println!(
        "== soak of mcp_proxy: {:.0} s, concurrency {}, {}% of requests to /mcp, seed {seed}",
        elapsed.as_secs_f64(),
        args.concurrency,
        args.mcp_percent
    );
    println!(
        "   started {}, load average {load_before} at start, {load_after} at end ({} cores)",
        started_at.to_rfc3339_opts(SecondsFormat::Secs, true),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!("   CPU: server {server_cpu}, this driver {own_cpu}");
    println!();
    println!(
        "requests            {requests:>10}   ({:.0}/s)",
        requests as f64 / elapsed.as_secs_f64()
    );
    println!(
        "wrongly accepted    {wrongly_accepted:>10}   (2xx for an unknown, malformed, expired or revoked key; must be 0)"
    );
    println!("5xx                 {server_errors:>10}   (the store is up throughout; must be 0)");
    println!("wrongly refused     {wrongly_refused:>10}   (non-2xx, below 500, for a valid key)");
    println!("transport errors    {transport_errors:>10}");
    println!();
    let mut columns: Vec<u16> = stats
        .classes
        .iter()
        .flat_map(|c| c.statuses.keys().copied())
        .collect();
    columns.sort_unstable();
    columns.dedup();
    let mut header = format!("{:<18} {:>9}", "class", "requests");
    for status in &columns {
        header.push_str(&format!(" {status:>8}"));
    }
    header.push_str(&format!(" {:>8} {:>8} {:>8}", "errors", "p50 ms", "p99 ms"));
    println!("{header}");
    for (class, tally) in Class::ALL.iter().zip(&stats.classes) {
        let mut row = format!("{:<18} {:>9}", class.name(), tally.requests);
        for status in &columns {
            row.push_str(&format!(
                " {:>8}",
                tally.statuses.get(status).copied().unwrap_or(0)
            ));
        }
        let q = |q| {
            tally
                .latency
                .quantile_ms(q)
                .map_or_else(|| "-".into(), |v| format!("{v:.2}"))
        };
        row.push_str(&format!(
            " {:>8} {:>8} {:>8}",
            tally.transport_errors,
            q(0.5),
            q(0.99)
        ));
        println!("{row}");
    }
    println!();
    for (route, count) in [Route::Projects, Route::McpInitialize, Route::McpDelete]
        .iter()
        .zip(stats.routes)
    {
        println!("{:<30} {count:>10}", route.name());
    }
    println!(
        "MCP sessions opened {}, left open without a DELETE {} ({}%), DELETE refused {}; initialize 2xx without a result: {}; project lists with a wrong body: {}",
        stats.sessions_opened,
        stats.sessions_abandoned,
        args.abandon_percent,
        stats.sessions_unclosed,
        stats.mcp_without_result,
        stats.projects_bad_body
    );
    if !stats.unexpected.is_empty() {
        println!();
        println!("statuses other than the contract's (not failures unless 2xx or 5xx above):");
        for ((kind, status), count) in &stats.unexpected {
            println!("  {kind:<40} {status}  x{count}");
        }
    }

    println!();
    println!("revocations and expiries (last 2xx, by send time, relative to when it had to stop):");
    let mut keys_report: Vec<Arc<Key>> = shared
        .keys
        .valid
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .filter(|k| k.revoke_returned.get().is_some())
        .cloned()
        .collect();
    keys_report.extend(shared.keys.expiring.iter().cloned());
    keys_report.extend(shared.keys.revoked.iter().cloned());
    for key in &keys_report {
        let last = key.last_accepted_sent.load(Relaxed);
        let (what, deadline) = match (key.revoke_returned.get(), key.expired_from) {
            (Some(returned), _) => ("revoke returned", *returned),
            (None, Some(expired)) => ("expiry", expired),
            (None, None) => continue,
        };
        let last = if last == i64::MIN {
            "never 2xx in the run".to_owned()
        } else {
            let delta = (last - deadline.timestamp_micros()) as f64 / 1000.0;
            format!("last 2xx sent {delta:+.1} ms from the {what}")
        };
        println!("  {:<24} {last}", key.name);
    }
    for line in &operator_log {
        println!("  {line}");
    }

    let samples = samples.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let mut memory_flat = true;
    println!();
    if samples.is_empty() {
        println!("server memory: not measured (give --server-pid with --url)");
    } else {
        let warm_at = elapsed.as_secs_f64() * f64::from(args.warmup_percent) / 100.0;
        let warm = samples
            .iter()
            .find(|(t, _)| *t >= warm_at)
            .or(samples.last())
            .copied()
            .unwrap_or_default();
        let after: Vec<(f64, u64)> = samples
            .iter()
            .copied()
            .filter(|(t, _)| *t >= warm.0)
            .collect();
        let end = after.last().copied().unwrap_or(warm);
        let max = after.iter().map(|(_, k)| *k).max().unwrap_or(warm.1);
        let bound = growth_bound_kib(warm.1);
        let growth = max.saturating_sub(warm.1);
        memory_flat = growth <= bound;
        let slope = trend_mib_per_min(&after);
        println!(
            "server memory (VmRSS every {} s, {} samples): before the run {}, end of warm-up (+{:.0} s) {:.1} MiB, end {:.1} MiB, max after warm-up {:.1} MiB",
            args.sample_secs,
            samples.len(),
            rss_before.map_or_else(|| "?".into(), |k| format!("{:.1} MiB", mib(k))),
            warm.0,
            mib(warm.1),
            mib(end.1),
            mib(max),
        );
        println!(
            "  growth after warm-up {:+.1} MiB, bound max(10%, 8 MiB) = {:.1} MiB: {}; trend after warm-up {slope:+.2} MiB/min",
            mib(growth),
            mib(bound),
            if memory_flat { "flat" } else { "GROWING" },
        );
        let per_request =
            (requests as f64 * (1.0 - f64::from(args.warmup_percent) / 100.0)).max(1.0);
        println!(
            "  (a leak of {:.0} bytes per request after warm-up would exceed the bound)",
            bound as f64 * 1024.0 / per_request
        );
        let series: Vec<String> = samples
            .iter()
            .step_by((samples.len() / 12).max(1))
            .map(|(t, k)| format!("{t:.0}s:{:.1}", mib(*k)))
            .collect();
        println!("  series (s:MiB) {}", series.join(" "));
    }

    println!();
    let logs = logs.lock().unwrap_or_else(|e| e.into_inner());
    println!(
        "server log: {} lines on stderr after start-up at RUST_LOG={}",
        logs.lines, args.server_log
    );
    for (message, count) in &logs.by_message {
        println!("  {count:>9}  {message}");
    }
    if let Ok(listed) = &listed {
        let rows: Vec<&str> = listed.lines().skip(1).collect();
        let count = |what: &str| rows.iter().filter(|r| r.contains(what)).count();
        println!(
            "keys list after the run: {} keys, {} active, {} expired, {} revoked",
            rows.len(),
            rows.iter()
                .filter(|r| r.trim_end().ends_with("active"))
                .count(),
            rows.iter()
                .filter(|r| r.trim_end().ends_with("expired"))
                .count(),
            count("  revoked"),
        );
    }
    if let Some(shutdown) = &shutdown {
        println!("server {shutdown}");
    }

    let mut failures = Vec::new();
    if wrongly_accepted > 0 {
        failures.push(format!("{wrongly_accepted} requests wrongly accepted"));
    }
    if server_errors > 0 {
        failures.push(format!("{server_errors} responses 5xx"));
    }
    if !server_alive {
        failures.push("the server died during the run".to_owned());
    }
    if stuck > 0 {
        failures.push(format!("{stuck} clients did not stop in time"));
    }
    if interrupted.load(Relaxed) > 0 {
        failures.push("interrupted".to_owned());
    }
    let incidents = shared.incidents.lock().unwrap_or_else(|e| e.into_inner());
    if !incidents.is_empty() {
        println!();
        println!("incidents (first {INCIDENTS_KEPT}):");
        for incident in incidents.iter() {
            println!("  {incident}");
        }
    }
    println!();
    if failures.is_empty() {
        println!(
            "PASS: 0 wrongly accepted, 0 5xx; memory {}",
            if samples.is_empty() {
                "not measured"
            } else if memory_flat {
                "flat"
            } else {
                "GROWING (see above)"
            }
        );
    } else {
        println!("FAIL: {}", failures.join(", "));
    }
    Ok(failures.is_empty())
}

/// Least-squares slope of the samples, in MiB per minute.
fn trend_mib_per_min(samples: &[(f64, u64)]) -> f64 {
    let n = samples.len() as f64;
    if samples.len() < 2 {
        return 0.0;
    }
    let mean_t = samples.iter().map(|(t, _)| t).sum::<f64>() / n;
    let mean_m = samples.iter().map(|(_, k)| mib(*k)).sum::<f64>() / n;
    let (mut num, mut den) = (0.0, 0.0);
    for (t, k) in samples {
        num += (t - mean_t) * (mib(*k) - mean_m);
        den += (t - mean_t) * (t - mean_t);
    }
    if den == 0.0 { 0.0 } else { num / den * 60.0 }
}
