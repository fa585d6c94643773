//! The management API's errors as RFC 9457 problem details. Each kind has a
//! stable `type` (`urn:tower-api-keys:problem:<kind>`), a fixed title and a
//! status; the `detail` says what was wrong with this request.

use axum::response::{IntoResponse, Response};
use http::header::{CONTENT_TYPE, RETRY_AFTER};
use http::{HeaderValue, StatusCode};

use super::wire::ProblemDetails;
use crate::error::ManageError;
use crate::store::StoreError;

/// The prefix of every problem `type` this API answers with.
pub const PROBLEM_TYPE_PREFIX: &str = "urn:tower-api-keys:problem:";

/// A kind of problem: the last part of its `type`, its title and status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProblemKind {
    /// The body is not JSON (400).
    MalformedBody,
    /// The body is JSON of the wrong shape: a missing or unknown field, a
    /// value of the wrong type (422).
    InvalidBody,
    /// The body is not `application/json` (415).
    UnsupportedMediaType,
    /// The body is larger than the API takes (413).
    BodyTooLarge,
    /// A query parameter is unknown, repeated or malformed (400).
    InvalidQuery,
    /// The key id in the path is not a key id (400).
    InvalidId,
    /// The name is empty, too long or has control or bidirectional
    /// formatting characters (422).
    InvalidName,
    /// The expiry is not in the future (422).
    InvalidExpiry,
    /// A scope is empty, too long, has characters a scope cannot hold, or
    /// there are too many (422).
    InvalidScopes,
    /// The overlap of a roll is out of range (422).
    InvalidOverlap,
    /// The caller asked for a key with more power than its own (403).
    ScopeEscalation,
    /// The caller asked for a key that outlives its own (403).
    OutlivesCaller,
    /// A state-changing request came from another site's page (403).
    CrossSite,
    /// The request carries no owner to manage keys for (403).
    NoOwner,
    /// The caller has no key with that id (404).
    NotFound,
    /// No such route (404).
    NoSuchRoute,
    /// The key is revoked, so it cannot be rolled (409).
    KeyRevoked,
    /// The key has expired, so it cannot be rolled (409).
    KeyExpired,
    /// Another call is rolling the key; it is rolled into one successor (409).
    RollInProgress,
    /// The owner holds the most usable keys allowed; one must be revoked
    /// (or expire) first (409).
    TooManyKeys,
    /// The owner used up the management routes' own allowance (429, with
    /// `Retry-After`).
    RateLimited,
    /// The route does not take this method (405).
    MethodNotAllowed,
    /// The key store did not answer; try again (503).
    StoreUnavailable,
    /// The store holds data this crate cannot read (500).
    Internal,
}

