//! The moka-backed cache in front of the store.
//!
//! - Known keys are cached with a TTL; unknown keys in a cache of their own
//!   with a short TTL, so a flood of random keys cannot push valid keys out.
//! - Concurrent misses for one key share one store lookup.
//! - A key that changes (revoked, expired earlier, created) is dropped from
//!   both caches, and a lookup that raced with the change is not trusted.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures_util::FutureExt as _;
use moka::future::Cache;

use super::metrics::Metrics;
use super::rate_limit::{Limiter, Limiters};
use crate::identity::IdentityEntry;
use crate::key::KeyHash;
use crate::record::KeyRecord;
use crate::store::{KeyStore, StoreError};

/// A cached known key. Handlers receive it (as
/// [`AuthenticatedKey`](crate::AuthenticatedKey)) without a copy.
#[derive(Debug)]
pub(crate) struct CachedKey {
    record: KeyRecord,
    /// Whether this entry is queued for the last-used recorder: set by the
    /// first use after a flush, cleared by the flush.
    queued: AtomicBool,
    /// Whether this entry's first use or expiry was announced already.
    first_use_announced: AtomicBool,
    expiry_announced: AtomicBool,
    /// When the store was asked for this record.
    loaded_at: Instant,
    /// Until when (microseconds since the epoch, exclusive) the key is
    /// active: its expiry, `i64::MAX` without one, `i64::MIN` once revoked.
    active_until_micros: i64,
    /// The key's and its owner's allowances, when either has one.
    pub(crate) limiter: Option<Arc<Limiter>>,
}

impl IdentityEntry for CachedKey {
    fn record(&self) -> &KeyRecord {
        &self.record
    }

    fn loaded_at(&self) -> Instant {
        self.loaded_at
    }
}

impl CachedKey {
    fn new(record: KeyRecord, loaded_at: Instant, limiter: Option<Arc<Limiter>>) -> Self {
        let active_until_micros = match (record.revoked_at, record.expires_at) {
            (Some(_), _) => i64::MIN,
            (None, Some(at)) => at.timestamp_micros(),
            (None, None) => i64::MAX,
        };
        Self {
            record,
            queued: AtomicBool::new(false),
            first_use_announced: AtomicBool::new(false),
            expiry_announced: AtomicBool::new(false),
            loaded_at,
            active_until_micros,
            limiter,
        }
    }

    pub(crate) fn record(&self) -> &KeyRecord {
        &self.record
    }

    /// Whether the key's status can depend on the time: it has an expiry, or
    /// is revoked. A key without either needs no clock reading.
    pub(crate) fn depends_on_time(&self) -> bool {
        self.active_until_micros != i64::MAX
    }

    /// Whether the key is active at `now_micros`; the same answer as
    /// [`KeyRecord::status_at`], without date arithmetic.
    pub(crate) fn is_active_at(&self, now_micros: i64) -> bool {
        now_micros < self.active_until_micros
    }

    /// Notes a use; true when the entry must be queued for the recorder (its
    /// first use since the last flush). One atomic load when already queued.
    pub(crate) fn mark_used(&self) -> bool {
        !self.queued.load(Ordering::Relaxed) && !self.queued.swap(true, Ordering::AcqRel)
    }

    /// True the first time it is called for this entry.
    pub(crate) fn announce_first_use(&self) -> bool {
        !self.first_use_announced.swap(true, Ordering::AcqRel)
    }

    /// True the first time it is called for this entry.
    pub(crate) fn announce_expiry(&self) -> bool {
        !self.expiry_announced.swap(true, Ordering::AcqRel)
    }

    /// Takes the entry off the queue for a flush: a use after this queues it
    /// again.
    pub(crate) fn take_use(&self) {
        self.queued.store(false, Ordering::Release);
    }
}

/// What the cache holds for a hash, read without waiting.
#[derive(Debug)]
pub(crate) enum Cached {
    Known(Arc<CachedKey>),
    Unknown,
    Miss,
}

/// Why a lookup through the cache failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LoadError {
    #[error("no such key")]
    NotFound,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Cache settings.
#[derive(Debug, Clone)]
pub(crate) struct CacheConfig {
    pub(crate) capacity: u64,
    pub(crate) ttl: Duration,
    pub(crate) negative_capacity: u64,
    pub(crate) negative_ttl: Duration,
    pub(crate) lookup_timeout: Duration,
}

/// The caches' hasher. Their keys are SHA-256 outputs, already uniform, so
/// SipHash's strength buys nothing that a fast hasher seeded at random per
/// process does not: without the seed nobody can tell which keys share a
/// bucket, and grinding SHA-256 outputs offline needs the seed. It took
/// about 370 instructions off each request over the wire (BENCHMARKS.md).
type FastHash = foldhash::fast::RandomState;

#[derive(Clone)]
pub(crate) struct KeyCache {
    known: Cache<KeyHash, Arc<CachedKey>, FastHash>,
    unknown: Cache<KeyHash, (), FastHash>,
    /// When each recently changed key changed; a lookup that started before
    /// that may have read the old record.
    changed: Cache<KeyHash, Instant, FastHash>,
    /// When everything was last forgotten at once: any read before it may
    /// predate a change that the change feed will not replay.
    all_changed: Arc<Mutex<Option<Instant>>>,
    lookup_timeout: Duration,
    limiters: Arc<Limiters>,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for KeyCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyCache")
            .field("known", &self.known.entry_count())
            .field("unknown", &self.unknown.entry_count())
            .finish_non_exhaustive()
    }
}

