//! [`ApiKeys`]: the user's one handle on the store, the cache, the
//! background tasks, the layer and the management calls; and its builder.

use std::fmt;
use std::sync::Arc;

use crate::engine::Engine;
use crate::identity::{AuthenticatedKey, Caller};
use crate::key::{KeyFormat, KeyHasher};
use crate::layer::ApiKeyLayer;
use crate::record::KeyStatus;
use crate::rejection::{Rejection, RejectionReason};
use crate::stats::{LastUsedStats, RefusalStats};
use crate::store::KeyStore;

mod builder;
mod manage;

pub use builder::{ApiKeysBuilder, BuildError};
pub use manage::ActingAs;

/// API-key authentication for one application: build it once at start-up,
/// protect routes with [`layer`](Self::layer), manage keys with
/// [`create`](Self::create), [`list`](Self::list) and
/// [`revoke`](Self::revoke), and await [`shutdown`](Self::shutdown) after the
/// server stops so pending last-used times are written.
///
/// Cloning is cheap; clones share everything.
///
/// ```
/// use tower_api_keys::{ApiKeys, MemoryStore, NewKey};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let keys = ApiKeys::builder(MemoryStore::new()).realm("example").build()?;
/// let created = keys.create(NewKey::new("acct_1", "ci")).await?;
/// println!("your key (shown once): {}", created.secret.expose_secret());
/// let layer = keys.layer(); // .layer(layer) on a Router or ServiceBuilder
/// # drop(layer);
/// keys.shutdown().await;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct ApiKeys {
    engine: Arc<Engine>,
}

