#!/usr/bin/env bash
# A short run of the packet fuzzer (fuzz/packet_stream.c, `make fuzz-packets` for a long one):
# requests from a grammar, mutated, cut into segments delivered in any order through the XDP
# and TC programs, checked against the reference after every input. One line per property,
# with how many times it was checked; any mismatch aborts the fuzzer and fails the suite. It
# cannot skip: a fuzzer that did not run is a failure.
set -euo pipefail

# shellcheck source=tests/lib/bed.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/bed.sh" # for tap_*; the fuzzer makes its own namespace

REPO=$BED_REPO
SECONDS_RUN=${RLS_PKTFUZZ_SECONDS:-30}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/rls-pktfuzz.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

rc=0
BUILD=${BUILD:-build} bash "$REPO/fuzz/run_packets.sh" --seconds "$SECONDS_RUN" \
	--corpus "$tmp/corpus" >"$tmp/out" 2>&1 || rc=$?
report=$(grep '^pktfuzz: ' "$tmp/out" || true)
execs=$(sed -n 's/^pktfuzz: executions \([0-9]*\).*/\1/p' <<<"$report")
tap_is "$rc" 0 "the packet fuzzer ran ${SECONDS_RUN}s without a mismatch (${execs:-no} executions)"
if ((rc != 0)); then
	tap_diag "its last lines:"
	tap_diag "$(grep -v '^ *#\|^  0x' "$tmp/out" | tail -n 25)"
fi
tap_like "${execs:-0}" '^[1-9][0-9]*$' "the fuzzer reports its executions"
[[ -z $report ]] || tap_diag "$report"
for p in 0 1 2 3 4 5 6; do
	line=$(grep "^pktfuzz: property $p checked" <<<"$report" || true)
	n=$(sed -n 's/.* checked \([0-9]*\) times.*/\1/p' <<<"$line")
	what=$(sed -n 's/.* times: //p' <<<"$line")
	tap_like "${n:-0}" '^[1-9][0-9]*$' "property $p checked ${n:-0} times: ${what:-not reported}"
done
tap_done
