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
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use http::{Extensions, HeaderMap};

use crate::key::KeyHash;
use crate::limit::FailedAttemptLimit;

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
    use http::HeaderName;

    use super::*;
    use crate::limit::ClientAddress;

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
