//! Key management on [`ApiKeys`]: create (the secret is shown once), list,
//! get, roll, revoke, expire; and checking a key outside the layer. Every
//! call is scoped by owner: no owner sees or changes another's keys.

use chrono::{DateTime, Utc};

use super::ApiKeys;
use crate::error::ManageError;
use crate::event::{Actor, KeyEventKind};
use crate::identity::AuthenticatedKey;
use crate::record::{CreatedKey, KeyId, KeyRecord, NewKey, OwnerId};
use crate::rejection::Rejection;
use crate::store::{KeyCursor, KeyPage, ListKeys};

impl ApiKeys {
    /// Creates a key and returns its plaintext, once.
    ///
    /// ```
    /// use tower_api_keys::{ApiKeys, MemoryStore, NewKey};
    /// use tower_api_keys::record::KeyStatus;
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
        self.acting_as(actor).create(new).await
    }

    /// The calls that change keys, naming `actor` as who made each change
    /// in its [`KeyEvent`](crate::event::KeyEvent) (the calls on
    /// [`ApiKeys`] itself name the key's owner): a managing key acting for
    /// its owner, say, or a policy of the crate.
    ///
    /// ```
    /// use tower_api_keys::event::Actor;
    /// use tower_api_keys::{ApiKeys, MemoryStore, NewKey};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let keys = ApiKeys::builder(MemoryStore::new()).build()?;
    /// let owner = "acct_1".into();
    /// let created = keys.create(NewKey::new("acct_1", "laptop")).await?;
    /// let manager = keys.create(NewKey::new("acct_1", "keys manager")).await?;
    /// let revoked = keys
    ///     .acting_as(Actor::Key(manager.record.id))
    ///     .revoke(&owner, &created.record.id, Some("lost laptop"))
    ///     .await?;
    /// assert_eq!(revoked.revoked_reason.as_deref(), Some("lost laptop"));
    /// # Ok(())
    /// # }
    /// ```
    pub fn acting_as(&self, actor: Actor) -> ActingAs<'_> {
        ActingAs { keys: self, actor }
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
        self.acting_as(Actor::Owner(owner.clone()))
            .roll(owner, id, overlap)
            .await
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
    /// Revoking a revoked key returns its record unchanged. To record why,
    /// or who did it, see [`acting_as`](Self::acting_as).
    pub async fn revoke(&self, owner: &OwnerId, id: &KeyId) -> Result<KeyRecord, ManageError> {
        self.acting_as(Actor::Owner(owner.clone()))
            .revoke(owner, id, None)
            .await
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
        self.acting_as(Actor::Owner(owner.clone()))
            .rename(owner, id, name)
            .await
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

/// The calls that change keys, on behalf of an [`Actor`] named in their
/// events; from [`ApiKeys::acting_as`]. Each call is scoped by owner, as
/// on [`ApiKeys`].
#[derive(Debug, Clone)]
#[must_use = "an ActingAs does nothing until one of its calls is awaited"]
pub struct ActingAs<'a> {
    keys: &'a ApiKeys,
    actor: Actor,
}

impl ActingAs<'_> {
    /// [`ApiKeys::create`], naming the actor in the
    /// [`Created`](KeyEventKind::Created) event.
    pub async fn create(&self, new: NewKey) -> Result<CreatedKey, ManageError> {
        self.keys.engine.create(new, self.actor.clone()).await
    }

    /// [`ApiKeys::roll`], naming the actor in the events.
    pub async fn roll(
        &self,
        owner: &OwnerId,
        id: &KeyId,
        overlap: chrono::Duration,
    ) -> Result<CreatedKey, ManageError> {
        // One roll of a key at a time in this process: two at once would
        // both read the key as active and make two successors.
        let _rolling = Rolling::start(&self.keys.engine.rolling, *id)?;
        let old = self.keys.get(owner, id).await?;
        if old.revoked_at.is_some() {
            return Err(ManageError::Revoked);
        }
        let mut new = NewKey::new(old.owner.clone(), old.name.clone())
            .scopes(old.scopes.clone())
            .metadata(old.metadata.clone());
        new.expires_at = old.expires_at;
        new.rate_limit = old.rate_limit;
        let created = self.create(new).await?;
        let until = self.keys.now() + overlap.max(chrono::Duration::zero());
        let old = self.keys.expire(owner, id, until).await?;
        // A revocation that came in since the key was read (from this
        // process or another): the successor goes with it.
        if old.revoked_at.is_some() {
            self.revoke(owner, &created.record.id, None).await?;
            return Err(ManageError::Revoked);
        }
        self.keys.engine.event(
            &old,
            KeyEventKind::Rolled {
                successor: created.record.id,
                expires_at: old.expires_at.unwrap_or(until),
                actor: self.actor.clone(),
            },
        );
        Ok(created)
    }

    /// [`ApiKeys::rename`], naming the actor in the
    /// [`Renamed`](KeyEventKind::Renamed) event.
    pub async fn rename(
        &self,
        owner: &OwnerId,
        id: &KeyId,
        name: &str,
    ) -> Result<KeyRecord, ManageError> {
        self.keys
            .engine
            .rename(owner, id, name, self.actor.clone())
            .await
    }

    /// [`ApiKeys::revoke`], recording `reason` with the revocation and
    /// naming the actor in the [`Revoked`](KeyEventKind::Revoked) event.
    pub async fn revoke(
        &self,
        owner: &OwnerId,
        id: &KeyId,
        reason: Option<&str>,
    ) -> Result<KeyRecord, ManageError> {
        self.keys
            .engine
            .revoke(owner, id, reason, self.actor.clone())
            .await
    }
}

/// A key being rolled, in the set of such keys until dropped.
struct Rolling<'a> {
    set: &'a std::sync::Mutex<std::collections::HashSet<KeyId>>,
    id: KeyId,
}

impl<'a> Rolling<'a> {
    fn start(
        set: &'a std::sync::Mutex<std::collections::HashSet<KeyId>>,
        id: KeyId,
    ) -> Result<Self, ManageError> {
        let mut rolling = set
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !rolling.insert(id) {
            return Err(ManageError::RollInProgress);
        }
        Ok(Self { set, id })
    }
}

impl Drop for Rolling<'_> {
    fn drop(&mut self) {
        self.set
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&self.id);
    }
}
