//! The SQLite store (feature `sqlite`), through sqlx.

use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::Row as _;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use uuid::Uuid;

use super::sql::{
    MigrationLedger, SQLITE_MIGRATIONS, apply_migrations, fetch_records, hash_from_sql, map_err,
    metadata_from_sql, metadata_to_sql, rate_limit_from_sql, rate_limit_to_sql, scopes_from_sql,
    scopes_to_sql, sql_limit,
};
use super::{
    ChangeBatch, ChangeCursor, ChangeFeed, ChangeNotifier, ChangeSignal, KeyChange, KeyPage,
    KeyStore, KeyUpdate, LastUsed, ListKeys, StoreError,
};
use crate::key::KeyHash;
use crate::record::{KeyId, KeyRecord, OwnerId};

/// A query of this backend, with its arguments bound.
type Query<'q> = sqlx::query::Query<'q, sqlx::Sqlite, <sqlx::Sqlite as sqlx::Database>::Arguments>;

/// Where [`SqliteStore::migrate`] records what it applied.
const LEDGER: MigrationLedger = MigrationLedger {
    backend: "sqlite",
    create_table: "CREATE TABLE IF NOT EXISTS api_keys_migrations (
                       version     INTEGER NOT NULL PRIMARY KEY,
                       description TEXT    NOT NULL,
                       applied_at  INTEGER NOT NULL
                   ) STRICT",
    // applied_at in microseconds since the Unix epoch, as every time here.
    record: "INSERT INTO api_keys_migrations (version, description, applied_at) \
             VALUES (?1, ?2, CAST(unixepoch('subsec') * 1000000 AS INTEGER))",
};

/// The columns of `api_keys`, in the order [`decode`] reads them by name.
macro_rules! columns {
    () => {
        "id, owner, name, display_prefix, key_hash, created_at, expires_at, \
         last_used_at, revoked_at, revoked_reason, scopes, metadata, \
         rate_limit_requests, rate_limit_window_ms"
    };
}

/// Keeps keys in a SQLite database file, which several processes may share.
///
/// - Tables `api_keys` (unique index on the key hash, index on the owner)
///   and `api_key_changes` (the change log, appended by triggers), created
///   by [`migrate`](Self::migrate); [`connect`](Self::connect) runs it.
///   Only the SHA-256 (or HMAC) of a key is stored.
/// - Times are UTC, stored as integer microseconds since the Unix epoch:
///   finer digits are dropped (towards the past).
/// - Last-used times are written as one `UPDATE` per batch, whatever its
///   size (the batch is one JSON parameter), and only ever move forward.
/// - Changes made through this store are pushed at once to the caches of
///   this process; changes made by another process through the same file
///   are found by the cache's poll of the change log (every 500 ms by
///   default, one indexed query).
///
/// ```
/// use tower_api_keys::{ApiKeys, NewKey};
/// use tower_api_keys::store::SqliteStore;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let dir = std::env::temp_dir().join(format!("tak-doc-{}", std::process::id()));
/// # std::fs::create_dir_all(&dir)?;
/// # let path = dir.join("keys.db");
/// # let path = path.display();
/// let store = SqliteStore::connect(&format!("sqlite://{path}")).await?;
/// let keys = ApiKeys::builder(store).build()?;
/// let created = keys.create(NewKey::new("acct_1", "laptop")).await?;
/// assert_eq!(keys.list(&"acct_1".into(), None, 100).await?.records.len(), 1);
/// # keys.shutdown().await;
/// # drop(created);
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    notifier: ChangeNotifier,
    /// The database file as opened, to notice it being replaced.
    file: Option<Arc<OpenedFile>>,
}

/// A database file and the identity (device, inode) it had when opened.
#[derive(Debug)]
struct OpenedFile {
    path: std::path::PathBuf,
    identity: (u64, u64),
    replaced: AtomicBool,
}

impl OpenedFile {
    #[cfg(unix)]
    fn identity(path: &std::path::Path) -> Option<(u64, u64)> {
        use std::os::unix::fs::MetadataExt as _;
        std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
    }

    #[cfg(not(unix))]
    fn identity(_path: &std::path::Path) -> Option<(u64, u64)> {
        None
    }

    fn open(path: &std::path::Path) -> Option<Arc<Self>> {
        Some(Arc::new(Self {
            path: path.to_owned(),
            identity: Self::identity(path)?,
            replaced: AtomicBool::new(false),
        }))
    }

