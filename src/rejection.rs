//! The responses of RFC 6750 §3, and the hook to replace them.
//!
//! | reason | status | `WWW-Authenticate` |
//! |---|---|---|
//! | no credentials, or another scheme | 401 | `Bearer realm="..."` |
//! | malformed header, two headers, key in the URL | 400 | `..., error="invalid_request"` |
//! | malformed, unknown, expired or revoked key; invalid or expired access token | 401 | `..., error="invalid_token"` |
//! | missing scope | 403 | `..., error="insufficient_scope", scope="..."` |
//! | key past its rate limit, client past its failed attempts | 429 | none; `Retry-After` |
//! | oversized `Authorization` / URI | 431 / 414 | none |
//! | store, or the OAuth issuer's keys, unavailable | 503 | none; `Retry-After` |
//!
//! Every response has a small JSON body and `Cache-Control: no-store`.
//! Malformed and unknown keys get byte-identical responses.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{HeaderMap, HeaderName, HeaderValue, Response, StatusCode};

/// `RateLimit-Policy` (draft-ietf-httpapi-ratelimit-headers).
pub const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
/// `RateLimit` (draft-ietf-httpapi-ratelimit-headers).
pub const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RejectionReason {
    /// No `Authorization` header.
    MissingCredentials,
    /// Only credentials of another scheme, such as `Basic`.
    OtherScheme,
    /// An empty `Authorization` header.
    MalformedAuthorization,
    /// More than one `Authorization` header.
    MultipleAuthorizationHeaders,
    /// `Bearer` with no token.
    MissingBearerToken,
    /// A token outside the `b64token` grammar (spaces, tabs, other bytes).
    InvalidTokenSyntax,
    /// A credential in the query string.
    CredentialInQuery,
    /// An `Authorization` header longer than the configured bound.
    AuthorizationTooLarge,
    /// A URI longer than the configured bound.
    UriTooLong,
    /// A token that is not a key of the configured format.
    MalformedKey,
    /// A well-formed key that the store does not know.
    UnknownKey,
    /// A key past its expiry.
    ExpiredKey,
    /// A revoked key.
    RevokedKey,
    /// A valid key without a scope the route needs.
    InsufficientScope,
    /// The store failed or timed out; the request is refused (fail closed).
    StoreUnavailable,
    /// The client made too many failed attempts; refused without a lookup.
    TooManyFailedAttempts,
    /// The key, or its owner, used up its request allowance.
    RateLimited,
    /// The shared rate limiter (Redis) failed or timed out and its policy
    /// is to fail closed: 503, never past the limit.
    RateLimiterUnavailable,
    /// An OAuth access token that does not verify: a bad signature, another
    /// issuer or audience, an unknown `kid`, an algorithm not accepted, not
    /// valid yet (feature `oauth`).
    InvalidAccessToken,
    /// An OAuth access token past its `exp` (feature `oauth`).
    ExpiredAccessToken,
    /// The OAuth issuer's metadata or signing keys cannot be fetched: the
    /// token is refused (fail closed, 503).
    IssuerUnavailable,
}

impl RejectionReason {
    /// Every reason, in declaration order.
    pub const ALL: [Self; 21] = [
        Self::MissingCredentials,
        Self::OtherScheme,
        Self::MalformedAuthorization,
        Self::MultipleAuthorizationHeaders,
        Self::MissingBearerToken,
        Self::InvalidTokenSyntax,
        Self::CredentialInQuery,
        Self::AuthorizationTooLarge,
        Self::UriTooLong,
        Self::MalformedKey,
        Self::UnknownKey,
        Self::ExpiredKey,
        Self::RevokedKey,
        Self::InsufficientScope,
        Self::StoreUnavailable,
        Self::TooManyFailedAttempts,
        Self::RateLimited,
        Self::RateLimiterUnavailable,
        Self::InvalidAccessToken,
        Self::ExpiredAccessToken,
        Self::IssuerUnavailable,
    ];

