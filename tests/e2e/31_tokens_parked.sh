#!/usr/bin/env bash
# Responses that end while `rlshape daemon` is down (issue 11, item 8). The ring holds 3,949
# events; what it cannot take is parked whole, tail included, in rls_parked (4,096 events), and
# only what that cannot take either is summed in rls_pending and charged by estimate. What is
# asserted, with no daemon running until the end:
#   1. the ring and rls_parked are as large as include/rlshape.h says;
#   2. ring + parked answers of a known usage on account "crash": the ring takes its 3,949,
#      rls_parked the rest, none goes to rls_pending (rlshape stats' packet counters);
#   3. 40 more answers on account "plain", past both: each counted in responses_pending;
#   4. the daemon starts: "crash" is charged exactly the upstream's usage (token_day_used),
#      rls_parked is empty, and "plain" is charged the estimate, never less than its usage.
set -euo pipefail

# shellcheck source=tests/lib/suite.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/suite.sh"
suite_programs 31_tokens_parked

PORT=8000
USAGE=50   # x-mock-tokens 5,45: what the upstream reports for each answer
EXTRA=40   # answers past the ring and rls_parked

suite_one_day 150 # the run takes well under two minutes

bed_up
suite_upstream "$PORT"
out=$(rls load "$BED_REPO/tests/e2e/data/tokens.json" --dev "$BED_GW_DEV" 2>&1) && st=0 || st=$?
tap_is "$st" 0 "rlshape load exits 0 ($out)"

# ---- 1. the sizes ---------------------------------------------------------------------------

map_field() { # MAP FIELD: from bpftool map show; "none" without that map or field
	bpftool -j map show pinned "$BED_PIN_DIR/$1" 2>/dev/null |
		python3 -c 'import json, sys; print(json.load(sys.stdin).get(sys.argv[1], "none"))' \
			"$2" 2>/dev/null || echo none
}
# A ring record is the event (struct rls_response_event) and an 8-byte header.
EVENT=4240
RING=$(($(map_field rls_events max_entries) / (EVENT + 8)))
PARKED=4096
tap_is "$RING $(map_field rls_parked bytes_value) $(map_field rls_parked max_entries)" \
	"3949 $EVENT $PARKED" \
	"the ring holds 3,949 events; rls_parked $PARKED, of $EVENT bytes each (include/rlshape.h)"

# ---- 2. and 3. answers while no daemon runs ---------------------------------------------------

respond() { # KEY N: N answers of $USAGE tokens; loadgen's line
	bed_client "$LOADGEN" --target "$BED_UP4:$PORT" -c 4 -n "$2" -k "$1" -T 20000 \
		-H "x-mock-tokens: 5,45" 2>&1 || true
}
EXACT=$((RING + PARKED))
tap_is "$(respond tok-key-crash "$EXACT")" \
	"sent=$EXACT status_200=$EXACT status_429=0 other=0 errors=0" \
	"crash: $EXACT answers of $USAGE tokens, no daemon running"
metered_all() { # N: rlshape stats has seen N responses end
	snapshot_stats
	(($(packets responses_metered) + $(packets responses_parked) + $(packets responses_pending) >= $1))
}
bed_wait_until 20 metered_all "$EXACT" || true
tap_is "$(packets responses_metered) $(packets responses_parked) $(packets responses_pending)" \
	"$RING $PARKED 0" "crash: the ring took $RING, rls_parked the other $PARKED, rls_pending none"

tap_is "$(respond tok-key-plain "$EXTRA")" \
	"sent=$EXTRA status_200=$EXTRA status_429=0 other=0 errors=0" \
	"plain: $EXTRA answers more, with ring and rls_parked full"
bed_wait_until 20 metered_all $((EXACT + EXTRA)) || true
tap_is "$(packets responses_metered) $(packets responses_parked) $(packets responses_pending)" \
	"$RING $PARKED $EXTRA" "plain: all $EXTRA counted in responses_pending"
reserved_plain=$(token_day_used plain)

# ---- 4. the daemon starts ---------------------------------------------------------------------

bed_spawn bed_gw "$RLS" daemon --dev "$BED_GW_DEV"
DAEMON_PID=$BED_LAST_PID
DAEMON_LOG=$BED_LAST_LOG
want=$((EXACT * USAGE))
if bed_wait_until 30 token_day_used_is crash "$want" 2>/dev/null; then got=$want; else
	got=$(token_day_used crash)
	tap_diag "daemon log, last lines:" "$(tail -n 5 "$DAEMON_LOG")"
fi
tap_is "$got" "$want" "crash: charged the upstream's usage exactly ($EXACT x $USAGE)"
tap_is "$(bpftool -j map dump pinned "$BED_PIN_DIR/rls_parked")" "[]" "rls_parked is empty"
tap_ok "the daemon says it settled the $PARKED parked responses" \
	bed_wait_until 10 grep -q "drained parked: $PARKED responses" "$DAEMON_LOG"
tap_ok "the daemon drained the $EXTRA pending responses" \
	bed_wait_until 20 grep -q "drained pending: $EXTRA responses" "$DAEMON_LOG"
plain=$(token_day_used plain)
tap_diag "plain: $EXTRA answers of $USAGE tokens, reserved $reserved_plain," \
	"charged $plain by estimate"
tap_ok "plain: the estimate is never below the usage ($plain >= $EXTRA x $USAGE)" \
	test "$plain" -ge $((EXTRA * USAGE))

kill -TERM "$DAEMON_PID"
wait "$DAEMON_PID" && st=0 || st=$?
tap_is "$st" 0 "the daemon exits 0 on SIGTERM"
out=$(rls unload --dev "$BED_GW_DEV" 2>&1) && st=0 || st=$?
tap_is "$st" 0 "rlshape unload exits 0"
tap_ok "pins removed ($BED_PIN_DIR)" test ! -e "$BED_PIN_DIR"

tap_done
