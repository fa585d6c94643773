//! The writes that change a key, each with what must go with it: the store
//! write, the cache eviction, the watchers of the key, and one key event
//! (which is also its tracing event).

use chrono::{DateTime, Utc};

use super::Engine;
use crate::error::ManageError;
use crate::event::{Actor, KeyEvent, KeyEventKind, NoticedBy};
use crate::record::{CreatedKey, KeyId, KeyRecord, NewKey, OwnerId, is_showable};
use crate::store::KeyUpdate;

impl Engine {
    /// Generates, stores and announces a new key.
    pub(crate) async fn create(
        &self,
        new: NewKey,
        actor: Actor,
    ) -> Result<CreatedKey, ManageError> {
        if !is_showable(&new.name) {
            return Err(ManageError::InvalidName);
        }
        if !is_showable(new.owner.as_str()) {
            return Err(ManageError::InvalidOwner);
        }
        let secret = self.format.generate()?;
        let hash = self.hasher.hash(secret.expose_secret());
        let record = KeyRecord {
            id: KeyId::new(),
            name: new.name,
            owner: new.owner,
            display_prefix: secret.display_prefix().to_owned(),
            hash,
            // Stores keep microseconds; so does the record returned here.
            created_at: truncate_to_micros(self.clock.now()),
            expires_at: new.expires_at.map(truncate_to_micros),
            last_used_at: None,
            revoked_at: None,
            revoked_reason: None,
            scopes: new.scopes,
            metadata: new.metadata,
            rate_limit: new.rate_limit,
        };
        self.store.insert(&record).await?;
        self.cache.invalidate(&hash).await;
        self.event(&record, KeyEventKind::Created { actor });
        Ok(CreatedKey { secret, record })
    }

    /// Revokes and evicts; shared by the management calls, the policy that
    /// revokes keys exposed in URLs and the secret-scanning endpoint. The
    /// event is emitted only when this call revoked the key.
    pub(crate) async fn revoke(
        &self,
        owner: &OwnerId,
        id: &KeyId,
        reason: Option<&str>,
        actor: Actor,
    ) -> Result<KeyRecord, ManageError> {
        if reason.is_some_and(|reason| !is_showable(reason)) {
            return Err(ManageError::InvalidReason);
        }
        // Stores keep microseconds: the stamp read back equals this one
        // exactly when this call made the revocation.
        let now = truncate_to_micros(self.clock.now());
        let record = self
            .store
            .update(
                owner,
                id,
                &KeyUpdate::Revoke {
                    at: now,
                    reason: reason.map(str::to_owned),
                },
            )
            .await?
            .ok_or(ManageError::NotFound)?;
        self.changed(&record).await;
        if record.revoked_at != Some(now) {
            return Ok(record);
        }
        self.event(
            &record,
            KeyEventKind::Revoked {
                reason: reason.map(str::to_owned),
                actor,
            },
        );
        Ok(record)
    }

    /// Renames one of the owner's keys, evicts its cached copy and emits
    /// the event (when the name changed).
    pub(crate) async fn rename(
        &self,
        owner: &OwnerId,
        id: &KeyId,
        name: &str,
        actor: Actor,
    ) -> Result<KeyRecord, ManageError> {
        if !is_showable(name) {
            return Err(ManageError::InvalidName);
        }
        let before = match self.store.find_by_id(id).await? {
            Some(record) if &record.owner == owner => record,
            _ => return Err(ManageError::NotFound),
        };
        let record = self
            .store
            .update(
                owner,
                id,
                &KeyUpdate::Rename {
                    name: name.to_owned(),
                },
            )
            .await?
            .ok_or(ManageError::NotFound)?;
        self.cache.invalidate(&record.hash).await;
        if before.name != record.name {
            self.event(
                &record,
                KeyEventKind::Renamed {
                    from: before.name,
                    to: record.name.clone(),
                    actor,
                },
            );
        }
        Ok(record)
    }

    /// Brings a key's expiry to `at` at the latest, and evicts it.
    pub(crate) async fn expire(
        &self,
        owner: &OwnerId,
        id: &KeyId,
        at: DateTime<Utc>,
    ) -> Result<KeyRecord, ManageError> {
        let record = self
            .store
            .update(owner, id, &KeyUpdate::ExpireBy { at })
            .await?
            .ok_or(ManageError::NotFound)?;
        self.changed(&record).await;
        let now = self.clock.now();
        if record.revoked_at.is_none() && record.expires_at.is_some_and(|at| at <= now) {
            self.event(
                &record,
                KeyEventKind::Expired {
                    expires_at: record.expires_at,
                    noticed_by: NoticedBy::Write,
                },
            );
        }
        Ok(record)
    }

    /// Emits an event about `record`, stamped now.
    pub(crate) fn event(&self, record: &KeyRecord, kind: KeyEventKind) {
        self.events
            .emit(&KeyEvent::new(self.clock.now(), record, kind));
    }

    /// What this process does at once after changing a key, without waiting
    /// for the change feed: forget the cached copy, tell the watchers.
    async fn changed(&self, record: &KeyRecord) {
        self.cache.invalidate(&record.hash).await;
        self.watchers.update(record.hash, Some(record));
    }
}

fn truncate_to_micros(at: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(at.timestamp_micros()).unwrap_or(at)
}
