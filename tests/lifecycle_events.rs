//! Key lifecycle events: each management call, policy and first use emits
//! one typed event naming the key and who acted, never its secret.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::{Router, routing::get};
use tower_api_keys::event::{Actor, KeyEvent, KeyEventKind, NoticedBy, SystemCause};
use tower_api_keys::record::{KeyStatus, OwnerId};
use tower_api_keys::{ApiKeys, ApiKeysBuilder, MemoryStore, NewKey};

/// A builder whose events land in the returned list.
fn recording(store: Arc<MemoryStore>) -> (ApiKeysBuilder, Arc<Mutex<Vec<KeyEvent>>>) {
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&events);
    let builder = ApiKeys::builder(store)
        .last_used_interval(Duration::from_millis(20))
        .change_poll_interval(Duration::from_millis(20))
        .on_key_event(move |event| sink.lock().unwrap().push(event.clone()));
    (builder, events)
}

fn kinds(events: &Mutex<Vec<KeyEvent>>) -> Vec<KeyEventKind> {
    events
        .lock()
        .unwrap()
        .iter()
        .map(|e| e.kind.clone())
        .collect()
}

async fn wait_for(events: &Mutex<Vec<KeyEvent>>, what: impl Fn(&KeyEventKind) -> bool) {
    for _ in 0..250 {
        if events.lock().unwrap().iter().any(|e| what(&e.kind)) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("no such event in {:?}", kinds(events));
}

async fn serve(keys: &ApiKeys) -> String {
    let app = Router::new()
        .route("/", get(|| async { "ok" }))
        .layer(keys.layer());
    format!("http://{}/", test_support::serve(app).await)
}

#[tokio::test]
async fn management_calls_emit_one_event_each_with_the_actor() {
    let (builder, events) = recording(Arc::new(MemoryStore::new()));
    let keys = builder.build().unwrap();
    let owner = OwnerId::new("acct_1");
    let old = keys.create(NewKey::new("acct_1", "ci")).await.unwrap();
    let new = keys
        .roll(&owner, &old.record.id, chrono::Duration::hours(1))
        .await
        .unwrap();
    keys.acting_as(Actor::Owner(owner.clone()))
        .revoke(&owner, &new.record.id, Some("lost laptop"))
        .await
        .unwrap();
    // Revoking again changes nothing and announces nothing.
    keys.revoke(&owner, &new.record.id).await.unwrap();
    keys.acting_as(Actor::Key(new.record.id))
        .revoke(&owner, &old.record.id, None)
        .await
        .unwrap();

    let seen = events.lock().unwrap().clone();
    let by_owner = Actor::Owner(owner.clone());
    let summary: Vec<_> = seen.iter().map(|e| (e.key_id, e.kind.clone())).collect();
    let rolled_until = seen
        .iter()
        .find_map(|e| match e.kind {
            KeyEventKind::Rolled { expires_at, .. } => Some(expires_at),
            _ => None,
        })
        .expect("a rolled event");
    assert_eq!(
        summary,
        [
            (
                old.record.id,
                KeyEventKind::Created {
                    actor: by_owner.clone()
                }
            ),
            (
                new.record.id,
                KeyEventKind::Created {
                    actor: by_owner.clone()
                }
            ),
            (
                old.record.id,
                KeyEventKind::Rolled {
                    successor: new.record.id,
                    expires_at: rolled_until,
                    actor: by_owner.clone(),
                }
            ),
            (
                new.record.id,
                KeyEventKind::Revoked {
                    reason: Some("lost laptop".to_owned()),
                    actor: by_owner.clone(),
                }
            ),
            (
                old.record.id,
                KeyEventKind::Revoked {
                    reason: None,
                    actor: Actor::Key(new.record.id),
                }
            ),
        ]
    );
    for event in &seen {
        assert_eq!(event.owner, owner);
        let line = serde_json::to_string(event).unwrap();
        for secret in [&old.secret, &new.secret] {
            assert!(!line.contains(secret.expose_secret()), "{line}");
        }
        assert!(!line.contains(&old.record.hash.to_hex()), "{line}");
    }
    keys.shutdown().await;
}

#[tokio::test]
async fn an_expiry_in_the_past_is_announced_by_the_write() {
    let (builder, events) = recording(Arc::new(MemoryStore::new()));
    let keys = builder.build().unwrap();
    let created = keys.create(NewKey::new("acct_1", "ci")).await.unwrap();
    let past = chrono::Utc::now() - chrono::Duration::seconds(1);
    keys.expire(&"acct_1".into(), &created.record.id, past)
        .await
        .unwrap();
    assert!(matches!(
        kinds(&events).last(),
        Some(KeyEventKind::Expired {
            noticed_by: NoticedBy::Write,
            ..
        })
    ));
    keys.shutdown().await;
}

#[tokio::test]
async fn the_first_use_and_the_first_expired_refusal_are_announced_once() {
    let (builder, events) = recording(Arc::new(MemoryStore::new()));
    let keys = builder.build().unwrap();
    let soon = chrono::Utc::now() + chrono::Duration::milliseconds(600);
    let created = keys
        .create(NewKey::new("acct_1", "ci").expires_at(soon))
        .await
        .unwrap();
    let url = serve(&keys).await;
    let client = test_support::client();
    let get = || {
        client
            .get(&url)
            .bearer_auth(created.secret.expose_secret())
            .send()
    };
    assert_eq!(get().await.unwrap().status(), 200);
    wait_for(&events, |k| *k == KeyEventKind::FirstUse).await;
    assert_eq!(get().await.unwrap().status(), 200);

    tokio::time::sleep(Duration::from_millis(700)).await;
    for _ in 0..3 {
        assert_eq!(get().await.unwrap().status(), 401);
    }
    let seen = kinds(&events);
    let count = |what: fn(&KeyEventKind) -> bool| seen.iter().filter(|k| what(k)).count();
    assert_eq!(count(|k| *k == KeyEventKind::FirstUse), 1, "{seen:?}");
    assert_eq!(
        count(|k| matches!(
            k,
            KeyEventKind::Expired {
                noticed_by: NoticedBy::Refusal,
                ..
            }
        )),
        1,
        "{seen:?}"
    );
    keys.shutdown().await;
}

#[tokio::test]
async fn a_key_sent_in_a_url_is_announced_exposed_and_revoked_by_the_policy() {
    let (builder, events) = recording(Arc::new(MemoryStore::new()));
    let keys = builder.revoke_keys_exposed_in_url(true).build().unwrap();
    let created = keys.create(NewKey::new("acct_1", "ci")).await.unwrap();
    let url = serve(&keys).await;
    let response = test_support::client()
        .get(format!("{url}?api_key={}", created.secret.expose_secret()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let seen = kinds(&events);
    assert_eq!(
        seen[1..],
        [
            KeyEventKind::ExposedInUrl,
            KeyEventKind::Revoked {
                reason: Some("exposed in URL".to_owned()),
                actor: Actor::System(SystemCause::ExposedInUrl),
            }
        ]
    );
    keys.shutdown().await;
}

#[tokio::test]
async fn the_change_follower_announces_a_watched_key_expired_elsewhere() {
    let store = Arc::new(MemoryStore::new());
    let (builder, events) = recording(Arc::clone(&store));
    let here = builder.build().unwrap();
    let elsewhere = ApiKeys::builder(Arc::clone(&store)).build().unwrap();
    let created = here.create(NewKey::new("acct_1", "ci")).await.unwrap();
    let identity = here
        .authenticate(created.secret.expose_secret())
        .await
        .unwrap();
    let waiter = {
        let here = here.clone();
        tokio::spawn(async move { here.until_unusable(&identity).await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    let past = chrono::Utc::now() - chrono::Duration::seconds(1);
    elsewhere
        .expire(&"acct_1".into(), &created.record.id, past)
        .await
        .unwrap();
    assert_eq!(waiter.await.unwrap(), KeyStatus::Expired);
    wait_for(&events, |k| {
        matches!(
            k,
            KeyEventKind::Expired {
                noticed_by: NoticedBy::ChangeFollower,
                ..
            }
        )
    })
    .await;
    here.shutdown().await;
    elsewhere.shutdown().await;
}

/// A rename emits one `Renamed` event with both names and the owner as the
/// actor; the new name is what handlers see at once; a refused name, an
/// unchanged name and another owner's key emit nothing.
#[tokio::test]
async fn a_rename_is_one_event_with_both_names() {
    let (builder, events) = recording(Arc::new(MemoryStore::new()));
    let keys = builder.build().unwrap();
    let owner = OwnerId::new("acct_1");
    let created = keys.create(NewKey::new("acct_1", "laptop")).await.unwrap();
    let secret = created.secret.expose_secret();
    assert_eq!(keys.authenticate(secret).await.unwrap().name(), "laptop");
    let renamed = keys
        .rename(&owner, &created.record.id, "work laptop")
        .await
        .unwrap();
    assert_eq!(renamed.name, "work laptop");
    assert_eq!(
        keys.authenticate(secret).await.unwrap().name(),
        "work laptop"
    );
    assert!(
        keys.rename(&owner, &created.record.id, "bad\nname")
            .await
            .is_err()
    );
    keys.rename(&owner, &created.record.id, "work laptop")
        .await
        .unwrap();
    assert!(matches!(
        keys.rename(&OwnerId::new("acct_2"), &created.record.id, "mine")
            .await,
        Err(tower_api_keys::ManageError::NotFound)
    ));
    let renames: Vec<KeyEventKind> = kinds(&events)
        .into_iter()
        .filter(|kind| matches!(kind, KeyEventKind::Renamed { .. }))
        .collect();
    assert_eq!(
        renames,
        vec![KeyEventKind::Renamed {
            from: "laptop".into(),
            to: "work laptop".into(),
            actor: Actor::Owner(owner),
        }]
    );
}
