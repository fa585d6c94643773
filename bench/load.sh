#!/usr/bin/env bash
# Over the wire: the quickstart app's /api/v2/projects with and without the
# layer (same release build, `--unprotected` drops the layer), loaded by wrk
# on loopback in alternating rounds. Prints requests/s and p99 per round, and
# the median ratios against the targets (throughput >= 0.95, p99 <= 1.10).
#
# Run with: bash bench/load.sh
# Knobs: ROUNDS=3 DURATION=10 WARMUP=3 CONNECTIONS=32 PIN=1 (PIN=0: no taskset)
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS="${ROUNDS:-3}"
DURATION="${DURATION:-10}"
WARMUP="${WARMUP:-3}"
CONNECTIONS="${CONNECTIONS:-32}"
PIN="${PIN:-1}"
PORT_ON="${PORT_ON:-18080}"
PORT_OFF="${PORT_OFF:-18081}"
TARGET_DIR="${CARGO_TARGET_DIR:-target}"
started=$(date +%s)

if ! command -v wrk >/dev/null 2>&1; then
    echo "installing wrk"
    (apt-get install -y -qq wrk >/dev/null 2>&1) ||
        (apt-get update -qq && apt-get install -y -qq wrk >/dev/null)
fi

cargo build --release --example quickstart --quiet
bin="$TARGET_DIR/release/examples/quickstart"

# On two cores, the server gets core 0 and wrk core 1, so they do not take
# turns on one core; other processes may still run on either.
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

# Starts the server on PORT (extra flags after it) and waits for its key.
start() {
    local name=$1 port=$2
    shift 2
    RUST_LOG=warn "${server_cpu[@]}" "$bin" --listen "127.0.0.1:$port" "$@" \
        >"$work/$name.out" 2>"$work/$name.err" &
    pids+=($!)
    for _ in $(seq 1 100); do
        if [ -s "$work/$name.out" ] && curl -fsS -o /dev/null "http://127.0.0.1:$port/healthz" 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    echo "the $name server did not start:" >&2
    cat "$work/$name.err" >&2
    exit 1
}

start on "$PORT_ON"
start off "$PORT_OFF" --unprotected
key="$(head -n 1 "$work/on.out")"
url_on="http://127.0.0.1:$PORT_ON/api/v2/projects"
url_off="http://127.0.0.1:$PORT_OFF/api/v2/projects"

# The protected route must answer 200 to the key and 401 without it.
[ "$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $key" "$url_on")" = 200 ]
[ "$(curl -s -o /dev/null -w '%{http_code}' "$url_on")" = 401 ]

# Runs wrk for SECONDS against URL; prints "requests_per_s p99_ms".
load() {
    local url=$1 seconds=$2 out="$work/wrk.txt"
    timeout $((seconds + 30)) "${client_cpu[@]}" wrk -t1 -c"$CONNECTIONS" -d"${seconds}s" --latency \
        -H "Authorization: Bearer $key" "$url" >"$out"
    if grep -q 'Non-2xx' "$out"; then
        echo "wrk saw non-2xx responses from $url:" >&2
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
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "pinning: ${server_cpu[*]:-none} (server), ${client_cpu[*]:-none} (wrk)"
echo "wrk -t1 -c$CONNECTIONS -d${DURATION}s --latency, $ROUNDS rounds, order alternating"
echo "warming up (${WARMUP}s each)"
load "$url_on" "$WARMUP" >/dev/null
load "$url_off" "$WARMUP" >/dev/null

printf '%-6s %-8s %12s %10s\n' round variant "requests/s" "p99 ms"
ratios="$work/ratios"
: >"$ratios"
for round in $(seq 1 "$ROUNDS"); do
    if [ $((round % 2)) -eq 1 ]; then order="off on"; else order="on off"; fi
    for variant in $order; do
        if [ "$variant" = on ]; then url=$url_on; else url=$url_off; fi
        read -r rps p99 < <(load "$url" "$DURATION")
        printf '%-6s %-8s %12s %10s\n' "$round" "$variant" "$rps" "$p99"
        eval "${variant}_rps=$rps ${variant}_p99=$p99"
    done
    # shellcheck disable=SC2154
    echo "$on_rps $off_rps $on_p99 $off_p99" >>"$ratios"
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"

python3 - "$ratios" <<'PY'
import statistics, sys
rows = [list(map(float, line.split())) for line in open(sys.argv[1])]
tput = [on / off for on, off, _, _ in rows]
p99 = [on / off for _, _, on, off in rows]
med = statistics.median
on_rps, off_rps = med(r[0] for r in rows), med(r[1] for r in rows)
on_p99, off_p99 = med(r[2] for r in rows), med(r[3] for r in rows)
t, p = med(tput), med(p99)
print()
print("per-round ratios (with layer / without):")
for i, (a, b) in enumerate(zip(tput, p99), 1):
    print(f"  round {i}: throughput {a:.3f}, p99 {b:.3f}")
verdict = lambda ok: "PASS" if ok else "MISS"
print(f"median throughput ratio {t:.3f} (target >= 0.95) {verdict(t >= 0.95)}")
print(f"median p99 ratio        {p:.3f} (target <= 1.10) {verdict(p <= 1.10)}")
print()
print("BENCHMARKS.md rows:")
cmd = "`bash bench/load.sh`"
print(f"| over the wire, throughput with the layer | {on_rps:.0f} req/s | {off_rps:.0f} req/s without | {t:.3f} | ≥ 0.95 | {verdict(t >= 0.95)} | {cmd} |")
print(f"| over the wire, p99 latency with the layer | {on_p99:.3f} ms | {off_p99:.3f} ms without | {p:.3f} | ≤ 1.10 | {verdict(p <= 1.10)} | {cmd} |")
PY
echo "took $(( $(date +%s) - started )) s (bound: build + $(( 2 * WARMUP + 2 * ROUNDS * DURATION )) s of load)"
