//! Key management: create (the secret is shown once), list, revoke, expire.
//! Every call is scoped by owner: no owner sees or changes another's keys.

use std::fmt;

use chrono::{DateTime, Utc};

use crate::api_keys::{ApiKeys, Inner};
use crate::key::{RandomSourceError, SecretKey};
use crate::record::{KeyId, KeyRecord, NewKey, OwnerId};
use crate::store::StoreError;

/// Longest key name accepted, in characters.
pub(crate) const MAX_NAME_LEN: usize = 200;

/// A key just created: the plaintext, to show its owner once, and the
/// record as stored. `Debug` shows only the display prefix of the secret.
pub struct CreatedKey {
    /// The plaintext key. It cannot be recovered later.
    pub secret: SecretKey,
    /// The stored record.
    pub record: KeyRecord,
}

impl fmt::Debug for CreatedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CreatedKey")
            .field("secret", &self.secret)
            .field("record", &self.record)
            .finish()
    }
}

/// Why a management call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ManageError {
    /// The owner has no key with that id.
    #[error("no such key")]
    NotFound,
    /// The name is empty, too long, or has control characters.
    #[error("a key name must be 1 to {MAX_NAME_LEN} characters without control characters")]
    InvalidName,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A revoked key cannot be rolled.
    #[error("the key is revoked")]
    Revoked,
    /// No random bytes could be had for the key.
    #[error(transparent)]
    Random(#[from] RandomSourceError),
}

