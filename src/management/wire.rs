//! What the management API reads and writes: the JSON bodies, with their
//! OpenAPI schemas. A key is shown without its hash, its metadata or its
//! secret; the secret appears once, in [`CreatedKey`].

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::record::{KeyId, KeyRecord, KeyStatus};

/// One key as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[non_exhaustive]
pub struct Key {
    /// The key's id (a UUIDv7).
    #[schema(value_type = String, format = Uuid)]
    pub id: KeyId,
    /// The key's name.
    pub name: String,
    /// The first characters of the key, safe to show (`bmc_K7xR2pQm`).
    pub display_prefix: String,
    /// When the key was created.
    pub created_at: DateTime<Utc>,
    /// When the key stops working; `null` for never.
    pub expires_at: Option<DateTime<Utc>>,
    /// When the key was last used (recorded in batches); `null` for never.
    pub last_used_at: Option<DateTime<Utc>>,
    /// When the key was revoked; `null` if it was not.
    pub revoked_at: Option<DateTime<Utc>>,
    /// The key's status now.
    pub status: KeyStatus,
    /// What the key may do: a list of scopes, or `null` for full access.
    pub scopes: Option<Vec<String>>,
}

impl Key {
    /// `record` as the API shows it, with its status as of `now`.
    pub fn new(record: &KeyRecord, now: DateTime<Utc>) -> Self {
        Self {
            id: record.id,
            name: record.name.clone(),
            display_prefix: record.display_prefix.clone(),
            created_at: record.created_at,
            expires_at: record.expires_at,
            last_used_at: record.last_used_at,
            revoked_at: record.revoked_at,
            status: record.status_at(now),
            scopes: record
                .scopes
                .as_set()
                .map(|set| set.iter().cloned().collect()),
        }
    }
}

/// One page of keys, newest first.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[non_exhaustive]
pub struct KeyPage {
    /// The keys on this page.
    pub keys: Vec<Key>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// A new key: its record and its secret, shown this once.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[non_exhaustive]
pub struct CreatedKey {
    /// The new key's record.
    pub key: Key,
    /// The key itself. It is not stored and cannot be shown again.
    pub secret: String,
}

impl CreatedKey {
    /// A new key as the API shows it, with its status as of `now`.
    pub fn new(created: &crate::record::CreatedKey, now: DateTime<Utc>) -> Self {
        Self {
            key: Key::new(&created.record, now),
            secret: created.secret.expose_secret().to_owned(),
        }
    }
}

/// `POST /keys`: the key to create.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateKey {
    /// A name to tell the key by ("Claude Desktop"): 1 to 200 characters,
    /// not blank, without control, invisible or bidirectional formatting
    /// characters.
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F\u00AD\u0600-\u0605\u061C\u06DD\u070F\u180E\u200B\u200E\u200F\u2028-\u202E\u2060-\u2064\u2066-\u206F\uFEFF\uFFF9-\uFFFB]+$"
    )]
    pub name: String,
    /// When the key stops working (in the future); omitted or `null` for
    /// never, or for as long as the calling key works if it expires (a key
    /// cannot make a key that outlives it).
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
    /// What the key may do; omitted or `null` for everything the caller may
    /// do. A caller cannot grant a scope it lacks.
    #[serde(default)]
    #[schema(max_items = 32, value_type = Option<Vec<ScopeToken>>)]
    pub scopes: Option<Vec<String>>,
}

/// One scope: 1 to 64 printable ASCII characters without spaces, `"` or `\`
/// (an RFC 6749 scope-token).
#[derive(Debug, Clone, ToSchema)]
#[schema(value_type = String, pattern = r#"^[\x21\x23-\x5B\x5D-\x7E]{1,64}$"#)]
#[expect(dead_code, reason = "only its schema is used")]
pub(crate) struct ScopeToken(String);

/// `PATCH /keys/{id}`: the new name.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RenameKey {
    /// The new name, checked as at creation.
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F\u00AD\u0600-\u0605\u061C\u06DD\u070F\u180E\u200B\u200E\u200F\u2028-\u202E\u2060-\u2064\u2066-\u206F\uFEFF\uFFF9-\uFFFB]+$"
    )]
    pub name: String,
}

/// `POST /keys/{id}/roll`: how long the old key keeps working.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RollKey {
    /// Seconds the old key keeps working beside the new one, 0 to 2,592,000
    /// (30 days); omitted or `null` for 0, the old key stops at once.
    #[serde(default, deserialize_with = "whole_number")]
    #[schema(minimum = 0, maximum = 2_592_000)]
    pub overlap: Option<u64>,
}

/// A non-negative whole number, also when written `60.0` (JSON Schema's
/// `integer` admits it).
fn whole_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    let Some(number) = Option::<serde_json::Number>::deserialize(d)? else {
        return Ok(None);
    };
    if let Some(n) = number.as_u64() {
        return Ok(Some(n));
    }
    match number.as_f64() {
        Some(f) if f >= 0.0 && f.fract() == 0.0 && f <= u64::MAX as f64 => Ok(Some(f as u64)),
        _ => Err(serde::de::Error::custom(format!(
            "expected a whole number of seconds, not {number}"
        ))),
    }
}

/// `GET /keys`: which page.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// The `next_cursor` of the page before; omitted for the first page.
    #[param(pattern = "^[0-9a-fA-F]{32}$")]
    pub cursor: Option<String>,
    /// Keys per page, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
}

/// The body of an error: RFC 9457 problem details, served as
/// `application/problem+json`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(as = Problem)]
#[non_exhaustive]
pub struct ProblemDetails {
    /// Names the kind of problem, stable across versions
    /// (`urn:tower-api-keys:problem:not-found`).
    #[serde(rename = "type")]
    pub kind: String,
    /// A short summary of the kind of problem.
    pub title: String,
    /// The HTTP status code.
    pub status: u16,
    /// What went wrong with this request.
    pub detail: String,
}

/// The body of a refusal by the key layer (RFC 6750), served as
/// `application/json` beside a `WWW-Authenticate` challenge.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[non_exhaustive]
pub struct BearerError {
    /// The RFC 6750 error code (`invalid_token`, `insufficient_scope`, ...).
    pub error: String,
    /// What went wrong.
    pub error_description: String,
    /// The scope the request needs, for `insufficient_scope`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}
