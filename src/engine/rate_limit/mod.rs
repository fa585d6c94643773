//! Rate limits (opt-in), per key and per owner.
//!
//! A key's allowance ([`RateLimit`]) comes from its record or a default; an
//! owner's allowance, shared by all of the owner's keys, from a per-owner
//! setting or a default. The key's own limit is checked first, then the
//! owner's; a request refused by the owner's limit is not counted against
//! the key's.
//!
//! Two backends, chosen when [`ApiKeys`](crate::ApiKeys) is built:
//! - in this process's memory (the default): GCRA on one atomic per key and
//!   owner, decided without waiting; each instance counts on its own;
//! - in Redis (feature `redis`): the same GCRA in one Lua script per
//!   limited request, so that every instance sharing the server enforces
//!   one allowance.
//!
//! A key without any limit gets no limiter at all: its requests never reach
//! this module.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Arc;
use std::time::Duration;

use crate::limit::RateLimit;
#[cfg(feature = "redis")]
use crate::limit::SharedLimitStats;
use crate::record::{KeyId, KeyRecord, OwnerId};
use crate::rejection::{LimitScope, RateLimitState};

mod local;
#[cfg(feature = "redis")]
mod redis;

use local::Gcra;
#[cfg(feature = "redis")]
pub(crate) use redis::{RedisLimiter, SharedKey, SharedOutcome};

/// A key's and its owner's allowances counted in this process.
#[derive(Debug, Default)]
pub(crate) struct Cells {
    key: Option<Arc<Gcra>>,
    owner: Option<Arc<Gcra>>,
}

impl Cells {
    /// Takes one request from the key's allowance, then from its owner's;
    /// a request the owner's refuses is given back to the key's.
    pub(crate) fn take(&self, now: i64) -> Result<(), (Duration, RateLimitState)> {
        if let Some(key) = &self.key
            && let Err(wait) = key.acquire(now)
        {
            return Err((wait, state(key.limit(), LimitScope::Key)));
        }
        if let Some(owner) = &self.owner
            && let Err(wait) = owner.acquire(now)
        {
            if let Some(key) = &self.key {
                key.refund();
            }
            return Err((wait, state(owner.limit(), LimitScope::Owner)));
        }
        Ok(())
    }
}

/// The limits of one cached key, made when the key is loaded.
#[derive(Debug)]
pub(crate) enum Limiter {
    /// Counted in this process.
    Local(Cells),
    /// Counted in Redis: decided by an asynchronous step.
    #[cfg(feature = "redis")]
    Shared(SharedKey),
}

/// What a limiter says without waiting.
pub(crate) enum Acquired {
    Yes,
    No(Duration, RateLimitState),
    /// The limits are counted elsewhere: ask asynchronously.
    #[cfg(feature = "redis")]
    Ask,
}

impl Limiter {
    /// Takes one request from the key's allowance, then from its owner's.
    /// `now` is read only by the in-process backend.
    pub(crate) fn acquire(&self, now: impl FnOnce() -> i64) -> Acquired {
        match self {
            Self::Local(cells) => match cells.take(now()) {
                Ok(()) => Acquired::Yes,
                Err((wait, state)) => Acquired::No(wait, state),
            },
            #[cfg(feature = "redis")]
            Self::Shared(_) => Acquired::Ask,
        }
    }
}

pub(crate) fn state(limit: RateLimit, scope: LimitScope) -> RateLimitState {
    RateLimitState {
        limit: limit.requests,
        window: limit.window,
        scope,
    }
}

/// The limit settings, from the builder.
#[derive(Debug, Clone, Default)]
pub(crate) struct LimitSettings {
    /// The allowance of a key whose record has none.
    pub(crate) key_default: Option<RateLimit>,
    /// The allowance of an owner without one of its own.
    pub(crate) owner_default: Option<RateLimit>,
    /// Owners' own allowances.
    pub(crate) owners: HashMap<OwnerId, RateLimit>,
}

/// Cells by key and by owner.
struct CellCaches {
    by_key: moka::sync::Cache<KeyId, Arc<Gcra>>,
    by_owner: moka::sync::Cache<OwnerId, Arc<Gcra>>,
}

impl CellCaches {
    fn new(capacity: u64) -> Self {
        Self {
            by_key: cells(capacity),
            by_owner: cells(capacity),
        }
    }

    fn cells(&self, record: &KeyRecord, key: Option<RateLimit>, owner: Option<RateLimit>) -> Cells {
        Cells {
            key: key.map(|limit| cell(&self.by_key, record.id, limit)),
            owner: owner.map(|limit| cell(&self.by_owner, record.owner.clone(), limit)),
        }
    }
}

enum Backend {
    Local(CellCaches),
    /// In Redis; the cells count what fail open admits while it fails.
    #[cfg(feature = "redis")]
    Redis(Arc<RedisLimiter>, CellCaches),
}

/// The limiters of all keys and owners. In process, a key's count survives
/// its cache entry being reloaded.
pub(crate) struct Limiters {
    settings: LimitSettings,
    backend: Backend,
}

impl std::fmt::Debug for Limiters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let backend = match &self.backend {
            Backend::Local(_) => "local",
            #[cfg(feature = "redis")]
            Backend::Redis(..) => "redis",
        };
        f.debug_struct("Limiters")
            .field("key_default", &self.settings.key_default)
            .field("owner_default", &self.settings.owner_default)
            .field("backend", &backend)
            .finish_non_exhaustive()
    }
}

