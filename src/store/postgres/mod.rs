//! The PostgreSQL store (feature `postgres`), through sqlx.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::postgres::{PgPool, PgPoolOptions, PgRow};
use sqlx::{AssertSqlSafe, Row as _, SqlSafeStr as _, SqlStr};
use uuid::Uuid;

use super::sql::{
    MigrationLedger, POSTGRES_MIGRATIONS, apply_migrations, fetch_records, floor_micros,
    hash_from_sql, map_err, metadata_from_sql, metadata_to_sql, rate_limit_from_sql,
    rate_limit_to_sql, scopes_from_sql, scopes_to_sql, sql_limit,
};
use super::{
    ChangeBatch, ChangeCursor, ChangeFeed, ChangeSignal, KeyChange, KeyPage, KeyStore, KeyUpdate,
    LastUsed, ListKeys, StoreError,
};
use crate::key::KeyHash;
use crate::record::{KeyId, KeyRecord, OwnerId};
use listen::Feed;

mod listen;

/// A query of this backend, with its arguments bound.
type Query<'q> =
    sqlx::query::Query<'q, sqlx::Postgres, <sqlx::Postgres as sqlx::Database>::Arguments>;

/// Where [`PostgresStore::migrate`] records what it applied.
const LEDGER: MigrationLedger = MigrationLedger {
    backend: "postgres",
    create_table: "CREATE TABLE IF NOT EXISTS api_keys_migrations (
                       version     bigint      PRIMARY KEY,
                       description text        NOT NULL,
                       applied_at  timestamptz NOT NULL DEFAULT now()
                   )",
    record: "INSERT INTO api_keys_migrations (version, description) VALUES ($1, $2)",
};

/// Advisory lock key that serializes concurrent [`PostgresStore::migrate`]
/// calls (`tak_migr` in ASCII).
const MIGRATION_LOCK: i64 = 0x7461_6b5f_6d69_6772;

/// Keeps keys in PostgreSQL, which any number of processes may share.
///
/// - Tables `api_keys` (unique index on the key hash, index on the owner)
///   and `api_key_changes` (the change log, appended by a trigger), created
///   by [`migrate`](Self::migrate), which [`connect`](Self::connect) runs.
///   Only the SHA-256 (or HMAC) of a key is stored. Times are `timestamptz`
///   (UTC, microseconds; finer digits are dropped towards the past).
/// - [`in_schema`](Self::in_schema) puts the tables in a schema of their own.
/// - Last-used times are written as one `UPDATE ... FROM unnest(...)` per
///   batch, whatever its size, and only ever move forward; rows are locked
///   in key order, so concurrent batches from several processes do not
///   deadlock.
/// - Revocations (and every other change) are announced with `NOTIFY` in
///   the writing transaction. The store's [change
///   signal](ChangeFeed::change_signal) is fed by a task that `LISTEN`s on a
///   connection of its own, reconnects with backoff when it drops, and then
///   wakes the caches, which read what they missed from the change log. The
///   task starts with the first signal asked for and ends when the last
///   clone of the store is dropped.
///
/// ```no_run
/// use tower_api_keys::ApiKeys;
/// use tower_api_keys::store::PostgresStore;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let store = PostgresStore::connect("postgres://app@db.internal/app").await?;
/// let keys = ApiKeys::builder(store).build()?;
/// # drop(keys);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct PostgresStore {
    pool: PgPool,
    schema: Option<Arc<str>>,
    sql: Arc<Statements>,
    feed: Arc<Feed>,
}

impl fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresStore")
            .field("schema", &self.schema)
            .field("pool", &self.pool)
            .finish_non_exhaustive()
    }
}

impl PostgresStore {
    /// Connects with [`pool_options`](Self::pool_options) and applies the
    /// migrations in the connection's default schema (the first of its
    /// `search_path`, usually `public`).
    pub async fn connect(url: &str) -> Result<Self, sqlx::Error> {
        let pool = Self::pool_options().connect(url).await?;
        let store = Self::from_pool(pool);
        store.migrate().await?;
        Ok(store)
    }

    /// The pool settings [`connect`](Self::connect) uses: at most 10
    /// connections, and a call waits at most 3 s for one, so a database
    /// that is gone turns into 503s quickly rather than hung requests.
    pub fn pool_options() -> PgPoolOptions {
        PgPoolOptions::new()
            .max_connections(10)
            .acquire_timeout(Duration::from_secs(3))
    }

    /// A store over an existing pool, in the pool's default schema. Nothing
    /// is checked or created: call [`migrate`](Self::migrate) once before
    /// use.
    pub fn from_pool(pool: PgPool) -> Self {
        Self::assemble(pool, None)
    }

