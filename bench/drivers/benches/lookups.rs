//! What the layer spares the database: store calls counted with
//! `CountingStore` (not timed), printed as a table. `tests/lookups.rs`
//! asserts the same targets.
//!
//! Run with: `cargo bench -p bench-drivers --bench lookups`

use std::time::Duration;

use bench_drivers::lookups::{
    self, FLOOD_CONCURRENCY, Run, concurrent_first_requests, distinct_unknown_keys_flood,
    periods_begun,
};

const CMD: &str = "`cargo bench -p bench-drivers --bench lookups`";

fn verdict(ok: bool) -> &'static str {
    if ok { "PASS" } else { "MISS" }
}

fn kb(value: Option<u64>) -> String {
    value.map_or_else(
        || "n/a".to_owned(),
        |kb| format!("{:.1} MiB", kb as f64 / 1024.0),
    )
}

/// Store calls other than lookups (change-log reads, last-used batches).
fn other_calls(run: &Run) -> u64 {
    run.calls.total() - run.calls.find_by_hash
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    // `cargo bench` passes `--bench`; a filter would mean nothing here.
    let mut rows = Vec::new();
    println!("store calls counted with CountingStore over MemoryStore; nothing here is timed");
    println!();

    // The flood first, so that its "before" is the memory of a fresh process.
    let flood = distinct_unknown_keys_flood(2, 100_000, 10_000, None).await;
    let first = flood.runs[0];
    println!(
        "100,000 distinct well-formed unknown keys (in process), twice: {} and {} lookups; cache entries after (known, unknown) = {:?}, capacities {:?}",
        first.lookups(),
        flood.runs[1].lookups(),
        flood.entries,
        flood.capacity
    );
    println!(
        "  resident memory: before {}, after 100,000 keys {}, after 200,000 keys {}",
        kb(flood.rss_kb[0]),
        kb(flood.rss_kb[1]),
        kb(flood.rss_kb[2])
    );
    println!(
        "  the valid key afterwards: {} lookups, {} refused in 100 requests",
        flood.valid_lookups_after, flood.valid_refused_after
    );
    rows.push(format!(
        "| 100,000 distinct well-formed unknown keys (in process): store lookups | {} | 100,000 requests | {:.2} lookups/request | reported (each new key is one lookup) | — | {CMD} |",
        first.lookups(),
        first.lookups() as f64 / 100_000.0
    ));
    let bounded = flood.entries.1 <= flood.capacity.1 && flood.entries.0 <= flood.capacity.0;
    rows.push(format!(
        "| same flood: unknown-key cache entries after 200,000 distinct keys | {} | capacity {} | {:.2} | ≤ capacity | {} | {CMD} |",
        flood.entries.1,
        flood.capacity.1,
        flood.entries.1 as f64 / flood.capacity.1 as f64,
        verdict(bounded)
    ));
    let growth = match (flood.rss_kb[1], flood.rss_kb[2]) {
        (Some(a), Some(b)) => format!("{:+.1} MiB", (b as f64 - a as f64) / 1024.0),
        _ => "n/a".to_owned(),
    };
    rows.push(format!(
        "| same flood: resident memory before / after 100,000 / after 200,000 keys | {} / {} / {} | after 100,000 | second 100,000: {growth} | flat once the caches are full | — | {CMD} |",
        kb(flood.rss_kb[0]),
        kb(flood.rss_kb[1]),
        kb(flood.rss_kb[2])
    ));
    rows.push(format!(
        "| same flood: lookups for a valid key warmed before it (100 requests after) | {} | 100 requests | {:.2} | 0 (not evicted) | {} | {CMD} |",
        flood.valid_lookups_after,
        flood.valid_lookups_after as f64 / 100.0,
        verdict(flood.valid_lookups_after == 0 && flood.valid_refused_after == 0)
    ));

    let throttled = distinct_unknown_keys_flood(1, 100_000, 10_000, Some(20)).await;
    let run = throttled.runs[0];
    println!(
        "100,000 distinct unknown keys from one address with failed_attempt_limit(20 per hour): {} lookups, {} x 401, {} x 429",
        run.lookups(),
        run.unauthorized,
        run.throttled
    );
    rows.push(format!(
        "| same flood from one client with `failed_attempt_limit(20, 1 h)`, {FLOOD_CONCURRENCY} in flight: store lookups | {} | 100,000 requests | {:.5} lookups/request | ≤ 20 | {} | {CMD} |",
        run.lookups(),
        run.lookups() as f64 / 100_000.0,
        verdict(run.lookups() <= 20)
    ));

    let run = lookups::many_keys(100, 10_000, 32).await;
    println!(
        "10,000 requests over 100 valid keys (HTTP, 32 at a time): {} x 200, {} lookups, {} other store calls, {:.1} s",
        run.ok,
        run.lookups(),
        other_calls(&run),
        run.elapsed.as_secs_f64()
    );
    rows.push(format!(
        "| 10,000 requests over 100 valid keys (HTTP): store lookups | {} | 10,000 requests | {:.4} lookups/request | ≤ 100 | {} | {CMD} |",
        run.lookups(),
        run.lookups() as f64 / 10_000.0,
        verdict(run.lookups() <= 100 && run.ok == 10_000)
    ));

    let (run, held) = concurrent_first_requests(1_000, "http").await;
    println!(
        "1,000 concurrent first requests, one key (HTTP; the lookup held until {held} had arrived): {} x 200, {} lookups",
        run.ok,
        run.lookups()
    );
    rows.push(format!(
        "| 1,000 concurrent first requests, one key (HTTP, {held} in flight on one lookup): store lookups | {} | 1,000 requests | {:.4} lookups/request | 1 | {} | {CMD} |",
        run.lookups(),
        run.lookups() as f64 / 1_000.0,
        verdict(run.lookups() == 1 && run.ok == 1_000)
    ));

    let ttl = Duration::from_secs(1);
    let run = lookups::one_unknown_key(100_000, ttl, Some(Duration::from_millis(3_500))).await;
    let bound = periods_begun(run.elapsed, ttl);
    println!(
        "100,000 requests, one unknown key (in process), negative TTL {} s, spread over {:.2} s: {} x 401, {} lookups (bound: one per TTL period begun = {bound})",
        ttl.as_secs(),
        run.elapsed.as_secs_f64(),
        run.unauthorized,
        run.lookups()
    );
    rows.push(format!(
        "| 100,000 requests, one unknown key, over {:.1} s with a 1 s negative TTL (in process): store lookups | {} | {:.1} TTL periods | {:.2} lookups/period | ≤ 1 per period begun ({bound}) | {} | {CMD} |",
        run.elapsed.as_secs_f64(),
        run.lookups(),
        run.elapsed.as_secs_f64() / ttl.as_secs_f64(),
        run.lookups() as f64 / (run.elapsed.as_secs_f64() / ttl.as_secs_f64()).ceil(),
        verdict(run.lookups() <= bound && run.unauthorized == 100_000)
    ));

    let interval = Duration::from_millis(500);
    for (requests, label) in [(3_000, "1,000 req/s"), (300_000, "up to 100,000 req/s")] {
        let spread = Some(Duration::from_secs(3));
        let batches = lookups::last_used_batches(100, requests, spread, interval, false).await;
        let rate = batches.run.requests as f64 / batches.run.elapsed.as_secs_f64();
        println!(
            "last used, 100 keys, {label} ({rate:.0} req/s for {:.2} s), interval {} ms: {} batch writes while serving (bound {}), {} at shutdown, {} key times written",
            batches.run.elapsed.as_secs_f64(),
            interval.as_millis(),
            batches.during,
            batches.bound(),
            batches.at_shutdown,
            batches.keys_written
        );
        rows.push(format!(
            "| last-used writes at {rate:.0} req/s over {:.1} s, 500 ms interval (in process) | {} batches (+{} at shutdown) | {} requests | {:.5} writes/request | ≤ 1 per interval begun ({}) | {} | {CMD} |",
            batches.run.elapsed.as_secs_f64(),
            batches.during,
            batches.at_shutdown,
            batches.run.requests,
            batches.during as f64 / batches.run.requests as f64,
            batches.bound(),
            verdict(batches.during <= batches.bound() && batches.at_shutdown <= 1)
        ));
    }

    println!();
    println!("BENCHMARKS.md rows:");
    for row in rows {
        println!("{row}");
    }
}
