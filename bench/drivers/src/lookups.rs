//! What the layer spares the database, counted store call by store call:
//! the request patterns shared by `tests/lookups.rs` (which asserts the
//! targets) and `benches/lookups.rs` (which prints them as a table).
//!
//! Keys are seeded into the store before the measured [`ApiKeys`] is built,
//! so its cache starts cold and its change-log follower has nothing to
//! replay: every lookup counted is one a request caused.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::routing::get;
use http::header::AUTHORIZATION;
use http::{HeaderValue, Request};
use tower::ServiceExt as _;
use tower::util::MapRequestLayer;
use tower_api_keys::key::KeyFormat;
use tower_api_keys::limit::{ClientAddress, FailedAttemptLimit};
use tower_api_keys::test_util::{ScriptedStore, StoreCalls, StoreMethod};
use tower_api_keys::{ApiKeys, ApiKeysBuilder, MemoryStore, NewKey};

/// Requests in flight at once in the in-process floods.
pub const FLOOD_CONCURRENCY: usize = 8;

/// The store every scenario counts: a [`MemoryStore`] whose lookups can be
/// held until released, counting every call made to it.
pub type Store = ScriptedStore<Arc<MemoryStore>>;

/// An app over a counted store, with `valid_keys` keys already in it.
#[derive(Debug)]
pub struct Subject {
    /// The counted store the layer looks keys up in.
    pub store: Arc<Store>,
    /// The keys under measurement, built after the seeding.
    pub keys: ApiKeys,
    /// The valid keys in the store.
    pub secrets: Vec<String>,
    /// `GET /api/v2/projects` behind the layer.
    pub app: Router,
    /// Requests that reached the app, counted outside the layer.
    pub arrived: Arc<AtomicU64>,
}

impl Subject {
    /// Seeds `valid_keys` keys, then builds the measured keys with
    /// `configure` applied to their builder.
    pub async fn new(
        valid_keys: usize,
        configure: impl FnOnce(ApiKeysBuilder) -> ApiKeysBuilder,
    ) -> Self {
        let memory = Arc::new(MemoryStore::new());
        let seeder = ApiKeys::builder(Arc::clone(&memory))
            .build()
            .expect("seeder");
        let mut secrets = Vec::with_capacity(valid_keys);
        for i in 0..valid_keys {
            let created = seeder
                .create(NewKey::new("acct", format!("key {i}")))
                .await
                .expect("create");
            secrets.push(created.secret.expose_secret().to_owned());
        }
        seeder.shutdown().await;

        let store = Arc::new(ScriptedStore::wrap(memory));
        let keys = configure(ApiKeys::builder(Arc::clone(&store)))
            .build()
            .expect("build");
        // The change-log follower starts by reading the log's head; wait for
        // it so that nothing it does afterwards can race a first lookup.
        for _ in 0..1000 {
            if store.calls().changes > 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(store.calls().changes > 0, "the follower never started");
        tokio::time::sleep(Duration::from_millis(50)).await;

        let arrived = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&arrived);
        let app = Router::new()
            .route("/api/v2/projects", get(|| async { "ok" }))
            .route_layer(keys.layer())
            .layer(MapRequestLayer::new(move |request: Request<Body>| {
                counter.fetch_add(1, Ordering::Relaxed);
                request
            }));
        Self {
            store,
            keys,
            secrets,
            app,
            arrived,
        }
    }

    /// Store lookups by hash so far.
    pub fn lookups(&self) -> u64 {
        self.store.calls().find_by_hash
    }

    /// Serves the app on a free loopback port, with peer addresses.
    pub async fn serve(&self) -> SocketAddr {
        test_support::serve_with_peer_addresses(self.app.clone()).await
    }
}

/// `Bearer <secret>`.
pub fn bearer(secret: &str) -> HeaderValue {
    HeaderValue::from_str(&format!("Bearer {secret}")).expect("header value")
}

