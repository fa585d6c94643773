//! Limits on how often keys, owners and clients may call: a key's or an
//! owner's [`RateLimit`], the [`FailedAttemptLimit`] per client address,
//! and with the `redis` feature the limits shared through Redis
//! ([`RedisLimits`]).
//!
//! These are settings; the limiters that enforce them live behind
//! [`ApiKeysBuilder`](crate::ApiKeysBuilder).

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use http::{Extensions, HeaderMap, HeaderName};
use serde::{Deserialize, Serialize};

#[cfg(feature = "redis")]
mod redis;

#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use redis::{
    RedisLimits, RedisLimitsError, SharedLimitStats, UncheckedAllowance, WhenUnavailable,
};

/// A request allowance: `requests` per `window`.
///
/// ```
/// use std::time::Duration;
/// use tower_api_keys::limit::RateLimit;
///
/// assert_eq!(RateLimit::per_minute(600), RateLimit::new(600, Duration::from_secs(60)));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RateLimit {
    /// Requests allowed per window (at least 1).
    pub requests: u32,
    /// The window.
    #[serde(with = "millis")]
    pub window: Duration,
}

impl RateLimit {
    /// `requests` per `window`.
    pub fn new(requests: u32, window: Duration) -> Self {
        Self {
            requests: requests.max(1),
            window: window.max(Duration::from_millis(1)),
        }
    }

    /// `requests` per second.
    pub fn per_second(requests: u32) -> Self {
        Self::new(requests, Duration::from_secs(1))
    }

    /// `requests` per minute.
    pub fn per_minute(requests: u32) -> Self {
        Self::new(requests, Duration::from_secs(60))
    }

    /// `requests` per hour.
    pub fn per_hour(requests: u32) -> Self {
        Self::new(requests, Duration::from_secs(3600))
    }

    pub(crate) fn window_micros(&self) -> i64 {
        i64::try_from(self.window.as_micros()).unwrap_or(i64::MAX)
    }

    /// Microseconds between two requests at the sustained rate.
    pub(crate) fn interval_micros(&self) -> i64 {
        (self.window_micros() / i64::from(self.requests.max(1))).max(1)
    }
}

mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}

/// A function that tells a request's client address from its extensions and
/// headers.
pub type FindClient = Arc<dyn Fn(&Extensions, &HeaderMap) -> Option<IpAddr> + Send + Sync>;

/// How to tell which client sent a request.
#[derive(Clone)]
#[non_exhaustive]
pub enum ClientAddress {
    /// The peer address of the connection: axum's `ConnectInfo<SocketAddr>`
    /// (serve with `into_make_service_with_connect_info::<SocketAddr>()`),
    /// or a `SocketAddr` the server put in the request extensions.
    Socket,
    /// A header that a trusted reverse proxy sets, such as `x-real-ip` or
    /// `x-forwarded-for` (the last address of a list, the one the proxy
    /// appended). Only use a header your proxy always overwrites.
    TrustedHeader(HeaderName),
    /// A function of your own.
    Custom(FindClient),
}

impl fmt::Debug for ClientAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Socket => f.write_str("Socket"),
            Self::TrustedHeader(name) => f.debug_tuple("TrustedHeader").field(name).finish(),
            Self::Custom(_) => f.write_str("Custom(..)"),
        }
    }
}

impl ClientAddress {
    pub(crate) fn find(&self, extensions: &Extensions, headers: &HeaderMap) -> Option<IpAddr> {
        match self {
            Self::Socket => {
                #[cfg(feature = "axum")]
                if let Some(info) = extensions.get::<axum::extract::ConnectInfo<SocketAddr>>() {
                    return Some(info.0.ip());
                }
                extensions.get::<SocketAddr>().map(SocketAddr::ip)
            }
            Self::TrustedHeader(name) => {
                let value = headers.get_all(name).iter().next_back()?.to_str().ok()?;
                let last = value.rsplit(',').next()?.trim();
                last.parse::<IpAddr>()
                    .ok()
                    .or_else(|| last.parse::<SocketAddr>().ok().map(|a| a.ip()))
            }
            Self::Custom(find) => find(extensions, headers),
        }
    }
}

/// The failed-attempt limit: at most `max_failures` failed authentications
/// per client address within `window`.
///
/// ```
/// use std::time::Duration;
/// use tower_api_keys::limit::{ClientAddress, FailedAttemptLimit};
/// use tower_api_keys::{ApiKeys, MemoryStore};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let keys = ApiKeys::builder(MemoryStore::new())
///     .failed_attempt_limit(
///         FailedAttemptLimit::new(20, Duration::from_secs(60))
///             .client_address(ClientAddress::TrustedHeader("x-real-ip".parse().unwrap())),
///     )
///     .build()
///     .unwrap();
/// # drop(keys);
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct FailedAttemptLimit {
    pub(crate) max_failures: u32,
    pub(crate) window: Duration,
    pub(crate) client: ClientAddress,
    pub(crate) capacity: u64,
}

impl FailedAttemptLimit {
    /// At most `max_failures` failures per address per `window`, counted by
    /// socket address.
    pub fn new(max_failures: u32, window: Duration) -> Self {
        Self {
            max_failures: max_failures.max(1),
            window,
            client: ClientAddress::Socket,
            capacity: 100_000,
        }
    }

    /// How to tell clients apart (default: the socket's peer address).
    #[must_use]
    pub fn client_address(mut self, client: ClientAddress) -> Self {
        self.client = client;
        self
    }

    /// Most client addresses tracked at once (default 100,000); memory stays
    /// bounded under a flood of addresses.
    #[must_use]
    pub fn capacity(mut self, addresses: u64) -> Self {
        self.capacity = addresses;
        self
    }
}