    /// Whether the path still names the file this store opened; says so
    /// loudly, once, when it does not.
    fn check(&self) -> Result<(), StoreError> {
        if !self.replaced.load(Ordering::Relaxed)
            && Self::identity(&self.path) == Some(self.identity)
        {
            return Ok(());
        }
        if !self.replaced.swap(true, Ordering::Relaxed) {
            tracing::error!(
                target: "tower_api_keys",
                path = %self.path.display(),
                "the key store's database file was deleted or replaced after this process \
                 opened it; refusing to serve keys from the old file (restart to use the new one)"
            );
        }
        Err(self.error())
    }

    fn refuse_if_replaced(&self) -> Result<(), StoreError> {
        if self.replaced.load(Ordering::Relaxed) {
            return Err(self.error());
        }
        Ok(())
    }

    fn error(&self) -> StoreError {
        StoreError::Replaced(format!(
            "{} is no longer the file this process opened",
            self.path.display()
        ))
    }
}

impl SqliteStore {
    /// How long a connection waits for another writer (another process, say)
    /// before a write fails.
    pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
    /// How long a call waits for a free connection before it fails (and the
    /// request gets a 503).
    pub const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);

    /// Opens (creating it if missing) the database at `url`, such as
    /// `sqlite://keys.db` or `sqlite:/var/lib/app/keys.db`, in WAL mode with
    /// a busy timeout of [`BUSY_TIMEOUT`](Self::BUSY_TIMEOUT), and applies the
    /// migrations. `sqlite::memory:` gives a private in-memory database held
    /// by one connection.
    pub async fn connect(url: &str) -> Result<Self, sqlx::Error> {
        let options = Self::connect_options(url)?;
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        let pool = if in_memory {
            // An in-memory database lives as long as a connection to it.
            SqlitePoolOptions::new()
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
                .acquire_timeout(Self::ACQUIRE_TIMEOUT)
                .connect_with(options)
                .await?
        } else {
            #[cfg(unix)]
            owner_only(options.get_filename()).map_err(sqlx::Error::Io)?;
            SqlitePoolOptions::new()
                .max_connections(8)
                .acquire_timeout(Self::ACQUIRE_TIMEOUT)
                .connect_with(options)
                .await?
        };
        let store = Self::from_pool(pool);
        store.migrate().await?;
        Ok(store)
    }

    /// The connect options [`connect`](Self::connect) uses: `url` with
    /// `create_if_missing`, WAL, `synchronous = NORMAL` and the busy timeout.
    /// Start from these to build a pool of your own.
    pub fn connect_options(url: &str) -> Result<SqliteConnectOptions, sqlx::Error> {
        Ok(SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Self::BUSY_TIMEOUT))
    }

    /// A store over an existing pool. Nothing is checked or created: call
    /// [`migrate`](Self::migrate) once before use.
    pub fn from_pool(pool: SqlitePool) -> Self {
        let file = OpenedFile::open(pool.connect_options().get_filename());
        Self {
            pool,
            notifier: ChangeNotifier::new(),
            file,
        }
    }

    /// Refuses every call once the database file was found replaced.
    fn usable(&self) -> Result<(), StoreError> {
        self.file
            .as_ref()
            .map_or(Ok(()), |file| file.refuse_if_replaced())
    }

    /// The pool queries run on.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Creates or updates the tables, indexes and triggers. Safe to call on
    /// every start, from several processes at once: the migrations run in
    /// one `BEGIN IMMEDIATE` transaction and are recorded in
    /// `api_keys_migrations`, so each runs once.
    pub async fn migrate(&self) -> Result<(), sqlx::Error> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        apply_migrations::<sqlx::Sqlite>(&mut tx, SQLITE_MIGRATIONS, &LEDGER, "main").await?;
        tx.commit().await
    }

    fn announce(&self) {
        self.notifier.notify();
    }

    /// The record of the row `query` finds by a unique column, if any.
    async fn one(&self, query: Query<'_>) -> Result<Option<KeyRecord>, StoreError> {
        Ok(self.many(query).await?.pop())
    }

    /// The records of the rows `query` finds.
    async fn many(&self, query: Query<'_>) -> Result<Vec<KeyRecord>, StoreError> {
        fetch_records(&self.pool, query, decode).await
    }

    /// The record an update returned (announcing the change), or, where it
    /// changed nothing, the owner's record as it stands.
    async fn updated_or_current(
        &self,
        updated: Option<SqliteRow>,
        owner: &OwnerId,
        id: &KeyId,
    ) -> Result<Option<KeyRecord>, StoreError> {
        match updated {
            Some(row) => {
                self.announce();
                decode(&row).map(Some)
            }
            None => self.fetch_owned(owner, id).await,
        }
    }

    async fn fetch_owned(
        &self,
        owner: &OwnerId,
        id: &KeyId,
    ) -> Result<Option<KeyRecord>, StoreError> {
        self.one(
            sqlx::query(concat!(
                "SELECT ",
                columns!(),
                " FROM api_keys WHERE id = ?1 AND owner = ?2"
            ))
            .bind(id.to_string())
            .bind(owner.as_str()),
        )
        .await
    }
}

