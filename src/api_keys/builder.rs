//! [`ApiKeysBuilder`]: every setting of [`ApiKeys`], checked once by
//! [`build`](ApiKeysBuilder::build).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::Response;

use super::ApiKeys;
use crate::clock::{Clock, SystemClock};
use crate::engine::rate_limit::LimitSettings;
#[cfg(feature = "redis")]
use crate::engine::rate_limit::RedisLimiter;
use crate::engine::{CacheConfig, Engine, Settings};
use crate::event::{KeyEvent, KeyEventHandler};
use crate::key::{KeyFormat, KeyHasher};
use crate::limit::FailedAttemptLimit;
use crate::limit::RateLimit;
#[cfg(feature = "redis")]
use crate::limit::{RedisLimits, RedisLimitsError};
use crate::query::{DEFAULT_CREDENTIAL_PARAMS, QueryGuard};
use crate::record::OwnerId;
use crate::rejection::{Challenge, InvalidChallengeParameter, Rejection, RejectionHandler};
use crate::store::KeyStore;

/// Configures [`ApiKeys`]. Every setting has a default suited to production.
///
/// ```
/// use std::time::Duration;
/// use tower_api_keys::{ApiKeys, MemoryStore};
/// use tower_api_keys::key::KeyFormat;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let keys = ApiKeys::builder(MemoryStore::new())
///     .key_format(KeyFormat::new("acme")?)
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
    format: KeyFormat,
    hasher: KeyHasher,
    realm: String,
    resource_metadata: Option<String>,
    retry_after: Duration,
    cache: CacheConfig,
    last_used_interval: Duration,
    max_pending_last_used: usize,
    change_poll_interval: Duration,
    change_log_retention: Duration,
    clock: Arc<dyn Clock>,
    query_params: Vec<String>,
    max_authorization_len: usize,
    max_uri_len: usize,
    on_rejection: Option<RejectionHandler>,
    limits: LimitSettings,
    #[cfg(feature = "redis")]
    redis: Option<RedisLimits>,
    failed_attempts: Option<FailedAttemptLimit>,
    revoke_exposed: bool,
    on_key_event: Option<KeyEventHandler>,
    #[cfg(feature = "oauth")]
    oauth: Option<crate::oauth::OAuth>,
}

impl ApiKeysBuilder {
    pub(super) fn new(store: Arc<dyn KeyStore>) -> Self {
        Self {
            store,
            format: KeyFormat::default(),
            hasher: KeyHasher::default(),
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
            change_log_retention: Duration::from_secs(3600),
            clock: Arc::new(SystemClock),
            query_params: DEFAULT_CREDENTIAL_PARAMS
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
            max_authorization_len: 4096,
            max_uri_len: 8192,
            on_rejection: None,
            limits: LimitSettings::default(),
            #[cfg(feature = "redis")]
            redis: None,
            failed_attempts: None,
            revoke_exposed: false,
            on_key_event: None,
            #[cfg(feature = "oauth")]
            oauth: None,
        }
    }

    /// Accepts OAuth access tokens of an issuer beside keys, on every
    /// route of the layer (feature `oauth`; see [`oauth`](crate::oauth)).
    /// A token in the key format is always checked as a key.
    #[cfg(feature = "oauth")]
    #[cfg_attr(docsrs, doc(cfg(feature = "oauth")))]
    pub fn oauth(mut self, settings: crate::oauth::OAuth) -> Self {
        self.oauth = Some(settings);
        self
    }

    /// The format of the keys (default: `bmc_` and 43 base64url
    /// characters, no checksum): the prefix, and whether keys carry a
    /// checksum (see [`KeyFormat`]).
    ///
    /// ```
    /// use tower_api_keys::{ApiKeys, MemoryStore};
    /// use tower_api_keys::key::KeyFormat;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let keys = ApiKeys::builder(MemoryStore::new())
    ///     .key_format(KeyFormat::new("acme")?.with_checksum())
    ///     .build()?;
    /// assert!(keys.format().has_checksum());
    /// # Ok(())
    /// # }
    /// ```
    pub fn key_format(mut self, format: KeyFormat) -> Self {
        self.format = format;
        self
    }

