//! OAuth access tokens beside keys, over real sockets: an issuer of the
//! test's own serves its metadata and key set on a loopback port, tokens
//! are signed with its keys (or forged), and a real HTTP client sends them
//! to an app behind the layer. Every bad token gets the RFC 6750 answer
//! and changes nothing; a token in the key format never reaches the
//! issuer; an issuer that cannot be reached makes tokens a 503, never a
//! pass. The real authorization server (oidc-provider) is driven in the
//! example's tests.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use reqwest::StatusCode;
use serde_json::{Value, json};
use test_support::issuer::{Forgery, Hostile, Issuer, IssuerKey};
use tower_api_keys::oauth::OAuth;
use tower_api_keys::{ApiKeys, AuthenticatedKey, Caller, MemoryStore, NewKey};

const RESOURCE: &str = "https://mcp.example.test/mcp";

/// An app behind keys and the issuer's tokens: `/whoami` takes either,
/// `/scoped` needs `files:read`, `/key-only` takes keys alone.
struct App {
    url: String,
    keys: ApiKeys,
}

impl App {
    async fn start(oauth: Option<OAuth>) -> Self {
        let mut builder = ApiKeys::builder(MemoryStore::new());
        if let Some(oauth) = oauth {
            builder = builder.oauth(oauth);
        }
        let keys = builder.build().unwrap();
        let whoami = |caller: Caller| async move {
            axum::Json(json!({
                "credential": caller.credential().as_str(),
                "owner": caller.owner().as_str(),
                "name": caller.name(),
                "scopes": caller.scopes().as_set(),
            }))
        };
        let app = Router::new()
            .route("/whoami", get(whoami))
            .route(
                "/key-only",
                get(|key: AuthenticatedKey| async move { key.name().to_owned() }),
            )
            .layer(keys.layer())
            .merge(
                Router::new()
                    .route("/scoped", get(whoami))
                    .layer(keys.layer().require_scope("files:read")),
            );
        let addr: SocketAddr = test_support::serve(app).await;
        Self {
            url: format!("http://{addr}"),
            keys,
        }
    }

    async fn get(&self, path: &str, token: &str) -> (StatusCode, String, Value) {
        let response = test_support::client()
            .get(format!("{}{path}", self.url))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        let status = response.status();
        let challenge = response
            .headers()
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let body = serde_json::from_str(&response.text().await.unwrap()).unwrap_or(Value::Null);
        (status, challenge, body)
    }
}

fn oauth(issuer: &Issuer) -> OAuth {
    OAuth::new(&issuer.url, RESOURCE)
}

#[tokio::test]
async fn a_token_of_the_issuer_authenticates_beside_keys() {
    let key = IssuerKey::new("k1");
    let issuer = Issuer::start(RESOURCE, &[&key]).await;
    let app = App::start(Some(oauth(&issuer))).await;
    let token = key.sign(&issuer.claims("user-42", "files:read mcp"));
    let (status, _, body) = app.get("/whoami", &token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["credential"], "access_token");
    assert_eq!(body["owner"], "user-42");
    assert_eq!(body["name"], "client-1");
    assert_eq!(body["scopes"], json!(["files:read", "mcp"]));

    // A key on the same route, through the same layer.
    let created = app.keys.create(NewKey::new("acct_1", "ci")).await.unwrap();
    let (status, _, body) = app.get("/whoami", created.secret.expose_secret()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["credential"], "api_key");
    assert_eq!(body["owner"], "acct_1");

    // The route's scope applies to tokens as to keys.
    let (status, _, _) = app.get("/scoped", &token).await;
    assert_eq!(status, StatusCode::OK);
    let narrow = key.sign(&issuer.claims("user-42", "mcp"));
    let (status, challenge, body) = app.get("/scoped", &narrow).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(
        challenge.contains("error=\"insufficient_scope\""),
        "{challenge}"
    );
    assert!(challenge.contains("scope=\"files:read\""), "{challenge}");
    assert_eq!(body["error"], "insufficient_scope");

    // A handler that takes keys alone refuses a token without a panic.
    let (status, _, _) = app.get("/key-only", &token).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // Many requests, one fetch of the key set.
    assert_eq!(issuer.jwks_fetches(), 1);
}

