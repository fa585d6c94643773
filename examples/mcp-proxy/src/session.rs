//! Which key (or access token holder) opened which MCP session.
//!
//! An `Mcp-Session-Id` is a bearer capability of its own: whoever presents
//! it speaks in that session. The proxy remembers the credential that
//! received each session id from the upstream and lets only that one use it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderName, StatusCode};
use moka::future::Cache;
use tower_api_keys::Caller;

/// Whose sessions: a key, by its id, or an access token's holder, by its
/// issuer, subject and client together (every token of one sign-in shares
/// the sessions it opened, as a key's requests do). Logs show a key's id,
/// and for a token a digest, never the subject.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Holder(Arc<str>);

impl Holder {
    /// The holder of the credential that authenticated a request.
    pub fn of(caller: &Caller) -> Self {
        match caller {
            Caller::Key(key) => Self(key.id().to_string().into()),
            Caller::Token(token) => {
                use sha2::Digest as _;
                let mut digest = sha2::Sha256::new();
                for part in [
                    token.issuer(),
                    token.owner().as_str(),
                    token.client_id().unwrap_or(""),
                ] {
                    digest.update(part.len().to_le_bytes());
                    digest.update(part.as_bytes());
                }
                let digest = digest.finalize();
                let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
                Self(format!("token-{hex}").into())
            }
            // A credential of a kind this example does not know yet shares
            // no session with any other.
            _ => Self(format!("other-{}", fresh_id()).into()),
        }
    }
}

fn fresh_id() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// `Mcp-Session-Id`.
pub static MCP_SESSION_ID: HeaderName = HeaderName::from_static("mcp-session-id");

/// Session id → the key that opened the session.
///
/// Bounded: at most [`Self::CAPACITY`] sessions, each forgotten after an
/// idle time without a request ([`Self::DEFAULT_IDLE`] unless said
/// otherwise: no longer than the demo upstream keeps a session; a client
/// then gets 404 and opens a new session, as MCP clients do). A session the
/// upstream answers 404 for is forgotten at once. A restart of the proxy
/// forgets them all, with the same effect.
///
/// Each key may hold at most [`Self::MAX_PER_KEY`] sessions at once (unless
/// said otherwise): an MCP
/// server keeps state per session (the demo one about 55 KB), so a client
/// that opens sessions and never closes them would otherwise grow the
/// upstream's memory without bound. A request that may open a session takes
/// one of its key's places before it is forwarded ([`Self::reserve`]) and
/// gives it back if no session comes of it, so the cap holds however many
/// such requests race.
#[derive(Debug, Clone)]
pub struct SessionBindings {
    owners: Cache<String, Holder>,
    /// Sessions bound to each key, kept in step with `owners` by its
    /// eviction listener, plus the places reserved by requests in flight.
    open: Arc<Mutex<HashMap<Holder, usize>>>,
    /// Most sessions (and reservations) one key may hold.
    max_per_key: usize,
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
    /// Most sessions one key may hold open, unless said otherwise.
    pub const MAX_PER_KEY: usize = 100;
    /// How long an unused session is remembered unless said otherwise: as
    /// long as the demo upstream keeps one.
    pub const DEFAULT_IDLE: Duration = Duration::from_secs(120);

    /// An empty table whose sessions are forgotten after
    /// [`Self::DEFAULT_IDLE`] unused.
    pub fn new() -> Self {
        Self::with_limits(Self::DEFAULT_IDLE, Self::MAX_PER_KEY)
    }

    /// An empty table whose sessions are forgotten after `idle` unused, and
    /// whose keys may hold `max_per_key` sessions each.
    pub fn with_limits(idle: Duration, max_per_key: usize) -> Self {
        let open: Arc<Mutex<HashMap<Holder, usize>>> = Arc::default();
        let on_evict = Arc::clone(&open);
        Self {
            owners: Cache::builder()
                .max_capacity(Self::CAPACITY)
                .time_to_idle(idle)
                .eviction_listener(move |_session, key: Holder, _cause| {
                    let mut open = on_evict.lock().unwrap_or_else(PoisonError::into_inner);
                    if let Some(count) = open.get_mut(&key) {
                        *count = count.saturating_sub(1);
                        if *count == 0 {
                            open.remove(&key);
                        }
                    }
                })
                .build(),
            open,
            max_per_key,
        }
    }

    /// Takes one of `key`'s session places for a request that may open a
    /// session; `None` when the key holds its most already
    /// (sessions and reservations together).
    pub async fn reserve(&self, key: Holder) -> Option<Reservation> {
        if let Some(reservation) = self.try_reserve(key.clone()) {
            return Some(reservation);
        }
        // Sessions idle past their time may not have been counted out yet.
        self.owners.run_pending_tasks().await;
        self.try_reserve(key)
    }

    fn try_reserve(&self, key: Holder) -> Option<Reservation> {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let count = open.entry(key.clone()).or_insert(0);
        if *count >= self.max_per_key {
            return None;
        }
        *count += 1;
        Some(Reservation {
            open: Arc::clone(&self.open),
            key,
            bound: false,
        })
    }

    /// Checks the request's session id (if any) against `key`. More than one
    /// `Mcp-Session-Id` header, or one that is not text, is refused.
    pub async fn check(&self, headers: &HeaderMap, key: Holder) -> SessionCheck {
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

    /// Binds `session` to the reservation's key, which keeps the place for
    /// it, unless the session is bound already (the place is given back).
    pub async fn bind(&self, session: &str, mut reservation: Reservation) {
        let key = reservation.key.clone();
        let entry = self
            .owners
            .entry_by_ref(session)
            .or_insert_with(async { key.clone() })
            .await;
        if entry.is_fresh() {
            // The eviction listener gives the place back with the session.
            reservation.bound = true;
        } else if *entry.value() != key {
            tracing::warn!(key_id = %key, "the upstream reissued a session id bound to another key");
        }
    }

    /// Forgets `session` (it was deleted, or the upstream no longer knows it).
    pub async fn end(&self, session: &str) {
        self.owners.invalidate(session).await;
    }
}

/// One of a key's session places, taken by [`SessionBindings::reserve`]
/// for a request in flight; given back when dropped, unless a session was
/// bound with it.
#[derive(Debug)]
pub struct Reservation {
    open: Arc<Mutex<HashMap<Holder, usize>>>,
    key: Holder,
    bound: bool,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if self.bound {
            return;
        }
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = open.get_mut(&self.key) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.key);
            }
        }
    }
}

impl Default for SessionBindings {
    /// An empty table, as [`SessionBindings::new`].
    fn default() -> Self {
        Self::new()
    }
}

impl SessionBindings {
    /// The answer to a key at its most sessions: 429, until it closes
    /// sessions (`DELETE /mcp`) or they idle out.
    pub fn too_many(&self) -> Response {
        too_many(self.max_per_key)
    }
}

fn too_many(max_per_key: usize) -> Response {
    let body = serde_json::json!({
        "error": "too_many_sessions",
        "error_description": format!(
            "this key holds {max_per_key} open MCP sessions, the most allowed; close one with DELETE /mcp"
        ),
    });
    let mut response = (StatusCode::TOO_MANY_REQUESTS, axum::Json(body)).into_response();
    response.headers_mut().insert(
        http::header::RETRY_AFTER,
        http::HeaderValue::from_static("60"),
    );
    response
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
