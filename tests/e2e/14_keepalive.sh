#!/usr/bin/env bash
# A 429 that keeps the connection (issue 13), end to end: a keep-alive client is refused by the
# rpm smoothing, waits what retry-after-ms says, and is answered 200 on the same connection.
# Both kinds of upstream connection: routed (the upstream in its own namespace, the gateway
# forwarding) and local (the server on the gateway itself, whose socket XDP consults). What is
# asserted, from the client and the upstream's log:
#   - statuses 200, 429, 200 on one connection (one local port), the 429 saying keep-alive;
#   - the upstream got exactly the two admitted requests;
#   - the client's socket retransmitted nothing, and closed cleanly (FIN both ways, no RST);
#   - rlshape counted the 429 as kept open and renumbered the connection's segments;
#   - no connection left ESTABLISHED at the server, no entry left in rls_flows;
#   - the official OpenAI Node SDK, with its default retries: its second request is refused,
#     it retries after retry-after-ms and gets 200, opening no connection for the retry;
#   - curl asking to close: its 429 says close and closes first; no socket is left at either
#     end (TIME_WAIT included), and neither sends anything twice.
set -euo pipefail

# shellcheck source=tests/lib/suite.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/suite.sh"
suite_programs 14_keepalive

# rpm 60 with the default burst of 1: a second request at once is refused. One account for
# each connection, so that neither waits on the other's budget.
TABLE=$BED_REPO/tests/e2e/data/keepalive.json
PORT=8000

bed_up
UP_LOG=$BED_DIR/upstream.log
GW_LOG=$BED_DIR/gateway-server.log
bed_spawn bed_up_ns "$MOCK" --listen "$BED_UP4:$PORT" --log "$UP_LOG" \
	--ready-file "$BED_DIR/upstream.ready"
tap_ok "mock-upstream listens in the upstream namespace" bed_wait_file "$BED_DIR/upstream.ready" 20
bed_spawn bed_gw "$MOCK" --listen "$BED_GW_CLIENT4:$PORT" --log "$GW_LOG" \
	--ready-file "$BED_DIR/gateway.ready"
tap_ok "mock-upstream listens on the gateway itself" bed_wait_file "$BED_DIR/gateway.ready" 20

# RLS_XDP_MODE=skb: the same with generic XDP (15_keepalive_skb.sh).
out=$(rls load "$TABLE" --dev "$BED_GW_DEV" ${RLS_XDP_MODE:+--mode "$RLS_XDP_MODE"} 2>&1) && st=0 || st=$?
tap_is "$st" 0 "rlshape load exits 0"
[[ $st == 0 ]] || tap_diag "$out"

# run_client NAME HOST: the three requests on one connection, with the key paced-NAME-key; the
# client's lines in NAME.out.
run_client() {
	bed_client python3 "$BED_REPO/tests/lib/keepalive_client.py" "$2" "$PORT" "paced-$1-key" 3 \
		>"$BED_DIR/$1.out" 2>"$BED_DIR/$1.err" || true
}

# established_at NS_FUNC: client connections the server still holds.
established_at() {
	"$1" ss -Htn state established "( sport = :$PORT )" | grep -c '198\.18\.1\.' || true
}

check_connection() { # NAME WHERE LOG NS_FUNC
	local name=$1 where=$2 log=$3 ns=$4 lines statuses ports
	lines=$(cat "$BED_DIR/$name.out")
	statuses=$(awk '$1 ~ /^[0-9]+$/ { printf "%s ", $1 }' <<<"$lines")
	ports=$(awk '$1 ~ /^[0-9]+$/ { print $3 }' <<<"$lines" | sort -u | wc -l)
	tap_is "$statuses" "200 429 200 " "$where: 200, then 429, then 200"
	tap_is "$(awk '$1 == 429 { print $2 }' <<<"$lines")" keep-alive \
		"$where: the 429 says connection: keep-alive"
	[[ -s $BED_DIR/$name.err ]] && tap_diag "$(cat "$BED_DIR/$name.err")"
	tap_is "$ports" 1 "$where: all three on one connection"
	tap_is "$(awk '$1 == "retransmits" { print $2 }' <<<"$lines")" 0 \
		"$where: the client's socket retransmitted nothing"
	tap_is "$(awk '$1 == "closed" { print $2 }' <<<"$lines")" clean \
		"$where: the connection closed cleanly, FIN both ways"
	tap_is "$(grep -c "key=Bearer paced-$name-key" "$log" || true)" 2 \
		"$where: the server got exactly the two admitted requests"
	if bed_wait_until 10 test "$(established_at "$ns")" = 0; then
		tap_is 0 0 "$where: no connection left ESTABLISHED at the server"
	else
		tap_is "$(established_at "$ns")" 0 "$where: no connection left ESTABLISHED at the server"
	fi
}

run_client routed "$BED_UP4"
check_connection routed "routed (upstream behind the gateway)" "$UP_LOG" bed_up_ns
run_client local "$BED_GW_CLIENT4"
check_connection local "local (server on the gateway)" "$GW_LOG" bed_gw

