//! An endpoint for GitHub's secret-scanning partner program: GitHub finds
//! a key of yours in a public place and POSTs it here; the endpoint checks
//! GitHub's signature, revokes the key and answers which tokens were keys.
//!
//! GitHub sends `[{"token", "type", "url", "source"}]`, signed with ECDSA
//! P-256 over SHA-256 of the raw body: the signature (base64 DER) in
//! `Github-Public-Key-Signature`, the key's identifier in
//! `Github-Public-Key-Identifier`. The public keys are published as
//! `{"public_keys": [{"key_identifier", "key", "is_current"}]}` (PEM keys),
//! at [`PublicKeySource::GITHUB`].
//!
//! A request that is unsigned, badly signed, signed by an unknown key,
//! oversized (256 KiB, or 2,000 tokens, by default) or malformed is refused with a 4xx before anything is looked
//! up. For each token of a verified report, the endpoint hashes it, looks
//! it up across all owners (one hash and one store lookup per token, key or
//! not), and revokes a key it finds with the reason
//! [`REVOKED_REASON`] and the URL where it was found, as
//! [`Actor::System`]`(`[`GithubSecretScanning`](SystemCause::GithubSecretScanning)`)`,
//! then emits a [`ReportedLeaked`](KeyEventKind::ReportedLeaked) event. A
//! token reported again is answered the same and changes nothing. The
//! answer is GitHub's format, `[{"token_hash", "token_type", "label"}]`,
//! with `label` `true_positive` for a key of this store and
//! `false_positive` otherwise; the raw token is never sent back or logged.
//!
//! ```no_run
//! use axum::Router;
//! use tower_api_keys::secret_scanning::{PublicKeySource, SecretScanning};
//! use tower_api_keys::{ApiKeys, MemoryStore};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
//! # let _guard = runtime.enter();
//! let keys = ApiKeys::builder(MemoryStore::new()).build()?;
//! let scanning = SecretScanning::new(keys.clone(), PublicKeySource::parse(PublicKeySource::GITHUB));
//! let app: Router = Router::new().route("/github/secret-scanning", scanning.handler());
//! # drop(app);
//! # Ok(())
//! # }
//! ```
//!
//! Public keys from a URL are fetched on the first report and again when a
//! report names an identifier not seen yet, at most once per
//! [`min_refresh_interval`](SecretScanning::min_refresh_interval) (a
//! minute); after a fetch that failed, reports are answered 503 until the
//! next. The document is read up to 256 KiB, from the URL configured: a
//! redirect is not followed. They are fetched with `reqwest` as the application configures
//! it: an `https` URL, such as GitHub's, needs one of reqwest's TLS
//! features enabled by the application (`reqwest = {version = "0.13",
//! features = ["rustls"] }`).

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, post};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use http::{HeaderMap, StatusCode};
use http_body_util::BodyExt as _;
use p256::ecdsa::signature::Verifier as _;
use p256::ecdsa::{Signature, VerifyingKey};
use p256::pkcs8::DecodePublicKey as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::{Mutex, RwLock};

use crate::api_keys::ApiKeys;
use crate::event::{Actor, KeyEventKind, SystemCause};
use crate::record::{MAX_TEXT_LEN, is_showable, is_unsafe_to_show};
use crate::store::StoreError;

/// The reason recorded with a revocation made here; the URL where the key
/// was found follows it (`... at https://github.com/...`).
pub const REVOKED_REASON: &str = "reported by GitHub secret scanning";

/// The header that names the key a report is signed with.
pub const KEY_IDENTIFIER_HEADER: &str = "github-public-key-identifier";
/// The header that carries the signature (base64 of its DER form).
pub const SIGNATURE_HEADER: &str = "github-public-key-signature";

/// Longest URL kept in a leak's event (a revocation reason holds less).
const MAX_URL_IN_EVENT: usize = 512;
/// Largest public-key document read.
const MAX_KEY_DOCUMENT: usize = 256 * 1024;

/// Where GitHub's public keys come from.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PublicKeySource {
    /// A URL serving GitHub's JSON document, fetched and cached.
    Url(String),
    /// A file holding the same document, read like the URL.
    File(PathBuf),
    /// The document itself.
    Json(String),
}

impl PublicKeySource {
    /// GitHub's document of the keys it signs secret-scanning reports with.
    pub const GITHUB: &'static str = "https://api.github.com/meta/public_keys/secret_scanning";

    /// A URL when `text` starts with `http://` or `https://`, a file path
    /// otherwise.
    pub fn parse(text: &str) -> Self {
        if text.starts_with("http://") || text.starts_with("https://") {
            Self::Url(text.to_owned())
        } else {
            Self::File(PathBuf::from(text))
        }
    }
}

