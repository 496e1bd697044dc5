#!/usr/bin/env bash
# Concurrency limits end to end: tests/e2e/data/concurrency.json on the gateway, real HTTP/1.1
# from the client namespace to mock-upstream. mock-upstream holds a request until a file
# exists (x-mock-hold-file), so which requests are in flight is decided by the test, never by
# a timer. Slots are read back from the kernel through `rlshape stats --json`. What is asserted:
#   1. concurrency 2: two held requests run, a third gets the concurrency 429 (every header,
#      the JSON body) and never reaches the upstream; once one finishes a new one is admitted;
#      a model with its own concurrency (1) counts apart from "*";
#   2. 1,000 requests cut off mid-response (500 by the client's RST, 500 by its FIN) and
#      clients killed with SIGKILL mid-stream leave zero slots held, none of them expired;
#   3. keep-alive: 20 plain and 10 streamed requests one after another on one connection, at
#      concurrency 1, are all admitted: one slot at a time; and a response's own end (the last
#      byte of a content-length body, the last chunk, the upstream's FIN for an HTTP/1.0
#      stream) gives the slot back while the client keeps its side open;
#   4. an upstream that never answers: the slot is freed after max_hold_seconds (3 s), counted
#      as expired, not earlier; the late close of that request frees nothing twice.
set -euo pipefail

# shellcheck source=tests/lib/suite.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/suite.sh"
suite_programs 40_concurrency

TABLE=$BED_REPO/tests/e2e/data/concurrency.json
PORT=8000
MAX_HOLD_S=3 # the "stuck" tier's max_hold_seconds

bed_up

suite_upstream "$PORT"
URL="http://$BED_UP4:$PORT/v1/chat/completions"

# ---- helpers ------------------------------------------------------------------------------

body() { # MODEL
	printf '{"model":"%s","messages":[{"role":"user","content":"hi"}]}' "$1"
}

# post NAME KEY MODEL [CURL ARGS...]: one request; the response goes to $BED_DIR/NAME.http,
# the status code to stdout ("000" when there was no HTTP response).
post() {
	local name=$1 key=$2 model=$3
	shift 3
	bed_client curl -sS --noproxy '*' --connect-timeout 5 --max-time 20 -i \
		-o "$BED_DIR/$name.http" -w '%{http_code}' -H "authorization: Bearer $key" \
		-H 'content-type: application/json' --data "$(body "$model")" "$@" "$URL" \
		2>>"$BED_DIR/curl.err" || true
}

# held_post NAME KEY MODEL: a request in the background that the upstream holds until
# $BED_DIR/NAME.go exists; its pid in HELD_PID, its status code in $BED_DIR/NAME.code.
held_post() {
	local name=$1 key=$2 model=$3
	bed_spawn bed_client curl -sS --noproxy '*' --connect-timeout 5 --max-time 60 -i \
		-o "$BED_DIR/$name.http" -w '%{http_code}' -H "authorization: Bearer $key" \
		-H 'content-type: application/json' -H "x-mock-hold-file: $BED_DIR/$name.go" \
		--data "$(body "$model")" "$URL"
	HELD_PID=$BED_LAST_PID
	HELD_LOG[$name]=$BED_LAST_LOG
}
declare -A HELD_LOG

# finish NAME PID: let the upstream answer, wait for the client; its status code.
finish() {
	touch "$BED_DIR/$1.go"
	bed_wait_until 20 exited "$2" || true
	cat "${HELD_LOG[$1]}"
}

exited() {
	! kill -0 "$1" 2>/dev/null
}

loadgen() { # ARGS...: its one-line summary
	bed_client "$LOADGEN" --target "$BED_UP4:$PORT" "$@" 2>&1 || true
}

# slots ACCOUNT MODEL FIELD: held, peak or expired of `rlshape stats --json` ("-" if no row);
# rejected ACCOUNT MODEL: its concurrency rejections.
slots() {
	rls stats --dev "$BED_GW_DEV" --json | python3 -c '
import json, sys
account, model, field = sys.argv[1:4]
rows = [r for r in json.load(sys.stdin)["concurrency"]
        if r["account"] == account and r["model"] == model]
print(rows[0][field] if rows else "-")' "$@"
}

