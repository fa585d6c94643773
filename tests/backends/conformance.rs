//! One conformance suite for every [`KeyStore`]: each case drives a store
//! through the trait and checks what it holds afterwards.
//!
//! A test file runs the whole suite against a backend with
//! `conformance_suite!(setup)`, where `setup().await` returns
//! `Option<Setup>` (`None` skips, as the PostgreSQL tests do without a
//! server).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use futures_util::future::BoxFuture;
use serde_json::json;
use tower_api_keys::key::KeyHash;
use tower_api_keys::record::{KeyId, KeyRecord, KeyStatus, OwnerId, Scopes};
use tower_api_keys::store::{
    ChangeCursor, ChangeSignal, KeyChange, KeyCursor, KeyUpdate, LastUsed, ListKeys, StoreError,
};
use tower_api_keys::{ApiKeys, KeyStore, NewKey};
use uuid::Uuid;

/// Two handles on one backend's data.
#[derive(Clone)]
pub struct Harness {
    /// The store under test.
    pub store: Arc<dyn KeyStore>,
    /// A second, independent handle on the same data: another pool, another
    /// connection (the same object for the in-memory store).
    pub other: Arc<dyn KeyStore>,
    /// Whether `store`'s change signal fires for changes made through
    /// `other` (PostgreSQL's NOTIFY does; SQLite's caches poll instead).
    pub pushes_across_handles: bool,
    /// Everything the backend holds, as bytes: its files, its tables as
    /// text, its memory as `Debug` prints it.
    pub dump: Dump,
}

/// Reads everything a backend holds (see [`Harness::dump`]).
pub type Dump = Arc<dyn Fn() -> BoxFuture<'static, Vec<u8>> + Send + Sync>;

/// A harness, and what to do once the case is over (drop a schema, close
/// pools).
pub struct Setup {
    pub harness: Harness,
    pub cleanup: BoxFuture<'static, ()>,
}

impl Setup {
    /// Runs `case`, then the cleanup, even when the case panicked.
    pub async fn run<F, Fut>(self, case: F)
    where
        F: FnOnce(Harness) -> Fut,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        super::run_then(case(self.harness), self.cleanup).await;
    }
}

/// One `#[tokio::test]` per case, against the backend `setup` builds.
#[allow(unused_macros)]
macro_rules! conformance_suite {
    ($setup:path) => {
        conformance_suite!(@cases $setup;
            insert_then_find_by_hash_id_and_prefix,
            insert_refuses_a_duplicate_id_or_hash,
            every_field_round_trips,
            times_keep_microseconds_and_drop_finer_digits,
            list_pages_newest_first_and_filters_exactly,
            owners_cannot_touch_each_others_keys,
            revoke_keeps_the_first_revocation,
            concurrent_revokes_log_one_change,
            expire_only_ever_brings_expiry_earlier,
            last_used_moves_forward_only,
            last_used_takes_any_batch_size_in_one_call,
            concurrent_last_used_batches_keep_the_latest,
            change_log_records_every_change_in_order,
            pruning_keeps_the_newest_change_and_moves_the_tail,
            rename_changes_only_the_owners_key_and_logs_one_change,
            revocation_feed_reaches_another_handle,
            the_backend_never_holds_a_plaintext_key
        );
    };
    (@cases $setup:path; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let Some(setup) = $setup().await else {return };
                setup.run(crate::backends::conformance::$case).await;
            }
        )*
    };
}

// ------------------------------------------------------------------ fixtures

static NEXT: AtomicI64 = AtomicI64::new(0);

/// 2030-01-01T00:00:00.123457Z plus `seconds`: whole microseconds, as every
/// store keeps them.
pub fn at(seconds: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(1_893_456_000_000_000 + seconds * 1_000_000 + 123_457)
        .expect("in range")
}

