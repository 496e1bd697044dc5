#!/usr/bin/env bash
# `rlshape unload`: after a load, a reload and traffic, it detaches the XDP program, removes
# every pin, and the kernel frees every program, map and link this load made (found by id
# before the unload; BPF objects are freed asynchronously, so the suite waits for them).
# A reload over a scratch map an older rlshape pinned with another layout keeps the counters.
# Before that: the pinned maps are BTF-typed (bpftool prints named fields), `rlshape status`
# shows the link, the program and the table, and a reload frees the program it replaced.
set -euo pipefail

# shellcheck source=tests/lib/suite.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/suite.sh"
suite_programs 12_unload

TABLE=$BED_REPO/tests/e2e/data/unload.json
PORT=8000
KEY=solo-key-1

if ! command -v bpftool >/dev/null; then
	echo "12_unload: bpftool is missing (tools/install-deps.sh installs it)" >&2
	exit 1
fi

bed_up

suite_upstream "$PORT"
URL4="http://$BED_UP4:$PORT/v1/chat/completions"


json_field() { # FIELD: from a JSON object (or the first element of an array) on stdin
	python3 -c '
import json, sys
d = json.load(sys.stdin)
d = d[0] if isinstance(d, list) else d
print(d[sys.argv[1]])' "$1"
}

# Ids of everything of a kind the kernel has now: prog, map or link ("ID: TYPE ..." lines).
live_ids() {
	bpftool "$1" show | awk -F: '/^[0-9]+:/ { printf "%s ", $1 }'
}

# gone KIND ID...: none of these ids is live any more.
gone() {
	local kind=$1 id live
	shift
	live=" $(live_ids "$kind") "
	for id; do
		[[ $live != *" $id "* ]] || return 1
	done
}

# solo's gpt-big has rpd 2: its three requests must not straddle a UTC midnight.
suite_one_day 30

# ---- load, reload, traffic --------------------------------------------------------------------

run_rls load "$TABLE" --dev "$BED_GW_DEV"
tap_is "$RC" 0 "load exits 0"
PROG_FIRST=$(rls status --dev "$BED_GW_DEV" --json | json_field prog_id)
# The maps only that program holds (.rodata and the like), not the pinned ones it shares.
FIRST_OWN_MAPS=""
for id in $(bpftool -j prog show id "$PROG_FIRST" | json_field map_ids | tr -d '[],'); do
	# (no `| grep -q`: under pipefail, bpftool's SIGPIPE would fail the pipeline)
	[[ $(bpftool map show id "$id") == *" name rls_"* ]] || FIRST_OWN_MAPS+="$id "
done
run_rls load "$TABLE" --dev "$BED_GW_DEV"
tap_is "$RC" 0 "reload of the same table exits 0"

run_rls status --dev "$BED_GW_DEV" --json
STATUS_JSON=$OUT
LINK_ID=$(json_field link_id <<<"$STATUS_JSON")
PROG_ID=$(json_field prog_id <<<"$STATUS_JSON")
tap_ok "the reload attached a new program ($PROG_FIRST -> $PROG_ID)" test "$PROG_ID" != "$PROG_FIRST"
tap_ok "the replaced program $PROG_FIRST is freed" bed_wait_until 10 gone prog "$PROG_FIRST"
# shellcheck disable=SC2086 # word splitting wanted
tap_ok "... and so are the maps it alone held (${FIRST_OWN_MAPS:-none})" \
	bed_wait_until 10 gone map $FIRST_OWN_MAPS
tap_ok "the replaced program had maps of its own (.rodata ...)" test -n "$FIRST_OWN_MAPS"

codes=""
for _ in 1 2 3; do
	codes+="$(post_status "$URL4" -H "authorization: Bearer $KEY" -H 'content-type: application/json' \
		-d '{"model":"gpt-big","messages":[]}') "
done
tap_is "$codes" "200 200 429 " "solo gpt-big (rpd 2): 200 200 429"
tap_is "$(bed_client "$LOADGEN" --target "$BED_UP4:$PORT" -c 2 -n 4 -m other 2>&1 || true)" \
	"sent=4 status_200=4 status_429=0 other=0 errors=0" "keyless traffic to \"*\" (rpd 5) passes"

# ---- a reload whose scratch layout differs keeps every counter ---------------------------------

# Per-CPU scratch maps are work space, never pinned: a reload makes fresh ones of its own
# layout. An older rlshape pinned them too, so one with a smaller parse window left an
# rls_scratch of another value size under the pin directory; made here by hand as it would
# have (bpftool pins what it creates, so in the gateway's namespace like every pin).
# (rm: a build that still pins its own scratch has one there already.)
rm -f "$BED_PIN_DIR/rls_scratch"
bed_gw bpftool map create "$BED_PIN_DIR/rls_scratch" type percpu_array key 4 value 8 \
	entries 1 name rls_scratch
