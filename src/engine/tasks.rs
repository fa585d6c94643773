//! The background tasks and the signal that stops them.

use std::sync::{Mutex, PoisonError};

use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The background tasks; they stop (the recorder after a last flush) when
/// told to, or when the last handle is dropped.
pub(crate) struct Tasks {
    stop: watch::Sender<bool>,
    handles: Mutex<Vec<JoinHandle<()>>>,
}

/// What a background task watches to know when to stop.
pub(crate) type StopSignal = watch::Receiver<bool>;

impl Tasks {
    /// A stop signal with no task yet.
    pub(crate) fn new() -> (Self, StopSignal) {
        let (stop, stopped) = watch::channel(false);
        let tasks = Self {
            stop,
            handles: Mutex::new(Vec::new()),
        };
        (tasks, stopped)
    }

    /// Keeps a task's handle, to await it at shutdown.
    pub(crate) fn push(&self, handle: JoinHandle<()>) {
        self.handles
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(handle);
    }

    /// Tells every task to stop and waits for them. Later calls return at
    /// once.
    pub(crate) async fn stop(&self) {
        self.stop.send_replace(true);
        let handles =
            std::mem::take(&mut *self.handles.lock().unwrap_or_else(PoisonError::into_inner));
        for handle in handles {
            if let Err(error) = handle.await {
                tracing::error!(target: "tower_api_keys", %error, "a background task failed");
            }
        }
    }
}

/// Resolves when the tasks are told to stop or every handle is gone.
pub(crate) async fn until_stopped(stop: &mut StopSignal) {
    // An error means the sender is gone, which also means stop.
    let _ = stop.wait_for(|stopped| *stopped).await;
}
