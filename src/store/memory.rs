//! The in-memory store: for tests, examples and single-process apps whose
//! keys need not outlive the process.

use std::collections::HashMap;
use std::sync::{PoisonError, RwLock};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tokio::sync::watch;

use super::{ChangeCursor, KeyChange, KeyStore, LastUsed, StoreError};
use crate::key::KeyHash;
use crate::record::{KeyId, KeyRecord, OwnerId};

/// Keeps keys in process memory. Cloning is not offered: share it with
/// `Arc`. Changes are pushed to followers at once.
///
/// ```
/// use tower_api_keys::{KeyStore, MemoryStore};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let store = MemoryStore::new();
/// assert!(store.list_by_owner(&"nobody".into()).await.unwrap().is_empty());
/// # }
/// ```
#[derive(Debug)]
pub struct MemoryStore {
    state: RwLock<State>,
    signal: watch::Sender<u64>,
}

#[derive(Debug, Default)]
struct State {
    by_id: HashMap<KeyId, KeyRecord>,
    by_hash: HashMap<KeyHash, KeyId>,
    changes: Vec<KeyChange>,
}

impl State {
    fn log_change(&mut self, id: KeyId, hash: KeyHash) -> ChangeCursor {
        let cursor = ChangeCursor(self.changes.len() as i64 + 1);
        self.changes.push(KeyChange { cursor, id, hash });
        cursor
    }

    fn owned_mut(&mut self, owner: &OwnerId, id: &KeyId) -> Option<&mut KeyRecord> {
        self.by_id.get_mut(id).filter(|r| &r.owner == owner)
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self {
            state: RwLock::default(),
            signal: watch::Sender::new(0),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(PoisonError::into_inner)
    }

    fn announce(&self, cursor: ChangeCursor) {
        self.signal.send_replace(cursor.0 as u64);
    }

    /// Applies `change` to the owner's key `id` and logs it when it changed
    /// something.
    fn update_owned(
        &self,
        owner: &OwnerId,
        id: &KeyId,
        change: impl FnOnce(&mut KeyRecord) -> bool,
    ) -> Option<KeyRecord> {
        let mut state = self.write();
        let record = state.owned_mut(owner, id)?;
        let changed = change(record);
        let record = record.clone();
        if changed {
            let cursor = state.log_change(record.id, record.hash);
            drop(state);
            self.announce(cursor);
        }
        Some(record)
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

#[async_trait]
impl KeyStore for MemoryStore {
    async fn insert(&self, record: &KeyRecord) -> Result<(), StoreError> {
        let mut state = self.write();
        if state.by_id.contains_key(&record.id) || state.by_hash.contains_key(&record.hash) {
            return Err(StoreError::Conflict);
        }
        state.by_hash.insert(record.hash, record.id);
        state.by_id.insert(record.id, record.clone());
        let cursor = state.log_change(record.id, record.hash);
        drop(state);
        self.announce(cursor);
        Ok(())
    }

    async fn find_by_hash(&self, hash: &KeyHash) -> Result<Option<KeyRecord>, StoreError> {
        let state = self.read();
        Ok(state
            .by_hash
            .get(hash)
            .and_then(|id| state.by_id.get(id))
            .cloned())
    }

    async fn find_by_id(&self, id: &KeyId) -> Result<Option<KeyRecord>, StoreError> {
        Ok(self.read().by_id.get(id).cloned())
    }

    async fn find_by_display_prefix(
        &self,
        prefix: &str,
        limit: usize,
    ) -> Result<Vec<KeyRecord>, StoreError> {
        let state = self.read();
        let mut found: Vec<KeyRecord> = state
            .by_id
            .values()
            .filter(|r| r.display_prefix.starts_with(prefix))
            .cloned()
            .collect();
        found.sort_by_key(|r| r.id);
        found.truncate(limit);
        Ok(found)
    }

    async fn list_by_owner(&self, owner: &OwnerId) -> Result<Vec<KeyRecord>, StoreError> {
        let mut keys: Vec<KeyRecord> = self
            .read()
            .by_id
            .values()
            .filter(|r| &r.owner == owner)
            .cloned()
            .collect();
        keys.sort_by_key(|r| (r.created_at, r.id));
        Ok(keys)
    }

    async fn revoke(
        &self,
        owner: &OwnerId,
        id: &KeyId,
        at: DateTime<Utc>,
        reason: Option<&str>,
    ) -> Result<Option<KeyRecord>, StoreError> {
        Ok(self.update_owned(owner, id, |record| {
            if record.revoked_at.is_some() {
                return false;
            }
            record.revoked_at = Some(at);
            record.revoked_reason = reason.map(str::to_owned);
            true
        }))
    }

    async fn expire(
        &self,
        owner: &OwnerId,
        id: &KeyId,
        at: DateTime<Utc>,
    ) -> Result<Option<KeyRecord>, StoreError> {
        Ok(self.update_owned(owner, id, |record| {
            if record.expires_at.is_some_and(|current| current <= at) {
                return false;
            }
            record.expires_at = Some(at);
            true
        }))
    }

    async fn record_last_used(&self, batch: &[LastUsed]) -> Result<(), StoreError> {
        let mut state = self.write();
        for used in batch {
            if let Some(record) = state.by_id.get_mut(&used.id)
                && record.last_used_at.is_none_or(|current| current < used.at)
            {
                record.last_used_at = Some(used.at);
            }
        }
        Ok(())
    }

    async fn change_cursor(&self) -> Result<ChangeCursor, StoreError> {
        Ok(ChangeCursor(self.read().changes.len() as i64))
    }

    async fn changes_since(
        &self,
        cursor: ChangeCursor,
        limit: usize,
    ) -> Result<Vec<KeyChange>, StoreError> {
        let state = self.read();
        let start = usize::try_from(cursor.0.max(0)).unwrap_or(usize::MAX);
        Ok(state
            .changes
            .iter()
            .skip(start)
            .take(limit)
            .copied()
            .collect())
    }

    fn change_signal(&self) -> Option<watch::Receiver<u64>> {
        Some(self.signal.subscribe())
    }
}
