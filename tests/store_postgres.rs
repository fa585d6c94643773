//! The PostgreSQL store: the conformance suite, then what only PostgreSQL
//! has (schemas, the NOTIFY listener and its reconnection, UTC whatever the
//! session's time zone). Every test has a schema of its own, dropped after
//! it. Skipped, loudly, when `TEST_POSTGRES_URL` is unset.

#[macro_use]
mod backends;

use std::sync::Arc;
use std::time::Duration;

use backends::conformance::{Harness, Setup, at, record};
use backends::{PgSchema, SchemaStore as _};
use sqlx::Row as _;
use tower_api_keys::store::{ChangeFeed, PostgresStore};
use tower_api_keys::{ApiKeys, KeyStore, NewKey};

async fn postgres() -> Option<Setup> {
    let schema = PgSchema::new()?;
    let store = schema.store().await;
    let other = schema.store().await;
    let handles = (store.clone(), other.clone());
    let (pool, name) = (store.pool().clone(), schema.name.clone());
    Some(Setup {
        harness: Harness {
            store: Arc::new(store),
            other: Arc::new(other),
            pushes_across_handles: true,
            // Every row of the schema's tables, as text.
            dump: Arc::new(move || {
                let (pool, name) = (pool.clone(), name.clone());
                Box::pin(async move {
                    let mut dump = Vec::new();
                    for table in ["api_keys", "api_key_changes", "api_keys_migrations"] {
                        let rows: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                            "SELECT t::text FROM \"{name}\".{table} t"
                        )))
                        .fetch_all(&pool)
                        .await
                        .unwrap();
                        dump.extend(rows.join("\n").into_bytes());
                    }
                    dump
                })
            }),
        },
        cleanup: Box::pin(async move {
            handles.0.pool().close().await;
            handles.1.pool().close().await;
            drop(handles);
            schema.drop_now().await;
        }),
    })
}

conformance_suite!(postgres);

/// Waits until `rx` fires, at most `limit`.
async fn fired(rx: &mut tower_api_keys::store::ChangeSignal, limit: Duration) -> bool {
    tokio::time::timeout(limit, rx.changed())
        .await
        .is_ok_and(|alive| alive)
}

#[tokio::test]
async fn the_schema_has_a_hash_and_no_column_for_the_key_itself() {
    PgSchema::run(|schema| async move {
        let store = schema.store().await;
        let columns: Vec<(String, String, bool)> = sqlx::query(
            "SELECT column_name::text, data_type::text, is_nullable = 'NO' AS not_null \
             FROM information_schema.columns \
             WHERE table_schema = $1 AND table_name = 'api_keys' ORDER BY ordinal_position",
        )
        .bind(&schema.name)
        .fetch_all(store.pool())
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1), row.get(2)))
        .collect();
        let expected: Vec<(String, String, bool)> = [
            ("id", "uuid", true),
            ("owner", "text", true),
            ("name", "text", true),
            ("display_prefix", "text", true),
            ("key_hash", "bytea", true),
            ("created_at", "timestamp with time zone", true),
            ("expires_at", "timestamp with time zone", false),
            ("last_used_at", "timestamp with time zone", false),
            ("revoked_at", "timestamp with time zone", false),
            ("revoked_reason", "text", false),
            ("scopes", "jsonb", false),
            ("metadata", "jsonb", true),
            ("rate_limit_requests", "bigint", false),
            ("rate_limit_window_ms", "bigint", false),
        ]
        .iter()
        .map(|(n, t, nn)| (n.to_string(), t.to_string(), *nn))
        .collect();
        assert_eq!(columns, expected);

        let indexes: Vec<String> = sqlx::query_scalar(
            "SELECT indexdef FROM pg_indexes WHERE schemaname = $1 AND tablename = 'api_keys'",
        )
        .bind(&schema.name)
        .fetch_all(store.pool())
        .await
        .unwrap();
        assert!(
            indexes.iter().any(|d| d.starts_with("CREATE UNIQUE INDEX api_keys_key_hash") && d.ends_with("(key_hash)")),
            "{indexes:?}"
        );
        assert!(
            indexes.iter().any(|d| d.starts_with("CREATE INDEX api_keys_owner_id") && d.contains("(owner, id)")),
            "{indexes:?}"
        );
        // Nothing landed outside the schema.
        let elsewhere: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_tables WHERE tablename LIKE 'api_key%' AND schemaname = 'public'",
        )
        .fetch_one(store.pool())
        .await
        .unwrap();
        assert_eq!(elsewhere, 0);
    })
    .await;
}

