//! The management API's routes: who the caller is, what it asked for, and
//! the [`ApiKeys`] call that does it.

use std::collections::BTreeSet;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{FromRequestParts, Path, RawQuery, State};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use http::HeaderMap;
use http::header::CONTENT_TYPE;
use http::request::Parts;
use http::{Method, StatusCode};
use serde::de::DeserializeOwned;

use super::Context;
use super::problem::{Problem, ProblemKind};
use super::wire::{
    CreateKey, CreatedKey, Key, KeyPage, ListParams, ProblemDetails, RenameKey, RollKey,
};
use crate::error::ManageError;
use crate::event::Actor;
use crate::identity::AuthenticatedKey;
use crate::limit::RateLimit;
use crate::record::{KeyId, KeyRecord, KeyStatus, NewKey, OwnerId, Scopes};
use crate::store::{KeyCursor, ListKeys};

/// Keys on a page unless the caller asks otherwise.
const DEFAULT_PAGE: usize = 20;
/// Most keys on one page.
const MAX_PAGE: usize = 100;
/// Most scopes one key may be given.
const MAX_SCOPES: usize = 32;
/// Most characters in one scope.
const MAX_SCOPE_LEN: usize = 64;
/// The longest overlap of a roll: 30 days.
const MAX_OVERLAP_SECS: u64 = 30 * 24 * 3600;

/// Who is calling: the owner whose keys it manages, the scopes it may grant
/// and how its events name it.
pub(super) struct Manager {
    owner: OwnerId,
    scopes: Scopes,
    /// When the calling key expires: no key it makes may outlive it.
    expires_at: Option<DateTime<Utc>>,
    /// The calling key's own allowance and metadata, which a key it makes
    /// gets too (none for an owner named by the application).
    rate_limit: Option<RateLimit>,
    metadata: serde_json::Value,
    /// The calling key, checked again before a call that changes keys.
    key: Option<AuthenticatedKey>,
    /// The calling access token, checked again likewise.
    #[cfg(feature = "oauth")]
    token: Option<crate::identity::AccessToken>,
    actor: Actor,
}

impl FromRequestParts<Context> for Manager {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, context: &Context) -> Result<Self, Problem> {
        refuse_cross_site(parts)?;
        let manager = Self::identify(parts, context)?;
        if let Some(allowance) = &context.allowance
            && let Err(wait) = allowance.take(&manager.owner)
        {
            return Err(Problem::new(
                ProblemKind::RateLimited,
                "this owner made too many key management calls; retry after the time Retry-After gives",
            )
            .retry_after(wait));
        }
        Ok(manager)
    }
}

impl Manager {
    /// Who calls: the owner the application named, the access token's
    /// subject, or the calling key's owner.
    fn identify(parts: &Parts, context: &Context) -> Result<Self, Problem> {
        if context.by_owner {
            return match parts.extensions.get::<OwnerId>() {
                Some(owner) => Ok(Self {
                    owner: owner.clone(),
                    scopes: Scopes::All,
                    expires_at: None,
                    rate_limit: None,
                    metadata: serde_json::Value::Null,
                    key: None,
                    #[cfg(feature = "oauth")]
                    token: None,
                    actor: Actor::Owner(owner.clone()),
                }),
                None => Err(Problem::new(
                    ProblemKind::NoOwner,
                    "the request carries no owner: sign in first",
                )),
            };
        }
        // A user signed in through OAuth manages the keys of the token's
        // subject, granting no scope the token lacks. The token's short
        // life bounds the session, not the keys it makes: minting a key
        // to use where OAuth cannot go is what the route is for.
        #[cfg(feature = "oauth")]
        if let Some(token) = parts.extensions.get::<crate::identity::AccessToken>() {
            return Ok(Self {
                owner: token.owner().clone(),
                scopes: token.scopes().clone(),
                expires_at: None,
                rate_limit: None,
                metadata: serde_json::Value::Null,
                key: None,
                token: Some(token.clone()),
                actor: Actor::Owner(token.owner().clone()),
            });
        }
        // The router's own key layer put the key here (and checked its scope).
        match parts.extensions.get::<AuthenticatedKey>() {
            Some(key) => Ok(Self {
                owner: key.owner().clone(),
                scopes: key.scopes().clone(),
                expires_at: key.expires_at(),
                rate_limit: key.record().rate_limit,
                metadata: key.metadata().clone(),
                key: Some(key.clone()),
                #[cfg(feature = "oauth")]
                token: None,
                actor: Actor::Key(key.id()),
            }),
            None => Err(Problem::new(
                ProblemKind::NoOwner,
                "the request carries no API key",
            )),
        }
    }
}

