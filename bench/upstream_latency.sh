#!/usr/bin/env bash
# bench/upstream_latency.sh [--quick | --smoke] [--summary FILE]
#
# What rlshape on the upstream side adds to an admitted request's time (README, "Shaping"), on
# the bed of tests/lib/bed.sh: nginx on the gateway proxying in plain text to mock-upstream
# (a new connection to the upstream per request, whose request TC egress reads and decides),
# and a client asking one request at a time, each on a new connection to nginx. Rounds
# alternate: rlshape unloaded, then loaded with --side upstream on the gateway's
# upstream-facing veth (a table whose limit the run never reaches: every request is read,
# decided and admitted). Each round gives the median and 99th percentile of the time from
# connecting to the whole answer; the report has their medians over the rounds of each kind,
# and the ratio of rlshape's to none, both from this run.
#
# Measured, never pass/fail. Markdown on stdout; --summary appends
# "upstream_latency.KEY<TAB>VALUE" lines. The bed's setup messages go to stderr.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
summary=""
rounds=5 requests=1000 # full; --quick and --smoke take fewer
while (($#)); do
	case $1 in
	--quick) rounds=3 requests=300 ;;
	--smoke) rounds=1 requests=20 ;;
	--summary) summary=${2:?--summary needs a file} && shift ;;
	*) echo "upstream_latency.sh: unknown argument '$1'" >&2 && exit 2 ;;
	esac
	shift
done

# shellcheck source=tests/lib/suite.sh
source "$REPO/tests/lib/suite.sh"
suite_programs upstream_latency.sh
if ! command -v nginx >/dev/null; then
	echo "nginx is missing (tools/install-deps.sh installs it): not run."
	exit 0
fi
PORT=8000
PROXY_PORT=8080
{
	suite_upstream_side_bed
	suite_upstream "$PORT"
	suite_nginx_proxy "$PROXY_PORT" "$PORT"
} >&2

cat >"$BED_DIR/table.json" <<EOF
{
  "listen": { "ports": [$PORT] },
  "tiers": { "bench": { "*": { "rpd": 4000000000 } } },
  "accounts": { "bench": { "tier": "bench", "keys": ["bench-latency-key"] } }
}
EOF
cat >"$BED_DIR/client.py" <<'PY'
import http.client, json, sys, time

addr, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
body = json.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}]})
headers = {"Authorization": "Bearer bench-latency-key", "Content-Type": "application/json"}
times, failed = [], 0
for _ in range(n):
    t0 = time.perf_counter()
    conn = http.client.HTTPConnection(addr, port, timeout=10)
    conn.request("POST", "/v1/chat/completions", body, headers)
    answer = conn.getresponse()
    answer.read()
    conn.close()
    times.append(time.perf_counter() - t0)
    failed += answer.status != 200
times.sort()
print("%d %d %d" % (times[len(times) // 2] * 1e6, times[min(len(times) - 1, len(times) * 99 // 100)] * 1e6, failed))
PY

# round: "p50_us p99_us failed" of one round of requests.
round() {
	bed_client python3 "$BED_DIR/client.py" "$BED_GW_CLIENT4" "$PROXY_PORT" "$requests"
}
median() {
	sort -n | awk '{ v[NR] = $1 } END { print (NR % 2 ? v[(NR + 1) / 2] : int((v[NR / 2] + v[NR / 2 + 1]) / 2)) }'
}

: >"$BED_DIR/none" && : >"$BED_DIR/rlshape"
failed=0
round >/dev/null # nginx's and the upstream's first connections, unmeasured
for ((r = 1; r <= rounds; r++)); do
	round >>"$BED_DIR/none"
	rls load "$BED_DIR/table.json" --dev "$BED_GW_UP_DEV" --side upstream >/dev/null
	round >>"$BED_DIR/rlshape"
	rls unload --dev "$BED_GW_UP_DEV" >/dev/null
done
failed=$(awk '{ f += $3 } END { print f + 0 }' "$BED_DIR/none" "$BED_DIR/rlshape")

kind_row() { # NAME FILE: "| NAME | p50 | p99 |", the medians over its rounds
	echo "| $1 | $(awk '{ print $1 }' "$2" | median) | $(awk '{ print $2 }' "$2" | median) |"
}
p50_none=$(awk '{ print $1 }' "$BED_DIR/none" | median)
p50_rls=$(awk '{ print $1 }' "$BED_DIR/rlshape" | median)
p99_none=$(awk '{ print $2 }' "$BED_DIR/none" | median)
p99_rls=$(awk '{ print $2 }' "$BED_DIR/rlshape" | median)
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b ? a / b : 0 }'; }

echo "$rounds rounds of $requests requests each, one at a time, a new connection each, rlshape"
echo "unloaded and loaded in turn; $failed answers were not 200. Times in microseconds, from"
echo "connecting to nginx to the whole answer; medians over the rounds."
echo
echo "| rlshape on the upstream side | p50 (us) | p99 (us) |"
echo "| --- | --- | --- |"
kind_row "none" "$BED_DIR/none"
kind_row "loaded (--side upstream)" "$BED_DIR/rlshape"
echo "| ratio, loaded / none | $(ratio "$p50_rls" "$p50_none") | $(ratio "$p99_rls" "$p99_none") |"
if [[ -n $summary ]]; then
	printf 'upstream_latency.%s\t%s\n' p50_none_us "$p50_none" p50_rlshape_us "$p50_rls" \
		p50_ratio "$(ratio "$p50_rls" "$p50_none")" p99_ratio "$(ratio "$p99_rls" "$p99_none")" \
		failed "$failed" >>"$summary"
fi