    /// How keys are hashed for the store (default: SHA-256). With a
    /// server-side pepper, [`KeyHasher::hmac_sha256`]: every process
    /// sharing the store needs the same pepper, and changing it
    /// invalidates every key.
    pub fn key_hasher(mut self, hasher: KeyHasher) -> Self {
        self.hasher = hasher;
        self
    }

    /// A request allowance for every key that has none of its own
    /// ([`NewKey::rate_limit`](crate::record::NewKey::rate_limit)); past it, 429 with
    /// `Retry-After` and the `RateLimit` headers (policy `"key"`). Off by
    /// default. Counted in this process's memory, each instance on its own,
    /// unless [`redis_rate_limits`](Self::redis_rate_limits) is set.
    pub fn rate_limit(mut self, limit: RateLimit) -> Self {
        self.limits.key_default = Some(limit);
        self
    }

    /// A request allowance shared by all keys of each owner, for owners
    /// without one of their own ([`owner_rate_limit_for`](Self::owner_rate_limit_for)),
    /// so that minting more keys buys no more requests. Checked after the
    /// key's own limit; past it, 429 with `Retry-After` and the `RateLimit`
    /// headers naming the policy `"owner"`. Off by default.
    pub fn owner_rate_limit(mut self, limit: RateLimit) -> Self {
        self.limits.owner_default = Some(limit);
        self
    }

    /// The allowance shared by all keys of `owner`, in place of
    /// [`owner_rate_limit`](Self::owner_rate_limit)'s.
    pub fn owner_rate_limit_for(mut self, owner: impl Into<OwnerId>, limit: RateLimit) -> Self {
        self.limits.owners.insert(owner.into(), limit);
        self
    }