/// Creates the database file readable and writable by its owner alone
/// (0600) where it is missing; SQLite gives the `-wal` and `-shm` files it
/// makes the mode of the database file. Warns, once per file, when an
/// existing one can be read by other users: it holds every key's hash.
#[cfg(unix)]
fn owner_only(path: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => return Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(error) => return Err(error),
    }
    for suffix in ["", "-wal", "-shm"] {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        let Ok(metadata) = std::fs::metadata(&name) else {
            continue;
        };
        let mode = metadata.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            tracing::warn!(
                target: "tower_api_keys",
                path = %std::path::Path::new(&name).display(),
                mode = format!("{mode:o}"),
                "the key store's file can be read by other users; make it 0600 (chmod 600)"
            );
        }
    }
    Ok(())
}

/// Greater than every key id as text: where the first page starts.
const MAX_ID: &str = "ffffffff-ffff-ffff-ffff-ffffffffffff";

fn micros(at: DateTime<Utc>) -> i64 {
    at.timestamp_micros()
}

fn time(column: &str, micros: i64) -> Result<DateTime<Utc>, StoreError> {
    DateTime::from_timestamp_micros(micros)
        .ok_or_else(|| StoreError::Corrupt(format!("{column} is out of range: {micros}")))
}

fn optional_time(column: &str, micros: Option<i64>) -> Result<Option<DateTime<Utc>>, StoreError> {
    micros.map(|m| time(column, m)).transpose()
}

fn key_id(text: &str) -> Result<KeyId, StoreError> {
    Uuid::parse_str(text)
        .map(KeyId::from_uuid)
        .map_err(|e| StoreError::Corrupt(format!("a stored key id is not a UUID: {e}")))
}

fn decode(row: &SqliteRow) -> Result<KeyRecord, StoreError> {
    let get_err = map_err;
    let id: String = row.try_get("id").map_err(get_err)?;
    let hash: Vec<u8> = row.try_get("key_hash").map_err(get_err)?;
    let scopes: Option<String> = row.try_get("scopes").map_err(get_err)?;
    let metadata: String = row.try_get("metadata").map_err(get_err)?;
    Ok(KeyRecord {
        id: key_id(&id)?,
        name: row.try_get("name").map_err(get_err)?,
        owner: OwnerId::new(row.try_get::<String, _>("owner").map_err(get_err)?),
        display_prefix: row.try_get("display_prefix").map_err(get_err)?,
        hash: hash_from_sql(&hash)?,
        created_at: time("created_at", row.try_get("created_at").map_err(get_err)?)?,
        expires_at: optional_time("expires_at", row.try_get("expires_at").map_err(get_err)?)?,
        last_used_at: optional_time(
            "last_used_at",
            row.try_get("last_used_at").map_err(get_err)?,
        )?,
        revoked_at: optional_time("revoked_at", row.try_get("revoked_at").map_err(get_err)?)?,
        revoked_reason: row.try_get("revoked_reason").map_err(get_err)?,
        scopes: scopes_from_sql(scopes.as_deref())?,
        metadata: metadata_from_sql(&metadata)?,
        rate_limit: rate_limit_from_sql(
            row.try_get("rate_limit_requests").map_err(get_err)?,
            row.try_get("rate_limit_window_ms").map_err(get_err)?,
        )?,
    })
}

