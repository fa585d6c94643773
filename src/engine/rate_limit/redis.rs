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

use super::{Cells, state};
use crate::limit::{
    RateLimit, RedisLimits, RedisLimitsError, SharedLimitStats, UncheckedAllowance, WhenUnavailable,
};
use crate::record::KeyRecord;
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

#[derive(Default)]
struct Counters {
    checks: AtomicU64,
    refused: AtomicU64,
    failures: AtomicU64,
    admitted_unchecked: AtomicU64,
    refused_unchecked: AtomicU64,
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
    unchecked: UncheckedAllowance,
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
            unchecked: limits.unchecked,
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
            redis::cmd("SCRIPT")
                .arg("LOAD")
                .arg(SCRIPT)
                .query_async::<redis::Value>(&mut connection),
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

    /// Runs the script: `EVALSHA`, or `EVAL` (which caches it) when the
    /// server does not know it. By hand rather than through
    /// `redis::Script`, whose loading asserts (in debug builds) that the
    /// server's hash is its own: a server's answer never panics here.
    async fn run(
        &self,
        connection: &mut ConnectionManager,
        names: [&str; 2],
        args: [i64; 4],
    ) -> redis::RedisResult<redis::Value> {
        let answer = redis::cmd("EVALSHA")
            .arg(self.script.get_hash())
            .arg(2)
            .arg(&names[..])
            .arg(&args[..])
            .query_async(connection)
            .await;
        match answer {
            Err(error)
                if error.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) =>
            {
                redis::cmd("EVAL")
                    .arg(SCRIPT)
                    .arg(2)
                    .arg(&names[..])
                    .arg(&args[..])
                    .query_async(connection)
                    .await
            }
            other => other,
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
            refused_unchecked: read(&c.refused_unchecked),
            refused_unavailable: read(&c.refused_unavailable),
        }
    }

    /// The allowances counted here while Redis fails, for a key with
    /// `key` and `owner`: none under fail closed or without a bound.
    pub(super) fn unchecked_limits(
        &self,
        key: Option<RateLimit>,
        owner: Option<RateLimit>,
    ) -> (Option<RateLimit>, Option<RateLimit>) {
        match (self.when_unavailable, self.unchecked) {
            (WhenUnavailable::FailOpen, UncheckedAllowance::Own) => (key, owner),
            (WhenUnavailable::FailOpen, UncheckedAllowance::Fixed(limit)) => {
                (key.map(|_| limit), owner.map(|_| limit))
            }
            _ => (None, None),
        }
    }

    /// The Redis side of one key, and what it may have admitted here while
    /// Redis fails. Both names carry the owner as a hash tag, so that they
    /// land in one slot.
    pub(super) fn key(
        self: &Arc<Self>,
        record: &KeyRecord,
        key: Option<RateLimit>,
        owner: Option<RateLimit>,
        unchecked: Cells,
    ) -> SharedKey {
        let tag = format!("{}{{{}}}", self.prefix, record.owner.as_str());
        SharedKey {
            limiter: Arc::clone(self),
            key_name: format!("{tag}:key:{}", record.id).into(),
            owner_name: format!("{tag}:owner").into(),
            key,
            owner,
            unchecked,
        }
    }

    /// A call that failed: counted, warned about, and the policy applied;
    /// under fail open, the request is counted in `unchecked` instead.
    fn failed(&self, error: &str, unchecked: &Cells, now: impl FnOnce() -> i64) -> SharedOutcome {
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
                refused_unchecked = stats.refused_unchecked,
                refused_unavailable = stats.refused_unavailable,
                "Redis rate limiter unavailable"
            );
        }
        match self.when_unavailable {
            WhenUnavailable::FailOpen => match unchecked.take(now()) {
                Ok(()) => {
                    self.counters
                        .admitted_unchecked
                        .fetch_add(1, Ordering::Relaxed);
                    SharedOutcome::Admitted
                }
                Err((wait, state)) => {
                    self.counters
                        .refused_unchecked
                        .fetch_add(1, Ordering::Relaxed);
                    SharedOutcome::Refused(wait, state)
                }
            },
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
    /// What fail open admitted of this key and owner here.
    unchecked: Cells,
}

/// The script's answer, exactly two integers. Anything else (strings,
/// doubles, maps, sets, attributes, another count), which `redis`'s own
/// conversions would take as numbers, is a failure of the server and
/// never an admission.
fn verdict(answer: &redis::Value) -> Option<(i64, i64)> {
    match answer {
        redis::Value::Array(items) => match items.as_slice() {
            [redis::Value::Int(code), redis::Value::Int(wait)] => Some((*code, *wait)),
            _ => None,
        },
        _ => None,
    }
}

fn micros(limit: Option<RateLimit>) -> (i64, i64) {
    limit.map_or((0, 0), |l| (l.interval_micros(), l.window_micros()))
}

impl SharedKey {
    /// Takes one request from the key's and the owner's allowances: one
    /// round trip, bounded by the timeout. `now` (the engine's clock) is
    /// read only when Redis fails under fail open.
    pub(crate) async fn acquire(&self, now: impl FnOnce() -> i64) -> SharedOutcome {
        let limiter = &*self.limiter;
        limiter.counters.checks.fetch_add(1, Ordering::Relaxed);
        let (key_interval, key_window) = micros(self.key);
        let (owner_interval, owner_window) = micros(self.owner);
        let mut connection = limiter.manager.clone();
        let answer = tokio::time::timeout(
            limiter.timeout,
            limiter.run(
                &mut connection,
                [&self.key_name, &self.owner_name],
                [key_interval, key_window, owner_interval, owner_window],
            ),
        )
        .await;
        let (code, wait) = match answer {
            Ok(Ok(answer)) => match verdict(&answer) {
                Some(verdict) => verdict,
                None => {
                    return limiter.failed(
                        "unexpected answer from the rate-limit script",
                        &self.unchecked,
                        now,
                    );
                }
            },
            Ok(Err(error)) => return limiter.failed(&error.to_string(), &self.unchecked, now),
            Err(_) => return limiter.failed("timed out", &self.unchecked, now),
        };
        let wait = Duration::from_micros(u64::try_from(wait).unwrap_or(0));
        let refused = match (code, self.key, self.owner) {
            (0, _, _) => return SharedOutcome::Admitted,
            (1, Some(limit), _) => state(limit, LimitScope::Key),
            (2, _, Some(limit)) => state(limit, LimitScope::Owner),
            _ => {
                return limiter.failed(
                    "unexpected answer from the rate-limit script",
                    &self.unchecked,
                    now,
                );
            }
        };
        limiter.counters.refused.fetch_add(1, Ordering::Relaxed);
        SharedOutcome::Refused(wait, refused)
    }
}
