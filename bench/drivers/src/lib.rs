//! The code the benchmark drivers share: the trivial inner service, the
//! request, and the services under comparison, all built the same way
//! ([`Subjects`]), for the criterion bench `benches/layer.rs` and the
//! `hot_path` and `scale` binaries; and the request patterns whose store
//! calls [`lookups`] counts, for `benches/lookups.rs`, `tests/lookups.rs`
//! and `scale`.
//!
//! Not published: a package of the workspace, so that this code is built
//! once, against the crate as any user builds it, instead of being included
//! file by file into each bench, binary and test.

pub mod lookups;
#[cfg(feature = "oauth")]
pub mod tokens;

use std::convert::Infallible;
use std::future::Ready;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::FutureExt as _;
use http::header::AUTHORIZATION;
use http::{HeaderValue, Request, Response};
use http_body_util::Empty;
use tower::{Layer, Service};
use tower_api_keys::key::{KeyHash, KeyHasher};
use tower_api_keys::layer::ApiKeyService;
use tower_api_keys::{ApiKeys, MemoryStore, NewKey};

/// The request and response body of every benchmarked service: empty.
pub type Body = Empty<Bytes>;

/// The cache TTL of the layer and of the floor's cache: longer than a whole
/// benchmark run, so the warmed key never expires mid-run (a miss needs the
/// runtime, and the benchmarked path must not wait). The TTL's length does
/// not change what a read costs.
pub const CACHE_TTL: std::time::Duration = std::time::Duration::from_secs(3600);

/// The trivial inner service of every variant: always ready, answers 200.
#[derive(Debug, Clone, Copy)]
pub struct Ok200;

impl Service<Request<Body>> for Ok200 {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Ready<Result<Response<Body>, Infallible>>;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Infallible>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Request<Body>) -> Self::Future {
        std::future::ready(Ok(Response::new(Body::new())))
    }
}

/// `GET /api/v2/projects` with the given `Authorization` value.
pub fn request(authorization: &HeaderValue) -> Request<Body> {
    let mut request = Request::new(Body::new());
    *request.uri_mut() = http::Uri::from_static("/api/v2/projects");
    request
        .headers_mut()
        .insert(AUTHORIZATION, authorization.clone());
    request
}

/// Calls a service whose future is ready at once, and returns the status.
pub fn call_now<S, B>(service: &mut S, request: Request<Body>) -> u16
where
    S: Service<Request<Body>, Response = Response<B>>,
    S::Error: std::fmt::Debug,
{
    match service.call(request).now_or_never() {
        Some(Ok(response)) => response.status().as_u16(),
        _ => panic!("the benchmarked path must not wait"),
    }
}

/// Everything the in-process benchmarks compare.
#[derive(Debug)]
pub struct Subjects {
    /// A current-thread runtime: the background tasks run only inside
    /// `block_on`.
    pub runtime: tokio::runtime::Runtime,
    /// The keys behind `ours` and `router_ours`, over a memory store.
    pub keys: ApiKeys,
    /// The one key created in them.
    pub secret: String,
    /// `Bearer <secret>`, already in the cache.
    pub valid: HeaderValue,
    /// `Bearer <secret>` short of its last character: refused by the
    /// format check, before any lookup.
    pub malformed: HeaderValue,
    /// The inner service alone.
    pub bare: Ok200,
    /// The inner service behind the layer.
    pub ours: ApiKeyService<Ok200>,
    /// The layer's hasher, for the floor.
    pub hasher: KeyHasher,
    /// A moka cache configured like the layer's cache of known keys,
    /// holding the key: the floor's one read.
    pub floor_cache: moka::future::Cache<KeyHash, Arc<String>, foldhash::fast::RandomState>,
    /// The quickstart's route in an axum `Router`, without the layer.
    pub router_bare: axum::Router,
    /// The same route behind the layer (`route_layer`), as the quickstart has it.
    pub router_ours: axum::Router,
}

/// The quickstart's JSON body; the owner comes from the key when there is one.
fn project_list(owner: &str) -> axum::Json<serde_json::Value> {
    axum::Json(serde_json::json!([
        {"id": "prj_1", "name": "website", "owner": owner },
        {"id": "prj_2", "name": "mobile-app", "owner": owner },
    ]))
}

impl Default for Subjects {
    fn default() -> Self {
        Self::new()
    }
}

impl Subjects {
    /// Builds every subject and warms the layer's cache with the key.
    pub fn new() -> Self {
        // One thread: the background tasks run only inside `block_on`, so a
        // measurement holds the request path alone.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let keys = {
            let _guard = runtime.enter();
            ApiKeys::builder(MemoryStore::new())
                .cache_ttl(CACHE_TTL)
                .build()
                .expect("build")
        };
        let created = runtime
            .block_on(keys.create(NewKey::new("bench", "bench")))
            .expect("create");
        let secret = created.secret.expose_secret().to_owned();
        let valid = HeaderValue::from_str(&format!("Bearer {secret}")).expect("header");
        let malformed = HeaderValue::from_str(&format!("Bearer {}", &secret[..secret.len() - 1]))
            .expect("header");
        let mut ours = keys.layer().layer(Ok200);
        // The first request looks the key up; every later one hits the cache.
        let warm = runtime
            .block_on(ours.call(request(&valid)))
            .expect("warm-up");
        assert_eq!(warm.status(), 200);
        assert_eq!(call_now(&mut ours, request(&valid)), 200);
        assert_eq!(call_now(&mut ours, request(&malformed)), 401);

        let hasher = KeyHasher::sha256();
        let floor_cache = moka::future::Cache::builder()
            .max_capacity(10_000)
            .time_to_live(CACHE_TTL)
            .build_with_hasher(foldhash::fast::RandomState::default());
        runtime.block_on(floor_cache.insert(hasher.hash(&secret), Arc::new("bench".to_owned())));

        let router_bare = axum::Router::new().route(
            "/api/v2/projects",
            axum::routing::get(|| async { project_list("bench") }),
        );
        let mut router_ours = axum::Router::new()
            .route(
                "/api/v2/projects",
                axum::routing::get(|key: tower_api_keys::AuthenticatedKey| async move {
                    project_list(key.owner().as_str())
                }),
            )
            .route_layer(keys.layer());
        assert_eq!(call_now(&mut router_ours, request(&valid)), 200);
        Self {
            runtime,
            keys,
            secret,
            valid,
            malformed,
            bare: Ok200,
            ours,
            hasher,
            floor_cache,
            router_bare,
            router_ours,
        }
    }

    /// The floor: SHA-256 of the key and one cache read.
    pub fn floor(&self) -> bool {
        let hash = self.hasher.hash(&self.secret);
        let mut read = std::pin::pin!(self.floor_cache.get(&hash));
        matches!(read.as_mut().now_or_never(), Some(Some(_)))
    }
}
