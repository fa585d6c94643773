//! The summary on stdout, and the verdict: a pass needs no request wrongly
//! accepted, no 5xx, a server alive to the end, every client stopped in
//! time and no interruption.

use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};

use crate::args::Args;
use crate::keys::Class;
use crate::memory::{Verdict, mib};
use crate::server::LogTally;
use crate::stats::Stats;
use crate::traffic::{INCIDENTS_KEPT, Route, Shared};

/// Everything the summary gives, gathered at the end of the run.
#[derive(Debug)]
pub(crate) struct Summary<'a> {
    pub(crate) args: &'a Args,
    pub(crate) seed: u64,
    pub(crate) elapsed: Duration,
    pub(crate) started_at: DateTime<Utc>,
    pub(crate) load_before: String,
    pub(crate) load_after: String,
    pub(crate) server_cpu: String,
    pub(crate) own_cpu: String,
    /// Every client's tallies, merged.
    pub(crate) stats: Stats,
    /// The counters, the keys and the incidents of the run.
    pub(crate) shared: &'a Shared,
    pub(crate) operator_log: Vec<String>,
    pub(crate) rss_before: Option<u64>,
    pub(crate) samples: Vec<(f64, u64)>,
    pub(crate) logs: &'a LogTally,
    /// The output of `keys list` after the run, when it ran.
    pub(crate) listed: Option<String>,
    /// How the server ended, when the driver started it.
    pub(crate) shutdown: Option<String>,
    pub(crate) server_alive: bool,
    pub(crate) stuck: usize,
    pub(crate) interrupted: bool,
}

