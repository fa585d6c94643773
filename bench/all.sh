#!/usr/bin/env bash
# Runs every benchmark of BENCHMARKS.md once and prints the table rows to
# paste into it, with the machine and the load average. Each step bounds its
# own run time; the whole takes about ten minutes on 2 cores once built.
#
# Run with: bash bench/all.sh            (needs PostgreSQL on 127.0.0.1:5432 for the last step;
#                                         SKIP_PG=1 leaves it out)
set -euo pipefail
cd "$(dirname "$0")/.."

TARGET_DIR="${CARGO_TARGET_DIR:-target}"
export CARGO_TARGET_DIR="$TARGET_DIR"
logs="$(mktemp -d)"
trap 'rm -rf "$logs"' EXIT
started=$(date +%s)

step() {
    local name=$1
    shift
    local t0
    t0=$(date +%s)
    echo "== $name: $* (load average $(cut -d' ' -f1-3 /proc/loadavg))"
    "$@" 2>&1 | tee "$logs/$name.log"
    echo "== $name took $(( $(date +%s) - t0 )) s"
    echo
}

load_before="$(cut -d' ' -f1-3 /proc/loadavg)"
step layer cargo bench -p bench-drivers --bench layer
step report python3 bench/report.py
step instructions bash bench/instructions.sh
step load bash bench/load.sh
step wire bash bench/wire_instructions.sh
step scale bash bench/scale.sh
step lookups cargo bench -p bench-drivers --bench lookups
if [ "${SKIP_PG:-0}" != 1 ]; then
    step pg bash bench/pg_compare.sh
fi
load_after="$(cut -d' ' -f1-3 /proc/loadavg)"

echo "== BENCHMARKS.md"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo)"
echo "rustc: $(rustc --version)"
echo "date: $(date -u '+%Y-%m-%d %H:%M UTC'); load average before $load_before, after $load_after"
echo
echo "| measurement | figure | baseline | ratio | target | result | command |"
echo "|---|---|---|---|---|---|---|"
for name in report instructions load lookups pg; do
    [ -f "$logs/$name.log" ] || continue
    sed -n '/^BENCHMARKS.md rows:/,$p' "$logs/$name.log" | grep '^|' || true
done
echo
echo "all took $(( $(date +%s) - started )) s"
