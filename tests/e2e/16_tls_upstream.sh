#!/usr/bin/env bash
# The upstream side (issue 16): TLS ends on the gateway, in a real nginx (a certificate this
# suite makes with openssl), which proxies in plain text to mock-upstream in the upstream's
# namespace. XDP on the client-facing interface would see only ciphertext; rlshape is loaded
# with --side upstream on the gateway's upstream-facing veth, where TC egress reads nginx's
# requests. What is asserted:
#   - status, stats and unload know the side; the filters are gone after unload;
#   - curl over HTTPS: two requests admitted, the third gets the 429 through nginx, with its
#     headers (retry-after, retry-after-ms, x-ratelimit-*, x-request-id, x-should-retry) and
#     its OpenAI-style error body;
#   - the official OpenAI Node SDK over HTTPS (NODE_EXTRA_CA_CERTS): its second request is
#     refused, it retries after retry-after-ms and succeeds;
#   - clients without a key are told apart by the address nginx writes in X-Real-IP (the
#     table's identify.client_address_header), not counted as nginx's one address;
#   - the upstream's log has exactly the admitted requests;
#   - no socket is left half-open on the upstream port (CLOSE-WAIT, FIN-WAIT, ESTABLISHED),
#     in the gateway's namespace or the upstream's, once the clients are done;
#   - nginx with a keep-alive pool to the upstream: the 429 closes its pooled connection, and
#     nothing is left closing on either side;
#   - the daemon runs on this side, and its SIGHUP reload keeps the side.
set -euo pipefail

# shellcheck source=tests/lib/suite.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/suite.sh"
suite_programs 16_tls_upstream
TABLE=$BED_REPO/tests/e2e/data/tls_upstream.json
PORT=8000     # the upstream's, watched
TLS_PORT=8443 # nginx's, for the clients

missing=()
suite_need_tls_proxy
suite_missing "${missing[@]}"

suite_upstream_side_bed
suite_upstream "$PORT" "[$BED_UP6]"

# ---- TLS: a self-signed certificate for the gateway's address, and nginx ---------------------

NGX=$BED_DIR/nginx
CERT=$NGX/gw.crt
nginx_conf_head "$NGX"
suite_tls_cert "$NGX"
cat >>"$NGX/nginx.conf" <<EOF
    access_log $NGX/logs/access.log;
    upstream pool {
        server $BED_UP4:$PORT;
        keepalive 4;
    }
    server {
        listen $BED_GW_CLIENT4:$TLS_PORT ssl;
        listen [$BED_GW_CLIENT6]:$TLS_PORT ssl;
        ssl_certificate $CERT;
        ssl_certificate_key $NGX/gw.key;
        # nginx's default: HTTP/1.0 to the upstream, a connection per request.
        location / {
            proxy_pass http://$BED_UP4:$PORT;
            # The client's address, written over any X-Real-IP the client sent.
            proxy_set_header X-Real-IP \$remote_addr;
        }
        # The same to the upstream's IPv6 address.
        location /v6/ {
            proxy_pass http://[$BED_UP6]:$PORT/;
            proxy_set_header X-Real-IP \$remote_addr;
        }
        # The same through a keep-alive pool (HTTP/1.1 to the upstream).
        location /pooled/ {
            proxy_pass http://pool/;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header X-Real-IP \$remote_addr;
        }
    }
}
EOF
suite_nginx_start "$NGX" "$TLS_PORT"

# ---- rlshape on the upstream side ------------------------------------------------------------

run_rls load "$TABLE" --dev "$BED_GW_UP_DEV" --side upstream
tap_is "$RC" 0 "rlshape load --side upstream exits 0"
[[ $RC == 0 ]] || tap_diag "$ERR"
tap_like "$OUT" "on $BED_GW_UP_DEV \\(upstream side\\)" "load says it is the upstream side"
run_rls status --dev "$BED_GW_UP_DEV"
tap_like "$OUT" "attached   upstream side: TC egress program [1-9][0-9]*, TC ingress program [1-9]" \
	"status shows both TC programs attached"
run_rls load "$TABLE" --dev "$BED_GW_UP_DEV" --side client
tap_is "$RC" 1 "a load of the client side over the upstream side is refused"
tap_like "$ERR" "loaded on $BED_GW_UP_DEV on the upstream side" "saying which side is loaded"
# What the daemon's SIGHUP runs: a load without --side keeps the side loaded.
run_rls load "$TABLE" --dev "$BED_GW_UP_DEV"
tap_like "$RC $OUT" "^0 .*reloaded .* on $BED_GW_UP_DEV \\(upstream side\\)" \
	"a load without --side reloads the upstream side"

# ---- curl over HTTPS -------------------------------------------------------------------------

