//! The axum extractor for [`AuthenticatedKey`] (feature `axum`), and
//! [`Rejection`] as an axum response.

use std::fmt;

use axum::body::Body;
use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use http::request::Parts;

use super::Anonymous;
use crate::identity::{AuthenticatedKey, Caller};
use crate::rejection::{Rejection, RejectionReason};

/// Why [`AuthenticatedKey`] could not be extracted.
#[derive(Debug)]
#[non_exhaustive]
pub enum KeyRejection {
    /// The route lets requests without a key through (see
    /// [`ApiKeyLayer::optional`](crate::ApiKeyLayer::optional)) and this one
    /// had none: answered like the layer would, 401 with the challenge.
    Missing(Rejection),
    /// The route is not behind an `ApiKeyLayer`: a setup mistake, answered
    /// with 500.
    LayerMissing,
    /// An OAuth access token authenticated the request, and the handler
    /// takes only keys: 403. Take [`Caller`] to accept either.
    NotAKey,
}

impl fmt::Display for KeyRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Missing(rejection) => write!(f, "no API key: {}", rejection.reason()),
            Self::LayerMissing => {
                f.write_str("AuthenticatedKey was extracted on a route without ApiKeyLayer")
            }
            Self::NotAKey => f.write_str(
                "this route takes an API key; the request was authenticated with an access token",
            ),
        }
    }
}

impl std::error::Error for KeyRejection {}

/// A rejection answered as the layer answers it (the default response, not
/// a custom one from `on_rejection`): for handlers and extractors of the
/// application's own that refuse a request the same way.
impl IntoResponse for Rejection {
    fn into_response(self) -> Response {
        self.default_response().map(Body::from)
    }
}

impl IntoResponse for KeyRejection {
    fn into_response(self) -> Response {
        match self {
            Self::Missing(rejection) => rejection.into_response(),
            Self::LayerMissing => {
                (StatusCode::INTERNAL_SERVER_ERROR, self.to_string()).into_response()
            }
            Self::NotAKey => (StatusCode::FORBIDDEN, self.to_string()).into_response(),
        }
    }
}

/// Extracts the key that authenticated the request.
///
/// ```
/// use axum::{Router, routing::get};
/// use tower_api_keys::{ApiKeys, AuthenticatedKey, MemoryStore};
///
/// async fn whoami(key: AuthenticatedKey) -> String {
///     key.name().to_owned()
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let keys = ApiKeys::builder(MemoryStore::new()).build().unwrap();
/// let app: Router = Router::new().route("/whoami", get(whoami)).layer(keys.layer());
/// # drop(app);
/// # }
/// ```
impl<S: Send + Sync> FromRequestParts<S> for AuthenticatedKey {
    type Rejection = KeyRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        if let Some(key) = parts.extensions.get::<AuthenticatedKey>() {
            return Ok(key.clone());
        }
        if by_token(parts) {
            return Err(KeyRejection::NotAKey);
        }
        Err(no_identity(parts))
    }
}

/// `Option<AuthenticatedKey>`: `None` on an optional route without a key.
impl<S: Send + Sync> OptionalFromRequestParts<S> for AuthenticatedKey {
    type Rejection = KeyRejection;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        match parts.extensions.get::<AuthenticatedKey>() {
            Some(key) => Ok(Some(key.clone())),
            None if by_token(parts) => Ok(None),
            None => none_if_optional(parts),
        }
    }
}

/// Why a request has no identity: an optional route let it in without
/// credentials (answered with the layer's 401), or no layer is in front.
fn no_identity(parts: &Parts) -> KeyRejection {
    match parts.extensions.get::<Anonymous>() {
        Some(Anonymous(inner)) => {
            KeyRejection::Missing(inner.reject(RejectionReason::MissingCredentials, None))
        }
        None => KeyRejection::LayerMissing,
    }
}

/// `None` for a request an optional route let in without credentials;
/// the setup mistake without a layer.
fn none_if_optional<T>(parts: &Parts) -> Result<Option<T>, KeyRejection> {
    match parts.extensions.get::<Anonymous>() {
        Some(_) => Ok(None),
        None => Err(KeyRejection::LayerMissing),
    }
}

/// Whether an access token authenticated the request.
fn by_token(parts: &Parts) -> bool {
    #[cfg(feature = "oauth")]
    {
        parts
            .extensions
            .get::<crate::identity::AccessToken>()
            .is_some()
    }
    #[cfg(not(feature = "oauth"))]
    {
        let _ = parts;
        false
    }
}

/// Extracts whoever authenticated the request, by key or (feature
/// `oauth`) by access token; refused as [`AuthenticatedKey`] is.
impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = KeyRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Caller::from_extensions(&parts.extensions).ok_or_else(|| no_identity(parts))
    }
}

/// `Option<Caller>`: `None` on an optional route without credentials.
impl<S: Send + Sync> OptionalFromRequestParts<S> for Caller {
    type Rejection = KeyRejection;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        match Caller::from_extensions(&parts.extensions) {
            Some(caller) => Ok(Some(caller)),
            None => none_if_optional(parts),
        }
    }
}
