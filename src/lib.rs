//! API-key authentication for [tower], [hyper] and [axum] services, as hosted
//! products ship it: `Authorization: Bearer bmc_...` keys that are shown
//! once, stored only as a hash, may expire, can be revoked with immediate
//! effect, and whose last use is recorded without slowing any request.
//!
//! ```
//! use axum::{Router, routing::get};
//! use tower_api_keys::{ApiKeys, AuthenticatedKey, MemoryStore, NewKey};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let keys = ApiKeys::builder(MemoryStore::new()).realm("example").build()?;
//! let created = keys.create(NewKey::new("acct_1", "laptop")).await?;
//! println!("{}", created.secret.expose_secret()); // shown once
//!
//! let app: Router = Router::new()
//!     .route("/whoami", get(|key: AuthenticatedKey| async move { key.name().to_owned() }))
//!     .layer(keys.layer());
//! // axum::serve(listener, app).with_graceful_shutdown(...).await?;
//! keys.shutdown().await; // writes pending last-used times
//! # drop(app);
//! # Ok(())
//! # }
//! ```
//!
//! The request flow: query-string guard → bearer parse → format check →
//! SHA-256 → cache (moka) → on a miss, one coalesced store lookup → status
//! against the clock → identity in the request extensions → inner service.
//! See [`ApiKeyLayer`] for the requirements, [`rejection`] for the wire
//! contract, and [`KeyStore`] for writing a backend.
//!
//! [tower]: https://docs.rs/tower
//! [hyper]: https://docs.rs/hyper
//! [axum]: https://docs.rs/axum
#![forbid(unsafe_code)]
#![warn(clippy::unwrap_used)]

mod api_keys;
mod auth;
#[cfg(feature = "axum")]
mod axum;
pub mod bearer;
mod body;
mod cache;
mod changes;
mod clock;
mod identity;
mod key;
mod last_used;
mod layer;
mod manage;
pub mod query;
mod rate_limit;
mod record;
pub mod rejection;
pub mod store;
mod throttle;

/// The README's Rust examples, compiled as doc tests so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeExamples;

pub use crate::api_keys::{ApiKeys, ApiKeysBuilder, BuildError};
pub use crate::auth::EXPOSED_IN_URL;
#[cfg(feature = "axum")]
pub use crate::axum::KeyRejection;
pub use crate::body::ResponseBody;
pub use crate::clock::{Clock, ManualClock, SystemClock};
pub use crate::identity::AuthenticatedKey;
pub use crate::key::{
    InvalidPrefix, KeyFormat, KeyHash, KeyHasher, MalformedKey, ParsedKey, RandomSourceError,
    SecretKey, WeakPepper,
};
pub use crate::last_used::LastUsedStats;
pub use crate::layer::{ApiKeyLayer, ApiKeyService, ResponseFuture};
pub use crate::manage::{CreatedKey, ManageError};
pub use crate::rate_limit::RateLimit;
pub use crate::record::{KeyId, KeyRecord, KeyStatus, NewKey, OwnerId, Scopes};
pub use crate::rejection::{RateLimitState, Rejection, RejectionReason};
#[cfg(feature = "postgres")]
pub use crate::store::PostgresStore;
#[cfg(feature = "sqlite")]
pub use crate::store::SqliteStore;
pub use crate::store::{KeyStore, MemoryStore, StoreError};
pub use crate::throttle::{ClientAddress, FailedAttemptLimit, FindClient};
