//! Last-used times: written in batches in the background, flushed on
//! shutdown, and never on the request path.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use chrono::Utc;
use reqwest::StatusCode;
use tower_api_keys::test_util::{ScriptedStore, StoreMethod};
use tower_api_keys::{ApiKeys, KeyStore, NewKey};

use test_support::serve;

async fn app(keys: &ApiKeys) -> String {
    let app = Router::new()
        .route("/api/v2/projects", get(|| async { "ok" }))
        .route_layer(keys.layer());
    format!("http://{}/api/v2/projects", serve(app).await)
}

async fn call(url: &str, key: &str) -> StatusCode {
    test_support::get_with_key(url, key).await.status()
}

/// Waits (bounded) until `check` holds; a liveness bound, not a timing claim.
async fn eventually<F, Fut>(mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..200 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("condition not reached within 10 s");
}

#[tokio::test]
async fn times_reach_the_store_after_the_interval_in_one_batch() {
    let store = Arc::new(ScriptedStore::new());
    let keys = ApiKeys::builder(Arc::clone(&store))
        .last_used_interval(Duration::from_millis(200))
        .build()
        .unwrap();
    let a = keys.create(NewKey::new("o", "a")).await.unwrap();
    let b = keys.create(NewKey::new("o", "b")).await.unwrap();
    let url = app(&keys).await;
    let mut last_round = Utc::now();
    for _ in 0..20 {
        last_round = Utc::now();
        assert_eq!(call(&url, a.secret.expose_secret()).await, StatusCode::OK);
        assert_eq!(call(&url, b.secret.expose_secret()).await, StatusCode::OK);
    }
    eventually(|| async {
        let a = store.find_by_id(&a.record.id).await.unwrap().unwrap();
        let b = store.find_by_id(&b.record.id).await.unwrap().unwrap();
        a.last_used_at.is_some_and(|at| at >= last_round)
            && b.last_used_at.is_some_and(|at| at >= last_round)
    })
    .await;
    // Stamped by the flush that followed the last use: no earlier than that
    // use, and not in the future.
    let checked = Utc::now();
    for id in [a.record.id, b.record.id] {
        let used = store
            .find_by_id(&id)
            .await
            .unwrap()
            .unwrap()
            .last_used_at
            .unwrap();
        assert!(
            used >= last_round && used <= checked,
            "{used} not in [{last_round}, {checked}]"
        );
    }
    let stats = keys.last_used_stats();
    assert_eq!(stats.write_errors, 0);
    // 40 requests over two keys: the writes were batched per key.
    assert!(stats.keys_written <= 4, "{stats:?}");
    assert!(stats.batches >= 1);
}

#[tokio::test]
async fn pending_times_are_flushed_on_shutdown() {
    let store = Arc::new(ScriptedStore::new());
    let keys = ApiKeys::builder(Arc::clone(&store))
        .last_used_interval(Duration::from_secs(3600))
        .build()
        .unwrap();
    let a = keys.create(NewKey::new("o", "a")).await.unwrap();
    let url = app(&keys).await;
    assert_eq!(call(&url, a.secret.expose_secret()).await, StatusCode::OK);
    let stored = store.find_by_id(&a.record.id).await.unwrap().unwrap();
    assert_eq!(
        stored.last_used_at, None,
        "nothing is written on the request path"
    );
    let stats = keys.shutdown().await;
    assert_eq!(stats.batches, 1);
    assert_eq!(stats.keys_written, 1);
    let stored = store.find_by_id(&a.record.id).await.unwrap().unwrap();
    assert!(stored.last_used_at.is_some());
}

#[tokio::test]
async fn a_blocked_writer_slows_no_request_and_a_failed_batch_is_retried() {
    let store = {
        let store = Arc::new(ScriptedStore::new());
        store.gate(StoreMethod::RecordLastUsed).close();
        store
    };
    let keys = ApiKeys::builder(Arc::clone(&store))
        .last_used_interval(Duration::from_millis(50))
        .build()
        .unwrap();
    let a = keys.create(NewKey::new("o", "a")).await.unwrap();
    let url = app(&keys).await;
    assert_eq!(call(&url, a.secret.expose_secret()).await, StatusCode::OK);
    // Let the recorder start its write, which now blocks until released.
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Requests keep completing while the write hangs; each would hang too
    // if it waited on the write (the client's 30 s bound would fail it).
    for _ in 0..100 {
        assert_eq!(call(&url, a.secret.expose_secret()).await, StatusCode::OK);
    }
    assert_eq!(store.reached().record_last_used, 0);
    assert_eq!(
        store
            .find_by_id(&a.record.id)
            .await
            .unwrap()
            .unwrap()
            .last_used_at,
        None
    );
    // Now the store fails the write: it is retried, not lost.
    store.set_failing(true);
    store.gate(StoreMethod::RecordLastUsed).open();
    eventually(|| async { keys.last_used_stats().write_errors >= 1 }).await;
    store.set_failing(false);
    eventually(|| async {
        store
            .find_by_id(&a.record.id)
            .await
            .unwrap()
            .unwrap()
            .last_used_at
            .is_some()
    })
    .await;
    let stats = keys.shutdown().await;
    assert_eq!(stats.dropped, 0);
    assert_eq!(stats.pending, 0);
}

#[tokio::test]
async fn a_late_batch_never_moves_a_time_back() {
    let store = Arc::new(ScriptedStore::new());
    let keys = ApiKeys::builder(Arc::clone(&store)).build().unwrap();
    let a = keys.create(NewKey::new("o", "a")).await.unwrap();
    let now = Utc::now();
    let earlier = now - chrono::Duration::minutes(5);
    let id = a.record.id;
    use tower_api_keys::store::LastUsed;
    store
        .record_last_used(&[LastUsed { id, at: now }])
        .await
        .unwrap();
    store
        .record_last_used(&[LastUsed { id, at: earlier }])
        .await
        .unwrap();
    assert_eq!(
        store.find_by_id(&id).await.unwrap().unwrap().last_used_at,
        Some(now)
    );
}
