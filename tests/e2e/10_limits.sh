#!/usr/bin/env bash
# Request limits end to end: tests/e2e/data/limits.json on the gateway, real HTTP/1.1 from the
# client namespace to mock-upstream, over IPv4 and IPv6.
#
# Every exact count comes from an rpd or rph window (the suite first waits until the current
# UTC hour has room left for the whole run) or from an rpm window with burst = rpm (retried
# once with a second account when a minute boundary fell inside it). What is asserted:
#   - admitted counts equal the limits per (account, model), seen three ways: loadgen/curl
#     status codes, mock-upstream's log lines (rejected requests never reach it) and
#     `rlshape stats --json`, reasons included;
#   - keys in authorization (Bearer), x-api-key and api-key; plain and sha256: keys; a CIDR
#     account (IPv4 and IPv6 addresses added to the client for it); unknown keys and keyless
#     clients charged to default_tier per client address;
#   - the model from the JSON body, from x-model, "*", and header and body disagreeing;
#   - keep-alive: every request on one connection is counted;
#   - the 429: status line, every header, a JSON body whose message names the reason (window
#     or "Request rate increased too quickly" from the rpm smoothing);
#   - no connection of the client is left ESTABLISHED on the upstream afterwards;
#   - `rlshape unload` detaches it, and requests pass again.
set -euo pipefail

# shellcheck source=tests/lib/suite.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/suite.sh"
suite_programs 10_limits

TABLE=$BED_REPO/tests/e2e/data/limits.json
PORT=8000

KEY_ACME=acme-plain-key-1
KEY_BETA=beta-secret-key-2 # the table holds only its sha256: digest
KEY_PACER=pacer-key-1
KEY_STRANGER=stranger-key-9 # in no account
CAMPUS4=198.18.1.3
CAMPUS6=2001:2:0:1::3

bed_up
# The CIDR account's addresses, next to the client's own. Deprecated (preferred_lft 0) and
# secondary, so the kernel never picks them as a source unless curl binds them.
ip -n "$BED_CLIENT_NS" addr add "$CAMPUS4/24" dev "$BED_CLIENT_DEV"
ip -n "$BED_CLIENT_NS" addr add "$CAMPUS6/64" dev "$BED_CLIENT_DEV" nodad preferred_lft 0

UP_LOG=$BED_DIR/upstream.log
bed_spawn bed_up_ns "$MOCK" --listen "$BED_UP4:$PORT" --listen "[$BED_UP6]:$PORT" \
	--log "$UP_LOG" --ready-file "$BED_DIR/upstream.ready"
tap_ok "mock-upstream is listening on IPv4 and IPv6" bed_wait_file "$BED_DIR/upstream.ready" 20
URL4="http://$BED_UP4:$PORT/v1/chat/completions"
URL6="http://[$BED_UP6]:$PORT/v1/chat/completions"

# ---- helpers ------------------------------------------------------------------------------

# post NAME URL [CURL ARGS...]: one request; the whole response goes to $BED_DIR/NAME.http,
# the status code to stdout ("000" when there was no HTTP response).
post() {
	local name=$1 url=$2
	shift 2
	bed_client curl -sS -g --noproxy '*' --connect-timeout 5 --max-time 10 -i \
		-o "$BED_DIR/$name.http" -w '%{http_code}' "$@" "$url" 2>>"$BED_DIR/curl.err" || true
}

body() { # MODEL
	printf '{"model":"%s","messages":[{"role":"user","content":"hi"}]}' "$1"
}

# loadgen TARGET ARGS...: its one-line summary (it exits 1 when a request got no answer; the
# summary's errors= says so).
loadgen() {
	bed_client "$LOADGEN" --target "$@" 2>&1 || true
}

# 429 checker: check429 FILE MESSAGE LIMIT REMAINING_REGEX MAX_RETRY_AFTER_S
cat >"$BED_DIR/check429.py" <<'PY'
import re, sys
from check429_headers import (check_error_body, check_length, check_waits_agree, finish,
                              need, read_429)

path, want_msg, want_limit, want_remaining, max_retry = sys.argv[1:6]
errs = []
hdr, body, ended = read_429(path, errs)
if not ended:
    errs.append("no end of headers")