run_rls load "$TABLE" --dev "$BED_GW_DEV"
tap_is "$RC" 0 "a reload over an rls_scratch pin of another layout exits 0"
tap_like "$OUT" "^rlshape: reloaded .*counters kept" "... as a reload that kept the counters"
tap_ok "... and removes the stale scratch pin" test ! -e "$BED_PIN_DIR/rls_scratch"
tap_is "$(post_status "$URL4" -H "authorization: Bearer $KEY" -H 'content-type: application/json' \
	-d '{"model":"gpt-big","messages":[]}')" 429 "... and solo's spent gpt-big (rpd 2) still gets 429"
PROG_BEFORE_SCRATCH=$PROG_ID
PROG_ID=$(rls status --dev "$BED_GW_DEV" --json | json_field prog_id)

# ---- what is there before the unload ------------------------------------------------------------

run_rls status --dev "$BED_GW_DEV"
tap_is "$RC" 0 "rlshape status exits 0"
tap_like "$OUT" "attached +XDP link $LINK_ID, program $PROG_ID, interface $BED_GW_DEV " \
	"status shows the link, the program and the interface"
tap_like "$OUT" "table +$TABLE" "status shows the table's path"
tap_like "$OUT" "sha256 +$(sha256sum "$TABLE" | cut -d' ' -f1)" "status shows the table's sha256"
tap_like "$(ip -n "$BED_GW_NS" -d link show dev "$BED_GW_DEV")" "prog/xdp id $PROG_ID " \
	"ip link shows program $PROG_ID on $BED_GW_DEV"
tap_is "$(bpftool -j prog show pinned "$BED_PIN_DIR/prog_xdp" | json_field id)" "$PROG_ID" \
	"the pinned program is the attached one"
tap_is "$(bpftool -j prog show pinned "$BED_PIN_DIR/prog_xdp" | json_field name)" rlshape_xdp \
	"the program is named rlshape_xdp"
tap_is "$(bpftool -j link show pinned "$BED_PIN_DIR/link_xdp" | json_field id)" "$LINK_ID" \
	"the pinned link is the one status shows"

limits=$(bpftool map dump pinned "$BED_PIN_DIR/rls_limits")
for field in '"generation"' '"tier"' '"rpm": 120' '"rpd": 2' '"burst": 120' '"smooth_interval_ns"'; do
	tap_like "$limits" "$field" "bpftool map dump rls_limits prints $field"
done
counters=$(bpftool map dump pinned "$BED_PIN_DIR/rls_counters")
for field in '"account"' '"model"' '"smooth_tat_ns"' '"window_start"' '"window_count"'; do
	tap_like "$counters" "$field" "bpftool map dump rls_counters prints $field"
done
tap_like "$(bpftool map dump pinned "$BED_PIN_DIR/rls_anon_counters")" '"client"' \
	"bpftool map dump rls_anon_counters prints \"client\""