impl ApiKeys {
    /// Creates a key and returns its plaintext, once.
    ///
    /// ```
    /// use tower_api_keys::{ApiKeys, KeyStatus, MemoryStore, NewKey};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let keys = ApiKeys::builder(MemoryStore::new()).build()?;
    /// let created = keys.create(NewKey::new("acct_1", "laptop")).await?;
    /// assert!(created.secret.expose_secret().starts_with("bmc_"));
    /// assert_eq!(created.record.status_at(chrono::Utc::now()), KeyStatus::Active);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn create(&self, new: NewKey) -> Result<CreatedKey, ManageError> {
        let name_len = new.name.chars().count();
        if name_len == 0 || name_len > MAX_NAME_LEN || new.name.chars().any(char::is_control) {
            return Err(ManageError::InvalidName);
        }
        let inner = &self.inner;
        let secret = inner.format.generate()?;
        let hash = inner.hasher.hash(secret.expose_secret());
        let record = KeyRecord {
            id: KeyId::new(),
            name: new.name,
            owner: new.owner,
            display_prefix: secret.display_prefix().to_owned(),
            hash,
            // Stores keep microseconds; so does the record returned here.
            created_at: truncate_to_micros(inner.clock.now()),
            expires_at: new.expires_at,
            last_used_at: None,
            revoked_at: None,
            revoked_reason: None,
            scopes: new.scopes,
            metadata: new.metadata,
            rate_limit: new.rate_limit,
        };
        inner.store.insert(&record).await?;
        inner.cache.invalidate(&hash).await;
        tracing::info!(
            target: "tower_api_keys",
            key_id = %record.id,
            key_prefix = %record.display_prefix,
            owner = %record.owner,
            "API key created"
        );
        Ok(CreatedKey { secret, record })
    }

    /// Rotates one of the owner's keys: creates a new key with the same name,
    /// scopes and metadata (returned once, like [`create`](Self::create)),
    /// and makes the old key expire after `overlap` (unless it expires
    /// sooner), so clients can switch without downtime.
    ///
    /// ```
    /// use tower_api_keys::{ApiKeys, MemoryStore, NewKey};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let keys = ApiKeys::builder(MemoryStore::new()).build()?;
    /// let owner = "acct_1".into();
    /// let old = keys.create(NewKey::new("acct_1", "ci")).await?;
    /// let new = keys.roll(&owner, &old.record.id, chrono::Duration::hours(24)).await?;
    /// assert_eq!(new.record.name, "ci");
    /// assert!(keys.get(&owner, &old.record.id).await?.expires_at.is_some());
    /// # Ok(())
    /// # }
    /// ```
    pub async fn roll(
        &self,
        owner: &OwnerId,
        id: &KeyId,
        overlap: chrono::Duration,
    ) -> Result<CreatedKey, ManageError> {
        let old = self.get(owner, id).await?;
        if old.revoked_at.is_some() {
            return Err(ManageError::Revoked);
        }
        let mut new = NewKey::new(old.owner.clone(), old.name.clone())
            .scopes(old.scopes.clone())
            .metadata(old.metadata.clone());
        new.expires_at = old.expires_at;
        new.rate_limit = old.rate_limit;
        let created = self.create(new).await?;
        let until = self.inner.clock.now() + overlap.max(chrono::Duration::zero());
        self.expire(owner, id, until).await?;
        tracing::info!(
            target: "tower_api_keys",
            old_key_id = %old.id,
            new_key_id = %created.record.id,
            old_expires_at = %until,
            "API key rolled"
        );
        Ok(created)
    }

    /// The owner's keys, oldest first. Use
    /// [`KeyRecord::status_at`] for each one's status.
    pub async fn list(&self, owner: &OwnerId) -> Result<Vec<KeyRecord>, ManageError> {
        Ok(self.inner.store.list_by_owner(owner).await?)
    }

    /// One of the owner's keys.
    pub async fn get(&self, owner: &OwnerId, id: &KeyId) -> Result<KeyRecord, ManageError> {
        match self.inner.store.find_by_id(id).await? {
            Some(record) if &record.owner == owner => Ok(record),
            _ => Err(ManageError::NotFound),
        }
    }

    /// Revokes one of the owner's keys, irreversibly. The key is refused by
    /// this process as soon as this returns, and by every process that shares
    /// the store once it reads the change log (within about a second).
    /// Revoking a revoked key returns its record unchanged.
    pub async fn revoke(&self, owner: &OwnerId, id: &KeyId) -> Result<KeyRecord, ManageError> {
        self.revoke_with_reason(owner, id, None).await
    }

    /// [`revoke`](Self::revoke), recording why.
    pub async fn revoke_with_reason(
        &self,
        owner: &OwnerId,
        id: &KeyId,
        reason: Option<&str>,
    ) -> Result<KeyRecord, ManageError> {
        self.inner.revoke(owner, id, reason).await
    }

    /// Makes one of the owner's keys expire at `at`, unless it expires
    /// earlier already. Takes effect like [`revoke`](Self::revoke).
    pub async fn expire(
        &self,
        owner: &OwnerId,
        id: &KeyId,
        at: DateTime<Utc>,
    ) -> Result<KeyRecord, ManageError> {
        let record = self
            .inner
            .store
            .expire(owner, id, at)
            .await?
            .ok_or(ManageError::NotFound)?;
        self.inner.cache.invalidate(&record.hash).await;
        Ok(record)
    }
}

fn truncate_to_micros(at: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(at.timestamp_micros()).unwrap_or(at)
}

impl Inner {
    /// Revokes and evicts; shared by the management API and the policy that
    /// revokes keys exposed in URLs.
    pub(crate) async fn revoke(
        &self,
        owner: &OwnerId,
        id: &KeyId,
        reason: Option<&str>,
    ) -> Result<KeyRecord, ManageError> {
        let now = self.clock.now();
        let record = self
            .store
            .revoke(owner, id, now, reason)
            .await?
            .ok_or(ManageError::NotFound)?;
        self.cache.invalidate(&record.hash).await;
        tracing::info!(
            target: "tower_api_keys",
            key_id = %record.id,
            key_prefix = %record.display_prefix,
            owner = %record.owner,
            reason = reason.unwrap_or(""),
            "API key revoked"
        );
        Ok(record)
    }
}
