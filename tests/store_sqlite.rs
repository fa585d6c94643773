//! The SQLite store: the conformance suite, then what only SQLite has (the
//! file, the schema, the migrations, the triggers).

#[macro_use]
mod backends;

use std::sync::Arc;

use backends::conformance::{Harness, Setup, at, record};
use backends::{SqliteFile as _, TempDir};
use sqlx::Row as _;
use tower_api_keys::store::{ChangeFeed, SqliteStore};
use tower_api_keys::{ApiKeys, KeyStore, NewKey};

async fn sqlite() -> Option<Setup> {
    let dir = TempDir::new();
    let store = dir.sqlite_store("keys.db").await;
    let other = dir.sqlite_store("keys.db").await;
    let pools = (store.pool().clone(), other.pool().clone());
    let path = dir.path().to_owned();
    Some(Setup {
        harness: Harness {
            store: Arc::new(store),
            other: Arc::new(other),
            pushes_across_handles: false,
            // Every byte of the database, its WAL and its shared memory.
            dump: Arc::new(move || {
                let path = path.clone();
                Box::pin(async move {
                    let mut bytes = Vec::new();
                    for entry in std::fs::read_dir(&path).unwrap() {
                        bytes.extend(std::fs::read(entry.unwrap().path()).unwrap());
                    }
                    bytes
                })
            }),
        },
        cleanup: Box::pin(async move {
            pools.0.close().await;
            pools.1.close().await;
            drop(dir);
        }),
    })
}

conformance_suite!(sqlite);

#[tokio::test]
async fn the_schema_has_a_hash_and_no_column_for_the_key_itself() {
    let dir = TempDir::new();
    let store = dir.sqlite_store("keys.db").await;
    let columns: Vec<(String, String, bool)> = sqlx::query("PRAGMA table_info(api_keys)")
        .fetch_all(store.pool())
        .await
        .unwrap()
        .iter()
        .map(|row| {
            (
                row.get::<String, _>("name"),
                row.get::<String, _>("type"),
                row.get::<i64, _>("notnull") == 1,
            )
        })
        .collect();
    let expected: Vec<(String, String, bool)> = [
        ("id", "TEXT", true),
        ("owner", "TEXT", true),
        ("name", "TEXT", true),
        ("display_prefix", "TEXT", true),
        ("key_hash", "BLOB", true),
        ("created_at", "INTEGER", true),
        ("expires_at", "INTEGER", false),
        ("last_used_at", "INTEGER", false),
        ("revoked_at", "INTEGER", false),
        ("revoked_reason", "TEXT", false),
        ("scopes", "TEXT", false),
        ("metadata", "TEXT", true),
        ("rate_limit_requests", "INTEGER", false),
        ("rate_limit_window_ms", "INTEGER", false),
    ]
    .iter()
    .map(|(n, t, nn)| (n.to_string(), t.to_string(), *nn))
    .collect();
    assert_eq!(columns, expected);

    let indexes: Vec<(String, bool)> = sqlx::query("PRAGMA index_list(api_keys)")
        .fetch_all(store.pool())
        .await
        .unwrap()
        .iter()
        .map(|row| {
            (
                row.get::<String, _>("name"),
                row.get::<i64, _>("unique") == 1,
            )
        })
        .collect();
    assert!(
        indexes.contains(&("api_keys_key_hash".into(), true)),
        "{indexes:?}"
    );
    assert!(
        indexes.contains(&("api_keys_owner_id".into(), false)),
        "{indexes:?}"
    );

    // A hash of the wrong length is refused by the table itself.
    let short = sqlx::query(
        "INSERT INTO api_keys (id, owner, name, display_prefix, key_hash, created_at) \
         VALUES ('00000000-0000-0000-0000-000000000000', 'o', 'n', 'bmc_x', x'00', 0)",
    )
    .execute(store.pool())
    .await;
    assert!(short.is_err());
    let journal: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(journal, "wal");
}

#[tokio::test]
async fn migrations_run_once_even_when_processes_start_together() {
    let dir = TempDir::new();
    let url = dir.sqlite_url("keys.db");
    let mut starts = Vec::new();
    for _ in 0..4 {
        let url = url.clone();
        starts.push(tokio::spawn(
            async move { SqliteStore::connect(&url).await },
        ));
    }
    let mut stores = Vec::new();
    for start in starts {
        stores.push(start.await.unwrap().expect("every start succeeds"));
    }
    stores[0].migrate().await.expect("and again");
    let applied: Vec<i64> =
        sqlx::query_scalar("SELECT version FROM api_keys_migrations ORDER BY version")
            .fetch_all(stores[0].pool())
            .await
            .unwrap();
    assert_eq!(applied, vec![1, 2]);
}

