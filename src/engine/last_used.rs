//! The background last-used recorder.
//!
//! The request path only flags the cached entry as used (one atomic load
//! when it is already flagged) and, on its first use since the last flush,
//! queues it; it reads no clock. A background task takes the queue once per
//! interval and stamps every key in it with the time of that flush: a key's
//! `last_used_at` is at most one interval later than its actual last use.
//! It writes one batch through the store; a failed batch is kept and retried
//! with the next one. Memory is bounded by the number of distinct keys.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::DateTime;
use tokio::task::JoinHandle;

use super::Reporting;
use super::cache::CachedKey;
use super::metrics::Metrics;
use super::tasks::{StopSignal, until_stopped};
use crate::clock::Clock;
use crate::event::{EventSink, KeyEvent, KeyEventKind};
use crate::record::KeyId;
use crate::stats::LastUsedStats;
use crate::store::{KeyStore, LastUsed};

#[derive(Debug, Default)]
struct Counters {
    batches: AtomicU64,
    keys_written: AtomicU64,
    write_errors: AtomicU64,
    dropped: AtomicU64,
    pending: AtomicU64,
}

/// The request side: where uses are queued.
#[derive(Debug, Default)]
pub(crate) struct UsageQueue {
    queued: Mutex<Vec<Arc<CachedKey>>>,
    counters: Counters,
}

impl UsageQueue {
    /// Notes a use of `entry`. Never waits on I/O and reads no clock; takes
    /// a lock only on the entry's first use since the last flush.
    pub(crate) fn note(&self, entry: &Arc<CachedKey>) {
        if entry.mark_used() {
            self.queued
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(Arc::clone(entry));
        }
    }

    fn take(&self) -> Vec<Arc<CachedKey>> {
        std::mem::take(&mut *self.queued.lock().unwrap_or_else(PoisonError::into_inner))
    }

    pub(crate) fn stats(&self) -> LastUsedStats {
        let c = &self.counters;
        LastUsedStats {
            batches: c.batches.load(Ordering::Relaxed),
            keys_written: c.keys_written.load(Ordering::Relaxed),
            write_errors: c.write_errors.load(Ordering::Relaxed),
            dropped: c.dropped.load(Ordering::Relaxed),
            pending: c.pending.load(Ordering::Relaxed),
        }
    }
}

/// The background side: one task that writes batches.
pub(crate) struct Recorder {
    queue: Arc<UsageQueue>,
    store: Arc<dyn KeyStore>,
    /// Times not yet written, latest per key.
    unwritten: HashMap<KeyId, i64>,
    /// Most keys kept for retry while the store fails.
    max_pending: usize,
    clock: Arc<dyn Clock>,
    metrics: Arc<Metrics>,
    events: EventSink,
}

impl Recorder {
    pub(crate) fn spawn(
        queue: Arc<UsageQueue>,
        store: Arc<dyn KeyStore>,
        clock: Arc<dyn Clock>,
        interval: Duration,
        max_pending: usize,
        reporting: Reporting,
        mut stop: StopSignal,
    ) -> JoinHandle<()> {
        let mut recorder = Self {
            queue,
            store,
            unwritten: HashMap::new(),
            max_pending,
            clock,
            metrics: reporting.metrics,
            events: reporting.events,
        };
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticks.tick().await;
            loop {
                tokio::select! {
                    _ = ticks.tick() => recorder.flush().await,
                    _ = until_stopped(&mut stop) => break,
                }
            }
            recorder.flush().await;
            let lost = recorder.unwritten.len() as u64;
            if lost > 0 {
                recorder.count_dropped(lost);
                tracing::warn!(
                    target: "tower_api_keys",
                    keys = lost,
                    "last-used times could not be written before shutdown"
                );
            }
        })
    }

    fn count_dropped(&self, n: u64) {
        self.queue.counters.dropped.fetch_add(n, Ordering::Relaxed);
        self.metrics.last_used_dropped(n);
        self.queue.counters.pending.store(0, Ordering::Relaxed);
    }

    async fn flush(&mut self) {
        let used = self.queue.take();
        for entry in &used {
            entry.take_use();
        }
        // Read after the flags are cleared: every use not queued again
        // happened before this instant.
        let now = self.clock.now();
        let micros = now.timestamp_micros();
        for entry in &used {
            // Off the request path: the first use of a key whose record
            // shows none is announced here, once per cached entry.
            if entry.record().last_used_at.is_none() && entry.announce_first_use() {
                self.events
                    .emit(&KeyEvent::new(now, entry.record(), KeyEventKind::FirstUse));
            }
            let latest = self.unwritten.entry(entry.record().id).or_insert(micros);
            *latest = (*latest).max(micros);
        }
        let counters = &self.queue.counters;
        counters
            .pending
            .store(self.unwritten.len() as u64, Ordering::Relaxed);
        if self.unwritten.is_empty() {
            return;
        }
        let batch: Vec<LastUsed> = self
            .unwritten
            .iter()
            .filter_map(|(id, micros)| {
                DateTime::from_timestamp_micros(*micros).map(|at| LastUsed { id: *id, at })
            })
            .collect();
        match self.store.record_last_used(&batch).await {
            Ok(()) => {
                counters.batches.fetch_add(1, Ordering::Relaxed);
                self.metrics.last_used_batch(batch.len() as u64);
                counters
                    .keys_written
                    .fetch_add(batch.len() as u64, Ordering::Relaxed);
                self.unwritten.clear();
                counters.pending.store(0, Ordering::Relaxed);
                tracing::trace!(target: "tower_api_keys", keys = batch.len(), "last-used batch written");
            }
            Err(error) => {
                counters.write_errors.fetch_add(1, Ordering::Relaxed);
                self.metrics.last_used_write_error();
                tracing::warn!(
                    target: "tower_api_keys",
                    %error,
                    keys = batch.len(),
                    "last-used batch failed; retrying with the next one"
                );
                if self.unwritten.len() > self.max_pending {
                    let excess = self.unwritten.len() - self.max_pending;
                    let oldest: Vec<KeyId> = {
                        let mut by_age: Vec<(&KeyId, &i64)> = self.unwritten.iter().collect();
                        by_age.sort_by_key(|(_, micros)| **micros);
                        by_age.iter().take(excess).map(|(id, _)| **id).collect()
                    };
                    for id in oldest {
                        self.unwritten.remove(&id);
                    }
                    counters.dropped.fetch_add(excess as u64, Ordering::Relaxed);
                    self.metrics.last_used_dropped(excess as u64);
                    counters
                        .pending
                        .store(self.unwritten.len() as u64, Ordering::Relaxed);
                }
            }
        }
    }
}