impl ProblemKind {
    /// The last part of the problem's `type`.
    pub const fn slug(self) -> &'static str {
        match self {
            Self::MalformedBody => "malformed-body",
            Self::InvalidBody => "invalid-body",
            Self::UnsupportedMediaType => "unsupported-media-type",
            Self::BodyTooLarge => "body-too-large",
            Self::InvalidQuery => "invalid-query",
            Self::InvalidId => "invalid-id",
            Self::InvalidName => "invalid-name",
            Self::InvalidExpiry => "invalid-expiry",
            Self::InvalidScopes => "invalid-scopes",
            Self::InvalidOverlap => "invalid-overlap",
            Self::ScopeEscalation => "scope-escalation",
            Self::OutlivesCaller => "outlives-caller",
            Self::CrossSite => "cross-site",
            Self::NoOwner => "no-owner",
            Self::NotFound => "not-found",
            Self::NoSuchRoute => "no-such-route",
            Self::KeyRevoked => "key-revoked",
            Self::KeyExpired => "key-expired",
            Self::RollInProgress => "roll-in-progress",
            Self::TooManyKeys => "too-many-keys",
            Self::RateLimited => "rate-limited",
            Self::MethodNotAllowed => "method-not-allowed",
            Self::StoreUnavailable => "store-unavailable",
            Self::Internal => "internal",
        }
    }

    /// A short, fixed summary.
    pub const fn title(self) -> &'static str {
        match self {
            Self::MalformedBody => "The request body is not valid JSON",
            Self::InvalidBody => "The request body does not have the expected fields",
            Self::UnsupportedMediaType => "The request body must be application/json",
            Self::BodyTooLarge => "The request body is too large",
            Self::InvalidQuery => "The query string is invalid",
            Self::InvalidId => "The key id is malformed",
            Self::InvalidName => "The key name is invalid",
            Self::InvalidExpiry => "The expiry is invalid",
            Self::InvalidScopes => "The scopes are invalid",
            Self::InvalidOverlap => "The overlap is invalid",
            Self::ScopeEscalation => "A key cannot grant more than its own scopes",
            Self::OutlivesCaller => "A key cannot make a key that outlives it",
            Self::CrossSite => "Requests from other sites cannot change keys",
            Self::NoOwner => "The request is not signed in",
            Self::NotFound => "No such key",
            Self::NoSuchRoute => "No such route",
            Self::KeyRevoked => "The key is revoked",
            Self::KeyExpired => "The key has expired",
            Self::RollInProgress => "The key is being rolled",
            Self::TooManyKeys => "The owner has the most keys allowed",
            Self::RateLimited => "Too many key management calls",
            Self::MethodNotAllowed => "The route does not take this method",
            Self::StoreUnavailable => "The key store is unavailable",
            Self::Internal => "Internal error",
        }
    }

    /// The HTTP status.
    pub const fn status(self) -> StatusCode {
        match self {
            Self::MalformedBody | Self::InvalidQuery | Self::InvalidId => StatusCode::BAD_REQUEST,
            Self::InvalidBody
            | Self::InvalidName
            | Self::InvalidExpiry
            | Self::InvalidScopes
            | Self::InvalidOverlap => StatusCode::UNPROCESSABLE_ENTITY,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::ScopeEscalation | Self::OutlivesCaller | Self::CrossSite | Self::NoOwner => {
                StatusCode::FORBIDDEN
            }
            Self::NotFound | Self::NoSuchRoute => StatusCode::NOT_FOUND,
            Self::KeyRevoked | Self::KeyExpired | Self::RollInProgress | Self::TooManyKeys => {
                StatusCode::CONFLICT
            }
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            Self::StoreUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// An error answer of the management API.
///
/// ```
/// use axum::response::IntoResponse;
/// use tower_api_keys::management::{Problem, ProblemKind};
///
/// let response = Problem::new(ProblemKind::NotFound, "no key with that id").into_response();
/// assert_eq!(response.status(), 404);
/// assert_eq!(response.headers()["content-type"], "application/problem+json");
/// ```
#[derive(Debug, Clone)]
pub struct Problem {
    kind: ProblemKind,
    detail: String,
    /// Whole seconds for `Retry-After`, where waiting helps.
    retry_after: Option<u64>,
}

impl Problem {
    /// A problem of `kind`, saying what was wrong in `detail`.
    pub fn new(kind: ProblemKind, detail: impl Into<String>) -> Self {
        Self {
            kind,
            detail: detail.into(),
            retry_after: None,
        }
    }

    /// With `Retry-After`: `wait`, rounded up to whole seconds (at least 1).
    pub(crate) fn retry_after(mut self, wait: std::time::Duration) -> Self {
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        self.retry_after = Some(secs.max(1));
        self
    }

    /// The kind of problem.
    pub fn kind(&self) -> ProblemKind {
        self.kind
    }

    /// The body this problem is answered with.
    pub fn body(&self) -> ProblemDetails {
        ProblemDetails {
            kind: format!("{PROBLEM_TYPE_PREFIX}{}", self.kind.slug()),
            title: self.kind.title().to_owned(),
            status: self.kind.status().as_u16(),
            detail: self.detail.clone(),
        }
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        // A caller reaching past its power is worth a line in the log.
        if self.kind.status() == StatusCode::FORBIDDEN {
            tracing::info!(
                target: "tower_api_keys::management",
                problem = self.kind.slug(),
                detail = %self.detail,
                "key management call refused"
            );
        }
        let body = serde_json::to_vec(&self.body()).unwrap_or_default();
        let mut response = (self.kind.status(), body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if self.kind == ProblemKind::StoreUnavailable {
            headers.insert(RETRY_AFTER, HeaderValue::from_static("1"));
        }
        if let Some(secs) = self.retry_after {
            headers.insert(RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

impl From<ManageError> for Problem {
    fn from(error: ManageError) -> Self {
        let kind = match &error {
            ManageError::NotFound => ProblemKind::NotFound,
            ManageError::InvalidName => ProblemKind::InvalidName,
            // The owner comes from the application, not from the request.
            ManageError::InvalidOwner => ProblemKind::NoOwner,
            ManageError::InvalidReason => ProblemKind::InvalidBody,
            ManageError::Revoked => ProblemKind::KeyRevoked,
            ManageError::RollInProgress => ProblemKind::RollInProgress,
            ManageError::Random(_) => ProblemKind::StoreUnavailable,
            ManageError::Store(StoreError::Corrupt(_)) => ProblemKind::Internal,
            ManageError::Store(_) => ProblemKind::StoreUnavailable,
        };
        match kind {
            // The store's own words stay in the server's log.
            ProblemKind::StoreUnavailable | ProblemKind::Internal => {
                tracing::warn!(%error, "key management call failed");
                Self::new(kind, "the key store could not complete the call; try again")
            }
            _ => Self::new(kind, error.to_string()),
        }
    }
}
