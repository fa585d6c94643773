//! The `metrics` feature's figures, read from a debugging recorder
//! installed for the engine under test, after real requests.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::{Router, routing::get};
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use tower_api_keys::limit::{FailedAttemptLimit, RateLimit};
use tower_api_keys::test_util::{ScriptedStore, StoreMethod};
use tower_api_keys::{ApiKeys, ApiKeysBuilder, MemoryStore, NewKey};

/// Builds the engine with a recorder of its own: its handles are
/// registered with it, whatever the global recorder is.
fn build(builder: ApiKeysBuilder) -> (ApiKeys, Snapshotter) {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let keys = metrics::with_local_recorder(&recorder, || builder.build()).unwrap();
    (keys, snapshotter)
}

/// Every metric as `name{label=value,...}` and its value. The debugging
/// recorder's counters restart from zero after each snapshot: one per test.
fn read(snapshotter: &Snapshotter) -> HashMap<String, DebugValue> {
    snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(key, _, _, value)| {
            let (_, key) = key.into_parts();
            let labels: Vec<String> = key
                .labels()
                .map(|l| format!("{}={}", l.key(), l.value()))
                .collect();
            (format!("{}{{{}}}", key.name(), labels.join(",")), value)
        })
        .collect()
}

fn counter(metrics: &HashMap<String, DebugValue>, name: &str) -> u64 {
    match metrics.get(name) {
        Some(DebugValue::Counter(n)) => *n,
        other => panic!("{name}: {other:?} in {:?}", metrics.keys()),
    }
}

async fn serve(keys: &ApiKeys) -> String {
    let app = Router::new()
        .route("/", get(|| async { "ok" }))
        .layer(keys.layer());
    format!("http://{}/", test_support::serve(app).await)
}

#[tokio::test]
async fn decisions_cache_and_lookups_are_counted_by_outcome() {
    let (keys, snapshotter) =
        build(ApiKeys::builder(MemoryStore::new()).last_used_interval(Duration::from_millis(20)));
    let created = keys.create(NewKey::new("acct_1", "ci")).await.unwrap();
    let url = serve(&keys).await;
    let client = test_support::client();
    for _ in 0..5 {
        let response = client
            .get(&url)
            .bearer_auth(created.secret.expose_secret())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    let unknown = keys.format().generate().unwrap();
    for _ in 0..3 {
        let response = client
            .get(&url)
            .bearer_auth(unknown.expose_secret())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401);
    }
    assert_eq!(client.get(&url).send().await.unwrap().status(), 401);
    // A change the follower reads from the feed (it has read the head by
    // now: the requests above were answered after it started).
    let later = keys.create(NewKey::new("acct_1", "later")).await.unwrap();
    keys.revoke(&"acct_1".into(), &later.record.id)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    keys.shutdown().await;

    let m = read(&snapshotter);
    assert_eq!(
        counter(&m, "tower_api_keys_decisions_total{outcome=admitted}"),
        5
    );
    assert_eq!(
        counter(&m, "tower_api_keys_decisions_total{outcome=unknown_key}"),
        3
    );
    assert_eq!(
        counter(
            &m,
            "tower_api_keys_decisions_total{outcome=missing_credentials}"
        ),
        1
    );
    assert_eq!(
        counter(&m, "tower_api_keys_decisions_total{outcome=revoked_key}"),
        0
    );
    // One miss and one lookup per key; the rest are hits.
    assert_eq!(counter(&m, "tower_api_keys_cache_misses_total{}"), 2);
    assert_eq!(
        counter(&m, "tower_api_keys_cache_hits_total{cache=known}"),
        4
    );
    assert_eq!(
        counter(&m, "tower_api_keys_cache_hits_total{cache=unknown}"),
        2
    );
    assert_eq!(counter(&m, "tower_api_keys_store_lookups_total{}"), 2);
    assert_eq!(counter(&m, "tower_api_keys_store_lookup_errors_total{}"), 0);
    match m.get("tower_api_keys_store_lookup_seconds{}") {
        Some(DebugValue::Histogram(samples)) => assert_eq!(samples.len(), 2),
        other => panic!("lookup histogram: {other:?}"),
    }
    assert!(counter(&m, "tower_api_keys_last_used_batches_total{}") >= 1);
    assert_eq!(
        counter(&m, "tower_api_keys_last_used_keys_written_total{}"),
        1
    );
    assert!(counter(&m, "tower_api_keys_change_feed_events_total{}") >= 2);
    assert!(m.contains_key("tower_api_keys_change_feed_lag{}"));

    // No label names a key: every value is one of a fixed set.
    let hash = created.record.hash.to_hex();
    for name in m.keys() {
        for secret in [
            created.secret.expose_secret(),
            unknown.expose_secret(),
            &created.record.display_prefix,
            &hash,
            "acct_1",
        ] {
            assert!(!name.contains(secret), "{name}");
        }
    }
}