    /// Counts the key and owner allowances in Redis instead of this
    /// process's memory, so that every instance sharing the server enforces
    /// one allowance (see [`RedisLimits`]). Only keys with a limit, their
    /// own or their owner's, reach Redis: one script call per request,
    /// bounded by [`RedisLimits::timeout`]; keys without one make no call.
    /// The clock is the Redis server's.
    ///
    /// ```no_run
    /// use tower_api_keys::limit::RedisLimits;
    /// use tower_api_keys::{ApiKeys, MemoryStore};
    /// use tower_api_keys::limit::RateLimit;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let keys = ApiKeys::builder(MemoryStore::new())
    ///     .rate_limit(RateLimit::per_minute(600))
    ///     .owner_rate_limit(RateLimit::per_minute(3000))
    ///     .redis_rate_limits(RedisLimits::new("redis://127.0.0.1:6379")?)
    ///     .build()?;
    /// # drop(keys);
    /// # Ok(())
    /// # }
    /// ```
    #[cfg(feature = "redis")]
    pub fn redis_rate_limits(mut self, limits: RedisLimits) -> Self {
        self.redis = Some(limits);
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
    /// the store's own push signal where it has one. While that signal
    /// announces every change (PostgreSQL with its `LISTEN` connection
    /// up), the log is read on each announcement and polled only every
    /// 30 s as a safety check, so an idle instance costs the database about
    /// 0.03 queries a second; once the connection is lost, polling at this
    /// interval resumes until it is back.
    pub fn change_poll_interval(mut self, interval: Duration) -> Self {
        self.change_poll_interval = interval;
        self
    }

    /// How long the store's change log keeps a change (default 1 h); older
    /// ones are pruned, in bounded batches, by one instance at a time. An
    /// instance cut off from the store for longer than this drops its whole
    /// cache when it reads the log again, so pruning loses no revocation.
    pub fn change_log_retention(mut self, retention: Duration) -> Self {
        self.change_log_retention = retention;
        self
    }

    /// The clock expiry is checked against (default: the system clock).
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// The query parameter names refused as credentials (default:
    /// `access_token`, `api_key`, `apikey`, `api-key`, `key`, `token`,
    /// `bearer`, `authorization`). Values carrying the key prefix are
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

    /// Calls `handler` with every [`KeyEvent`]: created, rolled, revoked,
    /// expired, exposed in a URL, reported leaked, first use (see
    /// [`event`](crate::event)). It runs on the task that made the change,
    /// so it should be quick (push to a channel, append a line); each event
    /// is also a `tracing` event whether or not a handler is set.
    ///
    /// ```
    /// use std::sync::{Arc, Mutex};
    /// use tower_api_keys::{ApiKeys, MemoryStore, NewKey};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let seen = Arc::new(Mutex::new(Vec::new()));
    /// let log = Arc::clone(&seen);
    /// let keys = ApiKeys::builder(MemoryStore::new())
    ///     .on_key_event(move |event| log.lock().unwrap().push(event.kind.name()))
    ///     .build()?;
    /// let created = keys.create(NewKey::new("acct_1", "ci")).await?;
    /// keys.revoke(&"acct_1".into(), &created.record.id).await?;
    /// assert_eq!(*seen.lock().unwrap(), ["created", "revoked"]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn on_key_event<F>(mut self, handler: F) -> Self
    where
        F: Fn(&KeyEvent) + Send + Sync + 'static,
    {
        self.on_key_event = Some(std::sync::Arc::new(handler));
        self
    }

    /// Checks the settings and starts the background tasks (the last-used
    /// recorder and the change-log follower). Call it inside a Tokio runtime.
    pub fn build(self) -> Result<ApiKeys, BuildError> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| BuildError::NoRuntime)?;
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
            ("change_log_retention", self.change_log_retention),
        ] {
            if value.is_zero() {
                return Err(BuildError::ZeroSetting(name));
            }
        }
        let query_guard = QueryGuard::with_names(
            self.format.lead(),
            self.query_params.iter().map(String::as_str),
        )
        .recognizing(&self.format);
        #[cfg(feature = "oauth")]
        let oauth = match self.oauth {
            Some(settings) => Some(Arc::new(crate::oauth::TokenVerifier::new(settings)?)),
            None => None,
        };
        let _guard = runtime.enter();
        #[cfg(feature = "redis")]
        let redis = match self.redis {
            Some(limits) => {
                if limits.timeout_value().is_zero() {
                    return Err(BuildError::ZeroSetting("RedisLimits::timeout"));
                }
                Some(RedisLimiter::start(limits)?)
            }
            None => None,
        };
        let engine = Engine::start(Settings {
            store: self.store,
            format: self.format,
            hasher: self.hasher,
            clock: self.clock,
            challenge,
            on_rejection: self.on_rejection,
            query_guard,
            max_authorization_len: self.max_authorization_len,
            max_uri_len: self.max_uri_len,
            cache: self.cache,
            limits: self.limits,
            #[cfg(feature = "redis")]
            redis,
            failed_attempts: self.failed_attempts,
            revoke_exposed: self.revoke_exposed,
            last_used_interval: self.last_used_interval,
            max_pending_last_used: self.max_pending_last_used,
            change_poll_interval: self.change_poll_interval,
            change_log_retention: self.change_log_retention,
            on_key_event: self.on_key_event,
            #[cfg(feature = "oauth")]
            oauth,
        });
        Ok(ApiKeys { engine })
    }
}

impl fmt::Debug for ApiKeysBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKeysBuilder")
            .field("format", &self.format)
            .field("hasher", &self.hasher)
            .field("realm", &self.realm)
            .field("resource_metadata", &self.resource_metadata)
            .field("cache", &self.cache)
            .field("last_used_interval", &self.last_used_interval)
            .field("change_poll_interval", &self.change_poll_interval)
            .field("limits", &self.limits)
            .field("failed_attempts", &self.failed_attempts)
            .field("revoke_keys_exposed_in_url", &self.revoke_exposed)
            .field("on_key_event", &self.on_key_event.is_some())
            .finish_non_exhaustive()
    }
}

/// A setting [`ApiKeysBuilder::build`] refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// The realm or the resource metadata URL.
    #[error(transparent)]
    InvalidChallenge(#[from] InvalidChallengeParameter),
    /// A duration that must be positive.
    #[error("{0} must be greater than zero")]
    ZeroSetting(&'static str),
    /// `build` was called outside a Tokio runtime.
    #[error("ApiKeysBuilder::build must be called inside a Tokio runtime")]
    NoRuntime,
    /// The Redis limiter could not be set up.
    #[cfg(feature = "redis")]
    #[error(transparent)]
    Redis(#[from] RedisLimitsError),
    /// The OAuth settings cannot work.
    #[cfg(feature = "oauth")]
    #[error(transparent)]
    OAuth(#[from] crate::oauth::OAuthError),
}