/// Why a report was refused; each is answered with its
/// [`status`](Self::status) and no side effect, except [`Store`](Self::Store)
/// (tokens before the failing one may have been revoked; a retry is safe).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ScanError {
    /// The signature or key identifier header is missing.
    #[error("the report is not signed")]
    Unsigned,
    /// The signature is not valid for the body under the named key.
    #[error("the report's signature is not valid")]
    BadSignature,
    /// No published key has the report's identifier.
    #[error("the report is signed with an unknown key")]
    UnknownKey,
    /// The public keys could not be fetched or read.
    #[error("the public keys are unavailable")]
    KeysUnavailable,
    /// The body is larger than the limit.
    #[error("the report is too large")]
    TooLarge,
    /// The report names more tokens than the limit.
    #[error("the report names more than {0} tokens")]
    TooManyTokens(usize),
    /// The body could not be read, or is not a list of reports.
    #[error("the report is malformed")]
    Malformed,
    /// The store failed while the tokens were checked.
    #[error("the key store failed: {0}")]
    Store(#[from] StoreError),
}

impl ScanError {
    /// The HTTP status the endpoint answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Unsigned | Self::BadSignature | Self::UnknownKey => StatusCode::UNAUTHORIZED,
            Self::TooLarge | Self::TooManyTokens(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Malformed => StatusCode::BAD_REQUEST,
            Self::KeysUnavailable | Self::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

impl IntoResponse for ScanError {
    fn into_response(self) -> Response {
        // The store error's text may name the backend; it is logged, not sent.
        if let Self::Store(error) = &self {
            tracing::error!(target: "tower_api_keys", %error, "secret-scanning report not processed");
        }
        let status = self.status();
        let text = match self {
            Self::Store(_) => "the key store is unavailable".to_owned(),
            other => other.to_string(),
        };
        (status, text).into_response()
    }
}

/// One token of a report, as GitHub sends it.
#[derive(Deserialize)]
struct Report {
    token: String,
    #[serde(rename = "type")]
    token_type: String,
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    source: Option<String>,
}

/// The answer about one token, in GitHub's format.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    /// The hex SHA-256 of the token (never the token itself).
    pub token_hash: String,
    /// The token's type, as reported.
    pub token_type: String,
    /// `true_positive` for a key of this store, `false_positive` otherwise.
    pub label: Label,
}

/// Whether a reported token is one of this store's keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Label {
    /// A key of this store (now revoked).
    TruePositive,
    /// Not a key of this store.
    FalsePositive,
}

/// The endpoint: verifies reports and revokes the keys they name. Cloning
/// is cheap; clones share the cached public keys.
#[derive(Debug, Clone)]
pub struct SecretScanning {
    keys: ApiKeys,
    public_keys: Arc<PublicKeys>,
    max_body_len: usize,
    max_tokens: usize,
}

impl SecretScanning {
    /// Most bytes of a report body read by default.
    pub const DEFAULT_MAX_BODY_LEN: usize = 256 * 1024;
    /// Most tokens in one report by default: more than the default body
    /// holds of GitHub's matches (a token, its type, a URL and a source
    /// take well over 130 bytes each).
    pub const DEFAULT_MAX_TOKENS: usize = 2_000;
    /// The least time between two fetches of the public keys by default.
    pub const DEFAULT_MIN_REFRESH_INTERVAL: Duration = Duration::from_secs(60);

    /// An endpoint revoking `keys`' keys, verifying reports against the
    /// public keys from `source`.
    pub fn new(keys: ApiKeys, source: PublicKeySource) -> Self {
        Self {
            keys,
            public_keys: Arc::new(PublicKeys::new(source, Self::DEFAULT_MIN_REFRESH_INTERVAL)),
            max_body_len: Self::DEFAULT_MAX_BODY_LEN,
            max_tokens: Self::DEFAULT_MAX_TOKENS,
        }
    }

    /// Refuses bodies longer than `bytes` with 413.
    #[must_use]
    pub fn max_body_len(mut self, bytes: usize) -> Self {
        self.max_body_len = bytes;
        self
    }

    /// Refuses reports of more than `tokens` tokens with 413, before any
    /// lookup: each token costs one, and a signed report can be replayed.
    /// GitHub asks that large batches be handled: raise it with
    /// [`max_body_len`](Self::max_body_len).
    #[must_use]
    pub fn max_tokens(mut self, tokens: usize) -> Self {
        self.max_tokens = tokens;
        self
    }

    /// The least time between two fetches of the public keys, which happen
    /// on the first report and on an identifier not seen yet (default: a
    /// minute). Resets the cached keys.
    #[must_use]
    pub fn min_refresh_interval(mut self, interval: Duration) -> Self {
        self.public_keys = Arc::new(PublicKeys::new(self.public_keys.source.clone(), interval));
        self
    }

