//! `keys create|list|rename|revoke|roll`: administration straight on the
//! store (see [`remote`](crate::remote) for the same through a server).
//! A running server sees every change through the store's change log
//! within a second. Secrets go to stdout alone; everything else to stderr.

use std::sync::Arc;

use crate::shown::is_unsafe_to_show;
use chrono::{DateTime, Utc};
use tower_api_keys::event::Actor;
use tower_api_keys::management::{CreatedKeyBody, KeyBody};
use tower_api_keys::record::{KeyId, KeyRecord, KeyStatus, OwnerId, Scopes};
use tower_api_keys::store::ListKeys;
use tower_api_keys::{ApiKeys, KeyStore, NewKey};

use crate::audit::AuditLog;
use crate::cli::{
    CreateArgs, DEFAULT_OWNER, KeysCommand, ListArgs, RenameArgs, RevokeArgs, RollArgs,
};

/// Most keys `keys list` shows: the newest ones.
const LIST_LIMIT: usize = 10_000;

pub(crate) type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// Runs one `keys` subcommand against the store at `db`; with `json`, what
/// it prints on stdout is JSON.
pub async fn run(
    db: &str,
    audit: Option<&AuditLog>,
    json: bool,
    command: KeysCommand,
) -> Result<()> {
    let store: Arc<dyn KeyStore> = crate::store::open(db).await?;
    let mut builder = ApiKeys::builder(store);
    if let Some(audit) = audit {
        builder = audit.attach(builder);
    }
    let keys = builder.build()?;
    let outcome = match command {
        KeysCommand::Create(args) => create(&keys, args, json).await,
        KeysCommand::List(args) => list(&keys, args, json).await,
        KeysCommand::Revoke(args) => revoke(&keys, args, json).await,
        KeysCommand::Rename(args) => rename(&keys, args, json).await,
        KeysCommand::Roll(args) => roll(&keys, args, json).await,
    };
    keys.shutdown().await;
    outcome
}

async fn create(keys: &ApiKeys, args: CreateArgs, json: bool) -> Result<()> {
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
    new.expires_at = match (args.expires_in, args.expires_at) {
        (Some(after), _) => Some(Utc::now() + after),
        (None, at) => at,
    };
    let created = keys.create(new).await?;
    if json {
        return print_json(&CreatedKeyBody::new(&created, Utc::now()));
    }
    let record = &created.record;
    eprintln!(
        "created key {:?} for {} ({}, id {}), scopes {}, {}",
        record.name,
        record.owner,
        record.display_prefix,
        record.id,
        record.scopes,
        match record.expires_at {
            Some(at) => format!("expires {}", when(at)),
            None => "never expires".to_owned(),
        }
    );
    eprintln!("the key is shown once, on stdout:");
    println!("{}", created.secret.expose_secret());
    Ok(())
}

async fn list(keys: &ApiKeys, args: ListArgs, json: bool) -> Result<()> {
    let mut query = ListKeys::new().limit(ListKeys::MAX_LIMIT);
    if let Some(owner) = args.owner {
        query = query.owner(OwnerId::new(owner));
    }
    // Page by page, newest first, up to the newest LIST_LIMIT keys; shown
    // oldest first.
    let mut records = Vec::new();
    loop {
        let page = keys.store().list(&query).await?;
        records.extend(page.records);
        match page.next {
            Some(next) if records.len() < LIST_LIMIT => query = query.after(Some(next)),
            _ => break,
        }
    }
    records.truncate(LIST_LIMIT);
    records.reverse();
    let now = Utc::now();
    if let Some(within) = args.expiring_within {
        records = expiring_within(records, now, within);
    }
    if json {
        let bodies: Vec<KeyBody> = records.iter().map(|r| KeyBody::new(r, now)).collect();
        return print_json(&bodies);
    }
    if records.is_empty() {
        eprintln!("no keys");
        return Ok(());
    }
    print!("{}", table(&records, now));
    Ok(())
}

/// `value` as one line of JSON on stdout, with the characters
/// [`shown`] escapes written as `\u` escapes (JSON itself escapes only the
/// C0 controls), so no text from a row or a server reaches the terminal raw.
pub(crate) fn print_json(value: &impl serde::Serialize) -> Result<()> {
    println!("{}", json_line(value)?);
    Ok(())
}

/// What [`print_json`] prints.
pub fn json_line(value: &impl serde::Serialize) -> Result<String> {
    let text = serde_json::to_string(value)?;
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if is_unsafe_to_show(c) {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        } else {
            out.push(c);
        }
    }
    Ok(out)
}

/// The active keys that expire after `now` and by `now + within`, soonest
/// first.
pub fn expiring_within(
    records: Vec<KeyRecord>,
    now: DateTime<Utc>,
    within: chrono::Duration,
) -> Vec<KeyRecord> {
    soonest_expiring(records, now + within, |r| (r.status_at(now), r.expires_at))
}

/// The `items` whose facts say active and expiring by `by`, soonest first.
pub(crate) fn soonest_expiring<T>(
    items: Vec<T>,
    by: DateTime<Utc>,
    facts: impl Fn(&T) -> (KeyStatus, Option<DateTime<Utc>>),
) -> Vec<T> {
    let mut expiring: Vec<T> = items
        .into_iter()
        .filter(|item| {
            let (status, expires_at) = facts(item);
            status == KeyStatus::Active && expires_at.is_some_and(|at| at <= by)
        })
        .collect();
    expiring.sort_by_key(|item| facts(item).1);
    expiring
}