URL=https://$BED_GW_CLIENT4:$TLS_PORT/v1/chat/completions
BODY='{"model":"gpt-small","messages":[{"role":"user","content":"hi"}]}'
https_post() { # KEY HEADERS_FILE BODY_FILE: the status code
	bed_client curl -sS --cacert "$CERT" --max-time 10 -D "$2" -o "$3" -w '%{http_code}' \
		-H "Authorization: Bearer $1" -H 'Content-Type: application/json' -d "$BODY" \
		"$URL" 2>>"$BED_DIR/curl.err" || true
}
statuses=""
for i in 1 2 3; do
	statuses+="$(https_post tls-curl-key "$BED_DIR/h$i" "$BED_DIR/b$i") "
done
tap_is "$statuses" "200 200 429 " "curl over HTTPS: 200, 200, then 429 through nginx"
[[ -s $BED_DIR/curl.err ]] && tap_diag "$(cat "$BED_DIR/curl.err")"
headers=$(tr -d '\r' <"$BED_DIR/h3" | tr 'A-Z' 'a-z')
for h in "retry-after: [0-9]+" "retry-after-ms: [0-9]+" "x-ratelimit-limit-requests: 2" \
	"x-ratelimit-remaining-requests: 0" "x-request-id: req_[0-9a-f]{16}" "x-should-retry: true"; do
	tap_like "$headers" "$h" "the 429 through nginx has $h"
done
tap_is "$(python3 -c 'import json,sys; e=json.load(open(sys.argv[1]))["error"]; print(e["code"], e["type"])' \
	"$BED_DIR/b3" 2>&1)" "rate_limit_exceeded requests" "its body is the OpenAI-style error"

# nginx to the upstream over IPv6: the reset and the 429 written over IPv6 segments.
URL=https://$BED_GW_CLIENT4:$TLS_PORT/v6/v1/chat/completions
statuses=""
for i in 7 8 9; do
	statuses+="$(https_post tls-v6-key "$BED_DIR/h$i" "$BED_DIR/b$i") "
done
tap_is "$statuses" "200 200 429 " "nginx to the upstream over IPv6: 200, 200, then 429"
tap_like "$(tr -d '\r' <"$BED_DIR/h9" | tr 'A-Z' 'a-z')" "x-ratelimit-limit-requests: 2" \
	"the IPv6 429 has its headers"
URL=https://$BED_GW_CLIENT4:$TLS_PORT/v1/chat/completions

# ---- clients without a key, told apart by X-Real-IP ------------------------------------------

# anon: one request a minute per client. Over IPv4 twice, then over IPv6: a second client to
# rlshape only if it reads X-Real-IP (to the upstream, both come from nginx's one address).
anon_status() { # URL_HOST: the status of a keyless request
	bed_client curl -sS --cacert "$CERT" --max-time 10 -o /dev/null -w '%{http_code}' \
		-H 'X-Real-IP: 198.18.9.9' -H 'Content-Type: application/json' -d "$BODY" \
		"https://$1:$TLS_PORT/v1/chat/completions" 2>>"$BED_DIR/curl.err" || true
}
got="$(anon_status "$BED_GW_CLIENT4") $(anon_status "$BED_GW_CLIENT4") $(anon_status "[$BED_GW_CLIENT6]")"
tap_is "$got" "200 429 200" \
	"keyless: 200, 429 for the same client, 200 for another (by X-Real-IP, not nginx's address)"

# ---- the official OpenAI Node SDK over HTTPS -------------------------------------------------

if node_sdk_install >"$BED_DIR/npm.log" 2>&1; then
	got=$(bed_client env NODE_EXTRA_CA_CERTS="$CERT" node "$NODE_DIR/sdk_retry.mjs" \
		"https://$BED_GW_CLIENT4:$TLS_PORT/v1" tls-sdk-key 2 2>"$BED_DIR/node.err" || true)
	[[ -s $BED_DIR/node.err ]] && tap_diag "$(cat "$BED_DIR/node.err")"
	tap_is "$got" "sent=2 ok=2 failed=0 statuses=200,429,200" \
		"OpenAI Node SDK over HTTPS: 200, then 429, retried after retry-after-ms: 200"
else
	tap_is "npm ci failed" ok "the OpenAI Node SDK is installed under $NODE_DIR (npm ci)"
	tap_diag "$(tail -5 "$BED_DIR/npm.log")"
fi

# ---- forwarded traffic -----------------------------------------------------------------------

# The gateway also routes the client straight to the upstream: those segments leave by the same
# interface with no local socket behind them, and pass unread (the client-facing side's XDP
# is what reads forwarded requests).
got=$(post_status "http://$BED_UP4:$PORT/v1/models" -H 'Authorization: Bearer forwarded-key')
tap_is "$got" 200 "a request forwarded through the gateway, not from nginx: passed"

# ---- what reached the upstream, and what is left ---------------------------------------------

