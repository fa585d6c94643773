//! Shared by the integration tests: a real server on a loopback port, and a
//! store wrapper that counts lookups and injects faults into a real store.
#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use axum::Router;
use chrono::{DateTime, Utc};
use tokio::sync::{Semaphore, watch};
use tower_api_keys::store::{ChangeCursor, KeyChange, LastUsed};
use tower_api_keys::{KeyHash, KeyId, KeyRecord, KeyStore, MemoryStore, OwnerId, StoreError};

/// Serves `app` on 127.0.0.1 at a free port until the test ends.
pub async fn serve(app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a loopback port");
    let addr = listener.local_addr().expect("local address");
    tokio::spawn(async move {
        axum::serve(listener, app).await.expect("server runs");
    });
    addr
}

/// Serves `app` like [`serve`], with the peer address available to
/// extractors and to the failed-attempt throttle (`ConnectInfo`).
pub async fn serve_with_peer_addresses(app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a loopback port");
    let addr = listener.local_addr().expect("local address");
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .expect("server runs");
    });
    addr
}

/// A real HTTP client with a bounded wait, so a hang fails the test instead
/// of stalling it.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client")
}

/// A real [`MemoryStore`] behind switches: it counts lookups, can fail, can
/// delay lookups, and can hold last-used writes until released.
#[derive(Default)]
pub struct FaultyStore {
    pub inner: MemoryStore,
    pub lookups: AtomicU64,
    pub last_used_writes: AtomicU64,
    pub failing: AtomicBool,
    lookup_delay_ms: AtomicU64,
    /// While closed, `record_last_used` waits (writes "block for seconds").
    write_gate: Option<Arc<Semaphore>>,
}

impl FaultyStore {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// A store whose last-used writes wait until [`Self::open_writes`].
    pub fn with_blocked_writes() -> Arc<Self> {
        Arc::new(Self {
            write_gate: Some(Arc::new(Semaphore::new(0))),
            ..Self::default()
        })
    }

    pub fn open_writes(&self) {
        if let Some(gate) = &self.write_gate {
            gate.add_permits(Semaphore::MAX_PERMITS / 2);
        }
    }

    pub fn set_failing(&self, failing: bool) {
        self.failing.store(failing, Ordering::SeqCst);
    }

    pub fn set_lookup_delay(&self, delay: Duration) {
        self.lookup_delay_ms
            .store(delay.as_millis() as u64, Ordering::SeqCst);
    }

    pub fn lookups(&self) -> u64 {
        self.lookups.load(Ordering::SeqCst)
    }

    fn check(&self) -> Result<(), StoreError> {
        if self.failing.load(Ordering::SeqCst) {
            Err(StoreError::unavailable("injected failure"))
        } else {
            Ok(())
        }
    }
}

#[async_trait]
impl KeyStore for FaultyStore {
    async fn insert(&self, record: &KeyRecord) -> Result<(), StoreError> {
        self.check()?;
        self.inner.insert(record).await
    }

    async fn find_by_hash(&self, hash: &KeyHash) -> Result<Option<KeyRecord>, StoreError> {
        self.lookups.fetch_add(1, Ordering::SeqCst);
        let delay = self.lookup_delay_ms.load(Ordering::SeqCst);
        if delay > 0 {
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }
        self.check()?;
        self.inner.find_by_hash(hash).await
    }

    async fn find_by_id(&self, id: &KeyId) -> Result<Option<KeyRecord>, StoreError> {
        self.check()?;
        self.inner.find_by_id(id).await
    }

    async fn find_by_display_prefix(
        &self,
        prefix: &str,
        limit: usize,
    ) -> Result<Vec<KeyRecord>, StoreError> {
        self.check()?;
        self.inner.find_by_display_prefix(prefix, limit).await
    }

    async fn list_by_owner(&self, owner: &OwnerId) -> Result<Vec<KeyRecord>, StoreError> {
        self.check()?;
        self.inner.list_by_owner(owner).await
    }

    async fn revoke(
        &self,
        owner: &OwnerId,
        id: &KeyId,
        at: DateTime<Utc>,
        reason: Option<&str>,
    ) -> Result<Option<KeyRecord>, StoreError> {
        self.check()?;
        self.inner.revoke(owner, id, at, reason).await
    }

    async fn expire(
        &self,
        owner: &OwnerId,
        id: &KeyId,
        at: DateTime<Utc>,
    ) -> Result<Option<KeyRecord>, StoreError> {
        self.check()?;
        self.inner.expire(owner, id, at).await
    }

    async fn record_last_used(&self, batch: &[LastUsed]) -> Result<(), StoreError> {
        if let Some(gate) = &self.write_gate {
            let _permit = gate.acquire().await.expect("gate open");
        }
        self.check()?;
        self.last_used_writes.fetch_add(1, Ordering::SeqCst);
        self.inner.record_last_used(batch).await
    }

    async fn change_cursor(&self) -> Result<ChangeCursor, StoreError> {
        self.check()?;
        self.inner.change_cursor().await
    }

    async fn changes_since(
        &self,
        cursor: ChangeCursor,
        limit: usize,
    ) -> Result<Vec<KeyChange>, StoreError> {
        self.check()?;
        self.inner.changes_since(cursor, limit).await
    }

    fn change_signal(&self) -> Option<watch::Receiver<u64>> {
        self.inner.change_signal()
    }
}
