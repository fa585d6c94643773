#!/usr/bin/env python3
"""Prints the in-process figures of `cargo bench -p bench-drivers --bench layer` side by side.

Reads criterion's saved estimates (target/criterion/layer/*/new/estimates.json,
under $CARGO_TARGET_DIR when set) and prints (a)-(e), the layer's added cost
(c)-(a) and (d)-(a), and both against their targets. Figures are medians
(robust to a busy machine), with criterion's 95% interval of the mean shown
for scale. (f) and (g) put the layer inside an axum Router, for scale.

Run with: cargo bench -p bench-drivers --bench layer && python3 bench/report.py
Options: --rows prints only the BENCHMARKS.md table rows.
"""

import json
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.environ.get("CARGO_TARGET_DIR") or os.path.join(ROOT, "target")
GROUP = os.path.join(TARGET, "criterion", "layer")

SUBJECTS = [
    ("a", "bare", "bare inner service"),
    ("b", "tower_http_bearer", "tower-http ValidateRequestHeaderLayer::bearer"),
    ("c", "api_key_hit", "our layer, valid key, cache hit"),
    ("d", "api_key_malformed", "our layer, malformed key refused"),
    ("e", "floor_sha256_moka", "floor: SHA-256 of the key + one moka read"),
    ("f", "axum_router_bare", "axum Router, quickstart route, no layer"),
    ("g", "axum_router_hit", "axum Router, same route behind our layer"),
]
COMMAND = "cargo bench -p bench-drivers --bench layer && python3 bench/report.py"


def load(name):
    path = os.path.join(GROUP, name, "new", "estimates.json")
    try:
        with open(path) as f:
            data = json.load(f)
    except FileNotFoundError:
        sys.exit(f"missing {path}: run `cargo bench -p bench-drivers --bench layer` first")
    ci = data["mean"]["confidence_interval"]
    return {
        "median": data["median"]["point_estimate"],
        "mean": data["mean"]["point_estimate"],
        "lo": ci["lower_bound"],
        "hi": ci["upper_bound"],
        "mtime": os.path.getmtime(path),
    }


def main():
    rows_only = "--rows" in sys.argv[1:]
    est = {letter: load(name) for letter, name, _ in SUBJECTS}
    a, c, d, e = (est[k]["median"] for k in "acde")
    hit_cost, refuse_cost = c - a, d - a
    hit_ratio, refuse_ratio = hit_cost / e, refuse_cost / e
    hit_ok, refuse_ok = hit_ratio <= 2.0, refuse_ratio <= 1.0

    def verdict(ok):
        return "PASS" if ok else "MISS"

    if not rows_only:
        oldest = min(v["mtime"] for v in est.values())
        newest = max(v["mtime"] for v in est.values())
        print(f"criterion estimates in {GROUP}")
        print(
            "measured between "
            + time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(oldest))
            + " and "
            + time.strftime("%H:%M:%S", time.localtime(newest))
        )
        print()
        print(f"{'':4}{'subject':48}{'median ns':>10}{'mean ns':>10}   95% CI of mean")
        for letter, name, label in SUBJECTS:
            v = est[letter]
            print(
                f"({letter}) {label:48}{v['median']:10.1f}{v['mean']:10.1f}"
                f"   [{v['lo']:.1f}, {v['hi']:.1f}]"
            )
        print()
        print(f"(c)-(a) layer cost on a hit     {hit_cost:8.1f} ns")
        print(f"(d)-(a) layer cost on a refusal {refuse_cost:8.1f} ns")
        print(f"(e)     floor                   {e:8.1f} ns")
        print()
        print(
            f"(c)-(a) = {hit_ratio:.2f} x (e)   target <= 2.00 x (e)   {verdict(hit_ok)}"
        )
        print(
            f"(d)-(a) = {refuse_ratio:.2f} x (e)   target <= 1.00 x (e)   {verdict(refuse_ok)}"
        )
        print(
            f"(b)-(a) = {(est['b']['median'] - a):.1f} ns (tower-http's static bearer check, for scale)"
        )
        print(
            f"(g)-(f) = {(est['g']['median'] - est['f']['median']):.1f} ns "
            f"= {(est['g']['median'] - est['f']['median']) / e:.2f} x (e) (the layer inside axum, for scale)"
        )
        print()
        print("BENCHMARKS.md rows:")
    cmd = f"`{COMMAND}`"
    print(
        f"| in-process, valid key, cache hit: (c)−(a) | {hit_cost:.0f} ns "
        f"(c = {c:.0f}, a = {a:.0f}) | floor (e) = {e:.0f} ns | {hit_ratio:.2f} × (e) "
        f"| ≤ 2 × (e) | {verdict(hit_ok)} | {cmd} |"
    )
    print(
        f"| in-process, malformed key refused: (d)−(a) | {refuse_cost:.0f} ns "
        f"(d = {d:.0f}, a = {a:.0f}) | floor (e) = {e:.0f} ns | {refuse_ratio:.2f} × (e) "
        f"| ≤ 1 × (e) | {verdict(refuse_ok)} | {cmd} |"
    )
    print(
        f"| in-process, tower-http static bearer: (b)−(a) | {est['b']['median'] - a:.0f} ns "
        f"| floor (e) = {e:.0f} ns | {(est['b']['median'] - a) / e:.2f} × (e) | (for scale) | — | {cmd} |"
    )
    f, g = est["f"]["median"], est["g"]["median"]
    print(
        f"| in-process, our layer inside an axum Router: (g)−(f) | {g - f:.0f} ns "
        f"(g = {g:.0f}, f = {f:.0f}) | floor (e) = {e:.0f} ns | {(g - f) / e:.2f} × (e) "
        f"| (for scale) | — | {cmd} |"
    )


if __name__ == "__main__":
    main()