tap_is "$(log_count 'key=Bearer tls-curl-key')" 2 "the upstream got curl's two admitted requests"
tap_is "$(log_count 'key=Bearer tls-sdk-key')" 2 "the upstream got the SDK's two admitted requests"
tap_is "$(log_count 'key=Bearer forwarded-key')" 1 "and the forwarded one"
tap_is "$(log_count 'key=Bearer tls-v6-key')" 2 "and the two admitted over IPv6"
half_open() { # NS_FUNC: sockets on the upstream port neither closed nor in TIME-WAIT
	"$1" ss -Htan "( sport = :$PORT or dport = :$PORT )" |
		awk '$1 != "LISTEN" && $1 != "TIME-WAIT"' || true
}
none_half_open() { [[ -z $(half_open bed_gw) && -z $(half_open bed_up_ns) ]]; }
bed_wait_until 10 none_half_open || true
tap_is "$(half_open bed_gw)" "" "the gateway: no socket half-open on the upstream port"
tap_is "$(half_open bed_up_ns)" "" "the upstream: no socket half-open on its port"

# ---- nginx's keep-alive pool to the upstream ---------------------------------------------------

URL=https://$BED_GW_CLIENT4:$TLS_PORT/pooled/v1/chat/completions
gw_opens() { # TCP connections the gateway's namespace has opened
	bed_gw nstat -az -s TcpActiveOpens | awk '$1 == "TcpActiveOpens" { print $2 }'
}
opens_before=$(gw_opens)
statuses=""
for i in 4 5 6; do
	statuses+="$(https_post tls-pool-key "$BED_DIR/h$i" "$BED_DIR/b$i") "
done
tap_is "$statuses" "200 200 429 " "through nginx's keep-alive pool: 200, 200, 429"
tap_is "$(($(gw_opens) - opens_before))" 1 \
	"all three on one pooled connection to the upstream (the 429 came on a reused one)"
tap_like "$(tr -d '\r' <"$BED_DIR/h6" | tr 'A-Z' 'a-z')" "x-ratelimit-limit-requests: 2" \
	"the pooled 429 has its headers"
tap_is "$(log_count 'key=Bearer tls-pool-key')" 2 "the upstream got the pool's two admitted requests"
closing() { # NS_FUNC: sockets on the upstream port between open and closed
	"$1" ss -Htan "( sport = :$PORT or dport = :$PORT )" |
		awk '$1 != "LISTEN" && $1 != "TIME-WAIT" && $1 != "ESTAB"' || true
}
none_closing() { [[ -z $(closing bed_gw) && -z $(closing bed_up_ns) ]]; }
bed_wait_until 10 none_closing || true
tap_is "$(closing bed_gw) $(closing bed_up_ns)" " " \
	"the pool's refused connection closed on both sides (idle pooled ones stay open)"
tap_is "$(grep -c 'prematurely closed\|reset by peer' "$NGX/logs/error.log" || true)" 0 \
	"nginx saw no upstream failure"

# ---- the daemon ------------------------------------------------------------------------------

bed_spawn bed_gw "$RLS" daemon --dev "$BED_GW_UP_DEV" --config "$TABLE"
DAEMON_PID=$BED_LAST_PID
DAEMON_LOG=$BED_LAST_LOG
tap_ok "the daemon runs on the upstream side" \
	bed_wait_until 10 grep -q 'settling token usage' "$DAEMON_LOG"
kill -HUP "$DAEMON_PID"
tap_ok "its SIGHUP reload keeps the side" \
	bed_wait_until 20 grep -q "reloaded .* on $BED_GW_UP_DEV (upstream side)" "$DAEMON_LOG"
kill -TERM "$DAEMON_PID"
wait "$DAEMON_PID" && st=0 || st=$?
tap_is "$st" 0 "the daemon exits 0 on SIGTERM"

snapshot_stats "$BED_GW_UP_DEV"
tap_diag "packets: $(awk '$1 == "packets" && $3 != 0 { printf "%s=%s ", $2, $3 }' "$BED_DIR/stats.txt")"
tap_is "$(packets replies_429)" 5 "rlshape: five 429s sent in to nginx"
tap_is "$(packets upstream_resets)" 5 "rlshape: the upstream reset for each"
tap_ok "rlshape: the forwarded request's data counted as not local ($(packets not_local))" \
	test "$(packets not_local)" -ge 1
tap_is "$(packets requests)" 15 "rlshape: fifteen requests read, all nginx's"
tap_is "$(packets client_address_missing)" 0 "rlshape: every request's X-Real-IP read"

run_rls unload --dev "$BED_GW_UP_DEV"
tap_is "$RC" 0 "rlshape unload exits 0"
tap_is "$(bed_gw tc filter show dev "$BED_GW_UP_DEV" egress) $(bed_gw tc filter show dev "$BED_GW_UP_DEV" ingress)" \
	" " "unload leaves no TC filter on either hook"
tap_done
