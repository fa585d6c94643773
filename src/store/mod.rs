//! The [`KeyStore`] trait that every backend implements, and its error type.
//!
//! A store is small on purpose: the cache, the last-used recorder and the
//! management calls are built on top of it, once, for every backend.
//!
//! | store | feature | for |
//! |---|---|---|
//! | [`MemoryStore`] | (always) | tests, examples, one process whose keys need not outlive it |
//! | `SqliteStore` | `sqlite` | one machine; several processes may share the file |
//! | `PostgresStore` | `postgres` | any number of instances sharing one database |
//!
//! [`CountingStore`] wraps any of them and counts the calls made to it.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tokio::sync::watch;

use crate::key::KeyHash;
use crate::record::{KeyId, KeyRecord, OwnerId};

mod counting;
mod memory;
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod sql;
#[cfg(feature = "sqlite")]
mod sqlite;

pub use counting::{CountingStore, StoreCalls};
pub use memory::MemoryStore;
#[cfg(feature = "postgres")]
pub use postgres::PostgresStore;
#[cfg(feature = "sqlite")]
pub use sqlite::SqliteStore;
/// The sqlx version the SQL stores are built on, for naming its pools,
/// options and errors.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub use sqlx;

/// A boxed error from a backend driver.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why a store call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The backend could not be reached or failed to answer.
    #[error("the key store is unavailable: {0}")]
    Unavailable(#[source] BoxError),
    /// The call did not finish within the configured time.
    #[error("the key store did not answer in time")]
    Timeout,
    /// A key with the same id or hash already exists.
    #[error("a key with the same id or hash already exists")]
    Conflict,
    /// The backend holds data this crate cannot read.
    #[error("the key store holds invalid data: {0}")]
    Corrupt(String),
}

impl StoreError {
    /// Wraps a driver error as [`StoreError::Unavailable`].
    pub fn unavailable(error: impl Into<BoxError>) -> Self {
        Self::Unavailable(error.into())
    }
}

/// One entry of a last-used batch: the key and the latest time it was used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LastUsed {
    /// The key.
    pub id: KeyId,
    /// When it was last used.
    pub at: DateTime<Utc>,
}

/// Position in a store's change log. Changes are numbered from 1 upwards;
/// `ChangeCursor(0)` is before the first change.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ChangeCursor(pub i64);

/// A key whose stored record changed (created, revoked, or given an earlier
/// expiry). Caches that follow the change log drop what they hold for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyChange {
    /// Position in the change log.
    pub cursor: ChangeCursor,
    /// The key that changed.
    pub id: KeyId,
    /// Its hash, which is what caches are keyed by.
    pub hash: KeyHash,
}