ra = need(hdr, errs, "retry-after", r"[1-9][0-9]*")
ra_ms = need(hdr, errs, "retry-after-ms", r"[1-9][0-9]*")
need(hdr, errs, "x-ratelimit-limit-requests", re.escape(want_limit))
need(hdr, errs, "x-ratelimit-remaining-requests", want_remaining)
reset = need(hdr, errs, "x-ratelimit-reset-requests", r"[0-9]+s")
need(hdr, errs, "content-type", r"application/json")
# keep-alive where the connection goes on (after an answered request), close otherwise.
need(hdr, errs, "connection", r"close|keep-alive")
length = need(hdr, errs, "content-length", r"[0-9]+")
if ra and int(ra) > int(max_retry):
    errs.append("retry-after %s > %s" % (ra, max_retry))
check_waits_agree(ra, ra_ms, reset, "x-ratelimit-reset-requests", errs)
check_length(length, body, errs)
check_error_body(body, errs, want_msg, "requests")
finish(hdr, errs)
PY

check429() {
	PYTHONPATH="$BED_REPO/tests/lib" python3 "$BED_DIR/check429.py" "$@"
}

MSG_WINDOW="Requests rate limit exceeded"
MSG_BURST="Request rate increased too quickly"

# stats_row ACCOUNT MODEL: "ADMITTED rps rpm rph rpd burst" from the snapshot, or "none".
stats_row() {
	local row
	row=$(awk -v a="$1" -v m="$2" '$1 == a && $2 == m { print $3, $4, $5, $6, $7, $8 }' \
		"$BED_DIR/stats.txt")
	echo "${row:-none}"
}

# Connections from the client's addresses that the upstream still holds ESTABLISHED.
established_from_client() {
	bed_up_ns ss -Htn state established "( sport = :$PORT )" |
		grep -cE '198\.18\.1\.|\[?2001:2:0:1:' || true
}
no_established() {
	[[ $(established_from_client) == 0 ]]
}

# ---- time windows -------------------------------------------------------------------------

# rpd and rph counts must not straddle a window boundary: the run takes well under a minute,
# so wait (at most a minute, rarely) until the UTC hour (and day) has more than that left.
hour_has_room() {
	local now
	now=$(date +%s)
	((3600 - now % 3600 > 60))
}
if ! hour_has_room; then
	tap_diag "an hour boundary is near: waiting for it to pass"
fi
bed_wait_until 65 hour_has_room
START_HOUR=$(($(date +%s) / 3600))

# ---- load ---------------------------------------------------------------------------------

out=$(rls load "$TABLE" --dev "$BED_GW_DEV" 2>&1) && st=0 || st=$?
tap_is "$st" 0 "rlshape load exits 0"
tap_like "$out" "loaded .*limits\.json on $BED_GW_DEV: 6 accounts" "rlshape load reports the table"
tap_like "$(ip -n "$BED_GW_NS" link show dev "$BED_GW_DEV")" 'xdp' "XDP program attached to $BED_GW_DEV"

# ---- acme: plain key; authorization, x-api-key, api-key; body model, x-model, "*" -----------

tap_is "$(loadgen "$BED_UP4:$PORT" -c 4 -n 10 -k "$KEY_ACME" -m gpt-big)" \
	"sent=10 status_200=6 status_429=4 other=0 errors=0" \
	"acme gpt-big (rpd 6), Bearer key, model in body, 4 connections: 6 admitted, 4 rejected"
tap_is "$(log_count " key=Bearer $KEY_ACME model=gpt-big ")" 6 "upstream saw 6 acme gpt-big requests"

tap_is "$(loadgen "$BED_UP4:$PORT" -c 3 -n 13 -k "$KEY_ACME" -K x-api-key -m gpt-small \
	--model-in header)" \
	"sent=13 status_200=10 status_429=3 other=0 errors=0" \
	"acme gpt-small (rpd 10), key in x-api-key, model in x-model: 10 admitted, 3 rejected"
tap_is "$(log_count " key=$KEY_ACME model=gpt-small ")" 10 "upstream saw 10 acme gpt-small requests"

tap_is "$(loadgen "[$BED_UP6]:$PORT" -c 2 -n 6 -k "$KEY_ACME" -K api-key -m some-other-model \
	--save-429 "$BED_DIR/acme6.http")" \
	"sent=6 status_200=4 status_429=2 other=0 errors=0" \
	"acme over IPv6, key in api-key, unnamed model (\"*\", rpd 4): 4 admitted, 2 rejected"