/// A fresh active key of `owner`, created at a distinct time.
pub fn record(owner: &str) -> KeyRecord {
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let id = KeyId::new();
    let mut hash = [0u8; 32];
    hash[..16].copy_from_slice(id.as_uuid().as_bytes());
    hash[16..].copy_from_slice(Uuid::now_v7().as_bytes());
    let simple = id.as_uuid().simple().to_string();
    KeyRecord {
        id,
        name: format!("key {n}"),
        owner: owner.into(),
        display_prefix: format!("bmc_{}", &simple[24..]),
        hash: KeyHash::from_bytes(hash),
        created_at: at(n),
        expires_at: None,
        last_used_at: None,
        revoked_at: None,
        revoked_reason: None,
        scopes: Scopes::All,
        metadata: serde_json::Value::Null,
        rate_limit: None,
    }
}

async fn inserted(store: &dyn KeyStore, owner: &str) -> KeyRecord {
    let record = record(owner);
    store.insert(&record).await.expect("insert");
    record
}

async fn stored(store: &dyn KeyStore, id: &KeyId) -> KeyRecord {
    store
        .find_by_id(id)
        .await
        .expect("find_by_id")
        .expect("the key is stored")
}

async fn changes(store: &dyn KeyStore, since: ChangeCursor) -> Vec<KeyChange> {
    store
        .changes(Some(since), 10_000)
        .await
        .expect("changes")
        .changes
}

/// The change log's head, as a new follower reads it.
async fn head(store: &dyn KeyStore) -> ChangeCursor {
    let batch = store.changes(None, 10_000).await.expect("changes");
    assert!(batch.changes.is_empty(), "no cursor, no changes: {batch:?}");
    batch.head
}

/// Every key `query` lists, page after page.
async fn listed(store: &dyn KeyStore, query: ListKeys) -> Vec<KeyRecord> {
    let mut all = Vec::new();
    let mut after = None;
    loop {
        let page = store.list(&query.clone().after(after)).await.expect("list");
        all.extend(page.records);
        match page.next {
            Some(next) => after = Some(next),
            None => return all,
        }
    }
}

/// Every key of `owner`, newest first.
async fn owned(store: &dyn KeyStore, owner: &OwnerId) -> Vec<KeyRecord> {
    listed(store, ListKeys::new().owner(owner.clone()).limit(2)).await
}

/// One page of the keys whose display prefix starts with `prefix`.
async fn prefixed(store: &dyn KeyStore, prefix: &str, limit: usize) -> Vec<KeyRecord> {
    store
        .list(&ListKeys::new().display_prefix(prefix).limit(limit))
        .await
        .expect("list")
        .records
}

/// The updates the cases make, each through [`KeyStore::update`].
async fn revoke(
    store: &dyn KeyStore,
    owner: &OwnerId,
    id: &KeyId,
    at: DateTime<Utc>,
    reason: Option<&str>,
) -> Result<Option<KeyRecord>, StoreError> {
    let reason = reason.map(str::to_owned);
    store
        .update(owner, id, &KeyUpdate::Revoke { at, reason })
        .await
}

async fn expire(
    store: &dyn KeyStore,
    owner: &OwnerId,
    id: &KeyId,
    at: DateTime<Utc>,
) -> Result<Option<KeyRecord>, StoreError> {
    store.update(owner, id, &KeyUpdate::ExpireBy { at }).await
}

async fn rename(
    store: &dyn KeyStore,
    owner: &OwnerId,
    id: &KeyId,
    name: &str,
) -> Result<Option<KeyRecord>, StoreError> {
    let name = name.to_owned();
    store.update(owner, id, &KeyUpdate::Rename { name }).await
}

fn owner(name: &str) -> OwnerId {
    OwnerId::new(name)
}

// --------------------------------------------------------------------- cases

