//! The in-memory store: for tests, examples and single-process apps whose
//! keys need not outlive the process.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{PoisonError, RwLock};

use super::{
    ChangeBatch, ChangeCursor, ChangeFeed, ChangeNotifier, ChangeSignal, KeyChange, KeyPage,
    KeyStore, KeyUpdate, LastUsed, ListKeys, StoreError,
};
use crate::key::KeyHash;
use crate::record::{KeyId, KeyRecord, OwnerId};
use async_trait::async_trait;
use chrono::{DateTime, Utc};

/// Keeps keys in process memory. Cloning is not offered: share it with
/// `Arc`. Changes are pushed to followers at once.
///
/// ```
/// use tower_api_keys::{KeyStore, MemoryStore};
/// use tower_api_keys::store::ListKeys;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let store = MemoryStore::new();
/// let page = store.list(&ListKeys::new().owner("nobody")).await.unwrap();
/// assert!(page.records.is_empty());
/// # }
/// ```
#[derive(Debug)]
pub struct MemoryStore {
    state: RwLock<State>,
    notifier: ChangeNotifier,
}

#[derive(Debug, Default)]
struct State {
    /// Ordered, so that listing pages through ids newest first.
    by_id: BTreeMap<KeyId, KeyRecord>,
    by_hash: HashMap<KeyHash, KeyId>,
    /// The kept part of the change log, oldest first, with when each
    /// change was made.
    changes: VecDeque<(KeyChange, DateTime<Utc>)>,
    /// The position of the newest change ever logged.
    head: i64,
}

impl State {
    fn log_change(&mut self, id: KeyId, hash: KeyHash) {
        self.head += 1;
        let cursor = ChangeCursor::from_position(self.head);
        self.changes
            .push_back((KeyChange { cursor, id, hash }, Utc::now()));
    }

    fn head(&self) -> ChangeCursor {
        ChangeCursor::from_position(self.head)
    }

    /// The position before the oldest kept change.
    fn tail(&self) -> ChangeCursor {
        self.changes.front().map_or(self.head(), |(change, _)| {
            ChangeCursor::from_position(change.cursor.position() - 1)
        })
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
            notifier: ChangeNotifier::new(),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// Applies `update` to the owner's key `id` and logs it when it changed
    /// something.
    fn update_owned(&self, owner: &OwnerId, id: &KeyId, update: &KeyUpdate) -> Option<KeyRecord> {
        let mut state = self.write();
        let record = state.owned_mut(owner, id)?;
        let changed = update.apply_to(record);
        let record = record.clone();
        if changed {
            state.log_change(record.id, record.hash);
            drop(state);
            self.notifier.notify();
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
        state.log_change(record.id, record.hash);
        drop(state);
        self.notifier.notify();
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

    async fn list(&self, query: &ListKeys) -> Result<KeyPage, StoreError> {
        let state = self.read();
        let older = match query.after {
            Some(after) => state.by_id.range(..after.key_id()),
            None => state.by_id.range(..),
        };
        let records = older
            .rev()
            .map(|(_, record)| record)
            .filter(|record| query.matches(record))
            .take(query.limit.saturating_add(1))
            .cloned()
            .collect();
        Ok(KeyPage::from_overfetch(records, query.limit))
    }

    async fn update(
        &self,
        owner: &OwnerId,
        id: &KeyId,
        update: &KeyUpdate,
    ) -> Result<Option<KeyRecord>, StoreError> {
        Ok(self.update_owned(owner, id, update))
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
}

#[async_trait]
impl ChangeFeed for MemoryStore {
    async fn changes(
        &self,
        after: Option<ChangeCursor>,
        limit: usize,
    ) -> Result<ChangeBatch, StoreError> {
        let state = self.read();
        let changes = match after {
            Some(after) => state
                .changes
                .iter()
                .map(|(change, _)| *change)
                .skip_while(|change| change.cursor <= after)
                .take(limit)
                .collect(),
            None => Vec::new(),
        };
        Ok(ChangeBatch {
            head: state.head(),
            tail: state.tail(),
            changes,
        })
    }

    async fn prune_changes(&self, before: DateTime<Utc>, limit: usize) -> Result<u64, StoreError> {
        let mut state = self.write();
        let mut pruned = 0;
        while pruned < limit && state.changes.len() > 1 {
            match state.changes.front() {
                Some((_, at)) if *at < before => {
                    state.changes.pop_front();
                    pruned += 1;
                }
                _ => break,
            }
        }
        Ok(pruned as u64)
    }

    fn change_signal(&self) -> Option<ChangeSignal> {
        Some(self.notifier.subscribe())
    }
}