tap_is "$(log_count "^[0-9]+ $BED_CLIENT6 POST .* key=$KEY_ACME model=some-other-model ")" 4 \
	"upstream saw the 4 admitted IPv6 requests from $BED_CLIENT6"
tap_ok "IPv6 429: every header, JSON body \"$MSG_WINDOW\", limit 4, remaining 0" \
	check429 "$BED_DIR/acme6.http" "$MSG_WINDOW" 4 0 86400

# ---- beta: sha256: key; keep-alive; x-model and body disagree; rph ------------------------

# A keep-alive connection: every request on it counts; once both sides have closed it, the
# flow map forgets it (rls_flows is not LRU: closed connections must not fill it).
# bpftool -j gives raw bytes in "key"/"value" and the BTF view in "formatted".
flow_keys() {
	bpftool -j map dump pinned "$BED_PIN_DIR/rls_flows" | python3 -c '
import json, sys
print(json.dumps([json.dumps(e["formatted"]["key"], sort_keys=True) for e in json.load(sys.stdin)]))'
}
flows_before=$(flow_keys)
tap_is "$(loadgen "$BED_UP4:$PORT" -c 1 -n 3 -k "$KEY_BETA" -m gpt-big)" \
	"sent=3 status_200=3 status_429=0 other=0 errors=0" \
	"beta gpt-big (rpd 3), sha256: key, 3 requests on one keep-alive connection: all admitted"
new_flows() {
	bpftool -j map dump pinned "$BED_PIN_DIR/rls_flows" | python3 -c '
import json, sys
before = set(json.loads(sys.argv[1]))
print(" ".join(str(e["formatted"]["value"]["requests"]) for e in json.load(sys.stdin)
               if json.dumps(e["formatted"]["key"], sort_keys=True) not in before))' "$flows_before"
}
# The upstream's FIN follows the client's: wait for it to go through TC.
flows_gone() { [[ -z $(new_flows) ]]; }
bed_wait_until 10 flows_gone || true
new_flows=$(new_flows)
tap_is "$new_flows" "" "the connection, closed by both sides, left no entry in rls_flows"
tap_is "$(loadgen "$BED_UP4:$PORT" -c 1 -n 2 -k "$KEY_BETA" -m gpt-big)" \
	"sent=2 status_200=0 status_429=2 other=0 errors=0" \
	"beta gpt-big: the budget is spent, the next 2 are rejected"
tap_is "$(log_count " key=Bearer $KEY_BETA model=gpt-big ")" 3 "upstream saw 3 beta gpt-big requests"

# Header and body disagree: the upstream reads one of them, so neither is trusted and the
# request is charged as the tier's strictest model, "*" (rpd 2): not gpt-small, not gpt-big.
tap_is "$(post beta-xmodel "$URL4" -H "authorization: Bearer $KEY_BETA" -H 'x-model: gpt-small' \
	-H 'content-type: application/json' -d "$(body gpt-big)")" 200 \
	"x-model gpt-small, body gpt-big (spent): charged as the strictest model \"*\": 200"
tap_is "$(log_count " key=Bearer $KEY_BETA model=gpt-small ")" 1 "upstream logged it (by its header)"
tap_is "$(loadgen "$BED_UP4:$PORT" -c 2 -n 6 -k "$KEY_BETA" -m gpt-small)" \
	"sent=6 status_200=5 status_429=1 other=0 errors=0" \
	"beta gpt-small (rph 5), untouched by that request: 5 admitted, 1 rejected"
tap_is "$(log_count " key=Bearer $KEY_BETA model=gpt-small ")" 6 "upstream saw 1 + 5 such requests"

codes=""
for i in 1 2 3; do
	codes+="$(post "beta-star-$i" "$URL4" -H "authorization: Bearer $KEY_BETA" \
		-H 'content-type: application/json' -d "$(body misc-model)") "
done
tap_is "$codes" "200 429 429 " \
	"beta unnamed model (\"*\", rpd 2, one spent by the disagreeing request), curl: 200 429 429"
tap_ok "rpd 429: every header, JSON body \"$MSG_WINDOW\", limit 2, remaining 0, retry within a day" \
	check429 "$BED_DIR/beta-star-2.http" "$MSG_WINDOW" 2 0 86400

