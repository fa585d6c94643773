//! [`ApiKeys`]: one handle on the store, the cache, the background tasks,
//! the layer and the management calls; and its builder.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http::Response;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use zeroize::Zeroizing;

use crate::cache::{CacheConfig, KeyCache};
use crate::changes::ChangeFollower;
use crate::clock::{Clock, SystemClock};
use crate::key::{InvalidPrefix, KeyFormat, KeyHasher, WeakPepper};
use crate::last_used::{LastUsedStats, Recorder, UsageQueue};
use crate::layer::ApiKeyLayer;
use crate::query::{DEFAULT_CREDENTIAL_PARAMS, QueryGuard};
use crate::rate_limit::{Limiters, RateLimit};
use crate::rejection::{Challenge, InvalidChallengeParameter, Rejection, RejectionHandler};
use crate::store::KeyStore;
use crate::throttle::{FailedAttemptLimit, Throttle};

/// API-key authentication for one application: build it once at start-up,
/// protect routes with [`layer`](Self::layer), manage keys with
/// [`create`](Self::create), [`list`](Self::list) and
/// [`revoke`](Self::revoke), and await [`shutdown`](Self::shutdown) after the
/// server stops so pending last-used times are written.
///
/// Cloning is cheap; clones share everything.
///
/// ```
/// use tower_api_keys::{ApiKeys, MemoryStore, NewKey};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let keys = ApiKeys::builder(MemoryStore::new()).realm("example").build()?;
/// let created = keys.create(NewKey::new("acct_1", "ci")).await?;
/// println!("your key (shown once): {}", created.secret.expose_secret());
/// let layer = keys.layer(); // .layer(layer) on a Router or ServiceBuilder
/// # drop(layer);
/// keys.shutdown().await;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct ApiKeys {
    pub(crate) inner: Arc<Inner>,
}

/// Everything shared by [`ApiKeys`] handles and the layers made from them.
pub(crate) struct Inner {
    pub(crate) store: Arc<dyn KeyStore>,
    pub(crate) format: KeyFormat,
    pub(crate) hasher: KeyHasher,
    pub(crate) cache: KeyCache,
    pub(crate) usage: Arc<UsageQueue>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) challenge: Arc<Challenge>,
    pub(crate) on_rejection: Option<RejectionHandler>,
    pub(crate) query_guard: QueryGuard,
    pub(crate) max_authorization_len: usize,
    pub(crate) max_uri_len: usize,
    pub(crate) throttle: Option<Throttle>,
    pub(crate) revoke_exposed: bool,
    tasks: Tasks,
}

/// The background tasks; they stop (the recorder after a last flush) when
/// told to, or when the last handle is dropped.
struct Tasks {
    stop: watch::Sender<bool>,
    handles: Mutex<Vec<JoinHandle<()>>>,
}

/// Resolves when the tasks are told to stop or every handle is gone.
pub(crate) async fn until_stopped(stop: &mut watch::Receiver<bool>) {
    // An error means the sender is gone, which also means stop.
    let _ = stop.wait_for(|stopped| *stopped).await;
}

impl ApiKeys {
    /// Starts a builder over `store`.
    pub fn builder(store: impl KeyStore) -> ApiKeysBuilder {
        ApiKeysBuilder::new(Arc::new(store))
    }

    /// A layer that requires a valid key on every request it wraps.
    pub fn layer(&self) -> ApiKeyLayer {
        ApiKeyLayer::new(Arc::clone(&self.inner))
    }

    /// The store behind the cache.
    pub fn store(&self) -> &Arc<dyn KeyStore> {
        &self.inner.store
    }

    /// The key format.
    pub fn format(&self) -> &KeyFormat {
        &self.inner.format
    }

    /// The hasher keys are stored under.
    pub fn hasher(&self) -> &KeyHasher {
        &self.inner.hasher
    }

    /// Counters of the last-used recorder.
    pub fn last_used_stats(&self) -> LastUsedStats {
        self.inner.usage.stats()
    }

    /// Entries in the cache of known keys and in the cache of unknown keys.
    /// Moka counts lazily: the numbers may trail recent inserts.
    pub fn cache_entry_counts(&self) -> (u64, u64) {
        self.inner.cache.entry_counts()
    }