impl KeyCache {
    pub(crate) fn new(
        config: &CacheConfig,
        limiters: Arc<Limiters>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            known: Cache::builder()
                .name("tower-api-keys known")
                .max_capacity(config.capacity)
                .time_to_live(config.ttl)
                .build_with_hasher(FastHash::default()),
            unknown: Cache::builder()
                .name("tower-api-keys unknown")
                .max_capacity(config.negative_capacity)
                .time_to_live(config.negative_ttl)
                .build_with_hasher(FastHash::default()),
            changed: Cache::builder()
                .max_capacity(config.capacity.max(1024))
                .time_to_live(config.lookup_timeout + Duration::from_secs(5))
                .build_with_hasher(FastHash::default()),
            all_changed: Arc::default(),
            lookup_timeout: config.lookup_timeout,
            limiters,
            metrics,
        }
    }

    /// Reads the cache without waiting. Moka's reads finish at once except
    /// when they help with its housekeeping; then this reports a miss and the
    /// caller takes the asynchronous path.
    pub(crate) fn get_now(&self, hash: &KeyHash) -> Cached {
        // Pinned in place: moka's read future is large, and moving it into
        // `now_or_never` by value would copy it.
        let mut known = std::pin::pin!(self.known.get(hash));
        match known.as_mut().now_or_never() {
            Some(Some(entry)) => return Cached::Known(entry),
            None => return Cached::Miss,
            Some(None) => {}
        }
        let mut unknown = std::pin::pin!(self.unknown.get(hash));
        match unknown.as_mut().now_or_never() {
            Some(Some(())) => Cached::Unknown,
            _ => Cached::Miss,
        }
    }

    /// Finds a key through the cache; concurrent calls for one hash share one
    /// store lookup, cut off after the lookup timeout.
    pub(crate) async fn get_or_load(
        &self,
        hash: KeyHash,
        store: &dyn KeyStore,
    ) -> Result<Arc<CachedKey>, Arc<LoadError>> {
        if let Some(entry) = self.known.get(&hash).await {
            return Ok(entry);
        }
        if self.unknown.get(&hash).await.is_some() {
            return Err(Arc::new(LoadError::NotFound));
        }
        // Whether this call's lookup ran, or it waited on another's.
        let ran = AtomicBool::new(false);
        let entry = self
            .known
            .try_get_with(hash, async {
                ran.store(true, Ordering::Relaxed);
                self.load(hash, store).await
            })
            .await;
        if !ran.load(Ordering::Relaxed) {
            self.metrics.coalesced();
        }
        let entry = entry?;
        if !self.changed_after(&hash, entry.loaded_at).await {
            return Ok(entry);
        }
        // The key changed while it was being read: read it again, alone.
        self.known.invalidate(&hash).await;
        let entry = self.load(hash, store).await.map_err(Arc::new)?;
        self.known.insert(hash, Arc::clone(&entry)).await;
        Ok(entry)
    }

    async fn load(&self, hash: KeyHash, store: &dyn KeyStore) -> Result<Arc<CachedKey>, LoadError> {
        let started = Instant::now();
        let found = tokio::time::timeout(self.lookup_timeout, store.find_by_hash(&hash))
            .await
            .map_err(|_| StoreError::Timeout)
            .and_then(|found| found);
        self.metrics.store_lookup(started.elapsed(), found.is_err());
        let found = found?;
        match found {
            Some(record) => {
                let limiter = self.limiters.for_key(&record);
                Ok(Arc::new(CachedKey::new(record, started, limiter)))
            }
            None => {
                if !self.changed_after(&hash, started).await {
                    self.unknown.insert(hash, ()).await;
                }
                Err(LoadError::NotFound)
            }
        }
    }

    /// Whether the key changed (through this process or the change feed)
    /// at or after `since`, as far as the cache still remembers.
    pub(crate) async fn changed_after(&self, hash: &KeyHash, since: Instant) -> bool {
        let all = *self
            .all_changed
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        all.is_some_and(|at| at >= since)
            || self.changed.get(hash).await.is_some_and(|at| at >= since)
    }

    /// Forgets what is cached for a key that changed.
    pub(crate) async fn invalidate(&self, hash: &KeyHash) {
        self.changed.insert(*hash, Instant::now()).await;
        self.known.invalidate(hash).await;
        self.unknown.invalidate(hash).await;
    }

    /// Forgets everything (after the change log could not be followed).
    pub(crate) fn invalidate_all(&self) {
        *self
            .all_changed
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(Instant::now());
        self.known.invalidate_all();
        self.unknown.invalidate_all();
    }

    pub(crate) fn entry_counts(&self) -> (u64, u64) {
        (self.known.entry_count(), self.unknown.entry_count())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> KeyRecord {
        KeyRecord::sample()
    }

    #[test]
    fn an_entry_is_queued_once_per_flush() {
        let entry = CachedKey::new(record(), Instant::now(), None);
        assert!(entry.mark_used());
        assert!(!entry.mark_used());
        entry.take_use();
        assert!(entry.mark_used());
        assert!(!entry.depends_on_time());
        assert!(entry.is_active_at(i64::MAX - 1));
    }
}
