#!/usr/bin/env bash
# Runs every fuzz target, one after another, for the given number of seconds
# each (600 by default), and prints one summary line per target. Not part of
# CI: a long search, run by hand before a release.
#
#   fuzz/run-all.sh            # 10 minutes per target
#   fuzz/run-all.sh 60         # one minute per target
#   SANITIZER=none fuzz/run-all.sh
#
# The corpora grow in fuzz/corpus/<target>, crashes land in
# fuzz/artifacts/<target>, and each run's log in fuzz/logs/<target>.log.
# Exits non-zero if any target failed.
set -euo pipefail

seconds="${1:-600}"
if ! [[ "$seconds" =~ ^[0-9]+$ ]] || [[ "$seconds" -eq 0 ]]; then
    echo "usage: $0 [seconds per target, default 600]" >&2
    exit 2
fi

cd "$(dirname "$0")"

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "installing cargo-fuzz" >&2
    cargo install cargo-fuzz
fi

# AddressSanitizer by default; `none` needs no unstable flag. On a stable
# toolchain the sanitizer's `-Z` flag needs RUSTC_BOOTSTRAP.
sanitizer="${SANITIZER:-address}"
if [[ "$sanitizer" != none ]] && ! rustc --version | grep -q nightly; then
    export RUSTC_BOOTSTRAP=1
fi

# The longest input worth trying, per target: the layer's limits on
# `Authorization` (4 KiB) and URIs (8 KiB), a key's length with room around.
max_len() {
    case "$1" in
        key) echo 256 ;;
        query | layer) echo 8192 ;;
        *) echo 4096 ;;
    esac
}

mkdir -p logs
failed=0
summary=()
for target in $(cargo fuzz list); do
    log="logs/$target.log"
    echo "fuzzing $target for $seconds s (log: fuzz/$log)" >&2
    if cargo fuzz run "$target" -s "$sanitizer" -- \
        -max_total_time="$seconds" -max_len="$(max_len "$target")" \
        -print_final_stats=1 >"$log" 2>&1; then
        outcome="no failure"
    else
        outcome="FAILED, see fuzz/$log and fuzz/artifacts/$target"
        failed=1
    fi
    # libFuzzer's last status line (`#N DONE cov: ... ft: ... corp: ...`)
    # and its final stats.
    last=$(grep -E '^#[0-9]+' "$log" | tail -n 1 || true)
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
    ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
    corpus=$(find "corpus/$target" -type f 2>/dev/null | wc -l)
    summary+=("$(printf '%-14s %6s s  %12s inputs  corpus %6s  cov %6s  ft %6s  %s' \
        "$target" "$seconds" "${runs:-?}" "$corpus" "${cov:-?}" "${ft:-?}" "$outcome")")
    echo "${summary[-1]}"
done

echo
echo "summary ($sanitizer sanitizer):"
printf '%s\n' "${summary[@]}"
exit "$failed"
