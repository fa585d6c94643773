//! The issuer's signing keys: found through its metadata, fetched with a
//! bound on time and size, cached, and fetched again only when they are old
//! or a token names a `kid` they lack, at most once per interval.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};

/// Largest metadata or key-set document read (256 KiB).
const MAX_DOCUMENT: usize = 256 * 1024;
/// After a failed fetch, tokens are refused (503) without another fetch
/// for this long, so that an unreachable issuer is not asked per request.
const FAILURE_BACKOFF: Duration = Duration::from_secs(2);

/// A key of the set, ready to verify with.
pub(super) struct VerifyingKey {
    pub(super) key: DecodingKey,
    /// The one algorithm the key was published for, if it says.
    pub(super) algorithm: Option<Algorithm>,
}

/// Why no key could be had for a token.
#[derive(Debug)]
pub(super) enum KeyError {
    /// The issuer's set has no such key (after a fetch, or a fetch was
    /// not allowed yet).
    Unknown,
    /// The metadata or the set could not be fetched.
    Unavailable(String),
}

struct KeySet {
    by_id: HashMap<String, Arc<VerifyingKey>>,
    /// The one key of a set whose keys carry no `kid`, for tokens without one.
    only: Option<Arc<VerifyingKey>>,
    fetched_at: Instant,
}

#[derive(Default)]
struct Fetching {
    jwks_uri: Option<String>,
    last_attempt: Option<Instant>,
    last_failure: Option<(Instant, String)>,
}

/// The cached key set of one issuer.
pub(super) struct IssuerKeys {
    issuer: String,
    http: reqwest::Client,
    max_age: Duration,
    refetch_interval: Duration,
    current: RwLock<Option<Arc<KeySet>>>,
    /// One fetch at a time; the others wait and use its result.
    fetching: tokio::sync::Mutex<Fetching>,
}

impl IssuerKeys {
    pub(super) fn new(
        issuer: String,
        http: reqwest::Client,
        max_age: Duration,
        refetch_interval: Duration,
    ) -> Self {
        Self {
            issuer,
            http,
            max_age,
            refetch_interval,
            current: RwLock::new(None),
            fetching: tokio::sync::Mutex::new(Fetching::default()),
        }
    }