#[async_trait]
impl KeyStore for SqliteStore {
    async fn insert(&self, record: &KeyRecord) -> Result<(), StoreError> {
        self.usable()?;
        sqlx::query(
            "INSERT INTO api_keys (id, owner, name, display_prefix, key_hash, created_at, \
             expires_at, last_used_at, revoked_at, revoked_reason, scopes, metadata, \
             rate_limit_requests, rate_limit_window_ms) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
        )
        .bind(record.id.to_string())
        .bind(record.owner.as_str())
        .bind(&record.name)
        .bind(&record.display_prefix)
        .bind(&record.hash.as_bytes()[..])
        .bind(micros(record.created_at))
        .bind(record.expires_at.map(micros))
        .bind(record.last_used_at.map(micros))
        .bind(record.revoked_at.map(micros))
        .bind(record.revoked_reason.as_deref())
        .bind(scopes_to_sql(&record.scopes)?)
        .bind(metadata_to_sql(&record.metadata)?)
        .bind(rate_limit_to_sql(record.rate_limit).0)
        .bind(rate_limit_to_sql(record.rate_limit).1)
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        self.announce();
        Ok(())
    }

    async fn find_by_hash(&self, hash: &KeyHash) -> Result<Option<KeyRecord>, StoreError> {
        self.usable()?;
        self.one(
            sqlx::query(concat!(
                "SELECT ",
                columns!(),
                " FROM api_keys WHERE key_hash = ?1"
            ))
            .bind(&hash.as_bytes()[..]),
        )
        .await
    }

    async fn find_by_id(&self, id: &KeyId) -> Result<Option<KeyRecord>, StoreError> {
        self.usable()?;
        self.one(
            sqlx::query(concat!(
                "SELECT ",
                columns!(),
                " FROM api_keys WHERE id = ?1"
            ))
            .bind(id.to_string()),
        )
        .await
    }

    async fn list(&self, query: &ListKeys) -> Result<KeyPage, StoreError> {
        self.usable()?;
        // Ids are UUIDv7 in lower-case text, so text order is time order;
        // the first page starts below the greatest id. substr, not LIKE:
        // LIKE would read `_` and `%` as wildcards and ignore case.
        let before = query
            .after
            .map_or_else(|| MAX_ID.to_owned(), |after| after.key_id().to_string());
        let fetch = sql_limit(query.limit.saturating_add(1));
        let prefix = query.display_prefix.as_deref();
        let records = match &query.owner {
            Some(owner) => {
                self.many(
                    sqlx::query(concat!(
                        "SELECT ",
                        columns!(),
                        " FROM api_keys WHERE owner = ?1 AND id < ?2 \
                         AND (?3 IS NULL OR substr(display_prefix, 1, length(?3)) = ?3) \
                         ORDER BY id DESC LIMIT ?4"
                    ))
                    .bind(owner.as_str())
                    .bind(before)
                    .bind(prefix)
                    .bind(fetch),
                )
                .await?
            }
            None => {
                self.many(
                    sqlx::query(concat!(
                        "SELECT ",
                        columns!(),
                        " FROM api_keys WHERE id < ?1 \
                         AND (?2 IS NULL OR substr(display_prefix, 1, length(?2)) = ?2) \
                         ORDER BY id DESC LIMIT ?3"
                    ))
                    .bind(before)
                    .bind(prefix)
                    .bind(fetch),
                )
                .await?
            }
        };
        Ok(KeyPage::from_overfetch(records, query.limit))
    }

    async fn update(
        &self,
        owner: &OwnerId,
        id: &KeyId,
        update: &KeyUpdate,
    ) -> Result<Option<KeyRecord>, StoreError> {
        self.usable()?;
        let query = match update {
            // Revoked already (the first revocation stands) changes nothing.
            KeyUpdate::Revoke { at, reason } => sqlx::query(concat!(
                "UPDATE api_keys SET revoked_at = ?3, revoked_reason = ?4 \
                 WHERE id = ?1 AND owner = ?2 AND revoked_at IS NULL RETURNING ",
                columns!()
            ))
            .bind(id.to_string())
            .bind(owner.as_str())
            .bind(micros(*at))
            .bind(reason.as_deref()),
            KeyUpdate::Rename { name } => sqlx::query(concat!(
                "UPDATE api_keys SET name = ?3 WHERE id = ?1 AND owner = ?2 AND name != ?3 \
                 RETURNING ",
                columns!()
            ))
            .bind(id.to_string())
            .bind(owner.as_str())
            .bind(name.as_str()),
            KeyUpdate::ExpireBy { at } => sqlx::query(concat!(
                "UPDATE api_keys SET expires_at = ?3 \
                 WHERE id = ?1 AND owner = ?2 AND (expires_at IS NULL OR expires_at > ?3) \
                 RETURNING ",
                columns!()
            ))
            .bind(id.to_string())
            .bind(owner.as_str())
            .bind(micros(*at)),
        };
        let updated = query.fetch_optional(&self.pool).await.map_err(map_err)?;
        // Where it changed nothing (or the key is not the owner's): the
        // record as it stands.
        self.updated_or_current(updated, owner, id).await
    }