/// Prints the summary; whether the run passed.
pub(crate) fn print(s: &Summary<'_>) -> bool {
    let args = s.args;
    let secs = s.elapsed.as_secs_f64();
    let requests = s.stats.requests();
    let wrongly_accepted = s.shared.wrongly_accepted.load(Relaxed);
    let server_errors = s.shared.server_errors.load(Relaxed);
    let wrongly_refused = s.shared.wrongly_refused.load(Relaxed);
    let transport_errors = s.shared.transport_errors.load(Relaxed);
    println!();
    println!(
        "== soak of mcp_proxy: {secs:.0} s, concurrency {}, {}% of requests to /mcp, seed {}",
        args.concurrency, args.mcp_percent, s.seed
    );
    println!(
        "   started {}, load average {} at start, {} at end ({} cores)",
        s.started_at.to_rfc3339_opts(SecondsFormat::Secs, true),
        s.load_before,
        s.load_after,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!("   CPU: server {}, this driver {}", s.server_cpu, s.own_cpu);
    println!();
    println!(
        "requests            {requests:>10}   ({:.0}/s)",
        requests as f64 / secs
    );
    println!(
        "wrongly accepted    {wrongly_accepted:>10}   (2xx for an unknown, malformed, expired or revoked key; must be 0)"
    );
    println!("5xx                 {server_errors:>10}   (the store is up throughout; must be 0)");
    println!("wrongly refused     {wrongly_refused:>10}   (non-2xx, below 500, for a valid key)");
    println!("transport errors    {transport_errors:>10}");
    println!();
    for line in class_table(&s.stats) {
        println!("{line}");
    }
    println!();
    for (route, count) in Route::ALL.iter().zip(s.stats.routes) {
        println!("{:<30} {count:>10}", route.name());
    }
    println!(
        "MCP sessions opened {}, left open without a DELETE {} ({}%), DELETE refused {}; initialize 2xx without a result: {}; project lists with a wrong body: {}",
        s.stats.sessions_opened,
        s.stats.sessions_abandoned,
        args.abandon_percent,
        s.stats.sessions_unclosed,
        s.stats.mcp_without_result,
        s.stats.projects_bad_body
    );
    if !s.stats.unexpected.is_empty() {
        println!();
        println!("statuses other than the contract's (not failures unless 2xx or 5xx above):");
        for ((kind, status), count) in &s.stats.unexpected {
            println!("  {kind:<40} {status}  x{count}");
        }
    }

    println!();
    println!("revocations and expiries (last 2xx, by send time, relative to when it had to stop):");
    for key in s.shared.keys.revoked_or_expiring() {
        let last = key.last_accepted_sent.load(Relaxed);
        let (what, deadline) = match (key.revoke_returned.get(), key.expired_from) {
            (Some(returned), _) => ("revoke returned", *returned),
            (None, Some(expired)) => ("expiry", expired),
            (None, None) => continue,
        };
        let last = if last == i64::MIN {
            "never 2xx in the run".to_owned()
        } else {
            let delta = (last - deadline.timestamp_micros()) as f64 / 1000.0;
            format!("last 2xx sent {delta:+.1} ms from the {what}")
        };
        println!("  {:<24} {last}", key.name);
    }
    for line in &s.operator_log {
        println!("  {line}");
    }

    let memory = print_memory(s, requests);

    println!();
    println!(
        "server log: {} lines on stderr after start-up at RUST_LOG={}",
        s.logs.lines, args.server_log
    );
    for (message, count) in &s.logs.by_message {
        println!("  {count:>9}  {message}");
    }
    if let Some(listed) = &s.listed {
        let (keys, active, expired, revoked) = keys_listed(listed);
        println!(
            "keys list after the run: {keys} keys, {active} active, {expired} expired, {revoked} revoked"
        );
    }
    if let Some(shutdown) = &s.shutdown {
        println!("server {shutdown}");
    }

    let failures = failures(s, wrongly_accepted, server_errors);
    let incidents = s.shared.incidents.lock().unwrap_or_else(|e| e.into_inner());
    if !incidents.is_empty() {
        println!();
        println!("incidents (first {INCIDENTS_KEPT}):");
        for incident in incidents.iter() {
            println!("  {incident}");
        }
    }
    println!();
    if failures.is_empty() {
        println!(
            "PASS: 0 wrongly accepted, 0 5xx; memory {}",
            match memory {
                None => "not measured",
                Some(true) => "flat",
                Some(false) => "GROWING (see above)",
            }
        );
    } else {
        println!("FAIL: {}", failures.join(", "));
    }
    failures.is_empty()
}

/// The table of classes: requests, each status seen, transport errors and
/// p50/p99 latency.
fn class_table(stats: &Stats) -> Vec<String> {
    let mut columns: Vec<u16> = stats
        .classes
        .iter()
        .flat_map(|c| c.statuses.keys().copied())
        .collect();
    columns.sort_unstable();
    columns.dedup();
    let mut header = format!("{:<18} {:>9}", "class", "requests");
    for status in &columns {
        header.push_str(&format!(" {status:>8}"));
    }
    header.push_str(&format!(" {:>8} {:>8} {:>8}", "errors", "p50 ms", "p99 ms"));
    let mut lines = vec![header];
    for (class, tally) in Class::ALL.iter().zip(&stats.classes) {
        let mut row = format!("{:<18} {:>9}", class.name(), tally.requests);
        for status in &columns {
            row.push_str(&format!(
                " {:>8}",
                tally.statuses.get(status).copied().unwrap_or(0)
            ));
        }
        row.push_str(&format!(
            " {:>8} {:>8} {:>8}",
            tally.transport_errors,
            tally.latency.quantile_text(0.5),
            tally.latency.quantile_text(0.99)
        ));
        lines.push(row);
    }
    lines
}

/// The memory lines; whether memory stayed flat (`None`: not measured).
fn print_memory(s: &Summary<'_>, requests: u64) -> Option<bool> {
    let args = s.args;
    let samples = &s.samples;
    println!();
    if samples.is_empty() {
        println!("server memory: not measured (give --server-pid with --url)");
        return None;
    }
    let verdict = Verdict::of(samples, s.elapsed.as_secs_f64(), args.warmup_percent);
    let flat = verdict.flat();
    println!(
        "server memory (VmRSS every {} s, {} samples): before the run {}, end of warm-up (+{:.0} s) {:.1} MiB, end {:.1} MiB, max after warm-up {:.1} MiB",
        args.sample_secs,
        samples.len(),
        s.rss_before
            .map_or_else(|| "?".into(), |k| format!("{:.1} MiB", mib(k))),
        verdict.warm.0,
        mib(verdict.warm.1),
        mib(verdict.end.1),
        mib(verdict.max),
    );
    println!(
        "  growth after warm-up {:+.1} MiB, bound max(10%, 8 MiB) = {:.1} MiB: {}; trend after warm-up {:+.2} MiB/min",
        mib(verdict.growth),
        mib(verdict.bound),
        if flat { "flat" } else { "GROWING" },
        verdict.slope,
    );
    let per_request = (requests as f64 * (1.0 - f64::from(args.warmup_percent) / 100.0)).max(1.0);
    println!(
        "  (a leak of {:.0} bytes per request after warm-up would exceed the bound)",
        verdict.bound as f64 * 1024.0 / per_request
    );
    let series: Vec<String> = samples
        .iter()
        .step_by((samples.len() / 12).max(1))
        .map(|(t, k)| format!("{t:.0}s:{:.1}", mib(*k)))
        .collect();
    println!("  series (s:MiB) {}", series.join(" "));
    Some(flat)
}

/// Keys, active, expired and revoked in the output of `keys list` (a header
/// line, then a key a line with its state last).
fn keys_listed(listed: &str) -> (usize, usize, usize, usize) {
    let rows: Vec<&str> = listed.lines().skip(1).collect();
    let ending = |state: &str| {
        rows.iter()
            .filter(|r| r.trim_end().ends_with(state))
            .count()
    };
    let revoked = rows.iter().filter(|r| r.contains("  revoked")).count();
    (rows.len(), ending("active"), ending("expired"), revoked)
}

/// Why the run failed, if it did.
fn failures(s: &Summary<'_>, wrongly_accepted: u64, server_errors: u64) -> Vec<String> {
    let mut failures = Vec::new();
    if wrongly_accepted > 0 {
        failures.push(format!("{wrongly_accepted} requests wrongly accepted"));
    }
    if server_errors > 0 {
        failures.push(format!("{server_errors} responses 5xx"));
    }
    if !s.server_alive {
        failures.push("the server died during the run".to_owned());
    }
    if s.stuck > 0 {
        failures.push(format!("{} clients did not stop in time", s.stuck));
    }
    if s.interrupted {
        failures.push("interrupted".to_owned());
    }
    failures
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_class_table_has_a_column_per_status_seen() {
        let mut stats = Stats::new();
        let valid = stats.class(Class::Valid);
        valid.requests = 3;
        *valid.statuses.entry(200).or_default() = 3;
        for micros in [1500, 1500, 250] {
            valid.latency.record(Duration::from_micros(micros));
        }
        let malformed = stats.class(Class::Malformed);
        malformed.requests = 2;
        *malformed.statuses.entry(431).or_default() = 1;
        malformed.transport_errors = 1;
        malformed.latency.record(Duration::from_micros(250));
        malformed.latency.record(Duration::from_micros(250));

        let table = class_table(&stats);
        assert_eq!(table.len(), 1 + Class::ALL.len());
        assert_eq!(
            table[0],
            "class               requests      200      431   errors   p50 ms   p99 ms"
        );
        assert_eq!(
            table[1],
            "valid                      3        3        0        0     1.50     1.50"
        );
        assert_eq!(
            table[3],
            "malformed                  2        0        1        1     0.25     0.25"
        );
        assert_eq!(
            table[7],
            "at expiry (edge)           0        0        0        0        -        -"
        );
    }

    #[test]
    fn keys_list_is_counted_by_state() {
        let listed = "\
ID        NAME     OWNER  STATUS
bmc_K7x   a        -      active
bmc_Q2p   b        -      expired
bmc_Z9z   c        -      revoked 2026-01-01 (soak)
bmc_A1a   d        -      active
";
        assert_eq!(keys_listed(listed), (4, 2, 1, 1));
    }
}
