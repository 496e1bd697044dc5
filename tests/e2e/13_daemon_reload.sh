#!/usr/bin/env bash
# `rlshape daemon`'s SIGHUP reload runs `rlshape load` in a child and goes on settling while
# it runs (issue 11, item 5). The child is held inside open(2) of the table by a fanotify
# permission mark (tests/lib/hold_open.py): a table on a hung file system, with no hook in
# rlshape. What is asserted:
#   1. while the reload's child is held, responses are settled exactly (token_day_used equals
#      the upstream's usage) and the child is still there, waiting;
#   2. two more SIGHUPs during that reload make one reload after it, not two, and both end
#      "reloaded" once the hold is let go;
#   3. with --reload-timeout-s 1, a held child is killed, the log says so, the live table
#      stays, and the daemon goes on settling;
#   4. SIGTERM during a held reload: the daemon exits 0 and leaves no `load` behind.
set -euo pipefail

# shellcheck source=tests/lib/suite.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/suite.sh"
suite_programs 13_daemon_reload

PORT=8000
KEY=tok-key-crash # account "crash", tier daily: tpd only, huge
ACCOUNT=crash
USAGE=50          # x-mock-tokens 5,45: what the upstream reports for each answer

suite_one_day 90 # the run takes well under a minute

bed_up
suite_upstream "$PORT"

# The table the daemon reloads: a copy, so that the mark holds only this test's opens.
TABLE=$BED_DIR/tokens.json
cp "$BED_REPO/tests/e2e/data/tokens.json" "$TABLE"
out=$(rls load "$TABLE" --dev "$BED_GW_DEV" 2>&1) && st=0 || st=$?
tap_is "$st" 0 "rlshape load exits 0 ($out)"

# ---- helpers ------------------------------------------------------------------------------

start_daemon() { # [OPTIONS]
	bed_spawn bed_gw "$RLS" daemon --dev "$BED_GW_DEV" --config "$TABLE" "$@"
	DAEMON_PID=$BED_LAST_PID
	DAEMON_LOG=$BED_LAST_LOG
	bed_wait_until 10 grep -q 'settling token usage' "$DAEMON_LOG"
}
stop_daemon() {
	kill -TERM "$DAEMON_PID"
	bed_wait_until 10 not_alive "$DAEMON_PID" || kill -KILL "$DAEMON_PID"
	wait "$DAEMON_PID" && st=0 || st=$?
}
not_alive() {
	! _bed_alive "$1"
}
log_lines() { # ERE: lines of the daemon's log that match
	local n
	n=$(grep -cE -- "$1" "$DAEMON_LOG") || true
	echo "${n:-0}"
}
log_has() { # ERE N: at least N lines match
	(($(log_lines "$1") >= $2))
}

# hold: every open of $TABLE waits from now on; HELD_PID is the first opener held.
hold() {
	rm -f "$BED_DIR/hold.ready" "$BED_DIR/held"
	bed_spawn bed_gw python3 "$BED_REPO/tests/lib/hold_open.py" "$TABLE" \
		"$BED_DIR/hold.ready" "$BED_DIR/held"
	HOLDER_PID=$BED_LAST_PID
	bed_wait_file "$BED_DIR/hold.ready" 10
}
release() {
	kill -TERM "$HOLDER_PID"
	wait "$HOLDER_PID" || true
}
held_open() {
	[[ -s $BED_DIR/held ]]
}
# hup_until_held DESC: one test: SIGHUP, then the reload's child is held in open(); sets
# HELD_PID (not in tap_ok, whose subshell would keep it).
hup_until_held() {
	local st=0
	kill -HUP "$DAEMON_PID"
	bed_wait_until 20 held_open || st=$?
	HELD_PID=$(head -n1 "$BED_DIR/held" 2>/dev/null) || true
	tap_is "$st" 0 "$1"
}

# respond N: N answers with usage $USAGE each; their line from loadgen.
respond() {
	bed_client "$LOADGEN" --target "$BED_UP4:$PORT" -c 2 -n "$1" -k "$KEY" \
		-H "x-mock-tokens: 5,45" 2>&1 || true
}
# wait_settled DESC WANT: token_day_used of $ACCOUNT reaches WANT (the daemon settled).
wait_settled() {
	if bed_wait_until 20 token_day_used_is "$ACCOUNT" "$2" 2>/dev/null; then
		tap_is "$2" "$2" "$1"
	else
		tap_is "$(token_day_used "$ACCOUNT")" "$2" "$1"
		tap_diag "daemon log, last lines:" "$(tail -n 5 "$DAEMON_LOG")"
	fi
}

