//! An OAuth access token beside a key, side by side in one run:
//!
//! - (a) `bare`: the inner service alone;
//! - (b) `api_key_hit`: a cached key, behind a layer that also accepts
//!   tokens (the key path does not pay for the feature);
//! - (c) `access_token_es256`: a valid ES256 access token, the issuer's key
//!   set cached (no fetch: the request never waits);
//! - (d) `access_token_refused`: a token signed by a stranger with a known
//!   `kid`, refused after the signature check;
//! - (e) `floor_es256_verify`: the token's ES256 signature checked with the
//!   layer's own library and key, nothing else: the least a token check
//!   takes;
//! - (f) `floor_sha256_moka`: the key path's floor, as in `layer`.
//!
//! Targets: (c) − (a) ≤ 1.5 × (e); (b) as in `layer`. `bench/report.py`
//! prints the ratios from the saved estimates.
//!
//! Run with: `cargo bench -p bench-drivers --features oauth --bench tokens`

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use tower::Layer;

use bench_drivers::tokens::TokenSubjects;
use bench_drivers::{Ok200, Subjects, call_now, request};

fn bench(c: &mut Criterion) {
    let s = Subjects::new();
    let t = TokenSubjects::new(&s);
    let mut ours = t.keys.layer().layer(Ok200);
    let mut bare = Ok200;
    assert_eq!(call_now(&mut ours, request(&t.key)), 200);
    assert_eq!(call_now(&mut ours, request(&t.token)), 200);
    assert_eq!(call_now(&mut ours, request(&t.forged)), 401);
    assert!(t.floor());

    let mut group = c.benchmark_group("tokens");
    group.bench_function("bare", |b| {
        b.iter(|| black_box(call_now(&mut bare, request(&t.token))))
    });
    group.bench_function("api_key_hit", |b| {
        b.iter(|| black_box(call_now(&mut ours, request(&t.key))))
    });
    group.bench_function("access_token_es256", |b| {
        b.iter(|| black_box(call_now(&mut ours, request(&t.token))))
    });
    group.bench_function("access_token_refused", |b| {
        b.iter(|| black_box(call_now(&mut ours, request(&t.forged))))
    });
    group.bench_function("floor_es256_verify", |b| b.iter(|| black_box(t.floor())));
    group.bench_function("floor_sha256_moka", |b| b.iter(|| black_box(s.floor())));
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