#[tokio::test]
async fn migrations_run_once_even_when_replicas_start_together() {
    PgSchema::run(|schema| async move {
        let mut starts = Vec::new();
        for _ in 0..4 {
            let schema = schema.clone();
            starts.push(tokio::spawn(async move { schema.store().await }));
        }
        let mut stores = Vec::new();
        for start in starts {
            stores.push(start.await.unwrap());
        }
        stores[0].migrate().await.expect("and again");
        let applied: Vec<i64> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT version FROM \"{}\".api_keys_migrations ORDER BY version",
            schema.name
        )))
        .fetch_all(stores[0].pool())
        .await
        .unwrap();
        assert_eq!(applied, vec![1, 2]);
    })
    .await;
}

#[tokio::test]
async fn times_are_utc_whatever_the_session_time_zone() {
    PgSchema::run(|schema| async move {
        let utc = schema.store().await;
        let tokyo = schema
            .store_with(
                PostgresStore::pool_options().after_connect(|conn, _| {
                    Box::pin(async move {
                        sqlx::Executor::execute(conn, "SET TIME ZONE 'Asia/Tokyo'").await?;
                        Ok(())
                    })
                }),
                schema.connect_options(),
            )
            .await;
        let mut r = record("acct");
        r.expires_at = Some(at(3600));
        tokyo.insert(&r).await.unwrap();
        assert_eq!(utc.find_by_id(&r.id).await.unwrap(), Some(r.clone()));
        assert_eq!(tokyo.find_by_id(&r.id).await.unwrap(), Some(r.clone()));
        let zone: String = sqlx::query_scalar("SHOW TimeZone")
            .fetch_one(tokyo.pool())
            .await
            .unwrap();
        assert_eq!(zone, "Asia/Tokyo");
        // Forward-only comparisons across zones: a later instant wins.
        tokyo
            .record_last_used(&[tower_api_keys::store::LastUsed {
                id: r.id,
                at: at(10),
            }])
            .await
            .unwrap();
        utc.record_last_used(&[tower_api_keys::store::LastUsed {
            id: r.id,
            at: at(9),
        }])
        .await
        .unwrap();
        assert_eq!(
            utc.find_by_id(&r.id).await.unwrap().unwrap().last_used_at,
            Some(at(10))
        );
    })
    .await;
}

#[tokio::test]
async fn a_change_made_by_hand_in_sql_is_logged_and_announced() {
    PgSchema::run(|schema| async move {
        let store = schema.store().await;
        let admin = schema.admin().await;
        let r = record("acct");
        store.insert(&r).await.unwrap();
        let mut signal = store.change_signal().expect("PostgreSQL pushes changes");
        assert!(
            fired(&mut signal, Duration::from_secs(5)).await,
            "the listener starts"
        );
        let cursor = store.changes(None, 0).await.unwrap().head;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE \"{}\".api_keys SET scopes = '[\"read\"]' WHERE id = $1",
            schema.name
        )))
        .bind(r.id.as_uuid())
        .execute(&admin)
        .await
        .unwrap();
        assert!(
            fired(&mut signal, Duration::from_secs(1)).await,
            "NOTIFY reached the store"
        );
        let changed = store.changes(Some(cursor), 10).await.unwrap().changes;
        assert_eq!(changed.len(), 1);
        assert_eq!((changed[0].id, changed[0].hash), (r.id, r.hash));
        admin.close().await;
    })
    .await;
}

#[tokio::test]
async fn notifications_from_another_schema_do_not_wake_the_store() {
    PgSchema::run(|schema| async move {
        let Some(elsewhere) = PgSchema::new() else {
            return;
        };
        let neighbour = elsewhere.store().await;
        let store = schema.store().await;
        let mut signal = store.change_signal().expect("PostgreSQL pushes changes");
        assert!(
            fired(&mut signal, Duration::from_secs(5)).await,
            "the listener starts"
        );
        neighbour.insert(&record("acct")).await.unwrap();
        assert!(!fired(&mut signal, Duration::from_millis(500)).await);
        store.insert(&record("acct")).await.unwrap();
        assert!(fired(&mut signal, Duration::from_secs(1)).await);
        neighbour.pool().close().await;
        elsewhere.drop_now().await;
    })
    .await;
}

