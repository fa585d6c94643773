//! The wire contract (the table in the `rejection` module's docs, after RFC
//! 6750), over a real TCP socket with a real HTTP client.

use std::sync::Arc;
use std::time::Duration;

use axum::routing::get;
use axum::{Json, Router};
use chrono::Utc;
use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, CACHE_CONTROL, HeaderValue, RETRY_AFTER, WWW_AUTHENTICATE};
use serde_json::{Value, json};
use tower_api_keys::event::Actor;
use tower_api_keys::record::Scopes;
use tower_api_keys::test_util::{ManualClock, ScriptedStore, StoreMethod};
use tower_api_keys::{ApiKeys, AuthenticatedKey, NewKey};

use test_support::{client, serve};

async fn whoami(key: AuthenticatedKey) -> Json<Value> {
    Json(json!({"id": key.id().to_string(), "name": key.name(), "owner": key.owner().as_str() }))
}

async fn maybe_whoami(key: Option<AuthenticatedKey>) -> Json<Value> {
    Json(json!({"name": key.map(|k| k.name().to_owned()) }))
}

/// The app of every test here: `/api/v2/projects` behind the layer,
/// `/optional` behind the optional layer, `/write` behind a scope, and
/// `/healthz` outside.
fn app(keys: &ApiKeys) -> Router {
    Router::new()
        .route("/api/v2/projects", get(whoami))
        .route_layer(keys.layer())
        .merge(
            Router::new()
                .route("/optional", get(maybe_whoami))
                .route_layer(keys.layer().optional()),
        )
        .merge(
            Router::new()
                .route("/write", get(whoami))
                .route_layer(keys.layer().require_scope("projects:write")),
        )
        .route("/healthz", get(|| async { "ok" }))
}

struct Fixture {
    keys: ApiKeys,
    store: Arc<ScriptedStore>,
    base: String,
    key: String,
    http: reqwest::Client,
}

async fn fixture() -> Fixture {
    fixture_with(|b| b).await
}

async fn fixture_with(
    configure: impl FnOnce(tower_api_keys::ApiKeysBuilder) -> tower_api_keys::ApiKeysBuilder,
) -> Fixture {
    let store = Arc::new(ScriptedStore::new());
    let keys = configure(ApiKeys::builder(Arc::clone(&store)).realm("test"))
        .build()
        .unwrap();
    let created = keys.create(NewKey::new("acct_1", "ci")).await.unwrap();
    let addr = serve(app(&keys)).await;
    Fixture {
        keys,
        store,
        base: format!("http://{addr}"),
        key: created.secret.expose_secret().to_owned(),
        http: client(),
    }
}

impl Fixture {
    async fn get_with(&self, path: &str, authorization: Option<HeaderValue>) -> reqwest::Response {
        let mut request = self.http.get(format!("{}{path}", self.base));
        if let Some(value) = authorization {
            request = request.header(AUTHORIZATION, value);
        }
        request.send().await.unwrap()
    }

    async fn get_key(&self, path: &str, key: &str) -> reqwest::Response {
        self.get_with(path, Some(bearer(key))).await
    }
}

fn bearer(key: &str) -> HeaderValue {
    HeaderValue::from_str(&format!("Bearer {key}")).unwrap()
}

