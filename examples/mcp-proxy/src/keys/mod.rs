//! `keys create|list|rename|revoke|roll`: each command written once over
//! [`KeyAdmin`], which two sides implement: [`local::Local`], straight on
//! the store (a running server sees every change through the store's
//! change log within a second), and [`remote::Remote`], through a running
//! server's key management API (`keys --server URL`). Secrets go to stdout
//! alone; everything else to stderr.

mod local;
mod remote;
mod render;

use chrono::{DateTime, Utc};
use tower_api_keys::management;
use tower_api_keys::record::{KeyId, KeyRecord, KeyStatus, OwnerId};

use crate::audit::AuditLog;
use crate::cli::{CreateArgs, KeysArgs, KeysCommand, ListArgs, RenameArgs, RevokeArgs, RollArgs};
use render::{print_json, shown, when};

pub(crate) type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// Runs one `keys` subcommand: through the server `args.server` names, or
/// else on the store at `db` (its key events appended to `audit`, which is
/// the store's and so refused with `--server`).
pub async fn run(db: &str, audit: Option<&AuditLog>, args: KeysArgs) -> Result<()> {
    let KeysArgs {
        server,
        json,
        command,
    } = args;
    match server {
        Some(_) if audit.is_some() => {
            Err("--audit-log is the store's; with --server the server keeps its own".into())
        }
        Some(server) => execute(&remote::Remote::new(&server)?, json, command).await,
        None => {
            let local = local::Local::open(db, audit).await?;
            let outcome = execute(&local, json, command).await;
            local.shutdown().await;
            outcome
        }
    }
}

/// What the `keys` commands need of where the keys are.
pub(crate) trait KeyAdmin {
    /// Refuses, before anything is asked, what this side cannot do.
    fn check(&self, command: &KeysCommand) -> Result<()>;
    /// Creates the key `args` describe.
    async fn create(&self, args: CreateArgs) -> Result<Created>;
    /// The keys (of `owner`, where given), newest first.
    async fn list(&self, owner: Option<String>) -> Result<Vec<Key>>;
    /// The key with the id `id`.
    async fn by_id(&self, id: KeyId) -> Result<Key>;
    /// Keys whose display prefix starts with `prefix`: all of them, or
    /// enough to tell one from several.
    async fn by_prefix(&self, prefix: &str) -> Result<Vec<Key>>;
    /// `key`, renamed `name`.
    async fn rename(&self, key: &Key, name: &str) -> Result<Key>;
    /// `key`, revoked (for `reason`, where given).
    async fn revoke(&self, key: &Key, reason: Option<&str>) -> Result<Key>;
    /// The key `key` is rolled into; `key` works `overlap` more.
    async fn roll(&self, key: &Key, overlap: chrono::Duration) -> Result<Created>;
    /// `key` as it stands now, to say how long it works after a roll;
    /// `None` where that would take another call to a server (whose answer
    /// to the roll does not say).
    async fn reread(&self, key: &Key) -> Result<Option<Key>>;
}

/// A key as the commands show it, from either side.
#[derive(Debug)]
pub(crate) struct Key {
    /// What `--json` prints, and most of what the table shows.
    pub(crate) body: management::Key,
    /// Its owner: the store says; a server's answers do not (the keys it
    /// manages are all the managing key's owner's).
    pub(crate) owner: Option<OwnerId>,
    /// Why it was revoked, where the store says.
    pub(crate) revoked_reason: Option<String>,
}

impl Key {
    /// A record of the store, with its status as of `now`.
    pub(crate) fn from_record(record: &KeyRecord, now: DateTime<Utc>) -> Self {
        Self {
            body: management::Key::new(record, now),
            owner: Some(record.owner.clone()),
            revoked_reason: record.revoked_reason.clone(),
        }
    }

    /// A key of a server's answer.
    pub(crate) fn from_body(body: management::Key) -> Self {
        Self {
            body,
            owner: None,
            revoked_reason: None,
        }
    }
}

/// A key just created (or rolled into), with its secret.
pub(crate) struct Created {
    /// What `--json` prints: the key and its secret.
    pub(crate) body: management::CreatedKey,
    /// Its owner, where the side says (as in [`Key::owner`]).
    pub(crate) owner: Option<OwnerId>,
}

async fn execute(admin: &impl KeyAdmin, json: bool, command: KeysCommand) -> Result<()> {
    admin.check(&command)?;
    match command {
        KeysCommand::Create(args) => create(admin, args, json).await,
        KeysCommand::List(args) => list(admin, args, json).await,
        KeysCommand::Revoke(args) => revoke(admin, args, json).await,
        KeysCommand::Rename(args) => rename(admin, args, json).await,
        KeysCommand::Roll(args) => roll(admin, args, json).await,
    }
}

async fn create(admin: &impl KeyAdmin, args: CreateArgs, json: bool) -> Result<()> {
    let created = admin.create(args).await?;
    if json {
        return print_json(&created.body);
    }
    describe_created(&created, "created");
    Ok(())
}