    /// The HTTP status.
    pub fn status(self) -> StatusCode {
        use RejectionReason::*;
        match self {
            MissingCredentials | OtherScheme | MalformedKey | UnknownKey | ExpiredKey
            | RevokedKey | InvalidAccessToken | ExpiredAccessToken => StatusCode::UNAUTHORIZED,
            MalformedAuthorization
            | MultipleAuthorizationHeaders
            | MissingBearerToken
            | InvalidTokenSyntax
            | CredentialInQuery => StatusCode::BAD_REQUEST,
            AuthorizationTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            UriTooLong => StatusCode::URI_TOO_LONG,
            InsufficientScope => StatusCode::FORBIDDEN,
            StoreUnavailable | RateLimiterUnavailable | IssuerUnavailable => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            TooManyFailedAttempts | RateLimited => StatusCode::TOO_MANY_REQUESTS,
        }
    }

    /// The RFC 6750 error code in the challenge, if any.
    pub fn error_code(self) -> Option<&'static str> {
        use RejectionReason::*;
        match self {
            MissingCredentials | OtherScheme => None,
            MalformedAuthorization
            | MultipleAuthorizationHeaders
            | MissingBearerToken
            | InvalidTokenSyntax
            | CredentialInQuery => Some("invalid_request"),
            MalformedKey | UnknownKey | ExpiredKey | RevokedKey | InvalidAccessToken
            | ExpiredAccessToken => Some("invalid_token"),
            InsufficientScope => Some("insufficient_scope"),
            AuthorizationTooLarge
            | UriTooLong
            | StoreUnavailable
            | TooManyFailedAttempts
            | RateLimited
            | RateLimiterUnavailable
            | IssuerUnavailable => None,
        }
    }

    /// Whether the response carries a `WWW-Authenticate` challenge.
    pub fn has_challenge(self) -> bool {
        !matches!(
            self,
            Self::AuthorizationTooLarge
                | Self::UriTooLong
                | Self::StoreUnavailable
                | Self::TooManyFailedAttempts
                | Self::RateLimited
                | Self::RateLimiterUnavailable
                | Self::IssuerUnavailable
        )
    }

    /// A sentence for the client. Malformed and unknown keys share one.
    pub fn description(self) -> &'static str {
        use RejectionReason::*;
        match self {
            MissingCredentials | OtherScheme => {
                "An API key is required: send it as 'Authorization: Bearer <key>'"
            }
            MalformedAuthorization => "The Authorization header is empty",
            MultipleAuthorizationHeaders => "Send exactly one Authorization header",
            MissingBearerToken => "The Bearer credentials carry no token",
            InvalidTokenSyntax => "The bearer token has characters it may not contain",
            CredentialInQuery => {
                "API keys must not be sent in the URL; send them in the Authorization header"
            }
            AuthorizationTooLarge => "The Authorization header is too large",
            UriTooLong => "The request URI is too long",
            MalformedKey | UnknownKey => "The API key is invalid",
            ExpiredKey => "The API key has expired",
            RevokedKey => "The API key has been revoked",
            InsufficientScope => "The API key lacks the scope this request needs",
            StoreUnavailable => "API keys cannot be checked right now; retry shortly",
            TooManyFailedAttempts => "Too many failed attempts from this client; retry later",
            RateLimited => "The API key has used up its request allowance; retry later",
            RateLimiterUnavailable => "Rate limits cannot be checked right now; retry shortly",
            InvalidAccessToken => "The access token is invalid",
            ExpiredAccessToken => "The access token has expired",
            IssuerUnavailable => "Access tokens cannot be checked right now; retry shortly",
        }
    }

    /// A short name for logs and metrics (`unknown_key`).
    pub fn as_str(self) -> &'static str {
        use RejectionReason::*;
        match self {
            MissingCredentials => "missing_credentials",
            OtherScheme => "other_scheme",
            MalformedAuthorization => "malformed_authorization",
            MultipleAuthorizationHeaders => "multiple_authorization_headers",
            MissingBearerToken => "missing_bearer_token",
            InvalidTokenSyntax => "invalid_token_syntax",
            CredentialInQuery => "credential_in_query",
            AuthorizationTooLarge => "authorization_too_large",
            UriTooLong => "uri_too_long",
            MalformedKey => "malformed_key",
            UnknownKey => "unknown_key",
            ExpiredKey => "expired_key",
            RevokedKey => "revoked_key",
            InsufficientScope => "insufficient_scope",
            StoreUnavailable => "store_unavailable",
            TooManyFailedAttempts => "too_many_failed_attempts",
            RateLimited => "rate_limited",
            RateLimiterUnavailable => "rate_limiter_unavailable",
            InvalidAccessToken => "invalid_access_token",
            ExpiredAccessToken => "expired_access_token",
            IssuerUnavailable => "issuer_unavailable",
        }
    }

    fn body_error(self) -> &'static str {
        match self {
            Self::MissingCredentials | Self::OtherScheme => "unauthorized",
            Self::AuthorizationTooLarge | Self::UriTooLong => "invalid_request",
            Self::StoreUnavailable | Self::RateLimiterUnavailable | Self::IssuerUnavailable => {
                "temporarily_unavailable"
            }
            Self::TooManyFailedAttempts | Self::RateLimited => "too_many_requests",
            other => other.error_code().unwrap_or("unauthorized"),
        }
    }

    /// Position in [`Self::ALL`], which lists the variants in declaration order.
    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for RejectionReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A refused request: the reason and what the response needs. Handed to a
