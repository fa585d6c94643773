//! [`KeyUpdate`]: the ways a stored key can change after it was inserted,
//! each applied by [`KeyStore::update`](super::KeyStore::update).

use chrono::{DateTime, Utc};

use crate::record::KeyRecord;

/// One change to a stored key. Every backend applies it as
/// [`apply_to`](Self::apply_to) says, in one statement (or transaction), and
/// logs a change to the feed only when the record changed.
///
/// ```
/// use chrono::{TimeZone, Utc};
/// use tower_api_keys::store::KeyUpdate;
///
/// let at = Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0).unwrap();
/// let revoke = KeyUpdate::Revoke {at, reason: Some("leaked".into()) };
/// assert!(matches!(revoke, KeyUpdate::Revoke {.. }));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyUpdate {
    /// Revokes the key at `at`, irreversibly. A key revoked already keeps
    /// its first revocation time and reason.
    Revoke {
        /// When it was revoked.
        at: DateTime<Utc>,
        /// Why, as the revoker said.
        reason: Option<String>,
    },
    /// Gives the key a new name; the same name changes nothing.
    Rename {
        /// The new name.
        name: String,
    },
    /// Makes the key expire at `at`, unless it already expires at or
    /// before `at`.
    ExpireBy {
        /// The latest expiry the key may have afterwards.
        at: DateTime<Utc>,
    },
}

impl KeyUpdate {
    /// Applies the change to `record` and says whether anything changed:
    /// the semantics every backend keeps (the in-memory store runs exactly
    /// this).
    pub fn apply_to(&self, record: &mut KeyRecord) -> bool {
        match self {
            Self::Revoke { at, reason } => {
                if record.revoked_at.is_some() {
                    return false;
                }
                record.revoked_at = Some(*at);
                record.revoked_reason.clone_from(reason);
                true
            }
            Self::Rename { name } => {
                if &record.name == name {
                    return false;
                }
                record.name.clone_from(name);
                true
            }
            Self::ExpireBy { at } => {
                if record.expires_at.is_some_and(|current| current <= *at) {
                    return false;
                }
                record.expires_at = Some(*at);
                true
            }
        }
    }
}
