//! The server's resident memory, sampled from /proc during the run, and
//! whether it stayed flat after warm-up; CPU time and load average too.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Memory samples: (seconds since the start of the run, VmRSS in KiB).
pub(crate) type Samples = Arc<Mutex<Vec<(f64, u64)>>>;

/// The resident memory of `pid`, in KiB.
pub(crate) fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

/// CPU seconds (user + system) used so far by `pid` ("self" for this
/// process); /proc counts in USER_HZ, 100 per second on Linux.
pub(crate) fn cpu_secs(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / 100.0)
}

/// The 1, 5 and 15 minute load averages, or `?`.
pub(crate) fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split(' ').take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

pub(crate) fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// Samples the VmRSS of `pid` every `every` (at least a second) from the
/// start of the run to its `deadline` or `stop`, and at most
/// `duration_secs / every + 2` times.
pub(crate) fn spawn_sampler(
    pid: u32,
    samples: Samples,
    epoch: Instant,
    deadline: Instant,
    stop: CancellationToken,
    every: Duration,
    duration_secs: u64,
) -> JoinHandle<()> {
    let every = every.max(Duration::from_secs(1));
    let most = duration_secs / every.as_secs() + 2;
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        for _ in 0..most {
            tick.tick().await;
            if let Some(kib) = rss_kib(pid) {
                samples
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push((epoch.elapsed().as_secs_f64(), kib));
            }
            if Instant::now() >= deadline || stop.is_cancelled() {
                break;
            }
        }
    })
}

/// Growth after warm-up allowed for a "flat" verdict: 10% of the warmed-up
/// size or 8 MiB, whichever is larger.
pub(crate) fn growth_bound_kib(warm: u64) -> u64 {
    (warm / 10).max(8 * 1024)
}

/// What the samples say of memory after warm-up.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Verdict {
    /// The first sample at or after the end of warm-up (or the last one).
    pub(crate) warm: (f64, u64),
    /// The last sample.
    pub(crate) end: (f64, u64),
    /// The highest VmRSS from warm-up on, in KiB.
    pub(crate) max: u64,
    /// [`growth_bound_kib`] of the warmed-up size.
    pub(crate) bound: u64,
    /// `max` less the warmed-up size, in KiB.
    pub(crate) growth: u64,
    /// Least-squares slope from warm-up on, in MiB per minute.
    pub(crate) slope: f64,
}

impl Verdict {
    /// Warm-up ends `warmup_percent` into a run of `elapsed_secs`.
    pub(crate) fn of(samples: &[(f64, u64)], elapsed_secs: f64, warmup_percent: u32) -> Self {
        let warm_at = elapsed_secs * f64::from(warmup_percent) / 100.0;
        let warm = samples
            .iter()
            .find(|(t, _)| *t >= warm_at)
            .or(samples.last())
            .copied()
            .unwrap_or_default();
        let after: Vec<(f64, u64)> = samples
            .iter()
            .copied()
            .filter(|(t, _)| *t >= warm.0)
            .collect();
        let end = after.last().copied().unwrap_or(warm);
        let max = after.iter().map(|(_, k)| *k).max().unwrap_or(warm.1);
        Self {
            warm,
            end,
            max,
            bound: growth_bound_kib(warm.1),
            growth: max.saturating_sub(warm.1),
            slope: trend_mib_per_min(&after),
        }
    }

    /// Whether memory grew no more than the bound after warm-up.
    pub(crate) fn flat(&self) -> bool {
        self.growth <= self.bound
    }
}

/// Least-squares slope of the samples, in MiB per minute.
fn trend_mib_per_min(samples: &[(f64, u64)]) -> f64 {
    let n = samples.len() as f64;
    if samples.len() < 2 {
        return 0.0;
    }
    let mean_t = samples.iter().map(|(t, _)| t).sum::<f64>() / n;
    let mean_m = samples.iter().map(|(_, k)| mib(*k)).sum::<f64>() / n;
    let (mut num, mut den) = (0.0, 0.0);
    for (t, k) in samples {
        num += (t - mean_t) * (mib(*k) - mean_m);
        den += (t - mean_t) * (t - mean_t);
    }
    if den == 0.0 { 0.0 } else { num / den * 60.0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1024;

    #[test]
    fn the_bound_is_ten_percent_or_eight_mib() {
        assert_eq!(growth_bound_kib(40 * MIB), 8 * MIB);
        assert_eq!(growth_bound_kib(200 * MIB), 20 * MIB);
    }

    #[test]
    fn memory_that_settles_after_warm_up_is_flat() {
        // 100 s run, warm-up 20 s: the climb to 48 MiB is before it.
        let samples: Vec<(f64, u64)> = (0u32..=50)
            .map(|i| {
                let t = f64::from(i) * 2.0;
                let mib = if i < 10 {
                    15 + 3 * u64::from(i)
                } else {
                    48 + u64::from((i - 10) % 3)
                };
                (t, mib * MIB)
            })
            .collect();
        let verdict = Verdict::of(&samples, 100.0, 20);
        assert_eq!(verdict.warm.0, 20.0);
        assert_eq!(verdict.max, 50 * MIB);
        assert_eq!(verdict.growth, 2 * MIB);
        assert!(verdict.flat());
        assert!(verdict.slope.abs() < 0.5, "{}", verdict.slope);
    }

    #[test]
    fn memory_that_keeps_climbing_is_growing() {
        // 1 MiB more every 2 s: 30 MiB a minute.
        let samples: Vec<(f64, u64)> = (0u32..=30)
            .map(|i| (f64::from(i) * 2.0, (20 + u64::from(i)) * MIB))
            .collect();
        let verdict = Verdict::of(&samples, 60.0, 20);
        assert_eq!(verdict.warm, (12.0, 26 * MIB));
        assert_eq!(verdict.end, (60.0, 50 * MIB));
        assert_eq!(verdict.growth, 24 * MIB);
        assert!(!verdict.flat());
        assert!((verdict.slope - 30.0).abs() < 1e-9, "{}", verdict.slope);
    }

    #[test]
    fn a_single_sample_is_its_own_warm_up_and_end() {
        let verdict = Verdict::of(&[(1.0, 30 * MIB)], 10.0, 20);
        assert_eq!(verdict.warm, (1.0, 30 * MIB));
        assert_eq!(verdict.end, verdict.warm);
        assert_eq!(verdict.growth, 0);
        assert_eq!(verdict.slope, 0.0);
    }
}