    /// The same store with its tables in `schema` (created by
    /// [`migrate`](Self::migrate) if missing). Fails if `schema` is empty,
    /// longer than 63 bytes or holds a NUL.
    pub fn in_schema(self, schema: &str) -> Result<Self, sqlx::Error> {
        if schema.is_empty() || schema.len() > 63 || schema.contains('\0') {
            return Err(sqlx::Error::Configuration(
                format!("invalid schema name for the key store: {schema:?}").into(),
            ));
        }
        Ok(Self::assemble(self.pool, Some(schema.into())))
    }

    fn assemble(pool: PgPool, schema: Option<Arc<str>>) -> Self {
        let sql = Arc::new(Statements::new(schema.as_deref()));
        let feed = Arc::new(Feed::new());
        Self {
            pool,
            schema,
            sql,
            feed,
        }
    }

    /// The pool queries run on.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The schema the tables are in, if one was chosen.
    pub fn schema(&self) -> Option<&str> {
        self.schema.as_deref()
    }

    /// Creates or updates the schema, tables, indexes, trigger and function.
    /// Safe to call on every start, from several processes at once: the
    /// migrations run in one transaction under an advisory lock and are
    /// recorded in `api_keys_migrations`, so each runs once.
    pub async fn migrate(&self) -> Result<(), sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(MIGRATION_LOCK)
            .execute(&mut *tx)
            .await?;
        if let Some(schema) = &self.schema {
            let schema = quote_ident(schema);
            sqlx::raw_sql(AssertSqlSafe(format!(
                "CREATE SCHEMA IF NOT EXISTS {schema}"
            )))
            .execute(&mut *tx)
            .await?;
            sqlx::raw_sql(AssertSqlSafe(format!("SET LOCAL search_path TO {schema}")))
                .execute(&mut *tx)
                .await?;
        }
        apply_migrations::<sqlx::Postgres>(
            &mut tx,
            POSTGRES_MIGRATIONS,
            &LEDGER,
            self.schema.as_deref().unwrap_or("(default)"),
        )
        .await?;
        tx.commit().await
    }

    /// The record of the row `query` finds by a unique column, if any.
    async fn one(&self, query: Query<'_>) -> Result<Option<KeyRecord>, StoreError> {
        Ok(self.many(query).await?.pop())
    }

    /// The records of the rows `query` finds.
    async fn many(&self, query: Query<'_>) -> Result<Vec<KeyRecord>, StoreError> {
        fetch_records(&self.pool, query, decode).await
    }

    async fn fetch_owned(
        &self,
        owner: &OwnerId,
        id: &KeyId,
    ) -> Result<Option<KeyRecord>, StoreError> {
        self.one(
            sqlx::query(self.sql.find_owned.clone())
                .bind(id.as_uuid())
                .bind(owner.as_str()),
        )
        .await
    }
}

/// `"name"`, with inner quotes doubled.
fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The statements, with the table names qualified by the schema when one
/// was chosen. Built once per store; sqlx prepares each once per connection.
struct Statements {
    insert: SqlStr,
    find_by_hash: SqlStr,
    find_by_id: SqlStr,
    find_owned: SqlStr,
    list_all: SqlStr,
    list_owned: SqlStr,
    revoke: SqlStr,
    expire_by: SqlStr,
    rename: SqlStr,
    record_last_used: SqlStr,
    changes: SqlStr,
    prune_changes: SqlStr,
    /// The change table's name as `to_regclass` reads it.
    changes_table: String,
}