impl Manager {
    /// Checks the calling key again, just before a call that changes keys:
    /// the layer let it in when the headers came, and the body may have
    /// taken long enough for it to be revoked or expire since. A key no
    /// longer usable gets the layer's own refusal.
    async fn still_usable(&self, context: &Context) -> Result<(), Refused> {
        #[cfg(feature = "oauth")]
        if let Some(token) = &self.token
            && token.expires_at() <= context.keys.now()
        {
            let rejection = context
                .keys
                .refusal(crate::rejection::RejectionReason::ExpiredAccessToken);
            return Err(Refused::Key(context.keys.respond(&rejection)));
        }
        let Some(key) = &self.key else {
            return Ok(());
        };
        let status = match context.keys.get(&self.owner, &key.id()).await {
            Ok(record) => record.status_at(context.keys.now()),
            Err(ManageError::NotFound) => KeyStatus::Revoked,
            Err(error) => return Err(error.into()),
        };
        if status == KeyStatus::Active {
            return Ok(());
        }
        let rejection = context.keys.rejection(key, status);
        Err(Refused::Key(context.keys.respond(&rejection)))
    }
}

/// Why a call that changes keys was refused: a problem of the API, or the
/// layer's refusal of the calling key.
pub(super) enum Refused {
    Problem(Problem),
    Key(http::Response<Bytes>),
}

impl From<Problem> for Refused {
    fn from(problem: Problem) -> Self {
        Self::Problem(problem)
    }
}

impl From<ManageError> for Refused {
    fn from(error: ManageError) -> Self {
        Self::Problem(error.into())
    }
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        match self {
            Self::Problem(problem) => problem.into_response(),
            Self::Key(response) => response.map(Body::from),
        }
    }
}

/// Refuses a state-changing request sent by another site's page: with a
/// session login (cookies) it would change keys in the signed-in user's
/// name. Browsers say where a request comes from in `Sec-Fetch-Site`, or
/// at least in `Origin`; clients that are not browsers send neither.
fn refuse_cross_site(parts: &Parts) -> Result<(), Problem> {
    if matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return Ok(());
    }
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .map(|v| v.to_str().unwrap_or("\u{fffd}"))
    };
    let cross = match (header("sec-fetch-site"), header("origin")) {
        (Some(site), _) => !matches!(site, "same-origin" | "none"),
        (None, Some(origin)) => {
            let host = header("host").unwrap_or_default();
            origin
                .split_once("://")
                .is_none_or(|(_, authority)| !authority.eq_ignore_ascii_case(host))
        }
        (None, None) => false,
    };
    if cross {
        return Err(Problem::new(
            ProblemKind::CrossSite,
            "this request came from another site's page; keys are managed from this site or by clients that are not browsers",
        ));
    }
    Ok(())
}

/// How many of `owner`'s keys are usable now, counted up to `enough`.
async fn usable_keys(context: &Context, owner: &OwnerId, enough: usize) -> Result<usize, Refused> {
    let now = context.keys.now();
    let mut usable = 0;
    let mut cursor = None;
    loop {
        let page = context
            .keys
            .store()
            .list(
                &ListKeys::new()
                    .owner(owner.clone())
                    .after(cursor)
                    .limit(MAX_PAGE),
            )
            .await
            .map_err(ManageError::from)?;
        usable += page
            .records
            .iter()
            .filter(|record| record.status_at(now) == KeyStatus::Active)
            .count();
        match page.next {
            Some(next) if usable < enough => cursor = Some(next),
            _ => return Ok(usable),
        }
    }
}