    /// Stops the background tasks after writing the pending last-used times,
    /// and returns the recorder's final counters. Call it after the server
    /// has stopped taking requests (after axum's graceful shutdown). Later
    /// calls return at once.
    pub async fn shutdown(&self) -> LastUsedStats {
        self.inner.tasks.stop.send_replace(true);
        let handles = std::mem::take(
            &mut *self
                .inner
                .tasks
                .handles
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        for handle in handles {
            if let Err(error) = handle.await {
                tracing::error!(target: "tower_api_keys", %error, "a background task failed");
            }
        }
        self.last_used_stats()
    }
}

impl fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKeys")
            .field("format", &self.inner.format)
            .field("hasher", &self.inner.hasher)
            .field("cache", &self.inner.cache)
            .field("challenge", &self.inner.challenge)
            .finish_non_exhaustive()
    }
}

/// Configures [`ApiKeys`]. Every setting has a default suited to production.
///
/// ```
/// use std::time::Duration;
/// use tower_api_keys::{ApiKeys, MemoryStore};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), tower_api_keys::BuildError> {
/// let keys = ApiKeys::builder(MemoryStore::new())
///     .prefix("acme")
///     .realm("acme-api")
///     .cache_ttl(Duration::from_secs(300))
///     .last_used_interval(Duration::from_secs(10))
///     .build()?;
/// assert_eq!(keys.format().prefix(), "acme");
/// # Ok(())
/// # }
/// ```
#[must_use]
pub struct ApiKeysBuilder {
    store: Arc<dyn KeyStore>,
    prefix: String,
    pepper: Option<Zeroizing<Vec<u8>>>,
    realm: String,
    resource_metadata: Option<String>,
    retry_after: Duration,
    cache: CacheConfig,
    last_used_interval: Duration,
    max_pending_last_used: usize,
    change_poll_interval: Duration,
    clock: Arc<dyn Clock>,
    query_params: Vec<String>,
    max_authorization_len: usize,
    max_uri_len: usize,
    on_rejection: Option<RejectionHandler>,
    checksum: bool,
    accept_without_checksum: bool,
    rate_limit: Option<RateLimit>,
    failed_attempts: Option<FailedAttemptLimit>,
    revoke_exposed: bool,
}

impl ApiKeysBuilder {
    fn new(store: Arc<dyn KeyStore>) -> Self {
        Self {
            store,
            prefix: KeyFormat::DEFAULT_PREFIX.to_owned(),
            pepper: None,
            realm: "api".to_owned(),
            resource_metadata: None,
            retry_after: Duration::from_secs(1),
            cache: CacheConfig {
                capacity: 10_000,
                ttl: Duration::from_secs(60),
                negative_capacity: 10_000,
                negative_ttl: Duration::from_secs(10),
                lookup_timeout: Duration::from_secs(5),
            },
            last_used_interval: Duration::from_secs(5),
            max_pending_last_used: 100_000,
            change_poll_interval: Duration::from_millis(500),
            clock: Arc::new(SystemClock),
            query_params: DEFAULT_CREDENTIAL_PARAMS
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
            max_authorization_len: 4096,
            max_uri_len: 8192,
            on_rejection: None,
            checksum: false,
            accept_without_checksum: false,
            rate_limit: None,
            failed_attempts: None,
            revoke_exposed: false,
        }
    }

    /// The key prefix (default `bmc`): keys look like `<prefix>_<43 chars>`.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// New keys end with a CRC32 checksum and every key is checked against
    /// it before any other work (see [`KeyFormat::with_checksum`]).
    pub fn key_checksum(mut self, on: bool) -> Self {
        self.checksum = on;
        self
    }

    /// With [`key_checksum`](Self::key_checksum): keep accepting keys issued
    /// without a checksum, during a migration (default: no).
    pub fn accept_keys_without_checksum(mut self, accept: bool) -> Self {
        self.accept_without_checksum = accept;
        self
    }

    /// A request allowance for every key that has none of its own
    /// ([`NewKey::rate_limit`](crate::NewKey::rate_limit)); past it, 429 with
    /// `Retry-After` and the `RateLimit` headers. Off by default. Counted in
    /// this process's memory: each instance counts on its own.
    pub fn rate_limit(mut self, limit: RateLimit) -> Self {
        self.rate_limit = Some(limit);
        self
    }

    /// Refuses clients with too many failed authentications with 429,
    /// without a store lookup (see [`FailedAttemptLimit`]). Off by default.
    pub fn failed_attempt_limit(mut self, limit: FailedAttemptLimit) -> Self {
        self.failed_attempts = Some(limit);
        self
    }

