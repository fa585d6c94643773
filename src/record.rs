//! What a store keeps about a key: [`KeyRecord`] and the types it is made of.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::key::{KeyHash, SecretKey};
use crate::limit::RateLimit;

/// A key's identifier: a UUIDv7, so ids sort by creation time.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct KeyId(Uuid);

impl KeyId {
    /// A new, time-ordered id.
    pub fn new() -> Self {
        Self(Uuid::now_v7())
    }

    /// Wraps an id read back from a store.
    pub const fn from_uuid(uuid: Uuid) -> Self {
        Self(uuid)
    }

    /// The UUID.
    pub const fn as_uuid(&self) -> &Uuid {
        &self.0
    }
}

impl Default for KeyId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({})", self.0)
    }
}

impl FromStr for KeyId {
    type Err = uuid::Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s).map(Self)
    }
}

/// The account a key belongs to. Management calls are scoped by owner: no
/// owner lists or revokes another owner's keys.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct OwnerId(String);

impl OwnerId {
    /// Wraps an owner identifier chosen by the application.
    pub fn new(owner: impl Into<String>) -> Self {
        Self(owner.into())
    }

    /// The identifier as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for OwnerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for OwnerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "OwnerId({:?})", self.0)
    }
}

impl From<&str> for OwnerId {
    fn from(s: &str) -> Self {
        Self::new(s)
    }
}

impl From<String> for OwnerId {
    fn from(s: String) -> Self {
        Self(s)
    }
}

/// Whether `c` would change how text around it is shown, or hide in it: a
/// control character (a newline, a terminal escape), a line or paragraph
/// separator, or an invisible formatting character (U+202E and the other
/// bidirectional controls, which reorder what follows; zero-width spaces,
/// word joiners, the byte-order mark, tag characters). The zero-width
/// joiner and non-joiner stay allowed: emoji and several scripts need them.
/// Names, owners and revocation reasons refuse these characters.
pub(crate) fn is_unsafe_to_show(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{00AD}'
                | '\u{0600}'..='\u{0605}'
                | '\u{061C}'
                | '\u{06DD}'
                | '\u{070F}'
                | '\u{180E}'
                | '\u{200B}'
                | '\u{200E}'
                | '\u{200F}'
                | '\u{2028}'..='\u{202E}'
                | '\u{2060}'..='\u{2064}'
                | '\u{2066}'..='\u{206F}'
                | '\u{FEFF}'
                | '\u{FFF9}'..='\u{FFFB}'
                | '\u{1D173}'..='\u{1D17A}'
                | '\u{E0001}'
                | '\u{E0020}'..='\u{E007F}'
        )
}

/// Whether `text` shows as something a reader can tell apart: not only
/// whitespace and blank-looking characters (Hangul fillers, the blank
/// Braille pattern), and no character carrying a pile of more than four
/// combining marks, which draw over the text around them.
pub(crate) fn is_visible_text(text: &str) -> bool {
    let blank = |c: char| {
        c.is_whitespace()
            || matches!(
                c,
                '\u{115F}'
                    | '\u{1160}'
                    | '\u{3164}'
                    | '\u{FFA0}'
                    | '\u{2800}'
                    | '\u{200C}'
                    | '\u{200D}'
            )
    };
    let combining = |c: char| matches!(c, '\u{0300}'..='\u{036F}' | '\u{1AB0}'..='\u{1AFF}' | '\u{1DC0}'..='\u{1DFF}' | '\u{20D0}'..='\u{20FF}' | '\u{FE20}'..='\u{FE2F}');
    let mut run = 0;
    for c in text.chars() {
        run = if combining(c) { run + 1 } else { 0 };
        if run > 4 {
            return false;
        }
    }
    text.chars().any(|c| !blank(c) && !combining(c))
}

/// The reason recorded on a key revoked because it was found in a URL (see
/// [`ApiKeysBuilder::revoke_keys_exposed_in_url`](crate::ApiKeysBuilder::revoke_keys_exposed_in_url)).
pub const EXPOSED_IN_URL: &str = "exposed in URL";

/// Whether a key can be used, as of a given instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "management", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum KeyStatus {
    /// Neither expired nor revoked.
    Active,
    /// Its expiry time has passed.
    Expired,
    /// Revoked; this cannot be undone.
    Revoked,
}

impl fmt::Display for KeyStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Active => "active",
            Self::Expired => "expired",
            Self::Revoked => "revoked",
        })
    }
}