# The official OpenAI Node SDK: two requests back to back; the second is refused, and the SDK
# retries it on its keep-alive connection.
client_opens() { # TCP connections the client's namespace has opened
	bed_client nstat -az -s TcpActiveOpens | awk '$1 == "TcpActiveOpens" { print $2 }'
}
if node_sdk_install >"$BED_DIR/npm.log" 2>&1; then
	# How many connections the SDK opens for two requests when nothing is refused (its
	# pool may open a second one while the first is still being released).
	opens_before=$(client_opens)
	got=$(bed_client node "$NODE_DIR/sdk_retry.mjs" "http://$BED_UP4:$PORT/v1" open-sdk-key 2 \
		2>"$BED_DIR/node.err" || true)
	opens_free=$(($(client_opens) - opens_before))
	tap_is "$got" "sent=2 ok=2 failed=0 statuses=200,200" "OpenAI Node SDK: two requests admitted"
	opens_before=$(client_opens)
	got=$(bed_client node "$NODE_DIR/sdk_retry.mjs" "http://$BED_UP4:$PORT/v1" paced-sdk-key 2 \
		2>>"$BED_DIR/node.err" || true)
	[[ -s $BED_DIR/node.err ]] && tap_diag "$(cat "$BED_DIR/node.err")"
	tap_is "$got" "sent=2 ok=2 failed=0 statuses=200,429,200" \
		"OpenAI Node SDK: 200, then 429, retried after retry-after-ms: 200"
	tap_is "$(($(client_opens) - opens_before))" "$opens_free" \
		"OpenAI Node SDK: its retry opened no connection ($opens_free for two requests, as unrefused)"
	tap_is "$(grep -c "key=Bearer paced-sdk-key" "$UP_LOG" || true)" 2 \
		"OpenAI Node SDK: the upstream got the two admitted requests"
else
	tap_is "npm ci failed" ok "the OpenAI Node SDK is installed under $NODE_DIR (npm ci)"
	tap_diag "$(tail -5 "$BED_DIR/npm.log")"
fi

# A client that asks to close (curl -H 'Connection: close', as wrk's new-connection runs send):
# its 429 closes first, its FIN goes through to the server, and the server's FIN is
# acknowledged for it. Nothing is sent twice and no socket is left on either side, TIME_WAIT
# included (both ends closed second).
retrans() { # NS_FUNC: TCP segments its namespace has sent again
	"$1" nstat -az -s TcpRetransSegs | awk '$1 == "TcpRetransSegs" { print $2 }'
}
sockets_of() { # NS_FUNC LOCAL_PORT: the TCP sockets of the client's connection from that port
	"$1" ss -Htan "( sport = :$2 or dport = :$2 )"
}
closing_client() { # NAME HOST NS_FUNC LOCAL_PORT
	local name=$1 host=$2 ns=$3 lport=$4 first second r_client r_server
	first=$(bed_client curl -sS -o /dev/null -w '%{http_code}' -H 'Connection: close' \
		-H "Authorization: Bearer closer-$name-key" "http://$host:$PORT/v1/models" || true)
	r_client=$(retrans bed_client)
	r_server=$(retrans "$ns")
	second=$(bed_client curl -sS --local-port "$lport" -D "$BED_DIR/closer-$name.h" \
		-o /dev/null -w '%{http_code}' -H 'Connection: close' \
		-H "Authorization: Bearer closer-$name-key" "http://$host:$PORT/v1/models" || true)
	tap_is "$first $second" "200 429" "$name, Connection: close: 200, then 429"
	tap_like "$(tr -d '\r' <"$BED_DIR/closer-$name.h")" "connection: close" \
		"$name: the 429 says connection: close"
	bed_wait_until 5 test -z "$(sockets_of bed_client "$lport")" || true
	tap_is "$(sockets_of bed_client "$lport")" "" \
		"$name: the 429's connection left no socket at the client, TIME_WAIT included"
	bed_wait_until 5 test -z "$(sockets_of "$ns" "$lport")" || true
	tap_is "$(sockets_of "$ns" "$lport")" "" "$name: and none at the server"
	tap_is "$(($(retrans bed_client) - r_client)) $(($(retrans "$ns") - r_server))" "0 0" \
		"$name: nothing sent again, by the client or the server"
}
closing_client routed "$BED_UP4" bed_up_ns 40731
closing_client local "$BED_GW_CLIENT4" bed_gw 40732

# Every connection is closed by both sides: their renumbering is over, and their flows went
# with the last ACK (rls_flows is not LRU: closed connections must not fill it).
flow_count() {
	bpftool -j map dump pinned "$BED_PIN_DIR/rls_flows" | python3 -c 'import json, sys; print(len(json.load(sys.stdin)))'
}
flows_gone() { [[ $(flow_count) == 0 ]]; }
bed_wait_until 10 flows_gone || true
tap_is "$(flow_count)" 0 "no entry left in rls_flows for the closed connections"

snapshot_stats
tap_diag "packets: $(awk '$1 == "packets" && $3 != 0 { printf "%s=%s ", $2, $3 }' "$BED_DIR/stats.txt")"
tap_is "$(packets reply_kept_open)" 3 "rlshape: every 429 kept its connection"
tap_is "$(packets upstream_resets)" 0 "rlshape: no reset toward an upstream"
tap_is "$(packets upstream_fin_acked)" 2 "rlshape: the servers' FINs acknowledged for the closing clients"
tap_ok "rlshape: the connections' segments were renumbered ($(packets seq_translated))" \
	test "$(packets seq_translated)" -gt 0

run_rls unload --dev "$BED_GW_DEV"
tap_is "$RC" 0 "rlshape unload exits 0"
tap_done
