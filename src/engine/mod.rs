//! The shared state behind every [`ApiKeys`](crate::ApiKeys) handle and
//! layer, and its parts: the decision for one request, the cache, the change
//! follower, the last-used recorder, the limiters, the failed-attempt
//! throttle, the watchers of keys that stop being usable, and the stop
//! signal of the background tasks.
//!
//! Everything here is crate-private: the types users name (the identity,
//! the settings, the counters, the errors) are defined in the modules below
//! it.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::Response;

use crate::clock::Clock;
use crate::event::{EventSink, KeyEventHandler};
use crate::key::{KeyFormat, KeyHasher};
use crate::query::QueryGuard;
use crate::rejection::{Challenge, Rejection, RejectionHandler};
use crate::store::KeyStore;

mod cache;
mod change_follower;
mod decide;
mod last_used;
mod log_budget;
mod manage;
mod metrics;
pub(crate) mod rate_limit;
mod tasks;
pub(crate) mod throttle;
#[cfg(feature = "oauth")]
mod token;
mod unusable;

pub(crate) use cache::CacheConfig;
pub(crate) use decide::{Requirement, Verdict};

use crate::limit::FailedAttemptLimit;
use crate::stats::{LastUsedStats, RefusalStats};
use cache::KeyCache;
use change_follower::{ChangeFollower, FeedTiming};
use last_used::{Recorder, UsageQueue};
use log_budget::LogBudget;
use metrics::Metrics;
use rate_limit::{LimitSettings, Limiters};
use tasks::Tasks;
use throttle::Throttle;
use unusable::Watchers;

/// What [`Engine::start`] is made of; checked by the builder.
pub(crate) struct Settings {
    pub(crate) store: Arc<dyn KeyStore>,
    pub(crate) format: KeyFormat,
    pub(crate) hasher: KeyHasher,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) challenge: Challenge,
    pub(crate) on_rejection: Option<RejectionHandler>,
    pub(crate) query_guard: QueryGuard,
    pub(crate) max_authorization_len: usize,
    pub(crate) max_uri_len: usize,
    pub(crate) cache: CacheConfig,
    pub(crate) limits: LimitSettings,
    /// The Redis backend of the limits; in process without it.
    #[cfg(feature = "redis")]
    pub(crate) redis: Option<Arc<rate_limit::RedisLimiter>>,
    pub(crate) failed_attempts: Option<FailedAttemptLimit>,
    pub(crate) revoke_exposed: bool,
    pub(crate) last_used_interval: Duration,
    pub(crate) max_pending_last_used: usize,
    pub(crate) change_poll_interval: Duration,
    pub(crate) change_log_retention: Duration,
    pub(crate) on_key_event: Option<KeyEventHandler>,
    /// The checker of OAuth access tokens, when an issuer is configured.
    #[cfg(feature = "oauth")]
    pub(crate) oauth: Option<Arc<crate::oauth::TokenVerifier>>,
}

/// What the background tasks report to: the metrics and the key events.
#[derive(Debug, Clone)]
pub(crate) struct Reporting {
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) events: EventSink,
}

/// Everything shared by [`ApiKeys`](crate::ApiKeys) handles and the layers
/// made from them. Its methods live in this folder, one file per concern.
pub(crate) struct Engine {
    pub(crate) store: Arc<dyn KeyStore>,
    pub(crate) format: KeyFormat,
    pub(crate) hasher: KeyHasher,
    pub(crate) clock: Arc<dyn Clock>,
    cache: KeyCache,
    /// For the counters of the Redis backend.
    #[cfg(feature = "redis")]
    limiters: Arc<Limiters>,
    usage: Arc<UsageQueue>,
    watchers: Arc<Watchers>,
    /// The keys a roll of this process is replacing right now: a second
    /// roll of one of them is refused, so a key gets one successor.
    pub(crate) rolling: std::sync::Mutex<std::collections::HashSet<crate::record::KeyId>>,
    challenge: Arc<Challenge>,
    on_rejection: Option<RejectionHandler>,
    query_guard: QueryGuard,
    max_authorization_len: usize,
    max_uri_len: usize,
    throttle: Option<Throttle>,
    revoke_exposed: bool,
    log_budget: LogBudget,
    metrics: Arc<Metrics>,
    events: EventSink,
    tasks: Tasks,
    #[cfg(feature = "oauth")]
    pub(crate) oauth: Option<Arc<crate::oauth::TokenVerifier>>,
}

