//! The wall clock that expiry is checked against.

use chrono::{DateTime, Utc};

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

impl<C: Clock + ?Sized> Clock for std::sync::Arc<C> {
    fn now(&self) -> DateTime<Utc> {
        (**self).now()
    }

    fn now_micros(&self) -> i64 {
        (**self).now_micros()
    }
}
