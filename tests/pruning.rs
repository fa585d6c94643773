//! The change log is pruned and stays bounded under churn, and no instance
//! misses a revocation because of it: one cut off from the store while the
//! revocation's change was pruned drops its cache when it reads the log
//! again.

use std::sync::Arc;
use std::time::Duration;

use tower_api_keys::record::OwnerId;
use tower_api_keys::store::{ChangeFeed, ListKeys};
use tower_api_keys::test_util::{ScriptedStore, StoreMethod};
use tower_api_keys::{ApiKeys, KeyStore, MemoryStore, NewKey};

const HANG: Duration = Duration::from_secs(10);

#[tokio::test]
async fn the_change_log_stays_bounded_under_churn() {
    let store = Arc::new(MemoryStore::new());
    let keys = ApiKeys::builder(Arc::clone(&store))
        .change_log_retention(Duration::from_millis(100))
        .change_poll_interval(Duration::from_millis(20))
        .build()
        .unwrap();
    let owner = OwnerId::new("acct");
    for round in 0..5 {
        for _ in 0..100 {
            let created = keys.create(NewKey::new("acct", "churn")).await.unwrap();
            keys.revoke(&owner, &created.record.id).await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        let kept = store
            .changes(Some(Default::default()), 100_000)
            .await
            .unwrap()
            .changes
            .len();
        // 200 changes a round; pruning keeps well under one round of them.
        assert!(kept < 200, "round {round}: {kept} changes kept");
    }
    let listed = store.list(&ListKeys::new().limit(1000)).await.unwrap();
    assert_eq!(
        listed.records.len(),
        500,
        "keys themselves are never pruned"
    );
}

#[tokio::test]
async fn an_instance_cut_off_while_changes_were_pruned_misses_no_revocation() {
    let shared = Arc::new(MemoryStore::new());
    // `here` prunes; `there` is cut off from the change feed for a while.
    let here = ApiKeys::builder(Arc::clone(&shared))
        .change_log_retention(Duration::from_millis(50))
        .change_poll_interval(Duration::from_millis(20))
        .build()
        .unwrap();
    let cut_off = Arc::new(ScriptedStore::wrap(Arc::clone(&shared)));
    let there = ApiKeys::builder(Arc::clone(&cut_off))
        .change_poll_interval(Duration::from_millis(20))
        .change_log_retention(Duration::from_secs(3600))
        .build()
        .unwrap();
    let key = here.create(NewKey::new("acct", "laptop")).await.unwrap();
    let secret = key.secret.expose_secret().to_owned();
    // `there` has read the log and caches the key.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(there.authenticate(&secret).await.is_ok());
    cut_off.set_failing_method(StoreMethod::Changes, true);
    here.revoke(&OwnerId::new("acct"), &key.record.id)
        .await
        .unwrap();
    // Later changes, then the revocation's change is pruned.
    for _ in 0..5 {
        here.create(NewKey::new("acct", "later")).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let tail = shared.changes(None, 0).await.unwrap().tail;
    assert!(
        tail.position() > 1,
        "the revocation's change is gone: {tail:?}"
    );
    // Still cached there while cut off...
    assert!(there.authenticate(&secret).await.is_ok());
    // ...and refused once it reads the log again and sees the gap.
    cut_off.set_failing_method(StoreMethod::Changes, false);
    tokio::time::timeout(HANG, async {
        while there.authenticate(&secret).await.is_ok() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the revoked key is refused after the gap");
}