    /// Revokes a key found in a request's query string before answering 400,
    /// recording the reason "exposed in URL": URLs end up in logs and
    /// browser history. Off by default; the request is refused either way.
    pub fn revoke_keys_exposed_in_url(mut self, revoke: bool) -> Self {
        self.revoke_exposed = revoke;
        self
    }

    /// Stores keys as HMAC-SHA-256 under this server-side secret (at least 16
    /// bytes) instead of plain SHA-256. Every process sharing the store needs
    /// the same pepper; changing it invalidates every key.
    pub fn pepper(mut self, pepper: impl Into<Vec<u8>>) -> Self {
        self.pepper = Some(Zeroizing::new(pepper.into()));
        self
    }

    /// The realm of the `WWW-Authenticate` challenge (default `api`).
    pub fn realm(mut self, realm: impl Into<String>) -> Self {
        self.realm = realm.into();
        self
    }

    /// The URL of this resource's RFC 9728 metadata, announced in every
    /// challenge as `resource_metadata="..."` (MCP clients follow it).
    pub fn resource_metadata(mut self, url: impl Into<String>) -> Self {
        self.resource_metadata = Some(url.into());
        self
    }

    /// The `Retry-After` of a 503 when the store is down (default 1 s;
    /// rounded to whole seconds, at least 1).
    pub fn retry_after(mut self, delay: Duration) -> Self {
        self.retry_after = delay;
        self
    }

    /// Most known keys cached (default 10,000).
    pub fn cache_capacity(mut self, capacity: u64) -> Self {
        self.cache.capacity = capacity;
        self
    }

    /// How long a known key stays cached (default 60 s). Revocations and
    /// expiry changes reach the cache through the store's change log sooner;
    /// expiry itself is checked on every request.
    pub fn cache_ttl(mut self, ttl: Duration) -> Self {
        self.cache.ttl = ttl;
        self
    }

    /// Most unknown keys remembered (default 10,000).
    pub fn negative_cache_capacity(mut self, capacity: u64) -> Self {
        self.cache.negative_capacity = capacity;
        self
    }

    /// How long an unknown key is remembered (default 10 s), so repeating a
    /// bad key costs one lookup per period. A key created meanwhile is
    /// forgotten at once through the change log.
    pub fn negative_cache_ttl(mut self, ttl: Duration) -> Self {
        self.cache.negative_ttl = ttl;
        self
    }

    /// How long a store lookup may take before the request gets a 503
    /// (default 5 s). All requests waiting on that lookup get the 503.
    pub fn lookup_timeout(mut self, timeout: Duration) -> Self {
        self.cache.lookup_timeout = timeout;
        self
    }

    /// How often last-used times are written, as one batch (default 5 s).
    /// Each key used since the previous batch is stamped with the time of
    /// the batch, so `last_used_at` is at most this much later than the
    /// key's actual last use.
    pub fn last_used_interval(mut self, interval: Duration) -> Self {
        self.last_used_interval = interval;
        self
    }

    /// Most keys whose last-used time is kept for retry while the store
    /// fails (default 100,000); beyond it the oldest are counted as dropped.
    pub fn max_pending_last_used(mut self, keys: usize) -> Self {
        self.max_pending_last_used = keys;
        self
    }

    /// How often the store's change log is read (default 500 ms), on top of
    /// the store's own push signal where it has one.
    pub fn change_poll_interval(mut self, interval: Duration) -> Self {
        self.change_poll_interval = interval;
        self
    }

