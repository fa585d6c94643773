//! When the database goes away, requests get 503 (never 200 for a key that
//! is not cached, never 401 for a valid one); when it comes back, service
//! resumes with the same `ApiKeys`, no restart; and nothing panics, in a
//! request or in a background task.

mod backends;

use std::sync::Once;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use backends::{PgSchema, Proxy, SchemaStore as _, Server, TempDir, closed_port, unknown_key};
use sqlx::sqlite::SqlitePoolOptions;
use test_support::pg::pg_socket;
use tower_api_keys::store::{PostgresStore, SqliteStore, StoreError};
use tower_api_keys::{ApiKeys, KeyStore, ManageError, NewKey};

static PANICS: AtomicUsize = AtomicUsize::new(0);

/// Counts every panic in this test binary, background tasks included.
fn count_panics() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            PANICS.fetch_add(1, Ordering::SeqCst);
            default(info);
        }));
    });
}

fn assert_no_panic() {
    assert_eq!(PANICS.load(Ordering::SeqCst), 0, "something panicked");
}

/// A 503 with `Retry-After`, as the layer answers when the store is down.
async fn assert_unavailable(server: &Server, key: &str) {
    let response = server.get(key).await;
    assert_eq!(response.status().as_u16(), 503);
    assert!(response.headers().contains_key("retry-after"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_pool_aimed_at_a_closed_port_answers_503() {
    count_panics();
    let port = closed_port().await;
    let pool = PostgresStore::pool_options()
        .acquire_timeout(Duration::from_millis(300))
        .connect_lazy(&format!("postgres://postgres@127.0.0.1:{port}/test"))
        .unwrap();
    let store = PostgresStore::from_pool(pool);
    let keys = ApiKeys::builder(store.clone())
        .lookup_timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let server = Server::start(&keys).await;
    for _ in 0..3 {
        assert_unavailable(&server, &unknown_key()).await;
    }
    let created = keys.create(NewKey::new("acct", "k")).await;
    assert!(
        matches!(created, Err(ManageError::Store(StoreError::Unavailable(_)))),
        "{created:?}"
    );
    assert!(matches!(
        store
            .find_by_hash(&tower_api_keys::key::KeyHash::from_bytes([0; 32]))
            .await,
        Err(StoreError::Unavailable(_))
    ));
    keys.shutdown().await;
    assert_no_panic();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_file_that_cannot_be_opened_answers_503_then_recovers() {
    count_panics();
    let dir = TempDir::new();
    let missing = dir.path().join("not-yet");
    let url = format!("sqlite://{}", missing.join("keys.db").display());
    let pool = SqlitePoolOptions::new()
        .acquire_timeout(Duration::from_millis(300))
        .connect_lazy_with(SqliteStore::connect_options(&url).unwrap());
    let store = SqliteStore::from_pool(pool);
    let keys = ApiKeys::builder(store.clone())
        .change_poll_interval(Duration::from_millis(100))
        .build()
        .unwrap();
    let server = Server::start(&keys).await;
    assert_unavailable(&server, &unknown_key()).await;
    assert!(keys.create(NewKey::new("acct", "k")).await.is_err());

    // The directory appears: the same ApiKeys serves again.
    std::fs::create_dir_all(&missing).unwrap();
    store.migrate().await.unwrap();
    let created = keys.create(NewKey::new("acct", "k")).await.unwrap();
    assert_eq!(server.status(created.secret.expose_secret()).await, 200);
    assert_eq!(server.status(&unknown_key()).await, 401);
    keys.shutdown().await;
    assert_no_panic();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_gone_then_back_answers_503_then_resumes_without_a_restart() {
    count_panics();
    PgSchema::run(|schema| async move {
        let admin = ApiKeys::builder(schema.store().await).build().unwrap();
        let proxy = Proxy::start(pg_socket(&schema.url).await).await;
        let store = schema
            .store_with(
                PostgresStore::pool_options().acquire_timeout(Duration::from_millis(500)),
                schema
                    .connect_options()
                    .host("127.0.0.1")
                    .port(proxy.addr.port()),
            )
            .await;
        let keys = ApiKeys::builder(store)
            .lookup_timeout(Duration::from_secs(2))
            .change_poll_interval(Duration::from_millis(200))
            .build()
            .unwrap();
        let server = Server::start(&keys).await;

        let hot = admin.create(NewKey::new("acct", "hot")).await.unwrap();
        let cold = admin.create(NewKey::new("acct", "cold")).await.unwrap();
        let doomed = admin.create(NewKey::new("acct", "doomed")).await.unwrap();
        let (hot_key, cold_key, doomed_key) = (
            hot.secret.expose_secret(),
            cold.secret.expose_secret(),
            doomed.secret.expose_secret(),
        );
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert_eq!(server.status(hot_key).await, 200);
        assert_eq!(server.status(doomed_key).await, 200);

        proxy.set_up(false);
        let unknown = unknown_key();
        let outage = Instant::now();
        let mut hot_answers = std::collections::BTreeMap::new();
        let mut revoked = false;
        while outage.elapsed() < Duration::from_millis(1500) {
            // Not cached: the store must be asked, and it is gone.
            assert_unavailable(&server, cold_key).await;
            assert_unavailable(&server, &unknown).await;
            let status = server.status(hot_key).await;
            assert!(status == 200 || status == 503, "a cached key got {status}");
            *hot_answers.entry(status).or_insert(0) += 1;
            if !revoked && outage.elapsed() > Duration::from_millis(500) {
                // Revoked by a replica that still reaches the database.
                admin
                    .revoke(&"acct".into(), &doomed.record.id)
                    .await
                    .unwrap();
                revoked = true;
            }
        }
        assert!(keys.create(NewKey::new("acct", "during")).await.is_err());
        eprintln!("cached key during the outage, status: count = {hot_answers:?}");

        proxy.set_up(true);
        let back = Instant::now();
        server
            .wait_for_status(cold_key, 200, Duration::from_secs(10))
            .await;
        server
            .wait_for_status(doomed_key, 401, Duration::from_secs(10))
            .await;
        assert_eq!(server.status(&unknown).await, 401);
        assert_eq!(server.status(hot_key).await, 200);
        eprintln!(
            "service resumed {:?} after the database came back",
            back.elapsed()
        );
        keys.shutdown().await;
        admin.shutdown().await;
    })
    .await;
    assert_no_panic();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_backends_terminated_under_traffic_never_let_a_bad_key_through() {
    count_panics();
    PgSchema::run(|schema| async move {
        let app = test_support::unique("tak_faults");
        let store = schema
            .store_with(
                PostgresStore::pool_options().acquire_timeout(Duration::from_secs(1)),
                schema.connect_options().application_name(&app),
            )
            .await;
        let keys = ApiKeys::builder(store)
            .lookup_timeout(Duration::from_secs(2))
            .change_poll_interval(Duration::from_millis(200))
            .negative_cache_ttl(Duration::from_millis(50))
            .cache_ttl(Duration::from_millis(50))
            .build()
            .unwrap();
        let server = Server::start(&keys).await;
        let admin = ApiKeys::builder(schema.store().await).build().unwrap();
        let good = admin.create(NewKey::new("acct", "good")).await.unwrap();
        let doomed = admin.create(NewKey::new("acct", "doomed")).await.unwrap();
        let good_key = good.secret.expose_secret().to_owned();
        let doomed_key = doomed.secret.expose_secret().to_owned();
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert_eq!(server.status(&good_key).await, 200);

        // End the store's server processes (queries and listener) every 50
        // ms for two seconds, while the short cache TTLs keep sending
        // requests to the store.
        let killer = {
            let schema = schema.clone();
            let app = app.clone();
            tokio::spawn(async move {
                let mut ended = 0;
                let start = Instant::now();
                while start.elapsed() < Duration::from_secs(2) {
                    ended += schema.terminate(&app).await;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                ended
            })
        };
        let unknown = unknown_key();
        let mut seen = std::collections::BTreeMap::new();
        let start = Instant::now();
        let mut revoked_at = None;
        while start.elapsed() < Duration::from_secs(2) {
            let good_status = server.status(&good_key).await;
            assert!(
                good_status == 200 || good_status == 503,
                "valid key got {good_status}"
            );
            let unknown_status = server.status(&unknown).await;
            assert!(
                unknown_status == 401 || unknown_status == 503,
                "unknown key got {unknown_status}"
            );
            let doomed_status = server.status(&doomed_key).await;
            match revoked_at {
                None if start.elapsed() > Duration::from_millis(500) => {
                    admin
                        .revoke(&"acct".into(), &doomed.record.id)
                        .await
                        .unwrap();
                    revoked_at = Some(Instant::now());
                }
                Some(at) if at.elapsed() > Duration::from_secs(1) => {
                    assert_ne!(
                        doomed_status, 200,
                        "a key revoked a second ago was let through"
                    );
                }
                _ => {}
            }
            *seen.entry(("good", good_status)).or_insert(0) += 1;
            *seen.entry(("unknown", unknown_status)).or_insert(0) += 1;
        }
        let ended = killer.await.unwrap();
        eprintln!("{ended} backends ended; answers: {seen:?}");
        assert!(ended > 0);

        server
            .wait_for_status(&good_key, 200, Duration::from_secs(10))
            .await;
        server
            .wait_for_status(&doomed_key, 401, Duration::from_secs(10))
            .await;
        server
            .wait_for_status(&unknown, 401, Duration::from_secs(10))
            .await;
        let late = admin.create(NewKey::new("acct", "late")).await.unwrap();
        server
            .wait_for_status(late.secret.expose_secret(), 200, Duration::from_secs(10))
            .await;
        keys.shutdown().await;
        admin.shutdown().await;
    })
    .await;
    assert_no_panic();
}