# ---- default tier: unknown key and keyless clients, per client address ------------------------

tap_is "$(loadgen "$BED_UP4:$PORT" -c 2 -n 4 -k "$KEY_STRANGER" -m gpt-big)" \
	"sent=4 status_200=2 status_429=2 other=0 errors=0" \
	"unknown key from $BED_CLIENT4: default tier gpt-big (rpd 2): 2 admitted, 2 rejected"
tap_is "$(post anon4 "$URL4" -H 'content-type: application/json' -d "$(body gpt-big)")" 429 \
	"keyless from the same address shares that budget: 429"
tap_is "$(loadgen "[$BED_UP6]:$PORT" -c 1 -n 3 -M body -m gpt-big)" \
	"sent=3 status_200=2 status_429=1 other=0 errors=0" \
	"keyless from $BED_CLIENT6 has a budget of its own: 2 admitted, 1 rejected"
tap_is "$(log_count " key=(Bearer $KEY_STRANGER|-) model=gpt-big ")" 4 \
	"upstream saw 4 default-tier gpt-big requests"

# ---- campus: a CIDR account, IPv4 and IPv6 ---------------------------------------------------

codes=""
for i in 1 2 3; do
	codes+="$(post "campus4-$i" "$URL4" --interface "$CAMPUS4" \
		-H 'content-type: application/json' -d "$(body gpt-big)") "
done
codes+="$(post campus6-1 "$URL6" --interface "$CAMPUS6" -H 'content-type: application/json' \
	-d "$(body gpt-big)") "
codes+="$(post campus6-2 "$URL6" --interface "$CAMPUS6" -H 'content-type: application/json' \
	-d "$(body gpt-big)")"
tap_is "$codes" "200 200 200 200 429" \
	"campus (CIDR, gpt-big rpd 4): 3 from $CAMPUS4 and 1 from $CAMPUS6 admitted, then 429"
tap_is "$(log_count "^[0-9]+ ($CAMPUS4|$CAMPUS6) POST .* key=- model=gpt-big ")" 4 \
	"upstream saw 4 campus requests"
tap_ok "IPv6 curl 429: every header, limit 4" check429 "$BED_DIR/campus6-2.http" "$MSG_WINDOW" 4 0 86400
# A key wins over the address: acme's "*" budget is spent, campus's is not.
tap_is "$(post acme-from-campus "$URL4" --interface "$CAMPUS4" -H "x-api-key: $KEY_ACME" \
	-H 'content-type: application/json' -d "$(body some-other-model)")" 429 \
	"acme's key from a campus address is charged to acme (spent), not to campus"

# ---- rpm smoothing: rpm 60 and no burst means one request per second ---------------------------

# Two requests on one connection, a few milliseconds apart.
tap_is "$(loadgen "$BED_UP4:$PORT" -c 1 -n 2 -k "$KEY_PACER" -m misc-model \
	--save-429 "$BED_DIR/pacer.http")" \
	"sent=2 status_200=1 status_429=1 other=0 errors=0" \
	"pacer (rpm 60, default burst 1): two back to back: the second is rejected"
tap_ok "burst 429: \"$MSG_BURST\", limit 60, remaining 59 (of the minute), retry after 1 s" \
	check429 "$BED_DIR/pacer.http" "$MSG_BURST" 60 '59|60' 1

# ---- an rpm window: rpm 8 with burst 8 -----------------------------------------------------------

# 8 back to back are admitted, the 9th hits the minute window, unless a minute boundary fell
# in between: then once more with a second account of the same tier.
minute_has_room() {
	(($(date +%s) % 60 < 55))
}
rpm_account=""
for acct in batch-a batch-b; do
	bed_wait_until 10 minute_has_room
	before=$(($(date +%s) / 60))
	rpm_out=$(loadgen "$BED_UP4:$PORT" -c 1 -n 9 -k "batch-key-${acct#batch-}" -m misc-model \
		--save-429 "$BED_DIR/$acct.http")
	after=$(($(date +%s) / 60))
	rpm_account=$acct
	((before != after)) || break
	tap_diag "a minute boundary passed during the rpm run of $acct: again with the next account"
done
tap_is "$rpm_out" "sent=9 status_200=8 status_429=1 other=0 errors=0" \
	"$rpm_account (rpm 8, burst 8), one connection: 8 admitted, the 9th rejected"
