#!/usr/bin/env bash
# Instructions per request on each in-process path, counted by callgrind.
#
# Runs the `hot_path` driver (bench/drivers/src/bin/hot_path.rs) under
# `valgrind --tool=callgrind` at two iteration counts per path; the difference of the totals divided by the
# difference of the counts is the cost of one request, with start-up
# (runtime, key creation, warm-up) cancelled out.
#
# Paths: bare (no layer), hit (a cached key), malformed (refused before
# any lookup), floor (SHA-256 plus one moka read, the least the work takes), and
# router_bare / router_hit: the quickstart's route in an axum Router without
# and with the layer.
#
# Run with: bash bench/instructions.sh            (N1=10000 N2=50000 to change counts)
#           FEATURES=metrics bash bench/instructions.sh   (the layer with its
#           metrics on and a recorder installed; off by default)
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh

N1="${N1:-10000}"
N2="${N2:-50000}"
TARGET_DIR="${CARGO_TARGET_DIR:-target}"
started=$(date +%s)

need_tools valgrind

FEATURES="${FEATURES:-}"
echo "features: ${FEATURES:-(none)}"
# BIN=path counts another build of hot_path (an earlier commit's, for a
# before/after pair).
if [ -z "${BIN:-}" ]; then
    cargo build --release -p bench-drivers --bin hot_path --quiet ${FEATURES:+--features "$FEATURES"}
fi
bin="${BIN:-$TARGET_DIR/release/hot_path}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# Total instructions (Ir) of one run of `hot_path PATH N`.
count() {
    local out="$work/$1.$2.out"
    timeout 600 valgrind --tool=callgrind --callgrind-out-file="$out" "$bin" "$1" "$2" 2>/dev/null
    awk '/^(summary|totals):/ { print $2; exit }' "$out"
}

declare -A per_request
printf '%-10s %14s %14s %12s\n' path "Ir($N1)" "Ir($N2)" "Ir/request"
for path in bare hit malformed floor router_bare router_hit; do
    i1=$(count "$path" "$N1")
    i2=$(count "$path" "$N2")
    per=$(( (i2 - i1) / (N2 - N1) ))
    per_request[$path]=$per
    printf '%-10s %14d %14d %12d\n' "$path" "$i1" "$i2" "$per"
done

hit_cost=$(( per_request[hit] - per_request[bare] ))
refuse_cost=$(( per_request[malformed] - per_request[bare] ))
floor=${per_request[floor]}
router_cost=$(( per_request[router_hit] - per_request[router_bare] ))
echo
echo "layer cost on a hit      (hit - bare):       $hit_cost instructions"
echo "layer cost on a refusal  (malformed - bare): $refuse_cost instructions"
echo "floor (SHA-256 + one moka read):             $floor instructions"
echo "layer cost inside axum (router_hit - router_bare): $router_cost instructions (for scale)"
awk -v h="$hit_cost" -v r="$refuse_cost" -v f="$floor" 'BEGIN {
    printf "hit cost     = %.2f x floor (target <= 2.00) %s\n", h / f, (h <= 2 * f ? "PASS" : "MISS")
    printf "refusal cost = %.2f x floor (target <= 1.00) %s\n", r / f, (r <= f ? "PASS" : "MISS")
}'
echo
echo "note: valgrind's virtual CPU does not report SHA-NI, so under callgrind"
echo "SHA-256 runs its portable code (about 3.5k instructions per key) instead of"
echo "the SHA extensions used natively. The counts are stable and comparable"
echo "between paths and runs, but they are not the native instruction mix."
echo
cmd="${FEATURES:+FEATURES=$FEATURES }bash bench/instructions.sh"
echo "BENCHMARKS.md rows:"
awk -v h="$hit_cost" -v r="$refuse_cost" -v f="$floor" -v hit="${per_request[hit]}" \
    -v bare="${per_request[bare]}" -v mal="${per_request[malformed]}" -v cmd="$cmd" 'BEGIN {
    printf "| instructions per authenticated request (hit − bare) | %d (hit %d, bare %d) | floor %d | %.2f × floor | ≤ 2 × floor | %s | `%s` |\n", h, hit, bare, f, h / f, (h <= 2 * f ? "PASS" : "MISS"), cmd
    printf "| instructions per refused malformed key (malformed − bare) | %d (malformed %d) | floor %d | %.2f × floor | ≤ 1 × floor | %s | `%s` |\n", r, mal, f, r / f, (r <= f ? "PASS" : "MISS"), cmd
}'
awk -v c="$router_cost" -v f="$floor" -v rh="${per_request[router_hit]}" -v rb="${per_request[router_bare]}" -v cmd="$cmd" 'BEGIN {
    printf "| instructions the layer adds inside an axum Router (router_hit − router_bare) | %d (%d vs %d) | floor %d | %.2f × floor | (for scale) | — | `%s` |\n", c, rh, rb, f, c / f, cmd
}'
echo "took $(( $(date +%s) - started )) s"
