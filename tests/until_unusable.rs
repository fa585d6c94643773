//! `ApiKeys::until_unusable`: code that holds a key's identity learns when
//! the key stops being usable, from this process or another one sharing the
//! store, without asking the store per waiter.

use std::sync::Arc;
use std::time::Duration;

use tower_api_keys::record::{KeyStatus, OwnerId};
use tower_api_keys::test_util::CountingStore;
use tower_api_keys::{ApiKeys, MemoryStore, NewKey};

/// Far above anything the feed needs (it polls every 50 ms here): a hang
/// fails the test instead of stalling it.
const HANG: Duration = Duration::from_secs(10);

fn instance(store: &Arc<CountingStore<MemoryStore>>) -> ApiKeys {
    ApiKeys::builder(Arc::clone(store))
        .change_poll_interval(Duration::from_millis(50))
        .build()
        .unwrap()
}

/// `keys.until_unusable(&identity)` on a task of its own.
fn wait_in_background(
    keys: &ApiKeys,
    identity: tower_api_keys::AuthenticatedKey,
) -> tokio::task::JoinHandle<KeyStatus> {
    let keys = keys.clone();
    tokio::spawn(async move { keys.until_unusable(&identity).await })
}

fn shared_store() -> Arc<CountingStore<MemoryStore>> {
    Arc::new(CountingStore::new(MemoryStore::new()))
}

#[tokio::test]
async fn a_revocation_by_another_instance_ends_the_wait() {
    let store = shared_store();
    let (here, elsewhere) = (instance(&store), instance(&store));
    let created = here.create(NewKey::new("acct", "laptop")).await.unwrap();
    let identity = here
        .authenticate(created.secret.expose_secret())
        .await
        .unwrap();
    let waiting = wait_in_background(&here, identity);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!waiting.is_finished(), "an active key keeps its waiters");
    elsewhere
        .revoke(&OwnerId::new("acct"), &created.record.id)
        .await
        .unwrap();
    let status = tokio::time::timeout(HANG, waiting).await.unwrap().unwrap();
    assert_eq!(status, KeyStatus::Revoked);
}

#[tokio::test]
async fn expiry_ends_the_wait_also_when_brought_forward_elsewhere() {
    let store = shared_store();
    let (here, elsewhere) = (instance(&store), instance(&store));
    let soon = chrono::Utc::now() + chrono::Duration::milliseconds(300);
    let expiring = here
        .create(NewKey::new("acct", "expiring").expires_at(soon))
        .await
        .unwrap();
    let identity = here
        .authenticate(expiring.secret.expose_secret())
        .await
        .unwrap();
    let status = tokio::time::timeout(HANG, here.until_unusable(&identity))
        .await
        .unwrap();
    assert_eq!(status, KeyStatus::Expired);

    // A key without expiry, given one by another instance.
    let lasting = here.create(NewKey::new("acct", "lasting")).await.unwrap();
    let identity = here
        .authenticate(lasting.secret.expose_secret())
        .await
        .unwrap();
    let waiting = wait_in_background(&here, identity);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let at = chrono::Utc::now() + chrono::Duration::milliseconds(200);
    elsewhere
        .expire(&OwnerId::new("acct"), &lasting.record.id, at)
        .await
        .unwrap();
    let status = tokio::time::timeout(HANG, waiting).await.unwrap().unwrap();
    assert_eq!(status, KeyStatus::Expired);
}

#[tokio::test]
async fn an_identity_read_before_a_revocation_is_not_waited_on_forever() {
    let store = shared_store();
    let (here, elsewhere) = (instance(&store), instance(&store));
    let created = here.create(NewKey::new("acct", "laptop")).await.unwrap();
    let secret = created.secret.expose_secret().to_owned();
    let stale = here.authenticate(&secret).await.unwrap();
    elsewhere
        .revoke(&OwnerId::new("acct"), &created.record.id)
        .await
        .unwrap();
    // Wait until this instance has applied the change (it refuses the key),
    // so that the revocation passed before anyone waited on the key.
    tokio::time::timeout(HANG, async {
        while here.authenticate(&secret).await.is_ok() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap();
    let status = tokio::time::timeout(HANG, here.until_unusable(&stale))
        .await
        .unwrap();
    assert_eq!(status, KeyStatus::Revoked);
}

#[tokio::test]
async fn waiters_cost_the_store_no_lookups() {
    let store = shared_store();
    let here = instance(&store);
    // Once the feed is followed, as in a server that has been up a moment.
    while store.calls().changes == 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let created = here.create(NewKey::new("acct", "laptop")).await.unwrap();
    let identity = here
        .authenticate(created.secret.expose_secret())
        .await
        .unwrap();
    let before = store.calls();
    let mut waiters = Vec::new();
    for _ in 0..200 {
        waiters.push(wait_in_background(&here, identity.clone()));
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    let during = store.calls().since(&before);
    // At most the first waiter's one re-read (the key's own creation may
    // reach the feed after its identity was read), never one per waiter.
    assert!(during.find_by_hash <= 1, "{during:?}");
    assert_eq!(during.find_by_id, 0, "{during:?}");
    assert!(during.changes > 0, "the feed is followed: {during:?}");
    here.revoke(&OwnerId::new("acct"), &created.record.id)
        .await
        .unwrap();
    for waiter in waiters {
        let status = tokio::time::timeout(HANG, waiter).await.unwrap().unwrap();
        assert_eq!(status, KeyStatus::Revoked);
    }
}
