#!/usr/bin/env bash
# Rate limits over the wire, side by side in one run: the quickstart's route
# with a key whose limit is counted nowhere (no limit), in process, or in
# Redis (the `rate_limits` driver, bench/drivers/src/bin/rate_limits.rs; the
# limit is far above the load, so every request is admitted and counted). wrk on loopback, rounds alternating in
# order; prints requests/s and p99 per round and their medians, and Redis
# round trips per request (EVALSHA calls from INFO commandstats over wrk's
# request count).
#
# Starts a redis-server of its own (no persistence) on REDIS_PORT.
# Run with: bash bench/limits.sh
# Knobs: ROUNDS=3 DURATION=5 WARMUP=2 CONNECTIONS=32 PIN=1 REDIS_PORT=16399
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh

ROUNDS="${ROUNDS:-3}"
DURATION="${DURATION:-5}"
WARMUP="${WARMUP:-2}"
CONNECTIONS="${CONNECTIONS:-32}"
PIN="${PIN:-1}"
REDIS_PORT="${REDIS_PORT:-16399}"
TARGET_DIR="${CARGO_TARGET_DIR:-target}"

need_tools wrk redis-server

cargo build --release -p bench-drivers --bin rate_limits --quiet
bin="$TARGET_DIR/release/rate_limits"

server_cpu=() client_cpu=()
if [ "$PIN" = 1 ] && command -v taskset >/dev/null 2>&1 && [ "$(nproc)" -ge 2 ]; then
    server_cpu=(taskset -c 0)
    client_cpu=(taskset -c 1)
fi

work="$(mktemp -d)"
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT INT TERM

redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save "" --appendonly no >"$work/redis.log" 2>&1 &
pids+=($!)
rcli() { redis-cli -h 127.0.0.1 -p "$REDIS_PORT" "$@"; }
for _ in $(seq 1 50); do rcli ping >/dev/null 2>&1 && break; sleep 0.1; done

declare -A port=([none]=18090 [local]=18091 [redis]=18092) key
for variant in none local redis; do
    RUST_LOG=warn "${server_cpu[@]}" "$bin" --listen "127.0.0.1:${port[$variant]}" \
        --limiter "$variant" --redis "redis://127.0.0.1:$REDIS_PORT" \
        >"$work/$variant.out" 2>"$work/$variant.err" &
    pids+=($!)
    for _ in $(seq 1 100); do
        if [ -s "$work/$variant.out" ] && curl -fsS -o /dev/null "http://127.0.0.1:${port[$variant]}/healthz" 2>/dev/null; then
            break
        fi
        sleep 0.1
    done
    key[$variant]="$(head -n 1 "$work/$variant.out")"
    [ "$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer ${key[$variant]}" \
        "http://127.0.0.1:${port[$variant]}/api/v2/projects")" = 200 ]
done

# Runs wrk against VARIANT; prints "requests_per_s p99_ms requests".
load() {
    local variant=$1 seconds=$2 out="$work/wrk.txt"
    timeout $((seconds + 30)) "${client_cpu[@]}" wrk -t1 -c"$CONNECTIONS" -d"${seconds}s" --latency \
        -H "Authorization: Bearer ${key[$variant]}" \
        "http://127.0.0.1:${port[$variant]}/api/v2/projects" >"$out"
    if grep -q 'Non-2xx' "$out"; then
        echo "wrk saw non-2xx responses from $variant:" >&2
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
        / requests in / { n = $1 }
        $1 == "99%" { p99 = ms($2) }
        END { printf "%.0f %.3f %d\n", rps, p99, n }
    ' "$out"
}

evalsha_calls() {
    rcli info commandstats | tr -d '\r' | awk -F'[:,=]' '$1 == "cmdstat_evalsha" { print $3; found = 1 } END { if (!found) print 0 }'
}

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "pinning: ${server_cpu[*]:-none} (servers), ${client_cpu[*]:-none} (wrk), redis-server unpinned"
echo "wrk -t1 -c$CONNECTIONS -d${DURATION}s --latency, $ROUNDS rounds, order rotating"
for variant in none local redis; do load "$variant" "$WARMUP" >/dev/null; done

results="$work/results"
: >"$results"
printf '%-6s %-8s %12s %10s %18s\n' round limiter "requests/s" "p99 ms" "Redis calls/req"
orders=("none local redis" "local redis none" "redis none local")
for round in $(seq 1 "$ROUNDS"); do
    for variant in ${orders[$(( (round - 1) % 3 ))]}; do
        rcli config resetstat >/dev/null
        read -r rps p99 n < <(load "$variant" "$DURATION")
        calls=$(evalsha_calls)
        per=$(awk -v c="$calls" -v n="$n" 'BEGIN { printf "%.4f", c / n }')
        printf '%-6s %-8s %12s %10s %18s\n' "$round" "$variant" "$rps" "$p99" "$per"
        echo "$variant $rps $p99 $per" >>"$results"
    done
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"

python3 - "$results" <<'PY'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    variant, rps, p99, per = line.split()
    rows.setdefault(variant, []).append((float(rps), float(p99), float(per)))
base = statistics.median(r[0] for r in rows["none"])
base_p99 = statistics.median(r[1] for r in rows["none"])
print()
print(f"{'limiter':<8} {'median req/s':>13} {'vs none':>8} {'median p99 ms':>14} {'vs none':>8} {'Redis calls/req':>16}")
for variant in ("none", "local", "redis"):
    rps = statistics.median(r[0] for r in rows[variant])
    p99 = statistics.median(r[1] for r in rows[variant])
    per = statistics.median(r[2] for r in rows[variant])
    print(f"{variant:<8} {rps:>13.0f} {rps / base:>8.3f} {p99:>14.3f} {p99 / base_p99:>8.3f} {per:>16.4f}")
PY
