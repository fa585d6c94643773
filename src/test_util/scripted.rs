//! [`ScriptedStore`]: a store that fails, waits or
//! holds its calls when a test says so.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::Notify;

use super::{CountingStore, StoreCalls, StoreMethod};
use crate::store::forward::forward_key_store;
use crate::store::{MemoryStore, StoreError};

/// Wraps a store (a [`MemoryStore`] unless said otherwise) for tests and
/// benchmarks: each method can be made to fail, to wait a while, or to wait
/// behind a [`Gate`] until the test opens it. Counts every call made to it
/// ([`calls`](Self::calls)) and every call that got through to the wrapped
/// store ([`reached`](Self::reached)).
///
/// ```
/// use std::sync::Arc;
/// use tower_api_keys::KeyStore;
/// use tower_api_keys::store::StoreError;
/// use tower_api_keys::test_util::{ScriptedStore, StoreMethod};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let store = Arc::new(ScriptedStore::new());
/// store.set_failing(true);
/// let id = tower_api_keys::record::KeyId::new();
/// assert!(matches!(store.find_by_id(&id).await, Err(StoreError::Unavailable(_))));
/// store.set_failing(false);
/// assert!(store.find_by_id(&id).await.unwrap().is_none());
/// assert_eq!(store.calls().find_by_id, 2);
/// assert_eq!(store.reached().get(StoreMethod::FindById), 1);
/// # }
/// ```
#[derive(Debug)]
pub struct ScriptedStore<S = MemoryStore> {
    inner: CountingStore<S>,
    calls: [AtomicU64; StoreMethod::ALL.len()],
    failing: [AtomicBool; StoreMethod::ALL.len()],
    delay_micros: [AtomicU64; StoreMethod::ALL.len()],
    gates: [Gate; StoreMethod::ALL.len()],
}

impl ScriptedStore {
    /// Scripts an empty [`MemoryStore`].
    pub fn new() -> Self {
        Self::wrap(MemoryStore::new())
    }
}

impl Default for ScriptedStore {
    fn default() -> Self {
        Self::new()
    }
}

impl<S> ScriptedStore<S> {
    /// Scripts `inner`; until told otherwise every call goes straight through.
    pub fn wrap(inner: S) -> Self {
        Self {
            inner: CountingStore::new(inner),
            calls: Default::default(),
            failing: Default::default(),
            delay_micros: Default::default(),
            gates: Default::default(),
        }
    }

    /// Makes every method fail with [`StoreError::Unavailable`] (or stop
    /// failing).
    pub fn set_failing(&self, failing: bool) {
        for method in StoreMethod::ALL {
            self.set_failing_method(method, failing);
        }
    }

    /// Makes one method fail with [`StoreError::Unavailable`] (or stop).
    pub fn set_failing_method(&self, method: StoreMethod, failing: bool) {
        self.failing[method.index()].store(failing, Ordering::SeqCst);
    }

    /// Makes each call of `method` wait `delay` first (zero: no wait).
    pub fn set_delay(&self, method: StoreMethod, delay: Duration) {
        let micros = u64::try_from(delay.as_micros()).unwrap_or(u64::MAX);
        self.delay_micros[method.index()].store(micros, Ordering::SeqCst);
    }

    /// The gate calls of `method` wait behind while it is closed.
    pub fn gate(&self, method: StoreMethod) -> &Gate {
        &self.gates[method.index()]
    }

    /// Every call made, per method, counted as it starts.
    pub fn calls(&self) -> StoreCalls {
        StoreCalls::from_fn(|m| self.calls[m.index()].load(Ordering::SeqCst))
    }

    /// The calls that got past the gate, the delay and the scripted failure
    /// to the wrapped store.
    pub fn reached(&self) -> StoreCalls {
        self.inner.calls()
    }

    /// The wrapped store.
    pub fn get_ref(&self) -> &S {
        self.inner.get_ref()
    }

    async fn before(&self, method: StoreMethod) -> Result<(), StoreError> {
        let i = method.index();
        self.calls[i].fetch_add(1, Ordering::SeqCst);
        self.gates[i].pass().await;
        let delay = self.delay_micros[i].load(Ordering::SeqCst);
        if delay > 0 {
            tokio::time::sleep(Duration::from_micros(delay)).await;
        }
        if self.failing[i].load(Ordering::SeqCst) {
            return Err(StoreError::unavailable("injected failure"));
        }
        Ok(())
    }
}

forward_key_store! {
    impl[S: crate::store::KeyStore] for ScriptedStore<S>,
    to |this| &this.inner,
    before |this, method: StoreMethod| this.before(method).await
}

/// Holds calls while closed; open by default.
#[derive(Debug, Default)]
pub struct Gate {
    closed: AtomicBool,
    waiting: AtomicUsize,
    opened: Notify,
}

impl Gate {
    /// From now on, calls wait until [`open`](Self::open).
    pub fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
    }

    /// Lets every waiting call and every later one through.
    pub fn open(&self) {
        self.closed.store(false, Ordering::SeqCst);
        self.opened.notify_waiters();
    }

    /// Calls waiting now.
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::SeqCst)
    }

    async fn pass(&self) {
        if !self.closed.load(Ordering::SeqCst) {
            return;
        }
        self.waiting.fetch_add(1, Ordering::SeqCst);
        loop {
            let opened = self.opened.notified();
            if !self.closed.load(Ordering::SeqCst) {
                break;
            }
            opened.await;
        }
        self.waiting.fetch_sub(1, Ordering::SeqCst);
    }
}
