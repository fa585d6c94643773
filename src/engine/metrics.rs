//! The engine's figures through the `metrics` facade, with the `metrics`
//! feature; without it, [`Metrics`] is empty and every call compiles to
//! nothing.
//!
//! Handles are registered once, when the engine starts, with the recorder
//! installed then: the request path increments a counter through its
//! handle, without a name or label lookup. No label carries a key, a hash
//! or an owner.

#[cfg(feature = "metrics")]
pub(crate) use enabled::Metrics;

#[cfg(not(feature = "metrics"))]
pub(crate) use disabled::Metrics;

#[cfg(feature = "metrics")]
mod enabled {
    use std::time::Duration;

    use metrics::{Counter, Gauge, Histogram, counter, gauge, histogram};

    use crate::rejection::RejectionReason;

    /// The registered handles.
    #[derive(Debug)]
    pub(crate) struct Metrics {
        admitted: Counter,
        rejected: [Counter; RejectionReason::ALL.len()],
        cache_hits: Counter,
        negative_cache_hits: Counter,
        cache_misses: Counter,
        coalesced: Counter,
        store_lookups: Counter,
        store_lookup_errors: Counter,
        store_lookup_seconds: Histogram,
        last_used_batches: Counter,
        last_used_keys_written: Counter,
        last_used_write_errors: Counter,
        last_used_dropped: Counter,
        change_feed_events: Counter,
        change_feed_reconnects: Counter,
        change_feed_lag: Gauge,
        throttle_refusals: Counter,
        rate_limit_refusals: Counter,
        access_tokens_admitted: Counter,
        access_tokens_refused: Counter,
    }

    impl Metrics {
        /// Registers every handle with the recorder installed now.
        pub(crate) fn register() -> Self {
            const DECISIONS: &str = "tower_api_keys_decisions_total";
            Self {
                admitted: counter!(DECISIONS, "outcome" => "admitted"),
                rejected: RejectionReason::ALL
                    .map(|reason| counter!(DECISIONS, "outcome" => reason.as_str())),
                cache_hits: counter!("tower_api_keys_cache_hits_total", "cache" => "known"),
                negative_cache_hits: counter!("tower_api_keys_cache_hits_total", "cache" => "unknown"),
                cache_misses: counter!("tower_api_keys_cache_misses_total"),
                coalesced: counter!("tower_api_keys_cache_coalesced_waits_total"),
                store_lookups: counter!("tower_api_keys_store_lookups_total"),
                store_lookup_errors: counter!("tower_api_keys_store_lookup_errors_total"),
                store_lookup_seconds: histogram!("tower_api_keys_store_lookup_seconds"),
                last_used_batches: counter!("tower_api_keys_last_used_batches_total"),
                last_used_keys_written: counter!("tower_api_keys_last_used_keys_written_total"),
                last_used_write_errors: counter!("tower_api_keys_last_used_write_errors_total"),
                last_used_dropped: counter!("tower_api_keys_last_used_dropped_total"),
                change_feed_events: counter!("tower_api_keys_change_feed_events_total"),
                change_feed_reconnects: counter!("tower_api_keys_change_feed_reconnects_total"),
                change_feed_lag: gauge!("tower_api_keys_change_feed_lag"),
                throttle_refusals: counter!("tower_api_keys_throttle_refusals_total"),
                rate_limit_refusals: counter!("tower_api_keys_rate_limit_refusals_total"),
                access_tokens_admitted: counter!("tower_api_keys_access_token_decisions_total", "outcome" => "admitted"),
                access_tokens_refused: counter!("tower_api_keys_access_token_decisions_total", "outcome" => "refused"),
            }
        }

        pub(crate) fn admitted(&self) {
            self.admitted.increment(1);
        }

        pub(crate) fn rejected(&self, reason: RejectionReason) {
            if let Some(counter) = self.rejected.get(reason.index()) {
                counter.increment(1);
            }
        }

