#!/usr/bin/env bash
# The benchmarks cannot rot: `bench/run.sh --smoke` (tiny counts) runs every part end to end
# into a report in a temporary directory, and the report has every section, each with
# numbers where numbers belong. Nothing here looks at how fast anything was: timing belongs to
# the benchmark (`make bench`), never to a test.
set -euo pipefail

# shellcheck source=tests/lib/bed.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/bed.sh" # for tap_*; run.sh makes its own bed

REPO=$BED_REPO
LATEST=$REPO/bench/results/LATEST.md
tmp=$(mktemp -d "${TMPDIR:-/tmp}/rls-bench-smoke.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

fingerprint() { # of LATEST.md: it must not change
	if [[ -e $LATEST ]]; then sha256sum <"$LATEST"; else echo absent; fi
}

before=$(fingerprint)
rc=0
bash "$REPO/bench/run.sh" --smoke --out "$tmp/report.md" >"$tmp/stdout" 2>"$tmp/stderr" || rc=$?
tap_is "$rc" 0 "bench/run.sh --smoke exits 0"
if ((rc != 0)); then
	tap_diag "last lines of its stderr:"
	tap_diag "$(tail -n 30 "$tmp/stderr")"
fi
tap_ok "the report was written to --out" test -s "$tmp/report.md"
tap_ok "stdout is the same report" cmp -s "$tmp/stdout" "$tmp/report.md"
tap_is "$(fingerprint)" "$before" "--smoke leaves bench/results/LATEST.md alone"

R=$(cat "$tmp/report.md" 2>/dev/null || true)
N='[0-9]+(\.[0-9]+)?' # a number
has() { # DESC REGEX: some line of the report matches REGEX (extended)
	if grep -Eq -- "$2" <<<"$R"; then
		tap_ok "$1" true
	else
		tap_ok "$1" false
		tap_diag "no line of the report matches /$2/"
	fi
}

# The header: machine, kernel, date, and the warning about absolute times.
has "header: the machine's CPU and cores" '^- machine: .+, [0-9]+ cores, kernel '"$(uname -r)"'$'
has "header: what moves per-packet costs between hosts" \
	'^- host: hypervisor: (yes|no); pcid: (yes|no); meltdown: .+; spec_rstack_overflow: .+$'
has "header: the date" '^- date: [0-9]{4}-[0-9]{2}-[0-9]{2}T'
has "header: mode smoke" '^- mode: smoke'
has "header: absolute times are not a claim" 'not a claim'

# 1. Per-packet cost: every case with median, ratio, ns over floor, x HTTP floor, p90, mean.
has "section: per-packet cost" '^## Per-packet cost'
for c in floor http_floor floor_lookup ack body body_small request request_400 request_1k \
	body_model get request_slot rejected rejected_new; do
	has "per-packet cost: $c has numbers" \
		"^\| $c \| [^|]+ \| $N \| $N \| -?$N \| -?$N \| $N \| $N \|$"
done
for c in floor http_floor floor_lookup ack; do
	has "per-packet cost: $c with .repeat has numbers" "^\| $c \| $N \| $N \| -?$N \|$"
done
# 1a. The same cases in the data path.
for c in floor http_floor floor_lookup ack body body_small request request_400 request_1k \
	body_model get request_slot rejected rejected_new rejected_kept rejected_kept_ts; do
	has "data path: $c has numbers" "^\| $c \| $N \| $N \| -?$N \| -?$N \|$"
done
# 1b. The upstream side's TC egress: every case with median, ratio, no unexpected verdict.
has "section: per-packet cost of the upstream side" '^## Per-packet cost of the upstream side'
for c in floor ack request rejected; do
	has "upstream side: $c has numbers, every verdict as expected" "^\| $c \| [^|]+ \| $N \| $N \| 0 \|$"
done
for c in body_small body; do
	has "body scan: $c has bytes, ns, ns over ack and per byte" "^\| $c \| [0-9]+ \| $N \| -?$N \| -?$N \|$"
done
has "body scan: the slope per byte" "^Body scan per byte \(slope, body against body_small\): -?$N ns per byte\.$"

# 2. Scale: a row per size with load, reload, memory and the request's cost.
has "section: scale" '^## Scale'
for n in 1 1,000; do
	has "scale: $n accounts has numbers" \
		"^\| $n \| $N MB \| ($N s|> $N s \([^|]+\)) \| [^|]+ \| ($N MiB|n/a) \| $N MiB \| $N \| $N \|$"
done
has "scale: memory per map" '^\| rls_api_keys \| '"$N"' MiB'

# 2b. The metrics scrape: a row with the load, status and scrape times and their ratios.
has "section: metrics scrape" '^## Metrics scrape with large tables'
has "metrics scrape: 1000 accounts has numbers" "^\| 1000 \| $N \| $N \| $N \| $N \| $N \| $N \|$"

# 3. Accuracy: allowed, admitted and error for each limit.
has "section: accuracy" '^## Accuracy'
for l in 'rps' 'rpm \+ burst' 'rpd'; do
	has "accuracy: $l has allowed, admitted and error" "^\| $l \| [^|]+ \| [^|]+ \| [^|]*[0-9][^|]* \| [^|]*[0-9][^|]* \| [^|]*[0-9][^|]* \| -?[0-9]+ \|$"
done

# 4. The comparison: its own section when bench/compare.sh exists, a note otherwise.
has "section: comparison" '^## Comparison with nginx and HAProxy'
if [[ -f $REPO/bench/compare.sh ]]; then
	sec=$(sed -n '/^## Comparison with nginx/,/^## Summary/p' "$tmp/report.md")
	if grep -Eq '^\|.*[0-9]' <<<"$sec" && ! grep -q 'This part failed' <<<"$sec"; then
		tap_ok "comparison: a table with numbers" true
	else
		tap_ok "comparison: a table with numbers" false
		tap_diag "$(head -n 40 <<<"$sec")"
	fi
else
	has "comparison: says bench/compare.sh is missing" 'bench/compare.sh does not exist'
fi

# The summary table.
has "section: fleet" '^## A fleet of gateways through Redis'
has "fleet: a request's time with Redis stalled" "^\| stalled \(SIGSTOP\) \| [0-9]+ \| 0 \| $N \| $N \|$"
has "section: upstream latency" '^## An admitted request through nginx, with rlshape on the upstream side'
has "upstream latency: both kinds of round" '^\| ratio, loaded / none \| [0-9.]+ \| [0-9.]+ \|$'
has "section: summary" '^## Summary'
has "summary: the floor" "^\| no-op XDP program \(the floor\), single runs \| $N ns \|$"
has "summary: the admitted request start" "^\| request start, small headers, admitted \| $N ns \(x $N; \+-?$N ns over the floor\) \|$"
has "summary: the body scan per byte" "^\| body scan per byte: [^|]+ \| -?$N / -?$N ns \|$"
has "summary: the 429" "^\| request start rejected with the 429: x the HTTP floor, over the no-op \| $N ns \(x $N; \+-?$N ns over the floor\); x $N \|$"
has "summary: the data path" "^\| in the data path .* \| $N ns \(x $N the HTTP floor\) / $N ns \|$"
has "summary: request_400 as a ratio to the HTTP floor" \
	"^\| request start, a 400-byte header block: x the HTTP floor.* x $N \|$"
has "summary: scale rows" "^\| 1,000 accounts: .* \| (> )?$N s / .* / $N MiB / $N ns \(x $N\) \|$"
for l in 'rps' 'rpm \+ burst' 'rpd'; do
	has "summary: accuracy of $l" "^\| $l [^|]*\| [0-9]+( to [0-9]+)? \| [0-9]+ \| -?[0-9]+ \|$"
done
if grep -q 'n/a' <<<"$(sed -n '/^## Summary/,$p' <<<"$R")"; then
	tap_ok "summary: no figure is missing (n/a)" false
	tap_diag "$(sed -n '/^## Summary/,$p' <<<"$R" | grep 'n/a')"
else
	tap_ok "summary: no figure is missing (n/a)" true
fi

tap_done
