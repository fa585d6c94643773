//! A cache hit costs no query. Every store call is counted
//! ([`CountingStore`]); after the keys are warm, hundreds of requests over
//! real HTTP must not move any count, for each backend. Unknown keys cost
//! one lookup per negative-cache period, and the last-used times of every
//! key go in one batch.

mod backends;

use std::sync::Arc;
use std::time::Duration;

use backends::{PgSchema, SchemaStore as _, Server, SqliteFile as _, TempDir, unknown_key};
use tower_api_keys::store::ListKeys;
use tower_api_keys::test_util::{CountingStore, StoreCalls};
use tower_api_keys::{ApiKeys, KeyStore, MemoryStore, NewKey};

/// Longer than the test: nothing runs on a timer while counting.
const HOUR: Duration = Duration::from_secs(3600);

async fn hot_keys_cost_no_query<S: KeyStore>(store: S) {
    let store = Arc::new(CountingStore::new(store));
    let keys = ApiKeys::builder(Arc::clone(&store))
        .change_poll_interval(HOUR)
        .last_used_interval(HOUR)
        .build()
        .unwrap();
    let server = Server::start(&keys).await;
    let mut secrets = Vec::new();
    for i in 0..3 {
        let created = keys
            .create(NewKey::new("acct", format!("hot {i}")))
            .await
            .unwrap();
        secrets.push(created.secret.expose_secret().to_owned());
    }
    // Let the follower read the changes the creations announced.
    tokio::time::sleep(Duration::from_millis(500)).await;
    for secret in &secrets {
        assert_eq!(server.status(secret).await, 200);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let warm = store.calls();
    assert_eq!(
        warm.find_by_hash, 3,
        "one lookup per key to warm the cache: {warm:?}"
    );

    for round in 0..100 {
        for secret in &secrets {
            assert_eq!(server.status(secret).await, 200, "round {round}");
        }
    }
    let hot = store.calls().since(&warm);
    assert_eq!(
        hot,
        StoreCalls::default(),
        "300 cache hits made queries: {hot:?}"
    );

    // A flood of one unknown key: one lookup, then the negative cache.
    let unknown = unknown_key();
    for _ in 0..50 {
        assert_eq!(server.status(&unknown).await, 401);
    }
    let flood = store.calls().since(&warm);
    assert_eq!(flood.find_by_hash, 1, "{flood:?}");
    assert_eq!(flood.total(), 1, "{flood:?}");

    // Shutting down writes the three keys' last-used times in one call.
    let before_shutdown = store.calls();
    keys.shutdown().await;
    let flushed = store.calls().since(&before_shutdown);
    assert_eq!(flushed.record_last_used, 1, "{flushed:?}");
    assert_eq!(flushed.total(), 1, "{flushed:?}");
    let listed = store.list(&ListKeys::new().owner("acct")).await.unwrap();
    for record in listed.records {
        assert!(
            record.last_used_at.is_some(),
            "{} has no last-used time",
            record.name
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_hot_keys_cost_no_query() {
    hot_keys_cost_no_query(MemoryStore::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_hot_keys_cost_no_query() {
    let dir = TempDir::new();
    hot_keys_cost_no_query(dir.sqlite_store("keys.db").await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_hot_keys_cost_no_query() {
    PgSchema::run(|schema| async move {
        hot_keys_cost_no_query(schema.store().await).await;
    })
    .await;
}