pub async fn insert_then_find_by_hash_id_and_prefix(h: Harness) {
    let store = &*h.store;
    let a = inserted(store, "acct_a").await;
    let b = inserted(store, "acct_b").await;

    assert_eq!(store.find_by_hash(&a.hash).await.unwrap(), Some(a.clone()));
    assert_eq!(store.find_by_id(&b.id).await.unwrap(), Some(b.clone()));
    // The other handle reads the same data.
    assert_eq!(
        h.other.find_by_hash(&b.hash).await.unwrap(),
        Some(b.clone())
    );

    let unknown = record("acct_a");
    assert_eq!(store.find_by_hash(&unknown.hash).await.unwrap(), None);
    assert_eq!(store.find_by_id(&unknown.id).await.unwrap(), None);

    let found = prefixed(store, &a.display_prefix, 10).await;
    assert_eq!(found, vec![a.clone()]);
    // A prefix of the prefix finds both, newest first, up to the limit.
    let both = prefixed(store, "bmc_", 10).await;
    let expected = vec![b.clone(), a.clone()];
    assert_eq!(both, expected);
    assert_eq!(prefixed(store, "bmc_", 1).await, vec![expected[0].clone()]);
    // `_` and `%` are plain characters, and case matters.
    assert!(prefixed(store, "bmc%", 10).await.is_empty());
    assert!(prefixed(store, "b_c_", 10).await.is_empty());
    assert!(prefixed(store, "BMC_", 10).await.is_empty());
}

pub async fn insert_refuses_a_duplicate_id_or_hash(h: Harness) {
    let store = &*h.store;
    let cursor = head(store).await;
    let original = inserted(store, "acct").await;

    let mut same_id = record("acct");
    same_id.id = original.id;
    assert!(matches!(
        store.insert(&same_id).await,
        Err(StoreError::Conflict)
    ));

    let mut same_hash = record("acct");
    same_hash.hash = original.hash;
    assert!(matches!(
        h.other.insert(&same_hash).await,
        Err(StoreError::Conflict)
    ));

    // Nothing of the refused records was kept, nor logged.
    assert_eq!(stored(store, &original.id).await, original);
    assert_eq!(store.find_by_id(&same_hash.id).await.unwrap(), None);
    assert_eq!(store.find_by_hash(&same_id.hash).await.unwrap(), None);
    assert_eq!(owned(store, &owner("acct")).await, vec![original.clone()]);
    let logged = changes(store, cursor).await;
    assert_eq!(logged.len(), 1, "{logged:?}");
    assert_eq!(logged[0].id, original.id);
}

pub async fn every_field_round_trips(h: Harness) {
    let store = &*h.store;
    let mut full = record("acct_ü 🔑");
    full.name = "déploiement \"prod\" 🚀".into();
    full.expires_at = Some(at(86_400));
    full.last_used_at = Some(at(10));
    full.revoked_at = Some(at(20));
    full.revoked_reason = Some("leaked in a log; rotated".into());
    full.scopes = Scopes::only(["projects:read", "projects:write"]);
    full.metadata = json!({"plan": "pro", "limits": {"rps": 50, "burst": 1.5}, "tags": ["a", "b"], "none": null});
    full.rate_limit = Some(tower_api_keys::limit::RateLimit::new(
        250,
        std::time::Duration::from_millis(1500),
    ));
    store.insert(&full).await.unwrap();

    let mut bare = record("acct_ü 🔑");
    bare.scopes = Scopes::only(Vec::<String>::new()); // no scope at all, unlike `All`
    bare.metadata = json!("just a string");
    bare.created_at = at(-2_000_000_000); // before 1970
    store.insert(&bare).await.unwrap();

    let plain = inserted(store, "acct_ü 🔑").await; // All, null metadata, no times

    for expected in [&full, &bare, &plain] {
        assert_eq!(&stored(store, &expected.id).await, expected);
        assert_eq!(&stored(&*h.other, &expected.id).await, expected);
    }
    assert_eq!(
        stored(store, &bare.id).await.scopes,
        Scopes::Only(Default::default())
    );
    assert_eq!(stored(store, &plain.id).await.scopes, Scopes::All);
    assert_eq!(stored(store, &plain.id).await.rate_limit, None);
    assert_eq!(
        stored(store, &full.id).await.status_at(at(0)),
        KeyStatus::Revoked
    );
}

