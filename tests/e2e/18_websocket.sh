#!/usr/bin/env bash
# WebSocket sessions through a watched port (listen.websocket, README "WebSocket sessions"),
# end to end with Debian's python3-websockets on both sides (tests/lib/ws_session.py): an echo
# server in the upstream's namespace (routed) and one on the gateway itself (local, its
# socket looked up by XDP), each on the watched port. What is asserted, for both:
#   - with "tunnel": a session opens (the upstream's 101 goes through TC) and its three
#     messages come back; a second session of the same account (concurrency 1) while the
#     first is open gets 429; once the first closes, a new one opens and echoes;
#   - the server saw exactly the two sessions that opened, and every message of them;
#   - rlshape counted the sessions' upgrades as requests and their 101s as tunnels;
#   - after a reload to the default ("reset"), a session's first message resets the
#     connection toward the server (counted not_http_reset), and the server never gets the
#     message; the client is told with a reset of its own at its resend of that message
#     (client_resets) within 3 s, where it once heard nothing until its own timeout;
#   - so is curl with HTTP/2 prior knowledge under http2 "refuse": reset (exit 56), not
#     left to time out (28).
set -euo pipefail

# shellcheck source=tests/lib/suite.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/suite.sh"
suite_programs 18_websocket

TABLE=$BED_REPO/tests/e2e/data/websocket.json
TABLE_RESET=$BED_REPO/tests/e2e/data/websocket-reset.json
PORT=8000

missing=()
suite_need_websockets
suite_missing "${missing[@]}"

bed_up
suite_ws_server bed_up_ns "$BED_UP4" "in the upstream namespace"
UP_OUT=$BED_LAST_LOG
suite_ws_server bed_gw "$BED_GW_CLIENT4" "on the gateway itself"
GW_OUT=$BED_LAST_LOG

run_rls load "$TABLE" --dev "$BED_GW_DEV"
tap_is "$RC" 0 "rlshape load of a table with listen.websocket \"tunnel\" exits 0"
[[ $RC == 0 ]] || tap_diag "$ERR"
run_rls status --dev "$BED_GW_DEV"
tap_like "$OUT" $'\n  websocket  tunnel\n' "rlshape status says WebSocket sessions are tunneled"

# sessions NAME HOST LOG: the three sessions against HOST with NAME's key.
sessions() {
	local name=$1 host=$2 log=$3 out
	out=$(bed_client "$WS_PY" "$WS_SESSION" client "ws://$host:$PORT/v1/realtime" "rt-$name-key" \
		2>"$BED_DIR/$name.err" || true)
	[[ -s $BED_DIR/$name.err ]] && tap_diag "$(tail -5 "$BED_DIR/$name.err")"
	tap_is "$(grep '^A ' <<<"$out")" "A echoes=3" "$name: a session opens and its 3 messages come back"
	tap_is "$(grep '^B ' <<<"$out")" "B status=429" \
		"$name: a second session while the first is open gets 429 (concurrency 1)"
	tap_like "$(grep '^C ' <<<"$out")" '^C echoes=1 tries=[0-9]+$' \
		"$name: after the first closes, a new session opens and echoes"
	tap_is "$(grep -c "^session /v1/realtime Bearer rt-$name-key\$" "$log" || true)" 2 \
		"$name: the server saw exactly the two sessions that opened"
	tap_is "$(grep -c '^message ' "$log" || true)" 4 "$name: and every message of them"
}

snapshot_stats
tunnels_before=$(packets websocket_tunnels)
sessions routed "$BED_UP4" "$UP_OUT"
sessions local "$BED_GW_CLIENT4" "$GW_OUT"
snapshot_stats
tap_is "$(($(packets websocket_tunnels) - tunnels_before))" 4 \
	"rlshape counted a tunnel for each session that opened (A and C, routed and local)"
tap_is "$(awk '$1 == "routed" && $2 == "*" { print $10 }' "$BED_DIR/stats.txt")" "1" \
	"routed: its second session refused for concurrency, once"
tap_is "$(awk '$1 == "local" && $2 == "*" { print $10 }' "$BED_DIR/stats.txt")" "1" \
	"local: its second session refused for concurrency, once"

# The table's default: the upstream's 101 changes nothing, the first message resets.
run_rls load "$TABLE_RESET" --dev "$BED_GW_DEV"
tap_is "$RC" 0 "rlshape load of the same table without listen.websocket exits 0"
run_rls status --dev "$BED_GW_DEV" --json
policies=$(python3 -c '
import json, sys
d = json.load(sys.stdin)[0]
print(d["websocket"], d["http2"])' <<<"$OUT" 2>&1)
tap_is "$policies" "reset refuse" "rlshape status --json: websocket reset, http2 refuse"
snapshot_stats
resets_before=$(packets not_http_reset)
told_before=$(packets client_resets)
for pair in "routed $BED_UP4 $UP_OUT" "local $BED_GW_CLIENT4 $GW_OUT"; do
	read -r name host log <<<"$pair"
	messages_before=$(grep -c '^message ' "$log" || true)
	got=$(bed_client "$WS_PY" "$WS_SESSION" once "ws://$host:$PORT/v1/realtime" "rt-$name-key" \
		2>>"$BED_DIR/$name.err" || true)
	tap_is "$got" "reset" "$name, \"reset\": the session's first message, answered with a reset"
	[[ $got == "reset" ]] || tap_diag "$(tail -5 "$BED_DIR/$name.err")"
	tap_is "$(grep -c '^message ' "$log" || true)" "$messages_before" \
		"$name, \"reset\": the server never got that message"
done
snapshot_stats
tap_is "$(($(packets not_http_reset) - resets_before))" 2 \
	"\"reset\": both sessions reset at their first frame (not_http_reset)"

# HTTP/2 with prior knowledge, which the table refuses: the preface resets the connection, and
# curl is told at its resend, well before its own limit.
h2_before=$(packets http2_preface)
for pair in "routed $BED_UP4" "local $BED_GW_CLIENT4"; do
	read -r name host <<<"$pair"
	rc=0
	bed_client curl -sS --http2-prior-knowledge --max-time 10 -o /dev/null \
		"http://$host:$PORT/v1/models" 2>"$BED_DIR/h2-$name.err" || rc=$?
	tap_is "$rc" 56 "$name: curl --http2-prior-knowledge is reset (exit 56), not left to time out (28)"
	[[ $rc == 56 ]] || tap_diag "$(tail -3 "$BED_DIR/h2-$name.err")"
done
snapshot_stats
tap_is "$(($(packets http2_preface) - h2_before))" 2 "both prefaces refused (http2_preface)"
tap_is "$(($(packets client_resets) - told_before))" 4 \
	"rlshape reset each of the 4 clients at its resend (client_resets)"
tap_done