/// A well-formed key that is in no store.
pub fn unknown_key() -> String {
    KeyFormat::default()
        .generate()
        .expect("random bytes")
        .expose_secret()
        .to_owned()
}

/// The `Authorization` value of request number `i`.
pub type Auth = Arc<dyn Fn(usize) -> HeaderValue + Send + Sync>;

/// How a run went: statuses, lookups and every store call made meanwhile.
#[derive(Debug, Clone, Copy, Default)]
pub struct Run {
    /// Requests sent.
    pub requests: u64,
    /// Answered 200.
    pub ok: u64,
    /// Answered 401.
    pub unauthorized: u64,
    /// Answered 429.
    pub throttled: u64,
    /// Answered anything else.
    pub other: u64,
    /// Every store call made during the run.
    pub calls: StoreCalls,
    /// How long the run took.
    pub elapsed: Duration,
}

impl Run {
    /// Store lookups by hash during the run.
    pub fn lookups(&self) -> u64 {
        self.calls.find_by_hash
    }
}

#[derive(Default)]
struct Statuses {
    ok: AtomicU64,
    unauthorized: AtomicU64,
    throttled: AtomicU64,
    other: AtomicU64,
}

impl Statuses {
    fn note(&self, status: u16) {
        let counter = match status {
            200 => &self.ok,
            401 => &self.unauthorized,
            429 => &self.throttled,
            _ => &self.other,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// Where requests go.
#[derive(Debug, Clone)]
pub enum Transport {
    /// Real HTTP to the app served on this loopback address.
    Http(reqwest::Client, SocketAddr),
    /// The app called in this process (`tower::ServiceExt::oneshot`), as
    /// from this peer address: the same layer without sockets, for runs too
    /// long to make over HTTP in a test.
    InProcess(Router, SocketAddr),
}

impl Transport {
    /// Serves the subject's app on loopback and sends to it over HTTP.
    pub async fn http(subject: &Subject) -> Self {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .expect("client");
        Self::Http(client, subject.serve().await)
    }

    /// Calls the subject's app in this process.
    pub fn in_process(subject: &Subject) -> Self {
        Self::InProcess(
            subject.app.clone(),
            "127.0.0.1:40000".parse().expect("addr"),
        )
    }

    async fn send(&self, authorization: HeaderValue) -> u16 {
        match self {
            Self::Http(client, addr) => client
                .get(format!("http://{addr}/api/v2/projects"))
                .header(AUTHORIZATION, authorization)
                .send()
                .await
                .expect("HTTP request")
                .status()
                .as_u16(),
            Self::InProcess(app, peer) => {
                let mut request = Request::get("/api/v2/projects")
                    .header(AUTHORIZATION, authorization)
                    .body(Body::empty())
                    .expect("request");
                request.extensions_mut().insert(ConnectInfo(*peer));
                app.clone()
                    .oneshot(request)
                    .await
                    .expect("infallible")
                    .status()
                    .as_u16()
            }
        }
    }
}

/// Sends `n` requests from `concurrency` tasks, request `i` carrying
/// `auth(i)`; with `spread`, request `i` is not sent before `i / n` of it has
/// passed, so the rate is `n / spread`.
pub async fn drive(
    subject: &Subject,
    transport: &Transport,
    n: usize,
    concurrency: usize,
    spread: Option<Duration>,
    auth: Auth,
) -> Run {
    let before = subject.store.calls();
    let statuses = Arc::new(Statuses::default());
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..concurrency.max(1))
        .map(|_| {
            let (transport, auth, next, statuses) = (
                transport.clone(),
                Arc::clone(&auth),
                Arc::clone(&next),
                Arc::clone(&statuses),
            );
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        break;
                    }
                    if let Some(spread) = spread {
                        let due = started + spread.mul_f64(i as f64 / n as f64);
                        tokio::time::sleep_until(due.into()).await;
                    }
                    statuses.note(transport.send(auth(i)).await);
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("request task");
    }
    let elapsed = started.elapsed();
    Run {
        requests: n as u64,
        ok: statuses.ok.load(Ordering::Relaxed),
        unauthorized: statuses.unauthorized.load(Ordering::Relaxed),
        throttled: statuses.throttled.load(Ordering::Relaxed),
        other: statuses.other.load(Ordering::Relaxed),
        calls: subject.store.calls().since(&before),
        elapsed,
    }
}

/// Cycles through the subject's valid keys.
pub fn valid_keys(subject: &Subject) -> Auth {
    let values: Vec<HeaderValue> = subject.secrets.iter().map(|s| bearer(s)).collect();
    Arc::new(move |i| values[i % values.len()].clone())
}

/// Always the same key.
pub fn one_key(secret: &str) -> Auth {
    let value = bearer(secret);
    Arc::new(move |_| value.clone())
}

/// A new well-formed unknown key on every request, made on the spot (so the
/// flood itself holds no memory).
pub fn distinct_unknown_keys() -> Auth {
    Arc::new(|_| bearer(&unknown_key()))
}

/// How many periods of length `period` begin within `elapsed` (counting
/// the first at zero): the most lookups of one unknown key whose
/// negative-cache entry lives `period`, or the most last-used batches
/// written one per `period`.
pub fn periods_begun(elapsed: Duration, period: Duration) -> u64 {
    (elapsed.as_secs_f64() / period.as_secs_f64()).floor() as u64 + 1
}

/// `N` requests over `keys` valid keys, over real HTTP.
pub async fn many_keys(keys: usize, requests: usize, concurrency: usize) -> Run {
    let subject = Subject::new(keys, |b| b).await;
    let transport = Transport::http(&subject).await;
    let auth = valid_keys(&subject);
    drive(&subject, &transport, requests, concurrency, None, auth).await
}

/// `requests` first requests with one key, all in flight at once: the
/// store's lookup is held until every request has reached the app, then
/// released. Returns the run and how many requests had arrived while the
/// lookup was held.
pub async fn concurrent_first_requests(requests: usize, transport: &str) -> (Run, u64) {
    let subject = Subject::new(1, |b| b.lookup_timeout(Duration::from_secs(120))).await;
    let transport = match transport {
        "http" => Transport::http(&subject).await,
        _ => Transport::in_process(&subject),
    };
    subject.store.gate(StoreMethod::FindByHash).close();
    let auth = one_key(&subject.secrets[0]);
    let (store, arrived) = (Arc::clone(&subject.store), Arc::clone(&subject.arrived));
    let target = requests as u64;
    let opener = tokio::spawn(async move {
        // Bounded: give up holding after 60 s, whatever arrived.
        for _ in 0..6000 {
            if arrived.load(Ordering::Relaxed) >= target {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let held = arrived.load(Ordering::Relaxed);
        store.gate(StoreMethod::FindByHash).open();
        held
    });
    let run = drive(&subject, &transport, requests, requests, None, auth).await;
    let held = opener.await.expect("opener");
    (run, held)
}

/// `requests` requests with one unknown key, spread over `spread`, with the
/// negative cache keeping an unknown key for `negative_ttl`; in process.
pub async fn one_unknown_key(
    requests: usize,
    negative_ttl: Duration,
    spread: Option<Duration>,
) -> Run {
    let subject = Subject::new(0, |b| b.negative_cache_ttl(negative_ttl)).await;
    let transport = Transport::in_process(&subject);
    let auth = one_key(&unknown_key());
    drive(
        &subject,
        &transport,
        requests,
        FLOOD_CONCURRENCY,
        spread,
        auth,
    )
    .await
}

/// A flood of distinct unknown keys, and what it leaves behind.
#[derive(Debug, Clone)]
pub struct Flood {
    /// One run per flood, each of `requests` new keys.
    pub runs: Vec<Run>,
    /// Entries of the known-key and unknown-key caches after the flood.
    pub entries: (u64, u64),
    /// The caches' capacities (known, unknown).
    pub capacity: (u64, u64),
    /// Lookups made by 100 requests with the valid key, after the flood.
    pub valid_lookups_after: u64,
    /// Status of those requests that were not 200.
    pub valid_refused_after: u64,
    /// Resident memory (kB) before the first flood and after each.
    pub rss_kb: Vec<Option<u64>>,
}

/// `floods` times `requests` requests, each with a new well-formed unknown
/// key, after one valid key is warm; optionally with a failed-attempt limit
/// on the client address (all requests come from one address). In process.
pub async fn distinct_unknown_keys_flood(
    floods: usize,
    requests: usize,
    negative_capacity: u64,
    failed_attempt_limit: Option<u32>,
) -> Flood {
    let capacity = 10_000;
    let subject = Subject::new(1, |b| {
        let b = b
            .cache_capacity(capacity)
            .negative_cache_capacity(negative_capacity);
        match failed_attempt_limit {
            Some(max) => b.failed_attempt_limit(
                FailedAttemptLimit::new(max, Duration::from_secs(3600))
                    .client_address(ClientAddress::Socket),
            ),
            None => b,
        }
    })
    .await;
    let transport = Transport::in_process(&subject);
    let valid = one_key(&subject.secrets[0]);
    let warm = drive(&subject, &transport, 1, 1, None, Arc::clone(&valid)).await;
    assert_eq!(warm.ok, 1, "the valid key works before the flood");

    let mut rss = vec![rss_kb()];
    let mut runs = Vec::with_capacity(floods);
    for _ in 0..floods {
        let flood = distinct_unknown_keys();
        runs.push(
            drive(
                &subject,
                &transport,
                requests,
                FLOOD_CONCURRENCY,
                None,
                flood,
            )
            .await,
        );
        rss.push(rss_kb());
    }
    // Moka counts entries lazily; a little more traffic and time let it
    // catch up with its evictions.
    let after = drive(&subject, &transport, 100, 1, None, valid).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let _ = drive(&subject, &transport, 100, 1, None, one_key(&unknown_key())).await;
    Flood {
        runs,
        entries: subject.keys.cache_entry_counts(),
        capacity: (capacity, negative_capacity),
        valid_lookups_after: after.lookups(),
        valid_refused_after: after.requests - after.ok,
        rss_kb: rss,
    }
}

/// What the last-used recorder wrote during a run.
#[derive(Debug, Clone, Copy)]
pub struct Batches {
    /// The run that served the requests.
    pub run: Run,
    /// The last-used recorder's interval.
    pub interval: Duration,
    /// `record_last_used` calls while requests were served.
    pub during: u64,
    /// `record_last_used` calls made by the flush at shutdown.
    pub at_shutdown: u64,
    /// Key times written in all.
    pub keys_written: u64,
}

impl Batches {
    /// At most one batch per interval begun.
    pub fn bound(&self) -> u64 {
        periods_begun(self.run.elapsed, self.interval)
    }
}

/// `requests` requests over `keys` valid keys, spread over `spread` (or as
/// fast as they go), with one last-used batch per `interval`.
pub async fn last_used_batches(
    keys: usize,
    requests: usize,
    spread: Option<Duration>,
    interval: Duration,
    http: bool,
) -> Batches {
    let subject = Subject::new(keys, |b| b.last_used_interval(interval)).await;
    let transport = if http {
        Transport::http(&subject).await
    } else {
        Transport::in_process(&subject)
    };
    let auth = valid_keys(&subject);
    let run = drive(&subject, &transport, requests, 8, spread, auth).await;
    let before_shutdown = subject.store.calls();
    let stats = subject.keys.shutdown().await;
    let at_shutdown = subject.store.calls().since(&before_shutdown);
    Batches {
        run,
        interval,
        during: run.calls.record_last_used,
        at_shutdown: at_shutdown.record_last_used,
        keys_written: stats.keys_written,
    }
}

/// This process's resident memory in kB, from `/proc/self/status`.
pub fn rss_kb() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
