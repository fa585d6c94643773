//! Following the store's change log, so that a key revoked (or created, or
//! given an earlier expiry) anywhere drops out of this process's cache.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::api_keys::until_stopped;
use crate::cache::KeyCache;
use crate::store::{ChangeCursor, KeyStore};

/// Changes read per query.
const PAGE: usize = 500;

pub(crate) struct ChangeFollower {
    cache: KeyCache,
    store: Arc<dyn KeyStore>,
    /// Where this process is in the log; `None` until the store answered.
    cursor: Option<ChangeCursor>,
    /// Whether the last read failed (to log a failure once, not each poll).
    failing: bool,
}

impl ChangeFollower {
    pub(crate) fn spawn(
        cache: KeyCache,
        store: Arc<dyn KeyStore>,
        poll_interval: Duration,
        mut stop: watch::Receiver<bool>,
    ) -> JoinHandle<()> {
        let mut signal = store.change_signal();
        let mut follower = Self {
            cache,
            store,
            cursor: None,
            failing: false,
        };
        tokio::spawn(async move {
            loop {
                follower.catch_up().await;
                let pushed = async {
                    match signal.as_mut() {
                        Some(rx) => {
                            if rx.changed().await.is_err() {
                                // The store dropped its signal: poll only.
                                std::future::pending::<()>().await;
                            }
                        }
                        None => std::future::pending::<()>().await,
                    }
                };
                tokio::select! {
                    _ = pushed => {}
                    _ = tokio::time::sleep(poll_interval) => {}
                    _ = until_stopped(&mut stop) => break,
                }
            }
        })
    }

    /// Reads every change after the cursor and drops the changed keys.
    async fn catch_up(&mut self) {
        let Some(mut cursor) = self.cursor else {
            match self.store.change_cursor().await {
                Ok(head) => {
                    // Whatever was cached before the cursor was known may
                    // predate a change that the log will not replay.
                    self.cursor = Some(head);
                    self.cache.invalidate_all();
                    self.recovered();
                }
                Err(error) => self.failed(&error),
            }
            return;
        };
        loop {
            match self.store.changes_since(cursor, PAGE).await {
                Ok(changes) => {
                    for change in &changes {
                        self.cache.invalidate(&change.hash).await;
                        cursor = change.cursor;
                    }
                    self.cursor = Some(cursor);
                    if !changes.is_empty() {
                        tracing::debug!(
                            target: "tower_api_keys",
                            changes = changes.len(),
                            "applied key changes to the cache"
                        );
                    }
                    self.recovered();
                    if changes.len() < PAGE {
                        return;
                    }
                }
                Err(error) => {
                    self.failed(&error);
                    return;
                }
            }
        }
    }

    fn failed(&mut self, error: &crate::store::StoreError) {
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
            tracing::info!(target: "tower_api_keys", "reading the key change log again");
        }
        self.failing = false;
    }
}