#[tokio::test]
async fn every_bad_token_is_refused_as_rfc_6750_says() {
    let key = IssuerKey::new("k1");
    let issuer = Issuer::start(RESOURCE, &[&key]).await;
    let app = App::start(Some(
        oauth(&issuer).jwks_refetch_interval(Duration::from_secs(3600)),
    ))
    .await;
    let valid = key.sign(&issuer.claims("user-42", "mcp"));
    let cases = issuer.forgeries(&key);
    for Forgery {
        case,
        token,
        description,
    } in cases
    {
        let (status, challenge, body) = app.get("/whoami", &token).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{case}: {body}");
        assert!(
            challenge.starts_with("Bearer realm=\"api\""),
            "{case}: {challenge}"
        );
        assert!(
            challenge.contains("error=\"invalid_token\""),
            "{case}: {challenge}"
        );
        assert_eq!(body["error"], "invalid_token", "{case}");
        assert_eq!(body["error_description"], description, "{case}");
    }
    // Oversized: refused before any parsing.
    let huge = format!(
        "{}.{}.{}",
        "a".repeat(3000),
        "b".repeat(1000),
        "c".repeat(200)
    );
    let (status, _, _) = app.get("/whoami", &huge).await;
    assert_eq!(status, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    // Outside the b64token grammar: a 400, as for any token.
    let (status, _, body) = app.get("/whoami", "eyJ.abc.d!ef").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"], "invalid_request");
    // The unknown kids caused no fetch beyond the first (the interval is an hour).
    assert_eq!(
        issuer.jwks_fetches(),
        1,
        "a made-up kid is no lever on the issuer"
    );
    // The good token still works: nothing above changed anything.
    assert_eq!(app.get("/whoami", &valid).await.0, StatusCode::OK);
}

#[tokio::test]
async fn a_token_in_the_key_format_is_checked_as_a_key_and_never_reaches_the_issuer() {
    let key = IssuerKey::new("k1");
    let issuer = Issuer::start(RESOURCE, &[&key]).await;
    let app = App::start(Some(oauth(&issuer))).await;
    // Wait for the prefetch, so that the count below is steady.
    let _ = app
        .get("/whoami", &key.sign(&issuer.claims("u", "mcp")))
        .await;
    let fetches = (
        issuer.served.metadata_fetches.load(Ordering::SeqCst),
        issuer.jwks_fetches(),
    );
    for token in [
        "bmc_not-a-key",
        "bmc_eyJhbGciOiJFUzI1NiJ9.e30.c2ln",
        &format!("bmc_{}", "A".repeat(43)),
    ] {
        let (status, challenge, body) = app.get("/whoami", token).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{token}");
        assert_eq!(
            body["error_description"], "The API key is invalid",
            "{token}"
        );
        assert!(challenge.contains("invalid_token"));
    }
    assert_eq!(
        (
            issuer.served.metadata_fetches.load(Ordering::SeqCst),
            issuer.jwks_fetches()
        ),
        fetches
    );
}

#[tokio::test]
async fn without_an_issuer_a_jwt_is_a_malformed_key_as_before() {
    let key = IssuerKey::new("k1");
    let issuer = Issuer::start(RESOURCE, &[&key]).await;
    let app = App::start(None).await;
    let (status, challenge, body) = app
        .get("/whoami", &key.sign(&issuer.claims("u", "mcp")))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error_description"], "The API key is invalid");
    assert!(!challenge.contains("authorization_uri"), "{challenge}");
    assert_eq!(issuer.jwks_fetches(), 0);
    assert_eq!(app.keys.oauth_issuer(), None);
}

#[tokio::test]
async fn an_unreachable_issuer_fails_closed_and_keys_still_work() {
    let key = IssuerKey::new("k1");
    let issuer = Issuer::start(RESOURCE, &[&key]).await;
    issuer.served.down.store(true, Ordering::SeqCst);
    let app = App::start(Some(oauth(&issuer))).await;
    let token = key.sign(&issuer.claims("user-42", "mcp"));
    let (status, challenge, body) = app.get("/whoami", &token).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(challenge.is_empty());
    assert_eq!(body["error"], "temporarily_unavailable");
    // A closed port: the same.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let nowhere = App::start(Some(OAuth::new(format!("http://{closed}"), RESOURCE))).await;
    assert_eq!(
        nowhere.get("/whoami", &token).await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    // Keys do not depend on the issuer.
    let created = app.keys.create(NewKey::new("acct_1", "ci")).await.unwrap();
    assert_eq!(
        app.get("/whoami", created.secret.expose_secret()).await.0,
        StatusCode::OK
    );
    // Back up: tokens pass again, after the short back-off.
    issuer.served.down.store(false, Ordering::SeqCst);
    let mut status = StatusCode::SERVICE_UNAVAILABLE;
    for _ in 0..50 {
        status = app.get("/whoami", &token).await.0;
        if status == StatusCode::OK {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn rotated_keys_are_honoured() {
    let old = IssuerKey::new("2026-11");
    let new = IssuerKey::new("2026-12");
    let issuer = Issuer::start(RESOURCE, &[&old]).await;
    let app = App::start(Some(oauth(&issuer).jwks_refetch_interval(Duration::ZERO))).await;
    assert_eq!(
        app.get("/whoami", &old.sign(&issuer.claims("u", "mcp")))
            .await
            .0,
        StatusCode::OK
    );
    // The issuer publishes the new key beside the old, then signs with it.
    *issuer.served.keys.lock().unwrap() = vec![old.jwk(), new.jwk()];
    assert_eq!(
        app.get("/whoami", &new.sign(&issuer.claims("u", "mcp")))
            .await
            .0,
        StatusCode::OK
    );
    // Then withdraws the old one: its tokens stop working once the set is
    // fetched again (here, when a token names a kid it lacks).
    *issuer.served.keys.lock().unwrap() = vec![new.jwk()];
    let _ = app
        .get(
            "/whoami",
            &IssuerKey::new("unknown").sign(&issuer.claims("u", "mcp")),
        )
        .await;
    assert_eq!(
        app.get("/whoami", &old.sign(&issuer.claims("u", "mcp")))
            .await
            .0,
        StatusCode::UNAUTHORIZED,
        "a withdrawn key verifies nothing"
    );
    assert_eq!(
        app.get("/whoami", &new.sign(&issuer.claims("u", "mcp")))
            .await
            .0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn settings_that_cannot_work_are_refused_at_build() {
    for bad in [
        OAuth::new("ftp://auth.test", RESOURCE),
        OAuth::new("https://auth.test?x=1", RESOURCE),
        OAuth::new("https://auth.test", ""),
        OAuth::new("https://auth.test", RESOURCE).algorithms(["HS256"]),
        OAuth::new("https://auth.test", RESOURCE).algorithms(["none"]),
        OAuth::new("https://auth.test", RESOURCE).algorithms(Vec::<String>::new()),
    ] {
        let built = ApiKeys::builder(MemoryStore::new())
            .oauth(bad.clone())
            .build();
        assert!(built.is_err(), "{bad:?} was accepted");
    }
}

#[tokio::test]
async fn no_token_reaches_the_logs() {
    let capture = test_support::Capture::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(capture.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let key = IssuerKey::new("k1");
    let issuer = Issuer::start(RESOURCE, &[&key]).await;
    let app = App::start(Some(oauth(&issuer))).await;
    let good = key.sign(&issuer.claims("user-42", "mcp"));
    let forged = IssuerKey::new("k1").sign(&issuer.claims("user-42", "mcp"));
    assert_eq!(app.get("/whoami", &good).await.0, StatusCode::OK);
    assert_eq!(
        app.get("/whoami", &forged).await.0,
        StatusCode::UNAUTHORIZED
    );
    let logs = capture.text();
    assert!(
        logs.contains("access token refused"),
        "the refusal is logged: {logs}"
    );
    for token in [&good, &forged] {
        let signature = token.rsplit('.').next().unwrap();
        assert!(
            !logs.contains(signature),
            "a token's signature is in the logs"
        );
    }
}

#[tokio::test]
async fn a_user_signed_in_with_oauth_manages_their_own_keys_and_no_one_elses() {
    let key = IssuerKey::new("k1");
    let issuer = Issuer::start(RESOURCE, &[&key]).await;
    let keys = ApiKeys::builder(MemoryStore::new())
        .oauth(oauth(&issuer))
        .build()
        .unwrap();
    let app = Router::new().nest("/api", keys.management().mounted_at("/api").router());
    let addr: SocketAddr = test_support::serve(app).await;
    let http = test_support::client();
    let call = |method: reqwest::Method, path: &str, token: &str, body: Option<Value>| {
        let mut request = http
            .request(method, format!("http://{addr}/api{path}"))
            .bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        async move {
            let response = request.send().await.unwrap();
            let status = response.status();
            (
                status,
                response.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    };
    let someone_else = keys.create(NewKey::new("user-7", "theirs")).await.unwrap();
    let token = key.sign(&issuer.claims("user-42", "keys:manage mcp"));

    // The create-key flow: a key from an OAuth login, shown once.
    let (status, created) = call(
        reqwest::Method::POST,
        "/keys",
        &token,
        Some(json!({"name": "laptop"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let secret = created["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("bmc_"));
    assert_eq!(
        created["key"]["scopes"],
        json!(["keys:manage", "mcp"]),
        "{created}"
    );
    let made = keys.authenticate(&secret).await.unwrap();
    assert_eq!(made.owner().as_str(), "user-42");
    let id = made.id().to_string();

    // Only the subject's keys are listed, and another owner's id is unknown.
    let (status, page) = call(reqwest::Method::GET, "/keys", &token, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["keys"].as_array().unwrap().len(), 1, "{page}");
    let theirs = format!("/keys/{}", someone_else.record.id);
    assert_eq!(
        call(reqwest::Method::GET, &theirs, &token, None).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        call(
            reqwest::Method::POST,
            &format!("{theirs}/revoke"),
            &token,
            None
        )
        .await
        .0,
        StatusCode::NOT_FOUND
    );

    // No scope the token lacks.
    let (status, problem) = call(
        reqwest::Method::POST,
        "/keys",
        &token,
        Some(json!({"name": "x", "scopes": ["admin"]})),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{problem}");
    // A token without the management scope is refused by the router's layer.
    let plain = key.sign(&issuer.claims("user-42", "mcp"));
    let (status, body) = call(reqwest::Method::GET, "/keys", &plain, None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["error"], "insufficient_scope");

    // Revoke, with immediate effect.
    let (status, revoked) = call(
        reqwest::Method::POST,
        &format!("/keys/{id}/revoke"),
        &token,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{revoked}");
    assert!(keys.authenticate(&secret).await.is_err());
    assert_eq!(
        keys.authenticate(someone_else.secret.expose_secret())
            .await
            .unwrap()
            .owner()
            .as_str(),
        "user-7"
    );
}

#[tokio::test]
async fn an_issuer_that_cannot_be_trusted_makes_tokens_a_503_not_a_pass() {
    let key = IssuerKey::new("k1");
    // A target the redirect points at: it must never be asked.
    let elsewhere = Issuer::start(RESOURCE, &[&key]).await;
    for hostile in [
        Hostile::OtherIssuer,
        Hostile::Redirect(format!(
            "{}/.well-known/oauth-authorization-server",
            elsewhere.url
        )),
        Hostile::HugeKeySet,
    ] {
        let issuer = Issuer::start(RESOURCE, &[&key]).await;
        *issuer.served.hostile.lock().unwrap() = Some(hostile);
        let app = App::start(Some(oauth(&issuer))).await;
        let token = key.sign(&issuer.claims("user-42", "mcp"));
        let (status, _, body) = app.get("/whoami", &token).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    }
    assert_eq!(
        elsewhere.served.metadata_fetches.load(Ordering::SeqCst),
        0,
        "a redirect was followed"
    );
}

#[tokio::test]
async fn no_token_makes_the_layer_fetch_a_url_it_names_and_a_down_issuer_is_not_asked_per_request()
{
    let key = IssuerKey::new("k1");
    let issuer = Issuer::start(RESOURCE, &[&key]).await;
    let attacker = Issuer::start(RESOURCE, &[&key]).await;
    let app = App::start(Some(oauth(&issuer).jwks_refetch_interval(Duration::ZERO))).await;
    assert_eq!(
        app.get("/whoami", &key.sign(&issuer.claims("u", "mcp")))
            .await
            .0,
        StatusCode::OK
    );
    // jku / x5u in the header, and kids shaped like paths or URLs: each is
    // at most an unknown kid, and nothing is fetched from where they point.
    let claims = issuer.claims("u", "mcp");
    for header in [
        json!({"alg": "ES256", "kid": "k9", "jku": format!("{}/jwks", attacker.url)}),
        json!({"alg": "ES256", "kid": "k9", "x5u": format!("{}/jwks", attacker.url)}),
        json!({"alg": "ES256", "kid": format!("{}/jwks", attacker.url)}),
        json!({"alg": "ES256", "kid": "../../jwks?x=\u{0}"}),
        json!({"alg": "ES256", "kid": "k".repeat(2000)}),
    ] {
        let token = key.sign_with_header(&header, &claims);
        let (status, _, body) = app.get("/whoami", &token).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{header}: {body}");
    }
    assert_eq!(
        attacker.served.metadata_fetches.load(Ordering::SeqCst) + attacker.jwks_fetches(),
        0,
        "a URL from a token was fetched"
    );

    // An issuer that is down is asked again only after a back-off, not
    // once per request.
    let down = Issuer::start(RESOURCE, &[&key]).await;
    down.served.down.store(true, Ordering::SeqCst);
    let app = App::start(Some(oauth(&down))).await;
    let token = key.sign(&down.claims("u", "mcp"));
    for _ in 0..30 {
        assert_eq!(
            app.get("/whoami", &token).await.0,
            StatusCode::SERVICE_UNAVAILABLE
        );
    }
    let asked = down.served.metadata_fetches.load(Ordering::SeqCst);
    assert!(
        asked <= 4,
        "the issuer was asked {asked} times for 30 requests"
    );
}

#[tokio::test]
async fn bad_tokens_count_as_failed_attempts() {
    let key = IssuerKey::new("k1");
    let issuer = Issuer::start(RESOURCE, &[&key]).await;
    let keys = ApiKeys::builder(MemoryStore::new())
        .oauth(oauth(&issuer))
        .failed_attempt_limit(tower_api_keys::limit::FailedAttemptLimit::new(
            3,
            Duration::from_secs(60),
        ))
        .build()
        .unwrap();
    let app = Router::new()
        .route(
            "/whoami",
            get(|caller: Caller| async move { caller.owner().as_str().to_owned() }),
        )
        .layer(keys.layer());
    let addr = test_support::serve_with_peer_addresses(app).await;
    let forged = IssuerKey::new("k1").sign(&issuer.claims("u", "mcp"));
    let mut statuses = Vec::new();
    for _ in 0..5 {
        let response = test_support::client()
            .get(format!("http://{addr}/whoami"))
            .bearer_auth(&forged)
            .send()
            .await
            .unwrap();
        statuses.push(response.status().as_u16());
    }
    assert_eq!(statuses, [401, 401, 401, 429, 429]);
}

#[tokio::test]
async fn a_token_cannot_borrow_another_algorithm_for_its_key() {
    // The key set says ES256 for k1; a token claiming ES384 under k1, or a
    // key published without alg used for an RSA algorithm, is refused.
    let key = IssuerKey::new("k1");
    let issuer = Issuer::start(RESOURCE, &[&key]).await;
    let app = App::start(Some(oauth(&issuer))).await;
    let claims = issuer.claims("u", "mcp");
    for alg in ["ES384", "RS256", "PS256", "EdDSA"] {
        let token = key.sign_with_header(&json!({"alg": alg, "kid": "k1"}), &claims);
        assert_eq!(
            app.get("/whoami", &token).await.0,
            StatusCode::UNAUTHORIZED,
            "{alg}"
        );
    }
}

/// Token decisions are counted apart from keys', without a subject in any
/// label.
#[cfg(feature = "metrics")]
#[tokio::test]
async fn token_decisions_are_counted_by_credential_kind_without_a_subject() {
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};
    let key = IssuerKey::new("k1");
    let issuer = Issuer::start(RESOURCE, &[&key]).await;
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let keys = metrics::with_local_recorder(&recorder, || {
        ApiKeys::builder(MemoryStore::new())
            .oauth(oauth(&issuer))
            .build()
    })
    .unwrap();
    let app = Router::new()
        .route(
            "/",
            get(|caller: Caller| async move { caller.owner().as_str().to_owned() }),
        )
        .layer(keys.layer());
    let addr = test_support::serve(app).await;
    let send = |token: String| async move {
        test_support::client()
            .get(format!("http://{addr}/"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .status()
    };
    assert_eq!(
        send(key.sign(&issuer.claims("user-secret-42", "mcp"))).await,
        StatusCode::OK
    );
    assert_eq!(
        send(key.sign(&issuer.claims("user-secret-42", "mcp"))).await,
        StatusCode::OK
    );
    assert_eq!(
        send(IssuerKey::new("k1").sign(&issuer.claims("user-secret-42", "mcp"))).await,
        StatusCode::UNAUTHORIZED
    );
    let mut seen = std::collections::HashMap::new();
    for (key, _, _, value) in snapshotter.snapshot().into_vec() {
        let (_, key) = key.into_parts();
        let labels: Vec<String> = key
            .labels()
            .map(|l| format!("{}={}", l.key(), l.value()))
            .collect();
        assert!(
            !labels.iter().any(|l| l.contains("user-secret-42")),
            "{labels:?}"
        );
        if let DebugValue::Counter(n) = value {
            seen.insert(format!("{}{{{}}}", key.name(), labels.join(",")), n);
        }
    }
    let get = |name: &str| seen.get(name).copied().unwrap_or_default();
    assert_eq!(
        get("tower_api_keys_access_token_decisions_total{outcome=admitted}"),
        2,
        "{seen:?}"
    );
    assert_eq!(
        get("tower_api_keys_access_token_decisions_total{outcome=refused}"),
        1
    );
    assert_eq!(
        get("tower_api_keys_decisions_total{outcome=invalid_access_token}"),
        1
    );
}
