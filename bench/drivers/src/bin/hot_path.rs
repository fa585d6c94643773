//! Drives one path of the layer N times in a loop, for counting instructions
//! with `valgrind --tool=callgrind` (see `bench/instructions.sh`).
//!
//! Run with: `cargo run --release -p bench-drivers --bin hot_path -- hit 100000`
//! (paths: `bare`, `hit`, `malformed`, `floor`; and `router_bare`,
//! `router_hit`: the quickstart's route in an axum `Router`, without and
//! with the layer). Built with `--features metrics`, a recorder is
//! installed first, so every figure of the layer is counted for real.

use std::hint::black_box;

use bench_drivers::{Subjects, call_now, request};

fn main() {
    let mut args = std::env::args().skip(1);
    let path = args.next().unwrap_or_else(|| "hit".to_owned());
    let iterations: u64 = args.next().and_then(|n| n.parse().ok()).unwrap_or(100_000);
    // Atomic counters behind the facade, as an exporter's registry keeps them.
    #[cfg(feature = "metrics")]
    metrics::set_global_recorder(metrics_util::debugging::DebuggingRecorder::new())
        .expect("no recorder is installed yet");
    let mut s = Subjects::new();
    for _ in 0..iterations {
        let ok = match path.as_str() {
            "bare" => call_now(&mut s.bare, request(&s.valid)) == 200,
            "hit" => call_now(&mut s.ours, request(&s.valid)) == 200,
            "malformed" => call_now(&mut s.ours, request(&s.malformed)) == 401,
            "floor" => s.floor(),
            "router_bare" => call_now(&mut s.router_bare, request(&s.valid)) == 200,
            "router_hit" => call_now(&mut s.router_ours, request(&s.valid)) == 200,
            other => panic!(
                "unknown path {other}: use bare, hit, malformed, floor, router_bare or router_hit"
            ),
        };
        assert!(black_box(ok));
    }
}
