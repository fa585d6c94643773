//! The tower middleware: [`ApiKeyLayer`], the [`ApiKeyService`] it makes,
//! that service's [`ResponseFuture`] and [`ResponseBody`], and (feature
//! `axum`) the extractor of [`AuthenticatedKey`](crate::AuthenticatedKey).
//!
//! Without axum, the layer wraps any `tower::Service<http::Request<B>>`,
//! such as one that hyper serves; handlers find the identity in the
//! request's extensions:
//!
//! ```
//! use std::convert::Infallible;
//!
//! use http::{Request, Response, StatusCode, header::AUTHORIZATION};
//! use tower::{ServiceBuilder, ServiceExt as _, service_fn};
//! use tower_api_keys::{ApiKeys, AuthenticatedKey, MemoryStore, NewKey};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let keys = ApiKeys::builder(MemoryStore::new()).build()?;
//! let created = keys.create(NewKey::new("acct_1", "script")).await?;
//!
//! let service = ServiceBuilder::new()
//!     .layer(keys.layer())
//!     .service(service_fn(|request: Request<String>| async move {
//!         let key = request.extensions().get::<AuthenticatedKey>().cloned();
//!         let name = key.map(|key| key.name().to_owned()).unwrap_or_default();
//!         Ok::<_, Infallible>(Response::new(name))
//!     }));
//! // Serve it with hyper through `hyper_util::service::TowerToHyperService`.
//!
//! let request = Request::get("/")
//!     .header(AUTHORIZATION, format!("Bearer {}", created.secret.expose_secret()))
//!     .body(String::new())?;
//! let response = service.clone().oneshot(request).await?;
//! assert_eq!(response.status(), StatusCode::OK);
//!
//! let anonymous = service.oneshot(Request::get("/").body(String::new())?).await?;
//! assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
//! # keys.shutdown().await;
//! # Ok(())
//! # }
//! ```

use std::fmt;
use std::sync::Arc;

use tower_layer::Layer;

use crate::engine::{Engine, Requirement};

mod body;
#[cfg(feature = "axum")]
mod extract;
mod future;
mod service;

pub use body::ResponseBody;
#[cfg(feature = "axum")]
pub use extract::KeyRejection;
pub use future::ResponseFuture;
#[cfg(feature = "axum")]
pub(crate) use service::Anonymous;
pub use service::ApiKeyService;

/// Requires a valid API key on every request of the service it wraps.
///
/// Made by [`ApiKeys::layer`](crate::ApiKeys::layer). Works with axum's
/// `Router::layer` and `Router::route_layer`, with `tower::ServiceBuilder`,
/// and with any `Service<http::Request<B>>`.
///
/// 1. A request with a credential in its query string gets 400 and nothing
///    is looked up.
/// 2. The key is read from exactly one `Authorization: Bearer` header.
/// 3. A token that is not a key of the configured format gets 401 without a
///    lookup.
/// 4. The key's hash is looked up through the cache; a store failure is a
///    503, never a pass.
/// 5. Expiry is checked against the clock on every request.
/// 6. The key's [`AuthenticatedKey`](crate::AuthenticatedKey) is put in the request's extensions and
///    its use is noted for the background recorder.
#[derive(Clone)]
#[must_use]
pub struct ApiKeyLayer {
    engine: Arc<Engine>,
    requirement: Requirement,
}

impl ApiKeyLayer {
    pub(crate) fn new(engine: Arc<Engine>) -> Self {
        Self {
            engine,
            requirement: Requirement::default(),
        }
    }

    /// Lets requests without credentials (or with another scheme's) through
    /// without an identity; a key that is present must still be valid.
    /// Handlers take `Option<AuthenticatedKey>`.
    pub fn optional(mut self) -> Self {
        self.requirement.optional = true;
        self
    }

    /// Also requires the key to grant `scope`; a key that does not gets 403
    /// `insufficient_scope`.
    pub fn require_scope(mut self, scope: impl Into<String>) -> Self {
        self.requirement.scope = Some(Arc::from(scope.into()));
        self
    }
}

impl fmt::Debug for ApiKeyLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKeyLayer")
            .field("requirement", &self.requirement)
            .finish_non_exhaustive()
    }
}

impl<S> Layer<S> for ApiKeyLayer {
    type Service = ApiKeyService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ApiKeyService::new(inner, Arc::clone(&self.engine), self.requirement.clone())
    }
}
