#!/usr/bin/env bash
# The daemon's /metrics endpoint scraped by a real Prometheus (Debian's prometheus package),
# started by this test in the gateway's namespace, on its loopback, with a config and storage
# of its own under the bed's directory. Traffic from the client namespace, then the series
# are read back through Prometheus's HTTP API. What is asserted:
#   1. the endpoint answers on 127.0.0.1 (the default), `promtool check metrics` passes on a
#      scrape, a wrong address, path or account cap is refused with a message, and a scraper
#      that stalls mid-request does not hold up another scrape;
#   2. once Prometheus holds a sample scraped after the traffic ended (polled through its API,
#      never waited for with a sleep), sum(rlshape_requests_admitted_total) equals the requests
#      in the upstream's log and sum(rlshape_requests_rejected_total) the 429s the clients got,
#      per model and reason too (rpd windows: exact);
#   3. per-account series: none by default; with --metrics-accounts 1, only the account with
#      the most requests;
#   4. map fill ratios and the table's load time are there, and match `rlshape status`.
set -euo pipefail

# shellcheck source=tests/lib/suite.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/suite.sh"
suite_programs 35_metrics

TABLE=$BED_REPO/tests/e2e/data/limits.json
PORT=8000
METRICS=127.0.0.1:9473 # the daemon's default --metrics-listen, inside the gateway's namespace
PROM=127.0.0.1:9090

for tool in prometheus promtool; do
	if ! command -v "$tool" >/dev/null; then
		echo "35_metrics: $tool is missing (tools/install-deps.sh installs prometheus)" >&2
		exit 1
	fi
done

suite_one_day 120 # rpd windows are exact only inside one UTC day

bed_up
suite_upstream "$PORT"
out=$(rls load "$TABLE" --dev "$BED_GW_DEV" 2>&1) && st=0 || st=$?
tap_is "$st" 0 "rlshape load exits 0 ($out)"

start_daemon() { # [OPTIONS]
	bed_spawn bed_gw "$RLS" daemon --dev "$BED_GW_DEV" "$@"
	DAEMON_PID=$BED_LAST_PID
	DAEMON_LOG=$BED_LAST_LOG
	bed_wait_until 10 grep -q 'settling token usage' "$DAEMON_LOG"
}
stop_daemon() {
	kill -TERM "$DAEMON_PID"
	wait "$DAEMON_PID" && st=0 || st=$?
}
scrape() { # the endpoint's body, into $BED_DIR/scrape.txt
	bed_gw curl -sS --noproxy '*' --max-time 10 -o "$BED_DIR/scrape.txt" -w '%{http_code}' \
		"http://$METRICS/metrics"
}
sample() { # NAME{LABELS} exactly as in the scrape: its value
	awk -v s="$1" '$1 == s { print $2 }' "$BED_DIR/scrape.txt"
}

# ---- 1. the endpoint ------------------------------------------------------------------------
start_daemon
tap_like "$(cat "$DAEMON_LOG")" "metrics on http://$METRICS/metrics" \
	"the daemon says where it serves metrics"
tap_is "$(scrape)" 200 "GET /metrics on $METRICS answers 200"
tap_ok "promtool check metrics passes on a scrape" \
	bash -c "promtool check metrics <'$BED_DIR/scrape.txt'"