#[tokio::test]
async fn the_listener_reconnects_after_its_backend_is_terminated() {
    PgSchema::run(|schema| async move {
        let app = test_support::unique("tak_listener");
        let store = schema
            .store_with(
                PostgresStore::pool_options(),
                schema.connect_options().application_name(&app),
            )
            .await;
        let writer = schema.store().await;
        let mut signal = store.change_signal().expect("PostgreSQL pushes changes");
        assert!(
            fired(&mut signal, Duration::from_secs(5)).await,
            "the listener starts"
        );

        for round in 0..3 {
            let ended = schema.terminate(&app).await;
            assert!(
                ended >= 1,
                "round {round}: the listener's backend was running"
            );
            // The listener reconnects and wakes the caches to catch up.
            assert!(
                fired(&mut signal, Duration::from_secs(3)).await,
                "round {round}: no wake after the reconnect"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
            // A fresh follower's end, which has seen nothing yet.
            signal = store.change_signal().expect("PostgreSQL pushes changes");
            writer.insert(&record("acct")).await.unwrap();
            assert!(
                fired(&mut signal, Duration::from_secs(1)).await,
                "round {round}: NOTIFY after the reconnect"
            );
        }
    })
    .await;
}

#[tokio::test]
async fn dropping_the_store_ends_its_listener_and_connections() {
    PgSchema::run(|schema| async move {
        let app = test_support::unique("tak_drop");
        let store = schema
            .store_with(
                PostgresStore::pool_options(),
                schema.connect_options().application_name(&app),
            )
            .await;
        let mut signal = store.change_signal().expect("PostgreSQL pushes changes");
        assert!(
            fired(&mut signal, Duration::from_secs(5)).await,
            "the listener starts"
        );
        let admin = schema.admin().await;
        let count = || {
            let admin = admin.clone();
            let app = app.clone();
            async move {
                sqlx::query_scalar::<_, i64>(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1",
                )
                .bind(app)
                .fetch_one(&admin)
                .await
                .unwrap()
            }
        };
        assert!(count().await >= 2, "a query connection and the listener");
        let pool = store.pool().clone();
        drop(store);
        pool.close().await;
        let mut remaining = count().await;
        for _ in 0..50 {
            if remaining == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            remaining = count().await;
        }
        assert_eq!(remaining, 0, "connections left behind");
        assert!(!signal.changed().await, "the listener task ended");
        admin.close().await;
    })
    .await;
}

/// An idle instance reads the change log only when PostgreSQL announces a
/// change while its listener is up (with a poll interval of 50 ms it would
/// otherwise read it 20 times a second), and a key revoked elsewhere while
/// the listener is cut is still refused once it is back.
#[tokio::test]
async fn an_idle_instance_reads_the_log_only_when_told_and_loses_no_revocation() {
    use tower_api_keys::test_util::{CountingStore, StoreMethod};
    PgSchema::run(|schema| async move {
        let app = test_support::unique("tak_idle");
        let counting = Arc::new(CountingStore::new(
            schema
                .store_with(
                    PostgresStore::pool_options(),
                    schema.connect_options().application_name(&app),
                )
                .await,
        ));
        let keys = ApiKeys::builder(Arc::clone(&counting))
            .change_poll_interval(Duration::from_millis(50))
            .build()
            .unwrap();
        let elsewhere = ApiKeys::builder(schema.store().await).build().unwrap();
        let created = elsewhere
            .create(NewKey::new("acct", "laptop"))
            .await
            .unwrap();
        let secret = created.secret.expose_secret().to_owned();
        keys.authenticate(&secret).await.expect("the key is valid");

        // Idle: the listener is up, nothing changes.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let before = counting.calls();
        tokio::time::sleep(Duration::from_secs(2)).await;
        let reads = counting.calls().since(&before).get(StoreMethod::Changes);
        assert!(
            reads <= 1,
            "{reads} reads of the change log in 2 s while idle"
        );

        // The listener is cut; the key is revoked meanwhile, elsewhere.
        assert!(schema.terminate(&app).await >= 1);
        elsewhere
            .revoke(&"acct".into(), &created.record.id)
            .await
            .unwrap();
        let refused = tokio::time::timeout(Duration::from_secs(10), async {
            while keys.authenticate(&secret).await.is_ok() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
        assert!(
            refused.is_ok(),
            "the revocation made while the listener was cut was lost"
        );
        keys.shutdown().await;
        elsewhere.shutdown().await;
    })
    .await;
}
