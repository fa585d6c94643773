#!/usr/bin/env bash
# On PostgreSQL: the same API with a naive lookup on every request (an axum
# from_fn middleware running one SELECT) against this crate's layer over
# PostgresStore. wrk on loopback, alternating rounds; prints throughput and
# p99 per round, the median ratios, and the database queries per request,
# counted twice: by the app (every query it sent, from its /stats) and by
# the server (pg_stat_database.xact_commit of each mode's own database,
# start-up and background work included).
#
# Each mode gets a database of its own, created here and dropped on exit.
#
# Run with: bash bench/pg_compare.sh
# Knobs: PG=postgres://postgres@127.0.0.1:5432 ROUNDS=3 DURATION=10 WARMUP=3 CONNECTIONS=32
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh

PG="${PG:-postgres://postgres@127.0.0.1:5432}"
ROUNDS="${ROUNDS:-3}"
DURATION="${DURATION:-10}"
WARMUP="${WARMUP:-3}"
CONNECTIONS="${CONNECTIONS:-32}"
PORT_NAIVE="${PORT_NAIVE:-18090}"
PORT_LAYER="${PORT_LAYER:-18091}"
TARGET_DIR="${CARGO_TARGET_DIR:-target}"
DB_PREFIX="tower_api_keys_bench_$$"
started=$(date +%s)

case "$PG" in
    *://*@127.0.0.1:* | *://*@localhost:* | *://127.0.0.1:* | *://localhost:*) ;;
    *) echo "PG must point at a loopback server, not $PG" >&2; exit 1 ;;
esac
need_tools wrk
if ! psql "$PG/postgres" -Atqc 'select 1' >/dev/null 2>&1; then
    echo "PostgreSQL does not answer at $PG (see .ci/run for how CI starts it)" >&2
    exit 1
fi

cargo build --release -p bench-drivers --bin pg_compare --quiet
bin="$TARGET_DIR/release/pg_compare"

work="$(mktemp -d)"
pids=()
sql() { psql "$PG/postgres" -v ON_ERROR_STOP=1 -Atqc "$1"; }
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    for mode in naive layer; do
        sql "DROP DATABASE IF EXISTS ${DB_PREFIX}_$mode WITH (FORCE)" >/dev/null 2>&1 || true
    done
    rm -rf "$work"
}
trap cleanup EXIT INT TERM

xacts() { sql "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = '${DB_PREFIX}_$1'"; }

declare -A key port xacts_before
port[naive]=$PORT_NAIVE
port[layer]=$PORT_LAYER
for mode in naive layer; do
    sql "CREATE DATABASE ${DB_PREFIX}_$mode" >/dev/null
    key[$mode]="$(RUST_LOG=warn "$bin" seed --db "$PG/${DB_PREFIX}_$mode" 2>"$work/$mode.seed.err" | head -n 1)"
done
sleep 1 # let the seeding connections' statistics land
for mode in naive layer; do
    xacts_before[$mode]=$(xacts "$mode")
    RUST_LOG=warn "$bin" serve --mode "$mode" --db "$PG/${DB_PREFIX}_$mode" \
        --listen "127.0.0.1:${port[$mode]}" >"$work/$mode.out" 2>"$work/$mode.err" &
    pids+=($!)
done
for mode in naive layer; do
    for _ in $(seq 1 100); do
        curl -fsS -o /dev/null "http://127.0.0.1:${port[$mode]}/stats" 2>/dev/null && break
        sleep 0.1
    done
    code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer ${key[$mode]}" \
        "http://127.0.0.1:${port[$mode]}/api/v2/projects")
    if [ "$code" != 200 ]; then
        echo "the $mode server answered $code to its key:" >&2
        cat "$work/$mode.err" >&2
        exit 1
    fi
done

stats() { curl -fsS "http://127.0.0.1:${port[$1]}/stats"; }

# Runs wrk against MODE for SECONDS; prints "requests_per_s p99_ms".
load() {
    local mode=$1 seconds=$2 out="$work/wrk.txt"
    timeout $((seconds + 30)) wrk -t1 -c"$CONNECTIONS" -d"${seconds}s" --latency \
        -H "Authorization: Bearer ${key[$mode]}" "http://127.0.0.1:${port[$mode]}/api/v2/projects" >"$out"
    if grep -q 'Non-2xx' "$out"; then
        echo "wrk saw non-2xx responses from the $mode server:" >&2
        cat "$out" >&2
        exit 1
    fi
    awk '
        function ms(v) {
            if (v ~ /us$/) return substr(v, 1, length(v) - 2) / 1000
            if (v ~ /ms$/) return substr(v, 1, length(v) - 2) + 0
            if (v ~ /s$/) return substr(v, 1, length(v) - 1) * 1000
            return v + 0
        }
        /^Requests\/sec:/ { rps = $2 }
        $1 == "99%" { p99 = ms($2) }
        END { printf "%.0f %.3f\n", rps, p99 }
    ' "$out"
}

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo "PostgreSQL: $(sql 'SHOW server_version') at $PG (loopback), pool of 10 connections per app"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "wrk -t1 -c$CONNECTIONS -d${DURATION}s --latency, $ROUNDS rounds, order alternating, no pinning"
echo "warming up (${WARMUP}s each)"
load naive "$WARMUP" >/dev/null
load layer "$WARMUP" >/dev/null