impl Statements {
    fn new(schema: Option<&str>) -> Self {
        let prefix = schema
            .map(|s| format!("{}.", quote_ident(s)))
            .unwrap_or_default();
        let keys = format!("{prefix}api_keys");
        let changes = format!("{prefix}api_key_changes");
        let columns = "id, owner, name, display_prefix, key_hash, created_at, expires_at, \
                       last_used_at, revoked_at, revoked_reason, \
                       scopes::text AS scopes, metadata::text AS metadata, \
                       rate_limit_requests, rate_limit_window_ms";
        let select = format!("SELECT {columns} FROM {keys}");
        // The statements only interpolate the quoted schema name.
        let sql = |text: String| AssertSqlSafe(text).into_sql_str();
        Self {
            insert: sql(format!(
                "INSERT INTO {keys} (id, owner, name, display_prefix, key_hash, created_at, \
                 expires_at, last_used_at, revoked_at, revoked_reason, scopes, metadata, \
                 rate_limit_requests, rate_limit_window_ms) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11::jsonb, $12::jsonb, $13, $14)"
            )),
            find_by_hash: sql(format!("{select} WHERE key_hash = $1")),
            find_by_id: sql(format!("{select} WHERE id = $1")),
            find_owned: sql(format!("{select} WHERE id = $1 AND owner = $2")),
            // Newest first from a cursor: the first page starts below the
            // greatest UUID.
            list_all: sql(format!(
                "{select} WHERE id < $1 \
                 AND ($2::text IS NULL OR starts_with(display_prefix, $2)) \
                 ORDER BY id DESC LIMIT $3"
            )),
            list_owned: sql(format!(
                "{select} WHERE owner = $1 AND id < $2 \
                 AND ($3::text IS NULL OR starts_with(display_prefix, $3)) \
                 ORDER BY id DESC LIMIT $4"
            )),
            revoke: sql(format!(
                "UPDATE {keys} SET revoked_at = $3, revoked_reason = $4 \
                 WHERE id = $1 AND owner = $2 AND revoked_at IS NULL RETURNING {columns}"
            )),
            expire_by: sql(format!(
                "UPDATE {keys} SET expires_at = $3 \
                 WHERE id = $1 AND owner = $2 AND (expires_at IS NULL OR expires_at > $3) \
                 RETURNING {columns}"
            )),
            rename: sql(format!(
                "UPDATE {keys} SET name = $3 WHERE id = $1 AND owner = $2 AND name <> $3 \
                 RETURNING {columns}"
            )),
            // Rows are locked in key order (the ORDER BY ... FOR UPDATE),
            // so two batches that share keys wait for each other instead of
            // deadlocking; the row values read after the lock are the
            // latest, so the time only moves forward.
            record_last_used: sql(format!(
                "WITH batch AS ( \
                     SELECT id, max(at) AS at \
                     FROM unnest($1::uuid[], $2::timestamptz[]) AS u(id, at) GROUP BY id \
                 ), target AS ( \
                     SELECT k.id, b.at FROM {keys} k JOIN batch b ON b.id = k.id \
                     WHERE k.last_used_at IS NULL OR k.last_used_at < b.at \
                     ORDER BY k.id FOR UPDATE OF k \
                 ) \
                 UPDATE {keys} k SET last_used_at = GREATEST(k.last_used_at, t.at) \
                 FROM target t WHERE k.id = t.id"
            )),
            // One statement, so the head and the changes are of one snapshot.
            changes: sql(format!(
                "SELECT h.head, h.tail, c.seq, c.key_id, c.key_hash \
                 FROM (SELECT coalesce(max(seq), 0)::bigint AS head, \
                              coalesce(min(seq) - 1, 0)::bigint AS tail FROM {changes}) AS h \
                 LEFT JOIN (SELECT seq, key_id, key_hash FROM {changes} \
                            WHERE seq > $1 ORDER BY seq LIMIT $2) AS c ON true \
                 ORDER BY c.seq"
            )),
            // One instance at a time (the others skip, the lock taken), in
            // bounded batches; the newest change stays, so the head never
            // moves back.
            prune_changes: sql(format!(
                "WITH lock AS (SELECT pg_try_advisory_xact_lock(hashtext('tower_api_keys prune ' || $3)) AS held) \
                 DELETE FROM {changes} WHERE (SELECT held FROM lock) AND seq IN ( \
                     SELECT seq FROM {changes} \
                     WHERE at < $1 AND seq < (SELECT max(seq) FROM {changes}) \
                     ORDER BY seq LIMIT $2)"
            )),
            changes_table: changes,
        }
    }
}

fn decode(row: &PgRow) -> Result<KeyRecord, StoreError> {
    let hash: Vec<u8> = row.try_get("key_hash").map_err(map_err)?;
    let scopes: Option<String> = row.try_get("scopes").map_err(map_err)?;
    let metadata: String = row.try_get("metadata").map_err(map_err)?;
    Ok(KeyRecord {
        id: KeyId::from_uuid(row.try_get::<Uuid, _>("id").map_err(map_err)?),
        name: row.try_get("name").map_err(map_err)?,
        owner: OwnerId::new(row.try_get::<String, _>("owner").map_err(map_err)?),
        display_prefix: row.try_get("display_prefix").map_err(map_err)?,
        hash: hash_from_sql(&hash)?,
        created_at: row.try_get("created_at").map_err(map_err)?,
        expires_at: row.try_get("expires_at").map_err(map_err)?,
        last_used_at: row.try_get("last_used_at").map_err(map_err)?,
        revoked_at: row.try_get("revoked_at").map_err(map_err)?,
        revoked_reason: row.try_get("revoked_reason").map_err(map_err)?,
        scopes: scopes_from_sql(scopes.as_deref())?,
        metadata: metadata_from_sql(&metadata)?,
        rate_limit: rate_limit_from_sql(
            row.try_get("rate_limit_requests").map_err(map_err)?,
            row.try_get("rate_limit_window_ms").map_err(map_err)?,
        )?,
    })
}