impl ApiKeys {
    /// Now, by the clock the keys are checked against.
    pub(crate) fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.engine.clock.now()
    }

    /// Starts a builder over `store`.
    pub fn builder(store: impl KeyStore) -> ApiKeysBuilder {
        ApiKeysBuilder::new(Arc::new(store))
    }

    /// A layer that requires a valid key on every request it wraps.
    pub fn layer(&self) -> ApiKeyLayer {
        ApiKeyLayer::new(Arc::clone(&self.engine))
    }

    /// Resolves once `key` stops being usable: revoked (by this process or
    /// any other sharing the store, as soon as the change feed tells), or
    /// expired. The answer is [`KeyStatus::Revoked`] or
    /// [`KeyStatus::Expired`]; a key whose record is gone from the store
    /// counts as revoked. Waiting costs no store query; code that holds a
    /// key's identity for long (an open stream, a request waiting on a slow
    /// upstream) races its work against it.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_api_keys::{ApiKeys, MemoryStore, NewKey};
    /// use tower_api_keys::record::KeyStatus;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let keys = ApiKeys::builder(MemoryStore::new()).build()?;
    /// let created = keys.create(NewKey::new("acct_1", "laptop")).await?;
    /// let identity = keys.authenticate(created.secret.expose_secret()).await?;
    /// let revoker = keys.clone();
    /// tokio::spawn(async move {
    ///     tokio::time::sleep(Duration::from_millis(10)).await;
    ///     revoker.revoke(&"acct_1".into(), &created.record.id).await
    /// });
    /// assert_eq!(keys.until_unusable(&identity).await, KeyStatus::Revoked);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn until_unusable(&self, key: &AuthenticatedKey) -> KeyStatus {
        self.engine.until_unusable(key).await
    }

    /// Waits until the credential of `caller` can no longer be used (a key
    /// revoked or expired, as [`until_unusable`](Self::until_unusable) says;
    /// an access token at its `exp`, as the clock reads now), then gives the
    /// rejection the layer gives it from then on: for code that cuts a
    /// request or a stream in flight, whichever credential opened it.
    pub async fn until_refused(&self, caller: &Caller) -> Rejection {
        match caller {
            Caller::Key(key) => {
                let status = self.until_unusable(key).await;
                self.rejection(key, status)
            }
            #[cfg(feature = "oauth")]
            Caller::Token(token) => {
                let left = (token.expires_at() - self.now())
                    .to_std()
                    .unwrap_or_default();
                tokio::time::sleep(left).await;
                self.refusal(RejectionReason::ExpiredAccessToken)
            }
        }
    }

    /// The rejection the layer gives a request with `key` once the key is
    /// `status` (from [`until_unusable`](Self::until_unusable)): 401
    /// `invalid_token`, revoked or expired, with this layer's challenge; for
    /// code that cuts a request in flight.
    pub fn rejection(&self, key: &AuthenticatedKey, status: KeyStatus) -> Rejection {
        let reason = match status {
            KeyStatus::Expired => RejectionReason::ExpiredKey,
            // Revoked, or (never from until_unusable) active.
            KeyStatus::Revoked | KeyStatus::Active => RejectionReason::RevokedKey,
        };
        self.engine.reject(reason, Some(key.display_prefix()))
    }

    /// The layer's refusal for `reason`, for the routes that refuse a
    /// credential after the layer.
    #[cfg(feature = "oauth")]
    pub(crate) fn refusal(&self, reason: RejectionReason) -> Rejection {
        self.engine.reject(reason, None)
    }

    /// The response the layer gives `rejection` (its custom builder's, or
    /// the default), for the routes that refuse a key after the layer.
    #[cfg(feature = "management")]
    pub(crate) fn respond(&self, rejection: &Rejection) -> http::Response<bytes::Bytes> {
        self.engine.respond(rejection)
    }

    /// The store behind the cache.
    pub fn store(&self) -> &Arc<dyn KeyStore> {
        &self.engine.store
    }

    /// The OAuth issuer whose access tokens are accepted, if one is
    /// configured (feature `oauth`): what protected-resource metadata
    /// (RFC 9728) names in `authorization_servers`.
    #[cfg(feature = "oauth")]
    #[cfg_attr(docsrs, doc(cfg(feature = "oauth")))]
    pub fn oauth_issuer(&self) -> Option<&str> {
        self.engine
            .oauth
            .as_deref()
            .map(crate::oauth::TokenVerifier::issuer)
    }

    /// The key format.
    pub fn format(&self) -> &KeyFormat {
        &self.engine.format
    }

    /// The hasher keys are stored under.
    pub fn hasher(&self) -> &KeyHasher {
        &self.engine.hasher
    }

    /// How many requests were refused for `reason`, and how many of their
    /// log lines were held back: each reason writes a few lines at once and
    /// then at most one per 10 s (which says how many it held back), so a
    /// flood of bad requests cannot flood the logs.
    pub fn refusal_stats(&self, reason: RejectionReason) -> RefusalStats {
        self.engine.refusal_stats(reason)
    }

    /// Counters of the last-used recorder.
    pub fn last_used_stats(&self) -> LastUsedStats {
        self.engine.last_used_stats()
    }

    /// Counters of the Redis rate limiter: checks, refusals, failures and
    /// what the policy did with them. `None` when limits are counted in
    /// process.
    #[cfg(feature = "redis")]
    pub fn shared_limit_stats(&self) -> Option<crate::limit::SharedLimitStats> {
        self.engine.shared_limit_stats()
    }

    /// Entries in the cache of known keys and in the cache of unknown keys.
    /// Moka counts lazily: the numbers may trail recent inserts.
    pub fn cache_entry_counts(&self) -> (u64, u64) {
        self.engine.cache_entry_counts()
    }

    /// Stops the background tasks after writing the pending last-used times,
    /// and returns the recorder's final counters. Call it after the server
    /// has stopped taking requests (after axum's graceful shutdown). Later
    /// calls return at once.
    pub async fn shutdown(&self) -> LastUsedStats {
        self.engine.shutdown().await
    }
}

impl fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ApiKeys").field(&self.engine).finish()
    }
}