    /// The axum handler: `POST` only; mount it at the URL registered with
    /// GitHub.
    pub fn handler<S>(self) -> MethodRouter<S>
    where
        S: Clone + Send + Sync + 'static,
    {
        post(handle).with_state(self)
    }

    /// Verifies a report and acts on it: what the handler does, for code
    /// that receives requests some other way. `identifier` and `signature`
    /// are the two headers' values.
    pub async fn process(
        &self,
        identifier: &str,
        signature: &str,
        body: &[u8],
    ) -> Result<Vec<Verdict>, ScanError> {
        if body.len() > self.max_body_len {
            return Err(ScanError::TooLarge);
        }
        let signature = STANDARD
            .decode(signature.trim())
            .ok()
            .and_then(|der| Signature::from_der(&der).ok())
            .ok_or(ScanError::BadSignature)?;
        let key = self.public_keys.get(identifier).await?;
        key.verify(body, &signature)
            .map_err(|_| ScanError::BadSignature)?;
        let reports: Vec<Report> =
            serde_json::from_slice(body).map_err(|_| ScanError::Malformed)?;
        if reports.len() > self.max_tokens {
            return Err(ScanError::TooManyTokens(self.max_tokens));
        }
        let mut verdicts = Vec::with_capacity(reports.len());
        for report in &reports {
            verdicts.push(self.check(report).await?);
        }
        Ok(verdicts)
    }

    /// Hashes and looks up one token, revoking the key it is.
    async fn check(&self, report: &Report) -> Result<Verdict, ScanError> {
        let token_hash = hex(&Sha256::digest(report.token.as_bytes()));
        // The same work for every token: one hash, one lookup.
        let well_formed = self.keys.format().parse(&report.token).is_ok();
        let hash = self.keys.hasher().hash(&report.token);
        let found = self.keys.store().find_by_hash(&hash).await?;
        let label = match found {
            Some(record) if well_formed => {
                if record.revoked_at.is_none() {
                    self.revoke(&record, report).await?;
                }
                Label::TruePositive
            }
            _ => Label::FalsePositive,
        };
        Ok(Verdict {
            token_hash,
            token_type: report.token_type.clone(),
            label,
        })
    }

    async fn revoke(
        &self,
        record: &crate::record::KeyRecord,
        report: &Report,
    ) -> Result<(), ScanError> {
        let url = report.url.as_deref().map(clean);
        let reason = reason_for(url.as_deref());
        let revoked = self
            .keys
            .acting_as(Actor::System(SystemCause::GithubSecretScanning))
            .revoke(&record.owner, &record.id, Some(&reason))
            .await;
        let revoked = match revoked {
            Ok(revoked) => revoked,
            // Deleted meanwhile: nothing left to revoke.
            Err(crate::ManageError::NotFound) => return Ok(()),
            Err(crate::ManageError::Store(error)) => return Err(error.into()),
            Err(_) => {
                return Err(ScanError::Store(StoreError::unavailable(
                    "revocation failed",
                )));
            }
        };
        self.keys.emit_event(
            &revoked,
            KeyEventKind::ReportedLeaked {
                reporter: SystemCause::GithubSecretScanning,
                url,
                source: report.source.as_deref().map(clean),
            },
        );
        Ok(())
    }
}

/// A reported string as kept in an event: no control, invisible or
/// bidirectional formatting characters, at most [`MAX_URL_IN_EVENT`]
/// characters.
fn clean(text: &str) -> String {
    text.chars()
        .filter(|&c| !is_unsafe_to_show(c))
        .take(MAX_URL_IN_EVENT)
        .collect()
}

