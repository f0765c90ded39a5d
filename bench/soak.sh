#!/usr/bin/env bash
# Reliability soak: the fault-injection tests of tests/relay_faults.rs, scaled up.
#   - crash loop: 20 senders, the relay SIGKILLed 20 times at random moments
#   - connection flood: 10 000 concurrent connections (RSS reported)
#   - reload storm: 100 contacts-table rewrites per second for 20 s
# Prints the figure lines that go into bench/RESULTS.md ("Reliability").
# Needs root (tmpfs mount, prlimit above the hard limit, 127.1.x.y sources).
#
# Environment: COEXIST_SEED=N replays a crash loop; KILLS, CONNECTIONS,
# STORM_SECONDS override the sizes.
set -euo pipefail
cd "$(dirname "$0")/.."

kills=${KILLS:-20}
connections=${CONNECTIONS:-10000}
storm=${STORM_SECONDS:-20}

cargo build -q -p relay --bin coexist-relay
cargo test -q -p coexist-e2e --test relay_faults --no-run

run() {
    # One test at a time: they share two cores and the figures must not mix.
    cargo test -q -p coexist-e2e --test relay_faults -- --exact "$1" \
        --nocapture --test-threads 1 2>&1 | tee -a "$log" |
        grep -E "^(crash loop|connection flood|reload storm|slowloris|non-reading)" || {
        echo "soak: $1 failed; full output in $log" >&2
        exit 1
    }
}

log=$(mktemp /tmp/coexist-soak.XXXXXX.log)
echo "soak: $(date -u +%FT%TZ) commit $(git rev-parse --short HEAD) nproc=$(nproc) log=$log"
COEXIST_CRASH_KILLS=$kills run crash_loop_loses_no_acknowledged_message
COEXIST_FLOOD_CONNECTIONS=$connections run connection_flood_stays_responsive_and_caps_with_421
COEXIST_STORM_SECONDS=$storm run reload_storm_routes_each_message_with_one_table
run slowloris_clients_are_cut_off_and_their_slots_freed
