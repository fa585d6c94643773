//! The `keys` commands straight on the store (`--db`), as the key's owner.
//! A running server sees every change through the store's change log
//! within a second.

use chrono::Utc;
use tower_api_keys::event::Actor;
use tower_api_keys::management;
use tower_api_keys::record::{KeyId, OwnerId, Scopes};
use tower_api_keys::store::ListKeys;
use tower_api_keys::{ApiKeys, CreatedKey, NewKey};

use super::{Created, Key, KeyAdmin, Result};
use crate::audit::AuditLog;
use crate::cli::{CreateArgs, DEFAULT_OWNER, KeysCommand};

/// Most keys `keys list` shows: the newest ones.
const LIST_LIMIT: usize = 10_000;
/// Keys asked for by a prefix: enough to tell one from several.
const PREFIX_MATCHES: usize = 10;

/// The keys of one store.
pub(crate) struct Local {
    keys: ApiKeys,
}

impl Local {
    /// Opens the store at `db`, its key events appended to `audit`.
    pub(crate) async fn open(db: &str, audit: Option<&AuditLog>) -> Result<Self> {
        let mut builder = ApiKeys::builder(crate::store::open(db).await?);
        if let Some(audit) = audit {
            builder = audit.attach(builder);
        }
        Ok(Self {
            keys: builder.build()?,
        })
    }

    /// Waits for the last-used times and the key events still on their way.
    pub(crate) async fn shutdown(self) {
        self.keys.shutdown().await;
    }
}

/// The owner of a key of this store (every one has it).
fn owner(key: &Key) -> Result<&OwnerId> {
    key.owner
        .as_ref()
        .ok_or_else(|| format!("the key {} came without its owner", key.body.id).into())
}

fn created(created: &CreatedKey) -> Created {
    Created {
        body: management::CreatedKey::new(created, Utc::now()),
        owner: Some(created.record.owner.clone()),
    }
}

impl KeyAdmin for Local {
    fn check(&self, _: &KeysCommand) -> Result<()> {
        Ok(())
    }

    async fn create(&self, args: CreateArgs) -> Result<Created> {
        let expires_at = args.expiry();
        let owner = args.owner.unwrap_or_else(|| DEFAULT_OWNER.to_owned());
        let mut new = NewKey::new(owner, args.name);
        if !args.scopes.is_empty() {
            new = new.scopes(Scopes::only(args.scopes));
        }
        if let Some(limit) = args.rate_limit {
            new = new.rate_limit(limit);
        }
        if let Some(metadata) = args.metadata {
            new = new.metadata(metadata);
        }
        new.expires_at = expires_at;
        Ok(created(&self.keys.create(new).await?))
    }

    async fn list(&self, owner: Option<String>) -> Result<Vec<Key>> {
        let mut query = ListKeys::new().limit(ListKeys::MAX_LIMIT);
        if let Some(owner) = owner {
            query = query.owner(OwnerId::new(owner));
        }
        // Page by page, newest first, up to the newest LIST_LIMIT keys.
        let mut records = Vec::new();
        loop {
            let page = self.keys.store().list(&query).await?;
            records.extend(page.records);
            match page.next {
                Some(next) if records.len() < LIST_LIMIT => query = query.after(Some(next)),
                _ => break,
            }
        }
        records.truncate(LIST_LIMIT);
        let now = Utc::now();
        Ok(records
            .iter()
            .map(|record| Key::from_record(record, now))
            .collect())
    }

    async fn by_id(&self, id: KeyId) -> Result<Key> {
        let record = self
            .keys
            .store()
            .find_by_id(&id)
            .await?
            .ok_or_else(|| format!("no key has the id {id}"))?;
        Ok(Key::from_record(&record, Utc::now()))
    }

    async fn by_prefix(&self, prefix: &str) -> Result<Vec<Key>> {
        let query = ListKeys::new().display_prefix(prefix).limit(PREFIX_MATCHES);
        let now = Utc::now();
        let page = self.keys.store().list(&query).await?;
        Ok(page
            .records
            .iter()
            .map(|record| Key::from_record(record, now))
            .collect())
    }

    async fn rename(&self, key: &Key, name: &str) -> Result<Key> {
        let renamed = self.keys.rename(owner(key)?, &key.body.id, name).await?;
        Ok(Key::from_record(&renamed, Utc::now()))
    }

    async fn revoke(&self, key: &Key, reason: Option<&str>) -> Result<Key> {
        let owner = owner(key)?;
        let revoked = self
            .keys
            .acting_as(Actor::Owner(owner.clone()))
            .revoke(owner, &key.body.id, reason)
            .await?;
        Ok(Key::from_record(&revoked, Utc::now()))
    }

    async fn roll(&self, key: &Key, overlap: chrono::Duration) -> Result<Created> {
        let rolled = self.keys.roll(owner(key)?, &key.body.id, overlap).await?;
        Ok(created(&rolled))
    }

    async fn reread(&self, key: &Key) -> Result<Option<Key>> {
        let record = self.keys.get(owner(key)?, &key.body.id).await?;
        Ok(Some(Key::from_record(&record, Utc::now())))
    }
}
