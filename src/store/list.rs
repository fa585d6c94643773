//! Paging through keys: [`ListKeys`] asks, [`KeyPage`] answers.

use std::fmt;
use std::str::FromStr;

use crate::record::{KeyId, KeyRecord, OwnerId};

/// Which keys to list, and which page: newest first, at most
/// [`limit`](Self::limit) a page, starting after a [`KeyCursor`].
///
/// ```
/// use tower_api_keys::store::ListKeys;
///
/// let first = ListKeys::new().owner("acct_1").limit(50);
/// assert_eq!(first.limit, 50);
/// assert!(first.after.is_none());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ListKeys {
    /// Only this owner's keys; `None` for every owner's.
    pub owner: Option<OwnerId>,
    /// Only keys whose display prefix starts with this text.
    pub display_prefix: Option<String>,
    /// Only keys older than the last key of the previous page.
    pub after: Option<KeyCursor>,
    /// Most keys on the page, from 1 to [`ListKeys::MAX_LIMIT`].
    pub limit: usize,
}

impl ListKeys {
    /// Keys on a page unless said otherwise.
    pub const DEFAULT_LIMIT: usize = 100;
    /// Most keys one page may hold.
    pub const MAX_LIMIT: usize = 1000;

    /// The first page of every key.
    pub fn new() -> Self {
        Self {
            owner: None,
            display_prefix: None,
            after: None,
            limit: Self::DEFAULT_LIMIT,
        }
    }

    /// Only `owner`'s keys.
    #[must_use]
    pub fn owner(mut self, owner: impl Into<OwnerId>) -> Self {
        self.owner = Some(owner.into());
        self
    }

    /// Only keys whose display prefix starts with `prefix`.
    #[must_use]
    pub fn display_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.display_prefix = Some(prefix.into());
        self
    }

    /// The page after the one that returned `cursor`.
    #[must_use]
    pub fn after(mut self, cursor: Option<KeyCursor>) -> Self {
        self.after = cursor;
        self
    }

    /// At most `limit` keys (clamped to 1 ..= [`MAX_LIMIT`](Self::MAX_LIMIT)).
    #[must_use]
    pub fn limit(mut self, limit: usize) -> Self {
        self.limit = limit.clamp(1, Self::MAX_LIMIT);
        self
    }

    /// Whether `record` belongs in the listing (before paging), for stores
    /// that filter in memory.
    pub fn matches(&self, record: &KeyRecord) -> bool {
        self.owner
            .as_ref()
            .is_none_or(|owner| &record.owner == owner)
            && self
                .display_prefix
                .as_deref()
                .is_none_or(|prefix| record.display_prefix.starts_with(prefix))
            && self.after.is_none_or(|after| record.id < after.0)
    }
}

impl Default for ListKeys {
    fn default() -> Self {
        Self::new()
    }
}

/// Where the next page starts. Its text form (`Display`, `FromStr`) is
/// what an API hands its clients; it means nothing to them.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyCursor(KeyId);

impl KeyCursor {
    /// The cursor after `id` (the last key of a page), newest first.
    pub const fn after_key(id: KeyId) -> Self {
        Self(id)
    }

    /// The last key of the page before: the next page holds older keys.
    pub const fn key_id(self) -> KeyId {
        self.0
    }
}

impl fmt::Debug for KeyCursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyCursor({})", self.0)
    }
}

impl fmt::Display for KeyCursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.as_uuid().simple())
    }
}

/// A cursor that is not one this crate made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not a page cursor")]
pub struct InvalidCursor;

impl FromStr for KeyCursor {
    type Err = InvalidCursor;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() != 32 {
            return Err(InvalidCursor);
        }
        let uuid = uuid::Uuid::try_parse(s).map_err(|_| InvalidCursor)?;
        Ok(Self(KeyId::from_uuid(uuid)))
    }
}

/// One page of keys, newest first.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyPage {
    /// The keys, newest first.
    pub records: Vec<KeyRecord>,
    /// Where the next page starts; `None` on the last page.
    pub next: Option<KeyCursor>,
}

impl KeyPage {
    /// A page made from up to `limit + 1` records read newest first: the
    /// extra record, if there is one, only says that another page follows.
    pub fn from_overfetch(mut records: Vec<KeyRecord>, limit: usize) -> Self {
        let next = if records.len() > limit {
            records.truncate(limit);
            records.last().map(|last| KeyCursor(last.id))
        } else {
            None
        };
        Self { records, next }
    }
}
