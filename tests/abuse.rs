//! Abuse controls over real HTTP: the failed-attempt throttle, per-key rate
//! limits, checksummed keys and the policy for keys exposed in URLs.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, RETRY_AFTER, WWW_AUTHENTICATE};
use tower_api_keys::key::KeyFormat;
use tower_api_keys::limit::{ClientAddress, FailedAttemptLimit, RateLimit};
use tower_api_keys::record::EXPOSED_IN_URL;
use tower_api_keys::test_util::{ScriptedStore, StoreMethod};
use tower_api_keys::{ApiKeys, ApiKeysBuilder, KeyStore, NewKey};

use test_support::{client, serve, serve_with_peer_addresses};

struct App {
    keys: ApiKeys,
    store: Arc<ScriptedStore>,
    url: String,
}

async fn app(configure: impl FnOnce(ApiKeysBuilder) -> ApiKeysBuilder) -> App {
    let store = Arc::new(ScriptedStore::new());
    let keys = configure(ApiKeys::builder(Arc::clone(&store)))
        .build()
        .unwrap();
    let router = Router::new()
        .route("/api/v2/projects", get(|| async { "ok" }))
        .route_layer(keys.layer());
    let addr = serve_with_peer_addresses(router).await;
    App {
        keys,
        store,
        url: format!("http://{addr}/api/v2/projects"),
    }
}