    async fn record_last_used(&self, batch: &[LastUsed]) -> Result<(), StoreError> {
        self.usable()?;
        if batch.is_empty() {
            return Ok(());
        }
        // One parameter, `[["<id>", <micros>], ...]`, whatever the batch
        // size: no bind-parameter limit to hit.
        let entries: Vec<(String, i64)> = batch
            .iter()
            .map(|used| (used.id.to_string(), micros(used.at)))
            .collect();
        let json = serde_json::to_string(&entries)
            .map_err(|e| StoreError::Corrupt(format!("cannot encode a last-used batch: {e}")))?;
        sqlx::query(
            "UPDATE api_keys SET last_used_at = max(coalesce(api_keys.last_used_at, b.at), b.at) \
             FROM (SELECT json_extract(value, '$[0]') AS id, \
                          max(json_extract(value, '$[1]')) AS at \
                   FROM json_each(?1) GROUP BY 1) AS b \
             WHERE api_keys.id = b.id \
               AND (api_keys.last_used_at IS NULL OR api_keys.last_used_at < b.at)",
        )
        .bind(json)
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(())
    }
}

#[async_trait]
impl ChangeFeed for SqliteStore {
    async fn changes(
        &self,
        after: Option<ChangeCursor>,
        limit: usize,
    ) -> Result<ChangeBatch, StoreError> {
        // Every poll of the change feed also checks that the path still
        // names the file this store opened.
        if let Some(file) = &self.file {
            file.check()?;
        }
        // One statement, so the head and the changes are of one snapshot.
        // The head and the tail are a subquery each: SQLite reads a lone
        // min() or max() off the key's b-tree, but both in one SELECT scan
        // the whole log (100 ms a poll with a million rows).
        let (after, limit) = match after {
            Some(after) => (after.position(), sql_limit(limit)),
            None => (0, 0),
        };
        let rows = sqlx::query(
            "SELECT h.head, h.tail, c.seq, c.key_id, c.key_hash \
             FROM (SELECT coalesce((SELECT max(seq) FROM api_key_changes), 0) AS head, \
                          coalesce((SELECT min(seq) FROM api_key_changes) - 1, 0) AS tail) AS h \
             LEFT JOIN (SELECT seq, key_id, key_hash FROM api_key_changes \
                        WHERE seq > ?1 ORDER BY seq LIMIT ?2) AS c ON 1 \
             ORDER BY c.seq",
        )
        .bind(after)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        let mut batch = ChangeBatch::default();
        for row in &rows {
            batch.head = ChangeCursor::from_position(row.try_get("head").map_err(map_err)?);
            batch.tail = ChangeCursor::from_position(row.try_get("tail").map_err(map_err)?);
            let Some(seq) = row.try_get::<Option<i64>, _>("seq").map_err(map_err)? else {
                continue;
            };
            let id: String = row.try_get("key_id").map_err(map_err)?;
            let hash: Vec<u8> = row.try_get("key_hash").map_err(map_err)?;
            batch.changes.push(KeyChange {
                cursor: ChangeCursor::from_position(seq),
                id: key_id(&id)?,
                hash: hash_from_sql(&hash)?,
            });
        }
        Ok(batch)
    }

    async fn prune_changes(&self, before: DateTime<Utc>, limit: usize) -> Result<u64, StoreError> {
        self.usable()?;
        // One statement: SQLite's write lock lets one instance prune at a
        // time; the newest change stays, so the head never moves back.
        let done = sqlx::query(
            "DELETE FROM api_key_changes WHERE seq IN ( \
                 SELECT seq FROM api_key_changes \
                 WHERE at < ?1 AND seq < (SELECT max(seq) FROM api_key_changes) \
                 ORDER BY seq LIMIT ?2)",
        )
        .bind(micros(before))
        .bind(sql_limit(limit))
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(done.rows_affected())
    }

    fn change_signal(&self) -> Option<ChangeSignal> {
        Some(self.notifier.subscribe())
    }
}