/// custom response builder (see
/// [`ApiKeysBuilder::on_rejection`](crate::ApiKeysBuilder::on_rejection)).
#[derive(Clone)]
pub struct Rejection {
    reason: RejectionReason,
    scope: Option<Arc<str>>,
    retry_after: Option<Duration>,
    rate_limit: Option<RateLimitState>,
    challenge: Arc<Challenge>,
}

/// The allowance that refused a request, for the `RateLimit` headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimitState {
    /// Requests allowed per window.
    pub limit: u32,
    /// The window.
    pub window: Duration,
    /// Whose allowance it is: the key's or its owner's.
    pub scope: LimitScope,
}

/// Whose allowance refused a request; the policy name in the
/// `RateLimit-Policy` and `RateLimit` headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum LimitScope {
    /// The key's own allowance (`"key"`).
    Key,
    /// The allowance shared by all keys of the key's owner (`"owner"`).
    Owner,
}

impl LimitScope {
    /// The policy name: `key` or `owner`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Key => "key",
            Self::Owner => "owner",
        }
    }
}

impl Rejection {
    pub(crate) fn new(reason: RejectionReason, challenge: Arc<Challenge>) -> Self {
        let retry_after = matches!(
            reason,
            RejectionReason::StoreUnavailable
                | RejectionReason::RateLimiterUnavailable
                | RejectionReason::IssuerUnavailable
        )
        .then_some(challenge.retry_after);
        Self {
            reason,
            scope: None,
            retry_after,
            rate_limit: None,
            challenge,
        }
    }

    pub(crate) fn with_scope(mut self, scope: Arc<str>) -> Self {
        self.scope = Some(scope);
        self
    }

    pub(crate) fn with_retry_after(mut self, delay: Duration) -> Self {
        // Whole seconds, rounded up, at least one.
        let secs = delay.as_secs() + u64::from(delay.subsec_nanos() > 0);
        self.retry_after = Some(Duration::from_secs(secs.max(1)));
        self
    }

    pub(crate) fn with_rate_limit(mut self, state: RateLimitState) -> Self {
        self.rate_limit = Some(state);
        self
    }

    /// The allowance that refused the request, for
    /// [`RejectionReason::RateLimited`].
    pub fn rate_limit(&self) -> Option<RateLimitState> {
        self.rate_limit
    }

    /// Why the request was refused.
    pub fn reason(&self) -> RejectionReason {
        self.reason
    }

    /// The HTTP status of the default response.
    pub fn status(&self) -> StatusCode {
        self.reason.status()
    }

    /// The scope that was missing, for [`RejectionReason::InsufficientScope`];
    /// on a route that requires a scope, that scope, on its 401s as well.
    pub fn scope(&self) -> Option<&str> {
        self.scope.as_deref()
    }

    /// The realm of the challenge.
    pub fn realm(&self) -> &str {
        &self.challenge.realm
    }

