//! [`ManageError`]: why a call that manages keys failed.

use crate::key::RandomSourceError;
use crate::record::MAX_TEXT_LEN;
use crate::store::StoreError;

/// Why a management call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ManageError {
    /// The owner has no key with that id.
    #[error("no such key")]
    NotFound,
    /// The name is empty, too long, or has control or bidirectional
    /// formatting characters.
    #[error(
        "a key name must be 1 to {MAX_TEXT_LEN} visible characters, without control, invisible or bidirectional formatting characters"
    )]
    InvalidName,
    /// The owner is empty, too long, or has control or bidirectional
    /// formatting characters.
    #[error(
        "an owner must be 1 to {MAX_TEXT_LEN} visible characters, without control, invisible or bidirectional formatting characters"
    )]
    InvalidOwner,
    /// The revocation reason is empty, too long, or has control or
    /// bidirectional formatting characters.
    #[error(
        "a revocation reason must be 1 to {MAX_TEXT_LEN} visible characters, without control, invisible or bidirectional formatting characters"
    )]
    InvalidReason,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A revoked key cannot be rolled.
    #[error("the key is revoked")]
    Revoked,
    /// The key is being rolled by another call; a key is rolled into one
    /// successor.
    #[error("the key is being rolled by another call")]
    RollInProgress,
    /// No random bytes could be had for the key.
    #[error(transparent)]
    Random(#[from] RandomSourceError),
}
