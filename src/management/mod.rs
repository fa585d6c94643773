//! A JSON API for managing keys (feature `management`): list, create, get,
//! rename, revoke and roll, as an axum [`Router`] an application nests where
//! it likes, with its OpenAPI 3.1 document.
//!
//! | route | answers |
//! |---|---|
//! | `GET /keys?cursor=&limit=` | 200, one page of the caller's keys, newest first |
//! | `POST /keys` `{"name", "expires_at"?, "scopes"?}` | 201, the key and its secret, once |
//! | `GET /keys/{id}` | 200, the key |
//! | `PATCH /keys/{id}` `{"name"}` | 200, the renamed key |
//! | `POST /keys/{id}/revoke` | 200, the revoked key (irreversible; again is a no-op) |
//! | `POST /keys/{id}/roll` `{"overlap"?}` | 201, the new key and its secret, once |
//! | `GET /openapi.json` | 200, the document, without a key |
//!
//! **Who may manage.** By default the caller is an API key: the router puts
//! the crate's layer in front of its routes, requiring the scope
//! [`ManagementApi::DEFAULT_SCOPE`], and the caller manages its owner's
//! keys. With [`ManagementApi::owner_from_extensions`], the application's
//! own authentication (a session login) says who is calling by putting an
//! [`OwnerId`] in the request's extensions. Either way a caller never sees
//! or touches another owner's keys (they answer 404), and a key never mints
//! a key with scopes it does not hold itself, nor one that outlives it, and
//! never renames, revokes or rolls a key with scopes it lacks (a leaked
//! `keys:manage` key cannot lock its owner out of full-access keys). A request that changes keys from another site's page (by
//! `Sec-Fetch-Site`, else `Origin` against `Host`) is refused with 403, so a
//! session login cannot be ridden across sites.
//!
//! **Errors** are RFC 9457 problem details (`application/problem+json`)
//! whose `type` is `urn:tower-api-keys:problem:` followed by a
//! [`ProblemKind::slug`]; refusals of the key itself come from the layer as
//! RFC 6750 challenges. Every answer carries `Cache-Control: no-store`.
//! Bodies are at most [`ManagementApi::MAX_BODY`] bytes of `application/json`
//! without unknown fields.
//!
//! Every action is one [`KeyEvent`](crate::event::KeyEvent), logged and handed to
//! [`on_key_event`](crate::ApiKeysBuilder::on_key_event), naming the calling
//! key ([`Actor::Key`](crate::event::Actor::Key)) or owner.
//!
//! ```
//! use axum::Router;
//! use tower_api_keys::{ApiKeys, MemoryStore};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let keys = ApiKeys::builder(MemoryStore::new()).build()?;
//! // `/api/v2/keys`, managed with keys that hold `keys:manage`.
//! let app: Router = Router::new().nest(
//!     "/api/v2",
//!     keys.management().mounted_at("/api/v2").router(),
//! );
//! # drop(app);
//! # Ok(())
//! # }
//! ```
//!
//! Behind a session login of the application's own instead:
//!
//! ```
//! use axum::{Router, extract::Request, middleware::{self, Next}, response::Response};
//! use tower_api_keys::{ApiKeys, MemoryStore};
//! use tower_api_keys::record::OwnerId;
//!
//! async fn session(mut request: Request, next: Next) -> Response {
//!     // The application's own check of its session cookie goes here.
//!     request.extensions_mut().insert(OwnerId::new("acct_1"));
//!     next.run(request).await
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let keys = ApiKeys::builder(MemoryStore::new()).build()?;
//! let app: Router = Router::new()
//!     .nest("/settings", keys.management().owner_from_extensions().router())
//!     .layer(middleware::from_fn(session));
//! # drop(app);
//! # Ok(())
//! # }
//! ```

use std::fmt;
use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware::map_response;
use axum::response::Response;
use axum::routing::{get, post};
use http::HeaderValue;
use http::header::{CACHE_CONTROL, X_CONTENT_TYPE_OPTIONS};

use crate::api_keys::ApiKeys;
#[cfg(doc)]
use crate::record::OwnerId;

mod handlers;
mod limit;
mod openapi;
mod problem;
mod wire;

pub use problem::{PROBLEM_TYPE_PREFIX, Problem, ProblemKind};
pub use wire::{
    BearerError, CreateKey, CreatedKey, Key, KeyPage, ListParams, ProblemDetails, RenameKey,
    RollKey,
};

/// What the routes share.
#[derive(Clone)]
pub(crate) struct Context {
    keys: ApiKeys,
    /// Callers are named by an `OwnerId` extension, not by a key.
    by_owner: bool,
    /// Most usable keys one owner may hold through this API.
    max_keys_per_owner: usize,
    /// Held while a create counts the owner's keys and makes one, so that
    /// concurrent creates of this process cannot pass the cap together.
    creating: Arc<tokio::sync::Mutex<()>>,
    /// The routes' own allowance per owner, if one is set.
    allowance: Option<Arc<limit::OwnerAllowance>>,
}

/// The management API of one [`ApiKeys`], to configure and turn into a
/// [`Router`] (see the [module](self) for the routes).
#[derive(Clone)]
#[must_use]
pub struct ManagementApi {
    keys: ApiKeys,
    scope: Option<String>,
    by_owner: bool,
    mount: String,
    max_keys_per_owner: usize,
    rate_limit: Option<crate::limit::RateLimit>,
}