/// Whether a caller holding `held` may hand out `wanted`.
fn grants(held: &Scopes, wanted: &Scopes) -> bool {
    match (held.as_set(), wanted.as_set()) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(held), Some(wanted)) => wanted.is_subset(held),
    }
}

/// The scopes a new key gets: those asked for (checked as RFC 6749
/// scope-tokens), or all the caller's own.
fn requested_scopes(manager: &Manager, asked: Option<Vec<String>>) -> Result<Scopes, Problem> {
    let Some(asked) = asked else {
        return Ok(manager.scopes.clone());
    };
    if asked.len() > MAX_SCOPES {
        return Err(Problem::new(
            ProblemKind::InvalidScopes,
            format!("a key may have at most {MAX_SCOPES} scopes"),
        ));
    }
    let scope_char = |c: char| matches!(c, '\x21' | '\x23'..='\x5B' | '\x5D'..='\x7E');
    if let Some(bad) = asked.iter().find(|s| {
        s.is_empty() || s.len() > MAX_SCOPE_LEN || !s.chars().all(scope_char) || *s == "*"
    }) {
        return Err(Problem::new(
            ProblemKind::InvalidScopes,
            format!(
                "a scope is 1 to {MAX_SCOPE_LEN} printable ASCII characters without spaces, quotes or backslashes, and not \"*\" (which shows full access); {} is not",
                serde_json::Value::from(bad.as_str())
            ),
        ));
    }
    let wanted = Scopes::Only(asked.into_iter().collect::<BTreeSet<_>>());
    if grants(&manager.scopes, &wanted) {
        Ok(wanted)
    } else {
        Err(Problem::new(
            ProblemKind::ScopeEscalation,
            format!(
                "the calling key has the scopes \"{}\" and cannot grant \"{wanted}\"",
                manager.scopes
            ),
        ))
    }
}

/// The key id in the path.
fn key_id(path: Result<Path<String>, PathRejection>) -> Result<KeyId, Problem> {
    let Path(raw) = path.map_err(|e| Problem::new(ProblemKind::InvalidId, e.body_text()))?;
    raw.parse()
        .map_err(|_| Problem::new(ProblemKind::InvalidId, "a key id is a UUID"))
}

/// `?cursor=&limit=`, strictly: unknown or repeated parameters are refused.
fn list_params(query: Option<&str>) -> Result<(Option<KeyCursor>, usize), Problem> {
    let invalid = |detail: String| Problem::new(ProblemKind::InvalidQuery, detail);
    let mut params = ListParams::default();
    for (name, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        let repeated = match name.as_ref() {
            "cursor" => params.cursor.replace(value.into_owned()).is_some(),
            "limit" => {
                let limit = value
                    .parse::<u32>()
                    .ok()
                    .filter(|n| (1..=MAX_PAGE as u32).contains(n))
                    .ok_or_else(|| invalid(format!("limit is a number from 1 to {MAX_PAGE}")))?;
                params.limit.replace(limit).is_some()
            }
            _ => {
                return Err(invalid(format!(
                    "unknown query parameter {}; this route takes cursor and limit",
                    serde_json::Value::from(name.as_ref())
                )));
            }
        };
        if repeated {
            return Err(invalid(format!("{name} is given more than once")));
        }
    }
    let cursor = match params.cursor.as_deref() {
        None => None,
        Some(raw) => Some(raw.parse::<KeyCursor>().map_err(|_| {
            invalid("cursor is not one this API made; pass a page's next_cursor".into())
        })?),
    };
    let limit = params.limit.map_or(DEFAULT_PAGE, |n| n as usize);
    Ok((cursor, limit))
}

