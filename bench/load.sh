#!/usr/bin/env bash
# Over the wire: the quickstart app's /api/v2/projects with and without the
# layer (same release build, `--unprotected` drops the layer), loaded by wrk
# on loopback in alternating rounds. Prints requests/s and p99 per round, and
# the median ratios against the targets (throughput >= 0.95, p99 <= 1.10).
#
# On a machine that other work shares, requests/s swings with that work far
# more than with the layer; so the script also reads the server's own CPU
# time (/proc/PID/stat) around each run and prints CPU microseconds per
# request, which such contention disturbs much less. Its ratio (without /
# with) estimates the throughput ratio of a server that has its core alone.
#
# Run with: bash bench/load.sh
# Knobs: ROUNDS=5 DURATION=6 WARMUP=3 CONNECTIONS=32 PIN=1 (PIN=0: no taskset)
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh

ROUNDS="${ROUNDS:-5}"
DURATION="${DURATION:-6}"
WARMUP="${WARMUP:-3}"
CONNECTIONS="${CONNECTIONS:-32}"
PIN="${PIN:-1}"
PORT_ON="${PORT_ON:-18080}"
PORT_OFF="${PORT_OFF:-18081}"
TARGET_DIR="${CARGO_TARGET_DIR:-target}"
started=$(date +%s)

need_tools wrk

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
declare -A server_pid
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
    server_pid[$name]=$!
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

# CPU time (user + system, clock ticks) the server of VARIANT has used.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/${server_pid[$1]}/stat"; }
TICK_US=$(( 1000000 / $(getconf CLK_TCK) ))

# Runs wrk for SECONDS against VARIANT's server; prints
# "requests_per_s p99_ms server_cpu_us_per_request".
load() {
    local variant=$1 seconds=$2 out="$work/wrk.txt" url cpu0 cpu1
    if [ "$variant" = on ]; then url=$url_on; else url=$url_off; fi
    cpu0=$(cpu_ticks "$variant")
    timeout $((seconds + 30)) "${client_cpu[@]}" wrk -t1 -c"$CONNECTIONS" -d"${seconds}s" --latency \
        -H "Authorization: Bearer $key" "$url" >"$out"
    if grep -q 'Non-2xx' "$out"; then
        echo "wrk saw non-2xx responses from $url:" >&2
        cat "$out" >&2
        exit 1
    fi
    cpu1=$(cpu_ticks "$variant")
    awk -v ticks=$((cpu1 - cpu0)) -v tick_us="$TICK_US" '
        function ms(v) {
            if (v ~ /us$/) return substr(v, 1, length(v) - 2) / 1000
            if (v ~ /ms$/) return substr(v, 1, length(v) - 2) + 0
            if (v ~ /s$/) return substr(v, 1, length(v) - 1) * 1000
            return v + 0
        }
        /^Requests\/sec:/ { rps = $2 }
        / requests in / { n = $1 }
        $1 == "99%" { p99 = ms($2) }
        END { printf "%.0f %.3f %.2f\n", rps, p99, ticks * tick_us / n }
    ' "$out"
}

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "pinning: ${server_cpu[*]:-none} (server), ${client_cpu[*]:-none} (wrk)"
echo "wrk -t1 -c$CONNECTIONS -d${DURATION}s --latency, $ROUNDS rounds, order alternating"
echo "warming up (${WARMUP}s each)"
load on "$WARMUP" >/dev/null
load off "$WARMUP" >/dev/null

printf '%-6s %-8s %12s %10s %12s\n' round variant "requests/s" "p99 ms" "CPU us/req"
ratios="$work/ratios"
: >"$ratios"
# Per-round figures for bench/plot.py.
mkdir -p bench/figures
figures=bench/figures/load.txt
: >"$figures"
for round in $(seq 1 "$ROUNDS"); do
    if [ $((round % 2)) -eq 1 ]; then order="off on"; else order="on off"; fi
    for variant in $order; do
        read -r rps p99 cpu < <(load "$variant" "$DURATION")
        printf '%-6s %-8s %12s %10s %12s\n' "$round" "$variant" "$rps" "$p99" "$cpu"
        echo "$round $variant $rps $p99 $cpu" >>"$figures"
        eval "${variant}_rps=$rps ${variant}_p99=$p99 ${variant}_cpu=$cpu"
    done
    # shellcheck disable=SC2154
    echo "$on_rps $off_rps $on_p99 $off_p99 $on_cpu $off_cpu" >>"$ratios"
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"

python3 - "$ratios" <<'PY'
import statistics, sys
rows = [list(map(float, line.split())) for line in open(sys.argv[1])]
med = statistics.median
tput = [r[0] / r[1] for r in rows]
p99 = [r[2] / r[3] for r in rows]
cpu = [r[5] / r[4] for r in rows]  # without / with: the throughput it implies
on_rps, off_rps = med(r[0] for r in rows), med(r[1] for r in rows)
on_p99, off_p99 = med(r[2] for r in rows), med(r[3] for r in rows)
on_cpu, off_cpu = med(r[4] for r in rows), med(r[5] for r in rows)
t, p, c = med(tput), med(p99), med(cpu)
print()
print("per-round ratios (with layer / without; CPU: without / with):")
for i, (a, b, d) in enumerate(zip(tput, p99, cpu), 1):
    print(f"  round {i}: throughput {a:.3f}, p99 {b:.3f}, CPU per request {d:.3f}")
verdict = lambda ok: "PASS" if ok else "MISS"
print(f"median throughput ratio {t:.3f} (target >= 0.95) {verdict(t >= 0.95)}")
print(f"median p99 ratio        {p:.3f} (target <= 1.10) {verdict(p <= 1.10)}")
print(f"median CPU-per-request ratio (without / with) {c:.3f}: the server spends "
      f"{on_cpu - off_cpu:.2f} us more CPU per request with the layer ({on_cpu:.2f} vs {off_cpu:.2f})")
print()
print("BENCHMARKS.md rows:")
cmd = "`bash bench/load.sh`"
print(f"| over the wire, throughput with the layer | {on_rps:.0f} req/s | {off_rps:.0f} req/s without | {t:.3f} | ≥ 0.95 | {verdict(t >= 0.95)} | {cmd} |")
print(f"| over the wire, p99 latency with the layer | {on_p99:.3f} ms | {off_p99:.3f} ms without | {p:.3f} | ≤ 1.10 | {verdict(p <= 1.10)} | {cmd} |")
print(f"| over the wire, server CPU per request with the layer (throughput it implies) | {on_cpu:.2f} µs | {off_cpu:.2f} µs without | {c:.3f} (without / with) | ≥ 0.95 | {verdict(c >= 0.95)} | {cmd} |")
PY
echo "took $(( $(date +%s) - started )) s (bound: build + $(( 2 * WARMUP + 2 * ROUNDS * DURATION )) s of load)"
