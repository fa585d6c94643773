//! What handlers receive about whoever authenticated a request: the key
//! ([`AuthenticatedKey`]), or (feature `oauth`) the access token, and
//! [`Caller`] for either.

use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Utc};

use crate::record::{KeyId, KeyRecord, OwnerId, Scopes};

/// What an identity is made from: the cache's entry for the key, shared
/// with the handler without a copy.
pub(crate) trait IdentityEntry: Send + Sync + 'static {
    /// The record as it was loaded.
    fn record(&self) -> &KeyRecord;
    /// When the store was asked for it.
    fn loaded_at(&self) -> Instant;
}

/// The key that authenticated a request. The layer puts it in the request's
/// extensions; with the `axum` feature it is also an extractor.
///
/// Cloning is cheap (one reference count). It never holds the secret.
///
/// ```
/// # #[cfg(feature = "axum")] {
/// use tower_api_keys::AuthenticatedKey;
///
/// async fn whoami(key: AuthenticatedKey) -> String {
///     format!("{} ({})", key.name(), key.id())
/// }
/// # }
/// ```
#[derive(Clone)]
pub struct AuthenticatedKey(Arc<dyn IdentityEntry>);

impl AuthenticatedKey {
    pub(crate) fn new(entry: Arc<dyn IdentityEntry>) -> Self {
        Self(entry)
    }

    /// The cache entry behind the identity.
    pub(crate) fn entry(&self) -> &dyn IdentityEntry {
        &*self.0
    }

    /// The key's id.
    pub fn id(&self) -> KeyId {
        self.0.record().id
    }

    /// The key's name.
    pub fn name(&self) -> &str {
        &self.0.record().name
    }

    /// The account the key belongs to.
    pub fn owner(&self) -> &OwnerId {
        &self.0.record().owner
    }

    /// The display prefix (`bmc_K7xR2pQm`), safe to log.
    pub fn display_prefix(&self) -> &str {
        &self.0.record().display_prefix
    }

    /// What the key may do.
    pub fn scopes(&self) -> &Scopes {
        &self.0.record().scopes
    }

    /// The key's application metadata.
    pub fn metadata(&self) -> &serde_json::Value {
        &self.0.record().metadata
    }

    /// When the key expires, if ever.
    pub fn expires_at(&self) -> Option<DateTime<Utc>> {
        self.0.record().expires_at
    }

    /// The record as it was cached. Its `last_used_at` may be older than the
    /// store's: last-used times are written in the background.
    pub fn record(&self) -> &KeyRecord {
        self.0.record()
    }
}

impl std::fmt::Debug for AuthenticatedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("AuthenticatedKey")
            .field(self.0.record())
            .finish()
    }
}

/// Which credential authenticated a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Credential {
    /// An API key of the configured format (`bmc_...`).
    ApiKey,
    /// An OAuth access token checked against the configured issuer
    /// (feature `oauth`).
    AccessToken,
}

impl Credential {
    /// A short name for logs and metrics: `api_key` or `access_token`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ApiKey => "api_key",
            Self::AccessToken => "access_token",
        }
    }
}

/// An OAuth access token that authenticated a request (feature `oauth`):
/// the claims the layer checked, never the token itself. Cloning is one
/// reference count.
#[cfg(feature = "oauth")]
#[derive(Clone, Debug)]
pub struct AccessToken(Arc<TokenClaims>);

/// What an [`AccessToken`] is made of.
#[cfg(feature = "oauth")]
#[derive(Debug)]
pub(crate) struct TokenClaims {
    pub(crate) subject: OwnerId,
    pub(crate) client_id: Option<String>,
    pub(crate) scopes: Scopes,
    pub(crate) issuer: Arc<str>,
    pub(crate) expires_at: DateTime<Utc>,
    pub(crate) token_id: Option<String>,
}

#[cfg(feature = "oauth")]
impl AccessToken {
    pub(crate) fn new(claims: TokenClaims) -> Self {
        Self(Arc::new(claims))
    }

    /// The token's subject (`sub`): the account it acts for, as an owner.
    pub fn owner(&self) -> &OwnerId {
        &self.0.subject
    }

    /// The OAuth client the token was issued to (`client_id`, or `azp`).
    pub fn client_id(&self) -> Option<&str> {
        self.0.client_id.as_deref()
    }

    /// The scopes of its `scope` (or `scp`) claim; none when it has neither.
    pub fn scopes(&self) -> &Scopes {
        &self.0.scopes
    }

    /// The issuer that signed it (`iss`).
    pub fn issuer(&self) -> &str {
        &self.0.issuer
    }

    /// When it expires (`exp`).
    pub fn expires_at(&self) -> DateTime<Utc> {
        self.0.expires_at
    }

    /// The token's id (`jti`), if it has one.
    pub fn token_id(&self) -> Option<&str> {
        self.0.token_id.as_deref()
    }
}

/// Whoever authenticated a request, by either credential: the one identity
/// handlers take when a route accepts API keys and (feature `oauth`)
/// access tokens alike. With the `axum` feature it is an extractor.
///
/// ```
/// # #[cfg(feature = "axum")] {
/// use tower_api_keys::Caller;
///
/// async fn whoami(caller: Caller) -> String {
///     format!("{} by {}", caller.owner(), caller.credential().as_str())
/// }
/// # }
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Caller {
    /// An API key.
    Key(AuthenticatedKey),
    /// An OAuth access token.
    #[cfg(feature = "oauth")]
    Token(AccessToken),
}

impl Caller {
    /// Which credential it was.
    pub fn credential(&self) -> Credential {
        match self {
            Self::Key(_) => Credential::ApiKey,
            #[cfg(feature = "oauth")]
            Self::Token(_) => Credential::AccessToken,
        }
    }

    /// The account it acts for: the key's owner, or the token's subject.
    pub fn owner(&self) -> &OwnerId {
        match self {
            Self::Key(key) => key.owner(),
            #[cfg(feature = "oauth")]
            Self::Token(token) => token.owner(),
        }
    }

    /// What it may do.
    pub fn scopes(&self) -> &Scopes {
        match self {
            Self::Key(key) => key.scopes(),
            #[cfg(feature = "oauth")]
            Self::Token(token) => token.scopes(),
        }
    }

    /// A name safe to log: the key's name, or the token's client id.
    pub fn name(&self) -> &str {
        match self {
            Self::Key(key) => key.name(),
            #[cfg(feature = "oauth")]
            Self::Token(token) => token.client_id().unwrap_or("access token"),
        }
    }

    /// When the credential stops being valid, if ever.
    pub fn expires_at(&self) -> Option<DateTime<Utc>> {
        match self {
            Self::Key(key) => key.expires_at(),
            #[cfg(feature = "oauth")]
            Self::Token(token) => Some(token.expires_at()),
        }
    }

    /// The key, when a key authenticated the request.
    pub fn key(&self) -> Option<&AuthenticatedKey> {
        match self {
            Self::Key(key) => Some(key),
            #[cfg(feature = "oauth")]
            Self::Token(_) => None,
        }
    }

    /// The caller the layer put in a request's extensions, if any.
    pub fn from_extensions(extensions: &http::Extensions) -> Option<Self> {
        if let Some(key) = extensions.get::<AuthenticatedKey>() {
            return Some(Self::Key(key.clone()));
        }
        #[cfg(feature = "oauth")]
        if let Some(token) = extensions.get::<AccessToken>() {
            return Some(Self::Token(token.clone()));
        }
        None
    }
}