#[async_trait]
impl KeyStore for PostgresStore {
    async fn insert(&self, record: &KeyRecord) -> Result<(), StoreError> {
        sqlx::query(self.sql.insert.clone())
            .bind(record.id.as_uuid())
            .bind(record.owner.as_str())
            .bind(&record.name)
            .bind(&record.display_prefix)
            .bind(&record.hash.as_bytes()[..])
            .bind(floor_micros(record.created_at))
            .bind(record.expires_at.map(floor_micros))
            .bind(record.last_used_at.map(floor_micros))
            .bind(record.revoked_at.map(floor_micros))
            .bind(record.revoked_reason.as_deref())
            .bind(scopes_to_sql(&record.scopes)?)
            .bind(metadata_to_sql(&record.metadata)?)
            .bind(rate_limit_to_sql(record.rate_limit).0)
            .bind(rate_limit_to_sql(record.rate_limit).1)
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(())
    }

    async fn find_by_hash(&self, hash: &KeyHash) -> Result<Option<KeyRecord>, StoreError> {
        self.one(sqlx::query(self.sql.find_by_hash.clone()).bind(&hash.as_bytes()[..]))
            .await
    }

    async fn find_by_id(&self, id: &KeyId) -> Result<Option<KeyRecord>, StoreError> {
        self.one(sqlx::query(self.sql.find_by_id.clone()).bind(id.as_uuid()))
            .await
    }

    async fn list(&self, query: &ListKeys) -> Result<KeyPage, StoreError> {
        let before = query
            .after
            .map_or(Uuid::max(), |after| *after.key_id().as_uuid());
        let fetch = sql_limit(query.limit.saturating_add(1));
        let prefix = query.display_prefix.as_deref();
        let records = match &query.owner {
            Some(owner) => {
                self.many(
                    sqlx::query(self.sql.list_owned.clone())
                        .bind(owner.as_str())
                        .bind(before)
                        .bind(prefix)
                        .bind(fetch),
                )
                .await?
            }
            None => {
                self.many(
                    sqlx::query(self.sql.list_all.clone())
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
        let query = match update {
            KeyUpdate::Revoke { at, reason } => sqlx::query(self.sql.revoke.clone())
                .bind(id.as_uuid())
                .bind(owner.as_str())
                .bind(floor_micros(*at))
                .bind(reason.as_deref()),
            KeyUpdate::Rename { name } => sqlx::query(self.sql.rename.clone())
                .bind(id.as_uuid())
                .bind(owner.as_str())
                .bind(name.as_str()),
            KeyUpdate::ExpireBy { at } => sqlx::query(self.sql.expire_by.clone())
                .bind(id.as_uuid())
                .bind(owner.as_str())
                .bind(floor_micros(*at)),
        };
        let updated = query.fetch_optional(&self.pool).await.map_err(map_err)?;
        match updated {
            Some(row) => decode(&row).map(Some),
            // It changed nothing (revoked already: the first revocation
            // stands), or the key is not the owner's. A statement of its
            // own, so it sees an update that committed while this one
            // waited for the row.
            None => self.fetch_owned(owner, id).await,
        }
    }

    async fn record_last_used(&self, batch: &[LastUsed]) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        let ids: Vec<Uuid> = batch.iter().map(|used| *used.id.as_uuid()).collect();
        let times: Vec<DateTime<Utc>> = batch.iter().map(|used| floor_micros(used.at)).collect();
        sqlx::query(self.sql.record_last_used.clone())
            .bind(ids)
            .bind(times)
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(())
    }
}

#[async_trait]
impl ChangeFeed for PostgresStore {
    async fn changes(
        &self,
        after: Option<ChangeCursor>,
        limit: usize,
    ) -> Result<ChangeBatch, StoreError> {
        let (after, limit) = match after {
            Some(after) => (after.position(), sql_limit(limit)),
            None => (0, 0),
        };
        let rows = sqlx::query(self.sql.changes.clone())
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
            let hash: Vec<u8> = row.try_get("key_hash").map_err(map_err)?;
            batch.changes.push(KeyChange {
                cursor: ChangeCursor::from_position(seq),
                id: KeyId::from_uuid(row.try_get("key_id").map_err(map_err)?),
                hash: hash_from_sql(&hash)?,
            });
        }
        Ok(batch)
    }

    async fn prune_changes(&self, before: DateTime<Utc>, limit: usize) -> Result<u64, StoreError> {
        let done = sqlx::query(self.sql.prune_changes.clone())
            .bind(before)
            .bind(sql_limit(limit))
            .bind(self.sql.changes_table.clone())
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(done.rows_affected())
    }

    fn change_signal(&self) -> Option<ChangeSignal> {
        self.feed.start(
            (*self.pool.connect_options()).clone(),
            self.sql.changes_table.clone(),
        )
    }
}
