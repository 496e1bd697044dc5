#!/usr/bin/env bash
# WebSocket sessions behind a TLS terminator (README "WebSocket sessions", "Topologies"): a
# client speaks wss:// to nginx on the gateway, which proxies the upgrade to the WebSocket
# server in the upstream's namespace, and rlshape runs on the gateway's upstream-facing side
# with listen.websocket "tunnel". Debian's python3-websockets on both ends
# (tests/lib/ws_session.py). What is asserted:
#   - a session opens through nginx (the upstream's 101 goes back through TC ingress) and its
#     three messages come back;
#   - a second session of the same account (concurrency 1) while the first is open gets the
#     429 nginx relays; once the first closes (nginx closes its side to the upstream), a new
#     one opens and echoes;
#   - the server saw exactly the sessions that opened, and every message of them; rlshape
#     counted a tunnel for each;
#   - the official OpenAI Node SDK's Realtime client (openai/realtime/ws) the same way: its
#     session gets session.created and, to its session.update, session.updated; a second
#     one while it is open gets the 429 as its error; a new one opens after it closes.
set -euo pipefail

# shellcheck source=tests/lib/suite.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/suite.sh"
suite_programs 19_websocket_tls

TABLE=$BED_REPO/tests/e2e/data/websocket_tls.json
PORT=8000     # the upstream's, watched
TLS_PORT=8443 # nginx's, for the client

missing=()
suite_need_tls_proxy
suite_need_websockets
suite_missing "${missing[@]}"

suite_upstream_side_bed
suite_ws_server bed_up_ns "$BED_UP4" "in the upstream namespace"
UP_OUT=$BED_LAST_LOG

NGX=$BED_DIR/nginx
CERT=$NGX/gw.crt
nginx_conf_head "$NGX"
suite_tls_cert "$NGX"
# The WebSocket proxying nginx documents: HTTP/1.1 to the upstream, the client's Upgrade
# passed on, Connection: upgrade.
cat >>"$NGX/nginx.conf" <<EOF
    access_log $NGX/logs/access.log;
    server {
        listen $BED_GW_CLIENT4:$TLS_PORT ssl;
        ssl_certificate $CERT;
        ssl_certificate_key $NGX/gw.key;
        location / {
            proxy_pass http://$BED_UP4:$PORT;
            proxy_http_version 1.1;
            proxy_set_header Upgrade \$http_upgrade;
            proxy_set_header Connection "upgrade";
        }
    }
}
EOF
suite_nginx_start "$NGX" "$TLS_PORT"

run_rls load "$TABLE" --dev "$BED_GW_UP_DEV" --side upstream
tap_is "$RC" 0 "rlshape load --side upstream of a table with listen.websocket \"tunnel\" exits 0"
[[ $RC == 0 ]] || tap_diag "$ERR"

snapshot_stats "$BED_GW_UP_DEV"
tunnels_before=$(packets websocket_tunnels)
out=$(WS_CAFILE=$CERT bed_client "$WS_PY" "$WS_SESSION" client \
	"wss://$BED_GW_CLIENT4:$TLS_PORT/v1/realtime" rt-tls-key 2>"$BED_DIR/client.err" || true)
[[ -s $BED_DIR/client.err ]] && tap_diag "$(tail -5 "$BED_DIR/client.err")"
tap_is "$(grep '^A ' <<<"$out")" "A echoes=3" \
	"a session opens through nginx and its 3 messages come back"
tap_is "$(grep '^B ' <<<"$out")" "B status=429" \
	"a second session while the first is open gets the 429 through nginx (concurrency 1)"
tap_like "$(grep '^C ' <<<"$out")" '^C echoes=1 tries=[0-9]+$' \
	"after the first closes, a new session opens and echoes"
tap_is "$(grep -c '^session /v1/realtime Bearer rt-tls-key$' "$UP_OUT" || true)" 2 \
	"the server saw exactly the two sessions that opened"
tap_is "$(grep -c '^message ' "$UP_OUT" || true)" 4 "and every message of them"
snapshot_stats "$BED_GW_UP_DEV"
tap_is "$(($(packets websocket_tunnels) - tunnels_before))" 2 \
	"rlshape counted a tunnel for each session that opened"
tap_is "$(awk '$1 == "tls" && $2 == "*" { print $10 }' "$BED_DIR/stats.txt")" "1" \
	"the second session refused for concurrency, once"

# The official OpenAI Node SDK's Realtime client, which speaks wss:// only.
if node_sdk_install >"$BED_DIR/npm.log" 2>&1; then
	tap_is ok ok "the OpenAI Node SDK and ws are installed under $NODE_DIR (npm ci)"
	out=$(NODE_EXTRA_CA_CERTS=$CERT bed_client node "$NODE_DIR/realtime.mjs" \
		"https://$BED_GW_CLIENT4:$TLS_PORT/v1" rt-sdk-key gpt-realtime 2>"$BED_DIR/node.err" || true)
	[[ -s $BED_DIR/node.err ]] && tap_diag "$(tail -5 "$BED_DIR/node.err")"
	tap_is "$(grep '^A ' <<<"$out")" "A events=session.created,session.updated" \
		"OpenAI SDK Realtime: a session opens, and answers its session.update"
	tap_like "$(grep '^B ' <<<"$out")" '^B error=.*429' \
		"OpenAI SDK Realtime: a second session while the first is open gets the 429"
	tap_like "$(grep '^C ' <<<"$out")" '^C events=session.created,session.updated tries=[0-9]+$' \
		"OpenAI SDK Realtime: after the first closes, a new session opens"
	sdk_sessions=$(grep -c '^session /v1/realtime?model=gpt-realtime Bearer rt-sdk-key$' \
		"$UP_OUT" || true)
	tap_is "$sdk_sessions" 2 "the server saw exactly the SDK's two sessions that opened"
else
	tap_is "npm ci failed" ok "the OpenAI Node SDK and ws are installed under $NODE_DIR (npm ci)"
	tap_diag "$(tail -5 "$BED_DIR/npm.log")"
fi
tap_done
