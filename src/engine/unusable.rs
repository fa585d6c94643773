//! Waiting for a key to stop being usable: code that holds a key's identity
//! for long (an open stream, a request waiting on its upstream) awaits
//! [`Engine::until_unusable`] instead of asking the store again and again.
//!
//! Each watched key has one `watch` channel holding the instant it stops
//! being usable. This process's revocations and expiries update it at once;
//! changes made elsewhere reach it through the change follower, which reads
//! the changed record again, for watched keys only.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::watch;

use super::Engine;
use crate::identity::AuthenticatedKey;
use crate::key::KeyHash;
use crate::record::{KeyRecord, KeyStatus};

/// The longest sleep between two readings of the clock while waiting for an
/// expiry, so that a clock set forward (or a manual clock) is noticed.
const MAX_SLEEP: Duration = Duration::from_secs(1);

/// When a key stops being usable, and what it then is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Deadline {
    /// Microseconds since the epoch; `i64::MIN` already, `i64::MAX` never.
    until_micros: i64,
    /// `Revoked` or `Expired`.
    then: KeyStatus,
}

impl Deadline {
    /// The deadline a record gives; a record gone from the store counts as
    /// revoked.
    fn of(record: Option<&KeyRecord>) -> Self {
        match record {
            None => Self::now(KeyStatus::Revoked),
            Some(record) if record.revoked_at.is_some() => Self::now(KeyStatus::Revoked),
            Some(record) => match record.expires_at {
                Some(at) => Self {
                    until_micros: at.timestamp_micros(),
                    then: KeyStatus::Expired,
                },
                None => Self {
                    until_micros: i64::MAX,
                    then: KeyStatus::Expired,
                },
            },
        }
    }

    const fn now(then: KeyStatus) -> Self {
        Self {
            until_micros: i64::MIN,
            then,
        }
    }
}

/// The keys being waited on.
#[derive(Debug, Default)]
pub(crate) struct Watchers {
    by_hash: Mutex<HashMap<KeyHash, watch::Sender<Deadline>>>,
}

impl Watchers {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<KeyHash, watch::Sender<Deadline>>> {
        self.by_hash.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Starts watching a key whose record, as the caller knows it, gives
    /// `deadline`; true when nobody watched the key before.
    fn watch(&self, hash: KeyHash, deadline: Deadline) -> (watch::Receiver<Deadline>, bool) {
        let mut by_hash = self.lock();
        let first = by_hash
            .get(&hash)
            .is_none_or(|sender| sender.receiver_count() == 0);
        let sender = by_hash
            .entry(hash)
            .or_insert_with(|| watch::Sender::new(deadline));
        // A key only ever becomes unusable sooner (revocation is final and
        // an expiry is only brought forward), so the earlier deadline wins.
        sender.send_if_modified(|current| earlier(current, deadline));
        (sender.subscribe(), first)
    }

    /// Whether anyone waits on this key.
    pub(crate) fn is_watched(&self, hash: &KeyHash) -> bool {
        self.lock().contains_key(hash)
    }

    /// The keys waited on, after forgetting those nobody waits on any more.
    pub(crate) fn watched(&self) -> Vec<KeyHash> {
        let mut by_hash = self.lock();
        by_hash.retain(|_, sender| sender.receiver_count() > 0);
        by_hash.keys().copied().collect()
    }

    /// A watched key's record as now stored (`None`: gone from the store).
    pub(crate) fn update(&self, hash: KeyHash, record: Option<&KeyRecord>) {
        if let Some(sender) = self.lock().get(&hash) {
            let deadline = Deadline::of(record);
            sender.send_if_modified(|current| earlier(current, deadline));
        }
    }
}

fn earlier(current: &mut Deadline, candidate: Deadline) -> bool {
    if candidate.until_micros < current.until_micros {
        *current = candidate;
        true
    } else {
        false
    }
}

impl Engine {
    /// Resolves once `key` is revoked (by any process sharing the store) or
    /// expires, with [`KeyStatus::Revoked`] or [`KeyStatus::Expired`]; a key
    /// whose record is gone from the store counts as revoked. A revocation
    /// made elsewhere is noticed as soon as the change follower reads it.
    pub(crate) async fn until_unusable(&self, key: &AuthenticatedKey) -> KeyStatus {
        let entry = key.entry();
        let hash = entry.record().hash;
        let (mut deadline, first) = self
            .watchers
            .watch(hash, Deadline::of(Some(entry.record())));
        // A change applied to the cache before anyone watched this key has
        // passed the watchers by: the first watcher reads the record once
        // more (later ones hear of what it reads).
        if first && self.cache.changed_after(&hash, entry.loaded_at()).await {
            match self.store.find_by_hash(&hash).await {
                Ok(record) => self.watchers.update(hash, record.as_ref()),
                Err(error) => tracing::warn!(
                    target: "tower_api_keys",
                    %error,
                    key_prefix = %entry.record().display_prefix,
                    "cannot read a changed key again; waiting for the change feed"
                ),
            }
        }
        loop {
            let current = *deadline.borrow_and_update();
            let now = self.clock.now_micros();
            if now >= current.until_micros {
                return current.then;
            }
            let left = u64::try_from(current.until_micros.saturating_sub(now)).unwrap_or(u64::MAX);
            let sleep = Duration::from_micros(left).min(MAX_SLEEP);
            tokio::select! {
                changed = deadline.changed() => {
                    if changed.is_err() {
                        // Not while this receiver lives; wait on the clock.
                        tokio::time::sleep(sleep).await;
                    }
                }
                () = tokio::time::sleep(sleep) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_earlier_deadline_wins() {
        let watchers = Watchers::default();
        let hash = KeyHash::from_bytes([1; 32]);
        let never = Deadline {
            until_micros: i64::MAX,
            then: KeyStatus::Expired,
        };
        let (rx, first) = watchers.watch(hash, never);
        assert!(first);
        watchers.update(hash, None);
        assert_eq!(*rx.borrow(), Deadline::now(KeyStatus::Revoked));
        // Nothing brings it back.
        let (_again, first) = watchers.watch(hash, never);
        assert!(!first);
        assert_eq!(*rx.borrow(), Deadline::now(KeyStatus::Revoked));
        drop(rx);
        drop(_again);
        assert!(watchers.watched().is_empty());
        assert!(!watchers.is_watched(&hash));
    }
}