rejected() {
	rls stats --dev "$BED_GW_DEV" --json | python3 -c '
import json, sys
account, model = sys.argv[1:3]
print(sum(r["rejected"]["concurrency"] for r in json.load(sys.stdin)["requests"]
          if r["account"] == account and r["model"] == model))' "$@"
}

upstream_saw() { # ERE N
	(($(log_count "$1") == $2))
}

held_is() { # ACCOUNT MODEL N
	[[ $(slots "$1" "$2" held) == "$3" ]]
}

# Connections the upstream holds ESTABLISHED.
upstream_established() {
	bed_up_ns ss -Htn state established "( sport = :$PORT )" | wc -l
}

# check429 FILE LIMIT: the concurrency 429, header by header, and its JSON body.
cat >"$BED_DIR/check429.py" <<'PY'
import json, sys
from check429_headers import finish, read_429

path, want_limit = sys.argv[1:3]
errs = []
hdr, body, _ = read_429(path, errs, last_wins=True)
want = {
    "retry-after": "1",
    "retry-after-ms": "1000",
    "x-ratelimit-limit-concurrency": want_limit,
    "x-ratelimit-remaining-concurrency": "0",
    "x-ratelimit-reset-concurrency": "1s",
    "content-type": "application/json",
    "content-length": str(len(body.encode())),
}
for name, value in want.items():
    if hdr.get(name) != value:
        errs.append("%s: %r, want %r" % (name, hdr.get(name), value))
# keep-alive where the connection goes on (README: A 429 that keeps the connection), else close.
if hdr.get("connection") not in ("keep-alive", "close"):
    errs.append("connection: %r, want keep-alive or close" % hdr.get("connection"))
try:
    err = json.loads(body)["error"]
    if err != {"message": "Too many concurrent requests", "type": "concurrency",
               "param": None, "code": "rate_limit_exceeded"}:
        errs.append("error object %r" % err)
except (ValueError, KeyError, TypeError) as e:
    errs.append("body %r: %s" % (body, e))
finish(hdr, errs)
PY
check429() {
	PYTHONPATH="$BED_REPO/tests/lib" python3 "$BED_DIR/check429.py" "$@"
}

# ---- load ---------------------------------------------------------------------------------

out=$(rls load "$TABLE" --dev "$BED_GW_DEV" 2>&1) && st=0 || st=$?
tap_is "$st" 0 "rlshape load exits 0"
tap_like "$out" "loaded .*concurrency\.json on $BED_GW_DEV: 4 accounts" "rlshape load reports the table"

# ---- 1. concurrency 2: two run, the third is rejected, a finished one makes room ----------

held_post duo-a duo-key gpt-small
PID_A=$HELD_PID
held_post duo-b duo-key gpt-small
PID_B=$HELD_PID
tap_ok "duo: two held requests reach the upstream" \
	bed_wait_until 20 upstream_saw ' key=Bearer duo-key model=gpt-small ' 2
tap_is "$(slots duo '*' held)" 2 "duo holds 2 slots while both are in flight"
tap_is "$(post duo-c duo-key gpt-small)" 429 "duo's third request is rejected while two are in flight"
tap_ok "its 429 says \"Too many concurrent requests\", retry-after 1, limit 2" \
	check429 "$BED_DIR/duo-c.http" 2
tap_is "$(log_count ' key=Bearer duo-key model=gpt-small ')" 2 "the rejected request never reached the upstream"
tap_is "$(rejected duo '*')" 1 "stats counts one concurrency rejection for duo (\"*\": no tier names gpt-small)"

# gpt-big has its own concurrency 1 in the same tier: a counter of its own.
held_post duo-big duo-key gpt-big
PID_BIG=$HELD_PID
tap_ok "duo gpt-big (its own concurrency 1) is admitted beside the two \"*\" requests" \
	bed_wait_until 20 held_is duo gpt-big 1
tap_is "$(post duo-big2 duo-key gpt-big)" 429 "a second gpt-big request is rejected: its limit is 1"
tap_ok "that 429 says limit 1" check429 "$BED_DIR/duo-big2.http" 1

