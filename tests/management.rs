//! The management API over real HTTP, on every store: each route,
//! pagination across pages, owner isolation, scope escalation refused,
//! every bad input answered with a problem that changes nothing, and a key
//! revoked through the API refused by the layer at once. PostgreSQL runs
//! when `TEST_POSTGRES_URL` is set (and says so loudly when it is not).

mod backends;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::Request;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::get;
use backends::{PgSchema, SchemaStore as _, SqliteFile as _, TempDir};
use chrono::{Duration, Utc};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tower_api_keys::event::{Actor, KeyEvent, KeyEventKind};
use tower_api_keys::record::{OwnerId, Scopes};
use tower_api_keys::store::ListKeys;
use tower_api_keys::{ApiKeys, KeyStore, MemoryStore, NewKey};

/// The API nested at `/api` on a loopback port, beside a route of the
/// application's behind the same keys.
struct Api {
    base: String,
    http: reqwest::Client,
    keys: ApiKeys,
    events: Arc<Mutex<Vec<KeyEvent>>>,
}

impl Api {
    async fn start(store: impl KeyStore) -> Self {
        let events = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&events);
        let keys = ApiKeys::builder(store)
            .on_key_event(move |event| sink.lock().unwrap().push(event.clone()))
            .build()
            .unwrap();
        let app = Router::new()
            .route("/app", get(|| async { "ok" }))
            .route_layer(keys.layer())
            .nest("/api", keys.management().mounted_at("/api").router());
        let addr: SocketAddr = test_support::serve(app).await;
        Self {
            base: format!("http://{addr}/api"),
            http: test_support::client(),
            keys,
            events,
        }
    }

    async fn key(&self, new: NewKey) -> (String, String) {
        let created = self.keys.create(new).await.unwrap();
        (
            created.secret.expose_secret().to_owned(),
            created.record.id.to_string(),
        )
    }

    fn request(&self, method: reqwest::Method, path: &str, key: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(key)
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> (StatusCode, Value) {
        let response = request.send().await.unwrap();
        let status = response.status();
        assert_eq!(
            response.headers()["cache-control"],
            "no-store",
            "every answer of the API is no-store"
        );
        let text = response.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn get(&self, path: &str, key: &str) -> (StatusCode, Value) {
        self.send(self.request(reqwest::Method::GET, path, key))
            .await
    }

    async fn post(&self, path: &str, key: &str, body: Value) -> (StatusCode, Value) {
        self.send(self.request(reqwest::Method::POST, path, key).json(&body))
            .await
    }

    async fn patch(&self, path: &str, key: &str, body: Value) -> (StatusCode, Value) {
        self.send(self.request(reqwest::Method::PATCH, path, key).json(&body))
            .await
    }

    /// Every key the owner has, straight from the store.
    async fn stored(&self, owner: &str) -> Vec<tower_api_keys::record::KeyRecord> {
        stored(&self.keys, owner).await
    }
}

/// The records the store holds for `owner`.
async fn stored(keys: &ApiKeys, owner: &str) -> Vec<tower_api_keys::record::KeyRecord> {
    let query = ListKeys::new().owner(owner).limit(ListKeys::MAX_LIMIT);
    keys.store().list(&query).await.unwrap().records
}

fn problem_type(body: &Value) -> &str {
    body["type"]
        .as_str()
        .and_then(|t| t.strip_prefix("urn:tower-api-keys:problem:"))
        .unwrap_or_else(|| panic!("not a problem: {body}"))
}

/// Everything, in order, against one store.
async fn exercise(store: impl KeyStore) {
    let api = Api::start(store).await;
    let (manager, manager_id) = api
        .key(NewKey::new("acct_a", "admin").scopes(Scopes::only(["keys:manage", "projects:read"])))
        .await;
    let (_root, root_id) = api.key(NewKey::new("acct_a", "root")).await;
    let (reader, _) = api
        .key(NewKey::new("acct_a", "reader").scopes(Scopes::only(["projects:read"])))
        .await;

    // Create: 201, the secret once, never a hash.
    let expires = (Utc::now() + Duration::days(30)).to_rfc3339();
    let (status, created) = api
        .post(
            "/keys",
            &manager,
            json!({"name": "Claude Desktop", "expires_at": expires, "scopes": ["projects:read"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let secret = created["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("bmc_"));
    let id = created["key"]["id"].as_str().unwrap().to_owned();
    assert_eq!(created["key"]["status"], "active");
    assert_eq!(created["key"]["scopes"], json!(["projects:read"]));
    assert!(secret.starts_with(created["key"]["display_prefix"].as_str().unwrap()));
    assert!(created["key"].get("hash").is_none());

    // Get: the same record, without the secret.
    let (status, got) = api.get(&format!("/keys/{id}"), &manager).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(got, created["key"]);
    assert!(!got.to_string().contains(&secret));

    // The new key works on the application's route.
    let app = format!("{}/app", api.base.trim_end_matches("/api"));
    let status = api
        .http
        .get(&app)
        .bearer_auth(&secret)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, StatusCode::OK);

    // Scopes: a subset only; omitted means the caller's own.
    let before = api.stored("acct_a").await.len();
    let (status, body) = api
        .post(
            "/keys",
            &manager,
            json!({"name": "x", "scopes": ["projects:write"]}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(problem_type(&body), "scope-escalation");
    let (status, body) = api
        .post(&format!("/keys/{root_id}/roll"), &manager, json!({}))
        .await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "a scoped key cannot roll a full-access one"
    );
    assert_eq!(problem_type(&body), "scope-escalation");
    assert_eq!(
        api.stored("acct_a").await.len(),
        before,
        "refusals create nothing"
    );
    let (status, body) = api
        .post("/keys", &manager, json!({"name": "inherits"}))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(
        body["key"]["scopes"],
        json!(["keys:manage", "projects:read"])
    );
    let (status, body) = api.get("/keys", &reader).await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "keys:manage is required: {body}"
    );
    assert_eq!(body["error"], "insufficient_scope");

    // Pagination: every key once, newest first, across pages of 2.
    for n in 0..4 {
        let (status, _) = api
            .post("/keys", &manager, json!({"name": format!("k{n}")}))
            .await;
        assert_eq!(status, StatusCode::CREATED);
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/keys?limit=2&cursor={c}"),
            None => "/keys?limit=2".to_owned(),
        };
        let (status, page) = api.get(&path, &manager).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let keys = page["keys"].as_array().unwrap();
        assert!(keys.len() <= 2);
        seen.extend(keys.iter().map(|k| k["id"].as_str().unwrap().to_owned()));
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    let stored: Vec<String> = api
        .stored("acct_a")
        .await
        .iter()
        .map(|r| r.id.to_string())
        .collect();
    assert_eq!(seen, stored, "every key once, newest first");

    // Rename.
    let (status, body) = api
        .patch(
            &format!("/keys/{id}"),
            &manager,
            json!({"name": "Work Laptop"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["name"], "Work Laptop");
    assert_eq!(
        api.get(&format!("/keys/{id}"), &manager).await.1["name"],
        "Work Laptop"
    );

    // Roll: a new secret, the old key expiring after the overlap.
    let (status, rolled) = api
        .post(
            &format!("/keys/{id}/roll"),
            &manager,
            json!({"overlap": 60}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{rolled}");
    assert_eq!(rolled["key"]["name"], "Work Laptop");
    assert_ne!(rolled["secret"], secret);
    let old = api.get(&format!("/keys/{id}"), &manager).await.1;
    let old_expiry: chrono::DateTime<Utc> = old["expires_at"].as_str().unwrap().parse().unwrap();
    assert!(old_expiry <= Utc::now() + Duration::seconds(61));

    // Revoke: irreversible, idempotent, refused by the layer at once.
    let rolled_id = rolled["key"]["id"].as_str().unwrap().to_owned();
    let rolled_secret = rolled["secret"].as_str().unwrap().to_owned();
    let (status, revoked) = api
        .post(&format!("/keys/{rolled_id}/revoke"), &manager, Value::Null)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(revoked["status"], "revoked");
    let (status, again) = api
        .post(&format!("/keys/{rolled_id}/revoke"), &manager, Value::Null)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again["revoked_at"], revoked["revoked_at"]);
    let status = api
        .http
        .get(&app)
        .bearer_auth(&rolled_secret)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, body) = api
        .post(&format!("/keys/{rolled_id}/roll"), &manager, json!({}))
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(problem_type(&body), "key-revoked");
    // The managing key revoked through the API: its next call is refused.
    let (doomed, doomed_id) = api.key(NewKey::new("acct_a", "doomed")).await;
    let (status, _) = api
        .post(&format!("/keys/{doomed_id}/revoke"), &doomed, Value::Null)
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = api.get("/keys", &doomed).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"], "invalid_token");

    // Owner isolation: another owner's keys answer 404 and stay as they were.
    let (other, _) = api.key(NewKey::new("acct_b", "b-admin")).await;
    let before = api.stored("acct_a").await;
    for (status, body) in [
        api.get(&format!("/keys/{id}"), &other).await,
        api.patch(&format!("/keys/{id}"), &other, json!({"name": "mine"}))
            .await,
        api.post(&format!("/keys/{id}/revoke"), &other, Value::Null)
            .await,
        api.post(&format!("/keys/{id}/roll"), &other, json!({}))
            .await,
    ] {
        assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
        assert_eq!(problem_type(&body), "not-found");
    }
    let (_, page) = api.get("/keys", &other).await;
    assert_eq!(
        page["keys"].as_array().unwrap().len(),
        1,
        "only acct_b's own key"
    );
    assert_eq!(api.stored("acct_a").await, before);

    bad_inputs(&api, &manager, &id).await;
    cross_site_and_lifetime(&api, &manager, &id, &root_id).await;

    // Every action named the managing key, and no event carried a secret.
    let events = api.events.lock().unwrap().clone();
    let by_manager = |event: &KeyEvent| match &event.kind {
        KeyEventKind::Created { actor }
        | KeyEventKind::Renamed { actor, .. }
        | KeyEventKind::Rolled { actor, .. }
        | KeyEventKind::Revoked { actor, .. } => actor == &Actor::Key(manager_id.parse().unwrap()),
        _ => false,
    };
    let names: Vec<&str> = events
        .iter()
        .filter(|e| by_manager(e))
        .map(|e| e.kind.name())
        .collect();
    assert!(names.contains(&"renamed") && names.contains(&"rolled") && names.contains(&"revoked"));
    assert_eq!(names.iter().filter(|n| **n == "created").count(), 8);
    for event in &events {
        let text = serde_json::to_string(event).unwrap();
        assert!(!text.contains(&secret) && !text.contains(&rolled_secret));
    }
}

/// Each bad input: a 4xx problem that says what is wrong, and nothing
/// changed in the store.
async fn bad_inputs(api: &Api, manager: &str, id: &str) {
    let before = api.stored("acct_a").await;
    let past = (Utc::now() - Duration::minutes(1)).to_rfc3339();
    let long = "n".repeat(201);
    let cases: Vec<(&str, reqwest::RequestBuilder, StatusCode, &str)> = vec![
        (
            "empty name",
            post_json(api, manager, "/keys", json!({"name": ""})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-name",
        ),
        (
            "long name",
            post_json(api, manager, "/keys", json!({"name": long})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-name",
        ),
        (
            "control character",
            post_json(api, manager, "/keys", json!({"name": "a\u{1b}[2J"})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-name",
        ),
        (
            "bidi override",
            post_json(api, manager, "/keys", json!({"name": "\u{202E}evil"})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-name",
        ),
        (
            "expiry in the past",
            post_json(
                api,
                manager,
                "/keys",
                json!({"name": "x", "expires_at": past}),
            ),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-expiry",
        ),
        (
            "unknown field",
            post_json(
                api,
                manager,
                "/keys",
                json!({"name": "x", "owner": "acct_b"}),
            ),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-body",
        ),
        (
            "wrong type",
            post_json(api, manager, "/keys", json!({"name": 5})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-body",
        ),
        (
            "bad scope",
            post_json(
                api,
                manager,
                "/keys",
                json!({"name": "x", "scopes": ["a b"]}),
            ),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-scopes",
        ),
        (
            "not JSON",
            api.request(reqwest::Method::POST, "/keys", manager)
                .header("content-type", "application/json")
                .body("{"),
            StatusCode::BAD_REQUEST,
            "malformed-body",
        ),
        (
            "wrong content type",
            api.request(reqwest::Method::POST, "/keys", manager)
                .header("content-type", "text/plain")
                .body(r#"{"name":"x"}"#),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
        ),
        (
            "body too large",
            post_json(api, manager, "/keys", json!({"name": "x".repeat(20_000)})),
            StatusCode::PAYLOAD_TOO_LARGE,
            "body-too-large",
        ),
        (
            "malformed id",
            api.request(reqwest::Method::GET, "/keys/not-a-uuid", manager),
            StatusCode::BAD_REQUEST,
            "invalid-id",
        ),
        (
            "malformed cursor",
            api.request(reqwest::Method::GET, "/keys?cursor=zz", manager),
            StatusCode::BAD_REQUEST,
            "invalid-query",
        ),
        (
            "limit out of range",
            api.request(reqwest::Method::GET, "/keys?limit=1000", manager),
            StatusCode::BAD_REQUEST,
            "invalid-query",
        ),
        (
            "unknown parameter",
            api.request(reqwest::Method::GET, "/keys?owner=acct_b", manager),
            StatusCode::BAD_REQUEST,
            "invalid-query",
        ),
        (
            "rename to nothing",
            api.request(reqwest::Method::PATCH, &format!("/keys/{id}"), manager)
                .json(&json!({"name": ""})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-name",
        ),
        (
            "overlap too long",
            post_json(
                api,
                manager,
                &format!("/keys/{id}/roll"),
                json!({"overlap": 99_999_999}),
            ),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-overlap",
        ),
        (
            "no such route",
            api.request(reqwest::Method::GET, "/nothing", manager),
            StatusCode::NOT_FOUND,
            "no-such-route",
        ),
    ];
    for (what, request, status, kind) in cases {
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), status, "{what}");
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json",
            "{what}"
        );
        let body: Value = response.json().await.unwrap();
        assert_eq!(problem_type(&body), kind, "{what}: {body}");
        assert_eq!(body["status"], status.as_u16(), "{what}");
        assert!(!body["detail"].as_str().unwrap().is_empty(), "{what}");
    }
    assert_eq!(
        api.stored("acct_a").await,
        before,
        "bad input changes nothing"
    );
}

/// Another site's page cannot change keys, and a key that expires cannot
/// make or roll into one that outlives it.
async fn cross_site_and_lifetime(api: &Api, manager: &str, id: &str, forever_id: &str) {
    let before = api.stored("acct_a").await;
    for (header, value) in [
        ("origin", "http://evil.example"),
        ("sec-fetch-site", "cross-site"),
        ("sec-fetch-site", "same-site"),
    ] {
        let response = post_json(api, manager, "/keys", json!({"name": "csrf"}))
            .header(header, value)
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            StatusCode::FORBIDDEN,
            "{header}: {value}"
        );
        let body: Value = response.json().await.unwrap();
        assert_eq!(problem_type(&body), "cross-site");
        let response = api
            .request(
                reqwest::Method::POST,
                &format!("/keys/{id}/revoke"),
                manager,
            )
            .header(header, value)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
    }
    assert_eq!(api.stored("acct_a").await, before, "nothing changed");
    // The page's own requests, and reads from anywhere, go through.
    let origin = api.base.trim_end_matches("/api").to_owned();
    let response = api
        .request(reqwest::Method::GET, "/keys", manager)
        .header("origin", "http://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
    let response = post_json(api, manager, "/keys", json!({"name": "same origin"}))
        .header("origin", &origin)
        .header("sec-fetch-site", "same-origin")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);

    let expires = Utc::now() + Duration::days(1);
    let (temporary, _) = api
        .key(NewKey::new("acct_a", "temporary").expires_at(expires))
        .await;
    let later = (expires + Duration::days(1)).to_rfc3339();
    let (status, body) = api
        .post(
            "/keys",
            &temporary,
            json!({"name": "forever", "expires_at": later}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(problem_type(&body), "outlives-caller");
    let (status, body) = api
        .post("/keys", &temporary, json!({"name": "child"}))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let child_expiry: chrono::DateTime<Utc> =
        body["key"]["expires_at"].as_str().unwrap().parse().unwrap();
    assert!(
        child_expiry <= expires,
        "a child expires with its parent at the latest"
    );
    let (status, body) = api
        .post(&format!("/keys/{forever_id}/roll"), &temporary, json!({}))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(problem_type(&body), "outlives-caller");
}

fn post_json(api: &Api, key: &str, path: &str, body: Value) -> reqwest::RequestBuilder {
    api.request(reqwest::Method::POST, path, key).json(&body)
}

#[tokio::test]
async fn the_api_on_the_memory_store() {
    exercise(MemoryStore::new()).await;
}

#[tokio::test]
async fn the_api_on_sqlite() {
    let dir = TempDir::new();
    exercise(dir.sqlite_store("keys.db").await).await;
}

#[tokio::test]
async fn the_api_on_postgres() {
    PgSchema::run(|schema| async move { exercise(schema.store().await).await }).await;
}

/// The application's own login names the owner: such a caller manages that
/// owner's keys with any scopes; a request without one gets 403.
#[tokio::test]
async fn owners_named_by_the_application_manage_their_keys() {
    async fn login(mut request: Request, next: Next) -> Response {
        let owner = request
            .headers()
            .get("x-test-login")
            .and_then(|v| v.to_str().ok())
            .map(OwnerId::new);
        if let Some(owner) = owner {
            request.extensions_mut().insert(owner);
        }
        next.run(request).await
    }
    let keys = ApiKeys::builder(MemoryStore::new()).build().unwrap();
    let app = Router::new()
        .nest(
            "/settings",
            keys.management().owner_from_extensions().router(),
        )
        .layer(middleware::from_fn(login));
    let base = format!("http://{}/settings", test_support::serve(app).await);
    let http = test_support::client();

    let response = http
        .post(format!("{base}/keys"))
        .header("x-test-login", "acct_9")
        .json(&json!({"name": "ci", "scopes": ["deploy"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let created: Value = response.json().await.unwrap();
    let identity = keys
        .authenticate(created["secret"].as_str().unwrap())
        .await
        .unwrap();
    assert_eq!(identity.owner().as_str(), "acct_9");

    let response = http.get(format!("{base}/keys")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let body: Value = response.json().await.unwrap();
    assert_eq!(problem_type(&body), "no-owner");
    // A key is no login here.
    let response = http
        .get(format!("{base}/keys"))
        .bearer_auth(created["secret"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);

    let other: Value = http
        .get(format!("{base}/keys"))
        .header("x-test-login", "acct_other")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(other["keys"], json!([]));
}

/// The document: OpenAPI 3.1, served without a key, with the bearer scheme
/// and the scope, and each route.
#[tokio::test]
async fn the_openapi_document_is_served_without_a_key() {
    let api = Api::start(MemoryStore::new()).await;
    let response = api
        .http
        .get(format!("{}/openapi.json", api.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let document: Value = response.json().await.unwrap();
    assert_eq!(document["openapi"], "3.1.0");
    assert_eq!(document["servers"][0]["url"], "/api");
    assert_eq!(
        document["components"]["securitySchemes"]["api_key"]["scheme"],
        "bearer"
    );
    assert_eq!(document["security"][0]["api_key"], json!(["keys:manage"]));
    for (path, method) in [
        ("/keys", "get"),
        ("/keys", "post"),
        ("/keys/{id}", "get"),
        ("/keys/{id}", "patch"),
        ("/keys/{id}/revoke", "post"),
        ("/keys/{id}/roll", "post"),
    ] {
        let operation = &document["paths"][path][method];
        assert!(operation.is_object(), "{method} {path}");
        assert!(operation["responses"]["401"].is_object(), "{method} {path}");
    }
    assert!(document.to_string().len() < 64 * 1024);
}

/// The log of a management session: each action one event naming the
/// calling key, each refused reach past its power one line; no secret.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_names_actions_and_refusals_and_holds_no_secret() {
    let capture = test_support::Capture::default();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::INFO)
        .with_writer(capture.clone())
        .with_ansi(false)
        .init();
    let api = Api::start(MemoryStore::new()).await;
    let (manager, manager_id) = api
        .key(NewKey::new("acct_a", "admin").scopes(Scopes::only(["keys:manage"])))
        .await;
    let (status, created) = api.post("/keys", &manager, json!({"name": "laptop"})).await;
    assert_eq!(status, StatusCode::CREATED);
    let secret = created["secret"].as_str().unwrap().to_owned();
    let id = created["key"]["id"].as_str().unwrap().to_owned();
    let (status, _) = api
        .post("/keys", &manager, json!({"name": "x", "scopes": ["admin"]}))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = api
        .post(&format!("/keys/{id}/revoke"), &manager, Value::Null)
        .await;
    assert_eq!(status, StatusCode::OK);
    let log = capture.text();
    let created_line = log
        .lines()
        .find(|l| l.contains("API key created") && l.contains(&id))
        .unwrap_or_else(|| panic!("no created event in {log}"));
    assert!(
        created_line.contains(&manager_id),
        "the actor is named: {created_line}"
    );
    assert!(
        created_line.contains(
            &created["key"]["display_prefix"]
                .as_str()
                .unwrap()
                .to_owned()
        )
    );
    assert!(
        log.lines()
            .any(|l| l.contains("API key revoked") && l.contains(&id))
    );
    assert!(
        log.lines()
            .any(|l| l.contains("refused") && l.contains("scope-escalation"))
    );
    assert!(
        !log.contains(&secret) && !log.contains(&manager),
        "no secret in the log"
    );
}

/// The keys the owner has named `name` that are still active now.
async fn active_named(api: &Api, owner: &str, name: &str) -> usize {
    let now = Utc::now();
    api.stored(owner)
        .await
        .iter()
        .filter(|r| r.name == name && r.status_at(now) == tower_api_keys::record::KeyStatus::Active)
        .count()
}

/// A managing key revoked while its request's body is still coming makes
/// nothing: the key is checked again once the body is in, before the call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_managing_key_revoked_while_its_body_comes_changes_nothing() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let api = Api::start(MemoryStore::new()).await;
    let (manager, manager_id) = api.key(NewKey::new("acct_a", "admin")).await;
    let body = br#"{"name":"made by a revoked key"}"#;
    let addr = api
        .base
        .trim_start_matches("http://")
        .trim_end_matches("/api");
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /api/keys HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nAuthorization: Bearer {manager}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    tcp.write_all(head.as_bytes()).await.unwrap();
    tcp.write_all(&body[..4]).await.unwrap();
    // The layer has let the request in; now the key is revoked.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    api.keys
        .revoke(&OwnerId::new("acct_a"), &manager_id.parse().unwrap())
        .await
        .unwrap();
    tcp.write_all(&body[4..]).await.unwrap();
    let mut answer = String::new();
    tcp.read_to_string(&mut answer).await.unwrap();
    let status = answer.split(' ').nth(1).unwrap_or_default();
    assert_eq!(status, "401", "{answer}");
    assert!(answer.contains("invalid_token"), "{answer}");
    assert_eq!(
        active_named(&api, "acct_a", "made by a revoked key").await,
        0
    );
}

/// A roll racing a revocation of the same key: once the revocation has
/// answered, the roll does not hand out a live successor.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_roll_racing_a_revocation_leaves_no_live_successor() {
    let store = Arc::new(tower_api_keys::test_util::ScriptedStore::new());
    let api = Arc::new(Api::start(Arc::clone(&store)).await);
    let (manager, _) = api.key(NewKey::new("acct_a", "admin")).await;
    let (_, id) = api.key(NewKey::new("acct_a", "leaked")).await;
    let insert = store.gate(tower_api_keys::test_util::StoreMethod::Insert);
    insert.close();
    let roll = tokio::spawn({
        let api = Arc::clone(&api);
        let path = format!("/keys/{id}/roll");
        async move { api.post(&path, &manager, json!({})).await }
    });
    while insert.waiting() == 0 {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    // The roll has read the key as active and is making the successor.
    api.keys
        .revoke(&OwnerId::new("acct_a"), &id.parse().unwrap())
        .await
        .unwrap();
    insert.open();
    let (status, body) = roll.await.unwrap();
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(problem_type(&body), "key-revoked");
    assert_eq!(active_named(&api, "acct_a", "leaked").await, 0);
}

/// Two rolls of one key at once: one successor, not two.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_rolls_of_one_key_make_one_successor() {
    let store = Arc::new(tower_api_keys::test_util::ScriptedStore::new());
    let api = Arc::new(Api::start(Arc::clone(&store)).await);
    let (manager, _) = api.key(NewKey::new("acct_a", "admin")).await;
    let (_, id) = api.key(NewKey::new("acct_a", "ci")).await;
    let insert = store.gate(tower_api_keys::test_util::StoreMethod::Insert);
    insert.close();
    let roll = |api: Arc<Api>, manager: String| {
        let path = format!("/keys/{id}/roll");
        tokio::spawn(async move { api.post(&path, &manager, json!({"overlap": 3600})).await })
    };
    let first = roll(Arc::clone(&api), manager.clone());
    while insert.waiting() == 0 {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let second = roll(Arc::clone(&api), manager.clone());
    // The second either answers by itself or reaches the store too.
    for _ in 0..200 {
        if second.is_finished() || insert.waiting() > 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    insert.open();
    let mut statuses = vec![first.await.unwrap(), second.await.unwrap()];
    statuses.sort_by_key(|(status, _)| status.as_u16());
    assert_eq!(statuses[0].0, StatusCode::CREATED, "{:?}", statuses);
    assert_eq!(statuses[1].0, StatusCode::CONFLICT, "{:?}", statuses);
    assert_eq!(problem_type(&statuses[1].1), "roll-in-progress");
    // The old key (in its overlap) and one successor.
    assert_eq!(active_named(&api, "acct_a", "ci").await, 2);
}

/// A key with its own rate limit and metadata cannot mint a key without
/// them: the new key has the caller's allowance and metadata.
#[tokio::test]
async fn a_rate_limited_key_mints_no_unlimited_key() {
    let api = Api::start(MemoryStore::new()).await;
    let limit = tower_api_keys::limit::RateLimit::per_minute(3);
    let limited = NewKey::new("acct_a", "limited")
        .metadata(json!({"plan": "free"}))
        .rate_limit(limit);
    let (manager, _) = api.key(limited).await;
    let (status, body) = api.post("/keys", &manager, json!({"name": "child"})).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let child = api
        .stored("acct_a")
        .await
        .into_iter()
        .find(|r| r.name == "child")
        .unwrap();
    assert_eq!(
        child.rate_limit,
        Some(limit),
        "the child escapes the caller's allowance"
    );
    assert_eq!(child.metadata, json!({"plan": "free"}));
}

/// An owner's usable keys are capped: concurrent creates past the cap get
/// 409 `too-many-keys` and create nothing, whatever their number; a
/// revoked key frees its place, and another owner is not affected.
#[tokio::test]
async fn creates_past_the_owners_cap_are_refused_even_when_concurrent() {
    let keys = ApiKeys::builder(MemoryStore::new()).build().unwrap();
    let app = Router::new().nest(
        "/api",
        keys.management()
            .mounted_at("/api")
            .max_keys_per_owner(5)
            .router(),
    );
    let addr: SocketAddr = test_support::serve(app).await;
    let manager = keys.create(NewKey::new("acct_a", "manager")).await.unwrap();
    let manager = manager.secret.expose_secret().to_owned();
    let http = test_support::client();
    let create = |name: String| {
        let request = http
            .post(format!("http://{addr}/api/keys"))
            .bearer_auth(&manager)
            .json(&json!({ "name": name }));
        async move {
            let response = request.send().await.unwrap();
            let status = response.status();
            (
                status,
                response.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    };
    let answers = futures_util::future::join_all((0..20).map(|i| create(format!("k{i}")))).await;
    let created: Vec<&Value> = answers
        .iter()
        .filter(|(status, _)| *status == StatusCode::CREATED)
        .map(|(_, body)| body)
        .collect();
    assert_eq!(created.len(), 4, "the manager and four more: {answers:?}");
    for (status, body) in answers.iter().filter(|(s, _)| *s != StatusCode::CREATED) {
        assert_eq!(*status, StatusCode::CONFLICT);
        assert_eq!(problem_type(body), "too-many-keys");
    }
    assert_eq!(
        stored(&keys, "acct_a").await.len(),
        5,
        "nothing made past the cap"
    );

    // A revoked key frees its place; another owner has places of its own.
    let id = created[0]["key"]["id"].as_str().unwrap().parse().unwrap();
    keys.revoke(&OwnerId::from("acct_a"), &id).await.unwrap();
    assert_eq!(create("again".into()).await.0, StatusCode::CREATED);
    assert_eq!(create("over".into()).await.0, StatusCode::CONFLICT);
    let other = keys.create(NewKey::new("acct_b", "manager")).await.unwrap();
    let response = http
        .post(format!("http://{addr}/api/keys"))
        .bearer_auth(other.secret.expose_secret())
        .json(&json!({ "name": "b1" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
}

/// The API's own allowance per owner: past it, 429 `rate-limited` with
/// `Retry-After`, for every caller of that owner; another owner is not
/// affected, and a refused call changes nothing.
#[tokio::test]
async fn the_management_routes_have_an_allowance_of_their_own_per_owner() {
    let keys = ApiKeys::builder(MemoryStore::new()).build().unwrap();
    let app = Router::new().nest(
        "/api",
        keys.management()
            .mounted_at("/api")
            .rate_limit(tower_api_keys::limit::RateLimit::per_minute(3))
            .router(),
    );
    let addr: SocketAddr = test_support::serve(app).await;
    let a1 = keys.create(NewKey::new("acct_a", "one")).await.unwrap();
    let a2 = keys.create(NewKey::new("acct_a", "two")).await.unwrap();
    let b = keys.create(NewKey::new("acct_b", "b")).await.unwrap();
    let http = test_support::client();
    let call = |key: &str, create: bool| {
        let url = format!("http://{addr}/api/keys");
        let request = if create {
            http.post(url).json(&json!({"name": "more"}))
        } else {
            http.get(url)
        };
        let request = request.bearer_auth(key);
        async move { request.send().await.unwrap() }
    };
    let (a1, a2) = (a1.secret.expose_secret(), a2.secret.expose_secret());
    for key in [a1, a2, a1] {
        assert_eq!(call(key, false).await.status(), StatusCode::OK);
    }
    // The owner's fourth call of the minute, by either of its keys.
    let refused = call(a2, true).await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    let body: Value = refused.json().await.unwrap();
    assert_eq!(problem_type(&body), "rate-limited");
    assert_eq!(
        stored(&keys, "acct_a").await.len(),
        2,
        "the refused create made nothing"
    );
    assert_eq!(
        call(b.secret.expose_secret(), false).await.status(),
        StatusCode::OK
    );
}
