#!/usr/bin/env bash
# The four vendor examples end to end (issue 6): for each of examples/{gmi-cloud,moonshot,
# sambanova,model-studio}/tiers.json in turn, on one bed: take the committed table, add an
# accounts section (python3, at run time, so the copy cannot drift from the example), scale a
# limit down where the real number is too large to reach in a test (each such change is said
# in a comment and in a TAP diag line), `rlshape load` it on the gateway, send real HTTP/1.1
# requests with loadgen (key in authorization: Bearer, model in the JSON body) to
# mock-upstream, and assert the limit holds exactly: admitted == limit, every other request
# a 429 with the vendor's message, and the upstream's log holding exactly the admitted ones.
# `rlshape unload` between vendors; at the end no pin is left.
#
#   gmi-cloud     Tier 1 deepseek-ai/DeepSeek-R1, TPM (scaled 30,000 -> 60), `rlshape daemon`
#                 settling the upstream's usage: 1 admitted, then "Allocated quota exceeded".
#                 (The video model's RPH is TBD in the example: no rph to test.)
#   moonshot      Tier0 "*", RPM 3 with burst 3 as in the example: 3 admitted back to back,
#                 then "Requests rate limit exceeded" (retried once with a second account when
#                 a UTC minute boundary fell inside the run); concurrency 1: with one request
#                 held at the upstream the next gets "Too many concurrent requests".
#   sambanova     sambacloud DeepSeek-R1, RPD (scaled 12,000 -> 4): 4 admitted, then
#                 "Requests rate limit exceeded" with limit 4.
#   model-studio  global: a retired model (rpm 0) admits nothing; qwen-plus-2025-12-01 (RPM 60,
#                 no burst in the example, so RPS = RPM/60 with burst 1): two back to back, the
#                 second gets "Request rate increased too quickly".
set -euo pipefail

# shellcheck source=tests/lib/suite.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/suite.sh"
suite_programs 21_vendors

EXAMPLES=$BED_REPO/examples
PORT=8000 # every example listens on 8000

for v in gmi-cloud moonshot sambanova model-studio; do
	if [[ ! -r $EXAMPLES/$v/tiers.json ]]; then
		echo "21_vendors: $EXAMPLES/$v/tiers.json is missing" >&2
		exit 1
	fi
done

# The RPD count must not straddle a UTC midnight: the run takes well under 90 s.
suite_one_day 120
START_DAY=$(($(date -u +%s) / 86400))

bed_up

suite_upstream "$PORT"

# ---- helpers ------------------------------------------------------------------------------

loadgen() { # ARGS...: its one-line summary
	bed_client "$LOADGEN" --target "$BED_UP4:$PORT" "$@" 2>&1 || true
}

# vendor_table VENDOR OUT EDITS_JSON: examples/VENDOR/tiers.json with the edits applied.
# EDITS_JSON: {"accounts": {...}, "set": [[TIER, MODEL, FIELD, VALUE], ...]}. A "set" must
# change a value the example has (a renamed model or field fails here, not silently).
cat >"$BED_DIR/table.py" <<'PY'
import json, sys

src, out, edits = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
with open(src, encoding="utf-8") as f:
    doc = json.load(f)
if "accounts" in doc:
    sys.exit("%s already has accounts" % src)
for tier, model, field, value in edits.get("set", []):
    entry = doc["tiers"][tier][model]
    if field not in entry:
        sys.exit("%s: tiers.%s.%s has no %s to scale" % (src, tier, model, field))
    print("%s: tiers.%s.%s.%s %s -> %s" % (src.split("/")[-2], tier, model, field,
                                           entry[field], value))
    entry[field] = value
doc["accounts"] = edits["accounts"]
with open(out, "w", encoding="utf-8") as f:
    json.dump(doc, f, indent=2)
PY
vendor_table() {
	python3 "$BED_DIR/table.py" "$EXAMPLES/$1/tiers.json" "$2" "$3"
}

# check429 FILE TYPE MESSAGE LIMIT: the status line, the JSON body (message, type, code) and
# x-ratelimit-limit-<TYPE> = LIMIT with remaining 0.
cat >"$BED_DIR/check429.py" <<'PY'
import sys
from check429_headers import check_error_body, finish, read_429

