//! Per-key rate limits (opt-in), counted in this process's memory.
//!
//! Each key gets a request allowance per window ([`RateLimit`]), from its
//! record or a default. The limiter is GCRA (the "generic cell rate algorithm"): one
//! atomic timestamp per key, smooth refill, and a burst of up to the whole
//! allowance. The count is per instance: with N instances behind a load
//! balancer a key may make up to N times its allowance.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use crate::record::{KeyId, RateLimit};

/// One key's limiter.
#[derive(Debug)]
pub(crate) struct Limiter {
    limit: RateLimit,
    /// GCRA's "theoretical arrival time", in microseconds since the epoch.
    tat_micros: AtomicI64,
}

impl Limiter {
    fn new(limit: RateLimit) -> Self {
        Self {
            limit,
            tat_micros: AtomicI64::new(i64::MIN),
        }
    }

    pub(crate) fn limit(&self) -> RateLimit {
        self.limit
    }

    /// Takes one request from the allowance at `now_micros`, or says how
    /// long until one is available.
    pub(crate) fn acquire(&self, now_micros: i64) -> Result<(), Duration> {
        let interval = self.limit.interval_micros();
        let window = self.limit.window_micros();
        let mut tat = self.tat_micros.load(Ordering::Relaxed);
        loop {
            let next = tat.max(now_micros).saturating_add(interval);
            let allowed_from = next.saturating_sub(window);
            if allowed_from > now_micros {
                let wait = u64::try_from(allowed_from - now_micros).unwrap_or(0);
                return Err(Duration::from_micros(wait));
            }
            match self.tat_micros.compare_exchange_weak(
                tat,
                next,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Ok(()),
                Err(current) => tat = current,
            }
        }
    }
}

/// The limiters of all keys, so that a key's count survives its cache entry
/// being reloaded.
pub(crate) struct Limiters {
    default: Option<RateLimit>,
    by_key: moka::sync::Cache<KeyId, Arc<Limiter>>,
}

impl std::fmt::Debug for Limiters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limiters")
            .field("default", &self.default)
            .finish_non_exhaustive()
    }
}

impl Limiters {
    pub(crate) fn new(default: Option<RateLimit>, capacity: u64) -> Self {
        Self {
            default,
            by_key: moka::sync::Cache::builder()
                .max_capacity(capacity)
                // A limiter idle for an hour holds a full allowance anyway
                // for every window up to an hour.
                .time_to_idle(Duration::from_secs(3600))
                .build(),
        }
    }

    /// The limiter for a key whose record says `own` (or the default).
    /// Called when a key is loaded into the cache, never on a cache hit.
    pub(crate) fn for_key(&self, id: KeyId, own: Option<RateLimit>) -> Option<Arc<Limiter>> {
        let limit = own.or(self.default)?;
        let limiter = self.by_key.get_with(id, || Arc::new(Limiter::new(limit)));
        if limiter.limit == limit {
            return Some(limiter);
        }
        // The key's allowance changed: start afresh with the new one.
        let limiter = Arc::new(Limiter::new(limit));
        self.by_key.insert(id, Arc::clone(&limiter));
        Some(limiter)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: i64 = 1_000_000;

    #[test]
    fn a_full_allowance_then_one_request_per_interval() {
        let limiter = Limiter::new(RateLimit::new(10, Duration::from_secs(10)));
        let start = 1_000 * SECOND;
        for _ in 0..10 {
            assert!(limiter.acquire(start).is_ok());
        }
        let wait = limiter.acquire(start).unwrap_err();
        assert_eq!(wait, Duration::from_secs(1));
        assert!(limiter.acquire(start + SECOND / 2).is_err());
        assert!(limiter.acquire(start + SECOND).is_ok());
        assert!(limiter.acquire(start + SECOND).is_err());
        // After a quiet window the whole allowance is back.
        for _ in 0..10 {
            assert!(limiter.acquire(start + 30 * SECOND).is_ok());
        }
        assert!(limiter.acquire(start + 30 * SECOND).is_err());
    }

    #[test]
    fn a_key_keeps_its_limiter_until_its_allowance_changes() {
        let limiters = Limiters::new(Some(RateLimit::per_minute(5)), 100);
        let id = KeyId::new();
        let a = limiters.for_key(id, None).unwrap();
        let b = limiters.for_key(id, None).unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        let c = limiters
            .for_key(id, Some(RateLimit::per_minute(50)))
            .unwrap();
        assert!(!Arc::ptr_eq(&a, &c));
        assert_eq!(c.limit(), RateLimit::per_minute(50));
        assert!(Limiters::new(None, 10).for_key(id, None).is_none());
    }
}
