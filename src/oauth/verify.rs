//! One access token, checked: its header, its key, its signature, its
//! claims against the clock and the resource.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, AlgorithmFamily, Validation};

use super::keys::{IssuerKeys, KeyError};
use super::{OAuth, OAuthError};
use crate::identity::{AccessToken, TokenClaims};
use crate::record::{OwnerId, Scopes};

/// Most characters of a `sub` or `client_id` taken as an owner or name.
const MAX_CLAIM_LEN: usize = 256;

/// Why a token was refused. The causes go to the log, never to the client.
#[derive(Debug)]
pub(crate) enum TokenError {
    /// Past its `exp` (with the leeway).
    Expired,
    /// Anything else wrong with it; the cause, for the log.
    Invalid(&'static str),
    /// The issuer's metadata or keys could not be fetched.
    Unavailable(String),
}

/// Checks access tokens of one issuer for one resource.
pub(crate) struct TokenVerifier {
    issuer: Arc<str>,
    audiences: Vec<String>,
    algorithms: Vec<Algorithm>,
    leeway: Duration,
    keys: IssuerKeys,
}

#[derive(serde::Deserialize)]
struct Claims {
    sub: String,
    exp: i64,
    #[serde(default)]
    nbf: Option<i64>,
    #[serde(default)]
    scope: Option<String>,
    #[serde(default)]
    scp: Option<Vec<String>>,
    #[serde(default)]
    client_id: Option<String>,
    #[serde(default)]
    azp: Option<String>,
    #[serde(default)]
    jti: Option<String>,
}

impl TokenVerifier {
    /// Checks the settings; fetches nothing yet.
    pub(crate) fn new(settings: OAuth) -> Result<Self, OAuthError> {
        check_issuer(&settings.issuer)?;
        if settings
            .audiences
            .iter()
            .any(|audience| audience.is_empty())
        {
            return Err(OAuthError::EmptyAudience);
        }
        let mut algorithms = Vec::new();
        for name in &settings.algorithms {
            let algorithm =
                Algorithm::from_str(name).map_err(|_| OAuthError::Algorithm(name.clone()))?;
            if algorithm.family() == AlgorithmFamily::Hmac {
                return Err(OAuthError::Algorithm(name.clone()));
            }
            algorithms.push(algorithm);
        }
        if algorithms.is_empty() {
            return Err(OAuthError::NoAlgorithm);
        }
        install_crypto_provider();
        let http = match settings.http_client {
            Some(client) => client,
            None => reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(settings.fetch_timeout)
                .build()
                .map_err(|error| OAuthError::HttpClient(error.to_string()))?,
        };
        Ok(Self {
            keys: IssuerKeys::new(
                settings.issuer.clone(),
                http,
                settings.jwks_max_age,
                settings.jwks_refetch_interval,
            ),
            issuer: settings.issuer.into(),
            audiences: settings.audiences,
            algorithms,
            leeway: settings.leeway,
        })
    }

    /// The issuer, for the protected-resource metadata.
    pub(crate) fn issuer(&self) -> &str {
        &self.issuer
    }

    /// Fetches the issuer's keys ahead of the first token; a failure is
    /// logged and retried when a token comes.
    pub(crate) async fn prefetch(&self) {
        let _ = self.keys.key(Some("")).await;
    }