path, kind, msg, limit = sys.argv[1:5]
errs = []
hdr, body, _ = read_429(path, errs)
for name, want in (("x-ratelimit-limit-" + kind, limit), ("x-ratelimit-remaining-" + kind, "0")):
    if hdr.get(name) != want:
        errs.append("%s: %r, want %r" % (name, hdr.get(name), want))
check_error_body(body, errs, msg, kind)
finish(hdr, errs)
PY
check429() {
	PYTHONPATH="$BED_REPO/tests/lib" python3 "$BED_DIR/check429.py" "$@"
}

MSG_WINDOW="Requests rate limit exceeded"
MSG_BURST="Request rate increased too quickly"
MSG_TOKENS="Allocated quota exceeded"

# load VENDOR TABLE ACCOUNTS: rlshape load, two tests.
load() {
	local out st
	out=$(rls load "$2" --dev "$BED_GW_DEV" 2>&1) && st=0 || st=$?
	tap_is "$st" 0 "$1: rlshape load exits 0"
	[[ $st == 0 ]] || tap_diag "$out"
	tap_like "$out" "loaded .* on $BED_GW_DEV: $3 account" "$1: rlshape load reports the table, $3 account(s)"
}

# unload VENDOR: rlshape unload, and its pins are gone.
unload() {
	local out st
	out=$(rls unload --dev "$BED_GW_DEV" 2>&1) && st=0 || st=$?
	tap_is "$st" 0 "$1: rlshape unload exits 0"
	[[ $st == 0 ]] || tap_diag "$out"
	tap_ok "$1: pins removed ($BED_PIN_DIR)" test ! -e "$BED_PIN_DIR"
}

minute_has_room() {
	(($(date -u +%s) % 60 < 55))
}

# ---- gmi-cloud: TPM, settled by the daemon from the upstream's usage ------------------------------

# Tier 1 gives deepseek-ai/DeepSeek-R1 a TPM of 30,000: a budget of token_burst = TPM/60 = 500
# that refills at 500 tokens a second, too fast to count exactly in a test. Scaled to TPM 60
# (token_burst 1, refill 1 token a second): the first request is admitted on the budget of 1;
# the upstream reports 1100 tokens (x-mock-tokens: 100,1000), which the daemon charges (the
# reservation alone, ~330, would leave about -330), so the budget stays below zero for about 18
# minutes and every further request gets the token 429.
GMI_TABLE=$BED_DIR/gmi-cloud.json
GMI_MODEL=deepseek-ai/DeepSeek-R1
GMI_KEY=gmi-key-tier1
scaled=$(vendor_table gmi-cloud "$GMI_TABLE" \
	'{"accounts": {"gmi-org": {"tier": "Tier 1", "keys": ["'"$GMI_KEY"'"]}},
	  "set": [["Tier 1", "'"$GMI_MODEL"'", "tpm", 60]]}')
tap_diag "scaled copy (the real TPM cannot be counted exactly in a test): $scaled"
load gmi-cloud "$GMI_TABLE" 1
bed_spawn bed_gw "$RLS" daemon --dev "$BED_GW_DEV"
DAEMON_PID=$BED_LAST_PID
DAEMON_LOG=$BED_LAST_LOG
tap_ok "gmi-cloud: rlshape daemon --dev $BED_GW_DEV is running" _bed_alive "$DAEMON_PID"

tap_is "$(loadgen -c 1 -n 1 -k "$GMI_KEY" -m "$GMI_MODEL" -H 'x-mock-tokens: 100,1000')" \
	"sent=1 status_200=1 status_429=0 other=0 errors=0" \
	"gmi-cloud: Tier 1 $GMI_MODEL (TPM scaled to 60): the first request is admitted"

# The daemon settles it: the budget goes from 1 - reservation (~ -330) to 1 - 1100 (+ refill).
cat >"$BED_DIR/budget.py" <<'PY'
import json, subprocess, sys

