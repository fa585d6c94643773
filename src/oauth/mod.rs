//! OAuth 2.0 access tokens beside API keys, on the same endpoint (feature
//! `oauth`).
//!
//! With [`ApiKeysBuilder::oauth`](crate::ApiKeysBuilder::oauth), a bearer
//! token in the key format (`bmc_...`) still takes the key path, and a bad
//! key is refused as a key; any other token is checked as a JWT access
//! token (RFC 9068) of one issuer:
//!
//! - the issuer's keys come from its metadata (RFC 8414
//!   `/.well-known/oauth-authorization-server`, else OpenID
//!   `/.well-known/openid-configuration`), whose `issuer` must equal the
//!   configured one; the key set is cached, refreshed when it is older
//!   than [`OAuth::jwks_max_age`], and fetched again for an unknown `kid`
//!   at most once per [`OAuth::jwks_refetch_interval`];
//! - the signature, with an asymmetric algorithm of [`OAuth::algorithms`]
//!   that the key allows (never `none`, never an HMAC);
//! - `iss`, `aud` (the resource, RFC 8707), `exp` and `nbf` against the
//!   crate's clock with [`OAuth::leeway`], and a `sub`;
//! - `scope` (or `scp`) becomes the caller's [`Scopes`](crate::record::Scopes),
//!   so a route's required scope applies to both credentials.
//!
//! A bad token is a 401 `invalid_token`; an issuer whose metadata or keys
//! cannot be fetched makes it a 503 (fail closed). Handlers receive
//! [`AccessToken`](crate::identity::AccessToken), or [`Caller`](crate::Caller)
//! for either credential.
//!
//! ```no_run
//! use tower_api_keys::{ApiKeys, MemoryStore};
//! use tower_api_keys::oauth::OAuth;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let keys = ApiKeys::builder(MemoryStore::new())
//!     .oauth(OAuth::new("https://auth.example.com", "https://api.example.com/mcp"))
//!     .build()?;
//! # drop(keys); Ok(()) }
//! ```
//!
//! Fetches go through `reqwest` with no TLS backend of the crate's
//! choosing: enable one of reqwest's TLS features in the application for
//! an `https` issuer, or hand a client to [`OAuth::http_client`].

use std::time::Duration;

mod keys;
mod verify;

pub(crate) use verify::{TokenError, TokenVerifier};

/// Asymmetric JWS algorithms accepted by default (RFC 7518, RFC 8037).
const DEFAULT_ALGORITHMS: [&str; 9] = [
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA",
];

/// The issuer whose access tokens are accepted, and how they are checked.
#[derive(Clone)]
pub struct OAuth {
    pub(crate) issuer: String,
    pub(crate) audiences: Vec<String>,
    pub(crate) algorithms: Vec<String>,
    pub(crate) leeway: Duration,
    pub(crate) jwks_max_age: Duration,
    pub(crate) jwks_refetch_interval: Duration,
    pub(crate) fetch_timeout: Duration,
    pub(crate) http_client: Option<reqwest::Client>,
}

impl OAuth {
    /// Tokens of `issuer` (its `iss`, exactly) for `resource`: the URL of
    /// this server's protected resource, which the token's `aud` must
    /// hold (RFC 8707, RFC 9068).
    pub fn new(issuer: impl Into<String>, resource: impl Into<String>) -> Self {
        Self {
            issuer: issuer.into(),
            audiences: vec![resource.into()],
            algorithms: DEFAULT_ALGORITHMS.iter().map(|&a| a.to_owned()).collect(),
            leeway: Duration::from_secs(30),
            jwks_max_age: Duration::from_secs(15 * 60),
            jwks_refetch_interval: Duration::from_secs(60),
            fetch_timeout: Duration::from_secs(5),
            http_client: None,
        }
    }

    /// Another audience to accept beside the resource, such as an API
    /// identifier the issuer puts in `aud` instead of a URL.
    pub fn also_audience(mut self, audience: impl Into<String>) -> Self {
        self.audiences.push(audience.into());
        self
    }

    /// The signing algorithms to accept (default: RS*, PS*, ES256, ES384, EdDSA).
    /// Symmetric ones (`HS*`) and `none` are refused when the layer is
    /// built.
    pub fn algorithms<I, S>(mut self, algorithms: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.algorithms = algorithms.into_iter().map(Into::into).collect();
        self
    }

    /// Clock skew allowed on `exp` and `nbf` (default 30 s).
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// How long a fetched key set is used before it is fetched again
    /// (default 15 minutes). A failed refresh keeps the old set.
    pub fn jwks_max_age(mut self, age: Duration) -> Self {
        self.jwks_max_age = age;
        self
    }

    /// The least time between two fetches caused by tokens naming an
    /// unknown `kid` (default 60 s), so that made-up `kid`s cannot turn
    /// requests into fetches.
    pub fn jwks_refetch_interval(mut self, interval: Duration) -> Self {
        self.jwks_refetch_interval = interval;
        self
    }

    /// The bound on each fetch of the metadata or the key set (default 5 s).
    pub fn fetch_timeout(mut self, timeout: Duration) -> Self {
        self.fetch_timeout = timeout;
        self
    }

    /// The HTTP client for the fetches (say, with a TLS backend or a
    /// proxy). The default follows no redirects.
    pub fn http_client(mut self, client: reqwest::Client) -> Self {
        self.http_client = Some(client);
        self
    }

    /// The issuer.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The resource (the first audience).
    pub fn resource(&self) -> &str {
        &self.audiences[0]
    }
}

impl std::fmt::Debug for OAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuth")
            .field("issuer", &self.issuer)
            .field("audiences", &self.audiences)
            .field("algorithms", &self.algorithms)
            .field("leeway", &self.leeway)
            .finish_non_exhaustive()
    }
}

/// An [`OAuth`] setting that cannot work.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OAuthError {
    /// The issuer is not an absolute `http` or `https` URL without a query
    /// or fragment.
    #[error("the OAuth issuer must be an http(s) URL without query or fragment: {0:?}")]
    InvalidIssuer(String),
    /// An empty audience.
    #[error("the OAuth resource (audience) must not be empty")]
    EmptyAudience,
    /// An algorithm that is unknown, symmetric or `none`.
    #[error("{0:?} is not an asymmetric JWS algorithm; access tokens are accepted only with those")]
    Algorithm(String),
    /// No algorithm left.
    #[error("at least one signing algorithm must be accepted")]
    NoAlgorithm,
    /// The default HTTP client could not be built.
    #[error("the HTTP client for the issuer could not be built: {0}")]
    HttpClient(String),
}