    /// Checks `token` at `now`.
    pub(crate) async fn verify(
        &self,
        token: &str,
        now: DateTime<Utc>,
    ) -> Result<AccessToken, TokenError> {
        if token.split('.').count() != 3 {
            return Err(TokenError::Invalid("not a JWS in compact form"));
        }
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| TokenError::Invalid("the header does not decode"))?;
        if !self.algorithms.contains(&header.alg) {
            return Err(TokenError::Invalid("an algorithm that is not accepted"));
        }
        let key = self
            .keys
            .key(header.kid.as_deref())
            .await
            .map_err(|error| match error {
                KeyError::Unknown => TokenError::Invalid("a kid the issuer does not publish"),
                KeyError::Unavailable(error) => TokenError::Unavailable(error),
            })?;
        if key
            .algorithm
            .is_some_and(|algorithm| algorithm != header.alg)
            || key.key.family() != header.alg.family()
        {
            return Err(TokenError::Invalid("an algorithm its key is not for"));
        }
        let mut validation = Validation::new(header.alg);
        // Time is checked below, against the crate's clock.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.set_issuer(&[&*self.issuer]);
        validation.set_audience(&self.audiences);
        let claims = jsonwebtoken::decode::<Claims>(token, &key.key, &validation)
            .map_err(|error| TokenError::Invalid(cause(error.kind())))?
            .claims;
        let leeway = i64::try_from(self.leeway.as_secs()).unwrap_or(i64::MAX);
        let now_secs = now.timestamp();
        if claims.exp.saturating_add(leeway) <= now_secs {
            return Err(TokenError::Expired);
        }
        if claims
            .nbf
            .is_some_and(|nbf| nbf.saturating_sub(leeway) > now_secs)
        {
            return Err(TokenError::Invalid("not valid yet (nbf)"));
        }
        let expires_at = DateTime::from_timestamp(claims.exp, 0)
            .ok_or(TokenError::Invalid("an exp out of range"))?;
        if !usable_text(&claims.sub) {
            return Err(TokenError::Invalid("a sub that cannot name an owner"));
        }
        let client_id = claims
            .client_id
            .or(claims.azp)
            .filter(|client| usable_text(client));
        let scopes = match (claims.scope, claims.scp) {
            (Some(scope), _) => Scopes::only(scope.split(' ').filter(|s| !s.is_empty())),
            (None, Some(scp)) => Scopes::only(scp),
            (None, None) => Scopes::only(std::iter::empty::<String>()),
        };
        Ok(AccessToken::new(TokenClaims {
            subject: OwnerId::new(claims.sub),
            client_id,
            scopes,
            issuer: Arc::clone(&self.issuer),
            expires_at,
            token_id: claims.jti.filter(|jti| usable_text(jti)),
        }))
    }
}

/// What the log says about a token the library refused.
fn cause(kind: &ErrorKind) -> &'static str {
    match kind {
        ErrorKind::InvalidSignature => "a signature that does not verify",
        ErrorKind::InvalidIssuer => "another issuer",
        ErrorKind::InvalidAudience => "another audience (a token for another resource)",
        ErrorKind::MissingRequiredClaim(_) => "a required claim is missing",
        ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => {
            "an algorithm that is not accepted"
        }
        ErrorKind::InvalidKeyFormat | ErrorKind::InvalidEcdsaKey | ErrorKind::InvalidRsaKey(_) => {
            "a key that cannot verify it"
        }
        ErrorKind::Base64(_)
        | ErrorKind::Json(_)
        | ErrorKind::Utf8(_)
        | ErrorKind::InvalidToken => "it does not decode",
        _ => "it fails validation",
    }
}

/// A `sub`, `client_id` or `jti` the crate will show and store: short,
/// visible text.
fn usable_text(text: &str) -> bool {
    !text.is_empty() && text.len() <= MAX_CLAIM_LEN && crate::record::is_showable(text)
}

fn check_issuer(issuer: &str) -> Result<(), OAuthError> {
    let invalid = || OAuthError::InvalidIssuer(issuer.to_owned());
    let rest = issuer
        .strip_prefix("https://")
        .or_else(|| issuer.strip_prefix("http://"))
        .ok_or_else(invalid)?;
    if rest.is_empty() || rest.starts_with('/') || issuer.contains(['?', '#']) {
        return Err(invalid());
    }
    if issuer.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid());
    }
    Ok(())
}

/// The JWT library needs one crypto provider per process; with both of its
/// backends enabled somewhere in the build it cannot pick one by itself.
fn install_crypto_provider() {
    use jsonwebtoken::crypto::CryptoProvider;
    if CryptoProvider::try_get_default().is_none() {
        let _ = jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER.install_default();
    }
}
