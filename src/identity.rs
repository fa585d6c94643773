//! What handlers receive about the key that authenticated a request.

use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Utc};

use crate::record::{KeyId, KeyRecord, OwnerId, Scopes};

/// What an identity is made from: the cache's entry for the key, shared
/// with the handler without a copy.
pub(crate) trait IdentityEntry: Send + Sync + 'static {
    /// The record as it was loaded.
    fn record(&self) -> &KeyRecord;
    /// When the store was asked for it.
    fn loaded_at(&self) -> Instant;
}

/// The key that authenticated a request. The layer puts it in the request's
/// extensions; with the `axum` feature it is also an extractor.
///
/// Cloning is cheap (one reference count). It never holds the secret.
///
/// ```
/// # #[cfg(feature = "axum")] {
/// use tower_api_keys::AuthenticatedKey;
///
/// async fn whoami(key: AuthenticatedKey) -> String {
///     format!("{} ({})", key.name(), key.id())
/// }
/// # }
/// ```
#[derive(Clone)]
pub struct AuthenticatedKey(Arc<dyn IdentityEntry>);

impl AuthenticatedKey {
    pub(crate) fn new(entry: Arc<dyn IdentityEntry>) -> Self {
        Self(entry)
    }

    /// The cache entry behind the identity.
    pub(crate) fn entry(&self) -> &dyn IdentityEntry {
        &*self.0
    }

    /// The key's id.
    pub fn id(&self) -> KeyId {
        self.0.record().id
    }

    /// The key's name.
    pub fn name(&self) -> &str {
        &self.0.record().name
    }

    /// The account the key belongs to.
    pub fn owner(&self) -> &OwnerId {
        &self.0.record().owner
    }

    /// The display prefix (`bmc_K7xR2pQm`), safe to log.
    pub fn display_prefix(&self) -> &str {
        &self.0.record().display_prefix
    }

    /// What the key may do.
    pub fn scopes(&self) -> &Scopes {
        &self.0.record().scopes
    }

    /// The key's application metadata.
    pub fn metadata(&self) -> &serde_json::Value {
        &self.0.record().metadata
    }

    /// When the key expires, if ever.
    pub fn expires_at(&self) -> Option<DateTime<Utc>> {
        self.0.record().expires_at
    }

    /// The record as it was cached. Its `last_used_at` may be older than the
    /// store's: last-used times are written in the background.
    pub fn record(&self) -> &KeyRecord {
        self.0.record()
    }
}

impl std::fmt::Debug for AuthenticatedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("AuthenticatedKey")
            .field(self.0.record())
            .finish()
    }
}
