//! The change feed: a numbered log of the keys whose stored record changed
//! (created, revoked, or given an earlier expiry), which every cache follows
//! so that a change made anywhere reaches every process.

use std::sync::Arc;

use tokio::sync::watch;

use crate::key::KeyHash;
use crate::record::KeyId;

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
/// [`KeyStore::change_signal`](super::KeyStore::change_signal).
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