code=$(bed_gw curl -sS --noproxy '*' -o /dev/null -w '%{http_code}' "http://$METRICS/other")
tap_is "$code" 404 "another path is 404"
ctype=$(bed_gw curl -sS --noproxy '*' -o /dev/null -w '%{content_type}' "http://$METRICS/metrics")
tap_is "$ctype" "text/plain; version=0.0.4; charset=utf-8" "content type of the text format 0.0.4"
out=$(bed_gw "$RLS" daemon --dev "$BED_GW_DEV" --metrics-listen 127.0.0.1:x 2>&1) && st=0 || st=$?
tap_is "$st" 2 "--metrics-listen 127.0.0.1:x exits 2"
tap_like "$out" "metrics-listen .*port must be a number" "... naming the option and what is wrong"
out=$(bed_gw "$RLS" daemon --dev "$BED_GW_DEV" --metrics-accounts 1001 2>&1) && st=0 || st=$?
tap_is "$st" 2 "--metrics-accounts 1001 (past the cap of 1000) exits 2"
# A scraper that sends half a request and stalls holds up neither another scrape nor the daemon.
bed_spawn bed_gw python3 -c 'import socket, time
s = socket.create_connection(("127.0.0.1", 9473))
s.sendall(b"GET /metrics HTTP/1.1\r\nhost: x\r\n")
time.sleep(60)'
stalled_connected() {
	# An ESTABLISHED (01) connection to the metrics port, in the gateway's namespace.
	bed_gw awk -v port=":$(printf '%04X' "${METRICS##*:}")" \
		'substr($3, 9) == port && $4 == "01" { found = 1 } END { exit !found }' /proc/net/tcp
}
tap_ok "a stalled scraper is connected" bed_wait_until 10 stalled_connected
tap_is "$(scrape)" 200 "... and another scrape is answered meanwhile"
kill "$BED_LAST_PID"
out=$(bed_gw "$RLS" daemon --dev "$BED_GW_DEV" 2>&1) && st=0 || st=$?
tap_is "$st" 1 "a second daemon on the same address exits 1"
tap_like "$out" "cannot listen.*--metrics-listen" "... saying so and what to give"

# ---- 2. Prometheus scrapes during traffic ------------------------------------------------
mkdir -p "$BED_DIR/prom"
cat >"$BED_DIR/prometheus.yml" <<YML
global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: rlshape
    static_configs:
      - targets: ['$METRICS']
YML
tap_ok "promtool check config passes on the test's configuration" \
	promtool check config "$BED_DIR/prometheus.yml"
bed_spawn bed_gw prometheus --config.file="$BED_DIR/prometheus.yml" \
	--storage.tsdb.path="$BED_DIR/prom" --web.listen-address="$PROM" --log.level=warn
PROM_LOG=$BED_LAST_LOG

# prom_query QUERY: the instant query's first value ("" when it has none).
cat >"$BED_DIR/prom_value.py" <<'PY'
import json, sys
doc = json.load(sys.stdin)
res = doc.get("data", {}).get("result", [])
print(res[0]["value"][1] if doc.get("status") == "success" and res else "")
PY
prom_query() {
	bed_gw curl -sS --noproxy '*' --max-time 5 "http://$PROM/api/v1/query" \
		--data-urlencode "query=$1" 2>/dev/null | python3 "$BED_DIR/prom_value.py" 2>/dev/null || true
}
prom_up() {
	[[ $(prom_query 'up{job="rlshape"}') == 1 ]]
}
tap_ok "Prometheus scrapes the daemon (up == 1)" bed_wait_until 60 prom_up

loadgen() { # ARGS...: its one-line summary
	bed_client "$LOADGEN" --target "$BED_UP4:$PORT" "$@" 2>&1 || true
}
# acme (tier pro): gpt-small rpd 10, gpt-big rpd 6; unknown clients (tier free): "*" rpd 3.
small=$(loadgen --requests 25 --connections 2 --key acme-plain-key-1 --model gpt-small)
big=$(loadgen --requests 9 --connections 1 --key acme-plain-key-1 --model gpt-big)
anon=$(loadgen --requests 7 --connections 1 --model other-model)
TRAFFIC_END=$(date +%s.%N)
tap_diag "loadgen: gpt-small $small; gpt-big $big; no key $anon"
field() { # SUMMARY KEY
	sed -n "s/.*\\b$2=\\([0-9]*\\).*/\\1/p" <<<"$1"
}
rejected_by_clients=$(($(field "$small" status_429) + $(field "$big" status_429) + $(field "$anon" status_429)))
admitted_upstream=$(log_count 'POST ')
tap_is "$admitted_upstream $rejected_by_clients" "$((10 + 6 + 3)) $((15 + 3 + 4))" \
	"the upstream logged 19 requests, the clients got 22 429s (the table's rpd limits)"

# The newest sample Prometheus holds was scraped after the traffic ended.
scraped_after_traffic() {
	local t
	t=$(prom_query 'min(timestamp(rlshape_requests_admitted_total))')
	[[ -n $t ]] && python3 -c "import sys; sys.exit(0 if float('$t') > float('$TRAFFIC_END') else 1)"
}
tap_ok "Prometheus holds a scrape taken after the traffic ended" bed_wait_until 60 scraped_after_traffic
got=$(prom_query 'sum(rlshape_requests_admitted_total)')
tap_is "$got" "$admitted_upstream" "Prometheus: sum(rlshape_requests_admitted_total) = the upstream's log ($admitted_upstream)"
got=$(prom_query 'sum(rlshape_requests_rejected_total)')
tap_is "$got" "$rejected_by_clients" "Prometheus: sum(rlshape_requests_rejected_total) = the clients' 429s ($rejected_by_clients)"
tap_is "$(prom_query 'rlshape_requests_admitted_total{model="gpt-small"}')" \
	"$(log_count 'model=gpt-small')" "Prometheus: admitted gpt-small = the upstream's gpt-small lines"
tap_is "$(prom_query 'rlshape_requests_rejected_total{model="gpt-small",reason="rpd"}')" 15 \
	"Prometheus: rejected gpt-small by rpd = 15"
tap_is "$(prom_query 'rlshape_requests_rejected_total{model="*",reason="rpd"}')" 4 \
	"Prometheus: rejected \"*\" (the unknown client's model) by rpd = 4"
tap_is "$(prom_query 'sum(rlshape_account_requests_admitted_total)')" "" \
	"no per-account series by default"

# ---- 3. per-account series, opt-in and capped ----------------------------------------------
stop_daemon
tap_is "$st" 0 "the daemon exits 0 on SIGTERM"
start_daemon --metrics-accounts 1
tap_is "$(scrape)" 200 "GET /metrics with --metrics-accounts 1"
accounts=$(grep -o '^rlshape_account_requests_admitted_total{account="[^"]*"' "$BED_DIR/scrape.txt" |
	sort -u | sed 's/.*account="//; s/"$//' | tr '\n' ' ')
tap_is "$accounts" "acme " "only the account with the most requests (acme: 34 of 41) has series"
tap_is "$(sample 'rlshape_account_requests_rejected_total{account="acme",model="gpt-small",reason="rpd"}')" 15 \
	"acme's gpt-small rpd rejections: 15"
tap_ok "promtool check metrics passes with per-account series" \
	bash -c "promtool check metrics <'$BED_DIR/scrape.txt'"

# ---- 4. maps and table -------------------------------------------------------------------------
tap_like "$(sample 'rlshape_map_max_entries{map="rls_flows"}')" '^262144$' "rls_flows' max_entries (RLS_MAX_FLOWS)"
tap_like "$(sample 'rlshape_map_fill_ratio{map="rls_counters"}')" '^[0-9.e-]+$' "rls_counters' fill ratio is there"
tap_is "$(sample 'rlshape_map_entries{map="rls_accounts"}')" 6 "rls_accounts holds the table's 6 accounts"
tap_is "$(sample rlshape_daemon_ring_size_bytes) $(sample rlshape_daemon_ring_lag_bytes)" "16777216 0" \
	"the ring: 16 MiB, nothing unsettled (this table meters no tokens)"
loaded=$(rls status --dev "$BED_GW_DEV" --json | python3 -c '
import calendar, json, sys, time
print(calendar.timegm(time.strptime(json.load(sys.stdin)[0]["loaded_at"], "%Y-%m-%dT%H:%M:%SZ")))')
tap_is "$(sample rlshape_table_loaded_timestamp_seconds)" "$loaded" "the table's load time = rlshape status' loaded_at"
tap_diag "$(grep -E '^rlshape_(requests|daemon_ring|table|map_fill_ratio\{map="rls_(counters|flows)")' "$BED_DIR/scrape.txt" | head -20)"
stop_daemon
tap_is "$st" 0 "the daemon exits 0 on SIGTERM"
if grep -qiE 'level=(error|fatal)' "$PROM_LOG"; then
	tap_diag "$(tail -5 "$PROM_LOG")"
fi
tap_done