# ---- 1. settling while the reload's child is held ----------------------------------------------

start_daemon
hold
hup_until_held "SIGHUP: the reload's rlshape load is held in open() of the table"
tap_ok "the daemon logged the reload's start" \
	bed_wait_until 10 log_has "SIGHUP: reloading $TABLE" 1
tap_is "$(respond 20)" "sent=20 status_200=20 status_429=0 other=0 errors=0" \
	"20 answers of $USAGE tokens while the reload runs"
wait_settled "during the reload they are settled exactly: token_day_used = 20 x $USAGE" \
	$((20 * USAGE))
tap_ok "the reload's rlshape load (pid $HELD_PID) is still held meanwhile" _bed_alive "$HELD_PID"
tap_is "$(log_lines 'reloaded ')" 0 "no reload has ended yet"

# ---- 2. SIGHUPs during a reload: one more reload after it -------------------------------------

kill -HUP "$DAEMON_PID"
tap_ok "a SIGHUP during the reload is kept for later" \
	bed_wait_until 10 log_has "SIGHUP during the reload of $TABLE" 1
kill -HUP "$DAEMON_PID"
tap_is "$(respond 4)" "sent=4 status_200=4 status_429=0 other=0 errors=0" \
	"4 more answers (the daemon has taken the last SIGHUP once they are settled)"
wait_settled "settled: token_day_used = 24 x $USAGE" $((24 * USAGE))
release
tap_ok "let go, the held reload and the one kept for later both end \"reloaded\"" \
	bed_wait_until 30 log_has "reloaded $TABLE\$" 2
tap_is "$(log_lines "SIGHUP: reloading $TABLE")" 2 "three SIGHUPs made two reloads, not three"
tap_is "$(log_lines "SIGHUP during the reload")" 1 "the kept SIGHUP was logged once"
tap_ok "the held child is gone" not_alive "$HELD_PID"
stop_daemon
tap_is "$st" 0 "the daemon exits 0 on SIGTERM"

# ---- 3. a reload that runs too long is killed ------------------------------------------------

sha_before=$(rls status --dev "$BED_GW_DEV" --json |
	python3 -c 'import json, sys; s = json.load(sys.stdin)[0]; print(s["sha256"], s["generation"])')
start_daemon --reload-timeout-s 1
hold
hup_until_held "SIGHUP (--reload-timeout-s 1): the reload is held"
tap_ok "the daemon kills the reload past its timeout and says the live table stays" \
	bed_wait_until 20 log_has "reload of $TABLE killed after 1 s; the live table stays" 1
tap_is "$(log_lines 'still running after 1 s \(--reload-timeout-s\): killing it')" 1 \
	"the log says why it was killed"
tap_ok "the killed child is gone" bed_wait_until 10 not_alive "$HELD_PID"
tap_is "$(rls status --dev "$BED_GW_DEV" --json |
	python3 -c 'import json, sys; s = json.load(sys.stdin)[0]; print(s["sha256"], s["generation"])')" \
	"$sha_before" "the live table and its generation are unchanged"
tap_ok "the daemon is still running" _bed_alive "$DAEMON_PID"
tap_is "$(respond 2)" "sent=2 status_200=2 status_429=0 other=0 errors=0" "2 more answers"
wait_settled "and settles them: token_day_used = 26 x $USAGE" $((26 * USAGE))

# ---- 4. stopping during a held reload --------------------------------------------------------

rm -f "$BED_DIR/held"
hup_until_held "SIGHUP again: held"
stop_daemon
tap_is "$st" 0 "SIGTERM during a held reload: the daemon exits 0"
tap_ok "and its rlshape load is gone too" bed_wait_until 10 not_alive "$HELD_PID"
tap_is "$(log_lines "stopping during the reload of $TABLE")" 1 "the log says the reload was stopped"
release

# ---- the end ----------------------------------------------------------------------------------

out=$(rls unload --dev "$BED_GW_DEV" 2>&1) && st=0 || st=$?
tap_is "$st" 0 "rlshape unload exits 0"
tap_ok "pins removed ($BED_PIN_DIR)" test ! -e "$BED_PIN_DIR"

tap_done
