//! Limits counted in Redis, shared by every instance that uses the server.
//!
//! One Lua script per limited request (`EVALSHA`, falling back to `EVAL`
//! when the server does not know it yet) runs GCRA on the key's and the
//! owner's timestamps atomically, on the server's clock, and stores each
//! with an expiry at the moment it no longer matters.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::state;
use crate::record::{KeyRecord, RateLimit};
use crate::rejection::{LimitScope, RateLimitState};

/// GCRA on up to two allowances: the key's (`KEYS[1]`) and the owner's
/// (`KEYS[2]`), each given as interval and window in microseconds, a window
/// of 0 meaning no limit. Returns `{0, 0}` when admitted, or `{1, wait}` /
/// `{2, wait}` when the key's / the owner's limit refuses, counting nothing.
const SCRIPT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local function plan(name, interval, window)
  local tat = tonumber(redis.call('GET', name))
  if tat == nil or tat < now then tat = now end
  local nxt = tat + interval
  return nxt, nxt - window - now
end
local function store(name, nxt)
  local ttl = math.ceil((nxt - now) / 1000) + 1
  redis.call('SET', name, string.format('%d', nxt), 'PX', string.format('%d', ttl))
end
local ki, kw = tonumber(ARGV[1]), tonumber(ARGV[2])
local oi, ow = tonumber(ARGV[3]), tonumber(ARGV[4])
local knext, onext
if kw > 0 then
  local nxt, wait = plan(KEYS[1], ki, kw)
  if wait > 0 then return {1, wait} end
  knext = nxt
end
if ow > 0 then
  local nxt, wait = plan(KEYS[2], oi, ow)
  if wait > 0 then return {2, wait} end
  onext = nxt
end
if knext then store(KEYS[1], knext) end
if onext then store(KEYS[2], onext) end
return {0, 0}
";

/// What a limited request gets when Redis does not answer in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum WhenUnavailable {
    /// Admit the request uncounted, count it in
    /// [`SharedLimitStats::admitted_unchecked`], and warn once per
    /// [`RedisLimits::warn_interval`]. The default: an outage of the
    /// limiter does not become an outage of the service.
    #[default]
    FailOpen,
    /// Refuse the request with 503 and `Retry-After`
    /// ([`RejectionReason::RateLimiterUnavailable`](crate::rejection::RejectionReason::RateLimiterUnavailable)):
    /// never more than the allowance, at the price of availability.
    FailClosed,
}

impl WhenUnavailable {
    fn as_str(self) -> &'static str {
        match self {
            Self::FailOpen => "fail open: limited requests are admitted uncounted",
            Self::FailClosed => "fail closed: limited requests are refused with 503",
        }
    }
}

/// Rate limits counted in Redis, for
/// [`ApiKeysBuilder::redis_rate_limits`](crate::ApiKeysBuilder::redis_rate_limits):
/// every instance sharing the server enforces one allowance per key and
/// per owner.
///
/// ```
/// use std::time::Duration;
/// use tower_api_keys::rate_limit::{RedisLimits, WhenUnavailable};
///
/// let limits = RedisLimits::new("redis://127.0.0.1:6379")?
///     .prefix("myapp:rl:")
///     .timeout(Duration::from_millis(50))
///     .when_unavailable(WhenUnavailable::FailClosed);
/// # drop(limits);
/// # Ok::<(), tower_api_keys::rate_limit::RedisLimitsError>(())
/// ```
#[derive(Clone)]
pub struct RedisLimits {
    client: redis::Client,
    prefix: String,
    timeout: Duration,
    when_unavailable: WhenUnavailable,
    warn_interval: Duration,
}

/// A Redis URL that does not parse.
#[derive(Debug, thiserror::Error)]
#[error("invalid Redis URL: {0}")]
pub struct RedisLimitsError(String);

impl RedisLimits {
    /// Limits on the server at `url` (`redis://host:port/db`,
    /// `rediss://` with TLS where the `redis` crate has it, `redis+unix://`),
    /// with the prefix `tower-api-keys:rl:`, a timeout of 100 ms per call
    /// and [`WhenUnavailable::FailOpen`]. Nothing is connected until the
    /// layer is built.
    pub fn new(url: &str) -> Result<Self, RedisLimitsError> {
        let client = redis::Client::open(url).map_err(|error| {
            // The detail, never the URL: it may carry a password.
            RedisLimitsError(error.detail().unwrap_or("not a Redis URL").to_owned())
        })?;
        Ok(Self {
            client,
            prefix: "tower-api-keys:rl:".to_owned(),
            timeout: Duration::from_millis(100),
            when_unavailable: WhenUnavailable::default(),
            warn_interval: Duration::from_secs(60),
        })
    }

