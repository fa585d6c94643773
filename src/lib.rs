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
//!     .route("/whoami", get(|key: AuthenticatedKey| async move {key.name().to_owned() }))
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
//! # Features
//!
//! | feature | what it adds |
//! |---|---|
//! | `axum` (default) | the [`AuthenticatedKey`] extractor, [`Rejection`] as a response |
//! | `sqlite` | `store::SqliteStore`, on sqlx with a bundled SQLite |
//! | `postgres` | `store::PostgresStore`, on sqlx |
//! | `redis` | `limit::RedisLimits`: rate limits shared by every instance through Redis |
//! | `metrics` | counters, a histogram and a gauge through the [`metrics`](https://docs.rs/metrics) facade (see [Metrics](#metrics)) |
//! | `secret-scanning` | [`secret_scanning`]: an endpoint for GitHub's secret-scanning partner program that verifies reports and revokes leaked keys |
//! | `management` | [`management`]: a JSON API for the caller's keys (list, create, rename, roll, revoke) as an axum router, with its OpenAPI 3.1 document |
//! | `oauth` | [`oauth`]: OAuth access tokens (JWTs of one issuer, keys from its JWKS) accepted beside API keys on the same routes; [`Caller`] for either |
//! | `test-util` | `test_util`: stores that count, fail, wait or hold their calls, and a clock moved by hand |
//!
//! # Metrics
//!
//! With the `metrics` feature, every [`ApiKeys`] registers these with the
//! recorder installed when [`ApiKeysBuilder::build`] runs (install the
//! exporter first), so any `metrics` exporter serves them. Without the
//! feature nothing of it is compiled in. No label carries a key, a hash or
//! an owner: every label value is from a fixed list.
//!
//! | name | kind | what it counts |
//! |---|---|---|
//! | `tower_api_keys_decisions_total{outcome}` | counter | requests by outcome: `admitted`, or the [`RejectionReason`](rejection::RejectionReason) (`unknown_key`, `rate_limited`, ...) |
//! | `tower_api_keys_cache_hits_total{cache}` | counter | keys found in the cache of known (`known`) or unknown (`unknown`) keys |
//! | `tower_api_keys_cache_misses_total` | counter | keys the cache had nothing ready for |
//! | `tower_api_keys_cache_coalesced_waits_total` | counter | lookups that waited on another request's store lookup |
//! | `tower_api_keys_store_lookups_total` | counter | store lookups by hash |
//! | `tower_api_keys_store_lookup_errors_total` | counter | those that failed or timed out |
//! | `tower_api_keys_store_lookup_seconds` | histogram | how long each took |
//! | `tower_api_keys_last_used_batches_total` | counter | last-used batches written |
//! | `tower_api_keys_last_used_keys_written_total` | counter | key times written in them |
//! | `tower_api_keys_last_used_write_errors_total` | counter | batch writes that failed |
//! | `tower_api_keys_last_used_dropped_total` | counter | key times given up |
//! | `tower_api_keys_change_feed_events_total` | counter | changes read from the change feed |
//! | `tower_api_keys_change_feed_reconnects_total` | counter | times the feed was read again after failing |
//! | `tower_api_keys_change_feed_lag` | gauge | changes the follower is behind the feed's head |
//! | `tower_api_keys_throttle_refusals_total` | counter | requests refused by the failed-attempt throttle |
//! | `tower_api_keys_rate_limit_refusals_total` | counter | requests refused by a key's rate limit |
//! | `tower_api_keys_access_token_decisions_total{outcome}` | counter | requests with an OAuth access token (feature `oauth`): `admitted` or `refused` (the reason is in `decisions_total`) |
//!
//! # Layout
//!
//! The modules stand in layers, each using only those below it: the leaves
//! ([`key`], [`limit`], [`record`], [`event`], [`clock`], [`rejection`],
//! [`stats`], the identity), then [`store`] and the management error, then
//! the crate-private engine (cache, change follower, last-used recorder,
//! limiters, throttle), then the tower [`layer`], then [`ApiKeys`], and on
//! it the secret-scanning endpoint, the management API and the test
//! helpers.
//!
//! The root names what most applications use; everything else is in its
//! module: records and ids in [`record`], store errors and backends in
//! [`store`], limits in [`limit`], counters in [`stats`], events in
//! [`event`], the wire contract in [`rejection`].
//!
//! [tower]: https://docs.rs/tower
//! [hyper]: https://docs.rs/hyper
//! [axum]: https://docs.rs/axum
#![forbid(unsafe_code)]
#![warn(clippy::unwrap_used)]
#![cfg_attr(docsrs, feature(doc_cfg))]

// Top: the user's handle and its builder.
mod api_keys;
// The tower layer, its service, future and body, and the axum extractor.
pub mod layer;
// Beside the handle, on top of it: GitHub's secret-scanning endpoint.
#[cfg(feature = "secret-scanning")]
#[cfg_attr(docsrs, doc(cfg(feature = "secret-scanning")))]
pub mod secret_scanning;
// Beside it: the JSON API for managing keys.
#[cfg(feature = "management")]
#[cfg_attr(docsrs, doc(cfg(feature = "management")))]
pub mod management;
// Beside it: stores and a clock for the tests of code built on the crate.
#[cfg(feature = "test-util")]
#[cfg_attr(docsrs, doc(cfg(feature = "test-util")))]
pub mod test_util;
// The shared state and its parts.
mod engine;
// What a management call can fail with.
mod error;
// The store traits and the backends.
pub mod store;
// Beside them: access tokens of an OAuth issuer.
#[cfg(feature = "oauth")]
#[cfg_attr(docsrs, doc(cfg(feature = "oauth")))]
pub mod oauth;
// Leaves.
#[cfg_attr(not(fuzzing), allow(unreachable_pub, dead_code))]
mod bearer;
pub mod clock;
pub mod event;
#[cfg(any(feature = "oauth", feature = "secret-scanning"))]
mod fetch;
pub mod identity;
pub mod key;
pub mod limit;
#[cfg_attr(not(fuzzing), allow(unreachable_pub, dead_code))]
mod query;
pub mod record;
pub mod rejection;
pub mod stats;

/// The parsers the fuzz targets drive, for them alone: not a stable API.
/// Only in builds with `--cfg fuzzing`, as cargo-fuzz makes them.
#[cfg(fuzzing)]
#[doc(hidden)]
pub mod fuzzing {
    pub use crate::bearer::{Credentials, credentials, parse};
    pub use crate::query::QueryGuard;
}

/// The README's Rust examples, compiled as doc tests so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeExamples;

pub use crate::api_keys::{ActingAs, ApiKeys, ApiKeysBuilder, BuildError};
pub use crate::error::ManageError;
#[doc(no_inline)]
pub use crate::identity::{AuthenticatedKey, Caller};
// Items of the public modules, named here for convenience; their pages are
// under their modules, so the docs show one path for each.
#[doc(no_inline)]
pub use crate::layer::ApiKeyLayer;
#[doc(no_inline)]
pub use crate::record::{CreatedKey, NewKey};
#[doc(no_inline)]
pub use crate::rejection::Rejection;
#[doc(no_inline)]
pub use crate::store::{KeyStore, MemoryStore};
