//! Opening the key store named by `--db`.

use std::sync::Arc;

use tower_api_keys::KeyStore;
use tower_api_keys::store::{PostgresStore, SqliteStore};

/// Opens `sqlite:PATH` (created if missing) or `postgres://...`, and applies
/// the migrations.
pub async fn open(db: &str) -> Result<Arc<dyn KeyStore>, String> {
    let failed = |error: tower_api_keys::store::sqlx::Error| {
        format!("cannot open the key store {}: {error}", describe(db))
    };
    if db.starts_with("sqlite:") {
        Ok(Arc::new(SqliteStore::connect(db).await.map_err(failed)?))
    } else if db.starts_with("postgres://") || db.starts_with("postgresql://") {
        Ok(Arc::new(PostgresStore::connect(db).await.map_err(failed)?))
    } else {
        Err(format!(
            "--db must be sqlite:PATH or postgres://..., not {:?}",
            describe(db)
        ))
    }
}

/// `db` without any password, for messages.
pub fn describe(db: &str) -> String {
    match (db.find("://"), db.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let credentials = &db[scheme_end + 3..at];
            match credentials.split_once(':') {
                Some((user, _password)) => {
                    format!("{}{user}:***{}", &db[..scheme_end + 3], &db[at..])
                }
                None => db.to_owned(),
            }
        }
        _ => db.to_owned(),
    }
}