pub async fn times_keep_microseconds_and_drop_finer_digits(h: Harness) {
    let store = &*h.store;
    let mut record = record("acct");
    // Now, with a nanosecond digit that no store keeps.
    let micros = Utc::now().timestamp_micros();
    let with_nanos = DateTime::from_timestamp_nanos(micros * 1000 + 999);
    record.created_at = with_nanos;
    record.expires_at = Some(with_nanos + TimeDelta::hours(1));
    store.insert(&record).await.unwrap();
    let back = stored(store, &record.id).await;
    for (original, kept) in [
        (record.created_at, back.created_at),
        (record.expires_at.unwrap(), back.expires_at.unwrap()),
    ] {
        assert_eq!(kept.timestamp_micros(), original.timestamp_micros());
        assert!(kept <= original, "{kept} was rounded up from {original}");
    }
}

pub async fn list_pages_newest_first_and_filters_exactly(h: Harness) {
    let store = &*h.store;
    let mut mine = Vec::new();
    for _ in 0..5 {
        mine.push(inserted(store, "acct_a").await);
    }
    let foreign = inserted(&*h.other, "acct_b").await;
    // Creation times do not decide the order: ids (UUIDv7) do.
    let mut early_id_late_time = record("acct_a");
    early_id_late_time.created_at = at(-1000);
    store.insert(&early_id_late_time).await.unwrap();
    mine.push(early_id_late_time);
    let newest_first: Vec<KeyRecord> = mine.iter().rev().cloned().collect();

    for handle in [&*h.store, &*h.other] {
        let query = ListKeys::new().owner("acct_a").limit(4);
        let first = handle.list(&query).await.unwrap();
        assert_eq!(first.records, newest_first[..4]);
        let next = first.next.expect("a second page");
        // The cursor's text form is what an API hands out and reads back.
        let reread: KeyCursor = next.to_string().parse().unwrap();
        assert_eq!(reread, next);
        let second = handle
            .list(&query.clone().after(Some(reread)))
            .await
            .unwrap();
        assert_eq!(second.records, newest_first[4..]);
        assert_eq!(second.next, None);
    }
    // A page that holds exactly the rest says there is no more.
    let exact = store
        .list(&ListKeys::new().owner("acct_a").limit(6))
        .await
        .unwrap();
    assert_eq!(exact.records, newest_first);
    assert_eq!(exact.next, None);
    assert_eq!(owned(store, &owner("acct_a")).await, newest_first);
    // Every owner's keys, newest first.
    let mut everyone = vec![mine[5].clone(), foreign.clone()];
    everyone.extend(mine[..5].iter().rev().cloned());
    assert_eq!(listed(store, ListKeys::new().limit(3)).await, everyone);
    assert_eq!(owned(store, &owner("acct_b")).await, vec![foreign]);
    assert!(owned(store, &owner("acct_c")).await.is_empty());
    // Owners are compared exactly.
    assert!(owned(store, &owner("ACCT_A")).await.is_empty());
    assert!(owned(store, &owner("acct_")).await.is_empty());
    // Owner and display prefix together.
    let one = &mine[2];
    assert_eq!(
        listed(
            store,
            ListKeys::new()
                .owner("acct_a")
                .display_prefix(one.display_prefix.clone())
        )
        .await,
        vec![one.clone()]
    );
    assert!(
        listed(
            store,
            ListKeys::new()
                .owner("acct_b")
                .display_prefix(one.display_prefix.clone())
        )
        .await
        .is_empty()
    );
}

pub async fn owners_cannot_touch_each_others_keys(h: Harness) {
    let store = &*h.store;
    let mine = inserted(store, "acct_a").await;
    let cursor = head(store).await;
    let intruder = owner("acct_b");

    assert_eq!(
        revoke(store, &intruder, &mine.id, at(1), Some("nope"))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        expire(store, &intruder, &mine.id, at(1)).await.unwrap(),
        None
    );
    assert!(owned(store, &intruder).await.is_empty());

    assert_eq!(
        stored(store, &mine.id).await,
        mine,
        "the key must be untouched"
    );
    assert!(
        changes(store, cursor).await.is_empty(),
        "nothing may be logged"
    );
    assert_eq!(
        revoke(store, &owner("acct_a"), &KeyId::new(), at(1), None)
            .await
            .unwrap(),
        None
    );
}

