//! The layer's cost per request, side by side in one run:
//!
//! - (a) `bare`: the inner service alone;
//! - (b) `tower_http_bearer`: behind tower-http's `ValidateRequestHeaderLayer::bearer`
//!   (one static token, no store, no hash);
//! - (c) `api_key_hit`: behind this crate's layer, a valid key in the cache;
//! - (d) `api_key_malformed`: behind this crate's layer, refusing a malformed key;
//! - (e) `floor_sha256_moka`: SHA-256 of the key plus one read of a moka cache
//!   configured like the layer's, nothing else;
//! - (f) `axum_router_bare` and (g) `axum_router_hit`: the quickstart's
//!   route (a small JSON body) in an axum `Router`, without and with the
//!   layer (`route_layer`), for the cost inside a real framework.
//!
//! Targets: (c) − (a) ≤ 2 × (e); (d) − (a) ≤ (e). `bench/report.py` prints
//! the ratios from the saved estimates.
//!
//! Run with: `cargo bench -p bench-drivers --bench layer`

// tower-http 0.7 deprecates its static bearer check as "too basic to be
// useful in real applications"; it is still the cheapest peer to compare with.
#![allow(deprecated)]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use tower::Layer;
use tower_http::auth::require_authorization::Bearer;
use tower_http::validate_request::ValidateRequestHeaderLayer;

use bench_drivers::{Body, Ok200, Subjects, call_now, request};

fn bench(c: &mut Criterion) {
    let mut s = Subjects::new();
    let mut tower_http = ValidateRequestHeaderLayer::<Bearer<Body>>::bearer(&s.secret).layer(Ok200);
    assert_eq!(call_now(&mut tower_http, request(&s.valid)), 200);

    let mut group = c.benchmark_group("layer");
    group.bench_function("bare", |b| {
        b.iter(|| black_box(call_now(&mut s.bare, request(&s.valid))))
    });
    group.bench_function("tower_http_bearer", |b| {
        b.iter(|| black_box(call_now(&mut tower_http, request(&s.valid))))
    });
    group.bench_function("api_key_hit", |b| {
        b.iter(|| black_box(call_now(&mut s.ours, request(&s.valid))))
    });
    group.bench_function("api_key_malformed", |b| {
        b.iter(|| black_box(call_now(&mut s.ours, request(&s.malformed))))
    });
    group.bench_function("floor_sha256_moka", |b| b.iter(|| black_box(s.floor())));
    group.bench_function("axum_router_bare", |b| {
        b.iter(|| black_box(call_now(&mut s.router_bare, request(&s.valid))))
    });
    group.bench_function("axum_router_hit", |b| {
        b.iter(|| black_box(call_now(&mut s.router_ours, request(&s.valid))))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