pins, account = sys.argv[1], sys.argv[2]
def dump(m):
    out = subprocess.run(["bpftool", "-j", "map", "dump", "pinned", pins + "/" + m],
                         check=True, capture_output=True, text=True).stdout
    return [e["formatted"] for e in json.loads(out)]
acct = [e["key"] for e in dump("rls_accounts") if e["value"]["name"] == account]
print(" ".join(str(e["value"]["token_budget"]) for e in dump("rls_counters")
               if acct and e["key"]["account"] == acct[0]) or "none")
PY
gmi_budget() {
	python3 "$BED_DIR/budget.py" "$BED_PIN_DIR" gmi-org
}
settled() { # the budget shows the 1100 tokens of usage: 1 - 1100 + a few seconds' refill
	local b
	b=$(gmi_budget)
	[[ $b =~ ^-?[0-9]+$ ]] && ((b <= -1000))
}
if bed_wait_until 20 settled 2>/dev/null; then
	tap_ok "gmi-cloud: the daemon charged the upstream's usage (1100 tokens): budget $(gmi_budget)" true
else
	tap_is "$(gmi_budget)" "<= -1000" "gmi-cloud: the daemon charged the upstream's usage (1100 tokens)"
	tap_diag "daemon log, last lines:" "$(tail -n 5 "$DAEMON_LOG")"
fi

tap_is "$(loadgen -c 2 -n 4 -k "$GMI_KEY" -m "$GMI_MODEL" --save-429 "$BED_DIR/gmi.http")" \
	"sent=4 status_200=0 status_429=4 other=0 errors=0" \
	"gmi-cloud: the TPM budget is spent: the next 4 requests are rejected"
tap_ok "gmi-cloud 429: \"$MSG_TOKENS\", type tokens, x-ratelimit-limit-tokens 60, remaining 0" \
	check429 "$BED_DIR/gmi.http" tokens "$MSG_TOKENS" 60
tap_is "$(log_count " key=Bearer $GMI_KEY model=$GMI_MODEL ")" 1 \
	"gmi-cloud: the upstream saw exactly the 1 admitted request"

kill -TERM "$DAEMON_PID"
st=0
wait "$DAEMON_PID" || st=$?
tap_is "$st" 0 "gmi-cloud: the daemon exits 0 on SIGTERM"
unload gmi-cloud

# ---- moonshot: Tier0, RPM 3 with burst 3 (the example's own numbers) ----------------------------

# No scaling: Tier0 is RPM 3, burst 3 (TPM 500,000 and TPD 1,500,000 are not reached by 5 small
# requests). The rpm window is the calendar minute: if a boundary fell inside the run, once more
# with the second account.
MOON_TABLE=$BED_DIR/moonshot.json
vendor_table moonshot "$MOON_TABLE" \
	'{"accounts": {"moon-a": {"tier": "Tier0", "keys": ["moon-key-a"]},
	               "moon-b": {"tier": "Tier0", "keys": ["moon-key-b"]},
	               "moon-c": {"tier": "Tier0", "keys": ["moon-key-c"]}}}' >/dev/null
tap_diag "moonshot: the example's Tier0 as is (rpm 3, burst 3, concurrency 1)"
load moonshot "$MOON_TABLE" 3
for acct in a b; do
	bed_wait_until 10 minute_has_room
	before=$(($(date -u +%s) / 60))
	moon_out=$(loadgen -c 1 -n 5 -k "moon-key-$acct" -m kimi-k2 --save-429 "$BED_DIR/moon-$acct.http")
	after=$(($(date -u +%s) / 60))
	((before != after)) || break
	tap_diag "moonshot: a minute boundary passed during the run of moon-$acct: again with the next account"
done
tap_is "$moon_out" "sent=5 status_200=3 status_429=2 other=0 errors=0" \
	"moonshot: Tier0 (rpm 3, burst 3), 5 back to back: 3 admitted, 2 rejected"
tap_ok "moonshot 429: \"$MSG_WINDOW\", x-ratelimit-limit-requests 3, remaining 0" \
	check429 "$BED_DIR/moon-$acct.http" requests "$MSG_WINDOW" 3