/// What a key may do. A key has full access unless it is given a set of
/// scopes.
///
/// ```
/// use tower_api_keys::record::Scopes;
///
/// assert!(Scopes::All.allows("projects:read"));
/// let limited = Scopes::only(["projects:read"]);
/// assert!(limited.allows("projects:read"));
/// assert!(!limited.allows("projects:write"));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Scopes {
    /// Full access (the default).
    #[default]
    All,
    /// Only these scopes.
    Only(BTreeSet<String>),
}

impl Scopes {
    /// A key limited to the given scopes.
    pub fn only<I, S>(scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self::Only(scopes.into_iter().map(Into::into).collect())
    }

    /// Whether `scope` is granted.
    pub fn allows(&self, scope: &str) -> bool {
        match self {
            Self::All => true,
            Self::Only(set) => set.contains(scope),
        }
    }

    /// The listed scopes; `None` for full access.
    pub fn as_set(&self) -> Option<&BTreeSet<String>> {
        match self {
            Self::All => None,
            Self::Only(set) => Some(set),
        }
    }
}

impl fmt::Display for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::All => f.write_str("*"),
            Self::Only(set) => {
                let mut first = true;
                for scope in set {
                    if !first {
                        f.write_str(" ")?;
                    }
                    first = false;
                    f.write_str(scope)?;
                }
                Ok(())
            }
        }
    }
}

/// Everything a store keeps about one key. It never holds the plaintext key.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyRecord {
    /// Stable identifier.
    pub id: KeyId,
    /// Human-chosen name, such as `ci-deploy`.
    pub name: String,
    /// The account the key belongs to.
    pub owner: OwnerId,
    /// The first characters of the key (`bmc_K7xR2pQm`), safe to show.
    pub display_prefix: String,
    /// Hash of the whole key.
    pub hash: KeyHash,
    /// When the key was created.
    pub created_at: DateTime<Utc>,
    /// When the key stops working, if ever.
    pub expires_at: Option<DateTime<Utc>>,
    /// When the key was last used, as recorded in batches.
    pub last_used_at: Option<DateTime<Utc>>,
    /// When the key was revoked, if it was.
    pub revoked_at: Option<DateTime<Utc>>,
    /// Why the key was revoked, if a reason was given.
    pub revoked_reason: Option<String>,
    /// What the key may do.
    pub scopes: Scopes,
    /// Application data for handlers (a JSON object; `null` when unset).
    pub metadata: serde_json::Value,
    /// The key's own request allowance; `None` uses the layer's default
    /// (see [`ApiKeysBuilder::rate_limit`](crate::ApiKeysBuilder::rate_limit)).
    pub rate_limit: Option<RateLimit>,
}

impl KeyRecord {
    /// The status as of `now`. Revocation wins over expiry.
    pub fn status_at(&self, now: DateTime<Utc>) -> KeyStatus {
        if self.revoked_at.is_some() {
            KeyStatus::Revoked
        } else if self.expires_at.is_some_and(|at| at <= now) {
            KeyStatus::Expired
        } else {
            KeyStatus::Active
        }
    }
}

/// The caller's part of a new key: who owns it, its name, and optionally an
/// expiry, scopes and metadata.
///
/// ```
/// use tower_api_keys::NewKey;
/// use tower_api_keys::record::Scopes;
/// use chrono::{Duration, Utc};
///
/// let new = NewKey::new("acct_42", "ci-deploy")
///     .expires_at(Utc::now() + Duration::days(30))
///     .scopes(Scopes::only(["projects:read"]));
/// assert_eq!(new.name, "ci-deploy");
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct NewKey {
    /// The owning account.
    pub owner: OwnerId,
    /// The key's name.
    pub name: String,
    /// When the key stops working, if ever.
    pub expires_at: Option<DateTime<Utc>>,
    /// What the key may do (full access by default).
    pub scopes: Scopes,
    /// Application data for handlers.
    pub metadata: serde_json::Value,
    /// The key's own request allowance, if it differs from the default.
    pub rate_limit: Option<RateLimit>,
}

impl NewKey {
    /// A key for `owner` called `name`, with full access and no expiry.
    pub fn new(owner: impl Into<OwnerId>, name: impl Into<String>) -> Self {
        Self {
            owner: owner.into(),
            name: name.into(),
            expires_at: None,
            scopes: Scopes::All,
            metadata: serde_json::Value::Null,
            rate_limit: None,
        }
    }

