//! The management routes' own allowance, per owner: creating, rolling and
//! listing keys is rarer than using them, so it gets a budget of its own,
//! apart from the keys' rate limits.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::limit::RateLimit;
use crate::record::OwnerId;

/// Most owners whose windows are kept; an owner idle for a window is
/// forgotten anyway.
const CAPACITY: u64 = 100_000;

/// A fixed window of calls per owner.
pub(super) struct OwnerAllowance {
    limit: RateLimit,
    windows: moka::sync::Cache<OwnerId, Arc<Mutex<Window>>>,
}

struct Window {
    started: Instant,
    used: u32,
}

impl OwnerAllowance {
    pub(super) fn new(limit: RateLimit) -> Self {
        Self {
            limit,
            windows: moka::sync::Cache::builder()
                .max_capacity(CAPACITY)
                .time_to_idle(limit.window)
                .build(),
        }
    }

    /// Takes one call of `owner`'s allowance; past it, how long until the
    /// window turns.
    pub(super) fn take(&self, owner: &OwnerId) -> Result<(), Duration> {
        let window = self.windows.get_with_by_ref(owner, || {
            Arc::new(Mutex::new(Window {
                started: Instant::now(),
                used: 0,
            }))
        });
        let mut window = window.lock().unwrap_or_else(PoisonError::into_inner);
        if window.started.elapsed() >= self.limit.window {
            window.started = Instant::now();
            window.used = 0;
        }
        if window.used >= self.limit.requests {
            return Err(self.limit.window.saturating_sub(window.started.elapsed()));
        }
        window.used += 1;
        Ok(())
    }
}