async fn revoke(keys: &ApiKeys, args: RevokeArgs, json: bool) -> Result<()> {
    let record = find(keys, &args.key).await?;
    let revoked = keys
        .acting_as(Actor::Owner(record.owner.clone()))
        .revoke(&record.owner, &record.id, args.reason.as_deref())
        .await?;
    if json {
        return print_json(&KeyBody::new(&revoked, Utc::now()));
    }
    if record.revoked_at.is_some() {
        eprintln!(
            "key {:?} ({}, id {}) was already revoked",
            revoked.name, revoked.display_prefix, revoked.id
        );
    } else {
        eprintln!(
            "revoked key {:?} ({}, id {})",
            revoked.name, revoked.display_prefix, revoked.id
        );
    }
    Ok(())
}

async fn rename(keys: &ApiKeys, args: RenameArgs, json: bool) -> Result<()> {
    let record = find(keys, &args.key).await?;
    let renamed = keys.rename(&record.owner, &record.id, &args.name).await?;
    if json {
        return print_json(&KeyBody::new(&renamed, Utc::now()));
    }
    eprintln!(
        "renamed key {} (id {}) from {:?} to {:?}",
        renamed.display_prefix,
        renamed.id,
        shown(&record.name),
        shown(&renamed.name)
    );
    Ok(())
}

async fn roll(keys: &ApiKeys, args: RollArgs, json: bool) -> Result<()> {
    let record = find(keys, &args.key).await?;
    let created = keys.roll(&record.owner, &record.id, args.overlap).await?;
    if json {
        return print_json(&CreatedKeyBody::new(&created, Utc::now()));
    }
    let old = keys.get(&record.owner, &record.id).await?;
    eprintln!(
        "rolled key {:?}: new {} (id {}); the old {} works until {}",
        created.record.name,
        created.record.display_prefix,
        created.record.id,
        old.display_prefix,
        old.expires_at.map_or_else(|| "?".to_owned(), when)
    );
    eprintln!("the new key is shown once, on stdout:");
    println!("{}", created.secret.expose_secret());
    Ok(())
}

/// The key named by an id, or by the start of its display prefix; an
/// ambiguous prefix is an error that lists the candidates.
async fn find(keys: &ApiKeys, id_or_prefix: &str) -> Result<KeyRecord> {
    if let Ok(id) = id_or_prefix.parse::<KeyId>() {
        return keys
            .store()
            .find_by_id(&id)
            .await?
            .ok_or_else(|| format!("no key has the id {id}").into());
    }
    let found = keys
        .store()
        .list(&ListKeys::new().display_prefix(id_or_prefix).limit(10))
        .await?
        .records;
    the_one(found, id_or_prefix, |r| (r.id, &r.display_prefix, &r.name))
}

/// The one key among those whose prefix starts with `id_or_prefix`; none,
/// or several (listed, escaped, by id, prefix and name), is an error.
pub(crate) fn the_one<T>(
    mut found: Vec<T>,
    id_or_prefix: &str,
    describe: impl Fn(&T) -> (KeyId, &str, &str),
) -> Result<T> {
    match found.len() {
        0 => Err(format!("no key has the id or prefix {id_or_prefix:?}").into()),
        1 => Ok(found.remove(0)),
        _ => {
            let candidates: Vec<String> = found
                .iter()
                .map(|key| {
                    let (id, prefix, name) = describe(key);
                    format!("  {id} {} {:?}", shown(prefix), shown(name))
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

/// `text` as it is safe to print on a terminal: control and bidirectional
/// formatting characters (which older rows, written before the library
/// refused them, may hold) are shown escaped, as `\u{1b}`.
pub fn shown(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if is_unsafe_to_show(c) {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    out
}

/// The table `keys list` prints.
pub fn table(records: &[KeyRecord], now: DateTime<Utc>) -> String {
    let header = [
        "ID",
        "OWNER",
        "NAME",
        "PREFIX",
        "SCOPES",
        "CREATED",
        "LAST USED",
        "EXPIRES",
        "STATUS",
    ];
    let rows = records.iter().map(|record| {
        vec![
            record.id.to_string(),
            shown(record.owner.as_str()),
            shown(&record.name),
            shown(&record.display_prefix),
            shown(&record.scopes.to_string()),
            when(record.created_at),
            record.last_used_at.map_or_else(|| "never".to_owned(), when),
            record.expires_at.map_or_else(|| "never".to_owned(), when),
            status(record, now),
        ]
    });
    render(&header, rows)
}

/// Rows under a header, in columns as wide as their widest cell.
pub(crate) fn render(header: &[&str], rows: impl Iterator<Item = Vec<String>>) -> String {
    let rows: Vec<Vec<String>> = std::iter::once(header.iter().map(|h| (*h).to_owned()).collect())
        .chain(rows)
        .collect();
    let mut widths = vec![0; header.len()];
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in &rows {
        let mut line = String::new();
        for (i, (cell, width)) in row.iter().zip(widths.iter().copied()).enumerate() {
            if i > 0 {
                line.push_str("  ");
            }
            line.push_str(cell);
            line.extend(std::iter::repeat_n(' ', width - cell.chars().count()));
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// `active`, `expired`, `revoked`, or `revoked: <reason>`.
fn status(record: &KeyRecord, now: DateTime<Utc>) -> String {
    match (record.status_at(now), &record.revoked_reason) {
        (KeyStatus::Revoked, Some(reason)) => format!("revoked: {reason}"),
        (status, _) => status.to_string(),
    }
}

pub(crate) fn when(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%SZ").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_output_escapes_what_json_lets_through() {
        let line = json_line(&serde_json::json!({"name": "a\u{9b}2J\u{202e}b\u{E0041}"})).unwrap();
        assert!(
            !line.contains(['\u{9b}', '\u{202e}', '\u{E0041}']),
            "{line}"
        );
        let back: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(
            back["name"], "a\u{9b}2J\u{202e}b\u{E0041}",
            "the same value, escaped"
        );
    }
}