tap_is "$(log_count " key=Bearer moon-key-$acct model=kimi-k2 ")" 3 \
	"moonshot: the upstream saw exactly the 3 admitted requests of moon-$acct"

# Tier0's concurrency 1: one request held at the upstream, the next one is refused; two
# admitted in all, inside rpm 3 whatever the minute.
bed_spawn bed_client curl -sS --noproxy '*' --max-time 30 -o /dev/null -w '%{http_code}' \
	-H 'authorization: Bearer moon-key-c' -H "x-mock-hold-file: $BED_DIR/moon-c.go" \
	--data '{"model":"kimi-k2","messages":[]}' "http://$BED_UP4:$PORT/v1/chat/completions"
moon_held=$BED_LAST_PID
moon_held_log=$BED_LAST_LOG
moon_c_arrived() {
	(($(log_count ' key=Bearer moon-key-c ') >= 1))
}
tap_ok "moonshot: moon-c's first request is held at the upstream" bed_wait_until 20 moon_c_arrived
tap_is "$(loadgen -c 1 -n 1 -k moon-key-c -m kimi-k2 --save-429 "$BED_DIR/moon-c.http")" \
	"sent=1 status_200=0 status_429=1 other=0 errors=0" \
	"moonshot: Tier0 (concurrency 1): a second request while one is in flight is rejected"
tap_ok "moonshot 429: \"Too many concurrent requests\", x-ratelimit-limit-concurrency 1" \
	check429 "$BED_DIR/moon-c.http" concurrency "Too many concurrent requests" 1
touch "$BED_DIR/moon-c.go"
bed_wait_until 20 eval "! kill -0 $moon_held 2>/dev/null" || true
tap_is "$(cat "$moon_held_log")" 200 "moonshot: the held request finishes with 200"
tap_is "$(loadgen -c 1 -n 1 -k moon-key-c -m kimi-k2)" \
	"sent=1 status_200=1 status_429=0 other=0 errors=0" \
	"moonshot: once it finished, the next request is admitted"
unload moonshot

# ---- sambanova: RPD of a production model ---------------------------------------------------------

# DeepSeek-R1 is RPM 60 (burst 60), RPD 12,000: 12,000 requests are too many for a test. Scaled
# to RPD 4; RPM 60 with burst 60 is kept and is not reached by 6 requests.
SN_TABLE=$BED_DIR/sambanova.json
SN_KEY=sn-key-1
scaled=$(vendor_table sambanova "$SN_TABLE" \
	'{"accounts": {"sn-dev": {"tier": "sambacloud", "keys": ["'"$SN_KEY"'"]}},
	  "set": [["sambacloud", "DeepSeek-R1", "rpd", 4]]}')
tap_diag "scaled copy (12,000 requests a day are too many for a test): $scaled"
load sambanova "$SN_TABLE" 1
# Requests of a realistic size: a tiny one's 429 leaves the -day headers out (README, "The 429").
tap_is "$(loadgen -c 2 -n 6 -k "$SN_KEY" -m DeepSeek-R1 --body-pad 200 --save-429 "$BED_DIR/sn.http")" \
	"sent=6 status_200=4 status_429=2 other=0 errors=0" \
	"sambanova: DeepSeek-R1 (RPD scaled to 4), 6 requests on 2 connections: 4 admitted, 2 rejected"
tap_ok "sambanova 429: \"$MSG_WINDOW\", x-ratelimit-limit-requests 4, remaining 0" \
	check429 "$BED_DIR/sn.http" requests "$MSG_WINDOW" 4
tap_is "$(log_count " key=Bearer $SN_KEY model=DeepSeek-R1 ")" 4 \
	"sambanova: the upstream saw exactly the 4 admitted requests"
sn_http=$(tr -d '\r' <"$BED_DIR/sn.http")
tap_like "$sn_http" $'\nx-ratelimit-limit-requests-day: 4\n' \
	"sambanova 429 carries x-ratelimit-limit-requests-day (an RPD limit applies)"
tap_like "$sn_http" $'\nx-ratelimit-remaining-requests-day: 0\n' \
	"sambanova 429 carries x-ratelimit-remaining-requests-day: 0"