    /// The `Retry-After` delay: for a 503, and for the 429s.
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }

    /// The `WWW-Authenticate` value of the default response, if any.
    pub fn www_authenticate(&self) -> Option<HeaderValue> {
        match &self.scope {
            Some(scope) => self.challenge.render(self.reason, Some(scope)),
            None => self.challenge.prepared[self.reason.index()]
                .www_authenticate
                .clone(),
        }
    }

    /// The default response: status, challenge, `Retry-After`,
    /// `Cache-Control: no-store` and a JSON body
    /// `{"error": "...", "error_description": "..."}`.
    pub fn default_response(&self) -> Response<Bytes> {
        let prepared = &self.challenge.prepared[self.reason.index()];
        let body = match &self.scope {
            Some(scope) => json_body(self.reason, Some(scope)),
            None => prepared.body.clone(),
        };
        let mut response = Response::new(body);
        *response.status_mut() = self.reason.status();
        // Cloning the headers rendered at start-up is cheaper than hashing
        // and inserting them again for every refusal.
        *response.headers_mut() = prepared.headers.clone();
        let headers = response.headers_mut();
        if let Some(scope) = &self.scope
            && let Some(challenge) = self.challenge.render(self.reason, Some(scope))
        {
            headers.insert(WWW_AUTHENTICATE, challenge);
        }
        if let Some(delay) = self.retry_after {
            headers.insert(RETRY_AFTER, HeaderValue::from(delay.as_secs()));
        }
        if let Some(limit) = self.rate_limit {
            // draft-ietf-httpapi-ratelimit-headers: the policy, and what is
            // left of it (nothing) with the seconds until there is more.
            let window = limit.window.as_secs().max(1);
            let reset = self.retry_after.map_or(window, |d| d.as_secs());
            let name = limit.scope.as_str();
            if let Ok(policy) =
                HeaderValue::try_from(format!("\"{name}\";q={};w={window}", limit.limit))
            {
                headers.insert(RATELIMIT_POLICY, policy);
            }
            if let Ok(state) = HeaderValue::try_from(format!("\"{name}\";r=0;t={reset}")) {
                headers.insert(RATELIMIT, state);
            }
        }
        response
    }
}

/// The reason's description, as the response's `error_description` has it.
impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.reason.description())
    }
}

impl std::error::Error for Rejection {}

impl fmt::Debug for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rejection")
            .field("reason", &self.reason)
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

/// A replacement for the default response builder.
pub(crate) type RejectionHandler = Arc<dyn Fn(&Rejection) -> Response<Bytes> + Send + Sync>;

/// The challenge settings and the responses rendered from them once.
pub(crate) struct Challenge {
    realm: Box<str>,
    resource_metadata: Option<Box<str>>,
    retry_after: Duration,
    prepared: Vec<Prepared>,
}

struct Prepared {
    www_authenticate: Option<HeaderValue>,
    /// `Content-Type`, `Cache-Control` and the challenge.
    headers: HeaderMap,
    body: Bytes,
}

/// A realm or metadata URL that cannot go into a quoted string.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} must be printable ASCII without '\"' or '\\': {value:?}")]
pub struct InvalidChallengeParameter {
    what: &'static str,
    value: String,
}

impl Challenge {
    pub(crate) fn new(
        realm: &str,
        resource_metadata: Option<&str>,
        retry_after: Duration,
    ) -> Result<Self, InvalidChallengeParameter> {
        check_quotable("realm", realm)?;
        if let Some(url) = resource_metadata {
            check_quotable("resource_metadata", url)?;
        }
        let retry_secs = retry_after.as_secs().max(1);
        let mut challenge = Self {
            realm: realm.into(),
            resource_metadata: resource_metadata.map(Into::into),
            retry_after: Duration::from_secs(retry_secs),
            prepared: Vec::new(),
        };
        challenge.prepared = RejectionReason::ALL
            .iter()
            .map(|reason| {
                let www_authenticate = reason
                    .has_challenge()
                    .then(|| challenge.render(*reason, None))
                    .flatten();
                let mut headers = HeaderMap::with_capacity(4);
                headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
                headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
                if let Some(value) = &www_authenticate {
                    headers.insert(WWW_AUTHENTICATE, value.clone());
                }
                Prepared {
                    www_authenticate,
                    headers,
                    body: json_body(*reason, None),
                }
            })
            .collect();
        Ok(challenge)
    }

    fn render(&self, reason: RejectionReason, scope: Option<&str>) -> Option<HeaderValue> {
        let mut value = format!("Bearer realm=\"{}\"", self.realm);
        if let Some(code) = reason.error_code() {
            value.push_str(&format!(
                ", error=\"{code}\", error_description=\"{}\"",
                reason.description()
            ));
        }
        if let Some(scope) = scope {
            value.push_str(&format!(", scope=\"{}\"", quotable(scope)));
        }
        if let Some(url) = &self.resource_metadata {
            value.push_str(&format!(", resource_metadata=\"{url}\""));
        }
        HeaderValue::try_from(value).ok()
    }
}

