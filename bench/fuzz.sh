#!/usr/bin/env bash
# Runs every cargo-fuzz target of coexist-relay for a bounded time. CI runs it as
# `bash bench/fuzz.sh 30` after the test suite (see .ci/run).
#
#   bench/fuzz.sh [SECONDS] [TARGET...]     (default: 60 s, every target)
#
# Works on the stable toolchain: RUSTC_BOOTSTRAP=1 lets cargo-fuzz pass its -Z flags
# (sanitizer, sancov). The committed corpus in fuzz/corpus/<target>/ is read only;
# what the fuzzer discovers goes to fuzz/corpus-work/<target>/ (git-ignored), and
# crashes to fuzz/artifacts/<target>/ (git-ignored). Prints one "target executions"
# line per target, then "fuzz: N passed, M failed", and exits non-zero if any target
# panicked, leaked, hung (one input over 25 s) or ran out of memory.
#
# Build configuration (the same flags for `build` and `run`, else `run` rebuilds).
# Figures: bench/RESULTS.md, "Fuzzing" (cold builds on 2 shared cores).
# - Sanitizer: LeakSanitizer alone (`--sanitizer leak`), not cargo-fuzz's default
#   AddressSanitizer; FUZZ_SANITIZER=address bench/fuzz.sh 600 runs the ASan build.
#   The relay is `forbid(unsafe_code)` and the fuzzed paths' unsafe code is std,
#   tokio, memchr, hashbrown, so ASan's memory checks watch little of ours; what we
#   do want from it is leak detection (a leak per message or session is a real bug for
#   a daemon), and LSan alone gives that. Measured: the ASan build costs 16-20
#   CPU-minutes against 10-13 for LSan (10 for none), and runs 3.5x (smtp_command) to 7x
#   (smtp_session) fewer executions in the same 30 s.
# - Optimized with debug assertions and overflow checks (cargo-fuzz's default; `-O`
#   turns the checks off): an overflow in size or offset arithmetic is a finding.
#   No measurable build cost (ASan: 16-19 CPU-min with them, 18-20 with -O).
# - Built once for all targets (one `cargo fuzz build`, one dependency graph).
# - codegen-units left at cargo-fuzz's 1: 16 measured no cheaper (ASan: 19 CPU-min).
# - fuzz/Cargo.lock is committed (seeded from the workspace's), so every run builds
#   the same dependency versions as the relay ships; a stale one fails the run (below).
set -euo pipefail

seconds="${1:-60}"
shift || true
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root/fuzz"

if ! command -v cargo-fuzz >/dev/null 2>&1; then
    echo "fuzz.sh: installing cargo-fuzz" >&2
    cargo install --locked --version 0.13.2 cargo-fuzz
fi
export RUSTC_BOOTSTRAP=1

# cargo-fuzz has no --locked: check the committed fuzz/Cargo.lock first, so a stale one
# fails here instead of being silently re-resolved (it is stale when relay/Cargo.toml
# gained or changed a dependency).
if ! cargo fetch --locked --quiet; then
    echo "fuzz.sh: fuzz/Cargo.lock is out of date; run 'cargo fetch' in fuzz/" \
        "(a minimal update) and commit fuzz/Cargo.lock" >&2
    exit 1
fi

flags=(--sanitizer "${FUZZ_SANITIZER:-leak}")

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(cargo fuzz list)
fi

start=$SECONDS
cargo fuzz build "${flags[@]}"
echo "fuzz.sh: built the fuzz targets in $((SECONDS - start)) s" >&2

passed=0
failed=0
for t in "${targets[@]}"; do
    mkdir -p "corpus-work/$t" "corpus/$t"
    log="$(mktemp)"
    # -rss_limit_mb: the session target holds a runtime and a spool; 2 GB is ample.
    # -timeout: one input running 25 s is a hang (they take milliseconds).
    if cargo fuzz run "${flags[@]}" "$t" "corpus-work/$t" "corpus/$t" -- \
        -max_total_time="$seconds" -timeout=25 -rss_limit_mb=2048 \
        -print_final_stats=1 >"$log" 2>&1; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
        echo "$t CRASHED; see fuzz/artifacts/$t/ and the log below" >&2
        # From the panic / sanitizer / timeout report on: it, the input (Base64) and
        # cargo-fuzz's reproduce commands (a plain tail misses the report).
        first="$(grep -n -m1 -E 'panicked at|ERROR: |ALARM: ' "$log" | cut -d: -f1)"
        sed -n "${first:-1},\$p" "$log" | head -150 >&2
    fi
    execs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)"
    echo "$t ${execs:-?} executions in ${seconds}s"
    rm -f "$log"
done
echo "fuzz: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