impl Engine {
    /// Builds the shared state and starts the background tasks (the
    /// last-used recorder and the change follower). Must run inside a Tokio
    /// runtime.
    pub(crate) fn start(settings: Settings) -> Arc<Self> {
        let metrics = Arc::new(Metrics::register());
        let events = EventSink::new(settings.on_key_event);
        let capacity = settings.cache.capacity.max(1024);
        let limits = settings.limits.clone();
        #[cfg(feature = "redis")]
        let limiters = match settings.redis.clone() {
            Some(redis) => Limiters::redis(limits, redis, capacity),
            None => Limiters::local(limits, capacity),
        };
        #[cfg(not(feature = "redis"))]
        let limiters = Limiters::local(limits, capacity);
        let limiters = Arc::new(limiters);
        let cache = KeyCache::new(&settings.cache, Arc::clone(&limiters), Arc::clone(&metrics));
        let usage = Arc::new(UsageQueue::default());
        let watchers = Arc::new(Watchers::default());
        let (tasks, stopped) = Tasks::new();
        // The issuer's keys are fetched ahead of the first token.
        #[cfg(feature = "oauth")]
        if let Some(verifier) = settings.oauth.clone() {
            tokio::spawn(async move { verifier.prefetch().await });
        }
        tasks.push(Recorder::spawn(
            Arc::clone(&usage),
            Arc::clone(&settings.store),
            Arc::clone(&settings.clock),
            settings.last_used_interval,
            settings.max_pending_last_used,
            Reporting {
                metrics: Arc::clone(&metrics),
                events: events.clone(),
            },
            stopped.clone(),
        ));
        tasks.push(ChangeFollower::spawn(
            cache.clone(),
            Arc::clone(&watchers),
            Arc::clone(&settings.store),
            FeedTiming {
                poll_interval: settings.change_poll_interval,
                retention: settings.change_log_retention,
            },
            Reporting {
                metrics: Arc::clone(&metrics),
                events: events.clone(),
            },
            Arc::clone(&settings.clock),
            stopped,
        ));
        Arc::new(Self {
            store: settings.store,
            format: settings.format,
            hasher: settings.hasher,
            clock: settings.clock,
            cache,
            #[cfg(feature = "redis")]
            limiters,
            usage,
            watchers,
            rolling: std::sync::Mutex::default(),
            challenge: Arc::new(settings.challenge),
            on_rejection: settings.on_rejection,
            query_guard: settings.query_guard,
            max_authorization_len: settings.max_authorization_len,
            max_uri_len: settings.max_uri_len,
            throttle: settings.failed_attempts.map(Throttle::new),
            revoke_exposed: settings.revoke_exposed,
            log_budget: LogBudget::default(),
            metrics,
            events,
            tasks,
            #[cfg(feature = "oauth")]
            oauth: settings.oauth,
        })
    }

    /// Counters of the last-used recorder.
    pub(crate) fn last_used_stats(&self) -> LastUsedStats {
        self.usage.stats()
    }

    /// The counters of the Redis limiter, when it is the backend.
    #[cfg(feature = "redis")]
    pub(crate) fn shared_limit_stats(&self) -> Option<crate::limit::SharedLimitStats> {
        self.limiters.shared_stats()
    }

    /// Entries in the cache of known keys and in the cache of unknown keys.
    pub(crate) fn cache_entry_counts(&self) -> (u64, u64) {
        self.cache.entry_counts()
    }

    /// The refusals of one reason, and the log lines held back for it.
    pub(crate) fn refusal_stats(&self, reason: crate::rejection::RejectionReason) -> RefusalStats {
        self.log_budget.stats(reason)
    }

    /// Stops the background tasks (the recorder after a last flush).
    pub(crate) async fn shutdown(&self) -> LastUsedStats {
        self.tasks.stop().await;
        self.last_used_stats()
    }

    /// The response for a rejection: the custom builder's, or the default.
    pub(crate) fn respond(&self, rejection: &Rejection) -> Response<Bytes> {
        match &self.on_rejection {
            Some(handler) => handler(rejection),
            None => rejection.default_response(),
        }
    }
}

impl fmt::Debug for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Engine")
            .field("format", &self.format)
            .field("hasher", &self.hasher)
            .field("cache", &self.cache)
            .field("challenge", &self.challenge)
            .finish_non_exhaustive()
    }
}
