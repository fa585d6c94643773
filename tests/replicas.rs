//! Two instances, one database: a key revoked through one replica is
//! refused by another that had it cached, within a second. PostgreSQL with
//! two in-process replicas (each its own pool, `ApiKeys`, cache and
//! server); SQLite with a real second OS process on the same file (this
//! test binary, run again as a child).

mod backends;

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use backends::{PgSchema, Proxy, SchemaStore as _, Server, TempDir};
use test_support::pg::pg_socket;
use tower_api_keys::record::KeyId;
use tower_api_keys::store::{PostgresStore, SqliteStore};
use tower_api_keys::test_util::CountingStore;
use tower_api_keys::{ApiKeys, NewKey};

/// Far longer than any test: a replica configured with it learns of
/// changes only through the store's push signal.
const NO_POLL: Duration = Duration::from_secs(3600);

/// Waits until `store` has read its change-log cursor, so the follower's
/// start cannot empty the cache under the test.
async fn follower_started<S>(store: &CountingStore<S>) {
    for _ in 0..200 {
        if store.calls().changes > 0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the change follower never started");
}

/// Asks `server` until `key` is served from its cache: `lookups` must not
/// move across several 200s.
async fn cached<S>(server: &Server, store: &CountingStore<S>, key: &str) {
    assert_eq!(server.status(key).await, 200);
    let lookups = store.calls().find_by_hash;
    for _ in 0..5 {
        assert_eq!(server.status(key).await, 200);
    }
    assert_eq!(store.calls().find_by_hash, lookups, "the key is cached");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_key_revoked_on_one_replica_is_refused_by_the_other_within_a_second() {
    PgSchema::run(|schema| async move {
        let one = ApiKeys::builder(schema.store().await).build().unwrap();
        let two_store = Arc::new(CountingStore::new(schema.store().await));
        let two = ApiKeys::builder(Arc::clone(&two_store))
            .change_poll_interval(NO_POLL)
            .build()
            .unwrap();
        let (server_one, server_two) = (Server::start(&one).await, Server::start(&two).await);
        follower_started(&two_store).await;

        for round in 0..3 {
            let created = one
                .create(NewKey::new("acct", format!("shared {round}")))
                .await
                .unwrap();
            let key = created.secret.expose_secret();
            // Let the creation's own notification pass before caching.
            tokio::time::sleep(Duration::from_millis(300)).await;
            cached(&server_two, &two_store, key).await;
            assert_eq!(server_one.status(key).await, 200);

            one.revoke(&"acct".into(), &created.record.id)
                .await
                .unwrap();
            assert_eq!(
                server_one.status(key).await,
                401,
                "refused at once where revoked"
            );
            let took = server_two
                .wait_for_status(key, 401, Duration::from_secs(1))
                .await;
            eprintln!(
                "round {round}: the other replica refused the key {took:?} after the revocation"
            );
        }
        one.shutdown().await;
        two.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_revocation_missed_while_disconnected_is_caught_up_on_reconnect() {
    PgSchema::run(|schema| async move {
        let one = ApiKeys::builder(schema.store().await).build().unwrap();
        // The second replica reaches the database through a proxy that the
        // test can cut; it learns of changes only through its listener.
        let proxy = Proxy::start(pg_socket(&schema.url).await).await;
        let two_store = Arc::new(CountingStore::new(
            schema
                .store_with(
                    PostgresStore::pool_options().acquire_timeout(Duration::from_millis(500)),
                    schema
                        .connect_options()
                        .host("127.0.0.1")
                        .port(proxy.addr.port()),
                )
                .await,
        ));
        let two = ApiKeys::builder(Arc::clone(&two_store))
            .change_poll_interval(NO_POLL)
            .lookup_timeout(Duration::from_secs(2))
            .build()
            .unwrap();
        let server_two = Server::start(&two).await;
        follower_started(&two_store).await;
        let created = one.create(NewKey::new("acct", "shared")).await.unwrap();
        let key = created.secret.expose_secret();
        tokio::time::sleep(Duration::from_millis(300)).await;
        cached(&server_two, &two_store, key).await;

        proxy.set_up(false);
        tokio::time::sleep(Duration::from_millis(200)).await;
        one.revoke(&"acct".into(), &created.record.id)
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(700)).await;
        // The NOTIFY was sent while nothing listened for the second replica.
        let during = server_two.status(key).await;
        assert!(during == 200 || during == 503, "{during}");

        proxy.set_up(true);
        let took = server_two
            .wait_for_status(key, 401, Duration::from_secs(5))
            .await;
        eprintln!("refused {took:?} after the database came back");
        one.shutdown().await;
        two.shutdown().await;
    })
    .await;
}

/// Environment of the child process of the SQLite test.
const CHILD_DB: &str = "TAK_REPLICA_CHILD_DB";
const CHILD_KEY: &str = "TAK_REPLICA_CHILD_KEY";
const CHILD_KEY_ID: &str = "TAK_REPLICA_CHILD_KEY_ID";
const CHILD_DONE: &str = "TAK-CHILD-REVOKED-AT-MICROS=";

fn now_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_key_revoked_by_another_process_is_refused_within_a_second() {
    let dir = TempDir::new();
    let url = dir.sqlite_url("keys.db");
    let store = Arc::new(CountingStore::new(
        SqliteStore::connect(&url).await.unwrap(),
    ));
    let keys = ApiKeys::builder(Arc::clone(&store)).build().unwrap();
    let server = Server::start(&keys).await;
    follower_started(&store).await;
    let created = keys.create(NewKey::new("acct", "shared")).await.unwrap();
    let key = created.secret.expose_secret().to_owned();
    tokio::time::sleep(Duration::from_millis(100)).await;
    cached(&server, &store, &key).await;

    // The other replica: this test binary again, running only the child
    // test below, with its own ApiKeys, cache and server on the same file.
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "sqlite_replica_child",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_DB, &url)
        .env(CHILD_KEY, &key)
        .env(CHILD_KEY_ID, created.record.id.to_string())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the second process");
    let stdout = child.stdout.take().expect("the child's stdout");
    let (tx, revoked_at) = tokio::sync::oneshot::channel();
    // Reads the child's output to its end (a closed pipe would fail the
    // child), handing over the revocation time as soon as it is printed.
    let reader = std::thread::spawn(move || {
        let mut tx = Some(tx);
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some((_, micros)) = line.split_once(CHILD_DONE)
                && let (Some(tx), Ok(micros)) = (tx.take(), micros.trim().parse::<i64>())
            {
                let _ = tx.send(micros);
            }
        }
    });
    let revoked_at = tokio::time::timeout(Duration::from_secs(60), revoked_at)
        .await
        .expect("the child revokes the key in time")
        .expect("the child revoked the key");

    server
        .wait_for_status(&key, 401, Duration::from_secs(2))
        .await;
    let took = Duration::from_micros((now_micros() - revoked_at).max(0) as u64);
    eprintln!("the other process revoked the key; refused here {took:?} later");
    assert!(took < Duration::from_secs(1), "took {took:?}");
    assert!(child.wait().unwrap().success(), "the child process passed");
    reader.join().unwrap();
    keys.shutdown().await;
}

/// The second process of the test above; does nothing when run as an
/// ordinary test.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_replica_child() {
    let (Ok(url), Ok(key), Ok(id)) = (
        std::env::var(CHILD_DB),
        std::env::var(CHILD_KEY),
        std::env::var(CHILD_KEY_ID),
    ) else {
        return;
    };
    let id: KeyId = id.parse().unwrap();
    let keys = ApiKeys::builder(SqliteStore::connect(&url).await.unwrap())
        .build()
        .unwrap();
    let server = Server::start(&keys).await;
    assert_eq!(
        server.status(&key).await,
        200,
        "valid here before the revocation"
    );
    keys.revoke(&"acct".into(), &id).await.unwrap();
    let revoked_at = now_micros();
    assert_eq!(server.status(&key).await, 401);
    println!("\n{CHILD_DONE}{revoked_at}");
    keys.shutdown().await;
}