async fn get_with(url: &str, key: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut request = client()
        .get(url)
        .header(AUTHORIZATION, format!("Bearer {key}"));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn too_many_failures_from_one_address_get_429_without_a_lookup() {
    let a =
        app(|b| b.failed_attempt_limit(FailedAttemptLimit::new(5, Duration::from_secs(60)))).await;
    let valid = a.keys.create(NewKey::new("o", "valid")).await.unwrap();
    let valid = valid.secret.expose_secret();
    // The valid key is cached before the attack.
    assert_eq!(get_with(&a.url, valid, &[]).await.status(), StatusCode::OK);

    for _ in 0..5 {
        let r = get_with(&a.url, "bmc_guess", &[]).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
    let lookups = a.store.calls().find_by_hash;
    let unknown = KeyFormat::default().generate().unwrap();
    for token in ["bmc_guess", unknown.expose_secret()] {
        let r = get_with(&a.url, token, &[]).await;
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
        let wait: u64 = r.headers()[RETRY_AFTER].to_str().unwrap().parse().unwrap();
        assert!((1..=60).contains(&wait), "{wait}");
        assert!(r.headers().get(WWW_AUTHENTICATE).is_none());
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["error"], "too_many_requests");
    }
    assert_eq!(
        a.store.calls().find_by_hash,
        lookups,
        "a throttled client causes no lookup"
    );
    // A valid cached key from the same address still works.
    assert_eq!(get_with(&a.url, valid, &[]).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_trusted_header_tells_clients_apart() {
    let a = app(|b| {
        b.failed_attempt_limit(
            FailedAttemptLimit::new(2, Duration::from_secs(60))
                .client_address(ClientAddress::TrustedHeader("x-real-ip".parse().unwrap())),
        )
    })
    .await;
    let from = |ip: &'static str| [("x-real-ip", ip)];
    for _ in 0..2 {
        let r = get_with(&a.url, "bmc_guess", &from("203.0.113.7")).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
    let r = get_with(&a.url, "bmc_guess", &from("203.0.113.7")).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let r = get_with(&a.url, "bmc_guess", &from("203.0.113.8")).await;
    assert_eq!(
        r.status(),
        StatusCode::UNAUTHORIZED,
        "another client is not throttled"
    );
}

#[tokio::test]
async fn keys_past_their_allowance_get_429_with_ratelimit_headers() {
    let a = app(|b| b.rate_limit(RateLimit::new(3, Duration::from_secs(60)))).await;
    let default = a.keys.create(NewKey::new("o", "default")).await.unwrap();
    let own = a
        .keys
        .create(NewKey::new("o", "own").rate_limit(RateLimit::new(5, Duration::from_secs(60))))
        .await
        .unwrap();
    for _ in 0..3 {
        let r = get_with(&a.url, default.secret.expose_secret(), &[]).await;
        assert_eq!(r.status(), StatusCode::OK);
    }
    let r = get_with(&a.url, default.secret.expose_secret(), &[]).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        r.headers()[RETRY_AFTER],
        "20",
        "one request every 20 s at 3 per minute"
    );
    assert_eq!(r.headers()["ratelimit-policy"], "\"key\";q=3;w=60");
    assert_eq!(r.headers()["ratelimit"], "\"key\";r=0;t=20");
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"], "too_many_requests");
    // A key with its own allowance uses it; other keys are not affected.
    for _ in 0..5 {
        let r = get_with(&a.url, own.secret.expose_secret(), &[]).await;
        assert_eq!(r.status(), StatusCode::OK);
    }
    let r = get_with(&a.url, own.secret.expose_secret(), &[]).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.headers()["ratelimit-policy"], "\"key\";q=5;w=60");
}

#[tokio::test]
async fn checksummed_keys_refuse_typos_before_any_lookup_and_can_accept_old_keys() {
    // Keys issued before the checksum was turned on.
    let store = Arc::new(ScriptedStore::new());
    let old_keys = ApiKeys::builder(Arc::clone(&store)).build().unwrap();
    let plain = old_keys.create(NewKey::new("o", "plain")).await.unwrap();

    let serve_with = |accept_plain: bool| {
        let store = Arc::clone(&store);
        async move {
            let keys = ApiKeys::builder(store)
                .key_format(
                    KeyFormat::default()
                        .with_checksum()
                        .accept_without_checksum(accept_plain),
                )
                .build()
                .unwrap();
            let router = Router::new()
                .route("/p", get(|| async { "ok" }))
                .route_layer(keys.layer());
            (keys.clone(), format!("http://{}/p", serve(router).await))
        }
    };
    let (keys, strict) = serve_with(false).await;
    let checked = keys.create(NewKey::new("o", "checked")).await.unwrap();
    let checked = checked.secret.expose_secret().to_owned();
    assert_eq!(checked.len(), 4 + 43 + 6);
    assert_eq!(
        get_with(&strict, &checked, &[]).await.status(),
        StatusCode::OK
    );

    let lookups = store.calls().find_by_hash;
    let mut typo = checked.clone().into_bytes();
    typo[10] = if typo[10] == b'x' { b'y' } else { b'x' };
    let typo = String::from_utf8(typo).unwrap();
    let made_up = format!("bmc_{}", "A".repeat(49));
    for token in [
        typo.as_str(),
        made_up.as_str(),
        plain.secret.expose_secret(),
    ] {
        let r = get_with(&strict, token, &[]).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{token}");
    }
    assert_eq!(
        store.calls().find_by_hash,
        lookups,
        "refused before any lookup"
    );

    let (_, migrating) = serve_with(true).await;
    assert_eq!(
        get_with(&migrating, plain.secret.expose_secret(), &[])
            .await
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        get_with(&migrating, &checked, &[]).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        get_with(&migrating, &typo, &[]).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn a_key_sent_in_a_url_is_revoked_when_the_policy_says_so() {
    let a = app(|b| b.revoke_keys_exposed_in_url(true)).await;
    let owner = "o".into();
    let leaked = a.keys.create(NewKey::new("o", "leaked")).await.unwrap();
    let key = leaked.secret.expose_secret();
    assert_eq!(get_with(&a.url, key, &[]).await.status(), StatusCode::OK);

    let r = client()
        .get(format!("{}?access_token={key}", a.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    // Revoked at once: the next request with it in the header is refused.
    let r = get_with(&a.url, key, &[]).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(
        r.headers()[WWW_AUTHENTICATE]
            .to_str()
            .unwrap()
            .contains("revoked")
    );
    let stored = a
        .store
        .find_by_id(&leaked.record.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.revoked_reason.as_deref(), Some(EXPOSED_IN_URL));
    assert_eq!(
        a.keys
            .get(&owner, &leaked.record.id)
            .await
            .unwrap()
            .revoked_reason
            .as_deref(),
        Some("exposed in URL")
    );
}

#[tokio::test]
async fn without_the_policy_a_key_in_a_url_is_refused_but_not_revoked() {
    let a = app(|b| b).await;
    let leaked = a.keys.create(NewKey::new("o", "leaked")).await.unwrap();
    let key = leaked.secret.expose_secret();
    let r = client()
        .get(format!("{}?q={key}", a.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(get_with(&a.url, key, &[]).await.status(), StatusCode::OK);
    let stored = a
        .store
        .find_by_id(&leaked.record.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.revoked_at, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lookups_in_flight_cannot_take_a_client_past_its_limit() {
    let a =
        app(|b| b.failed_attempt_limit(FailedAttemptLimit::new(5, Duration::from_secs(60)))).await;
    // Every lookup takes a while, so all 30 requests are in flight together.
    a.store
        .set_delay(StoreMethod::FindByHash, Duration::from_millis(300));
    let requests = (0..30).map(|_| {
        let url = a.url.clone();
        let key = KeyFormat::default().generate().unwrap();
        let key = key.expose_secret().to_owned();
        tokio::spawn(async move { get_with(&url, &key, &[]).await.status() })
    });
    let mut statuses = Vec::new();
    for request in requests {
        statuses.push(request.await.unwrap());
    }
    assert_eq!(a.store.calls().find_by_hash, 5, "{statuses:?}");
    assert_eq!(
        statuses
            .iter()
            .filter(|s| **s == StatusCode::UNAUTHORIZED)
            .count(),
        5
    );
    assert_eq!(
        statuses
            .iter()
            .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
            .count(),
        25
    );
    // Blocked, the client gets 429 even for a valid key that is not cached.
    let valid = a.keys.create(NewKey::new("o", "valid")).await.unwrap();
    let r = get_with(&a.url, valid.secret.expose_secret(), &[]).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn a_successful_lookup_is_not_counted_as_a_failure() {
    let a =
        app(|b| b.failed_attempt_limit(FailedAttemptLimit::new(2, Duration::from_secs(60)))).await;
    for i in 0..3 {
        // Each valid key is looked up (not cached yet) and then admitted.
        let valid = a
            .keys
            .create(NewKey::new("o", format!("v{i}")))
            .await
            .unwrap();
        let r = get_with(&a.url, valid.secret.expose_secret(), &[]).await;
        assert_eq!(r.status(), StatusCode::OK);
    }
    for _ in 0..2 {
        assert_eq!(
            get_with(&a.url, "bmc_bad", &[]).await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        get_with(&a.url, "bmc_bad", &[]).await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
}

/// Percent-encodes every byte of `text`.
fn encode_all(text: &str) -> String {
    text.bytes().map(|b| format!("%{b:02X}")).collect()
}

#[tokio::test]
async fn a_key_encoded_twice_in_a_url_is_still_refused_and_revoked() {
    let a = app(|b| b.revoke_keys_exposed_in_url(true)).await;
    let leaked = a.keys.create(NewKey::new("o", "leaked")).await.unwrap();
    let key = leaked.secret.expose_secret();
    let lookups = a.store.calls().find_by_hash;
    for times in [2, 3] {
        let mut encoded = key.to_owned();
        for _ in 0..times {
            encoded = encode_all(&encoded);
        }
        let r = get_with(&format!("{}?q={encoded}", a.url), key, &[]).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "encoded {times} times");
    }
    let stored = a
        .store
        .find_by_id(&leaked.record.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.revoked_reason.as_deref(), Some(EXPOSED_IN_URL));
    assert_eq!(
        get_with(&a.url, key, &[]).await.status(),
        StatusCode::UNAUTHORIZED
    );
    // The URL's key was looked up only to revoke it (once), never to admit.
    assert!(a.store.calls().find_by_hash <= lookups + 2);
}

#[tokio::test]
async fn a_checksummed_key_without_its_prefix_in_a_url_is_refused() {
    let a = app(|b| b.key_format(KeyFormat::default().with_checksum())).await;
    let created = a.keys.create(NewKey::new("o", "k")).await.unwrap();
    let key = created.secret.expose_secret();
    let body = &key["bmc_".len()..];
    let r = get_with(&format!("{}?q={body}", a.url), key, &[]).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    // Ordinary text of the same shape is no credential.
    let r = get_with(&format!("{}?q={}", a.url, "A".repeat(body.len())), key, &[]).await;
    assert_eq!(r.status(), StatusCode::OK);
}

/// A valid key is never refused because of other people's failures from
/// its address: not when its cache entry has expired (it was found valid
/// recently, so it vouches for itself), and not after URLs with credentials
/// (refused, but no failed attempts: a web page could send them). The flood
/// bound still holds for keys never found valid.
#[tokio::test]
async fn other_peoples_failures_do_not_lock_out_a_valid_key() {
    let a = app(|b| {
        b.failed_attempt_limit(FailedAttemptLimit::new(5, Duration::from_secs(60)))
            .cache_ttl(Duration::from_millis(200))
    })
    .await;
    let valid = a.keys.create(NewKey::new("o", "valid")).await.unwrap();
    let valid = valid.secret.expose_secret();
    assert_eq!(get_with(&a.url, valid, &[]).await.status(), StatusCode::OK);
    // Someone at the same address guesses until throttled.
    for _ in 0..5 {
        let guess = KeyFormat::default().generate().unwrap();
        let r = get_with(&a.url, guess.expose_secret(), &[]).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
    let guess = KeyFormat::default().generate().unwrap();
    let r = get_with(&a.url, guess.expose_secret(), &[]).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    // The valid key's cache entry expires; its user is still let in.
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(get_with(&a.url, valid, &[]).await.status(), StatusCode::OK);
    // Keys never found valid still cost no lookup from the throttled client.
    let lookups = a.store.calls().find_by_hash;
    for _ in 0..20 {
        let guess = KeyFormat::default().generate().unwrap();
        let r = get_with(&a.url, guess.expose_secret(), &[]).await;
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    }
    assert_eq!(a.store.calls().find_by_hash, lookups);
}

#[tokio::test]
async fn urls_with_credentials_are_no_lockout_weapon() {
    let a =
        app(|b| b.failed_attempt_limit(FailedAttemptLimit::new(5, Duration::from_secs(60)))).await;
    let fresh = a.keys.create(NewKey::new("o", "fresh")).await.unwrap();
    for _ in 0..20 {
        let r = client()
            .get(format!("{}?token=x", a.url))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    }
    // A key this server has never seen before is still looked up.
    let r = get_with(&a.url, fresh.secret.expose_secret(), &[]).await;
    assert_eq!(r.status(), StatusCode::OK);
}