    /// The clock expiry is checked against (default: the system clock).
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// The query parameter names refused as credentials (default:
    /// [`DEFAULT_CREDENTIAL_PARAMS`]). Values carrying the key prefix are
    /// refused whatever their name.
    pub fn credential_query_params<I, S>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.query_params = names.into_iter().map(Into::into).collect();
        self
    }

    /// Longest `Authorization` header read (default 4096 bytes); a longer
    /// one gets 431 before any other work.
    pub fn max_authorization_len(mut self, bytes: usize) -> Self {
        self.max_authorization_len = bytes;
        self
    }

    /// Longest path and query read (default 8192 bytes); a longer one gets
    /// 414 before any other work.
    pub fn max_uri_len(mut self, bytes: usize) -> Self {
        self.max_uri_len = bytes;
        self
    }

    /// Replaces the response built for a rejection. The handler sees the
    /// reason, the challenge and the default response
    /// ([`Rejection::default_response`]).
    ///
    /// ```
    /// use bytes::Bytes;
    /// use tower_api_keys::{ApiKeys, MemoryStore};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let keys = ApiKeys::builder(MemoryStore::new())
    ///     .on_rejection(|rejection| {
    ///         let mut response = rejection.default_response();
    ///         *response.body_mut() = Bytes::from(format!("denied: {}", rejection.reason()));
    ///         response
    ///     })
    ///     .build()
    ///     .unwrap();
    /// # drop(keys);
    /// # }
    /// ```
    pub fn on_rejection<F>(mut self, handler: F) -> Self
    where
        F: Fn(&Rejection) -> Response<Bytes> + Send + Sync + 'static,
    {
        self.on_rejection = Some(Arc::new(handler));
        self
    }

    /// Checks the settings and starts the background tasks (the last-used
    /// recorder and the change-log follower). Call it inside a Tokio runtime.
    pub fn build(self) -> Result<ApiKeys, BuildError> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| BuildError::NoRuntime)?;
        let mut format = KeyFormat::new(&self.prefix)?;
        if self.checksum {
            format = format
                .with_checksum()
                .accept_without_checksum(self.accept_without_checksum);
        }
        let hasher = match &self.pepper {
            Some(pepper) => KeyHasher::hmac_sha256(pepper)?,
            None => KeyHasher::sha256(),
        };
        let challenge = Challenge::new(
            &self.realm,
            self.resource_metadata.as_deref(),
            self.retry_after,
        )?;
        for (name, value) in [
            ("cache_ttl", self.cache.ttl),
            ("negative_cache_ttl", self.cache.negative_ttl),
            ("lookup_timeout", self.cache.lookup_timeout),
            ("last_used_interval", self.last_used_interval),
            ("change_poll_interval", self.change_poll_interval),
        ] {
            if value.is_zero() {
                return Err(BuildError::ZeroSetting(name));
            }
        }
        let limiters = Limiters::new(self.rate_limit, self.cache.capacity.max(1024));
        let cache = KeyCache::new(&self.cache, Arc::new(limiters));
        let usage = Arc::new(UsageQueue::default());
        let (stop, stopped) = watch::channel(false);
        let _guard = runtime.enter();
        let handles = vec![
            Recorder::spawn(
                Arc::clone(&usage),
                Arc::clone(&self.store),
                Arc::clone(&self.clock),
                self.last_used_interval,
                self.max_pending_last_used,
                stopped.clone(),
            ),
            ChangeFollower::spawn(
                cache.clone(),
                Arc::clone(&self.store),
                self.change_poll_interval,
                stopped,
            ),
        ];
        let query_guard =
            QueryGuard::with_names(format.lead(), self.query_params.iter().map(String::as_str));
        Ok(ApiKeys {
            inner: Arc::new(Inner {
                store: self.store,
                format,
                hasher,
                cache,
                usage,
                clock: self.clock,
                challenge: Arc::new(challenge),
                on_rejection: self.on_rejection,
                query_guard,
                max_authorization_len: self.max_authorization_len,
                max_uri_len: self.max_uri_len,
                throttle: self.failed_attempts.map(Throttle::new),
                revoke_exposed: self.revoke_exposed,
                tasks: Tasks {
                    stop,
                    handles: Mutex::new(handles),
                },
            }),
        })
    }
}

impl fmt::Debug for ApiKeysBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKeysBuilder")
            .field("prefix", &self.prefix)
            .field("pepper", &self.pepper.as_ref().map(|_| "<redacted>"))
            .field("realm", &self.realm)
            .field("resource_metadata", &self.resource_metadata)
            .field("cache", &self.cache)
            .field("last_used_interval", &self.last_used_interval)
            .field("change_poll_interval", &self.change_poll_interval)
            .field("key_checksum", &self.checksum)
            .field("rate_limit", &self.rate_limit)
            .field("failed_attempts", &self.failed_attempts)
            .field("revoke_keys_exposed_in_url", &self.revoke_exposed)
            .finish_non_exhaustive()
    }
}

/// A setting [`ApiKeysBuilder::build`] refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// The key prefix.
    #[error(transparent)]
    InvalidPrefix(#[from] InvalidPrefix),
    /// The pepper.
    #[error(transparent)]
    WeakPepper(#[from] WeakPepper),
    /// The realm or the resource metadata URL.
    #[error(transparent)]
    InvalidChallenge(#[from] InvalidChallengeParameter),
    /// A duration that must be positive.
    #[error("{0} must be greater than zero")]
    ZeroSetting(&'static str),
    /// `build` was called outside a Tokio runtime.
    #[error("ApiKeysBuilder::build must be called inside a Tokio runtime")]
    NoRuntime,
}
