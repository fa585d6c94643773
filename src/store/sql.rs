//! What the SQL stores share: error mapping and the encoding of the columns
//! that are not plain SQL types.

use chrono::{DateTime, Utc};
use sqlx::error::ErrorKind;

use super::StoreError;
use crate::key::KeyHash;
use crate::limit::RateLimit;
use crate::record::{KeyRecord, Scopes};

/// One embedded schema migration.
#[derive(Debug)]
pub(super) struct Migration {
    /// Applied in ascending order; recorded once applied.
    pub(super) version: i64,
    pub(super) description: &'static str,
    pub(super) sql: &'static str,
}

/// The schema's migrations for one backend, oldest first: the same steps in
/// every backend, each in its SQL under `migrations/<backend>/`.
macro_rules! migrations {
    ($backend:literal) => {
        &[
            Migration {
                version: 1,
                description: "api_keys and api_key_changes",
                sql: include_str!(concat!("migrations/", $backend, "/0001_keys.sql")),
            },
            Migration {
                version: 2,
                description: "an owner's keys indexed by id, for paging newest first",
                sql: include_str!(concat!("migrations/", $backend, "/0002_owner_id_index.sql")),
            },
        ]
    };
}
/// The SQLite schema, oldest first.
#[cfg(feature = "sqlite")]
pub(super) const SQLITE_MIGRATIONS: &[Migration] = migrations!("sqlite");
/// The PostgreSQL schema, oldest first (run with `search_path` set to the
/// store's schema).
#[cfg(feature = "postgres")]
pub(super) const POSTGRES_MIGRATIONS: &[Migration] = migrations!("postgres");

/// How one backend keeps the record of applied migrations: the table, and
/// the statement that records one (binding its version, then its
/// description).
#[derive(Debug)]
pub(super) struct MigrationLedger {
    pub(super) backend: &'static str,
    pub(super) create_table: &'static str,
    pub(super) record: &'static str,
}

/// Applies each of `migrations` that the ledger does not list yet, oldest
/// first, and records it, on `conn`: a transaction the backend opened and
/// locked against concurrent migrators, and commits afterwards. `schema`
/// is for the log line.
pub(super) async fn apply_migrations<DB>(
    conn: &mut DB::Connection,
    migrations: &[Migration],
    ledger: &MigrationLedger,
    schema: &str,
) -> Result<(), sqlx::Error>
where
    DB: sqlx::Database,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    DB::Arguments: sqlx::IntoArguments<DB>,
    usize: sqlx::ColumnIndex<DB::Row>,
    i64: sqlx::Type<DB> + for<'q> sqlx::Encode<'q, DB> + for<'r> sqlx::Decode<'r, DB>,
    &'static str: sqlx::Type<DB> + for<'q> sqlx::Encode<'q, DB>,
{
    sqlx::raw_sql(ledger.create_table)
        .execute(&mut *conn)
        .await?;
    let applied: Vec<i64> = sqlx::query_scalar("SELECT version FROM api_keys_migrations")
        .fetch_all(&mut *conn)
        .await?;
    for migration in migrations {
        if applied.contains(&migration.version) {
            continue;
        }
        sqlx::raw_sql(migration.sql).execute(&mut *conn).await?;
        sqlx::query(ledger.record)
            .bind(migration.version)
            .bind(migration.description)
            .execute(&mut *conn)
            .await?;
        tracing::info!(
            target: "tower_api_keys",
            backend = ledger.backend,
            version = migration.version,
            description = migration.description,
            schema,
            "applied a key store migration"
        );
    }
    Ok(())
}

/// Maps a driver error onto the store's error: a unique violation is a
/// conflict, unreadable data is corruption, and everything else (no
/// connection, pool timeout, I/O, a server that refuses) makes the store
/// unavailable, which the layer answers with 503.
pub(super) fn map_err(error: sqlx::Error) -> StoreError {
    match error {
        sqlx::Error::Database(db) if db.kind() == ErrorKind::UniqueViolation => {
            StoreError::Conflict
        }
        sqlx::Error::ColumnDecode { .. }
        | sqlx::Error::Decode(_)
        | sqlx::Error::ColumnNotFound(_)
        | sqlx::Error::ColumnIndexOutOfBounds { .. }
        | sqlx::Error::TypeNotFound { .. } => StoreError::Corrupt(error.to_string()),
        other => StoreError::unavailable(other),
    }
}