    fn cached(&self) -> Option<Arc<KeySet>> {
        match self.current.read() {
            Ok(current) => current.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn find(set: &KeySet, kid: Option<&str>) -> Option<Arc<VerifyingKey>> {
        match kid {
            Some(kid) => set.by_id.get(kid).cloned(),
            None => set.only.clone(),
        }
    }

    /// The key `kid` names in the cached set, if the set is young enough.
    fn fresh(&self, kid: Option<&str>) -> Option<Arc<VerifyingKey>> {
        let set = self.cached()?;
        if set.fetched_at.elapsed() >= self.max_age {
            return None;
        }
        Self::find(&set, kid)
    }

    /// The key a token names; fetches the set when there is none yet, when
    /// it is old, or when it lacks the `kid` and the last fetch is older
    /// than the refetch interval.
    pub(super) async fn key(&self, kid: Option<&str>) -> Result<Arc<VerifyingKey>, KeyError> {
        if let Some(key) = self.fresh(kid) {
            return Ok(key);
        }
        let mut fetching = self.fetching.lock().await;
        // Another request may have fetched while this one waited.
        if let Some(key) = self.fresh(kid) {
            return Ok(key);
        }
        let cached = self.cached();
        let stale = cached
            .as_ref()
            .is_some_and(|set| set.fetched_at.elapsed() >= self.max_age);
        let allowed = match (&cached, fetching.last_attempt) {
            (None, _) | (_, None) => true,
            _ if stale => true,
            (Some(_), Some(at)) => at.elapsed() >= self.refetch_interval,
        };
        if !allowed {
            return Err(KeyError::Unknown);
        }
        if let Some((at, error)) = &fetching.last_failure
            && at.elapsed() < FAILURE_BACKOFF
        {
            return match cached.as_deref().and_then(|set| Self::find(set, kid)) {
                Some(key) => Ok(key),
                None if cached.is_some() => Err(KeyError::Unknown),
                None => Err(KeyError::Unavailable(error.clone())),
            };
        }
        fetching.last_attempt = Some(Instant::now());
        match self.fetch(&mut fetching).await {
            Ok(set) => {
                fetching.last_failure = None;
                let set = Arc::new(set);
                match self.current.write() {
                    Ok(mut current) => *current = Some(Arc::clone(&set)),
                    Err(poisoned) => *poisoned.into_inner() = Some(Arc::clone(&set)),
                }
                Self::find(&set, kid).ok_or(KeyError::Unknown)
            }
            Err(error) => {
                tracing::warn!(
                    target: "tower_api_keys",
                    issuer = %self.issuer,
                    %error,
                    "the OAuth issuer's signing keys could not be fetched"
                );
                fetching.last_failure = Some((Instant::now(), error.clone()));
                // An old set still verifies the tokens it can.
                match cached.as_deref().and_then(|set| Self::find(set, kid)) {
                    Some(key) => Ok(key),
                    None if cached.is_some() && !stale => Err(KeyError::Unknown),
                    None => Err(KeyError::Unavailable(error)),
                }
            }
        }
    }

    async fn fetch(&self, fetching: &mut Fetching) -> Result<KeySet, String> {
        let jwks_uri = match &fetching.jwks_uri {
            Some(uri) => uri.clone(),
            None => {
                let uri = self.discover().await?;
                fetching.jwks_uri = Some(uri.clone());
                uri
            }
        };
        let set: RawKeySet = self.get_json(&jwks_uri).await?;
        Ok(KeySet::from_jwks(set))
    }

    /// The `jwks_uri` of the issuer's metadata: RFC 8414 first, then
    /// OpenID Connect Discovery.
    async fn discover(&self) -> Result<String, String> {
        let mut errors = Vec::new();
        for url in metadata_urls(&self.issuer) {
            match self.get_json::<Metadata>(&url).await {
                Ok(metadata) if metadata.issuer != self.issuer => {
                    return Err(format!(
                        "{url} names the issuer {:?}, not {:?}",
                        metadata.issuer, self.issuer
                    ));
                }
                Ok(metadata) => {
                    let uri = metadata
                        .jwks_uri
                        .ok_or_else(|| format!("{url} has no jwks_uri"))?;
                    if !(uri.starts_with("https://") || uri.starts_with("http://")) {
                        return Err(format!("{url} has a jwks_uri that is not http(s)"));
                    }
                    return Ok(uri);
                }
                Err(error) => errors.push(error),
            }
        }
        Err(errors.join("; "))
    }

    async fn get_json<T: serde::de::DeserializeOwned>(&self, url: &str) -> Result<T, String> {
        let body = crate::fetch::get_bounded(&self.http, url, MAX_DOCUMENT).await?;
        serde_json::from_slice(&body)
            .map_err(|error| format!("{url} is not the JSON expected: {error}"))
    }
}

/// Where the metadata of `issuer` is: RFC 8414 §3 inserts the well-known
/// path before the issuer's path; OpenID Connect appends it.
fn metadata_urls(issuer: &str) -> [String; 2] {
    let trimmed = issuer.trim_end_matches('/');
    let (origin, path) = match trimmed.find("://").map(|at| at + 3) {
        Some(after_scheme) => match trimmed[after_scheme..].find('/') {
            Some(slash) => trimmed.split_at(after_scheme + slash),
            None => (trimmed, ""),
        },
        None => (trimmed, ""),
    };
    [
        format!("{origin}/.well-known/oauth-authorization-server{path}"),
        format!("{trimmed}/.well-known/openid-configuration"),
    ]
}

/// A JWK Set (RFC 7517 §5), its keys not yet read.
#[derive(serde::Deserialize)]
struct RawKeySet {
    keys: Vec<serde_json::Value>,
}

#[derive(serde::Deserialize)]
struct Metadata {
    issuer: String,
    jwks_uri: Option<String>,
}

impl KeySet {
    /// The set's signature keys that this crate can verify with; others
    /// (encryption keys, symmetric keys, unknown types) are left out.
    fn from_jwks(set: RawKeySet) -> Self {
        let mut by_id = HashMap::new();
        let mut unnamed = Vec::new();
        // Each key on its own: one this crate cannot read (a new key type,
        // say) leaves the others usable.
        for jwk in set
            .keys
            .into_iter()
            .filter_map(|key| serde_json::from_value::<Jwk>(key).ok())
        {
            let Some(key) = verifying_key(&jwk) else {
                continue;
            };
            let key = Arc::new(key);
            match &jwk.common.key_id {
                Some(kid) => {
                    by_id.insert(kid.clone(), key);
                }
                None => unnamed.push(key),
            }
        }
        let only = (by_id.is_empty() && unnamed.len() == 1).then(|| unnamed.remove(0));
        Self {
            by_id,
            only,
            fetched_at: Instant::now(),
        }
    }
}

fn verifying_key(jwk: &Jwk) -> Option<VerifyingKey> {
    if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
        return None;
    }
    if matches!(
        jwk.algorithm,
        jsonwebtoken::jwk::AlgorithmParameters::OctetKey(_)
    ) {
        return None;
    }
    let algorithm = match jwk.common.key_algorithm {
        None => None,
        Some(algorithm) => Some(signing_algorithm(algorithm)?),
    };
    let key = DecodingKey::from_jwk(jwk).ok()?;
    Some(VerifyingKey { key, algorithm })
}

fn signing_algorithm(algorithm: KeyAlgorithm) -> Option<Algorithm> {
    Some(match algorithm {
        KeyAlgorithm::RS256 => Algorithm::RS256,
        KeyAlgorithm::RS384 => Algorithm::RS384,
        KeyAlgorithm::RS512 => Algorithm::RS512,
        KeyAlgorithm::PS256 => Algorithm::PS256,
        KeyAlgorithm::PS384 => Algorithm::PS384,
        KeyAlgorithm::PS512 => Algorithm::PS512,
        KeyAlgorithm::ES256 => Algorithm::ES256,
        KeyAlgorithm::ES384 => Algorithm::ES384,
        KeyAlgorithm::EdDSA => Algorithm::EdDSA,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::metadata_urls;

    #[test]
    fn metadata_is_looked_for_where_both_specifications_put_it() {
        assert_eq!(
            metadata_urls("https://auth.test"),
            [
                "https://auth.test/.well-known/oauth-authorization-server",
                "https://auth.test/.well-known/openid-configuration",
            ]
        );
        assert_eq!(
            metadata_urls("https://auth.test/tenant/a/"),
            [
                "https://auth.test/.well-known/oauth-authorization-server/tenant/a",
                "https://auth.test/tenant/a/.well-known/openid-configuration",
            ]
        );
    }
}