impl fmt::Debug for Challenge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Challenge")
            .field("realm", &self.realm)
            .field("resource_metadata", &self.resource_metadata)
            .field("retry_after", &self.retry_after)
            .finish_non_exhaustive()
    }
}

fn is_quotable(value: &str) -> bool {
    value
        .bytes()
        .all(|b| (b' '..=b'~').contains(&b) && b != b'"' && b != b'\\')
}

fn check_quotable(what: &'static str, value: &str) -> Result<(), InvalidChallengeParameter> {
    if is_quotable(value) {
        Ok(())
    } else {
        Err(InvalidChallengeParameter {
            what,
            value: value.chars().take(80).collect(),
        })
    }
}

/// Scope names come from route configuration; anything that cannot be
/// quoted is dropped rather than breaking the header.
fn quotable(scope: &str) -> String {
    scope
        .chars()
        .filter(|c| c.is_ascii() && is_quotable(c.encode_utf8(&mut [0; 4])))
        .collect()
}

fn json_body(reason: RejectionReason, scope: Option<&str>) -> Bytes {
    let mut body = serde_json::json!({
        "error": reason.body_error(),
        "error_description": reason.description(),
    });
    if let Some(scope) = scope {
        body["scope"] = serde_json::Value::from(scope);
    }
    Bytes::from(body.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn challenge() -> Arc<Challenge> {
        Arc::new(
            Challenge::new(
                "api",
                Some("https://x.test/.well-known/oauth-protected-resource"),
                Duration::from_secs(2),
            )
            .unwrap(),
        )
    }

    #[test]
    fn challenges_follow_rfc_6750() {
        let c = challenge();
        let missing = Rejection::new(RejectionReason::MissingCredentials, c.clone());
        assert_eq!(
            missing.www_authenticate().unwrap(),
            "Bearer realm=\"api\", resource_metadata=\"https://x.test/.well-known/oauth-protected-resource\""
        );
        let invalid = Rejection::new(RejectionReason::UnknownKey, c.clone()).default_response();
        let malformed = Rejection::new(RejectionReason::MalformedKey, c.clone()).default_response();
        assert_eq!(invalid.status(), 401);
        assert_eq!(invalid.headers(), malformed.headers());
        assert_eq!(invalid.body(), malformed.body());
        assert!(
            invalid.headers()[WWW_AUTHENTICATE]
                .to_str()
                .unwrap()
                .contains("error=\"invalid_token\"")
        );
        let down = Rejection::new(RejectionReason::StoreUnavailable, c.clone()).default_response();
        assert_eq!(down.status(), 503);
        assert_eq!(down.headers()[RETRY_AFTER], "2");
        assert!(!down.headers().contains_key(WWW_AUTHENTICATE));
        let scope = Rejection::new(RejectionReason::InsufficientScope, c)
            .with_scope(Arc::from("projects:write"))
            .default_response();
        assert_eq!(scope.status(), 403);
        assert!(
            scope.headers()[WWW_AUTHENTICATE]
                .to_str()
                .unwrap()
                .contains("error=\"insufficient_scope\", error_description=\"The API key lacks the scope this request needs\", scope=\"projects:write\"")
        );
    }

    #[test]
    fn every_reason_renders() {
        let c = challenge();
        for reason in RejectionReason::ALL {
            let response = Rejection::new(reason, c.clone()).default_response();
            assert_eq!(response.status(), reason.status());
            assert_eq!(response.headers()[CACHE_CONTROL], "no-store");
            let body: serde_json::Value = serde_json::from_slice(response.body()).unwrap();
            assert_eq!(body["error_description"], reason.description());
            assert_eq!(
                response.headers().contains_key(WWW_AUTHENTICATE),
                reason.has_challenge()
            );
        }
    }

    #[test]
    fn realms_that_break_quoting_are_refused() {
        assert!(Challenge::new("a\"b", None, Duration::from_secs(1)).is_err());
        assert!(Challenge::new("a\\b", None, Duration::from_secs(1)).is_err());
        assert!(Challenge::new("a\nb", None, Duration::from_secs(1)).is_err());
    }
}
