//! [`CountingStore`]: a decorator that counts the calls made to a store.

use std::sync::atomic::{AtomicU64, Ordering};

use super::StoreMethod;
use crate::store::forward::forward_key_store;

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
/// use tower_api_keys::test_util::CountingStore;
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
    counters: [AtomicU64; StoreMethod::ALL.len()],
}

/// The number of calls made to each method of a [`CountingStore`], failed
/// calls included.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoreCalls {
    /// [`KeyStore::insert`](crate::store::KeyStore::insert).
    pub insert: u64,
    /// [`KeyStore::find_by_hash`](crate::store::KeyStore::find_by_hash): the
    /// lookups behind cache misses.
    pub find_by_hash: u64,
    /// [`KeyStore::find_by_id`](crate::store::KeyStore::find_by_id).
    pub find_by_id: u64,
    /// [`KeyStore::list`](crate::store::KeyStore::list).
    pub list: u64,
    /// [`KeyStore::update`](crate::store::KeyStore::update): revocations,
    /// renames and expiry changes.
    pub update: u64,
    /// [`KeyStore::record_last_used`](crate::store::KeyStore::record_last_used):
    /// one per last-used batch.
    pub record_last_used: u64,
    /// [`ChangeFeed::changes`](crate::store::ChangeFeed::changes): the
    /// change-feed reads of cache followers.
    pub changes: u64,
    /// [`ChangeFeed::prune_changes`](crate::store::ChangeFeed::prune_changes).
    pub prune_changes: u64,
}

impl StoreCalls {
    pub(super) fn from_fn(mut count: impl FnMut(StoreMethod) -> u64) -> Self {
        Self {
            insert: count(StoreMethod::Insert),
            find_by_hash: count(StoreMethod::FindByHash),
            find_by_id: count(StoreMethod::FindById),
            list: count(StoreMethod::List),
            update: count(StoreMethod::Update),
            record_last_used: count(StoreMethod::RecordLastUsed),
            changes: count(StoreMethod::Changes),
            prune_changes: count(StoreMethod::PruneChanges),
        }
    }

    /// The calls of one method.
    pub fn get(&self, method: StoreMethod) -> u64 {
        match method {
            StoreMethod::Insert => self.insert,
            StoreMethod::FindByHash => self.find_by_hash,
            StoreMethod::FindById => self.find_by_id,
            StoreMethod::List => self.list,
            StoreMethod::Update => self.update,
            StoreMethod::RecordLastUsed => self.record_last_used,
            StoreMethod::Changes => self.changes,
            StoreMethod::PruneChanges => self.prune_changes,
        }
    }

    /// Calls of every method together.
    pub fn total(&self) -> u64 {
        StoreMethod::ALL.iter().map(|m| self.get(*m)).sum()
    }

    /// The calls made since `earlier` was taken, method by method.
    #[must_use]
    pub fn since(&self, earlier: &StoreCalls) -> StoreCalls {
        Self::from_fn(|m| self.get(m).saturating_sub(earlier.get(m)))
    }
}

impl<S> CountingStore<S> {
    /// Counts the calls made to `inner`, from zero.
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            counters: Default::default(),
        }
    }

    /// The calls counted so far.
    pub fn calls(&self) -> StoreCalls {
        StoreCalls::from_fn(|m| self.counters[m.index()].load(Ordering::Relaxed))
    }

    /// The wrapped store.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// Unwraps the store.
    pub fn into_inner(self) -> S {
        self.inner
    }

    fn count(&self, method: StoreMethod) {
        self.counters[method.index()].fetch_add(1, Ordering::Relaxed);
    }
}

forward_key_store! {
    impl[S: crate::store::KeyStore] for CountingStore<S>,
    to |this| &this.inner,
    before |this, method: StoreMethod| {
        this.count(method);
        Ok::<(), crate::store::StoreError>(())
    }
}
