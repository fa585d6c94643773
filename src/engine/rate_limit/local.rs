//! The in-process limiter: GCRA (the "generic cell rate algorithm") on one
//! atomic timestamp per key or owner, smooth refill, and a burst of up to
//! the whole allowance. The count is per instance: with N instances behind
//! a load balancer a key may make up to N times its allowance.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use crate::limit::RateLimit;

/// One allowance counted in this process.
#[derive(Debug)]
pub(crate) struct Gcra {
    limit: RateLimit,
    /// GCRA's "theoretical arrival time", in microseconds since the epoch.
    tat_micros: AtomicI64,
}

impl Gcra {
    pub(super) fn new(limit: RateLimit) -> Self {
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

    /// Gives back one request taken by [`acquire`](Self::acquire), when a
    /// later limit refused the request.
    pub(crate) fn refund(&self) {
        self.tat_micros
            .fetch_sub(self.limit.interval_micros(), Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: i64 = 1_000_000;

    #[test]
    fn a_full_allowance_then_one_request_per_interval() {
        let limiter = Gcra::new(RateLimit::new(10, Duration::from_secs(10)));
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
    fn a_refund_gives_back_one_request() {
        let limiter = Gcra::new(RateLimit::new(2, Duration::from_secs(10)));
        let start = 1_000 * SECOND;
        assert!(limiter.acquire(start).is_ok());
        assert!(limiter.acquire(start).is_ok());
        assert!(limiter.acquire(start).is_err());
        limiter.refund();
        assert!(limiter.acquire(start).is_ok());
        assert!(limiter.acquire(start).is_err());
    }
}
