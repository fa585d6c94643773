#!/usr/bin/env bash
# A bounded loopback soak of the MCP proxy example (see docs/soak.md).
#
# Builds the release mcp-proxy and the soak driver, then runs the driver: it
# starts mcp-proxy on a fresh SQLite file on 127.0.0.1, makes keys with its
# `keys` commands, and sends a mix of valid, unknown, malformed, expiring and
# revoked keys for SOAK_SECS seconds (default 180) from SOAK_CONCURRENCY
# clients (default 128). Prints the summary; exits non-zero on any request
# wrongly accepted or any 5xx. Extra arguments go to the driver (--help).
#
#   bench/soak.sh
#   SOAK_SECS=30 SOAK_CONCURRENCY=32 bench/soak.sh --seed 1
set -euo pipefail
cd "$(dirname "$0")/.."

secs=${SOAK_SECS:-180}
concurrency=${SOAK_CONCURRENCY:-128}
target=${CARGO_TARGET_DIR:-target}

cargo build --release -p mcp-proxy
cargo build --release --example soak
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg) ($(nproc) cores)" >&2

# The driver stops by itself after secs plus at most a minute of draining;
# timeout is the backstop (SIGTERM: the driver stops its server and reports).
timeout --kill-after=15 $((secs + 120)) \
    "$target/release/examples/soak" \
    --duration-secs "$secs" \
    --concurrency "$concurrency" \
    --proxy-bin "$target/release/mcp-proxy" \
    "$@"