async fn list(admin: &impl KeyAdmin, args: ListArgs, json: bool) -> Result<()> {
    let mut keys = admin.list(args.owner).await?;
    keys.reverse();
    if let Some(within) = args.expiring_within {
        keys = soonest_expiring(keys, Utc::now() + within);
    }
    if json {
        let bodies: Vec<&management::Key> = keys.iter().map(|key| &key.body).collect();
        return print_json(&bodies);
    }
    if keys.is_empty() {
        eprintln!("no keys");
        return Ok(());
    }
    print!("{}", render::table(&keys));
    Ok(())
}

/// The active keys among `keys` that expire by `by`, soonest first.
fn soonest_expiring(keys: Vec<Key>, by: DateTime<Utc>) -> Vec<Key> {
    let mut expiring: Vec<Key> = keys
        .into_iter()
        .filter(|key| {
            key.body.status == KeyStatus::Active && key.body.expires_at.is_some_and(|at| at <= by)
        })
        .collect();
    expiring.sort_by_key(|key| key.body.expires_at);
    expiring
}

async fn revoke(admin: &impl KeyAdmin, args: RevokeArgs, json: bool) -> Result<()> {
    let key = find(admin, &args.key).await?;
    let revoked = admin.revoke(&key, args.reason.as_deref()).await?;
    if json {
        return print_json(&revoked.body);
    }
    let (name, prefix, id) = (
        shown(&revoked.body.name),
        shown(&revoked.body.display_prefix),
        revoked.body.id,
    );
    if key.body.revoked_at.is_some() {
        eprintln!("key {name:?} ({prefix}, id {id}) was already revoked");
    } else {
        eprintln!("revoked key {name:?} ({prefix}, id {id})");
    }
    Ok(())
}

async fn rename(admin: &impl KeyAdmin, args: RenameArgs, json: bool) -> Result<()> {
    let key = find(admin, &args.key).await?;
    let renamed = admin.rename(&key, &args.name).await?;
    if json {
        return print_json(&renamed.body);
    }
    eprintln!(
        "renamed key {} (id {}) from {:?} to {:?}",
        shown(&renamed.body.display_prefix),
        renamed.body.id,
        shown(&key.body.name),
        shown(&renamed.body.name)
    );
    Ok(())
}

async fn roll(admin: &impl KeyAdmin, args: RollArgs, json: bool) -> Result<()> {
    let key = find(admin, &args.key).await?;
    let rolled = admin.roll(&key, args.overlap).await?;
    if json {
        return print_json(&rolled.body);
    }
    let Some(old) = admin.reread(&key).await? else {
        describe_created(&rolled, "rolled into the");
        return Ok(());
    };
    let new = &rolled.body.key;
    eprintln!(
        "rolled key {:?}: new {} (id {}); the old {} works until {}",
        shown(&new.name),
        shown(&new.display_prefix),
        new.id,
        shown(&old.body.display_prefix),
        old.body.expires_at.map_or_else(|| "?".to_owned(), when)
    );
    eprintln!("the new key is shown once, on stdout:");
    println!("{}", rolled.body.secret);
    Ok(())
}

/// What `created` is (`what` was done, and its owner where known) on
/// stderr, and its secret alone on stdout.
fn describe_created(created: &Created, what: &str) {
    let key = &created.body.key;
    let owner = match &created.owner {
        Some(owner) => format!(" for {}", shown(owner.as_str())),
        None => String::new(),
    };
    eprintln!(
        "{what} key {:?}{owner} ({}, id {}), scopes {}, {}",
        shown(&key.name),
        shown(&key.display_prefix),
        key.id,
        render::scopes(key),
        key.expires_at.map_or_else(
            || "never expires".to_owned(),
            |at| format!("expires {}", when(at))
        )
    );
    eprintln!("the key is shown once, on stdout:");
    println!("{}", created.body.secret);
}

/// The key named by an id, or by the start of its display prefix; none, or
/// several (listed, escaped, by id, prefix and name), is an error.
async fn find(admin: &impl KeyAdmin, id_or_prefix: &str) -> Result<Key> {
    if let Ok(id) = id_or_prefix.parse::<KeyId>() {
        return admin.by_id(id).await;
    }
    let mut found = admin.by_prefix(id_or_prefix).await?;
    match found.len() {
        0 => Err(format!("no key has the id or prefix {id_or_prefix:?}").into()),
        1 => Ok(found.remove(0)),
        _ => {
            let candidates: Vec<String> = found
                .iter()
                .map(|key| {
                    format!(
                        "  {} {} {:?}",
                        key.body.id,
                        shown(&key.body.display_prefix),
                        shown(&key.body.name)
                    )
                })
                .collect();
            Err(format!(
                "the prefix {id_or_prefix:?} matches several keys; give more of it, or the id:\n{}",
                candidates.join("\n")
            )
            .into())
        }
    }
}
