//! Faults around the layer: a panicking handler, a last-used writer whose
//! store fails for a long stretch, shutdown with pending times.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use reqwest::StatusCode;
use reqwest::header::AUTHORIZATION;
use tower_api_keys::test_util::ScriptedStore;
use tower_api_keys::{ApiKeys, KeyStore, NewKey};

use test_support::{client, serve};

#[tokio::test]
async fn a_panicking_handler_does_not_poison_the_layer() {
    let store = Arc::new(ScriptedStore::new());
    let keys = ApiKeys::builder(Arc::clone(&store))
        .last_used_interval(Duration::from_millis(50))
        .build()
        .unwrap();
    let created = keys.create(NewKey::new("o", "k")).await.unwrap();
    let router = Router::new()
        .route("/ok", get(|| async { "ok" }))
        .route(
            "/panic",
            get(|| async {
                if true {
                    panic!("the handler failed");
                }
                "unreachable"
            }),
        )
        .route_layer(keys.layer());
    let base = format!("http://{}", serve(router).await);
    let bearer = format!("Bearer {}", created.secret.expose_secret());
    let http = client();
    for _ in 0..3 {
        let broken = http
            .get(format!("{base}/panic"))
            .header(AUTHORIZATION, &bearer)
            .send()
            .await;
        assert!(
            broken.is_err(),
            "the connection of a panicking handler is dropped"
        );
        let ok = reqwest::Client::new()
            .get(format!("{base}/ok"))
            .header(AUTHORIZATION, &bearer)
            .send()
            .await
            .unwrap();
        assert_eq!(ok.status(), StatusCode::OK);
        let refused = reqwest::Client::new()
            .get(format!("{base}/ok"))
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    }
    // The recorder kept working through the panics.
    let stats = keys.shutdown().await;
    assert_eq!(stats.write_errors, 0);
    let stored = store.find_by_id(&created.record.id).await.unwrap().unwrap();
    assert!(stored.last_used_at.is_some());
}

#[tokio::test]
async fn a_writer_whose_store_fails_for_a_long_stretch_writes_every_time_afterwards() {
    let store = Arc::new(ScriptedStore::new());
    let keys = ApiKeys::builder(Arc::clone(&store))
        .last_used_interval(Duration::from_millis(20))
        .build()
        .unwrap();
    let mut created = Vec::new();
    for i in 0..50 {
        created.push(
            keys.create(NewKey::new("o", format!("k{i}")))
                .await
                .unwrap(),
        );
    }
    let router = Router::new()
        .route("/ok", get(|| async { "ok" }))
        .route_layer(keys.layer());
    let url = format!("http://{}/ok", serve(router).await);
    // Cache every key first, so requests keep working while the store fails.
    for key in &created {
        let r = client()
            .get(&url)
            .header(
                AUTHORIZATION,
                format!("Bearer {}", key.secret.expose_secret()),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
    }
    store.set_failing(true);
    // Fifty failed flushes or more, with uses of every key in between.
    for round in 0..5 {
        for key in &created {
            let r = client()
                .get(&url)
                .header(
                    AUTHORIZATION,
                    format!("Bearer {}", key.secret.expose_secret()),
                )
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::OK, "round {round}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let failing = keys.last_used_stats();
    assert!(failing.write_errors >= 20, "{failing:?}");
    assert_eq!(failing.pending, 50);
    store.set_failing(false);
    let stats = keys.shutdown().await;
    assert_eq!(stats.dropped, 0);
    assert_eq!(stats.pending, 0);
    for key in &created {
        let stored = store.find_by_id(&key.record.id).await.unwrap().unwrap();
        assert!(
            stored.last_used_at.is_some(),
            "{} lost its last-used time",
            key.record.name
        );
    }
}
