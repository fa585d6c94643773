//! The [`KeyStore`] trait that every backend implements, its
//! [`ChangeFeed`] supertrait, and their error type.
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
//! With the `test-util` feature, [`test_util`](crate::test_util) has
//! decorators that count a store's calls or make them fail, wait or hold.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::key::KeyHash;
use crate::record::{KeyId, KeyRecord, OwnerId};

mod change_feed;
pub(crate) mod forward;
mod list;
mod memory;
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod sql;
#[cfg(feature = "sqlite")]
mod sqlite;
mod update;

pub use change_feed::{
    ChangeBatch, ChangeCursor, ChangeFeed, ChangeNotifier, ChangeSignal, KeyChange,
};
pub use list::{InvalidCursor, KeyCursor, KeyPage, ListKeys};
pub use memory::MemoryStore;
#[cfg(feature = "postgres")]
pub use postgres::PostgresStore;
#[cfg(feature = "sqlite")]
pub use sqlite::SqliteStore;
/// The sqlx version the SQL stores are built on, for naming its pools,
/// options and errors.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub use sqlx;
pub use update::KeyUpdate;

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
    /// The store's data was replaced under it (a SQLite file deleted and
    /// made anew): it refuses to go on serving the old data.
    #[error("the key store was replaced under this process: {0}")]
    Replaced(String),
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

/// Where API keys live.
///
/// Implementations are `Send + Sync + 'static` and are used as
/// `Arc<dyn KeyStore>`. Every method is one query (the SQL stores'
/// [`update`](Self::update) reads the row again when it changed nothing);
/// none is called on a cache hit. The same conformance suite runs against
/// every backend this crate ships.
///
/// A backend writes six methods here and
/// [`ChangeFeed::changes`] (the supertrait's other two have defaults).
///
/// Requirements an implementation must meet:
///
/// 1. [`insert`](Self::insert) refuses a duplicate id or hash with
///    [`StoreError::Conflict`].
/// 2. [`update`](Self::update) applies a [`KeyUpdate`] as
///    [`KeyUpdate::apply_to`] does, atomically: a revocation is
///    irreversible and idempotent (the first `revoked_at` and reason are
///    kept), an expiry only ever moves earlier.
/// 3. [`record_last_used`](Self::record_last_used) only moves a timestamp
///    forward, also when batches race, and writes a whole batch in one
///    statement where the backend allows.
/// 4. Every insert, and every update that changed a record, appends one
///    [`KeyChange`] to the [`ChangeFeed`] (whose own requirements say how).
/// 5. [`list`](Self::list) pages through keys newest first (by id, which is
///    time-ordered), filtered as the [`ListKeys`] says.
/// 6. Times are kept to the microsecond at least; finer digits may be
///    dropped, towards the past (the SQL stores keep microseconds).
/// 7. A store that cannot reach its backend answers
///    [`StoreError::Unavailable`] (or [`StoreError::Timeout`]) promptly, so
///    requests get a 503 rather than hang.
#[async_trait]
pub trait KeyStore: ChangeFeed {
    /// Stores a new key.
    async fn insert(&self, record: &KeyRecord) -> Result<(), StoreError>;

    /// The key with this hash, whatever its status.
    async fn find_by_hash(&self, hash: &KeyHash) -> Result<Option<KeyRecord>, StoreError>;

    /// The key with this id, whatever its owner. For administration; the
    /// owner-scoped calls are in [`ApiKeys`](crate::ApiKeys).
    async fn find_by_id(&self, id: &KeyId) -> Result<Option<KeyRecord>, StoreError>;

    /// One page of keys, newest first, as `query` filters them (every key,
    /// one owner's, or those whose display prefix starts with some text).
    async fn list(&self, query: &ListKeys) -> Result<KeyPage, StoreError>;

    /// Applies `update` to the owner's key `id`. Returns the record as
    /// stored afterwards (also when the update changed nothing), or `None`
    /// when the owner has no such key.
    async fn update(
        &self,
        owner: &OwnerId,
        id: &KeyId,
        update: &KeyUpdate,
    ) -> Result<Option<KeyRecord>, StoreError>;

    /// Writes a batch of last-used times; a time earlier than the stored one
    /// is ignored. Unknown ids are ignored.
    async fn record_last_used(&self, batch: &[LastUsed]) -> Result<(), StoreError>;
}

forward::forward_key_store! {
    impl[S: KeyStore + ?Sized] for Arc<S>, to |this| &**this
}
