//! Following the store's change feed, so that a key revoked (or created, or
//! given an earlier expiry) anywhere drops out of this process's cache, and
//! whoever waits on that key hears of it.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;

use super::Reporting;
use super::cache::KeyCache;
use super::metrics::Metrics;
use super::tasks::{StopSignal, until_stopped};
use super::unusable::Watchers;
use crate::clock::Clock;
use crate::event::{EventSink, KeyEvent, KeyEventKind, NoticedBy};
use crate::key::KeyHash;
use crate::record::KeyStatus;
use crate::store::{ChangeCursor, ChangeFeed, KeyStore, StoreError};

/// Changes read per query.
const PAGE: usize = 500;
/// Changes pruned per statement: a bounded delete, repeated next round.
const PRUNE_BATCH: usize = 10_000;
/// How often the change log is read while the store announces every change
/// anyway: a safety check against an announcement lost on a connection that
/// died without saying so. One read per 30 s is 0.03 queries a second per
/// idle instance.
const SAFETY_POLL: Duration = Duration::from_secs(30);

pub(crate) struct ChangeFollower {
    cache: KeyCache,
    watchers: Arc<Watchers>,
    /// The log it follows.
    feed: Arc<dyn ChangeFeed>,
    /// Where the records of watched keys that changed are read again.
    records: Arc<dyn KeyStore>,
    /// Where this process is in the log; `None` until the store answered.
    cursor: Option<ChangeCursor>,
    /// Watched keys that changed and whose record is still to be read.
    to_recheck: HashSet<KeyHash>,
    /// Whether the last read failed (to log a failure once, not each poll).
    failing: bool,
    /// How long changes are kept before this follower prunes them.
    retention: Duration,
    /// When this follower last pruned.
    pruned_at: Instant,
    metrics: Arc<Metrics>,
    events: EventSink,
    clock: Arc<dyn Clock>,
}

/// How often the follower reads the log, and how long the log keeps a
/// change before the follower prunes it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FeedTiming {
    pub(crate) poll_interval: Duration,
    pub(crate) retention: Duration,
}

impl ChangeFollower {
    pub(crate) fn spawn(
        cache: KeyCache,
        watchers: Arc<Watchers>,
        store: Arc<dyn KeyStore>,
        FeedTiming {
            poll_interval,
            retention,
        }: FeedTiming,
        reporting: Reporting,
        clock: Arc<dyn Clock>,
        mut stop: StopSignal,
    ) -> JoinHandle<()> {
        let mut signal = store.change_signal();
        let mut follower = Self {
            cache,
            watchers,
            feed: Arc::clone(&store) as Arc<dyn ChangeFeed>,
            records: store,
            cursor: None,
            to_recheck: HashSet::new(),
            failing: false,
            retention,
            pruned_at: Instant::now(),
            metrics: reporting.metrics,
            events: reporting.events,
            clock,
        };
        tokio::spawn(async move {
            loop {
                follower.catch_up().await;
                follower.recheck_watched().await;
                follower.prune().await;
                // While the store announces every change (PostgreSQL's live
                // LISTEN), the log is read on each announcement and polled
                // only as a rare safety check.
                let wait = match &signal {
                    Some(signal) if signal.is_complete() => poll_interval.max(SAFETY_POLL),
                    _ => poll_interval,
                };
                let pushed = async {
                    match signal.as_mut() {
                        Some(signal) => {
                            if !signal.changed().await {
                                // The store dropped its signal: poll only.
                                std::future::pending::<()>().await;
                            }
                        }
                        None => std::future::pending::<()>().await,
                    }
                };
                tokio::select! {
                    () = pushed => {}
                    () = tokio::time::sleep(wait) => {}
                    () = until_stopped(&mut stop) => break,
                }
            }
        })
    }

