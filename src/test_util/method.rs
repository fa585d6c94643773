//! [`StoreMethod`]: the methods of a store, as the decorators name them.

/// A method of [`KeyStore`](crate::store::KeyStore) or its
/// [`ChangeFeed`](crate::store::ChangeFeed), as decorators name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StoreMethod {
    /// [`KeyStore::insert`](crate::store::KeyStore::insert).
    Insert,
    /// [`KeyStore::find_by_hash`](crate::store::KeyStore::find_by_hash).
    FindByHash,
    /// [`KeyStore::find_by_id`](crate::store::KeyStore::find_by_id).
    FindById,
    /// [`KeyStore::list`](crate::store::KeyStore::list).
    List,
    /// [`KeyStore::update`](crate::store::KeyStore::update).
    Update,
    /// [`KeyStore::record_last_used`](crate::store::KeyStore::record_last_used).
    RecordLastUsed,
    /// [`ChangeFeed::changes`](crate::store::ChangeFeed::changes).
    Changes,
    /// [`ChangeFeed::prune_changes`](crate::store::ChangeFeed::prune_changes).
    PruneChanges,
}

impl StoreMethod {
    /// Every method, in declaration order.
    pub const ALL: [StoreMethod; 8] = [
        Self::Insert,
        Self::FindByHash,
        Self::FindById,
        Self::List,
        Self::Update,
        Self::RecordLastUsed,
        Self::Changes,
        Self::PruneChanges,
    ];

    /// The method's position in [`ALL`](Self::ALL).
    pub(crate) const fn index(self) -> usize {
        self as usize
    }
}