/// The body: a JSON object of `T`'s fields, sent as `application/json`
/// (or `application/*+json`). With `optional`, an empty body or `null` is
/// `None`. Duplicate and unknown fields are refused, and so is any JSON
/// that is not an object (serde would read an array positionally).
fn json_body<T: DeserializeOwned>(
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
    optional: bool,
) -> Result<Option<T>, Problem> {
    let bytes = body.map_err(|rejection| {
        let kind = if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ProblemKind::BodyTooLarge
        } else {
            ProblemKind::MalformedBody
        };
        Problem::new(kind, rejection.body_text())
    })?;
    if optional && bytes.is_empty() {
        return Ok(None);
    }
    let essence = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase());
    let is_json = essence.as_deref().is_some_and(|e| {
        e == "application/json" || (e.starts_with("application/") && e.ends_with("+json"))
    });
    if !is_json {
        return Err(Problem::new(
            ProblemKind::UnsupportedMediaType,
            "send the body as Content-Type: application/json",
        ));
    }
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace()).copied();
    match first {
        Some(b'{') => {}
        Some(b'n') if optional && serde_json::from_slice::<()>(&bytes).is_ok() => return Ok(None),
        Some(b'[' | b'"' | b'-' | b'0'..=b'9' | b't' | b'f' | b'n') => {
            return Err(Problem::new(
                ProblemKind::InvalidBody,
                "the body must be a JSON object",
            ));
        }
        _ => {
            return Err(Problem::new(
                ProblemKind::MalformedBody,
                "the body is not JSON",
            ));
        }
    }
    serde_json::from_slice(&bytes).map(Some).map_err(|error| {
        let kind = match error.classify() {
            serde_json::error::Category::Data => ProblemKind::InvalidBody,
            _ => ProblemKind::MalformedBody,
        };
        Problem::new(kind, error.to_string())
    })
}

/// A body that must be there.
fn required_body<T: DeserializeOwned>(
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<T, Problem> {
    json_body(headers, body, false)?
        .ok_or_else(|| Problem::new(ProblemKind::MalformedBody, "the body is empty"))
}

/// The caller's key named in the path, which it may `what`: not one with
/// scopes the caller lacks.
async fn key_to_change(
    context: &Context,
    manager: &Manager,
    path: Result<Path<String>, PathRejection>,
    what: &str,
) -> Result<KeyRecord, Problem> {
    let id = key_id(path)?;
    let record = context.keys.get(&manager.owner, &id).await?;
    if grants(&manager.scopes, &record.scopes) {
        return Ok(record);
    }
    Err(Problem::new(
        ProblemKind::ScopeEscalation,
        format!(
            "the calling key has the scopes \"{}\" and cannot {what} a key with \"{}\"",
            manager.scopes, record.scopes
        ),
    ))
}

/// The caller's keys, newest first, a page at a time.
#[utoipa::path(
    get,
    path = "/keys",
    tag = "keys",
    operation_id = "list_keys",
    params(ListParams),
    responses(
        (status = 200, description = "One page of the caller's keys", body = KeyPage),
        (status = 429, description = "With a rate limit of the API's own: the owner's calls are used up (rate-limited, Retry-After)", body = ProblemDetails, content_type = "application/problem+json"),
    )
)]
pub(super) async fn list_keys(
    State(context): State<Context>,
    manager: Manager,
    RawQuery(query): RawQuery,
) -> Result<Json<KeyPage>, Problem> {
    let (cursor, limit) = list_params(query.as_deref())?;
    let page = context.keys.list(&manager.owner, cursor, limit).await?;
    let now = context.keys.now();
    Ok(Json(KeyPage {
        keys: page.records.iter().map(|r| Key::new(r, now)).collect(),
        next_cursor: page.next.map(|cursor| cursor.to_string()),
    }))
}