        pub(crate) fn cache_hit(&self) {
            self.cache_hits.increment(1);
        }

        pub(crate) fn negative_cache_hit(&self) {
            self.negative_cache_hits.increment(1);
        }

        pub(crate) fn cache_miss(&self) {
            self.cache_misses.increment(1);
        }

        pub(crate) fn coalesced(&self) {
            self.coalesced.increment(1);
        }

        pub(crate) fn store_lookup(&self, took: Duration, failed: bool) {
            self.store_lookups.increment(1);
            self.store_lookup_seconds.record(took.as_secs_f64());
            if failed {
                self.store_lookup_errors.increment(1);
            }
        }

        pub(crate) fn last_used_batch(&self, keys: u64) {
            self.last_used_batches.increment(1);
            self.last_used_keys_written.increment(keys);
        }

        pub(crate) fn last_used_write_error(&self) {
            self.last_used_write_errors.increment(1);
        }

        pub(crate) fn last_used_dropped(&self, keys: u64) {
            self.last_used_dropped.increment(keys);
        }

        pub(crate) fn change_feed_events(&self, events: u64) {
            self.change_feed_events.increment(events);
        }

        pub(crate) fn change_feed_reconnect(&self) {
            self.change_feed_reconnects.increment(1);
        }

        pub(crate) fn change_feed_lag(&self, lag: i64) {
            #[allow(clippy::cast_precision_loss)]
            self.change_feed_lag.set(lag.max(0) as f64);
        }

        pub(crate) fn throttle_refusal(&self) {
            self.throttle_refusals.increment(1);
        }

        pub(crate) fn rate_limit_refusal(&self) {
            self.rate_limit_refusals.increment(1);
        }

        #[cfg_attr(not(feature = "oauth"), allow(dead_code))]
        pub(crate) fn access_token(&self, admitted: bool) {
            if admitted {
                self.access_tokens_admitted.increment(1);
            } else {
                self.access_tokens_refused.increment(1);
            }
        }
    }
}

#[cfg(not(feature = "metrics"))]
mod disabled {
    use std::time::Duration;

    use crate::rejection::RejectionReason;

    /// Nothing: the `metrics` feature is off.
    #[derive(Debug)]
    pub(crate) struct Metrics;

    #[allow(clippy::unused_self)]
    impl Metrics {
        pub(crate) fn register() -> Self {
            Self
        }
        #[inline(always)]
        pub(crate) fn admitted(&self) {}
        #[inline(always)]
        pub(crate) fn rejected(&self, _: RejectionReason) {}
        #[inline(always)]
        pub(crate) fn cache_hit(&self) {}
        #[inline(always)]
        pub(crate) fn negative_cache_hit(&self) {}
        #[inline(always)]
        pub(crate) fn cache_miss(&self) {}
        #[inline(always)]
        pub(crate) fn coalesced(&self) {}
        #[inline(always)]
        pub(crate) fn store_lookup(&self, _: Duration, _: bool) {}
        #[inline(always)]
        pub(crate) fn last_used_batch(&self, _: u64) {}
        #[inline(always)]
        pub(crate) fn last_used_write_error(&self) {}
        #[inline(always)]
        pub(crate) fn last_used_dropped(&self, _: u64) {}
        #[inline(always)]
        pub(crate) fn change_feed_events(&self, _: u64) {}
        #[inline(always)]
        pub(crate) fn change_feed_reconnect(&self) {}
        #[inline(always)]
        pub(crate) fn change_feed_lag(&self, _: i64) {}
        #[inline(always)]
        pub(crate) fn throttle_refusal(&self) {}
        #[inline(always)]
        pub(crate) fn rate_limit_refusal(&self) {}
        #[inline(always)]
        #[cfg_attr(not(feature = "oauth"), allow(dead_code))]
        pub(crate) fn access_token(&self, _: bool) {}
    }
}