    /// The prefix of every Redis key written, to share a server between
    /// applications.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// How long one call may take before the policy of
    /// [`when_unavailable`](Self::when_unavailable) applies.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// What limited requests get while Redis does not answer.
    pub fn when_unavailable(mut self, policy: WhenUnavailable) -> Self {
        self.when_unavailable = policy;
        self
    }

    /// The least time between two warnings about Redis failing.
    pub fn warn_interval(mut self, interval: Duration) -> Self {
        self.warn_interval = interval;
        self
    }
}

impl RedisLimits {
    pub(crate) fn timeout_value(&self) -> Duration {
        self.timeout
    }
}

impl fmt::Debug for RedisLimits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The address, never the URL's credentials.
        f.debug_struct("RedisLimits")
            .field(
                "server",
                &self.client.get_connection_info().addr().to_string(),
            )
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .field("when_unavailable", &self.when_unavailable)
            .finish_non_exhaustive()
    }
}

/// Counters of the Redis limiter, from
/// [`ApiKeys::shared_limit_stats`](crate::ApiKeys::shared_limit_stats).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SharedLimitStats {
    /// Limited requests checked in Redis (one script call each).
    pub checks: u64,
    /// Of those, refused for a key's or an owner's limit.
    pub refused: u64,
    /// Calls that failed or timed out.
    pub failures: u64,
    /// Requests admitted without a check because Redis failed
    /// ([`WhenUnavailable::FailOpen`]).
    pub admitted_unchecked: u64,
    /// Requests refused with 503 because Redis failed
    /// ([`WhenUnavailable::FailClosed`]).
    pub refused_unavailable: u64,
}

#[derive(Default)]
struct Counters {
    checks: AtomicU64,
    refused: AtomicU64,
    failures: AtomicU64,
    admitted_unchecked: AtomicU64,
    refused_unavailable: AtomicU64,
}

/// The connection, the script and the policy, shared by all keys.
pub(crate) struct RedisLimiter {
    manager: ConnectionManager,
    script: redis::Script,
    server: String,
    prefix: String,
    timeout: Duration,
    when_unavailable: WhenUnavailable,
    warn_interval: Duration,
    last_warned: Mutex<Option<Instant>>,
    counters: Counters,
}

impl fmt::Debug for RedisLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisLimiter")
            .field("server", &self.server)
            .field("prefix", &self.prefix)
            .field("when_unavailable", &self.when_unavailable)
            .finish_non_exhaustive()
    }
}

/// The outcome of a check in Redis, the policy applied.
#[derive(Debug)]
pub(crate) enum SharedOutcome {
    Admitted,
    Refused(Duration, RateLimitState),
    /// Redis failed and the policy is to fail closed.
    Unavailable,
}

impl RedisLimiter {
    /// Sets up the connection (made lazily, and again after every failure)
    /// and checks, in the background, that the server answers; a server
    /// that does not is a warning naming the policy in force. Must run
    /// inside a Tokio runtime.
    pub(crate) fn start(limits: RedisLimits) -> Result<Arc<Self>, RedisLimitsError> {
        let server = limits.client.get_connection_info().addr().to_string();
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(limits.timeout))
            .set_response_timeout(Some(limits.timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_secs(1));
        let manager = ConnectionManager::new_lazy_with_config(limits.client, config)
            .map_err(|error| RedisLimitsError(error.to_string()))?;
        let limiter = Arc::new(Self {
            manager,
            script: redis::Script::new(SCRIPT),
            server,
            prefix: limits.prefix,
            timeout: limits.timeout,
            when_unavailable: limits.when_unavailable,
            warn_interval: limits.warn_interval,
            last_warned: Mutex::new(None),
            counters: Counters::default(),
        });
        let probe = Arc::clone(&limiter);
        tokio::spawn(async move { probe.probe().await });
        Ok(limiter)
    }

    /// Loads the script, which proves the server answers.
    async fn probe(&self) {
        let mut connection = self.manager.clone();
        let wait = self.timeout.max(Duration::from_secs(2));
        let loaded = tokio::time::timeout(
            wait,
            self.script.prepare_invoke().load_async(&mut connection),
        )
        .await;
        match loaded {
            Ok(Ok(_)) => tracing::info!(
                target: "tower_api_keys",
                redis = %self.server,
                "rate limits are counted in Redis"
            ),
            Ok(Err(error)) => self.warn_at_start(&error.to_string()),
            Err(_) => self.warn_at_start("no answer"),
        }
    }

