#!/usr/bin/env bash
# The packet fuzzer's short run with a line per property (fuzz/packet_stream.c; `fuzz/run.sh
# --seconds N packet_stream` for a long one): requests from a grammar, mutated, cut into
# segments delivered in any order through the XDP and TC programs, checked against the
# reference after every input. fuzz/run.sh runs it (as it runs every harness); this suite asks
# it for the fuzzer's report and says how often each property was checked. Any mismatch aborts
# the fuzzer and fails the suite; it cannot skip: a fuzzer that did not run is a failure.
set -euo pipefail

# shellcheck source=tests/lib/bed.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/bed.sh" # for tap_*; the fuzzer makes its own namespace

REPO=$BED_REPO
BUILD=${BUILD:-build}
[[ $BUILD == /* ]] || BUILD=$REPO/$BUILD
SECONDS_RUN=${RLS_PKTFUZZ_SECONDS:-30}

rc=0
out=$(cd "$REPO" && BUILD=$BUILD FUZZ_CHECK_SECONDS=$SECONDS_RUN PKTFUZZ_REPORT=1 \
	bash fuzz/run.sh packet_stream 2>&1) || rc=$?
result=$(grep -E '^(not )?ok 1 - packet_stream' <<<"$out" || true)
tap_is "$rc" 0 "fuzz/run.sh packet_stream for ${SECONDS_RUN}s: ${result#*- }"
((rc == 0)) || tap_diag "$out"
report=$(grep '^pktfuzz: ' "$BUILD/fuzz/logs/packet_stream.log" 2>/dev/null || true)
execs=$(sed -n 's/^pktfuzz: executions \([0-9]*\).*/\1/p' <<<"$report")
tap_like "${execs:-0}" '^[1-9][0-9]*$' "the fuzzer reports ${execs:-no} executions"
[[ -z $report ]] || tap_diag "$report"
for p in 0 1 2 3 4 5 6 7; do
	line=$(grep "^pktfuzz: property $p checked" <<<"$report" || true)
	n=$(sed -n 's/.* checked \([0-9]*\) times.*/\1/p' <<<"$line")
	what=$(sed -n 's/.* times: //p' <<<"$line")
	tap_like "${n:-0}" '^[1-9][0-9]*$' "property $p checked ${n:-0} times: ${what:-not reported}"
done
tap_done
