#!/usr/bin/env bash
# How the costs grow with the work (BENCHMARKS.md, "Scaling"): the hit cost
# with 10^2, 10^4 and 10^6 keys cached and the memory per cached key; a
# cache miss on SQLite and PostgreSQL with 10^3 and 10^6 keys stored; one
# last-used batch of 10^5 keys; the change follower's read with 10^6 rows in
# the change log, before and after pruning; the MCP proxy's start-up with
# 10^3 and 10^6 keys stored; and what an idle proxy costs PostgreSQL.
# Figures for bench/plot.py go to bench/figures/scale.txt.
#
# Run with: bash bench/scale.sh     (SKIP_PG=1 leaves PostgreSQL out;
#                                    IDLE_SECS=65 is the idle window;
#                                    PARTS="hits sql startup idle" picks parts)
set -euo pipefail
cd "$(dirname "$0")/.."

TARGET_DIR="${CARGO_TARGET_DIR:-target}"
PG_URL="${TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}"
IDLE_SECS="${IDLE_SECS:-65}"
PARTS="${PARTS:-hits sql startup idle}"
want() { [[ " $PARTS " == *" $1 "* ]]; }
started=$(date +%s)
work="$(mktemp -d)"
server=""
cleanup() {
    [ -n "$server" ] && kill "$server" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT INT TERM

cargo build --release --quiet -p bench-drivers --bin scale
cargo build --release --quiet -p mcp-proxy
scale="$TARGET_DIR/release/scale"
proxy="$TARGET_DIR/release/mcp-proxy"
mkdir -p bench/figures
figures=bench/figures/scale.txt
: >"$work/out"

run() { "$@" | tee -a "$work/out"; }

if want hits; then
    echo "== hit cost against keys cached"
    run taskset -c 0 "$scale" hits
fi
if want sql; then
    echo "== SQLite"
    run "$scale" sqlite "$work/scale.db"
fi
if want sql && [ "${SKIP_PG:-0}" != 1 ]; then
    echo "== PostgreSQL"
    run "$scale" postgres "$PG_URL"
fi

# Start-up: from launch to the first answer of /healthz, with the store
# already holding N keys (so no bootstrap key is made), best of 3.
startup_ms() {
    local db=$1 best=""
    for _ in 1 2 3; do
        local port=$((20000 + RANDOM % 20000)) t0 t1
        t0=$(date +%s%N)
        "$proxy" serve --db "sqlite:$db" --listen "127.0.0.1:$port" >"$work/proxy.out" 2>"$work/proxy.err" &
        server=$!
        until curl -fs -o /dev/null "http://127.0.0.1:$port/healthz"; do
            kill -0 "$server" 2>/dev/null || { cat "$work/proxy.err" >&2; exit 1; }
            sleep 0.005
        done
        t1=$(date +%s%N)
        kill "$server"
        wait "$server" 2>/dev/null || true
        server=""
        local ms=$(( (t1 - t0) / 1000000 ))
        if [ -z "$best" ] || [ "$ms" -lt "$best" ]; then best=$ms; fi
    done
    echo "$best"
}
if want startup; then
    echo "== start-up of the MCP proxy"
    "$scale" fill-sqlite "$work/small.db" 1000
    "$scale" fill-sqlite "$work/large.db" 1000000
    small_ms=$(startup_ms "$work/small.db")
    large_ms=$(startup_ms "$work/large.db")
    run echo "row: MCP proxy start-up to the first /healthz answer: $small_ms ms with 1000 keys stored, $large_ms ms with 1000000 (best of 3)"
fi

if want idle && [ "${SKIP_PG:-0}" != 1 ]; then
    # An idle proxy on PostgreSQL: transactions its database sees in a
    # window with no requests, counted by the server.
    echo "== an idle MCP proxy on PostgreSQL, ${IDLE_SECS} s"
    admin="${PG_URL%/*}/postgres"
    psql "$admin" -qc "DROP DATABASE IF EXISTS scale_idle" -qc "CREATE DATABASE scale_idle"
    db="${PG_URL%/*}/scale_idle"
    port=$((20000 + RANDOM % 20000))
    "$proxy" serve --db "$db" --listen "127.0.0.1:$port" >"$work/idle.out" 2>"$work/idle.err" &
    server=$!
    until curl -fs -o /dev/null "http://127.0.0.1:$port/healthz"; do sleep 0.1; done
    # Idle backends report their counts up to 10 s late: the start-up's
    # own transactions (migrations, the bootstrap key) settle first.
    sleep 15
    count() { psql "$admin" -Atc "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = 'scale_idle'"; }
    psql "$admin" -qc "SELECT pg_stat_clear_snapshot()" >/dev/null
    before=$(count)
    sleep "$IDLE_SECS"
    after=$(count)
    kill "$server"
    wait "$server" 2>/dev/null || true
    server=""
    psql "$admin" -qc "DROP DATABASE scale_idle"
    run awk -v b="$before" -v a="$after" -v s="$IDLE_SECS" 'BEGIN {
        q = (a - b) / s
        printf "row: idle MCP proxy on PostgreSQL: %d transactions in %d s = %.3f per second; 1,000 such instances: %.0f per second\n", a - b, s, q, q * 1000
    }'
fi

# Figures of the parts that ran replace theirs; the others' stay.
if [ -s "$work/out" ] && grep -q '^figure:' "$work/out"; then
    grep '^figure:' "$work/out" | sed 's/^figure: //' >"$work/new"
    if [ -f "$figures" ]; then
        cut -d' ' -f1 "$work/new" | sort -u >"$work/names"
        grep -v -F -w -f "$work/names" "$figures" >>"$work/new" || true
    fi
    sort -k1,1 -k2,2n "$work/new" >"$figures"
fi
echo
echo "figures written to $figures"
echo "took $(( $(date +%s) - started )) s"