# Every map this load made: the pinned ones, and any other the program uses (.rodata ...).
# bpftool map show: "ID: TYPE  name NAME  flags ..."; the kernel keeps 15 bytes of a name.
MAP_IDS=""
for pin in "$BED_PIN_DIR"/rls_*; do
	show=$(bpftool map show pinned "$pin")
	show=${show%%$'\n'*}
	name=${pin##*/}
	tap_like "$show" "^[0-9]+: .* name ${name:0:15} " "pinned map $name has that name"
	MAP_IDS+="${show%%:*} "
done
# The data path's state maps (bpf/lib/maps.h), kept here as the explicit expectation of what a load
# pins: every one, and no scratch map (rls_scratch, rls_tc_scratch).
WANT_MAPS="rls_accounts rls_active rls_anon_counters rls_api_key_digests rls_api_keys rls_cidrs"
WANT_MAPS+=" rls_config rls_counters rls_cut_values rls_event_ids rls_events rls_flows rls_handshakes"
WANT_MAPS+=" rls_key_digest_cache rls_limits rls_models rls_packets rls_parked rls_pending"
WANT_MAPS+=" rls_reset_notes rls_settled rls_stats rls_stats_free rls_stats_next rls_stats_rows"
WANT_MAPS+=" rls_tails"
tap_is "$(cd "$BED_PIN_DIR" && LC_ALL=C ls -d rls_* | tr '\n' ' ' | sed 's/ $//')" "$WANT_MAPS" \
	"the 26 state maps of the data path are pinned, and nothing else named rls_"
tap_is "$(wc -w <<<"$MAP_IDS")" 26 "26 pinned maps, each with its own id"
# rls_config holds the key hash's secret: only root may open the pins.
tap_is "$(stat -c '%a %U' "$BED_PIN_ROOT" "$BED_PIN_DIR" "$BED_PIN_DIR/rls_config" | tr '\n' ' ')" \
	"700 root 700 root 600 root " "the pin directories are root's alone (0700), the pins too (0600)"
PROG_MAP_IDS=$(bpftool -j prog show id "$PROG_ID" | json_field map_ids | tr -d '[],')
tap_diag "program $PROG_ID, link $LINK_ID, maps $MAP_IDS(the program's: $PROG_MAP_IDS)"

# ---- unload -------------------------------------------------------------------------------------

# From another network namespace (here the suite's own, where the interface is not): pins are
# seen from everywhere, interfaces only from their own namespace. Refused, nothing changed.
RC=0
"$RLS" unload --dev "$BED_GW_DEV" >"$BED_DIR/rls.out" 2>"$BED_DIR/rls.err" || RC=$?
tap_is "$RC" 1 "rlshape unload from another network namespace exits 1"
tap_like "$(cat "$BED_DIR/rls.err")" "another network namespace.*nothing was changed" \
	"... and says to run it in the interface's namespace"
tap_ok "... and the pins are all still there" test -e "$BED_PIN_DIR/rls_flows" \
	-a -e "$BED_PIN_DIR/link_xdp"
tap_like "$(bed_gw ip link show dev "$BED_GW_DEV")" "xdp" "... and XDP is still attached"

run_rls unload --dev "$BED_GW_DEV"
tap_is "$RC" 0 "rlshape unload exits 0"
tap_is "$OUT" "rlshape: unloaded from $BED_GW_DEV" "rlshape unload says so"
tap_is "$ERR" "" "rlshape unload prints no error"

link=$(ip -n "$BED_GW_NS" -d link show dev "$BED_GW_DEV")
tap_ok "no XDP program on $BED_GW_DEV" bash -c "! grep -qE 'xdp|prog/' <<<'$link'"
tap_ok "$BED_PIN_DIR is gone" test ! -e "$BED_PIN_DIR"
# shellcheck disable=SC2086 # word splitting wanted
{
	tap_ok "program $PROG_ID is freed" bed_wait_until 10 gone prog "$PROG_ID" "$PROG_BEFORE_SCRATCH" "$PROG_FIRST"
	tap_ok "link $LINK_ID is freed" bed_wait_until 10 gone link "$LINK_ID"
	tap_ok "every map of this load is freed ($MAP_IDS$PROG_MAP_IDS)" \
		bed_wait_until 10 gone map $MAP_IDS $PROG_MAP_IDS
}

tap_is "$(post_status "$URL4" -H "authorization: Bearer $KEY" -H 'content-type: application/json' \
	-d '{"model":"gpt-big","messages":[]}')" 200 "requests pass again: the spent key gets a 200"
tap_ok "the upstream never saw solo's rejected request" \
	test "$(grep -c ' key=Bearer solo-key-1 model=gpt-big ' "$UP_LOG")" -eq 3

run_rls status --dev "$BED_GW_DEV"
tap_ok "status --dev $BED_GW_DEV exits non-zero" test "$RC" -ne 0
tap_like "$OUT$ERR" "not loaded on $BED_GW_DEV" "... and says rlshape is not loaded there"
run_rls unload --dev "$BED_GW_DEV"
tap_ok "a second unload exits non-zero" test "$RC" -ne 0
tap_like "$ERR" "not loaded on $BED_GW_DEV" "... and says rlshape is not loaded there"
run_rls stats --dev "$BED_GW_DEV"
tap_ok "stats --dev $BED_GW_DEV exits non-zero" test "$RC" -ne 0

# Loading again after an unload starts from scratch: fresh maps, a fresh budget.
run_rls load "$TABLE" --dev "$BED_GW_DEV"
tap_is "$RC" 0 "load after unload exits 0"
tap_like "$OUT" "^rlshape: loaded " "... as a first load (\"loaded\", not \"reloaded\")"
tap_is "$(post_status "$URL4" -H "authorization: Bearer $KEY" -H 'content-type: application/json' \
	-d '{"model":"gpt-big","messages":[]}')" 200 "... with fresh counters: solo's gpt-big admits again"
run_rls unload --dev "$BED_GW_DEV"
tap_is "$RC" 0 "final unload exits 0"
tap_ok "$BED_PIN_DIR is gone again" test ! -e "$BED_PIN_DIR"

tap_done