results="$work/results"
: >"$results"
printf '%-6s %-6s %12s %10s %14s %14s\n' round mode "requests/s" "p99 ms" "lookups/req" "queries/req"
for round in $(seq 1 "$ROUNDS"); do
    if [ $((round % 2)) -eq 1 ]; then order="naive layer"; else order="layer naive"; fi
    for mode in $order; do
        before="$(stats "$mode")"
        read -r rps p99 < <(load "$mode" "$DURATION")
        after="$(stats "$mode")"
        line=$(python3 -c '
import json, sys
b, a = json.loads(sys.argv[1]), json.loads(sys.argv[2])
n = a["requests"] - b["requests"]
print(n, a["lookups"] - b["lookups"], a["queries"] - b["queries"])
' "$before" "$after")
        read -r served lookups queries <<<"$line"
        echo "$round $mode $rps $p99 $served $lookups $queries" >>"$results"
        awk -v r="$round" -v m="$mode" -v rps="$rps" -v p="$p99" -v n="$served" -v l="$lookups" -v q="$queries" \
            'BEGIN { printf "%-6s %-6s %12s %10s %14.6f %14.6f\n", r, m, rps, p, l / n, q / n }'
    done
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"

total_naive=$(stats naive | python3 -c 'import json,sys; print(json.load(sys.stdin)["requests"])')
total_layer=$(stats layer | python3 -c 'import json,sys; print(json.load(sys.stdin)["requests"])')
for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
pids=()
sleep 1 # the backends report their statistics as they exit
server_naive=$(( $(xacts naive) - xacts_before[naive] ))
server_layer=$(( $(xacts layer) - xacts_before[layer] ))
echo "naive app: $(tail -n 1 "$work/naive.err")"
echo "layer app: $(tail -n 1 "$work/layer.err")"

python3 - "$results" "$total_naive" "$server_naive" "$total_layer" "$server_layer" <<'PY'
import statistics, sys
rows = [line.split() for line in open(sys.argv[1])]
total = {"naive": int(sys.argv[2]), "layer": int(sys.argv[4])}
server = {"naive": int(sys.argv[3]), "layer": int(sys.argv[5])}
by = {}
for r, mode, rps, p99, served, lookups, queries in rows:
    by.setdefault(int(r), {})[mode] = (float(rps), float(p99), int(served), int(lookups), int(queries))
med = statistics.median
tput = [v["layer"][0] / v["naive"][0] for v in by.values()]
p99 = [v["layer"][1] / v["naive"][1] for v in by.values()]
def per(mode, i):
    served = sum(v[mode][2] for v in by.values())
    return sum(v[mode][i] for v in by.values()) / served, served
rps = {m: med(v[m][0] for v in by.values()) for m in ("naive", "layer")}
lat = {m: med(v[m][1] for v in by.values()) for m in ("naive", "layer")}
print()
for i, (t, p) in enumerate(zip(tput, p99), 1):
    print(f"round {i}: throughput layer/naive {t:.2f}, p99 layer/naive {p:.3f}")
print(f"median throughput ratio, layer / naive: {med(tput):.2f}")
print(f"median p99 ratio, layer / naive:        {med(p99):.3f}")
for m in ("naive", "layer"):
    lk, n = per(m, 3)
    q, _ = per(m, 4)
    print(f"{m}: {n} requests measured; app lookups/request {lk:.6f}, app queries/request {q:.6f}; "
          f"server transactions/request over the app's life {server[m] / total[m]:.6f} "
          f"({server[m]} for {total[m]} requests, start-up and warm-up included)")
cmd = "`bash bench/pg_compare.sh`"
lk_n, _ = per("naive", 4)
lk_l, _ = per("layer", 4)
print()
print("BENCHMARKS.md rows:")
print(f"| PostgreSQL, throughput with the layer | {rps['layer']:.0f} req/s | naive lookup per request: {rps['naive']:.0f} req/s | {med(tput):.2f} | reported | — | {cmd} |")
print(f"| PostgreSQL, p99 latency with the layer | {lat['layer']:.3f} ms | naive: {lat['naive']:.3f} ms | {med(p99):.3f} | reported | — | {cmd} |")
print(f"| PostgreSQL, queries per request, naive (app count / server transactions) | {lk_n:.4f} / {server['naive'] / total['naive']:.4f} | 1 per request by design | — | reported | — | {cmd} |")
print(f"| PostgreSQL, queries per request, layer (app count / server transactions) | {lk_l:.6f} / {server['layer'] / total['layer']:.6f} | naive: {lk_n:.4f} | {lk_l / lk_n:.6f} | reported | — | {cmd} |")
PY
echo "took $(( $(date +%s) - started )) s (bound: build + $(( 2 * WARMUP + 2 * ROUNDS * DURATION )) s of load)"
