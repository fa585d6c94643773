//! [`ManualClock`]: a clock for tests of expiry.

use std::fmt;
use std::sync::Mutex;

use chrono::{DateTime, Duration, Utc};

use crate::clock::Clock;

/// A clock that moves only when told to, for tests of expiry.
///
/// ```
/// use chrono::{Duration, Utc};
/// use tower_api_keys::clock::Clock;
/// use tower_api_keys::test_util::ManualClock;
///
/// let start = Utc::now();
/// let clock = ManualClock::new(start);
/// clock.advance(Duration::hours(1));
/// assert_eq!(clock.now(), start + Duration::hours(1));
/// ```
pub struct ManualClock {
    now: Mutex<DateTime<Utc>>,
}

impl ManualClock {
    /// A clock stopped at `start`.
    pub fn new(start: DateTime<Utc>) -> Self {
        Self {
            now: Mutex::new(start),
        }
    }

    /// Moves the clock forward (or back, with a negative duration).
    pub fn advance(&self, by: Duration) {
        let mut now = self.now.lock().unwrap_or_else(|e| e.into_inner());
        *now += by;
    }

    /// Sets the clock.
    pub fn set(&self, to: DateTime<Utc>) {
        *self.now.lock().unwrap_or_else(|e| e.into_inner()) = to;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.now.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl fmt::Debug for ManualClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ManualClock")
            .field("now", &self.now())
            .finish()
    }
}
