//! What happened to a key and who did it: [`KeyEvent`], handed to the
//! handler set with
//! [`ApiKeysBuilder::on_key_event`](crate::ApiKeysBuilder::on_key_event) and
//! emitted as a `tracing` event (target `tower_api_keys::event`) each.
//!
//! Events never carry a secret or a hash: a key is named by its id, its
//! owner and its display prefix. They serialize to one JSON object each,
//! ready for an append-only audit log:
//!
//! ```
//! use tower_api_keys::event::{Actor, KeyEvent, KeyEventKind};
//! use tower_api_keys::record::{KeyId, OwnerId};
//!
//! let event = KeyEvent {
//!     at: chrono::DateTime::UNIX_EPOCH,
//!     key_id: KeyId::new(),
//!     owner: OwnerId::new("acct_1"),
//!     key_prefix: "bmc_AbCd".to_owned(),
//!     kind: KeyEventKind::Revoked {
//!         reason: Some("lost laptop".to_owned()),
//!         actor: Actor::Owner(OwnerId::new("acct_1")),
//!     },
//! };
//! let line = serde_json::to_string(&event).unwrap();
//! assert!(line.contains(r#""event":"revoked""#));
//! assert!(line.contains(r#""actor":{"owner":"acct_1"}"#));
//! ```

use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::record::{KeyId, KeyRecord, OwnerId};

/// Who or what made a change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Actor {
    /// A management call made for this owner (through
    /// [`ApiKeys`](crate::ApiKeys)).
    Owner(OwnerId),
    /// A key acting on itself or on another key (a roll names the key
    /// rolled).
    Key(KeyId),
    /// The crate, for a cause of its own.
    System(SystemCause),
}

/// Why the crate itself changed a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum SystemCause {
    /// The key was sent in a URL and the exposure policy revokes such keys.
    ExposedInUrl,
    /// GitHub's secret scanning reported the key in a public place.
    GithubSecretScanning,
    /// The key's expiry time passed.
    Expiry,
}

/// How an expiry came to this process's notice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum NoticedBy {
    /// A management call set an expiry that has already passed.
    Write,
    /// The change follower read a change that left the key expired.
    ChangeFollower,
    /// The first request refused because the key had expired.
    Refusal,
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
#[non_exhaustive]
pub enum KeyEventKind {
    /// The key was created.
    Created {
        /// Who created it.
        actor: Actor,
    },
    /// The key was given a new name.
    Renamed {
        /// The name before.
        from: String,
        /// The name after.
        to: String,
        /// Who renamed it.
        actor: Actor,
    },
    /// The key was rolled: a successor was created and this key expires at
    /// `expires_at`.
    Rolled {
        /// The key that replaces it.
        successor: KeyId,
        /// When this key stops working.
        expires_at: DateTime<Utc>,
        /// Who rolled it.
        actor: Actor,
    },
    /// The key was revoked.
    Revoked {
        /// The reason recorded with the revocation.
        reason: Option<String>,
        /// Who revoked it.
        actor: Actor,
    },
    /// The key expired, as this process noticed.
    Expired {
        /// When its expiry time is.
        expires_at: Option<DateTime<Utc>>,
        /// How it was noticed.
        noticed_by: NoticedBy,
    },
    /// The key was sent in a URL's query string.
    ExposedInUrl,
    /// Someone reported the key as leaked.
    ReportedLeaked {
        /// Who reported it.
        reporter: SystemCause,
        /// Where the key was found, as the reporter said.
        url: Option<String>,
        /// What kind of place that is, as the reporter said.
        source: Option<String>,
    },
    /// The key's first admitted use: its record showed no earlier use.
    FirstUse,
}

impl KeyEventKind {
    /// The event's name, as in its JSON form (`"created"`, `"revoked"`, ...).
    pub fn name(&self) -> &'static str {
        match self {
            Self::Created { .. } => "created",
            Self::Renamed { .. } => "renamed",
            Self::Rolled { .. } => "rolled",
            Self::Revoked { .. } => "revoked",
            Self::Expired { .. } => "expired",
            Self::ExposedInUrl => "exposed_in_url",
            Self::ReportedLeaked { .. } => "reported_leaked",
            Self::FirstUse => "first_use",
        }
    }
}

/// One thing that happened to one key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyEvent {
    /// When it happened (by the engine's clock).
    pub at: DateTime<Utc>,
    /// The key.
    pub key_id: KeyId,
    /// The key's owner.
    pub owner: OwnerId,
    /// The key's display prefix (never the secret).
    pub key_prefix: String,
    /// What happened.
    #[serde(flatten)]
    pub kind: KeyEventKind,
}

impl KeyEvent {
    /// An event about `record`.
    pub fn new(at: DateTime<Utc>, record: &KeyRecord, kind: KeyEventKind) -> Self {
        Self {
            at,
            key_id: record.id,
            owner: record.owner.clone(),
            key_prefix: record.display_prefix.clone(),
            kind,
        }
    }
}

/// A function called with every key event.
pub(crate) type KeyEventHandler = Arc<dyn Fn(&KeyEvent) + Send + Sync>;

/// Where key events go: a tracing event each, and the handler if any.
#[derive(Clone)]
pub(crate) struct EventSink(Option<KeyEventHandler>);

impl EventSink {
    pub(crate) fn new(handler: Option<KeyEventHandler>) -> Self {
        Self(handler)
    }

    /// Emits the tracing event and calls the handler.
    pub(crate) fn emit(&self, event: &KeyEvent) {
        tracing::info!(
            target: "tower_api_keys::event",
            event = event.kind.name(),
            key_id = %event.key_id,
            key_prefix = %event.key_prefix,
            owner = %event.owner,
            detail = ?event.kind,
            "API key {}",
            event.kind.name()
        );
        if let Some(handler) = &self.0 {
            handler(event);
        }
    }
}

impl fmt::Debug for EventSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventSink")
            .field("handler", &self.0.is_some())
            .finish()
    }
}