/// Scopes as stored: SQL `NULL` for full access, else a JSON array.
pub(super) fn scopes_to_sql(scopes: &Scopes) -> Result<Option<String>, StoreError> {
    match scopes {
        Scopes::All => Ok(None),
        Scopes::Only(_) => serde_json::to_string(scopes)
            .map(Some)
            .map_err(|e| StoreError::Corrupt(format!("cannot encode scopes: {e}"))),
    }
}

pub(super) fn scopes_from_sql(json: Option<&str>) -> Result<Scopes, StoreError> {
    match json {
        None => Ok(Scopes::All),
        Some(json) => serde_json::from_str(json)
            .map_err(|e| StoreError::Corrupt(format!("stored scopes are not a JSON array: {e}"))),
    }
}

pub(super) fn metadata_to_sql(metadata: &serde_json::Value) -> Result<String, StoreError> {
    serde_json::to_string(metadata)
        .map_err(|e| StoreError::Corrupt(format!("cannot encode metadata: {e}")))
}

pub(super) fn metadata_from_sql(json: &str) -> Result<serde_json::Value, StoreError> {
    serde_json::from_str(json)
        .map_err(|e| StoreError::Corrupt(format!("stored metadata is not JSON: {e}")))
}

pub(super) fn hash_from_sql(bytes: &[u8]) -> Result<KeyHash, StoreError> {
    KeyHash::from_slice(bytes).ok_or_else(|| {
        StoreError::Corrupt(format!(
            "a stored key hash has {} bytes, not 32",
            bytes.len()
        ))
    })
}

/// `at`, cut to whole microseconds (towards the past), the precision both
/// SQL stores keep.
#[cfg_attr(not(feature = "postgres"), allow(dead_code))]
pub(super) fn floor_micros(at: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(at.timestamp_micros()).unwrap_or(at)
}

/// A `usize` limit as SQL's `LIMIT` wants it.
pub(super) fn sql_limit(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

/// A key's own allowance as stored: two columns, both `NULL` or both set.
pub(super) fn rate_limit_to_sql(limit: Option<RateLimit>) -> (Option<i64>, Option<i64>) {
    match limit {
        Some(limit) => (
            Some(i64::from(limit.requests)),
            Some(i64::try_from(limit.window.as_millis()).unwrap_or(i64::MAX)),
        ),
        None => (None, None),
    }
}

pub(super) fn rate_limit_from_sql(
    requests: Option<i64>,
    window_ms: Option<i64>,
) -> Result<Option<RateLimit>, StoreError> {
    match (requests, window_ms) {
        (None, None) => Ok(None),
        (Some(requests), Some(window_ms)) if requests > 0 && window_ms > 0 => {
            Ok(Some(RateLimit::new(
                u32::try_from(requests).unwrap_or(u32::MAX),
                std::time::Duration::from_millis(window_ms.unsigned_abs()),
            )))
        }
        _ => Err(StoreError::Corrupt(
            "a stored rate limit needs a positive request count and window".to_owned(),
        )),
    }
}

/// The records of the rows `query` finds on `pool`.
pub(super) async fn fetch_records<'q, DB>(
    pool: &sqlx::Pool<DB>,
    query: sqlx::query::Query<'q, DB, DB::Arguments>,
    decode: fn(&DB::Row) -> Result<KeyRecord, StoreError>,
) -> Result<Vec<KeyRecord>, StoreError>
where
    DB: sqlx::Database,
    DB::Arguments: sqlx::IntoArguments<DB>,
    for<'c> &'c sqlx::Pool<DB>: sqlx::Executor<'c, Database = DB>,
{
    query
        .fetch_all(pool)
        .await
        .map_err(map_err)?
        .iter()
        .map(decode)
        .collect()
}
