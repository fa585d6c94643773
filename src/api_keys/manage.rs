//! Key management on [`ApiKeys`]: create (the secret is shown once), list,
//! get, roll, revoke, expire; and checking a key outside the layer. Every
//! call is scoped by owner: no owner sees or changes another's keys.

use chrono::{DateTime, Utc};

use super::ApiKeys;
use crate::engine::{AuthenticatedKey, CreatedKey, ManageError};
use crate::event::{Actor, KeyEventKind};
use crate::record::{KeyId, KeyRecord, NewKey, OwnerId};
use crate::rejection::Rejection;
use crate::store::{KeyCursor, KeyPage, ListKeys};

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
        let actor = Actor::Owner(new.owner.clone());
        self.create_as(new, actor).await
    }

    /// [`create`](Self::create), naming who created the key in its
    /// [`Created`](KeyEventKind::Created) event (`create` names the owner).
    pub async fn create_as(&self, new: NewKey, actor: Actor) -> Result<CreatedKey, ManageError> {
        self.engine.create(new, actor).await
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
        self.roll_as(owner, id, overlap, Actor::Owner(owner.clone()))
            .await
    }

    /// [`roll`](Self::roll), naming who rolled the key in its events (`roll`
    /// names the owner).
    pub async fn roll_as(
        &self,
        owner: &OwnerId,
        id: &KeyId,
        overlap: chrono::Duration,
        actor: Actor,
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
        let created = self.create_as(new, actor.clone()).await?;
        let until = self.engine.clock.now() + overlap.max(chrono::Duration::zero());
        let old = self.expire(owner, id, until).await?;
        self.engine.event(
            &old,
            KeyEventKind::Rolled {
                successor: created.record.id,
                expires_at: old.expires_at.unwrap_or(until),
                actor,
            },
        );
        Ok(created)
    }

    /// One page of the owner's keys, newest first: `limit` keys at most
    /// (clamped to 1 ..= [`ListKeys::MAX_LIMIT`]), after the cursor of the
    /// previous page. Use [`KeyRecord::status_at`] for each one's status.
    ///
    /// ```
    /// use tower_api_keys::{ApiKeys, MemoryStore, NewKey};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let keys = ApiKeys::builder(MemoryStore::new()).build()?;
    /// for name in ["a", "b", "c"] {
    ///     keys.create(NewKey::new("acct_1", name)).await?;
    /// }
    /// let owner = "acct_1".into();
    /// let first = keys.list(&owner, None, 2).await?;
    /// assert_eq!(first.records[0].name, "c");
    /// let second = keys.list(&owner, first.next, 2).await?;
    /// assert_eq!(second.records.len(), 1);
    /// assert!(second.next.is_none());
    /// # Ok(())
    /// # }
    /// ```
    pub async fn list(
        &self,
        owner: &OwnerId,
        after: Option<KeyCursor>,
        limit: usize,
    ) -> Result<KeyPage, ManageError> {
        let query = ListKeys::new()
            .owner(owner.clone())
            .after(after)
            .limit(limit);
        Ok(self.engine.store.list(&query).await?)
    }

    /// One of the owner's keys.
    pub async fn get(&self, owner: &OwnerId, id: &KeyId) -> Result<KeyRecord, ManageError> {
        match self.engine.store.find_by_id(id).await? {
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

    /// Renames one of the owner's keys (the name is checked as at
    /// creation). This process shows the new name at once; others once
    /// they read the change feed.
    ///
    /// ```
    /// use tower_api_keys::{ApiKeys, MemoryStore, NewKey};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let keys = ApiKeys::builder(MemoryStore::new()).build()?;
    /// let owner = "acct_1".into();
    /// let created = keys.create(NewKey::new("acct_1", "laptop")).await?;
    /// let renamed = keys.rename(&owner, &created.record.id, "work laptop").await?;
    /// assert_eq!(renamed.name, "work laptop");
    /// # Ok(())
    /// # }
    /// ```
    pub async fn rename(
        &self,
        owner: &OwnerId,
        id: &KeyId,
        name: &str,
    ) -> Result<KeyRecord, ManageError> {
        self.rename_as(owner, id, name, Actor::Owner(owner.clone()))
            .await
    }

    /// [`rename`](Self::rename), naming who renamed the key in its
    /// [`Renamed`](KeyEventKind::Renamed) event (`rename` names the owner).
    pub async fn rename_as(
        &self,
        owner: &OwnerId,
        id: &KeyId,
        name: &str,
        actor: Actor,
    ) -> Result<KeyRecord, ManageError> {
        self.engine.rename(owner, id, name, actor).await
    }

    /// [`revoke`](Self::revoke), recording why.
    pub async fn revoke_with_reason(
        &self,
        owner: &OwnerId,
        id: &KeyId,
        reason: Option<&str>,
    ) -> Result<KeyRecord, ManageError> {
        self.revoke_as(owner, id, reason, Actor::Owner(owner.clone()))
            .await
    }

    /// [`revoke_with_reason`](Self::revoke_with_reason), naming who revoked
    /// the key in its [`Revoked`](KeyEventKind::Revoked) event (the other
    /// calls name the owner).
    pub async fn revoke_as(
        &self,
        owner: &OwnerId,
        id: &KeyId,
        reason: Option<&str>,
        actor: Actor,
    ) -> Result<KeyRecord, ManageError> {
        self.engine.revoke(owner, id, reason, actor).await
    }

    /// Emits an event about `record`, stamped now (for the endpoints built
    /// on this handle, such as secret scanning's).
    #[cfg(feature = "secret-scanning")]
    pub(crate) fn emit_event(&self, record: &KeyRecord, kind: KeyEventKind) {
        self.engine.event(record, kind);
    }

    /// Makes one of the owner's keys expire at `at`, unless it expires
    /// earlier already. Takes effect like [`revoke`](Self::revoke).
    pub async fn expire(
        &self,
        owner: &OwnerId,
        id: &KeyId,
        at: DateTime<Utc>,
    ) -> Result<KeyRecord, ManageError> {
        self.engine.expire(owner, id, at).await
    }

    /// Checks a key the way the layer does (format, hash, cache or store,
    /// status against the clock) for code that receives keys some other way
    /// than in an HTTP request. An admitted key's use is recorded like a
    /// request's. The [`Rejection`] says why a key was refused.
    ///
    /// ```
    /// use tower_api_keys::{ApiKeys, MemoryStore, NewKey};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let keys = ApiKeys::builder(MemoryStore::new()).build()?;
    /// let created = keys.create(NewKey::new("acct_1", "worker")).await?;
    /// let identity = keys.authenticate(created.secret.expose_secret()).await?;
    /// assert_eq!(identity.name(), "worker");
    /// assert!(keys.authenticate("bmc_not-a-key").await.is_err());
    /// # Ok(())
    /// # }
    /// ```
    pub async fn authenticate(&self, key: &str) -> Result<AuthenticatedKey, Rejection> {
        std::sync::Arc::clone(&self.engine).authenticate(key).await
    }
}