tap_ok "rpm 429: \"$MSG_WINDOW\", limit 8, remaining 0, retry within a minute" \
	check429 "$BED_DIR/$rpm_account.http" "$MSG_WINDOW" 8 0 60

# ---- the same counts from rlshape stats --json ------------------------------------------------

snapshot_stats
tap_is "$(stats_row "$rpm_account" '*')" "8 0 1 0 0 0" "stats: $rpm_account * admitted 8, rejected rpm 1"

#        account    model      admitted rps rpm rph rpd burst
while read -r acct model want; do
	tap_is "$(stats_row "$acct" "$model")" "$want" "stats: $acct $model: $want (admitted rps rpm rph rpd burst)"
done <<'EOF'
acme gpt-big 6 0 0 0 4 0
acme gpt-small 10 0 0 0 3 0
acme * 4 0 0 0 3 0
beta gpt-big 3 0 0 0 2 0
beta gpt-small 5 0 0 1 0 0
beta * 1 0 0 0 2 0
beta (hidden) 1 0 0 0 0 0
campus gpt-big 4 0 0 0 1 0
(unknown) gpt-big 4 0 0 0 4 0
pacer * 1 0 0 0 0 1
EOF

# Rejected requests never reach the upstream: its log has exactly the admitted ones.
admitted_total=$(awk '$1 != "packets" { n += $3 } END { print n + 0 }' "$BED_DIR/stats.txt")
rejected_total=$(awk '$1 != "packets" { for (i = 4; i <= NF; i++) n += $i } END { print n + 0 }' \
	"$BED_DIR/stats.txt")
tap_is "$(log_count .)" "$admitted_total" "upstream log lines ($(log_count .)) = admitted in stats"
tap_is "$(log_count " key=(Bearer )?$KEY_ACME ")" 20 "upstream saw 20 acme requests in all (6 + 10 + 4)"
tap_is "$(log_count " key=Bearer $KEY_BETA ")" 10 "upstream saw 10 beta requests in all (3 + 1 + 5 + 1)"
tap_diag "packets: $(awk '$1 == "packets" { printf "%s=%s ", $2, $3 }' "$BED_DIR/stats.txt")"
tap_is "$(packets requests)" "$((admitted_total + rejected_total))" \
	"packets: requests = admitted + rejected ($admitted_total + $rejected_total)"
tap_is "$(packets model_hidden)" 1 "one request's model was hidden: the one whose header and body disagree"
tap_ok "a 429 was sent for each rejected request ($rejected_total)" \
	test "$(packets replies_429)" -ge "$rejected_total"
tap_ok "some 429s kept their connection open ($(packets reply_kept_open))" \
	test "$(packets reply_kept_open)" -gt 0
tap_is "$(($(packets upstream_resets) + $(packets reply_kept_open)))" "$rejected_total" \
	"each rejected request either kept its connection or had it reset at the upstream, once"

# No half-open connection from rejected requests: the upstream lets go of all of them.
if bed_wait_until 10 no_established; then
	tap_is 0 0 "no client connection left ESTABLISHED on the upstream"
else
	tap_is "$(established_from_client)" 0 "no client connection left ESTABLISHED on the upstream"
	tap_diag "$(bed_up_ns ss -tn state established)"
fi

tap_is "$(($(date +%s) / 3600))" "$START_HOUR" "the run stayed inside one UTC hour (rph/rpd counts exact)"

# ---- unload ----------------------------------------------------------------------------------

out=$(rls unload --dev "$BED_GW_DEV" 2>&1) && st=0 || st=$?
tap_is "$st" 0 "rlshape unload exits 0"
tap_like "$out" "unloaded from $BED_GW_DEV" "rlshape unload says so"
tap_ok "no XDP program left on $BED_GW_DEV" \
	bash -c "! ip -n '$BED_GW_NS' link show dev '$BED_GW_DEV' | grep -qE 'xdp|prog/'"
tap_ok "pins removed ($BED_PIN_DIR)" test ! -e "$BED_PIN_DIR"
tap_is "$(post after-unload "$URL4" -H "authorization: Bearer $KEY_BETA" \
	-H 'content-type: application/json' -d "$(body gpt-big)")" 200 \
	"after unload a spent key passes again"

tap_done