/// The revocation reason: [`REVOKED_REASON`] and as much of the URL as a
/// reason holds, or the reason alone when the URL would not show as it
/// reads. Never one that the revocation refuses: a report GitHub retries
/// must not fail the same way each time.
fn reason_for(url: Option<&str>) -> String {
    let Some(url) = url.filter(|url| !url.is_empty()) else {
        return REVOKED_REASON.to_owned();
    };
    let reason: String = format!("{REVOKED_REASON} at {url}")
        .chars()
        .take(MAX_TEXT_LEN)
        .collect();
    if is_showable(&reason) {
        reason
    } else {
        REVOKED_REASON.to_owned()
    }
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

async fn handle(State(scanning): State<SecretScanning>, request: Request) -> Response {
    match receive(&scanning, request).await {
        Ok(verdicts) => match serde_json::to_vec(&verdicts) {
            Ok(json) => ([(http::header::CONTENT_TYPE, "application/json")], json).into_response(),
            Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        },
        Err(error) => error.into_response(),
    }
}

async fn receive(scanning: &SecretScanning, request: Request) -> Result<Vec<Verdict>, ScanError> {
    let (parts, body) = request.into_parts();
    let identifier = header(&parts.headers, KEY_IDENTIFIER_HEADER)?;
    let signature = header(&parts.headers, SIGNATURE_HEADER)?;
    let body = http_body_util::Limited::new(body, scanning.max_body_len)
        .collect()
        .await
        .map_err(|error| {
            if error.is::<http_body_util::LengthLimitError>() {
                ScanError::TooLarge
            } else {
                ScanError::Malformed
            }
        })?
        .to_bytes();
    scanning.process(&identifier, &signature, &body).await
}

fn header(headers: &HeaderMap, name: &str) -> Result<String, ScanError> {
    headers
        .get(name)
        .and_then(|value| value.to_str().ok())
        .filter(|value| !value.is_empty())
        .map(str::to_owned)
        .ok_or(ScanError::Unsigned)
}

/// GitHub's public keys by identifier, fetched from the source when an
/// identifier is not known, at most once per `min_refresh`.
struct PublicKeys {
    source: PublicKeySource,
    min_refresh: Duration,
    client: reqwest::Client,
    known: RwLock<HashMap<String, VerifyingKey>>,
    /// The last fetch of the keys; held while fetching.
    last_fetch: Mutex<Option<Fetch>>,
}

/// When the keys were fetched, and whether they could be read.
#[derive(Clone, Copy)]
struct Fetch {
    at: Instant,
    ok: bool,
}

impl fmt::Debug for PublicKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PublicKeys")
            .field("source", &self.source)
            .field("min_refresh", &self.min_refresh)
            .finish_non_exhaustive()
    }
}

/// GitHub's document.
#[derive(Deserialize)]
struct Published {
    public_keys: Vec<PublishedKey>,
}

#[derive(Deserialize)]
struct PublishedKey {
    key_identifier: String,
    key: String,
}

impl PublicKeys {
    fn new(source: PublicKeySource, min_refresh: Duration) -> Self {
        Self {
            source,
            min_refresh,
            // The URL configured, never one it redirects to.
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .redirect(reqwest::redirect::Policy::none())
                .user_agent(concat!("tower-api-keys/", env!("CARGO_PKG_VERSION")))
                .build()
                .unwrap_or_default(),
            known: RwLock::default(),
            last_fetch: Mutex::new(None),
        }
    }

    async fn get(&self, identifier: &str) -> Result<VerifyingKey, ScanError> {
        if let Some(key) = self.known.read().await.get(identifier) {
            return Ok(*key);
        }
        let mut last = self.last_fetch.lock().await;
        // Another report may have fetched them while this one waited.
        if let Some(key) = self.known.read().await.get(identifier) {
            return Ok(*key);
        }
        if let Some(fetch) = *last
            && fetch.at.elapsed() < self.min_refresh
        {
            // After a failed fetch, the keys are unavailable, not unknown.
            return Err(if fetch.ok {
                ScanError::UnknownKey
            } else {
                ScanError::KeysUnavailable
            });
        }
        let at = Instant::now();
        let keys = match self.load().await {
            Ok(keys) => keys,
            Err(error) => {
                *last = Some(Fetch { at, ok: false });
                tracing::warn!(
                    target: "tower_api_keys",
                    %error,
                    "GitHub's secret-scanning public keys could not be read"
                );
                return Err(ScanError::KeysUnavailable);
            }
        };
        *last = Some(Fetch { at, ok: true });
        let found = keys.get(identifier).copied();
        *self.known.write().await = keys;
        found.ok_or(ScanError::UnknownKey)
    }

    async fn load(&self) -> Result<HashMap<String, VerifyingKey>, String> {
        let document = match &self.source {
            PublicKeySource::Json(json) => json.as_bytes().to_vec(),
            PublicKeySource::File(path) => tokio::fs::read(path)
                .await
                .map_err(|error| format!("{}: {error}", path.display()))?,
            PublicKeySource::Url(url) => {
                crate::fetch::get_bounded(&self.client, url, MAX_KEY_DOCUMENT).await?
            }
        };
        if document.len() > MAX_KEY_DOCUMENT {
            return Err("the document is too large".to_owned());
        }
        let published: Published =
            serde_json::from_slice(&document).map_err(|error| error.to_string())?;
        let mut keys = HashMap::new();
        for key in published.public_keys {
            match VerifyingKey::from_public_key_pem(&key.key) {
                Ok(parsed) => {
                    keys.insert(key.key_identifier, parsed);
                }
                Err(error) => tracing::warn!(
                    target: "tower_api_keys",
                    key_identifier = %key.key_identifier,
                    %error,
                    "a published secret-scanning key is not a P-256 public key"
                ),
            }
        }
        Ok(keys)
    }
}