pub async fn revoke_keeps_the_first_revocation(h: Harness) {
    let store = &*h.store;
    let key = inserted(store, "acct").await;
    let bystander = inserted(store, "acct").await;
    let cursor = head(store).await;
    let acct = owner("acct");

    let first = revoke(store, &acct, &key.id, at(50), Some("first"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.revoked_at, Some(at(50)));
    assert_eq!(first.revoked_reason.as_deref(), Some("first"));
    assert_eq!(first.status_at(at(0)), KeyStatus::Revoked);
    assert_eq!(stored(store, &key.id).await, first);

    let second = revoke(&*h.other, &acct, &key.id, at(60), Some("second"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(second, first, "revoking twice changes nothing");
    let third = revoke(store, &acct, &key.id, at(70), None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(third, first);
    assert_eq!(stored(store, &key.id).await, first);

    let logged = changes(store, cursor).await;
    assert_eq!(logged.len(), 1, "one revocation, one change: {logged:?}");
    assert_eq!((logged[0].id, logged[0].hash), (key.id, key.hash));
    assert_eq!(stored(store, &bystander.id).await, bystander);
}

pub async fn concurrent_revokes_log_one_change(h: Harness) {
    let key = inserted(&*h.store, "acct").await;
    let cursor = head(&*h.store).await;
    let mut tasks = Vec::new();
    for i in 0..16_i64 {
        let store = if i % 2 == 0 {
            Arc::clone(&h.store)
        } else {
            Arc::clone(&h.other)
        };
        let id = key.id;
        tasks.push(tokio::spawn(async move {
            let reason = format!("revoker {i}");
            revoke(&*store, &owner("acct"), &id, at(100 + i), Some(&reason))
                .await
                .expect("revoke")
                .expect("the key exists")
        }));
    }
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.unwrap());
    }
    let kept = stored(&*h.store, &key.id).await;
    assert!(kept.revoked_at.is_some());
    for result in &results {
        assert_eq!(
            result, &kept,
            "every revoker sees the one revocation that stands"
        );
    }
    assert_eq!(changes(&*h.store, cursor).await.len(), 1);
}

pub async fn expire_only_ever_brings_expiry_earlier(h: Harness) {
    let store = &*h.store;
    let key = inserted(store, "acct").await;
    let cursor = head(store).await;
    let acct = owner("acct");

    let set = expire(store, &acct, &key.id, at(3600))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(set.expires_at, Some(at(3600)));
    assert_eq!(stored(store, &key.id).await.expires_at, Some(at(3600)));

    let later = expire(&*h.other, &acct, &key.id, at(7200))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        later.expires_at,
        Some(at(3600)),
        "a later expiry is ignored"
    );
    let same = expire(store, &acct, &key.id, at(3600))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(same.expires_at, Some(at(3600)));
    assert_eq!(changes(store, cursor).await.len(), 1);

    let earlier = expire(store, &acct, &key.id, at(1800))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(earlier.expires_at, Some(at(1800)));
    assert_eq!(stored(store, &key.id).await.expires_at, Some(at(1800)));
    assert_eq!(changes(store, cursor).await.len(), 2);

    let back = stored(store, &key.id).await;
    assert_eq!(back.status_at(at(1799)), KeyStatus::Active);
    assert_eq!(back.status_at(at(1800)), KeyStatus::Expired);
    assert_eq!(
        expire(store, &acct, &KeyId::new(), at(1)).await.unwrap(),
        None
    );
}

pub async fn last_used_moves_forward_only(h: Harness) {
    let store = &*h.store;
    let a = inserted(store, "acct").await;
    let b = inserted(store, "acct").await;
    let untouched = inserted(store, "acct").await;
    let cursor = head(store).await;
    let used = |id: KeyId, at: DateTime<Utc>| LastUsed { id, at };

    store.record_last_used(&[]).await.unwrap();
    store
        .record_last_used(&[used(a.id, at(20)), used(b.id, at(5))])
        .await
        .unwrap();
    assert_eq!(stored(store, &a.id).await.last_used_at, Some(at(20)));
    assert_eq!(stored(store, &b.id).await.last_used_at, Some(at(5)));

    // A late batch never moves a time back.
    h.other
        .record_last_used(&[used(a.id, at(10)), used(b.id, at(6))])
        .await
        .unwrap();
    assert_eq!(stored(store, &a.id).await.last_used_at, Some(at(20)));
    assert_eq!(stored(store, &b.id).await.last_used_at, Some(at(6)));

    // A key twice in one batch: the latest wins, whatever the order.
    store
        .record_last_used(&[
            used(a.id, at(40)),
            used(a.id, at(30)),
            used(KeyId::new(), at(99)),
        ])
        .await
        .unwrap();
    assert_eq!(stored(store, &a.id).await.last_used_at, Some(at(40)));
    store.record_last_used(&[used(a.id, at(40))]).await.unwrap();
    assert_eq!(stored(store, &a.id).await.last_used_at, Some(at(40)));

    assert_eq!(stored(store, &untouched.id).await, untouched);
    // Only the last-used time changed, and that is not a change caches follow.
    let mut expected = a.clone();
    expected.last_used_at = Some(at(40));
    assert_eq!(stored(store, &a.id).await, expected);
    assert!(changes(store, cursor).await.is_empty());
}

pub async fn last_used_takes_any_batch_size_in_one_call(h: Harness) {
    let store = &*h.store;
    let real: Vec<KeyRecord> = {
        let mut v = Vec::new();
        for _ in 0..3 {
            v.push(inserted(store, "acct").await);
        }
        v
    };
    // 70,000 entries: more than SQLite's (32,766) or PostgreSQL's (65,535)
    // bind-parameter limit would allow one parameter per value.
    let mut batch: Vec<LastUsed> = (0..70_000)
        .map(|i| LastUsed {
            id: KeyId::new(),
            at: at(i),
        })
        .collect();
    for (i, r) in real.iter().enumerate() {
        batch.insert(
            i * 30_000,
            LastUsed {
                id: r.id,
                at: at(1000 + i as i64),
            },
        );
    }
    store
        .record_last_used(&batch)
        .await
        .expect("one call for the whole batch");
    for (i, r) in real.iter().enumerate() {
        assert_eq!(
            stored(store, &r.id).await.last_used_at,
            Some(at(1000 + i as i64))
        );
    }
    assert_eq!(owned(store, &owner("acct")).await.len(), 3);
}

pub async fn concurrent_last_used_batches_keep_the_latest(h: Harness) {
    let mut keys = Vec::new();
    for _ in 0..6 {
        keys.push(inserted(&*h.store, "acct").await.id);
    }
    let keys = Arc::new(keys);
    let mut tasks = Vec::new();
    let mut latest: HashMap<KeyId, DateTime<Utc>> = HashMap::new();
    for writer in 0..8_i64 {
        // Each writer sends 15 batches over every key, in its own order, with
        // times that go up and down.
        let mut batches = Vec::new();
        for round in 0..15_i64 {
            let mut batch = Vec::new();
            for (k, id) in keys.iter().enumerate() {
                let t = at((writer * 7 + round * 13 + k as i64 * 5) % 97);
                let entry = latest.entry(*id).or_insert(t);
                *entry = (*entry).max(t);
                batch.push(LastUsed { id: *id, at: t });
            }
            if (writer + round) % 2 == 1 {
                batch.reverse();
            }
            batches.push(batch);
        }
        let store = if writer % 2 == 0 {
            Arc::clone(&h.store)
        } else {
            Arc::clone(&h.other)
        };
        tasks.push(tokio::spawn(async move {
            for batch in batches {
                store
                    .record_last_used(&batch)
                    .await
                    .expect("a batch is written, never deadlocked");
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    for id in keys.iter() {
        assert_eq!(
            stored(&*h.store, id).await.last_used_at,
            Some(latest[id]),
            "key {id}"
        );
    }
}

pub async fn change_log_records_every_change_in_order(h: Harness) {
    let store = &*h.store;
    let start = head(store).await;
    assert!(changes(store, start).await.is_empty());
    let acct = owner("acct");

    let a = inserted(store, "acct").await;
    let b = inserted(&*h.other, "acct").await;
    revoke(store, &acct, &a.id, at(1), None).await.unwrap();
    revoke(store, &acct, &a.id, at(2), None).await.unwrap(); // no change
    expire(store, &acct, &b.id, at(100)).await.unwrap();
    expire(store, &acct, &b.id, at(200)).await.unwrap(); // no change
    store
        .record_last_used(&[LastUsed {
            id: b.id,
            at: at(3),
        }])
        .await
        .unwrap(); // not logged

    let logged = changes(store, start).await;
    let seen: Vec<(KeyId, KeyHash)> = logged.iter().map(|c| (c.id, c.hash)).collect();
    assert_eq!(
        seen,
        vec![
            (a.id, a.hash),
            (b.id, b.hash),
            (a.id, a.hash),
            (b.id, b.hash)
        ]
    );
    assert!(
        logged.windows(2).all(|w| w[0].cursor < w[1].cursor),
        "{logged:?}"
    );
    assert!(logged[0].cursor > start);
    let newest = head(store).await;
    assert_eq!(newest, logged[3].cursor);
    assert_eq!(head(&*h.other).await, newest);

    // Pages: a limit, then on from the last cursor read; every read carries
    // the head.
    let first = store.changes(Some(start), 3).await.unwrap();
    assert_eq!(first.changes, logged[..3].to_vec());
    assert_eq!(first.head, newest);
    let rest = store
        .changes(Some(first.changes[2].cursor), 3)
        .await
        .unwrap();
    assert_eq!(rest.changes, logged[3..].to_vec());
    assert_eq!(rest.head, newest);
    let none = store.changes(Some(newest), 10).await.unwrap();
    assert!(none.changes.is_empty());
    assert_eq!(none.head, newest);
}

pub async fn pruning_keeps_the_newest_change_and_moves_the_tail(h: Harness) {
    let store = &*h.store;
    let start = head(store).await;
    for _ in 0..5 {
        inserted(store, "acct").await;
    }
    let all = changes(store, start).await;
    assert_eq!(all.len(), 5);
    // Nothing is older than a time long past.
    let long_ago = Utc::now() - TimeDelta::days(365);
    assert_eq!(store.prune_changes(long_ago, 100).await.unwrap(), 0);
    // A bounded batch, oldest first.
    let later = Utc::now() + TimeDelta::days(1);
    assert_eq!(store.prune_changes(later, 2).await.unwrap(), 2);
    let batch = store.changes(Some(start), 100).await.unwrap();
    assert_eq!(batch.tail, all[1].cursor, "{batch:?}");
    assert_eq!(batch.changes, all[2..].to_vec());
    // Everything else but the newest, through the other handle too.
    let pruned = h.other.prune_changes(later, 100).await.unwrap();
    assert_eq!(pruned, 2);
    let batch = store.changes(Some(start), 100).await.unwrap();
    assert_eq!(batch.changes, all[4..].to_vec());
    assert_eq!(batch.head, all[4].cursor, "the head stays");
    assert_eq!(batch.tail, all[3].cursor);
    assert!(
        start < batch.tail,
        "a follower at the old start sees the gap"
    );
    // New changes continue after the head: positions are never reused.
    let next = inserted(store, "acct").await;
    let after = changes(store, all[4].cursor).await;
    assert_eq!(after.len(), 1);
    assert_eq!(after[0].id, next.id);
    assert!(after[0].cursor > all[4].cursor);
}

pub async fn rename_changes_only_the_owners_key_and_logs_one_change(h: Harness) {
    let store = &*h.store;
    let key = inserted(store, "acct").await;
    let bystander = inserted(store, "acct").await;
    let start = head(store).await;
    let renamed = rename(store, &owner("acct"), &key.id, "renamed ✓")
        .await
        .unwrap()
        .expect("the owner's key");
    assert_eq!(renamed.name, "renamed ✓");
    assert_eq!(renamed.id, key.id);
    assert_eq!(stored(&*h.other, &key.id).await, renamed);
    assert_eq!(
        rename(store, &owner("intruder"), &key.id, "x")
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        rename(store, &owner("acct"), &KeyId::new(), "x")
            .await
            .unwrap(),
        None
    );
    assert_eq!(stored(store, &key.id).await.name, "renamed ✓");
    assert_eq!(stored(store, &bystander.id).await, bystander);
    let logged = changes(store, start).await;
    assert_eq!(logged.len(), 1, "{logged:?}");
    assert_eq!((logged[0].id, logged[0].hash), (key.id, key.hash));
    // The same name again changes nothing and logs nothing.
    let again = head(store).await;
    rename(store, &owner("acct"), &key.id, "renamed ✓")
        .await
        .unwrap();
    assert!(changes(store, again).await.is_empty());
}

pub async fn revocation_feed_reaches_another_handle(h: Harness) {
    let acct = owner("acct");
    let key = inserted(&*h.other, "acct").await;
    let mut signal = h.store.change_signal();

    if h.pushes_across_handles {
        let rx = signal.as_mut().expect("this backend pushes changes");
        // Wait until the store listens: a change made elsewhere must wake it.
        let mut listening = false;
        for _ in 0..20 {
            inserted(&*h.other, "acct_probe").await;
            if tokio::time::timeout(Duration::from_millis(500), rx.changed())
                .await
                .is_ok()
            {
                listening = true;
                break;
            }
        }
        assert!(listening, "the change signal never fired");
        tokio::time::sleep(Duration::from_millis(200)).await;
        // A new follower's end has seen nothing yet.
        signal = h.store.change_signal();
    }

    let cursor = head(&*h.store).await;
    revoke(&*h.other, &acct, &key.id, at(1), Some("feed"))
        .await
        .unwrap()
        .unwrap();

    if h.pushes_across_handles {
        let rx = signal.as_mut().expect("this backend pushes changes");
        wait_changed(rx, Duration::from_secs(1)).await;
    }
    // Within a second the store's own change log shows the revocation.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
    loop {
        let logged = changes(&*h.store, cursor).await;
        if logged.iter().any(|c| c.id == key.id && c.hash == key.hash) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the revocation is not in the log"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(stored(&*h.store, &key.id).await.revoked_at.is_some());
}

pub async fn the_backend_never_holds_a_plaintext_key(h: Harness) {
    let keys = ApiKeys::builder(Arc::clone(&h.store)).build().unwrap();
    let owner = owner("acct");
    let mut created = Vec::new();
    for i in 0..3 {
        let new = NewKey::new(owner.clone(), format!("key {i}")).metadata(json!({"n": i}));
        created.push(keys.create(new).await.unwrap());
    }
    keys.revoke(&owner, &created[0].record.id).await.unwrap();
    keys.rename(&owner, &created[1].record.id, "renamed")
        .await
        .unwrap();
    keys.shutdown().await;
    drop(keys);

    let dump = (h.dump)().await;
    for key in &created {
        let prefix = key.record.display_prefix.as_bytes();
        assert!(
            dump.windows(prefix.len()).any(|w| w == prefix),
            "the dump holds each key's record (its display prefix)"
        );
        let secret = &key.secret.expose_secret().as_bytes()[4..];
        assert!(
            !dump.windows(secret.len()).any(|w| w == secret),
            "a key's secret part is in what the backend holds"
        );
    }
}

async fn wait_changed(rx: &mut ChangeSignal, limit: Duration) {
    let alive = tokio::time::timeout(limit, rx.changed())
        .await
        .expect("the change signal fired within the limit");
    assert!(alive, "the signal is alive");
}
