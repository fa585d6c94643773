//! An attacker does not control the log volume: 10,000 refused requests,
//! each with a distinct key in its URL, over a real socket, write a handful
//! of lines, and every refusal is still counted for the app to read.

use axum::Router;
use axum::routing::get;
use reqwest::StatusCode;
use tower_api_keys::key::KeyFormat;
use tower_api_keys::rejection::RejectionReason;
use tower_api_keys::{ApiKeys, MemoryStore};

use test_support::{Capture, client, serve};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_keys_in_urls_write_a_bounded_number_of_lines() {
    let capture = Capture::default();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::INFO)
        .with_writer(capture.clone())
        .with_ansi(false)
        .init();
    let keys = ApiKeys::builder(MemoryStore::new()).build().unwrap();
    let app = Router::new()
        .route("/p", get(|| async { "ok" }))
        .layer(keys.layer());
    let url = format!("http://{}/p", serve(app).await);
    let http = client();
    let format = KeyFormat::default();
    const REQUESTS: u64 = 10_000;
    for _ in 0..REQUESTS {
        let key = format.generate().unwrap();
        let response = http
            .get(format!("{url}?q={}", key.expose_secret()))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    }
    let stats = keys.refusal_stats(RejectionReason::CredentialInQuery);
    assert_eq!(stats.refused, REQUESTS);
    let text = capture.text();
    let lines = text.lines().count() as u64;
    // A few lines per interval (the run may span a few intervals), never
    // one or two per request.
    assert!(
        lines <= 60,
        "{lines} lines for {REQUESTS} requests:\n{text}"
    );
    assert!(lines >= 1, "the first refusals are logged");
    assert_eq!(stats.lines_suppressed + lines, 2 * REQUESTS, "{stats:?}");
}
