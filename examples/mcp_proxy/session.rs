//! Which key opened which MCP session.
//!
//! An `Mcp-Session-Id` is a bearer capability of its own: whoever presents
//! it speaks in that session. The proxy remembers the key that received each
//! session id from the upstream and lets only that key use it.

use std::time::Duration;

use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderName, StatusCode};
use moka::future::Cache;
use tower_api_keys::KeyId;

/// `Mcp-Session-Id`.
pub static MCP_SESSION_ID: HeaderName = HeaderName::from_static("mcp-session-id");

/// Session id → the key that opened the session.
///
/// Bounded: at most [`Self::CAPACITY`] sessions, each forgotten after
/// [`Self::IDLE`] without a request (a client then gets 404 and opens a new
/// session, as MCP clients do). A restart of the proxy forgets them all, with
/// the same effect.
#[derive(Debug, Clone)]
pub struct SessionBindings {
    owners: Cache<String, KeyId>,
}

/// What to do with a request, given its session id.
#[derive(Debug, PartialEq, Eq)]
pub enum SessionCheck {
    /// No session id: an `initialize`, or a server without sessions.
    NoSession,
    /// The session was opened by this key.
    Bound(String),
    /// The session is unknown here or was opened by another key.
    Refused,
}

impl SessionBindings {
    /// Most sessions remembered.
    pub const CAPACITY: u64 = 100_000;
    /// How long an unused session is remembered.
    pub const IDLE: Duration = Duration::from_secs(3600);

    /// An empty table.
    pub fn new() -> Self {
        Self {
            owners: Cache::builder()
                .max_capacity(Self::CAPACITY)
                .time_to_idle(Self::IDLE)
                .build(),
        }
    }

    /// Checks the request's session id (if any) against `key`. More than one
    /// `Mcp-Session-Id` header, or one that is not text, is refused.
    pub async fn check(&self, headers: &HeaderMap, key: KeyId) -> SessionCheck {
        let mut values = headers.get_all(&MCP_SESSION_ID).iter();
        let Some(value) = values.next() else {
            return SessionCheck::NoSession;
        };
        let (None, Ok(id)) = (values.next(), value.to_str()) else {
            return SessionCheck::Refused;
        };
        match self.owners.get(id).await {
            Some(owner) if owner == key => SessionCheck::Bound(id.to_owned()),
            Some(owner) => {
                // Not the session id itself: it is a credential of sorts.
                tracing::warn!(key_id = %key, session_key_id = %owner,
                    "a key presented a session opened by another key");
                SessionCheck::Refused
            }
            None => SessionCheck::Refused,
        }
    }

    /// Binds `session` to `key`, unless another key holds it already.
    pub async fn bind(&self, session: &str, key: KeyId) {
        let entry = self
            .owners
            .entry_by_ref(session)
            .or_insert_with(async { key })
            .await;
        if !entry.is_fresh() && *entry.value() != key {
            tracing::warn!(key_id = %key, "the upstream reissued a session id bound to another key");
        }
    }

    /// Forgets `session` (it was deleted, or the upstream no longer knows it).
    pub async fn end(&self, session: &str) {
        self.owners.invalidate(session).await;
    }
}

/// The answer to a refused session: the same 404 and body as rmcp's answer
/// for an unknown session.
///
/// 404 rather than 403, for two reasons. MCP clients answer a 404 on a
/// session by opening a new one (the spec requires it), so a client whose
/// binding was forgotten recovers by itself. And a key presenting another
/// key's session id learns nothing: the answer is the same as for an id
/// that never existed.
pub fn refused() -> Response {
    (StatusCode::NOT_FOUND, "Not Found: Session not found").into_response()
}