    fn warn_at_start(&self, error: &str) {
        tracing::warn!(
            target: "tower_api_keys",
            redis = %self.server,
            error,
            policy = self.when_unavailable.as_str(),
            "Redis for rate limits does not answer at start-up; the policy applies until it does"
        );
    }

    pub(crate) fn stats(&self) -> SharedLimitStats {
        let read = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        let c = &self.counters;
        SharedLimitStats {
            checks: read(&c.checks),
            refused: read(&c.refused),
            failures: read(&c.failures),
            admitted_unchecked: read(&c.admitted_unchecked),
            refused_unavailable: read(&c.refused_unavailable),
        }
    }

    /// The Redis side of one key. Both names carry the owner as a hash tag,
    /// so that they land in one slot.
    pub(super) fn key(
        self: &Arc<Self>,
        record: &KeyRecord,
        key: Option<RateLimit>,
        owner: Option<RateLimit>,
    ) -> SharedKey {
        let tag = format!("{}{{{}}}", self.prefix, record.owner.as_str());
        SharedKey {
            limiter: Arc::clone(self),
            key_name: format!("{tag}:key:{}", record.id).into(),
            owner_name: format!("{tag}:owner").into(),
            key,
            owner,
        }
    }

    fn failed(&self, error: &str) -> SharedOutcome {
        self.counters.failures.fetch_add(1, Ordering::Relaxed);
        let warn = {
            let mut last = self
                .last_warned
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let due = last.is_none_or(|at| at.elapsed() >= self.warn_interval);
            if due {
                *last = Some(Instant::now());
            }
            due
        };
        if warn {
            let stats = self.stats();
            tracing::warn!(
                target: "tower_api_keys",
                redis = %self.server,
                error,
                policy = self.when_unavailable.as_str(),
                failures = stats.failures,
                admitted_unchecked = stats.admitted_unchecked,
                refused_unavailable = stats.refused_unavailable,
                "Redis rate limiter unavailable"
            );
        }
        match self.when_unavailable {
            WhenUnavailable::FailOpen => {
                self.counters
                    .admitted_unchecked
                    .fetch_add(1, Ordering::Relaxed);
                SharedOutcome::Admitted
            }
            WhenUnavailable::FailClosed => {
                self.counters
                    .refused_unavailable
                    .fetch_add(1, Ordering::Relaxed);
                SharedOutcome::Unavailable
            }
        }
    }
}

/// One key's limits in Redis, made when the key is loaded.
#[derive(Debug)]
pub(crate) struct SharedKey {
    limiter: Arc<RedisLimiter>,
    key_name: Box<str>,
    owner_name: Box<str>,
    key: Option<RateLimit>,
    owner: Option<RateLimit>,
}

fn micros(limit: Option<RateLimit>) -> (i64, i64) {
    limit.map_or((0, 0), |l| (l.interval_micros(), l.window_micros()))
}

impl SharedKey {
    /// Takes one request from the key's and the owner's allowances: one
    /// round trip, bounded by the timeout.
    pub(crate) async fn acquire(&self) -> SharedOutcome {
        let limiter = &*self.limiter;
        limiter.counters.checks.fetch_add(1, Ordering::Relaxed);
        let (key_interval, key_window) = micros(self.key);
        let (owner_interval, owner_window) = micros(self.owner);
        let mut invocation = limiter.script.prepare_invoke();
        invocation
            .key(&*self.key_name)
            .key(&*self.owner_name)
            .arg(key_interval)
            .arg(key_window)
            .arg(owner_interval)
            .arg(owner_window);
        let mut connection = limiter.manager.clone();
        let answer = tokio::time::timeout(
            limiter.timeout,
            invocation.invoke_async::<(i64, i64)>(&mut connection),
        )
        .await;
        let (code, wait) = match answer {
            Ok(Ok(answer)) => answer,
            Ok(Err(error)) => return limiter.failed(&error.to_string()),
            Err(_) => return limiter.failed("timed out"),
        };
        let wait = Duration::from_micros(u64::try_from(wait).unwrap_or(0));
        let refused = match (code, self.key, self.owner) {
            (0, _, _) => return SharedOutcome::Admitted,
            (1, Some(limit), _) => state(limit, LimitScope::Key),
            (2, _, Some(limit)) => state(limit, LimitScope::Owner),
            _ => return limiter.failed("unexpected answer from the rate-limit script"),
        };
        limiter.counters.refused.fetch_add(1, Ordering::Relaxed);
        SharedOutcome::Refused(wait, refused)
    }
}
