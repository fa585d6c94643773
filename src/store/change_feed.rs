//! The change feed: a numbered log of the keys whose stored record changed
//! (created, revoked, renamed, or given an earlier expiry), which every
//! cache follows so that a change made anywhere reaches every process.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tokio::sync::watch;

use super::StoreError;
use crate::key::KeyHash;
use crate::record::KeyId;

/// A store's log of changed keys, which the caches of every process follow
/// so that a revocation made anywhere takes effect everywhere. Every
/// [`KeyStore`](super::KeyStore) has one (it is the store trait's
/// supertrait): a backend implements [`changes`](Self::changes) and may
/// keep the defaults of the other two.
///
/// Requirements an implementation must meet:
///
/// 1. Every insert and every [`update`](super::KeyStore::update) that
///    changes a record appends one [`KeyChange`]; a call that changes
///    nothing appends nothing.
/// 2. Once a change at position N can be read, no change below N appears
///    later, so a follower that has read up to N has missed nothing.
/// 3. Positions are never reused, also after
///    [`prune_changes`](Self::prune_changes).
#[async_trait]
pub trait ChangeFeed: Send + Sync + 'static {
    /// The change log's head and, after `after`, up to `limit` changes,
    /// oldest first. `after: None` asks for the head alone: where a new
    /// follower starts.
    async fn changes(
        &self,
        after: Option<ChangeCursor>,
        limit: usize,
    ) -> Result<ChangeBatch, StoreError>;

    /// Deletes up to `limit` changes recorded before `before`, oldest
    /// first, but never the newest one (it keeps the head); returns how many
    /// went. Followers that had not read them notice from
    /// [`ChangeBatch::tail`] and start afresh, so pruning loses no
    /// revocation. Stores that keep no log may leave the default, which
    /// prunes nothing.
    async fn prune_changes(&self, before: DateTime<Utc>, limit: usize) -> Result<u64, StoreError> {
        let _ = (before, limit);
        Ok(0)
    }

    /// A signal that changes may be waiting, for backends that can push
    /// (PostgreSQL `LISTEN/NOTIFY`, the in-memory store). Followers read
    /// [`changes`](Self::changes) whenever it fires, and on a timer in any
    /// case. `None` (the default) means polling only.
    fn change_signal(&self) -> Option<ChangeSignal> {
        None
    }
}

/// A position in a store's change log. Positions grow with every change;
/// only the store that made one knows what it means.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ChangeCursor(i64);

impl ChangeCursor {
    /// The position a store gives its change numbered `n` (from 1; 0 is
    /// before the first change).
    pub const fn from_position(n: i64) -> Self {
        Self(n)
    }

    /// The number this cursor stands for, for the store that made it.
    pub const fn position(self) -> i64 {
        self.0
    }
}

/// A key whose stored record changed. Caches drop what they hold for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyChange {
    /// Position in the change log.
    pub cursor: ChangeCursor,
    /// The key that changed.
    pub id: KeyId,
    /// Its hash, which is what caches are keyed by.
    pub hash: KeyHash,
}

/// What one read of the change feed returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChangeBatch {
    /// The newest position of the log when it was read: a follower whose
    /// cursor is behind it has changes still to read; one ahead of it is
    /// following another log (a store that was replaced).
    pub head: ChangeCursor,
    /// Where the kept log begins: changes at or before it were pruned. A
    /// follower whose cursor is behind it has missed changes and must
    /// forget everything it caches.
    pub tail: ChangeCursor,
    /// The changes after the cursor asked for, oldest first.
    pub changes: Vec<KeyChange>,
}

/// A store's end of the change signal: call [`notify`](Self::notify) after
/// a change (or when a change made elsewhere is announced to the store, as
/// PostgreSQL's `NOTIFY` is). Clones notify the same followers.
#[derive(Debug, Clone)]
pub struct ChangeNotifier(Arc<watch::Sender<bool>>);

impl ChangeNotifier {
    /// A notifier without followers yet, announcing only some changes.
    pub fn new() -> Self {
        Self(Arc::new(watch::Sender::new(false)))
    }

    /// Wakes every follower.
    pub fn notify(&self) {
        self.0.send_modify(|_| {});
    }

    /// Says whether every change, by any process, is announced from now on
    /// (a live `LISTEN` connection) or not (it was lost), and wakes every
    /// follower. While every change is announced, followers poll the change
    /// log only rarely, as a safety check.
    pub fn set_complete(&self, complete: bool) {
        self.0.send_modify(|value| *value = complete);
    }

    /// A new follower's end.
    pub fn subscribe(&self) -> ChangeSignal {
        ChangeSignal(self.0.subscribe())
    }
}

impl Default for ChangeNotifier {
    fn default() -> Self {
        Self::new()
    }
}

/// A follower's end of the change signal, from
/// [`ChangeFeed::change_signal`].
#[derive(Debug, Clone)]
pub struct ChangeSignal(watch::Receiver<bool>);

impl ChangeSignal {
    /// Whether every change, by any process, is announced now (see
    /// [`ChangeNotifier::set_complete`]).
    pub fn is_complete(&self) -> bool {
        *self.0.borrow()
    }

    /// Waits until the store announces changes; several announcements made
    /// meanwhile wake once. Returns `false` when the store has dropped its
    /// notifier and nothing will be announced again.
    pub async fn changed(&mut self) -> bool {
        self.0.changed().await.is_ok()
    }
}
