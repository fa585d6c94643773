//! Everything traced at TRACE level, for every path a key can take, never
//! contains the secret (nor its unique part).

use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use chrono::Utc;
use reqwest::header::AUTHORIZATION;
use tower_api_keys::test_util::ScriptedStore;
use tower_api_keys::{ApiKeys, NewKey};

use test_support::{Capture, client, serve};

#[tokio::test]
async fn no_log_line_at_trace_level_contains_a_secret() {
    let capture = Capture::default();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(capture.clone())
        .with_ansi(false)
        .init();

    let store = Arc::new(ScriptedStore::new());
    let keys = ApiKeys::builder(Arc::clone(&store))
        .last_used_interval(std::time::Duration::from_millis(50))
        .build()
        .unwrap();
    let owner = "acct".into();
    let valid = keys.create(NewKey::new("acct", "valid")).await.unwrap();
    let expired = keys
        .create(
            NewKey::new("acct", "expired").expires_at(Utc::now() - chrono::Duration::seconds(1)),
        )
        .await
        .unwrap();
    let revoked = keys.create(NewKey::new("acct", "revoked")).await.unwrap();
    keys.revoke(&owner, &revoked.record.id).await.unwrap();
    let never_stored = keys.format().generate().unwrap();

    let app = Router::new()
        .route("/api/v2/projects", get(|| async { "ok" }))
        .route_layer(keys.layer());
    let base = format!("http://{}/api/v2/projects", serve(app).await);
    let http = client();
    let secrets = [
        valid.secret.expose_secret(),
        expired.secret.expose_secret(),
        revoked.secret.expose_secret(),
        never_stored.expose_secret(),
    ];
    for secret in secrets {
        for url in [
            base.clone(),
            format!("{base}?access_token={secret}"),
            format!("{base}?q={secret}"),
        ] {
            http.get(&url)
                .header(AUTHORIZATION, format!("Bearer {secret}"))
                .send()
                .await
                .unwrap();
        }
        // Malformed variants of the secret.
        for token in [format!("{secret}x"), secret[..secret.len() - 1].to_owned()] {
            http.get(&base)
                .header(AUTHORIZATION, format!("Bearer {token}"))
                .send()
                .await
                .unwrap();
        }
    }
    // A store failure is logged with its error, still without the key.
    store.set_failing(true);
    let uncached = keys.format().generate().unwrap();
    http.get(&base)
        .header(
            AUTHORIZATION,
            format!("Bearer {}", uncached.expose_secret()),
        )
        .send()
        .await
        .unwrap();
    store.set_failing(false);
    keys.shutdown().await;

    let logs = capture.text();
    // The capture works, and the events carry reasons and display prefixes.
    assert!(logs.contains("unknown_key"), "{logs}");
    assert!(logs.contains("revoked_key"));
    assert!(logs.contains("expired_key"));
    assert!(logs.contains("credential_in_query"));
    assert!(logs.contains("malformed_key"));
    assert!(logs.contains("store_unavailable"));
    assert!(logs.contains(valid.secret.display_prefix()));
    for secret in secrets.iter().chain([&uncached.expose_secret()]) {
        // The part after the display prefix is what makes a key secret.
        let hidden = &secret["bmc_".len() + 8..];
        assert!(!logs.contains(hidden), "a secret reached the logs");
    }
}

#[tokio::test]
async fn debug_output_of_the_request_behind_the_layer_never_shows_the_key() {
    let keys = ApiKeys::builder(Arc::new(ScriptedStore::new()))
        .build()
        .unwrap();
    let created = keys.create(NewKey::new("acct", "k")).await.unwrap();
    // A handler that prints the request's headers, as a careless log line or
    // a panic message would.
    let app = Router::new()
        .route(
            "/echo",
            get(|headers: http::HeaderMap| async move { format!("{headers:?}") }),
        )
        .route_layer(keys.layer());
    let url = format!("http://{}/echo", serve(app).await);
    let secret = created.secret.expose_secret();
    let response = test_support::get_with_key(&url, secret).await;
    assert_eq!(response.status(), 200);
    let printed = response.text().await.unwrap();
    assert!(printed.contains("authorization"), "{printed}");
    assert!(printed.contains("Sensitive"), "{printed}");
    assert!(!printed.contains(&secret[4..]));
    // The management types print no secret either.
    assert!(!format!("{created:?}").contains(&secret[4..]));
}