    /// Reads every change after the cursor and drops the changed keys.
    async fn catch_up(&mut self) {
        loop {
            match self.feed.changes(self.cursor, PAGE).await {
                Ok(batch) => {
                    let Some(mut cursor) = self.cursor else {
                        // Whatever was cached before the cursor was known
                        // may predate a change that the log will not replay.
                        self.start_afresh(batch.head);
                        self.recovered();
                        return;
                    };
                    if cursor < batch.tail {
                        // Changes this process had not read were pruned
                        // (it was cut off from the store for longer than
                        // they are kept): forget everything instead.
                        tracing::warn!(
                            target: "tower_api_keys",
                            "changes were pruned before this process read them; dropping the whole cache"
                        );
                        self.start_afresh(batch.head);
                        self.recovered();
                        return;
                    }
                    for change in &batch.changes {
                        self.cache.invalidate(&change.hash).await;
                        if self.watchers.is_watched(&change.hash) {
                            self.to_recheck.insert(change.hash);
                        }
                        cursor = change.cursor;
                    }
                    self.cursor = Some(cursor);
                    self.metrics.change_feed_events(batch.changes.len() as u64);
                    self.metrics
                        .change_feed_lag(batch.head.position() - cursor.position());
                    if !batch.changes.is_empty() {
                        tracing::debug!(
                            target: "tower_api_keys",
                            changes = batch.changes.len(),
                            "applied key changes to the cache"
                        );
                    }
                    self.recovered();
                    if batch.changes.len() < PAGE {
                        return;
                    }
                }
                Err(error) => {
                    if matches!(error, StoreError::Replaced(_)) {
                        // Nothing cached may be served from data that is
                        // gone: every request now asks the store, which
                        // refuses (503) until the process is restarted.
                        self.cache.invalidate_all();
                    }
                    self.failed(&error);
                    return;
                }
            }
        }
    }

    /// Follows the log from `head`, with nothing cached from before.
    fn start_afresh(&mut self, head: ChangeCursor) {
        self.cursor = Some(head);
        self.cache.invalidate_all();
        self.to_recheck.extend(self.watchers.watched());
    }

    /// Deletes changes older than the retention, in one bounded batch, once
    /// per quarter of the retention (at most once a minute). Every instance
    /// tries; the stores let one at a time do it.
    async fn prune(&mut self) {
        let every = (self.retention / 4).min(Duration::from_secs(60));
        if self.pruned_at.elapsed() < every {
            return;
        }
        self.pruned_at = Instant::now();
        let Ok(retention) = chrono::Duration::from_std(self.retention) else {
            return;
        };
        let before = chrono::Utc::now() - retention;
        match self.feed.prune_changes(before, PRUNE_BATCH).await {
            Ok(0) => {}
            Ok(pruned) => {
                tracing::debug!(target: "tower_api_keys", pruned, "pruned the change log")
            }
            Err(error) => self.failed(&error),
        }
    }

    /// Reads the records of the watched keys that changed, and tells their
    /// watchers; a read that fails is tried again after the next poll.
    async fn recheck_watched(&mut self) {
        // Also forgets the keys nobody waits on any more.
        let watched: HashSet<KeyHash> = self.watchers.watched().into_iter().collect();
        self.to_recheck.retain(|hash| watched.contains(hash));
        let pending: Vec<KeyHash> = self.to_recheck.iter().copied().collect();
        for hash in pending {
            match self.records.find_by_hash(&hash).await {
                Ok(record) => {
                    if let Some(record) = &record {
                        let now = self.clock.now();
                        if record.status_at(now) == KeyStatus::Expired {
                            self.events.emit(&KeyEvent::new(
                                now,
                                record,
                                KeyEventKind::Expired {
                                    expires_at: record.expires_at,
                                    noticed_by: NoticedBy::ChangeFollower,
                                },
                            ));
                        }
                    }
                    self.watchers.update(hash, record.as_ref());
                    self.to_recheck.remove(&hash);
                }
                Err(error) => {
                    self.failed(&error);
                    return;
                }
            }
        }
    }

    fn failed(&mut self, error: &StoreError) {
        if !self.failing {
            tracing::warn!(
                target: "tower_api_keys",
                %error,
                "cannot read the key change log; cached keys may miss revocations until it recovers"
            );
        }
        self.failing = true;
    }

    fn recovered(&mut self) {
        if self.failing {
            self.metrics.change_feed_reconnect();
            tracing::info!(target: "tower_api_keys", "reading the key change log again");
        }
        self.failing = false;
    }
}
