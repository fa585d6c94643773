//! [`CountingStore`]: a decorator that counts the calls made to a store.

use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tokio::sync::watch;

use super::{ChangeCursor, KeyChange, KeyStore, LastUsed, StoreError};
use crate::key::KeyHash;
use crate::record::{KeyId, KeyRecord, OwnerId};

/// Wraps a store and counts the calls made to it, per method, with relaxed
/// atomics (a few nanoseconds per call). Every store method is one query (or
/// one transaction), so the counts are the queries the rest of the crate
/// makes; tests and benchmarks use them to show that a cache hit makes none.
///
/// Share it with `Arc` to keep reading the counts after handing it over:
///
/// ```
/// use std::sync::Arc;
/// use tower_api_keys::{ApiKeys, MemoryStore};
/// use tower_api_keys::store::CountingStore;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), tower_api_keys::BuildError> {
/// let store = Arc::new(CountingStore::new(MemoryStore::new()));
/// let keys = ApiKeys::builder(Arc::clone(&store)).build()?;
/// // ... serve requests ...
/// let calls = store.calls();
/// assert_eq!(calls.find_by_hash, 0);
/// # drop(keys);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Default)]
pub struct CountingStore<S> {
    inner: S,
    counters: Counters,
}

#[derive(Debug, Default)]
struct Counters {
    insert: AtomicU64,
    find_by_hash: AtomicU64,
    find_by_id: AtomicU64,
    find_by_display_prefix: AtomicU64,
    list_by_owner: AtomicU64,
    revoke: AtomicU64,
    expire: AtomicU64,
    record_last_used: AtomicU64,
    change_cursor: AtomicU64,
    changes_since: AtomicU64,
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// The number of calls made to each method of a [`CountingStore`], failed
/// calls included.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoreCalls {
    /// [`KeyStore::insert`].
    pub insert: u64,
    /// [`KeyStore::find_by_hash`]: the lookups behind cache misses.
    pub find_by_hash: u64,
    /// [`KeyStore::find_by_id`].
    pub find_by_id: u64,
    /// [`KeyStore::find_by_display_prefix`].
    pub find_by_display_prefix: u64,
    /// [`KeyStore::list_by_owner`].
    pub list_by_owner: u64,
    /// [`KeyStore::revoke`].
    pub revoke: u64,
    /// [`KeyStore::expire`].
    pub expire: u64,
    /// [`KeyStore::record_last_used`]: one per last-used batch.
    pub record_last_used: u64,
    /// [`KeyStore::change_cursor`].
    pub change_cursor: u64,
    /// [`KeyStore::changes_since`]: the change-log reads of cache followers.
    pub changes_since: u64,
}

impl StoreCalls {
    /// Calls of every method together.
    pub fn total(&self) -> u64 {
        self.insert
            + self.find_by_hash
            + self.find_by_id
            + self.find_by_display_prefix
            + self.list_by_owner
            + self.revoke
            + self.expire
            + self.record_last_used
            + self.change_cursor
            + self.changes_since
    }

    /// The calls made since `earlier` was taken, method by method.
    #[must_use]
    pub fn since(&self, earlier: &StoreCalls) -> StoreCalls {
        StoreCalls {
            insert: self.insert.saturating_sub(earlier.insert),
            find_by_hash: self.find_by_hash.saturating_sub(earlier.find_by_hash),
            find_by_id: self.find_by_id.saturating_sub(earlier.find_by_id),
            find_by_display_prefix: self
                .find_by_display_prefix
                .saturating_sub(earlier.find_by_display_prefix),
            list_by_owner: self.list_by_owner.saturating_sub(earlier.list_by_owner),
            revoke: self.revoke.saturating_sub(earlier.revoke),
            expire: self.expire.saturating_sub(earlier.expire),
            record_last_used: self
                .record_last_used
                .saturating_sub(earlier.record_last_used),
            change_cursor: self.change_cursor.saturating_sub(earlier.change_cursor),
            changes_since: self.changes_since.saturating_sub(earlier.changes_since),
        }
    }
}

impl<S> CountingStore<S> {
    /// Counts the calls made to `inner`, from zero.
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            counters: Counters::default(),
        }
    }

    /// The calls counted so far.
    pub fn calls(&self) -> StoreCalls {
        let c = &self.counters;
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        StoreCalls {
            insert: load(&c.insert),
            find_by_hash: load(&c.find_by_hash),
            find_by_id: load(&c.find_by_id),
            find_by_display_prefix: load(&c.find_by_display_prefix),
            list_by_owner: load(&c.list_by_owner),
            revoke: load(&c.revoke),
            expire: load(&c.expire),
            record_last_used: load(&c.record_last_used),
            change_cursor: load(&c.change_cursor),
            changes_since: load(&c.changes_since),
        }
    }

    /// The wrapped store.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// Unwraps the store.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

#[async_trait]
impl<S: KeyStore> KeyStore for CountingStore<S> {
    async fn insert(&self, record: &KeyRecord) -> Result<(), StoreError> {
        bump(&self.counters.insert);
        self.inner.insert(record).await
    }

    async fn find_by_hash(&self, hash: &KeyHash) -> Result<Option<KeyRecord>, StoreError> {
        bump(&self.counters.find_by_hash);
        self.inner.find_by_hash(hash).await
    }

    async fn find_by_id(&self, id: &KeyId) -> Result<Option<KeyRecord>, StoreError> {
        bump(&self.counters.find_by_id);
        self.inner.find_by_id(id).await
    }

    async fn find_by_display_prefix(
        &self,
        prefix: &str,
        limit: usize,
    ) -> Result<Vec<KeyRecord>, StoreError> {
        bump(&self.counters.find_by_display_prefix);
        self.inner.find_by_display_prefix(prefix, limit).await
    }

    async fn list_by_owner(&self, owner: &OwnerId) -> Result<Vec<KeyRecord>, StoreError> {
        bump(&self.counters.list_by_owner);
        self.inner.list_by_owner(owner).await
    }

    async fn revoke(
        &self,
        owner: &OwnerId,
        id: &KeyId,
        at: DateTime<Utc>,
        reason: Option<&str>,
    ) -> Result<Option<KeyRecord>, StoreError> {
        bump(&self.counters.revoke);
        self.inner.revoke(owner, id, at, reason).await
    }

    async fn expire(
        &self,
        owner: &OwnerId,
        id: &KeyId,
        at: DateTime<Utc>,
    ) -> Result<Option<KeyRecord>, StoreError> {
        bump(&self.counters.expire);
        self.inner.expire(owner, id, at).await
    }

    async fn record_last_used(&self, batch: &[LastUsed]) -> Result<(), StoreError> {
        bump(&self.counters.record_last_used);
        self.inner.record_last_used(batch).await
    }

    async fn change_cursor(&self) -> Result<ChangeCursor, StoreError> {
        bump(&self.counters.change_cursor);
        self.inner.change_cursor().await
    }

    async fn changes_since(
        &self,
        cursor: ChangeCursor,
        limit: usize,
    ) -> Result<Vec<KeyChange>, StoreError> {
        bump(&self.counters.changes_since);
        self.inner.changes_since(cursor, limit).await
    }

    fn change_signal(&self) -> Option<watch::Receiver<u64>> {
        self.inner.change_signal()
    }
}
