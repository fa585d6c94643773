//! The push side of the PostgreSQL change log: a task that holds a
//! `LISTEN` connection and wakes the caches on every `NOTIFY` for its
//! schema.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgListener, PgNotification, PgPool, PgPoolOptions};
use tokio::sync::oneshot;

use crate::store::{ChangeNotifier, ChangeSignal};

/// The `NOTIFY` channel of the change log. One for the database: the payload
/// is `<schema> <seq>`, and stores ignore other schemas' changes.
const CHANNEL: &str = "api_key_changes";

/// First wait before the listener reconnects after a failed attempt; it
/// doubles up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// The push side of the change log: a signal fed by a `LISTEN` task.
pub(super) struct Feed {
    notifier: ChangeNotifier,
    /// What the task needs, until it is started.
    idle: Mutex<Option<oneshot::Receiver<()>>>,
    /// Dropped with the last clone of the store, which ends the task.
    _stop: oneshot::Sender<()>,
}

impl Feed {
    pub(super) fn new() -> Self {
        let (stop, stopped) = oneshot::channel();
        Self {
            notifier: ChangeNotifier::new(),
            idle: Mutex::new(Some(stopped)),
            _stop: stop,
        }
    }

    /// Starts the listener task if it is not running, and returns a receiver
    /// of its signal. `None` outside a Tokio runtime.
    pub(super) fn start(
        &self,
        connect: PgConnectOptions,
        changes_table: String,
    ) -> Option<ChangeSignal> {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(stopped) = idle.take() {
            let Ok(runtime) = tokio::runtime::Handle::try_current() else {
                *idle = Some(stopped);
                return None;
            };
            let notifier = self.notifier.clone();
            runtime.spawn(listen_for_changes(
                connect,
                changes_table,
                notifier,
                stopped,
            ));
        }
        Some(self.notifier.subscribe())
    }
}

/// Holds a `LISTEN` connection, reconnecting with backoff, and wakes the
/// caches on every notification for this store's schema and after every
/// (re)connection, so they read whatever was missed while no connection
/// listened. Ends when `stopped` resolves (the store was dropped).
async fn listen_for_changes(
    connect: PgConnectOptions,
    changes_table: String,
    notifier: ChangeNotifier,
    mut stopped: oneshot::Receiver<()>,
) {
    // A pool of its own, so the listening connection takes no slot from the
    // query pool.
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .min_connections(0)
        .acquire_timeout(Duration::from_secs(5))
        .idle_timeout(None)
        .max_lifetime(None)
        .connect_lazy_with(connect);
    let mut backoff = MIN_BACKOFF;
    let mut failing = false;
    loop {
        let attempt = tokio::select! {
            _ = &mut stopped => break,
            attempt = subscribe(&pool, &changes_table) => attempt,
        };
        let (mut listener, schema) = match attempt {
            Ok(subscribed) => subscribed,
            Err(error) => {
                if !failing {
                    tracing::warn!(
                        target: "tower_api_keys",
                        %error,
                        "cannot listen for key changes; caches poll the change log until it recovers"
                    );
                }
                failing = true;
                tokio::select! {
                    _ = &mut stopped => break,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
        };
        if failing {
            tracing::info!(target: "tower_api_keys", "listening for key changes again");
        }
        failing = false;
        backoff = MIN_BACKOFF;
        // Listening from here on, for every change; what happened before is
        // in the log.
        notifier.set_complete(true);
        loop {
            let received = tokio::select! {
                _ = &mut stopped => {
                    // The listener's connection goes back to the pool first:
                    // closing waits for it.
                    drop(listener);
                    pool.close().await;
                    return;
                }
                received = listener.try_recv() => received,
            };
            match received {
                Ok(Some(notification)) => {
                    if concerns(&notification, schema.as_deref()) {
                        notifier.notify();
                    }
                }
                Ok(None) => {
                    tracing::debug!(target: "tower_api_keys", "the key change listener lost its connection");
                    break;
                }
                Err(error) => {
                    tracing::debug!(target: "tower_api_keys", %error, "the key change listener failed");
                    break;
                }
            }
        }
        // Until it listens again, the caches poll.
        notifier.set_complete(false);
    }
    pool.close().await;
}

/// A new listening connection, and the schema its change table resolves to
/// (`None` when the table does not exist yet).
async fn subscribe(
    pool: &PgPool,
    changes_table: &str,
) -> Result<(PgListener, Option<String>), sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    // Reconnection is done here, with a catch-up after it.
    listener.eager_reconnect(false);
    listener.ignore_pool_close_event(true);
    let schema: Option<String> = sqlx::query_scalar(
        "SELECT n.nspname::text FROM pg_class c \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.oid = to_regclass($1)",
    )
    .bind(changes_table)
    .fetch_optional(&mut listener)
    .await?;
    listener.listen(CHANNEL).await?;
    Ok((listener, schema))
}

/// Whether a notification (`<schema> <seq>`) is about this store's schema.
fn concerns(notification: &PgNotification, schema: Option<&str>) -> bool {
    match (notification.payload().rsplit_once(' '), schema) {
        (Some((from, _)), Some(ours)) => from == ours,
        _ => true,
    }
}
