//! The wall clock that expiry is checked against.

use std::fmt;
use std::sync::Mutex;

use chrono::{DateTime, Duration, Utc};

/// A source of the current time. Expiry is checked against it on every
/// request, including cache hits.
pub trait Clock: Send + Sync + 'static {
    /// The current time.
    fn now(&self) -> DateTime<Utc>;

    /// The current time in microseconds since the Unix epoch; what the
    /// request path compares expiry against. Override it where it can be had
    /// more cheaply than through [`now`](Self::now).
    fn now_micros(&self) -> i64 {
        self.now().timestamp_micros()
    }
}

/// The system clock (the default).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }

    fn now_micros(&self) -> i64 {
        match std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
            Ok(since) => i64::try_from(since.as_micros()).unwrap_or(i64::MAX),
            // A clock set before 1970: let chrono do the arithmetic.
            Err(_) => Utc::now().timestamp_micros(),
        }
    }
}

/// A clock that moves only when told to, for tests of expiry.
///
/// ```
/// use chrono::{Duration, Utc};
/// use tower_api_keys::clock::{Clock, ManualClock};
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

impl<C: Clock + ?Sized> Clock for std::sync::Arc<C> {
    fn now(&self) -> DateTime<Utc> {
        (**self).now()
    }

    fn now_micros(&self) -> i64 {
        (**self).now_micros()
    }
}