tap_is "$(finish duo-a "$PID_A")" 200 "the first held request finishes with 200"
tap_ok "its slot comes back: duo holds 1" bed_wait_until 10 held_is duo '*' 1
tap_is "$(post duo-d duo-key gpt-small)" 200 "a new request is admitted once one finished"
tap_is "$(finish duo-b "$PID_B")" 200 "the second held request finishes with 200"
tap_is "$(finish duo-big "$PID_BIG")" 200 "the gpt-big request finishes with 200"
tap_ok "duo holds no slot" bed_wait_until 10 held_is duo '*' 0
tap_is "$(slots duo gpt-big held)" 0 "duo gpt-big holds no slot"
tap_is "$(slots duo '*' peak)" 2 "duo's peak is 2"
tap_is "$(slots duo '*' expired)" 0 "no duo slot expired"

# ---- 2. 1,000 requests cut off mid-response, and killed clients: zero slots left ----------

# Streams paced at one event per 200 ms: the client has the head and the first event, the
# rest is still to come when it cuts the connection.
CUT=(-s -H 'x-mock-event-delay-ms: 200' -k herd-key -m cut-model -c 10)
out=$(loadgen -n 500 --cut-off rst "${CUT[@]}")
tap_is "$out" "sent=500 status_200=500 status_429=0 other=0 errors=0 cut=500" \
	"herd: 500 streamed requests cut off by the client's RST, 10 at a time, none rejected"
out=$(loadgen -n 500 --cut-off fin "${CUT[@]}")
tap_is "$out" "sent=500 status_200=500 status_429=0 other=0 errors=0 cut=500" \
	"herd: 500 more cut off by the client's FIN, none rejected"
tap_is "$(log_count ' key=Bearer herd-key model=cut-model ')" 1000 "the upstream saw all 1,000"

KILLED=()
for i in 1 2 3 4 5; do
	bed_spawn bed_client curl -sS -N --noproxy '*' --max-time 60 \
		-H 'authorization: Bearer herd-key' -H 'content-type: application/json' \
		-H 'x-mock-event-delay-ms: 1000' \
		--data '{"model":"kill-model","stream":true,"messages":[{"role":"user","content":"hi"}]}' \
		"$URL"
	KILLED+=("$BED_LAST_PID")
done
tap_ok "5 streaming clients are mid-response: 5 slots held" \
	bed_wait_until 20 held_is herd '*' 5
{
	kill -KILL "${KILLED[@]}"
	wait "${KILLED[@]}"
} 2>/dev/null || true
tap_ok "after SIGKILL of the 5 clients, herd holds zero slots" bed_wait_until 20 held_is herd '*' 0
tap_is "$(slots herd '*' expired)" 0 "none of herd's slots expired: every one was given back"
peak=$(slots herd '*' peak)
tap_ok "herd's peak ($peak) is between 1 and its limit 20" test "$peak" -ge 1 -a "$peak" -le 20

# ---- 3. keep-alive: one slot at a time --------------------------------------------------

tap_is "$(loadgen -n 20 -c 1 -k solo-key -m ka-model)" \
	"sent=20 status_200=20 status_429=0 other=0 errors=0" \
	"solo (concurrency 1): 20 requests one after another on one keep-alive connection"
tap_is "$(loadgen -n 10 -c 1 -s -k solo-key -m ka-model)" \
	"sent=10 status_200=10 status_429=0 other=0 errors=0" \
	"solo: 10 streamed (chunked) requests on one keep-alive connection"
tap_is "$(slots solo '*' peak)" 1 "solo never held more than one slot"
tap_ok "solo holds no slot afterwards" bed_wait_until 10 held_is solo '*' 0
tap_is "$(slots solo '*' expired)" 0 "no solo slot expired"

# The response's own end gives the slot back, with the connection still open and no next
# request: TC at the last byte of a content-length body, and of a chunked event stream.
# And the upstream's FIN, where it ends the response (HTTP/1.0, streamed until close).
# keepopen.py HOST PORT KEY MODE DIR: one request (MODE 0 plain, 1 streamed, 2 streamed over
# HTTP/1.0), the whole response read, then DIR/done; the client's side of the connection stays
# open until DIR/go exists.
cat >"$BED_DIR/keepopen.py" <<'PY'
import os, socket, sys, time

host, port, key, mode, d = sys.argv[1:6]
body = ('{"model":"ka-model","stream":true,"messages":[]}' if mode != "0"
        else '{"model":"ka-model","messages":[]}')
