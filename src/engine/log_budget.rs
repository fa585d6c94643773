//! Bounded refusal logs: whatever an attacker sends, each refusal reason
//! writes a few lines at once and then at most one line per interval, with
//! the count of the lines it held back. Every refusal is counted either way.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::rejection::RejectionReason;
use crate::stats::RefusalStats;

/// Lines a reason may write in one interval.
const LINES_PER_INTERVAL: u32 = 5;
/// The interval.
const INTERVAL: Duration = Duration::from_secs(10);

#[derive(Debug, Default)]
struct Slot {
    /// Milliseconds since `start` at which the current interval began.
    interval_start: AtomicU64,
    lines_in_interval: AtomicU32,
    /// Held back since the last line that reported them.
    held_back: AtomicU64,
    refused: AtomicU64,
    lines_suppressed: AtomicU64,
}

/// The per-reason budgets of one engine.
#[derive(Debug)]
pub(crate) struct LogBudget {
    start: Instant,
    slots: [Slot; RejectionReason::ALL.len()],
}

impl Default for LogBudget {
    fn default() -> Self {
        Self {
            start: Instant::now(),
            slots: Default::default(),
        }
    }
}

impl LogBudget {
    /// Counts a refusal; `Some(held_back)` when a line may be written, with
    /// the number of lines held back since the last one it should report.
    pub(crate) fn admit(&self, reason: RejectionReason) -> Option<u64> {
        self.slots[reason.index()]
            .refused
            .fetch_add(1, Ordering::Relaxed);
        self.line(reason)
    }

    /// A further line about a refusal already counted, from the same
    /// budget: `Some(held_back)` when it may be written.
    pub(crate) fn line(&self, reason: RejectionReason) -> Option<u64> {
        let slot = &self.slots[reason.index()];
        let now = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        let began = slot.interval_start.load(Ordering::Relaxed);
        let interval = u64::try_from(INTERVAL.as_millis()).unwrap_or(u64::MAX);
        if now.saturating_sub(began) >= interval
            && slot
                .interval_start
                .compare_exchange(began, now, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        {
            slot.lines_in_interval.store(0, Ordering::Relaxed);
        }
        if slot.lines_in_interval.fetch_add(1, Ordering::Relaxed) < LINES_PER_INTERVAL {
            Some(slot.held_back.swap(0, Ordering::Relaxed))
        } else {
            slot.held_back.fetch_add(1, Ordering::Relaxed);
            slot.lines_suppressed.fetch_add(1, Ordering::Relaxed);
            None
        }
    }

    pub(crate) fn stats(&self, reason: RejectionReason) -> RefusalStats {
        let slot = &self.slots[reason.index()];
        RefusalStats {
            refused: slot.refused.load(Ordering::Relaxed),
            lines_suppressed: slot.lines_suppressed.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_writes_a_few_lines_and_counts_the_rest() {
        let budget = LogBudget::default();
        let reason = RejectionReason::CredentialInQuery;
        let written = (0..10_000)
            .filter(|_| budget.admit(reason).is_some())
            .count();
        assert_eq!(written, LINES_PER_INTERVAL as usize);
        let stats = budget.stats(reason);
        assert_eq!(stats.refused, 10_000);
        assert_eq!(
            stats.lines_suppressed,
            10_000 - u64::from(LINES_PER_INTERVAL)
        );
        // Other reasons keep their own budget.
        assert_eq!(budget.admit(RejectionReason::UnknownKey), Some(0));
    }
}