fn challenge(response: &reqwest::Response) -> String {
    response
        .headers()
        .get(WWW_AUTHENTICATE)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

#[tokio::test]
async fn every_row_of_the_wire_contract() {
    let f = fixture().await;

    // A valid key: 200, and the handler sees the key's identity.
    let ok = f.get_key("/api/v2/projects", &f.key).await;
    assert_eq!(ok.status(), StatusCode::OK);
    let body: Value = ok.json().await.unwrap();
    assert_eq!(body["name"], "ci");
    assert_eq!(body["owner"], "acct_1");

    // No Authorization header: 401 with a bare challenge.
    let none = f.get_with("/api/v2/projects", None).await;
    assert_eq!(none.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(challenge(&none), "Bearer realm=\"test\"");
    assert_eq!(none.headers()[CACHE_CONTROL], "no-store");
    assert_eq!(none.headers()["content-type"], "application/json");
    let body: Value = none.json().await.unwrap();
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("Bearer")
    );

    // Another scheme only: counts as no credentials.
    let basic = f
        .get_with(
            "/api/v2/projects",
            Some(HeaderValue::from_static("Basic dXNlcjpwYXNz")),
        )
        .await;
    assert_eq!(basic.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(challenge(&basic), "Bearer realm=\"test\"");

    // The key in another header: no credentials either.
    let other = f
        .http
        .get(format!("{}/api/v2/projects", f.base))
        .header("x-api-key", &f.key)
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(challenge(&other), "Bearer realm=\"test\"");

    // Bearer without a token, bad token bytes, two headers: 400.
    for value in [&b"Bearer"[..], b"Bearer a b", b"Bearer a!b"] {
        let r = f
            .get_with(
                "/api/v2/projects",
                Some(HeaderValue::from_bytes(value).unwrap()),
            )
            .await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        assert!(
            challenge(&r).starts_with(
                "Bearer realm=\"test\", error=\"invalid_request\", error_description=\""
            )
        );
    }
    let two = f
        .http
        .get(format!("{}/api/v2/projects", f.base))
        .header(AUTHORIZATION, bearer(&f.key))
        .header(AUTHORIZATION, bearer(&f.key))
        .send()
        .await
        .unwrap();
    assert_eq!(two.status(), StatusCode::BAD_REQUEST);
    assert!(challenge(&two).contains("error=\"invalid_request\""));

    // The key in the query string: 400, and it is never looked up.
    let lookups = f.store.calls().find_by_hash;
    let unknown = tower_api_keys::key::KeyFormat::default()
        .generate()
        .unwrap();
    let query = f
        .http
        .get(format!(
            "{}/api/v2/projects?access_token={}",
            f.base,
            unknown.expose_secret()
        ))
        .header(AUTHORIZATION, bearer(&f.key))
        .send()
        .await
        .unwrap();
    assert_eq!(query.status(), StatusCode::BAD_REQUEST);
    assert!(challenge(&query).contains("error=\"invalid_request\""));
    assert_eq!(
        f.store.calls().find_by_hash,
        lookups,
        "a key in the URL is never looked up"
    );

    // Malformed and unknown keys: 401 invalid_token, byte-identical.
    let malformed = f.get_key("/api/v2/projects", "bmc_short").await;
    let unknown = f.get_key("/api/v2/projects", unknown.expose_secret()).await;
    assert_eq!(malformed.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(unknown.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(challenge(&malformed), challenge(&unknown));
    assert!(challenge(&unknown).contains("error=\"invalid_token\""));
    assert_eq!(
        malformed.bytes().await.unwrap(),
        unknown.bytes().await.unwrap()
    );

    // Outside the layer: no key needed.
    let health = f.get_with("/healthz", None).await;
    assert_eq!(health.status(), StatusCode::OK);
    // route_layer: an unknown route is a 404, not a 401.
    assert_eq!(
        f.get_with("/nowhere", None).await.status(),
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn expired_and_revoked_keys_get_invalid_token() {
    let f = fixture().await;
    let owner = "acct_1".into();
    let expired = f
        .keys
        .create(NewKey::new("acct_1", "old").expires_at(Utc::now() - chrono::Duration::seconds(1)))
        .await
        .unwrap();
    let r = f
        .get_key("/api/v2/projects", expired.secret.expose_secret())
        .await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(
        challenge(&r)
            .contains("error=\"invalid_token\", error_description=\"The API key has expired\"")
    );

    let revoked = f.keys.create(NewKey::new("acct_1", "gone")).await.unwrap();
    f.keys.revoke(&owner, &revoked.record.id).await.unwrap();
    let r = f
        .get_key("/api/v2/projects", revoked.secret.expose_secret())
        .await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(challenge(&r).contains("error_description=\"The API key has been revoked\""));
}

#[tokio::test]
async fn a_key_without_the_scope_gets_403_insufficient_scope() {
    let f = fixture().await;
    let reader = f
        .keys
        .create(NewKey::new("acct_1", "reader").scopes(Scopes::only(["projects:read"])))
        .await
        .unwrap();
    let r = f.get_key("/write", reader.secret.expose_secret()).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        challenge(&r),
        "Bearer realm=\"test\", error=\"insufficient_scope\", error_description=\"The API key lacks the scope this request needs\", scope=\"projects:write\""
    );
    // A key with full access (the default) passes.
    assert_eq!(f.get_key("/write", &f.key).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_failing_store_gives_503_never_200() {
    let f = fixture().await;
    f.store.set_failing(true);
    for _ in 0..3 {
        let r = f.get_key("/api/v2/projects", &f.key).await;
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(r.headers()[RETRY_AFTER], "1");
        assert!(r.headers().get(WWW_AUTHENTICATE).is_none());
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"], "temporarily_unavailable");
    }
    // Errors are not cached: service resumes when the store does.
    f.store.set_failing(false);
    assert_eq!(
        f.get_key("/api/v2/projects", &f.key).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_hanging_lookup_is_cut_off_and_every_waiter_answered() {
    let f = fixture_with(|b| b.lookup_timeout(Duration::from_millis(200))).await;
    f.store
        .set_delay(StoreMethod::FindByHash, Duration::from_secs(3600));
    let requests = (0..20).map(|_| f.get_key("/api/v2/projects", &f.key));
    let responses = futures_util::future::join_all(requests).await;
    for r in responses {
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    }
}

#[tokio::test]
async fn optional_routes_let_anonymous_requests_through_but_not_bad_keys() {
    let f = fixture().await;
    let anonymous = f.get_with("/optional", None).await;
    assert_eq!(anonymous.status(), StatusCode::OK);
    assert_eq!(
        anonymous.json::<Value>().await.unwrap()["name"],
        Value::Null
    );
    let named = f.get_key("/optional", &f.key).await;
    assert_eq!(named.json::<Value>().await.unwrap()["name"], "ci");
    assert_eq!(
        f.get_key("/optional", "bmc_bad").await.status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn resource_metadata_is_announced_and_the_response_builder_can_be_replaced() {
    let store = Arc::new(ScriptedStore::new());
    let keys = ApiKeys::builder(store)
        .realm("mcp")
        .resource_metadata("http://127.0.0.1/.well-known/oauth-protected-resource")
        .on_rejection(|rejection| {
            let mut response = rejection.default_response();
            *response.body_mut() = bytes::Bytes::from(format!("custom: {}", rejection.reason()));
            response
        })
        .build()
        .unwrap();
    let addr = serve(app(&keys)).await;
    let r = client()
        .get(format!("http://{addr}/api/v2/projects"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        challenge(&r),
        "Bearer realm=\"mcp\", resource_metadata=\"http://127.0.0.1/.well-known/oauth-protected-resource\""
    );
    assert_eq!(r.text().await.unwrap(), "custom: missing_credentials");
}

#[tokio::test]
async fn an_expiry_that_passes_while_the_key_is_cached_is_refused_at_once() {
    let clock = Arc::new(ManualClock::new(Utc::now()));
    let f = fixture_with({
        let clock = Arc::clone(&clock);
        move |b| b.clock(clock)
    })
    .await;
    let short = f
        .keys
        .create(NewKey::new("acct_1", "short").expires_at(clock.now_plus(60)))
        .await
        .unwrap();
    let key = short.secret.expose_secret();
    assert_eq!(
        f.get_key("/api/v2/projects", key).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        f.get_key("/api/v2/projects", key).await.status(),
        StatusCode::OK
    );
    let lookups = f.store.calls().find_by_hash;
    clock.advance(chrono::Duration::seconds(61));
    let r = f.get_key("/api/v2/projects", key).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(challenge(&r).contains("has expired"));
    assert_eq!(
        f.store.calls().find_by_hash,
        lookups,
        "the cached entry decided it, against the clock"
    );
}

trait NowPlus {
    fn now_plus(&self, seconds: i64) -> chrono::DateTime<Utc>;
}

impl NowPlus for ManualClock {
    fn now_plus(&self, seconds: i64) -> chrono::DateTime<Utc> {
        use tower_api_keys::clock::Clock;
        self.now() + chrono::Duration::seconds(seconds)
    }
}

#[tokio::test]
async fn revoke_then_the_very_next_request_is_refused() {
    let f = fixture().await;
    for _ in 0..3 {
        assert_eq!(
            f.get_key("/api/v2/projects", &f.key).await.status(),
            StatusCode::OK
        );
    }
    let id = f
        .keys
        .list(&"acct_1".into(), None, 100)
        .await
        .unwrap()
        .records[0]
        .id;
    f.keys.revoke(&"acct_1".into(), &id).await.unwrap();
    let r = f.get_key("/api/v2/projects", &f.key).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(challenge(&r).contains("revoked"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_requests_with_one_uncached_key_cost_one_lookup() {
    let f = fixture().await;
    // Hold the lookup long enough for every request to arrive while it runs.
    f.store
        .set_delay(StoreMethod::FindByHash, Duration::from_millis(500));
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(1000)
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let url = format!("{}/api/v2/projects", f.base);
    let tasks: Vec<_> = (0..1000)
        .map(|_| {
            let request = http.get(&url).header(AUTHORIZATION, bearer(&f.key));
            tokio::spawn(async move { request.send().await.map(|r| r.status()) })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap().unwrap(), StatusCode::OK);
    }
    assert_eq!(f.store.calls().find_by_hash, 1);
}

#[tokio::test]
async fn an_unknown_key_is_looked_up_once_per_negative_ttl() {
    let f = fixture().await;
    let unknown = tower_api_keys::key::KeyFormat::default()
        .generate()
        .unwrap();
    for _ in 0..50 {
        let r = f.get_key("/api/v2/projects", unknown.expose_secret()).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
    assert_eq!(f.store.calls().find_by_hash, 1);
}

#[tokio::test]
async fn a_plain_hyper_service_is_protected_too() {
    use http_body_util::Full;
    use hyper::service::service_fn;
    use hyper_util::rt::{TokioIo, TokioTimer};
    use tower::ServiceBuilder;

    let keys = ApiKeys::builder(Arc::new(ScriptedStore::new()))
        .build()
        .unwrap();
    let created = keys.create(NewKey::new("o", "hyper")).await.unwrap();
    let service = ServiceBuilder::new()
        .layer(keys.layer())
        .service(tower::service_fn(
            |request: http::Request<hyper::body::Incoming>| async move {
                let name = request
                    .extensions()
                    .get::<AuthenticatedKey>()
                    .map(|k| k.name().to_owned())
                    .unwrap_or_default();
                Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(
                    bytes::Bytes::from(name),
                )))
            },
        ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let service = service.clone();
            tokio::spawn(async move {
                let hyper_service = service_fn(move |request| {
                    let mut service = service.clone();
                    tower::Service::call(&mut service, request)
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .timer(TokioTimer::new())
                    .serve_connection(TokioIo::new(stream), hyper_service)
                    .await;
            });
        }
    });
    let http = client();
    let ok = http
        .get(format!("http://{addr}/"))
        .header(AUTHORIZATION, bearer(created.secret.expose_secret()))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
    assert_eq!(ok.text().await.unwrap(), "hyper");
    let refused = http.get(format!("http://{addr}/")).send().await.unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(challenge(&refused), "Bearer realm=\"api\"");
}

#[tokio::test]
async fn management_is_scoped_by_owner() {
    let f = fixture().await;
    let mine = f.keys.create(NewKey::new("acct_2", "mine")).await.unwrap();
    let alice = "acct_1".into();
    let bob = "acct_2".into();
    assert_eq!(
        f.keys.list(&alice, None, 100).await.unwrap().records.len(),
        1
    );
    let bobs = f.keys.list(&bob, None, 100).await.unwrap().records;
    assert_eq!(bobs.len(), 1);
    assert_eq!(bobs[0].name, "mine");
    // Alice can neither read nor revoke Bob's key.
    assert!(matches!(
        f.keys.revoke(&alice, &mine.record.id).await,
        Err(tower_api_keys::ManageError::NotFound)
    ));
    assert!(f.keys.get(&alice, &mine.record.id).await.is_err());
    let r = f
        .get_key("/api/v2/projects", mine.secret.expose_secret())
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    // Bob revokes it, twice; the first time is kept.
    let first = f.keys.revoke(&bob, &mine.record.id).await.unwrap();
    let second = f.keys.revoke(&bob, &mine.record.id).await.unwrap();
    assert!(first.revoked_at.is_some());
    assert_eq!(first.revoked_at, second.revoked_at);
    // Names are checked.
    assert!(matches!(
        f.keys.create(NewKey::new("acct_1", "")).await,
        Err(tower_api_keys::ManageError::InvalidName)
    ));
    assert!(matches!(
        f.keys.create(NewKey::new("acct_1", "a\nb")).await,
        Err(tower_api_keys::ManageError::InvalidName)
    ));
}

/// Names, owners and revocation reasons that would change how a listing
/// looks (terminal escapes, newlines, bidirectional overrides) are refused
/// by the library, with an error that says which, and nothing is stored.
#[tokio::test]
async fn text_that_would_forge_a_listing_is_refused() {
    use tower_api_keys::ManageError;
    let f = fixture().await;
    let before = f.keys.list(&"acct_1".into(), None, 100).await.unwrap();
    for name in [
        "evil\u{1b}[2J",
        "invoice\u{202E}fdp.exe",
        "a\u{2066}b",
        "x\u{200F}",
    ] {
        let refused = f.keys.create(NewKey::new("acct_1", name)).await;
        assert!(matches!(refused, Err(ManageError::InvalidName)), "{name:?}");
    }
    for owner in ["evil\u{1b}[2J\nFAKE-ROW", "", "o\u{202E}", &"o".repeat(201)] {
        let refused = f.keys.create(NewKey::new(owner, "ok")).await;
        assert!(
            matches!(refused, Err(ManageError::InvalidOwner)),
            "{owner:?}"
        );
        let message = refused.unwrap_err().to_string();
        assert!(message.contains("owner"), "{message}");
    }
    let after = f.keys.list(&"acct_1".into(), None, 100).await.unwrap();
    assert_eq!(after.records.len(), before.records.len());
    let key = f.keys.create(NewKey::new("acct_1", "ok")).await.unwrap();
    let refused = f
        .keys
        .acting_as(Actor::Owner("acct_1".into()))
        .revoke(
            &"acct_1".into(),
            &key.record.id,
            Some("gone\n\u{1b}[31mFAKE"),
        )
        .await;
    assert!(matches!(refused, Err(ManageError::InvalidReason)));
    let stored = f.keys.get(&"acct_1".into(), &key.record.id).await.unwrap();
    assert!(
        stored.revoked_at.is_none(),
        "a refused revocation changes nothing"
    );
    // Ordinary text of every script is fine.
    f.keys
        .create(NewKey::new("compte_é", "Ordinateur portable 💻 (日本)"))
        .await
        .unwrap();
}

#[tokio::test]
async fn rolling_a_key_keeps_both_working_until_the_overlap_ends() {
    let clock = Arc::new(ManualClock::new(Utc::now()));
    let f = fixture_with({
        let clock = Arc::clone(&clock);
        move |b| b.clock(clock)
    })
    .await;
    let owner = "acct_1".into();
    let old = f.keys.list(&owner, None, 100).await.unwrap().records[0].clone();
    let rolled = f
        .keys
        .roll(&owner, &old.id, chrono::Duration::hours(1))
        .await
        .unwrap();
    assert_eq!(rolled.record.name, old.name);
    assert_eq!(rolled.record.scopes, old.scopes);
    assert_ne!(rolled.secret.expose_secret(), f.key);
    assert_eq!(
        f.get_key("/api/v2/projects", &f.key).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        f.get_key("/api/v2/projects", rolled.secret.expose_secret())
            .await
            .status(),
        StatusCode::OK
    );
    clock.advance(chrono::Duration::minutes(61));
    let r = f.get_key("/api/v2/projects", &f.key).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(challenge(&r).contains("has expired"));
    assert_eq!(
        f.get_key("/api/v2/projects", rolled.secret.expose_secret())
            .await
            .status(),
        StatusCode::OK
    );
    // A revoked key cannot be rolled.
    f.keys.revoke(&owner, &rolled.record.id).await.unwrap();
    assert!(matches!(
        f.keys
            .roll(&owner, &rolled.record.id, chrono::Duration::hours(1))
            .await,
        Err(tower_api_keys::ManageError::Revoked)
    ));
}

/// A route that requires a scope names it on its 401 challenges too (the
/// MCP authorization spec asks for it), for a missing key and for an
/// unknown one; routes without a scope name none.
#[tokio::test]
async fn a_scoped_route_names_its_scope_on_401s() {
    let f = fixture().await;
    let unknown = tower_api_keys::key::KeyFormat::default()
        .generate()
        .unwrap();
    for authorization in [None, Some(bearer(unknown.expose_secret()))] {
        let r = f.get_with("/write", authorization.clone()).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        let challenge = r.headers()[WWW_AUTHENTICATE].to_str().unwrap().to_owned();
        assert!(
            challenge.starts_with("Bearer realm=\"test\""),
            "{challenge}"
        );
        assert!(
            challenge.contains("scope=\"projects:write\""),
            "{challenge}"
        );
        let r = f.get_with("/api/v2/projects", authorization).await;
        let challenge = r.headers()[WWW_AUTHENTICATE].to_str().unwrap().to_owned();
        assert!(!challenge.contains("scope="), "{challenge}");
    }
    let r = f
        .get_with("/write", Some(bearer(unknown.expose_secret())))
        .await;
    let challenge = r.headers()[WWW_AUTHENTICATE].to_str().unwrap();
    assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
}
