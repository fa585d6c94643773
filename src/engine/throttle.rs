//! The failed-attempt throttle: past a number of failed authentications from
//! one client address within a window, that client gets 429 with
//! `Retry-After`, without any store lookup. Off by default.
//!
//! A valid key is never refused because of other people's failures from
//! its address (all local clients share 127.0.0.1; many users share a NAT):
//!
//! - a cached key is let in before the throttle is consulted;
//! - a key found valid in the last hour (by a lookup from anywhere) is
//!   looked up again even from a throttled address: it vouches for itself,
//!   so a cache entry that expired after its TTL does not turn its users
//!   away. Bad keys are never vouched for, so a flood of them from one
//!   client still costs at most the limit in store lookups;
//! - a credential in a URL is refused (400) but is no failed attempt, so a
//!   web page cannot make a visitor's browser lock out every local client
//!   with a few `<img src="http://127.0.0.1:8080/?token=x">`.
//!
//! Counting per (client, key) instead would let a guesser try every key
//! once; a time-to-idle on the cache instead of its TTL would keep stale
//! entries alive for as long as they are used. The vouching set is neither.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use http::{Extensions, HeaderMap, HeaderName};

use crate::key::KeyHash;

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
    fn find(&self, extensions: &Extensions, headers: &HeaderMap) -> Option<IpAddr> {
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
/// use tower_api_keys::throttle::{ClientAddress, FailedAttemptLimit};
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
    max_failures: u32,
    window: Duration,
    client: ClientAddress,
    capacity: u64,
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

/// How long a key found valid vouches for itself after its last lookup.
const VOUCHED_FOR: Duration = Duration::from_secs(3600);

/// An address as counted: IPv4 addresses whole, IPv6 addresses by their /64
/// (one host usually holds a whole /64), IPv4-mapped IPv6 as IPv4.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct ClientKey(IpAddr);

impl ClientKey {
    fn new(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(_) => Self(ip),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Self(IpAddr::V4(v4)),
                None => {
                    let s = v6.segments();
                    Self(IpAddr::V6(Ipv6Addr::new(
                        s[0], s[1], s[2], s[3], 0, 0, 0, 0,
                    )))
                }
            },
        }
    }
}

#[derive(Debug)]
struct Failures {
    count: AtomicU32,
    since: Instant,
}

pub(crate) struct Throttle {
    limit: FailedAttemptLimit,
    failures: moka::sync::Cache<ClientKey, Arc<Failures>>,
    /// Keys a lookup found valid within the last hour.
    vouched: moka::sync::Cache<KeyHash, ()>,
}

impl fmt::Debug for Throttle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Throttle")
            .field("limit", &self.limit)
            .finish_non_exhaustive()
    }
}

impl Throttle {
    pub(crate) fn new(limit: FailedAttemptLimit) -> Self {
        Self {
            failures: moka::sync::Cache::builder()
                .max_capacity(limit.capacity)
                .time_to_live(limit.window)
                .build(),
            vouched: moka::sync::Cache::builder()
                .max_capacity(limit.capacity)
                .time_to_idle(VOUCHED_FOR)
                .build(),
            limit,
        }
    }

    /// Remembers that a lookup found `hash` to be a valid key.
    pub(crate) fn vouch(&self, hash: KeyHash) {
        self.vouched.insert(hash, ());
    }

    /// Whether `hash` was found valid recently, so that even a throttled
    /// client may have it looked up.
    pub(crate) fn vouches_for(&self, hash: &KeyHash) -> bool {
        self.vouched.contains_key(hash)
    }

    /// The client of a request, if it can be told.
    pub(crate) fn client(&self, extensions: &Extensions, headers: &HeaderMap) -> Option<ClientKey> {
        self.limit
            .client
            .find(extensions, headers)
            .map(ClientKey::new)
    }

    /// How long the client must wait, if it is over the limit.
    pub(crate) fn blocked(&self, client: ClientKey) -> Option<Duration> {
        let failures = self.failures.get(&client)?;
        (failures.count.load(Ordering::Relaxed) >= self.limit.max_failures)
            .then(|| self.limit.window.saturating_sub(failures.since.elapsed()))
    }

    /// Takes back a failure counted ahead of a lookup that then succeeded.
    pub(crate) fn forgive(&self, client: ClientKey) {
        if let Some(failures) = self.failures.get(&client) {
            let _ = failures
                .count
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
        }
    }

    pub(crate) fn record_failure(&self, client: ClientKey) {
        self.failures
            .get_with(client, || {
                Arc::new(Failures {
                    count: AtomicU32::new(0),
                    since: Instant::now(),
                })
            })
            .count
            .fetch_add(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_grouped_as_hosts_hold_them() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::2".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(ClientKey::new(a), ClientKey::new(b));
        assert_ne!(ClientKey::new(a), ClientKey::new(c));
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        assert_eq!(
            ClientKey::new(mapped),
            ClientKey::new("192.0.2.1".parse().unwrap())
        );
    }

    #[test]
    fn the_trusted_header_gives_the_last_address() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-forwarded-for",
            "203.0.113.9, 198.51.100.7".parse().unwrap(),
        );
        let client = ClientAddress::TrustedHeader(HeaderName::from_static("x-forwarded-for"));
        assert_eq!(
            client.find(&Extensions::new(), &headers),
            Some("198.51.100.7".parse().unwrap())
        );
        headers.insert("x-forwarded-for", "not an address".parse().unwrap());
        assert_eq!(client.find(&Extensions::new(), &headers), None);
    }

    #[test]
    fn past_the_limit_a_client_is_blocked_for_the_rest_of_the_window() {
        let throttle = Throttle::new(FailedAttemptLimit::new(3, Duration::from_secs(60)));
        let client = ClientKey::new("192.0.2.1".parse().unwrap());
        let other = ClientKey::new("192.0.2.2".parse().unwrap());
        for _ in 0..3 {
            assert_eq!(throttle.blocked(client), None);
            throttle.record_failure(client);
        }
        let wait = throttle.blocked(client).unwrap();
        assert!(wait > Duration::from_secs(55) && wait <= Duration::from_secs(60));
        assert_eq!(throttle.blocked(other), None);
    }
}