s = socket.create_connection((host, int(port)), timeout=20)
s.sendall(("POST /v1/chat/completions HTTP/1.%s\r\nhost: up\r\nauthorization: Bearer %s\r\n"
           "content-type: application/json\r\ncontent-length: %d\r\n\r\n%s"
           % ("0" if mode == "2" else "1", key, len(body), body)).encode())
buf = b""
while b"\r\n\r\n" not in buf:
    buf += s.recv(65536)
head, _, rest = buf.partition(b"\r\n\r\n")
status = head.split(b" ")[1].decode()
if mode == "2":
    while True:
        more = s.recv(65536)
        if not more:
            break
        rest += more
elif b"transfer-encoding: chunked" in head.lower():
    while not rest.endswith(b"0\r\n\r\n"):
        rest += s.recv(65536)
else:
    length = int([l.split(b":")[1] for l in head.lower().split(b"\r\n")
                  if l.startswith(b"content-length:")][0])
    while len(rest) < length:
        rest += s.recv(65536)
open(os.path.join(d, "done"), "w").write(status)
while not os.path.exists(os.path.join(d, "go")):
    time.sleep(0.01)
s.close()
PY
KEEPOPEN_KIND=("a content-length body" "a chunked event stream" "an HTTP/1.0 stream")
KEEPOPEN_END=("its last byte" "its last chunk" "the upstream's FIN")
for mode in 0 1 2; do
	dir=$BED_DIR/keepopen-$mode
	mkdir -p "$dir"
	bed_spawn bed_client python3 "$BED_DIR/keepopen.py" "$BED_UP4" "$PORT" solo-key "$mode" "$dir"
	pid=$BED_LAST_PID
	tap_ok "solo: ${KEEPOPEN_KIND[mode]} read to its end, the client's side left open" \
		bed_wait_file "$dir/done" 20
	tap_is "$(cat "$dir/done")" 200 "solo: that response was a 200"
	tap_ok "solo: ${KEEPOPEN_END[mode]} gave the slot back (TC), with no client FIN" \
		bed_wait_until 10 held_is solo '*' 0
	touch "$dir/go"
	bed_wait_until 20 exited "$pid" || true
done

# ---- 4. an upstream that never answers ----------------------------------------------------

t0=$(_bed_now_us)
held_post hung-a hung-key any-model
PID_HUNG=$HELD_PID
tap_ok "hung: the request the upstream never answers holds the slot" \
	bed_wait_until 20 held_is hung '*' 1
tap_is "$(post hung-b hung-key any-model)" 429 "hung: a second request is rejected while it is held"
tap_ok "the slot is freed by max_hold_seconds ($MAX_HOLD_S s)" bed_wait_until 30 held_is hung '*' 0
t1=$(_bed_now_us)
tap_diag "freed $(((t1 - t0) / 1000)) ms after the request was sent (max_hold_seconds $MAX_HOLD_S)"
tap_ok "not before max_hold_seconds" test $((t1 - t0)) -ge $((MAX_HOLD_S * 1000000))
tap_is "$(slots hung '*' expired)" 1 "stats counts it as expired"

held_post hung-c hung-key any-model
PID_HUNG_C=$HELD_PID
tap_ok "a new request is admitted once the slot expired" bed_wait_until 20 held_is hung '*' 1
before=$(upstream_established)
kill -TERM "$PID_HUNG"
tap_ok "the expired request's client closes" bed_wait_until 20 exited "$PID_HUNG"
tap_ok "the upstream sees that connection close" \
	bed_wait_until 20 eval "(( \$(upstream_established) < $before ))"
tap_is "$(slots hung '*' held)" 1 "its late close frees nothing: the new request still holds its slot"
tap_is "$(finish hung-c "$PID_HUNG_C")" 200 "the new request finishes with 200"
tap_ok "hung holds no slot" bed_wait_until 10 held_is hung '*' 0
tap_is "$(slots hung '*' expired)" 1 "still one expired"

# ---- stats, text ------------------------------------------------------------------------------

out=$(rls stats --dev "$BED_GW_DEV")
tap_like "$out" $'SLOTS_HELD +PEAK +EXPIRED\n' "rlshape stats shows the concurrency table"
tap_like "$out" $'\nduo +\\* +0 +2 +0\n' "stats: duo * held 0, peak 2, expired 0"

out=$(rls unload --dev "$BED_GW_DEV" 2>&1) && st=0 || st=$?
tap_is "$st" 0 "rlshape unload exits 0"

tap_done