#[tokio::test]
async fn times_are_utc_microseconds_on_disk() {
    let dir = TempDir::new();
    let store = dir.sqlite_store("keys.db").await;
    let r = record("acct");
    store.insert(&r).await.unwrap();
    let micros: i64 = sqlx::query_scalar("SELECT created_at FROM api_keys WHERE id = ?1")
        .bind(r.id.to_string())
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(micros, r.created_at.timestamp_micros());
    assert_eq!(
        micros,
        at(micros / 1_000_000 - 1_893_456_000).timestamp_micros()
    );
}

#[tokio::test]
async fn a_change_made_by_hand_in_sql_reaches_the_change_log() {
    let dir = TempDir::new();
    let store = dir.sqlite_store("keys.db").await;
    let a = record("acct");
    let b = record("acct");
    store.insert(&a).await.unwrap();
    store.insert(&b).await.unwrap();
    let cursor = store.changes(None, 0).await.unwrap().head;
    sqlx::query("UPDATE api_keys SET revoked_at = 1 WHERE id = ?1")
        .bind(a.id.to_string())
        .execute(store.pool())
        .await
        .unwrap();
    sqlx::query("UPDATE api_keys SET last_used_at = 5 WHERE id = ?1")
        .bind(b.id.to_string())
        .execute(store.pool())
        .await
        .unwrap();
    sqlx::query("DELETE FROM api_keys WHERE id = ?1")
        .bind(b.id.to_string())
        .execute(store.pool())
        .await
        .unwrap();
    let changed: Vec<_> = store
        .changes(Some(cursor), 10)
        .await
        .unwrap()
        .changes
        .iter()
        .map(|c| (c.id, c.hash))
        .collect();
    assert_eq!(changed, vec![(a.id, a.hash), (b.id, b.hash)]);
}

#[tokio::test]
async fn an_in_memory_database_lives_as_long_as_the_store() {
    let store = SqliteStore::connect("sqlite::memory:").await.unwrap();
    let r = record("acct");
    store.insert(&r).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    assert_eq!(store.find_by_id(&r.id).await.unwrap(), Some(r));
}

/// The store creates its database readable by its owner alone, and SQLite
/// gives the `-wal` and `-shm` files the same mode, whatever the umask.
#[cfg(unix)]
#[tokio::test]
async fn a_new_database_and_its_wal_files_are_readable_by_their_owner_only() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = TempDir::new();
    let path = dir.path().join("keys.db");
    let store = SqliteStore::connect(&format!("sqlite:{}", path.display()))
        .await
        .unwrap();
    store.insert(&record("acct")).await.unwrap();
    let mut seen = 0;
    for suffix in ["", "-wal", "-shm"] {
        let file = format!("{}{suffix}", path.display());
        if let Ok(metadata) = std::fs::metadata(&file) {
            seen += 1;
            let mode = metadata.permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{file} is {mode:o}");
        }
    }
    assert_eq!(seen, 3, "WAL mode keeps -wal and -shm beside the database");
}

/// When the database file is deleted and made anew under a running server
/// (an operator's `keys` command on a fresh file), the server notices
/// within its change-feed poll, says so, drops its cache and answers 503
/// instead of serving keys from the old file: no split brain.
#[tokio::test]
async fn a_replaced_database_file_is_noticed_and_refused() {
    let dir = TempDir::new();
    let path = dir.path().join("keys.db");
    let url = format!("sqlite:{}", path.display());
    let keys = ApiKeys::builder(SqliteStore::connect(&url).await.unwrap())
        .change_poll_interval(std::time::Duration::from_millis(50))
        .build()
        .unwrap();
    let old = keys.create(NewKey::new("acct", "old")).await.unwrap();
    assert!(keys.authenticate(old.secret.expose_secret()).await.is_ok());
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    let other = ApiKeys::builder(SqliteStore::connect(&url).await.unwrap())
        .build()
        .unwrap();
    let new = other.create(NewKey::new("acct", "new")).await.unwrap();
    // The old key, cached, is refused once the poll notices: 503, not 200.
    let refused = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        loop {
            match keys.authenticate(old.secret.expose_secret()).await {
                Ok(_) => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
                Err(rejection) => return rejection,
            }
        }
    })
    .await
    .expect("the replaced file is noticed");
    assert_eq!(
        refused.reason(),
        tower_api_keys::rejection::RejectionReason::StoreUnavailable
    );
    // Nor does the stale store serve the new file's keys or take writes.
    let stale = keys
        .authenticate(new.secret.expose_secret())
        .await
        .unwrap_err();
    assert_eq!(
        stale.reason(),
        tower_api_keys::rejection::RejectionReason::StoreUnavailable
    );
    let error = keys.create(NewKey::new("acct", "x")).await.unwrap_err();
    assert!(error.to_string().contains("replaced"), "{error}");
    // The process that made the new file is not affected.
    assert!(other.authenticate(new.secret.expose_secret()).await.is_ok());
}