impl ApiKeys {
    /// The management API over these keys, managed by keys that hold
    /// [`ManagementApi::DEFAULT_SCOPE`] unless configured otherwise.
    pub fn management(&self) -> ManagementApi {
        ManagementApi {
            keys: self.clone(),
            scope: Some(ManagementApi::DEFAULT_SCOPE.to_owned()),
            by_owner: false,
            mount: String::new(),
            max_keys_per_owner: ManagementApi::DEFAULT_MAX_KEYS_PER_OWNER,
            rate_limit: None,
        }
    }
}

impl ManagementApi {
    /// The scope a key needs to manage its owner's keys, unless
    /// [`require_scope`](Self::require_scope) says another.
    pub const DEFAULT_SCOPE: &'static str = "keys:manage";
    /// The largest request body taken, in bytes.
    pub const MAX_BODY: usize = 16 * 1024;
    /// Most usable (neither revoked nor expired) keys an owner may hold
    /// before `POST /keys` answers 409 `too-many-keys`, unless
    /// [`max_keys_per_owner`](Self::max_keys_per_owner) says otherwise.
    pub const DEFAULT_MAX_KEYS_PER_OWNER: usize = 1000;

    /// Caps the usable keys one owner may hold through `POST /keys`
    /// (default [`DEFAULT_MAX_KEYS_PER_OWNER`](Self::DEFAULT_MAX_KEYS_PER_OWNER)):
    /// past it, 409 `too-many-keys` until one is revoked or expires. Rolls
    /// replace a key and are not capped. Concurrent creates of one process
    /// are counted one at a time; across processes, each in flight may
    /// pass it by one.
    pub fn max_keys_per_owner(mut self, max: usize) -> Self {
        self.max_keys_per_owner = max;
        self
    }

    /// An allowance of the management routes' own, per owner (all its
    /// callers together), apart from the keys' rate limits: past it, 429
    /// `rate-limited` with `Retry-After` until the window turns. Counted
    /// in this process, in fixed windows. None by default.
    pub fn rate_limit(mut self, limit: crate::limit::RateLimit) -> Self {
        self.rate_limit = Some(limit);
        self
    }

    /// Requires this scope of managing keys instead of
    /// [`DEFAULT_SCOPE`](Self::DEFAULT_SCOPE). A full-access key holds
    /// every scope.
    pub fn require_scope(mut self, scope: impl Into<String>) -> Self {
        self.scope = Some(scope.into());
        self.by_owner = false;
        self
    }

    /// Lets any valid key manage its owner's keys, whatever its scopes (it
    /// still cannot grant scopes it lacks).
    pub fn any_key(mut self) -> Self {
        self.scope = None;
        self.by_owner = false;
        self
    }

    /// Takes the caller from an [`OwnerId`] that the application's own
    /// authentication puts in the request's extensions, instead of from an
    /// API key; a request without one gets 403. Such a caller may grant any
    /// scope.
    pub fn owner_from_extensions(mut self) -> Self {
        self.by_owner = true;
        self
    }

    /// Where the application nests the router (`/api/v2`), for the
    /// OpenAPI document's server URL.
    pub fn mounted_at(mut self, path: impl Into<String>) -> Self {
        self.mount = path.into().trim_end_matches('/').to_owned();
        self
    }

    /// The OpenAPI 3.1 document of this API, as configured.
    pub fn openapi(&self) -> utoipa::openapi::OpenApi {
        let scope = (!self.by_owner).then(|| self.scope.as_deref().unwrap_or_default());
        openapi::document(&self.mount, scope)
    }

    /// The routes, ready to nest or merge.
    pub fn router<S>(self) -> Router<S>
    where
        S: Clone + Send + Sync + 'static,
    {
        let document =
            Arc::new(serde_json::to_vec(&self.openapi()).expect("an OpenAPI document serializes"));
        let context = Context {
            keys: self.keys.clone(),
            by_owner: self.by_owner,
            max_keys_per_owner: self.max_keys_per_owner,
            creating: Arc::default(),
            allowance: self
                .rate_limit
                .map(|limit| Arc::new(limit::OwnerAllowance::new(limit))),
        };
        let routes = Router::new()
            .route("/keys", get(handlers::list_keys).post(handlers::create_key))
            .route(
                "/keys/{id}",
                get(handlers::get_key).patch(handlers::rename_key),
            )
            .route("/keys/{id}/revoke", post(handlers::revoke_key))
            .route("/keys/{id}/roll", post(handlers::roll_key))
            .method_not_allowed_fallback(handlers::method_not_allowed)
            .with_state(context);
        let routes = match (self.by_owner, &self.scope) {
            (true, _) => routes,
            (false, Some(scope)) => routes.route_layer(self.keys.layer().require_scope(scope)),
            (false, None) => routes.route_layer(self.keys.layer()),
        };
        routes
            .route(
                "/openapi.json",
                get(move || {
                    let document = Arc::clone(&document);
                    async move {
                        (
                            [(http::header::CONTENT_TYPE, "application/json")],
                            document.as_ref().clone(),
                        )
                    }
                }),
            )
            .fallback(handlers::no_such_route)
            .layer(DefaultBodyLimit::max(Self::MAX_BODY))
            .layer(map_response(not_to_be_stored))
    }
}

impl fmt::Debug for ManagementApi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ManagementApi")
            .field("scope", &self.scope)
            .field("by_owner", &self.by_owner)
            .field("mount", &self.mount)
            .field("max_keys_per_owner", &self.max_keys_per_owner)
            .field("rate_limit", &self.rate_limit)
            .finish_non_exhaustive()
    }
}

/// Every answer of the API is one caller's data, and some hold a secret.
async fn not_to_be_stored(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    response
}
