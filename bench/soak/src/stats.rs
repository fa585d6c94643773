//! The tallies each client keeps (requests and statuses per class, routes,
//! answers off the contract, sessions) and its latencies, merged at the end.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;

use crate::keys::Class;
use crate::traffic::Route;

/// Latencies in µs, to 2 significant digits (each value within 1%).
#[derive(Debug, Clone)]
pub(crate) struct Latency(Histogram<u64>);

impl Latency {
    /// The highest latency told apart; longer ones count as this. Every
    /// request is cut off long before (its timeout is 30 s).
    const MAX_MICROS: u64 = 10 * 60 * 1_000_000;
    const SIGNIFICANT_DIGITS: u8 = 2;

    pub(crate) fn new() -> Self {
        Self(
            Histogram::new_with_bounds(1, Self::MAX_MICROS, Self::SIGNIFICANT_DIGITS)
                .expect("valid histogram bounds"),
        )
    }

    pub(crate) fn record(&mut self, latency: Duration) {
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.0.saturating_record(micros);
    }

    pub(crate) fn merge(&mut self, other: &Self) {
        self.0.add(&other.0).expect("histograms of the same bounds");
    }

    /// The `q` quantile in milliseconds.
    pub(crate) fn quantile_ms(&self, q: f64) -> Option<f64> {
        if self.0.is_empty() {
            return None;
        }
        Some(self.0.value_at_quantile(q) as f64 / 1000.0)
    }

    /// The `q` quantile as the report gives it: milliseconds to two
    /// decimals, or `-` with no request.
    pub(crate) fn quantile_text(&self, q: f64) -> String {
        self.quantile_ms(q)
            .map_or_else(|| "-".into(), |v| format!("{v:.2}"))
    }
}

/// The requests of one class.
#[derive(Debug, Clone)]
pub(crate) struct ClassStats {
    pub(crate) requests: u64,
    pub(crate) statuses: BTreeMap<u16, u64>,
    pub(crate) transport_errors: u64,
    pub(crate) latency: Latency,
}

impl ClassStats {
    fn new() -> Self {
        Self {
            requests: 0,
            statuses: BTreeMap::new(),
            transport_errors: 0,
            latency: Latency::new(),
        }
    }
}

/// One client's tallies, merged at the end.
#[derive(Debug, Clone)]
pub(crate) struct Stats {
    /// In the order of [`Class::ALL`].
    pub(crate) classes: Vec<ClassStats>,
    /// In the order of [`Route::ALL`].
    pub(crate) routes: [u64; 3],
    /// (kind of request, status) pairs that differ from the contract.
    pub(crate) unexpected: BTreeMap<(&'static str, u16), u64>,
    pub(crate) sessions_opened: u64,
    pub(crate) sessions_abandoned: u64,
    /// Sessions whose DELETE was refused (their key was revoked or expired
    /// meanwhile): they stay open in the upstream until its idle timeout.
    pub(crate) sessions_unclosed: u64,
    /// MCP answers with a 2xx but no JSON-RPC result in the first event.
    pub(crate) mcp_without_result: u64,
    /// Project lists with a 2xx but not the expected body.
    pub(crate) projects_bad_body: u64,
}

impl Stats {
    pub(crate) fn new() -> Self {
        Self {
            classes: vec![ClassStats::new(); Class::ALL.len()],
            routes: [0; 3],
            unexpected: BTreeMap::new(),
            sessions_opened: 0,
            sessions_abandoned: 0,
            sessions_unclosed: 0,
            mcp_without_result: 0,
            projects_bad_body: 0,
        }
    }

    pub(crate) fn class(&mut self, class: Class) -> &mut ClassStats {
        &mut self.classes[class.index()]
    }

    pub(crate) fn route(&mut self, route: Route) -> &mut u64 {
        &mut self.routes[route as usize]
    }

    /// Requests of every class.
    pub(crate) fn requests(&self) -> u64 {
        self.classes.iter().map(|c| c.requests).sum()
    }

    pub(crate) fn merge(&mut self, other: &Self) {
        for (a, b) in self.classes.iter_mut().zip(&other.classes) {
            a.requests += b.requests;
            a.transport_errors += b.transport_errors;
            for (status, n) in &b.statuses {
                *a.statuses.entry(*status).or_default() += n;
            }
            a.latency.merge(&b.latency);
        }
        for (a, b) in self.routes.iter_mut().zip(other.routes) {
            *a += b;
        }
        for (k, n) in &other.unexpected {
            *self.unexpected.entry(*k).or_default() += n;
        }
        self.sessions_opened += other.sessions_opened;
        self.sessions_abandoned += other.sessions_abandoned;
        self.sessions_unclosed += other.sessions_unclosed;
        self.mcp_without_result += other.mcp_without_result;
        self.projects_bad_body += other.projects_bad_body;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_within_a_percent() {
        let mut latency = Latency::new();
        for micros in 1..=10_000 {
            latency.record(Duration::from_micros(micros));
        }
        let p50 = latency.quantile_ms(0.5).unwrap();
        let p99 = latency.quantile_ms(0.99).unwrap();
        assert!((p50 - 5.0).abs() <= 0.05, "p50 {p50}");
        assert!((p99 - 9.9).abs() <= 0.1, "p99 {p99}");
    }

    #[test]
    fn quantiles_print_as_milliseconds_or_a_dash() {
        let mut latency = Latency::new();
        assert_eq!(latency.quantile_text(0.5), "-");
        for _ in 0..10 {
            latency.record(Duration::from_micros(1500));
        }
        latency.record(Duration::from_micros(250));
        assert_eq!(latency.quantile_text(0.5), "1.50");
        assert_eq!(latency.quantile_text(0.01), "0.25");
        // Past the highest bound: counted, at the bound (ten minutes).
        latency.record(Duration::from_secs(3600));
        let max = latency.quantile_ms(1.0).unwrap();
        assert!((600_000.0..=606_000.0).contains(&max), "{max}");
    }

    #[test]
    fn merging_adds_every_tally() {
        let mut a = Stats::new();
        let mut b = Stats::new();
        for stats in [&mut a, &mut b] {
            let valid = stats.class(Class::Valid);
            valid.requests += 2;
            *valid.statuses.entry(200).or_default() += 2;
            valid.latency.record(Duration::from_micros(1500));
            valid.latency.record(Duration::from_micros(1500));
            *stats.route(Route::McpDelete) += 1;
            *stats.unexpected.entry(("Bearer", 429)).or_default() += 1;
            stats.sessions_opened += 1;
        }
        b.class(Class::Revoked).requests += 1;
        a.merge(&b);
        assert_eq!(a.requests(), 5);
        assert_eq!(a.class(Class::Valid).statuses[&200], 4);
        assert_eq!(a.class(Class::Valid).latency.quantile_text(0.5), "1.50");
        assert_eq!(a.routes, [0, 0, 2]);
        assert_eq!(a.unexpected[&("Bearer", 429)], 2);
        assert_eq!(a.sessions_opened, 2);
    }
}