    /// Sets the key's own request allowance.
    #[must_use]
    pub fn rate_limit(mut self, limit: RateLimit) -> Self {
        self.rate_limit = Some(limit);
        self
    }

    /// Sets the expiry.
    #[must_use]
    pub fn expires_at(mut self, at: DateTime<Utc>) -> Self {
        self.expires_at = Some(at);
        self
    }

    /// Sets the scopes.
    #[must_use]
    pub fn scopes(mut self, scopes: Scopes) -> Self {
        self.scopes = scopes;
        self
    }

    /// Sets the metadata.
    #[must_use]
    pub fn metadata(mut self, metadata: serde_json::Value) -> Self {
        self.metadata = metadata;
        self
    }
}

#[cfg(test)]
impl KeyRecord {
    /// An active key without expiry, scopes or metadata, for unit tests.
    pub(crate) fn sample() -> Self {
        Self {
            id: KeyId::new(),
            name: "n".into(),
            owner: "o".into(),
            display_prefix: "bmc_AAAAAAAA".into(),
            hash: KeyHash::from_bytes([0; 32]),
            created_at: Utc::now(),
            expires_at: None,
            last_used_at: None,
            revoked_at: None,
            revoked_reason: None,
            scopes: Scopes::All,
            metadata: serde_json::Value::Null,
            rate_limit: None,
        }
    }
}

/// Longest key name, owner and revocation reason accepted, in characters.
pub(crate) const MAX_TEXT_LEN: usize = 200;

/// Whether `text` is 1 to [`MAX_TEXT_LEN`] characters, none of which
/// changes how text around it is shown or hides in it, and not blank.
pub(crate) fn is_showable(text: &str) -> bool {
    let len = text.chars().count();
    (1..=MAX_TEXT_LEN).contains(&len)
        && !text.chars().any(is_unsafe_to_show)
        && is_visible_text(text)
}

/// A key just created: the plaintext, to show its owner once, and the
/// record as stored. `Debug` shows only the display prefix of the secret.
pub struct CreatedKey {
    /// The plaintext key. It cannot be recovered later.
    pub secret: SecretKey,
    /// The stored record.
    pub record: KeyRecord,
}

impl fmt::Debug for CreatedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CreatedKey")
            .field("secret", &self.secret)
            .field("record", &self.record)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    fn record() -> KeyRecord {
        KeyRecord::sample()
    }

    #[test]
    fn names_must_show_as_what_they_are() {
        for ok in [
            "Claude Desktop",
            "Work Laptop",
            "ci-deploy",
            "👩‍💻 laptop",
            "می‌خواهم",
            "café",
        ] {
            assert!(
                !ok.chars().any(is_unsafe_to_show) && is_visible_text(ok),
                "{ok}"
            );
        }
        for hidden in [
            "admin\u{2060}key",
            "a\u{2028}b",
            "\u{FEFF}bom",
            "a\u{AD}b",
            "\u{E0041}tag",
            "a\u{202E}b",
        ] {
            assert!(hidden.chars().any(is_unsafe_to_show), "{hidden:?}");
        }
        for blank in ["", " ", "\u{3164}\u{2800}", "\u{200D}"] {
            assert!(!is_visible_text(blank), "{blank:?}");
        }
        assert!(is_visible_text(&format!("Z{}", "\u{301}".repeat(4))));
        assert!(!is_visible_text(&format!("Z{}", "\u{301}".repeat(5))));
    }

    #[test]
    fn status_follows_the_clock_and_revocation_wins() {
        let now = Utc::now();
        let mut r = record();
        assert_eq!(r.status_at(now), KeyStatus::Active);
        r.expires_at = Some(now + Duration::seconds(1));
        assert_eq!(r.status_at(now), KeyStatus::Active);
        assert_eq!(r.status_at(now + Duration::seconds(1)), KeyStatus::Expired);
        r.revoked_at = Some(now);
        assert_eq!(r.status_at(now), KeyStatus::Revoked);
    }

    #[test]
    fn scopes_serialize_as_null_or_a_list() {
        assert_eq!(serde_json::to_string(&Scopes::All).unwrap(), "null");
        let only = Scopes::only(["b", "a"]);
        assert_eq!(serde_json::to_string(&only).unwrap(), r#"["a","b"]"#);
        assert_eq!(serde_json::from_str::<Scopes>("null").unwrap(), Scopes::All);
        assert_eq!(
            serde_json::from_str::<Scopes>(r#"["a","b"]"#).unwrap(),
            only
        );
        assert_eq!(only.to_string(), "a b");
    }
}
