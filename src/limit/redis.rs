//! The settings of the limits counted in Redis (feature `redis`), shared
//! by every instance that uses the server, and the limiter's counters.

use std::fmt;
use std::time::Duration;

use super::RateLimit;

/// What a limited request gets when Redis does not answer in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum WhenUnavailable {
    /// Admit the request without Redis, counted in this process instead
    /// against [`RedisLimits::unchecked_allowance`] (by default the key's
    /// and the owner's own allowances, so an outage lets through at most
    /// one allowance per instance; past it, 429); count it in
    /// [`SharedLimitStats::admitted_unchecked`] (or
    /// [`refused_unchecked`](SharedLimitStats::refused_unchecked)), and
    /// warn once per [`RedisLimits::warn_interval`]. The default: an outage
    /// of the limiter does not become an outage of the service.
    #[default]
    FailOpen,
    /// Refuse the request with 503 and `Retry-After`
    /// ([`RejectionReason::RateLimiterUnavailable`](crate::rejection::RejectionReason::RateLimiterUnavailable)):
    /// never more than the allowance, at the price of availability.
    FailClosed,
}

/// What [`WhenUnavailable::FailOpen`] admits while Redis does not answer,
/// counted in this process for each limited key and owner: a client that
/// makes Redis slow, or waits for it to fail, gets no more than this.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum UncheckedAllowance {
    /// The key's and the owner's own allowances (the default): with `n`
    /// instances, at most `n` times the allowance during an outage.
    #[default]
    Own,
    /// This allowance for every limited key and every limited owner: a
    /// smaller share, for deployments of many instances.
    Fixed(RateLimit),
    /// No bound: every limited request is admitted while Redis fails.
    Unbounded,
}

impl WhenUnavailable {
    pub(crate) fn as_str(self) -> &'static str {
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
/// use tower_api_keys::limit::{RedisLimits, WhenUnavailable};
///
/// let limits = RedisLimits::new("redis://127.0.0.1:6379")?
///     .prefix("myapp:rl:")
///     .timeout(Duration::from_millis(50))
///     .when_unavailable(WhenUnavailable::FailClosed);
/// # drop(limits);
/// # Ok::<(), tower_api_keys::limit::RedisLimitsError>(())
/// ```
#[derive(Clone)]
pub struct RedisLimits {
    pub(crate) client: redis::Client,
    pub(crate) prefix: String,
    pub(crate) timeout: Duration,
    pub(crate) when_unavailable: WhenUnavailable,
    pub(crate) unchecked: UncheckedAllowance,
    pub(crate) warn_interval: Duration,
}

/// A Redis URL that does not parse.
#[derive(Debug, thiserror::Error)]
#[error("invalid Redis URL: {0}")]
pub struct RedisLimitsError(pub(crate) String);

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
            unchecked: UncheckedAllowance::default(),
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

    /// What fail open admits while Redis does not answer (default: each
    /// key's and owner's own allowance, counted in this process).
    pub fn unchecked_allowance(mut self, allowance: UncheckedAllowance) -> Self {
        self.unchecked = allowance;
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
            .field("unchecked", &self.unchecked)
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
    /// ([`WhenUnavailable::FailOpen`]), counted in this process instead.
    pub admitted_unchecked: u64,
    /// Requests refused with 429 because Redis failed and this process's
    /// count reached the [`UncheckedAllowance`].
    pub refused_unchecked: u64,
    /// Requests refused with 503 because Redis failed
    /// ([`WhenUnavailable::FailClosed`]).
    pub refused_unavailable: u64,
}