#[tokio::test]
async fn store_failures_coalesced_waits_and_last_used_errors_are_counted() {
    let store = Arc::new(ScriptedStore::new());
    let (keys, snapshotter) = build(
        ApiKeys::builder(Arc::clone(&store))
            .last_used_interval(Duration::from_millis(20))
            .change_poll_interval(Duration::from_millis(20))
            .max_pending_last_used(0),
    );
    let created = keys.create(NewKey::new("acct_1", "ci")).await.unwrap();
    let url = serve(&keys).await;
    let client = test_support::client();

    // Every last-used write fails from the start, before a batch could be
    // written; with no room to keep its times, each is dropped.
    store.set_failing_method(StoreMethod::RecordLastUsed, true);

    // Eight requests wait on one slow lookup.
    store.set_delay(StoreMethod::FindByHash, Duration::from_millis(300));
    let requests = (0..8).map(|_| {
        client
            .get(&url)
            .bearer_auth(created.secret.expose_secret())
            .send()
    });
    for response in futures_util::future::join_all(requests).await {
        assert_eq!(response.unwrap().status(), 200);
    }
    store.set_delay(StoreMethod::FindByHash, Duration::ZERO);

    // The recorder tries to write the use, fails, and drops it.
    tokio::time::sleep(Duration::from_millis(150)).await;

    // A lookup that fails.
    store.set_failing_method(StoreMethod::FindByHash, true);
    let other = keys.format().generate().unwrap();
    let response = client
        .get(&url)
        .bearer_auth(other.expose_secret())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);

    // The change feed fails for a while, then is read again.
    store.set_failing_method(StoreMethod::Changes, true);
    tokio::time::sleep(Duration::from_millis(100)).await;
    store.set_failing_method(StoreMethod::Changes, false);
    tokio::time::sleep(Duration::from_millis(100)).await;

    let m = read(&snapshotter);
    // At least the one above: the follower's re-read of a changed key may
    // also have met the failing lookups and recovered, depending on when
    // it ran on a loaded machine.
    assert!(counter(&m, "tower_api_keys_change_feed_reconnects_total{}") >= 1);
    assert_eq!(counter(&m, "tower_api_keys_store_lookups_total{}"), 2);
    assert_eq!(counter(&m, "tower_api_keys_store_lookup_errors_total{}"), 1);
    assert!(counter(&m, "tower_api_keys_cache_coalesced_waits_total{}") >= 1);
    assert_eq!(
        counter(
            &m,
            "tower_api_keys_decisions_total{outcome=store_unavailable}"
        ),
        1
    );
    assert!(counter(&m, "tower_api_keys_last_used_write_errors_total{}") >= 1);
    // One key's time per failed batch: how many batches the eight uses
    // fall in depends on when the recorder runs on a loaded machine.
    let dropped = counter(&m, "tower_api_keys_last_used_dropped_total{}");
    assert!((1..=8).contains(&dropped), "{dropped}");
    assert_eq!(counter(&m, "tower_api_keys_last_used_batches_total{}"), 0);
    store.set_failing(false);
    keys.shutdown().await;
}

#[tokio::test]
async fn refusals_of_the_throttle_and_the_rate_limit_are_counted() {
    let (keys, snapshotter) = build(
        ApiKeys::builder(MemoryStore::new())
            .rate_limit(RateLimit::new(2, Duration::from_secs(60)))
            .failed_attempt_limit(FailedAttemptLimit::new(2, Duration::from_secs(60))),
    );
    let created = keys.create(NewKey::new("acct_1", "ci")).await.unwrap();
    let app = Router::new()
        .route("/", get(|| async { "ok" }))
        .layer(keys.layer());
    let url = format!(
        "http://{}/",
        test_support::serve_with_peer_addresses(app).await
    );
    let client = test_support::client();
    let statuses = async |secret: &str, n| {
        let mut out = Vec::new();
        for _ in 0..n {
            let response = client.get(&url).bearer_auth(secret).send().await.unwrap();
            out.push(response.status().as_u16());
        }
        out
    };
    assert_eq!(
        statuses(created.secret.expose_secret(), 3).await,
        [200, 200, 429]
    );
    let bad = keys.format().generate().unwrap();
    assert_eq!(statuses(bad.expose_secret(), 3).await, [401, 401, 429]);

    let m = read(&snapshotter);
    assert_eq!(counter(&m, "tower_api_keys_rate_limit_refusals_total{}"), 1);
    assert_eq!(counter(&m, "tower_api_keys_throttle_refusals_total{}"), 1);
    assert_eq!(
        counter(&m, "tower_api_keys_decisions_total{outcome=rate_limited}"),
        1
    );
    assert_eq!(
        counter(
            &m,
            "tower_api_keys_decisions_total{outcome=too_many_failed_attempts}"
        ),
        1
    );
    keys.shutdown().await;
}