fn cells<K>(capacity: u64) -> moka::sync::Cache<K, Arc<Gcra>>
where
    K: Hash + Eq + Send + Sync + 'static,
{
    moka::sync::Cache::builder()
        .max_capacity(capacity)
        // A limiter idle for an hour holds a full allowance anyway for
        // every window up to an hour.
        .time_to_idle(Duration::from_secs(3600))
        .build()
}

/// The cell of `id`, kept while its allowance stays the same.
fn cell<K>(cells: &moka::sync::Cache<K, Arc<Gcra>>, id: K, limit: RateLimit) -> Arc<Gcra>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
{
    let found = cells.get_with(id.clone(), || Arc::new(Gcra::new(limit)));
    if found.limit() == limit {
        return found;
    }
    // The allowance changed: start afresh with the new one.
    let fresh = Arc::new(Gcra::new(limit));
    cells.insert(id, Arc::clone(&fresh));
    fresh
}

impl Limiters {
    /// Limits counted in this process.
    pub(crate) fn local(settings: LimitSettings, capacity: u64) -> Self {
        Self {
            settings,
            backend: Backend::Local(CellCaches::new(capacity)),
        }
    }

    /// Limits counted in Redis (and, while it fails, up to `capacity` keys
    /// and owners counted here).
    #[cfg(feature = "redis")]
    pub(crate) fn redis(settings: LimitSettings, redis: Arc<RedisLimiter>, capacity: u64) -> Self {
        Self {
            settings,
            backend: Backend::Redis(redis, CellCaches::new(capacity)),
        }
    }

    /// The counters of the Redis backend, if it is the one in use.
    #[cfg(feature = "redis")]
    pub(crate) fn shared_stats(&self) -> Option<SharedLimitStats> {
        match &self.backend {
            Backend::Redis(redis, _) => Some(redis.stats()),
            Backend::Local(_) => None,
        }
    }

    /// The limiter of a key, `None` when neither the key nor its owner has
    /// a limit. Called when a key is loaded into the cache, never on a
    /// cache hit.
    pub(crate) fn for_key(&self, record: &KeyRecord) -> Option<Arc<Limiter>> {
        let key = record.rate_limit.or(self.settings.key_default);
        let owner = self
            .settings
            .owners
            .get(&record.owner)
            .copied()
            .or(self.settings.owner_default);
        if key.is_none() && owner.is_none() {
            return None;
        }
        let limiter = match &self.backend {
            Backend::Local(caches) => Limiter::Local(caches.cells(record, key, owner)),
            #[cfg(feature = "redis")]
            Backend::Redis(redis, caches) => {
                let (here_key, here_owner) = redis.unchecked_limits(key, owner);
                let unchecked = caches.cells(record, here_key, here_owner);
                Limiter::Shared(redis.key(record, key, owner, unchecked))
            }
        };
        Some(Arc::new(limiter))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::KeyRecord;

    fn record(owner: &str, limit: Option<RateLimit>) -> KeyRecord {
        let mut record = KeyRecord::sample();
        record.owner = owner.into();
        record.rate_limit = limit;
        record
    }

    fn cells_of(limiter: &Limiter) -> (Option<Arc<Gcra>>, Option<Arc<Gcra>>) {
        match limiter {
            Limiter::Local(cells) => (cells.key.clone(), cells.owner.clone()),
            #[cfg(feature = "redis")]
            Limiter::Shared(_) => unreachable!("local limiters only"),
        }
    }

    #[test]
    fn a_key_keeps_its_cell_until_its_allowance_changes() {
        let settings = LimitSettings {
            key_default: Some(RateLimit::per_minute(5)),
            ..LimitSettings::default()
        };
        let limiters = Limiters::local(settings, 100);
        let mut key = record("o", None);
        key.id = KeyId::new();
        let a = cells_of(&limiters.for_key(&key).unwrap()).0.unwrap();
        let b = cells_of(&limiters.for_key(&key).unwrap()).0.unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        key.rate_limit = Some(RateLimit::per_minute(50));
        let c = cells_of(&limiters.for_key(&key).unwrap()).0.unwrap();
        assert!(!Arc::ptr_eq(&a, &c));
        assert_eq!(c.limit(), RateLimit::per_minute(50));
        let none = Limiters::local(LimitSettings::default(), 10);
        assert!(none.for_key(&key.clone()).is_some());
        assert!(none.for_key(&record("o", None)).is_none());
    }

    #[test]
    fn an_owner_limit_is_shared_by_the_owners_keys_and_refunds_the_key() {
        let settings = LimitSettings {
            owner_default: Some(RateLimit::per_minute(3)),
            owners: HashMap::from([(OwnerId::new("big"), RateLimit::per_minute(100))]),
            ..LimitSettings::default()
        };
        let limiters = Limiters::local(settings, 100);
        let one = limiters
            .for_key(&record("o", Some(RateLimit::per_minute(2))))
            .unwrap();
        let two = limiters.for_key(&record("o", None)).unwrap();
        let now = || 1_000_000_000_i64;
        assert!(matches!(one.acquire(now), Acquired::Yes));
        assert!(matches!(two.acquire(now), Acquired::Yes));
        assert!(matches!(two.acquire(now), Acquired::Yes));
        // The owner's three are used up; the key's second is given back.
        match one.acquire(now) {
            Acquired::No(_, state) => assert_eq!(state.scope, LimitScope::Owner),
            _ => panic!("the owner's limit must refuse"),
        }
        let (key_cell, _) = cells_of(&one);
        assert!(key_cell.unwrap().acquire(now()).is_ok());
        // Another owner has an allowance of its own.
        let big = limiters.for_key(&record("big", None)).unwrap();
        assert_eq!(
            cells_of(&big).1.unwrap().limit(),
            RateLimit::per_minute(100)
        );
    }
}