/// Creates a key; the answer holds its secret, this once.
#[utoipa::path(
    post,
    path = "/keys",
    tag = "keys",
    operation_id = "create_key",
    request_body = CreateKey,
    responses(
        (status = 201, description = "The new key, with its secret shown this once", body = CreatedKey),
        (status = 409, description = "The owner holds the most keys allowed (too-many-keys)", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 429, description = "With a rate limit of the API's own: the owner's calls are used up (rate-limited, Retry-After)", body = ProblemDetails, content_type = "application/problem+json"),
    )
)]
pub(super) async fn create_key(
    State(context): State<Context>,
    manager: Manager,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<CreatedKey>), Refused> {
    let request: CreateKey = required_body(&headers, body)?;
    manager.still_usable(&context).await?;
    let scopes = requested_scopes(&manager, request.scopes)?;
    let now = context.keys.now();
    // No more allowance than the caller's own, and its metadata.
    let mut new = NewKey::new(manager.owner.clone(), request.name)
        .scopes(scopes)
        .metadata(manager.metadata.clone());
    new.rate_limit = manager.rate_limit;
    if request.expires_at.is_some_and(|at| at <= now) {
        return Err(Problem::new(
            ProblemKind::InvalidExpiry,
            "expires_at must be in the future; omit it for a key that does not expire",
        )
        .into());
    }
    // A key the caller makes expires no later than the caller.
    new.expires_at = match (request.expires_at, manager.expires_at) {
        (Some(at), Some(limit)) if at > limit => {
            return Err(Problem::new(
                ProblemKind::OutlivesCaller,
                format!(
                    "the calling key expires at {}; a key it creates cannot expire later",
                    limit.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                ),
            )
            .into());
        }
        (Some(at), _) => Some(at),
        (None, limit) => limit,
    };
    let _one_at_a_time = context.creating.lock().await;
    let usable = usable_keys(&context, &manager.owner, context.max_keys_per_owner).await?;
    if usable >= context.max_keys_per_owner {
        return Err(Problem::new(
            ProblemKind::TooManyKeys,
            format!(
                "this owner has {usable} keys that are neither revoked nor expired, the most allowed; revoke one first"
            ),
        )
        .into());
    }
    let created = context.keys.acting_as(manager.actor).create(new).await?;
    Ok((StatusCode::CREATED, Json(CreatedKey::new(&created, now))))
}

