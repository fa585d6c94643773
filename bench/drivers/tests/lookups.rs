//! What the layer spares the database, counted store call by store call:
//! lookups per request pattern, cache size under a flood,
//! and last-used batches per interval. `cargo bench -p bench-drivers --bench lookups` prints
//! the same scenarios as a table.
//!
//! Runs that fit in a test go over real HTTP (axum on 127.0.0.1, reqwest).
//! The 100,000-request runs call the same app in process
//! (`tower::ServiceExt::oneshot`, with the peer address set as axum sets
//! it): the count is what matters, and 100,000 HTTP round trips would make
//! the suite slow. No assertion here is about speed; bounds that depend on
//! time are computed from the time the run actually took.

use std::time::Duration;

use bench_drivers::lookups::{
    self, concurrent_first_requests, distinct_unknown_keys_flood, periods_begun,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_requests_over_a_hundred_keys_cost_at_most_a_hundred_lookups() {
    let run = lookups::many_keys(100, 10_000, 32).await;
    assert_eq!(run.ok, 10_000, "{run:?}");
    assert!(run.lookups() <= 100, "{run:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_first_requests_with_one_key_cost_one_lookup() {
    let (run, held) = concurrent_first_requests(1_000, "http").await;
    assert_eq!(
        held, 1_000,
        "every request reached the app while the lookup was held"
    );
    assert_eq!(run.ok, 1_000, "{run:?}");
    assert_eq!(run.lookups(), 1, "{run:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_thousand_requests_with_one_unknown_key_cost_one_lookup_per_negative_ttl() {
    // In process; see the module docs.
    let ttl = Duration::from_secs(10);
    let run = lookups::one_unknown_key(100_000, ttl, None).await;
    assert_eq!(run.unauthorized, 100_000, "{run:?}");
    let bound = periods_begun(run.elapsed, ttl);
    assert!(
        (1..=bound).contains(&run.lookups()),
        "{} lookups in {:?} with a negative TTL of {ttl:?}: {run:?}",
        run.lookups(),
        run.elapsed
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn distinct_unknown_keys_cost_a_lookup_each_and_memory_stays_within_the_caches() {
    // In process; see the module docs. Ten times as many keys as the
    // negative cache holds (10,000, the default).
    let flood = distinct_unknown_keys_flood(1, 100_000, 10_000, None).await;
    let run = flood.runs[0];
    assert_eq!(run.unauthorized, 100_000, "{run:?}");
    // Every new key is a question only the store can answer.
    assert_eq!(run.lookups(), 100_000, "{run:?}");
    let (known, unknown) = flood.entries;
    assert!(
        unknown <= flood.capacity.1,
        "unknown-key cache holds {unknown}, capacity {}",
        flood.capacity.1
    );
    assert!(known <= 1, "only the valid key is known: {known}");
    // The flood did not push the valid key out of its cache.
    assert_eq!(flood.valid_lookups_after, 0, "{flood:?}");
    assert_eq!(flood.valid_refused_after, 0, "{flood:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_from_one_address_stops_reaching_the_store_at_the_failed_attempt_limit() {
    let flood = distinct_unknown_keys_flood(1, 100_000, 10_000, Some(20)).await;
    let run = flood.runs[0];
    // A lookup counts as a failure from the moment it starts, so requests in
    // flight cannot take the client past its limit.
    assert_eq!(run.lookups(), 20, "{run:?}");
    assert_eq!(run.unauthorized + run.throttled, 100_000, "{run:?}");
    assert!(run.unauthorized <= run.lookups(), "{run:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn last_used_writes_at_most_one_batch_per_interval_whatever_the_rate() {
    let interval = Duration::from_millis(200);
    // A slow trickle, then as fast as HTTP goes, over the same keys.
    for (requests, spread) in [(100, Some(Duration::from_secs(1))), (3_000, None)] {
        let batches = lookups::last_used_batches(10, requests, spread, interval, true).await;
        assert_eq!(batches.run.ok, requests as u64, "{batches:?}");
        assert!(
            batches.during <= batches.bound(),
            "{} batches in {:?} with a {interval:?} interval: {batches:?}",
            batches.during,
            batches.run.elapsed
        );
        assert!(batches.at_shutdown <= 1, "{batches:?}");
        assert!(
            batches.keys_written >= 10,
            "every key's time written: {batches:?}"
        );
    }
}
