#!/usr/bin/env bash
# Runs every cargo-fuzz target of coexist-relay for a bounded time.
#
#   bench/fuzz.sh [SECONDS] [TARGET...]     (default: 60 s, every target)
#
# Works on the stable toolchain: RUSTC_BOOTSTRAP=1 lets cargo-fuzz pass its -Z flags
# (AddressSanitizer, sancov). The committed seeds in fuzz/corpus/<target>/ are read
# only; what the fuzzer discovers goes to fuzz/corpus-work/<target>/ (git-ignored), and
# crashes to fuzz/artifacts/<target>/. Prints one "target executions" line per target
# and exits non-zero if any target crashed.
set -euo pipefail

seconds="${1:-60}"
shift || true
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root/fuzz"

if ! command -v cargo-fuzz >/dev/null 2>&1; then
    cargo install --locked cargo-fuzz
fi
export RUSTC_BOOTSTRAP=1

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(cargo fuzz list)
fi

cargo fuzz build -O

status=0
for t in "${targets[@]}"; do
    mkdir -p "corpus-work/$t" "corpus/$t"
    log="$(mktemp)"
    # -rss_limit_mb: the session target holds a runtime and a spool; 2 GB is ample.
    if ! cargo fuzz run -O "$t" "corpus-work/$t" "corpus/$t" -- \
        -max_total_time="$seconds" -rss_limit_mb=2048 -print_final_stats=1 >"$log" 2>&1; then
        status=1
        echo "$t CRASHED; see fuzz/artifacts/$t/ and the log below" >&2
        tail -40 "$log" >&2
    fi
    execs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)"
    echo "$t ${execs:-?} executions in ${seconds}s"
    rm -f "$log"
done
exit "$status"