/// One of the caller's keys.
#[utoipa::path(
    get,
    path = "/keys/{id}",
    tag = "keys",
    operation_id = "get_key",
    params(("id" = String, Path, format = Uuid, description = "The key's id")),
    responses(
        (status = 200, description = "The key", body = Key),
        (status = 404, description = "The caller has no key with that id", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 429, description = "With a rate limit of the API's own: the owner's calls are used up (rate-limited, Retry-After)", body = ProblemDetails, content_type = "application/problem+json"),
    )
)]
pub(super) async fn get_key(
    State(context): State<Context>,
    manager: Manager,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<Key>, Problem> {
    let id = key_id(path)?;
    let record = context.keys.get(&manager.owner, &id).await?;
    Ok(Json(Key::new(&record, context.keys.now())))
}

/// Renames one of the caller's keys.
#[utoipa::path(
    patch,
    path = "/keys/{id}",
    tag = "keys",
    operation_id = "rename_key",
    params(("id" = String, Path, format = Uuid, description = "The key's id")),
    request_body = RenameKey,
    responses(
        (status = 200, description = "The renamed key", body = Key),
        (status = 404, description = "The caller has no key with that id", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 429, description = "With a rate limit of the API's own: the owner's calls are used up (rate-limited, Retry-After)", body = ProblemDetails, content_type = "application/problem+json"),
    )
)]
pub(super) async fn rename_key(
    State(context): State<Context>,
    manager: Manager,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Key>, Refused> {
    let request: RenameKey = required_body(&headers, body)?;
    manager.still_usable(&context).await?;
    let old = key_to_change(&context, &manager, path, "rename").await?;
    let record = context
        .keys
        .acting_as(manager.actor)
        .rename(&manager.owner, &old.id, &request.name)
        .await?;
    Ok(Json(Key::new(&record, context.keys.now())))
}

/// Revokes one of the caller's keys, irreversibly; revoking a revoked key
/// answers its record unchanged.
#[utoipa::path(
    post,
    path = "/keys/{id}/revoke",
    tag = "keys",
    operation_id = "revoke_key",
    params(("id" = String, Path, format = Uuid, description = "The key's id")),
    responses(
        (status = 200, description = "The revoked key", body = Key),
        (status = 404, description = "The caller has no key with that id", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 429, description = "With a rate limit of the API's own: the owner's calls are used up (rate-limited, Retry-After)", body = ProblemDetails, content_type = "application/problem+json"),
    )
)]
pub(super) async fn revoke_key(
    State(context): State<Context>,
    manager: Manager,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<Key>, Refused> {
    manager.still_usable(&context).await?;
    let old = key_to_change(&context, &manager, path, "revoke").await?;
    let record = context
        .keys
        .acting_as(manager.actor)
        .revoke(&manager.owner, &old.id, None)
        .await?;
    Ok(Json(Key::new(&record, context.keys.now())))
}

/// Replaces one of the caller's keys with a new one of the same name and
/// scopes; the old one keeps working for `overlap` seconds.
#[utoipa::path(
    post,
    path = "/keys/{id}/roll",
    tag = "keys",
    operation_id = "roll_key",
    params(("id" = String, Path, format = Uuid, description = "The key's id")),
    request_body(content = Option<RollKey>, description = "Optional; `{}` rolls with no overlap"),
    responses(
        (status = 201, description = "The new key, with its secret shown this once", body = CreatedKey),
        (status = 404, description = "The caller has no key with that id", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 409, description = "The key is revoked or expired, or another call is rolling it", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 429, description = "With a rate limit of the API's own: the owner's calls are used up (rate-limited, Retry-After)", body = ProblemDetails, content_type = "application/problem+json"),
    )
)]
pub(super) async fn roll_key(
    State(context): State<Context>,
    manager: Manager,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<CreatedKey>), Refused> {
    // No body, or `null`: the defaults.
    let request: RollKey = json_body(&headers, body, true)?.unwrap_or_default();
    manager.still_usable(&context).await?;
    let overlap = request.overlap.unwrap_or(0);
    if overlap > MAX_OVERLAP_SECS {
        return Err(Problem::new(
            ProblemKind::InvalidOverlap,
            format!("overlap is 0 to {MAX_OVERLAP_SECS} seconds"),
        )
        .into());
    }
    let old = key_to_change(&context, &manager, path, "roll").await?;
    if old.status_at(context.keys.now()) == KeyStatus::Expired {
        return Err(Problem::new(
            ProblemKind::KeyExpired,
            "the key has expired; create a new one instead",
        )
        .into());
    }
    if let Some(limit) = manager.expires_at
        && old.expires_at.is_none_or(|at| at > limit)
    {
        return Err(Problem::new(
            ProblemKind::OutlivesCaller,
            "the successor would keep this key's expiry, later than the calling key's",
        )
        .into());
    }
    let overlap = chrono::Duration::seconds(i64::try_from(overlap).unwrap_or(0));
    let created = context
        .keys
        .acting_as(manager.actor)
        .roll(&manager.owner, &old.id, overlap)
        .await?;
    let now = context.keys.now();
    Ok((StatusCode::CREATED, Json(CreatedKey::new(&created, now))))
}

/// A method a route does not take.
pub(super) async fn method_not_allowed() -> Problem {
    Problem::new(
        ProblemKind::MethodNotAllowed,
        "the route does not take this method; see the Allow header",
    )
}

/// Any path the API does not serve.
pub(super) async fn no_such_route() -> Problem {
    Problem::new(
        ProblemKind::NoSuchRoute,
        "the key management API has no such route",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scoped_caller_grants_only_a_subset() {
        let held = Scopes::only(["a", "b"]);
        assert!(grants(&held, &Scopes::only(["a"])));
        assert!(grants(&held, &Scopes::only(["a", "b"])));
        assert!(!grants(&held, &Scopes::only(["a", "c"])));
        assert!(!grants(&held, &Scopes::All));
        assert!(grants(&Scopes::All, &Scopes::All));
    }

    #[test]
    fn list_params_are_strict() {
        assert_eq!(list_params(None).unwrap(), (None, DEFAULT_PAGE));
        assert_eq!(list_params(Some("limit=5")).unwrap().1, 5);
        for bad in [
            "limit=0",
            "limit=101",
            "limit=x",
            "limit=1&limit=2",
            "page=2",
            "cursor=zz",
        ] {
            assert_eq!(
                list_params(Some(bad)).unwrap_err().kind(),
                ProblemKind::InvalidQuery,
                "{bad}"
            );
        }
    }
}