/// Where API keys live.
///
/// Implementations are `Send + Sync + 'static` and are used as
/// `Arc<dyn KeyStore>`. Every method is one query (the SQL stores' `revoke`
/// and `expire` read the row again when they changed nothing); none is
/// called on a cache hit. The same conformance suite runs against every
/// backend this crate ships.
///
/// Requirements an implementation must meet:
///
/// 1. [`insert`](Self::insert) refuses a duplicate id or hash with
///    [`StoreError::Conflict`].
/// 2. [`revoke`](Self::revoke) is irreversible and idempotent: the first
///    `revoked_at` (and reason) is kept.
/// 3. [`record_last_used`](Self::record_last_used) only moves a timestamp
///    forward, also when batches race, and writes a whole batch in one
///    statement where the backend allows.
/// 4. Every insert, revoke and expiry change appends one [`KeyChange`] to a
///    change log that [`changes_since`](Self::changes_since) reads in order;
///    a call that changes nothing appends nothing. Once a change numbered N
///    can be read, no change numbered below N appears later, so a follower
///    that has read up to N has missed nothing.
/// 5. Times are kept to the microsecond at least; finer digits may be
///    dropped, towards the past (the SQL stores keep microseconds).
/// 6. A store that cannot reach its backend answers
///    [`StoreError::Unavailable`] (or [`StoreError::Timeout`]) promptly, so
///    requests get a 503 rather than hang.
#[async_trait]
pub trait KeyStore: Send + Sync + 'static {
    /// Stores a new key.
    async fn insert(&self, record: &KeyRecord) -> Result<(), StoreError>;

    /// The key with this hash, whatever its status.
    async fn find_by_hash(&self, hash: &KeyHash) -> Result<Option<KeyRecord>, StoreError>;

    /// The key with this id, whatever its owner. For administration; the
    /// owner-scoped calls are in [`ApiKeys`](crate::ApiKeys).
    async fn find_by_id(&self, id: &KeyId) -> Result<Option<KeyRecord>, StoreError>;

    /// The keys whose display prefix starts with `prefix` (for administration
    /// by prefix). At most `limit` records.
    async fn find_by_display_prefix(
        &self,
        prefix: &str,
        limit: usize,
    ) -> Result<Vec<KeyRecord>, StoreError>;

    /// The owner's keys, oldest first.
    async fn list_by_owner(&self, owner: &OwnerId) -> Result<Vec<KeyRecord>, StoreError>;

    /// Revokes the owner's key `id` at `at`. Returns the record as stored
    /// afterwards, or `None` when the owner has no such key. Revoking a
    /// revoked key changes nothing and is not an error.
    async fn revoke(
        &self,
        owner: &OwnerId,
        id: &KeyId,
        at: DateTime<Utc>,
        reason: Option<&str>,
    ) -> Result<Option<KeyRecord>, StoreError>;

    /// Brings the owner's key `id` to expire at `at`, unless it already
    /// expires earlier. Returns the record as stored afterwards, or `None`
    /// when the owner has no such key.
    async fn expire(
        &self,
        owner: &OwnerId,
        id: &KeyId,
        at: DateTime<Utc>,
    ) -> Result<Option<KeyRecord>, StoreError>;

    /// Writes a batch of last-used times; a time earlier than the stored one
    /// is ignored. Unknown ids are ignored.
    async fn record_last_used(&self, batch: &[LastUsed]) -> Result<(), StoreError>;

    /// The newest position of the change log.
    async fn change_cursor(&self) -> Result<ChangeCursor, StoreError>;

    /// Changes after `cursor`, oldest first, at most `limit`.
    async fn changes_since(
        &self,
        cursor: ChangeCursor,
        limit: usize,
    ) -> Result<Vec<KeyChange>, StoreError>;

    /// A signal that changes may be waiting, for backends that can push
    /// (PostgreSQL `LISTEN/NOTIFY`, the in-memory store). Caches poll
    /// [`changes_since`](Self::changes_since) whenever it fires, and on a
    /// timer in any case. `None` (the default) means polling only.
    fn change_signal(&self) -> Option<watch::Receiver<u64>> {
        None
    }
}

#[async_trait]
impl<S: KeyStore + ?Sized> KeyStore for Arc<S> {
    async fn insert(&self, record: &KeyRecord) -> Result<(), StoreError> {
        (**self).insert(record).await
    }
    async fn find_by_hash(&self, hash: &KeyHash) -> Result<Option<KeyRecord>, StoreError> {
        (**self).find_by_hash(hash).await
    }
    async fn find_by_id(&self, id: &KeyId) -> Result<Option<KeyRecord>, StoreError> {
        (**self).find_by_id(id).await
    }
    async fn find_by_display_prefix(
        &self,
        prefix: &str,
        limit: usize,
    ) -> Result<Vec<KeyRecord>, StoreError> {
        (**self).find_by_display_prefix(prefix, limit).await
    }
    async fn list_by_owner(&self, owner: &OwnerId) -> Result<Vec<KeyRecord>, StoreError> {
        (**self).list_by_owner(owner).await
    }
    async fn revoke(
        &self,
        owner: &OwnerId,
        id: &KeyId,
        at: DateTime<Utc>,
        reason: Option<&str>,
    ) -> Result<Option<KeyRecord>, StoreError> {
        (**self).revoke(owner, id, at, reason).await
    }
    async fn expire(
        &self,
        owner: &OwnerId,
        id: &KeyId,
        at: DateTime<Utc>,
    ) -> Result<Option<KeyRecord>, StoreError> {
        (**self).expire(owner, id, at).await
    }
    async fn record_last_used(&self, batch: &[LastUsed]) -> Result<(), StoreError> {
        (**self).record_last_used(batch).await
    }
    async fn change_cursor(&self) -> Result<ChangeCursor, StoreError> {
        (**self).change_cursor().await
    }
    async fn changes_since(
        &self,
        cursor: ChangeCursor,
        limit: usize,
    ) -> Result<Vec<KeyChange>, StoreError> {
        (**self).changes_since(cursor, limit).await
    }
    fn change_signal(&self) -> Option<watch::Receiver<u64>> {
        (**self).change_signal()
    }
}