tap_like "$sn_http" $'\nx-ratelimit-reset-requests-day: [0-9]+s\n' \
	"sambanova 429 carries x-ratelimit-reset-requests-day"
unload sambanova

# ---- model-studio: a retired model (rpm 0) and the RPS = RPM/60 pacing -----------------------------

# No scaling. global qwen-plus-2024-11-27 is retired (rpm 0, tpm 0): nothing is admitted.
# global qwen-plus-2025-12-01 is RPM 60 with no burst in the example: RPS = RPM/60 = 1 with a
# burst of max(1, 60/60) = 1, so of two requests sent back to back the second is rejected by the
# pacing, while the minute (60) has room: no minute-boundary race.
MS_TABLE=$BED_DIR/model-studio.json
MS_KEY=ms-key-global
MS_RETIRED=qwen-plus-2024-11-27
MS_LIVE=qwen-plus-2025-12-01
vendor_table model-studio "$MS_TABLE" \
	'{"accounts": {"ms-global": {"tier": "global", "keys": ["'"$MS_KEY"'"]}}}' >/dev/null
tap_diag "model-studio: the example's global tier as is ($MS_RETIRED rpm 0, $MS_LIVE rpm 60, no burst)"
load model-studio "$MS_TABLE" 1
tap_is "$(loadgen -c 1 -n 3 -k "$MS_KEY" -m "$MS_RETIRED" --save-429 "$BED_DIR/ms-retired.http")" \
	"sent=3 status_200=0 status_429=3 other=0 errors=0" \
	"model-studio: retired $MS_RETIRED (rpm 0): all 3 rejected"
tap_ok "model-studio retired 429: \"$MSG_WINDOW\", x-ratelimit-limit-requests 0, remaining 0" \
	check429 "$BED_DIR/ms-retired.http" requests "$MSG_WINDOW" 0
tap_is "$(log_count " model=$MS_RETIRED ")" 0 "model-studio: the upstream saw none of them"

tap_is "$(loadgen -c 1 -n 2 -k "$MS_KEY" -m "$MS_LIVE" --save-429 "$BED_DIR/ms-live.http")" \
	"sent=2 status_200=1 status_429=1 other=0 errors=0" \
	"model-studio: $MS_LIVE (rpm 60, RPS 1, burst 1): two back to back, 1 admitted, 1 rejected"
tap_ok "model-studio pacing 429: \"$MSG_BURST\", type requests, x-ratelimit-limit-requests 60" \
	python3 -c '
import sys
raw = open(sys.argv[1], "rb").read().decode()
assert raw.startswith("HTTP/1.1 429 Too Many Requests\r\n"), raw[:40]
assert "\r\nx-ratelimit-limit-requests: 60\r\n" in raw, raw
assert raw.rstrip().endswith("{\"error\":{\"message\":\"Request rate increased too quickly\",\"type\":\"requests\",\"param\":null,\"code\":\"rate_limit_exceeded\"}}"), raw
' "$BED_DIR/ms-live.http"
tap_is "$(log_count " key=Bearer $MS_KEY model=$MS_LIVE ")" 1 \
	"model-studio: the upstream saw exactly the 1 admitted request"
unload model-studio

# ---- nothing left --------------------------------------------------------------------------------

# moon-a's 3 (and moon-b's, when a minute boundary made the run go again), moon-c's 2.
moon_ab=$(log_count ' key=Bearer moon-key-[ab] ')
tap_is "$(log_count .)" $((1 + moon_ab + 2 + 4 + 1)) \
	"the upstream's log holds exactly the admitted requests (1 + $moon_ab + 2 + 4 + 1)"
tap_ok "no XDP program left on $BED_GW_DEV" \
	bash -c "! ip -n '$BED_GW_NS' link show dev '$BED_GW_DEV' | grep -qE 'xdp|prog/'"
tap_ok "no pin directory left ($BED_PIN_DIR)" test ! -e "$BED_PIN_DIR"
tap_is "$(($(date -u +%s) / 86400))" "$START_DAY" "the run stayed inside one UTC day (RPD count exact)"

tap_done
