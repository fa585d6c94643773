//! Counters an application can read off [`ApiKeys`](crate::ApiKeys): of
//! the last-used recorder and of each refusal reason.

/// Counters of the last-used recorder, from [`ApiKeys::last_used_stats`](crate::ApiKeys::last_used_stats).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LastUsedStats {
    /// Batches written successfully.
    pub batches: u64,
    /// Key times written successfully (one per key per batch).
    pub keys_written: u64,
    /// Batch writes that failed (their times are retried).
    pub write_errors: u64,
    /// Key times given up: past the retry bound while the store failed, or
    /// still unwritten when the recorder stopped.
    pub dropped: u64,
    /// Key times waiting for the next batch.
    pub pending: u64,
}

/// What the app can read of one refusal reason, from
/// [`ApiKeys::refusal_stats`](crate::ApiKeys::refusal_stats).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RefusalStats {
    /// Requests refused for this reason since start.
    pub refused: u64,
    /// Log lines held back for this reason since start (each refusal has
    /// one line, or counts here).
    pub lines_suppressed: u64,
}
