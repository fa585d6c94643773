#!/usr/bin/env bash
# Where the layer's cost over the wire goes, counted, not timed: the release
# quickstart server runs under callgrind with instrumentation off; a client
# on the other core warms it up, then instrumentation goes on for exactly N
# keep-alive requests and off again. The same for `--unprotected`. The
# difference of the two totals divided by N is what the layer adds to one
# request over the wire, and the difference per function (exclusive cost,
# `callgrind_annotate`) says where it goes.
#
# Run with: bash bench/wire_instructions.sh      (N=5000 TOP=25 to change)
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh

N="${N:-5000}"
WARMUP="${WARMUP:-300}"
TOP="${TOP:-25}"
PORT="${PORT:-18090}"
TARGET_DIR="${CARGO_TARGET_DIR:-target}"
started=$(date +%s)

need_tools valgrind

# BIN=path measures another build of the quickstart (an earlier commit's,
# for a before/after pair).
if [ -z "${BIN:-}" ]; then
    cargo build --release --example quickstart --quiet
fi
bin="${BIN:-$TARGET_DIR/release/examples/quickstart}"
work="$(mktemp -d)"
server=""
cleanup() {
    [ -n "$server" ] && kill "$server" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT INT TERM

# N keep-alive GETs on one connection; exits non-zero on any answer but 200.
cat >"$work/client.py" <<'PY'
import http.client, sys
port, key, count = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
headers = {"Authorization": "Bearer " + key}
for _ in range(count):
    conn.request("GET", "/api/v2/projects", headers=headers)
    response = conn.getresponse()
    response.read()
    if response.status != 200:
        sys.exit(f"answer {response.status}")
conn.close()
PY

# Runs VARIANT (on, off) under callgrind; leaves $work/VARIANT.out.
measure() {
    local variant=$1 flags=()
    [ "$variant" = off ] && flags=(--unprotected)
    : >"$work/$variant.stdout"
    RUST_LOG=warn taskset -c 0 valgrind --tool=callgrind --instr-atstart=no \
        --callgrind-out-file="$work/$variant.out" \
        "$bin" --listen "127.0.0.1:$PORT" "${flags[@]}" \
        >"$work/$variant.stdout" 2>"$work/$variant.stderr" &
    server=$!
    for _ in $(seq 1 600); do
        if [ -s "$work/$variant.stdout" ] && curl -fsS -o /dev/null "http://127.0.0.1:$PORT/healthz" 2>/dev/null; then
            break
        fi
        sleep 0.1
    done
    local key
    key="$(head -n 1 "$work/$variant.stdout")"
    taskset -c 1 python3 "$work/client.py" "$PORT" "$key" "$WARMUP"
    callgrind_control -i on "$server" >/dev/null 2>&1
    taskset -c 1 python3 "$work/client.py" "$PORT" "$key" "$N"
    callgrind_control -i off "$server" >/dev/null 2>&1
    kill -TERM "$server"
    wait "$server" || true
    server=""
    [ -s "$work/$variant.out" ] || { echo "no callgrind output for $variant" >&2; cat "$work/$variant.stderr" >&2; exit 1; }
}

measure on
measure off

for variant in on off; do
    callgrind_annotate --inclusive=no --threshold=100 "$work/$variant.out" >"$work/$variant.exclusive"
    callgrind_annotate --inclusive=yes --threshold=100 "$work/$variant.out" >"$work/$variant.inclusive"
done

python3 - "$work" "$N" "$TOP" <<'PY'
import re, sys
work, n, top = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
row = re.compile(r"^\s*([\d,]+)\s+\([^)]*\)\s+(.*)$")
def read(path):
    total, funcs = None, {}
    for line in open(path, errors="replace"):
        m = re.match(r"^\s*([\d,]+)\s+\(100\.0%\)\s+PROGRAM TOTALS", line)
        if m:
            total = int(m.group(1).replace(",", ""))
            continue
        m = row.match(line)
        if m and total is not None:
            name = m.group(2).strip()
            # Keep the function, drop the file path callgrind puts first.
            name = name.split(":", 1)[1] if ":" in name else name
            name = re.sub(r" \[[^\]]*\]$", "", name)
            funcs[name] = funcs.get(name, 0) + int(m.group(1).replace(",", ""))
    return total, funcs
on_total, on_ex = read(f"{work}/on.exclusive")
off_total, off_ex = read(f"{work}/off.exclusive")
_, on_in = read(f"{work}/on.inclusive")
per = lambda v: v / n
print(f"requests counted: {n} per variant (keep-alive, one connection)")
print(f"with the layer:    {per(on_total):8.0f} instructions per request")
print(f"without the layer: {per(off_total):8.0f} instructions per request")
print(f"the layer adds:    {per(on_total - off_total):8.0f} instructions per request ({on_total / off_total:.3f} x)")
print()
diff = {k: on_ex.get(k, 0) - off_ex.get(k, 0) for k in set(on_ex) | set(off_ex)}
print(f"top {top} differences per request, exclusive (with - without), by function:")
shown = 0
for name, d in sorted(diff.items(), key=lambda kv: -abs(kv[1])):
    if shown == top:
        break
    if abs(per(d)) < 5:
        break
    print(f"  {per(d):+8.0f}  {name[:150]}")
    shown += 1
rest = sum(diff.values()) - sum(d for _, d in sorted(diff.items(), key=lambda kv: -abs(kv[1]))[:shown])
print(f"  {per(rest):+8.0f}  (everything else)")
print()
print("inclusive cost per request of the layer's own entry points (with the layer):")
for needle in ["ApiKeyService", "decide", "KeyCache::get_now", "sha2::", "Extensions>::insert", "AuthenticatedKey"]:
    best = max(((v, k) for k, v in on_in.items() if needle in k), default=None)
    if best:
        print(f"  {per(best[0]):8.0f}  {best[1][:150]}")
PY
echo "took $(( $(date +%s) - started )) s"
