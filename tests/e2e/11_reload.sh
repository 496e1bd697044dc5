#!/usr/bin/env bash
# Reloading the tier table: `rlshape load` on an interface that is already loaded swaps the
# table while traffic flows and keeps the counters of what the new table still has.
#
#   data/reload-a.json: keeper and leaver (tier gold: gpt-big rpd 10, gpt-small rpd 4, * rpd 3),
#                       default tier free (* rpd 2)
#   data/reload-b.json: the same, but gpt-small rpd 7, leaver removed, newbie added
#
# What is asserted: keeper's budget carries over a reload made while a loadgen run of its
# is in flight (it is admitted exactly rpd in all); the new limit applies to what was already
# counted; the removed account's key is charged to the default tier; the new account works;
# `rlshape status` shows the new table's sha256 and a flipped generation. A bad table
# changes nothing (one-line error naming the file and field); `rlshape check` on good and bad
# tables; --dev of a missing interface; --help of every subcommand.
# Tables at the caps (4,096 models, 65,536 limit entries, written by write_caps_table): one
# loads, reloads as is and as a table of 4,096 other models, with the counters the new table
# still has kept; a table one past either cap is refused by check and by load, naming the
# field and the cap, and changes nothing. Then unload.
set -euo pipefail

# shellcheck source=tests/lib/suite.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/suite.sh"
suite_programs 11_reload

DATA=$BED_REPO/tests/e2e/data
TABLE_A=$DATA/reload-a.json
TABLE_B=$DATA/reload-b.json
BAD_RPM=$DATA/reload-bad-rpm.json
BAD_SYNTAX=$DATA/reload-bad-syntax.json
PORT=8000

KEEPER=keeper-key-1
LEAVER=leaver-key-1
NEWBIE=newbie-key-1

bed_up

UP_LOG=$BED_DIR/upstream.log
bed_spawn bed_up_ns "$MOCK" --listen "$BED_UP4:$PORT" --listen "[$BED_UP6]:$PORT" \
	--log "$UP_LOG" --ready-file "$BED_DIR/upstream.ready"
tap_ok "mock-upstream is listening" bed_wait_file "$BED_DIR/upstream.ready" 20
URL4="http://$BED_UP4:$PORT/v1/chat/completions"

# ---- helpers ------------------------------------------------------------------------------


body() { # MODEL
	printf '{"model":"%s","messages":[{"role":"user","content":"hi"}]}' "$1"
}

loadgen() { # ARGS...: loadgen's one-line summary
	bed_client "$LOADGEN" --target "$BED_UP4:$PORT" "$@" 2>&1 || true
}

status_field() { # FIELD: from `rlshape status --json` for our interface
	rls status --dev "$BED_GW_DEV" --json |
		python3 -c 'import json, sys; print(json.load(sys.stdin)[0][sys.argv[1]])' "$1"
}

stats_rows() { # "ACCOUNT MODEL ADMITTED REJECTED" lines
	rls stats --dev "$BED_GW_DEV" --json | python3 -c '
import json, sys
for r in json.load(sys.stdin)["requests"]:
    print(r["account"], r["model"], r["admitted"], sum(r["rejected"].values()))'
}

row() { # ROWS ACCOUNT MODEL: "ADMITTED REJECTED" or "none"
	local r
	r=$(awk -v a="$2" -v m="$3" '$1 == a && $2 == m { print $3, $4 }' <<<"$1")
	echo "${r:-none}"
}

sha_of() {
	sha256sum "$1" | cut -d' ' -f1
}

# The run takes about a minute: keep it inside one UTC day (the rpd windows).
suite_one_day 180
START_DAY=$(($(date +%s) / 86400))

# ---- table A ------------------------------------------------------------------------------

run_rls load "$TABLE_A" --dev "$BED_GW_DEV"
tap_is "$RC" 0 "load table A exits 0"
tap_like "$OUT" "^rlshape: loaded .*reload-a\.json on $BED_GW_DEV" "first load says \"loaded\""
tap_is "$(status_field sha256)" "$(sha_of "$TABLE_A")" "status shows table A's sha256"
tap_is "$(status_field table)" "$(realpath "$TABLE_A")" "status shows table A's path"
GEN_A=$(status_field generation)
tap_like "$GEN_A" '^[01]$' "status shows a generation (0 or 1)"

tap_is "$(loadgen -c 2 -n 4 -k "$KEEPER" -m gpt-big)" "sent=4 status_200=4 status_429=0 other=0 errors=0" \
	"keeper uses 4 of its gpt-big rpd 10"
tap_is "$(loadgen -c 1 -n 3 -k "$KEEPER" -m gpt-small)" "sent=3 status_200=3 status_429=0 other=0 errors=0" \
	"keeper uses 3 of its gpt-small rpd 4"
tap_is "$(loadgen -c 1 -n 2 -k "$LEAVER" -m gpt-big)" "sent=2 status_200=2 status_429=0 other=0 errors=0" \
	"leaver uses 2 of its gpt-big rpd 10"

# ---- reload to table B while keeper's loadgen run is in flight -------------------------------

# 12 requests for keeper's 6 remaining gpt-big, on 2 connections. The upstream holds each
# until the hold file exists, so the run is in flight for as long as the test says, however
# slow the machine: the first request of each connection is held across the reload.
hold_file=$BED_DIR/reload-keeper.go
bed_spawn bed_client "$LOADGEN" --target "$BED_UP4:$PORT" -c 2 -n 12 -k "$KEEPER" -m gpt-big \
	-H "x-mock-hold-file: $hold_file"
bg_pid=$BED_LAST_PID
bg_log=$BED_LAST_LOG
keeper_big_held() {
	(($(log_count " key=Bearer $KEEPER model=gpt-big ") >= 6))
}
tap_ok "keeper's background run reached the upstream (2 requests held)" bed_wait_until 10 keeper_big_held
run_rls load "$TABLE_B" --dev "$BED_GW_DEV"
in_flight=no
kill -0 "$bg_pid" 2>/dev/null && in_flight=yes
touch "$hold_file"
tap_is "$RC" 0 "reload with table B exits 0"
tap_is "$in_flight" yes "the reload finished while the loadgen run was still in flight"
tap_like "$OUT" "^rlshape: reloaded .*reload-b\.json on $BED_GW_DEV.*counters kept" \
	"reload says \"reloaded ... counters kept\""
bg_done() {
	! kill -0 "$bg_pid" 2>/dev/null
}
tap_ok "the background loadgen run finished" bed_wait_until 30 bg_done
wait "$bg_pid" 2>/dev/null || true
tap_is "$(tail -n1 "$bg_log")" "sent=12 status_200=6 status_429=6 other=0 errors=0" \
	"across the reload keeper got exactly its 6 remaining gpt-big requests"
tap_is "$(post_status "$URL4" -H "authorization: Bearer $KEEPER" -H 'content-type: application/json' \
	-d "$(body gpt-big)")" 429 "keeper's gpt-big budget is spent after the reload"
tap_is "$(log_count " key=Bearer $KEEPER model=gpt-big ")" 10 \
	"upstream saw keeper's gpt-big exactly rpd (10) times in all"

tap_is "$(status_field sha256)" "$(sha_of "$TABLE_B")" "status shows table B's sha256"
tap_is "$(status_field table)" "$(realpath "$TABLE_B")" "status shows table B's path"
tap_is "$(status_field generation)" "$((1 - GEN_A))" "the generation flipped ($GEN_A -> $((1 - GEN_A)))"
tap_is "$(status_field accounts)" 2 "status counts 2 accounts (keeper, newbie)"
tap_is "$(status_field models)" 2 "status counts 2 models (gpt-big, gpt-small)"
tap_like "$(rls status --dev "$BED_GW_DEV")" "sha256 +$(sha_of "$TABLE_B")" \
	"text status shows table B's sha256 too"

# gpt-small went from rpd 4 to rpd 7; keeper had used 3 of it.
tap_is "$(loadgen -c 2 -n 6 -k "$KEEPER" -m gpt-small)" "sent=6 status_200=4 status_429=2 other=0 errors=0" \
	"keeper's gpt-small: the new rpd 7 applies to the 3 already counted: 4 admitted, 2 rejected"
tap_is "$(log_count " key=Bearer $KEEPER model=gpt-small ")" 7 "upstream saw keeper's gpt-small 7 times in all"

# leaver is gone: its key is now an unknown key, charged to free (* rpd 2) per client address.
tap_is "$(loadgen -c 1 -n 3 -k "$LEAVER" -m gpt-big)" "sent=3 status_200=2 status_429=1 other=0 errors=0" \
	"the removed account's key is charged to the default tier (rpd 2): 2 admitted, 1 rejected"
tap_is "$(post_status "$URL4" -H 'content-type: application/json' -d "$(body gpt-big)")" 429 \
	"a keyless request from the same address shares that default-tier budget: 429"
tap_is "$(log_count " key=Bearer $LEAVER ")" 4 "upstream saw the leaver key 4 times (2 as leaver, 2 as unknown)"

tap_is "$(loadgen -c 2 -n 9 -k "$NEWBIE" -m gpt-small)" "sent=9 status_200=7 status_429=2 other=0 errors=0" \
	"the new account works: newbie gpt-small rpd 7: 7 admitted, 2 rejected"

rows=$(stats_rows)
tap_is "$(row "$rows" keeper gpt-big)" "10 7" "stats: keeper gpt-big admitted 10 (carried over), rejected 7"
tap_is "$(row "$rows" keeper gpt-small)" "7 2" "stats: keeper gpt-small admitted 7, rejected 2"
tap_is "$(row "$rows" newbie gpt-small)" "7 2" "stats: newbie gpt-small admitted 7, rejected 2"
tap_is "$(row "$rows" '(unknown)' gpt-big)" "2 2" "stats: (unknown) gpt-big admitted 2, rejected 2"
tap_is "$(awk '$1 == "leaver"' <<<"$rows")" "" "stats: the removed account has no rows left"

# ---- a bad table changes nothing -------------------------------------------------------------

run_rls load "$BAD_RPM" --dev "$BED_GW_DEV"
tap_ok "load of a table with a negative rpm exits non-zero" test "$RC" -ne 0
tap_is "$(wc -l <<<"$ERR")" 1 "... with a one-line error"
tap_like "$ERR" "reload-bad-rpm\.json: tiers\.gold\.gpt-small\.rpm: .*non-negative" \
	"... that names the file and the field"
tap_is "$OUT" "" "... and prints nothing on stdout"
tap_is "$(status_field sha256)" "$(sha_of "$TABLE_B")" "status still shows table B's sha256"
tap_is "$(status_field generation)" "$((1 - GEN_A))" "status still shows table B's generation"
tap_is "$(post_status "$URL4" -H "authorization: Bearer $NEWBIE" -H 'content-type: application/json' \
	-d "$(body gpt-small)")" 429 "the limits still hold: newbie's gpt-small stays spent"
tap_is "$(post_status "$URL4" -H "authorization: Bearer $NEWBIE" -H 'content-type: application/json' \
	-d "$(body gpt-big)")" 200 "... and newbie's gpt-big still admits"

run_rls load "$BAD_SYNTAX" --dev "$BED_GW_DEV"
tap_ok "load of a table with a JSON syntax error exits non-zero" test "$RC" -ne 0
tap_like "$ERR" "^[^"$'\n'"]*reload-bad-syntax\.json:4:[0-9]+: [^"$'\n'"]+$" \
	"... with one line naming the file, line and column"
tap_is "$(status_field sha256)" "$(sha_of "$TABLE_B")" "status still shows table B's sha256"

# ---- rlshape check ----------------------------------------------------------------------------

for t in "$TABLE_A" "$TABLE_B"; do
	run_rls check "$t"
	tap_is "$RC" 0 "check ${t##*/} exits 0"
	tap_like "$OUT" "${t##*/}: valid: 2 tiers, 2 accounts, 2 keys, 0 CIDRs" "check ${t##*/} says valid"
done
run_rls check "$BAD_RPM"
tap_is "$RC" 1 "check of the negative-rpm table exits 1"
tap_is "$(wc -l <<<"$ERR")" 1 "... with a one-line error"
tap_like "$ERR" "^$BAD_RPM: tiers\.gold\.gpt-small\.rpm: must be a non-negative integer" \
	"... naming the file and the field"
run_rls check "$BAD_SYNTAX"
tap_is "$RC" 1 "check of the syntax-error table exits 1"
tap_like "$ERR" "^$BAD_SYNTAX:4:[0-9]+: " "... naming the file, line and column"
run_rls check "$BED_DIR/no-such-table.json"
tap_is "$RC" 1 "check of a missing file exits 1"
tap_like "$ERR" "no-such-table\.json: cannot read" "... naming the file"

# ---- load on an interface that does not exist --------------------------------------------------

run_rls load "$TABLE_B" --dev rls-nosuch0
tap_ok "load --dev rls-nosuch0 exits non-zero" test "$RC" -ne 0
tap_like "$ERR" 'no such interface "rls-nosuch0"' "... and the message names the interface"
tap_ok "... and pins nothing for it" test ! -e "$BED_PIN_ROOT/rls-nosuch0"
tap_is "$(status_field sha256)" "$(sha_of "$TABLE_B")" "status on $BED_GW_DEV is unchanged"

# ---- --help -------------------------------------------------------------------------------------

run_rls --help
tap_is "$RC" 0 "rlshape --help exits 0"
tap_like "$OUT" "^Usage: rlshape COMMAND" "rlshape --help prints Usage"
for cmd in check load unload status stats daemon import; do
	run_rls "$cmd" --help
	tap_is "$RC" 0 "rlshape $cmd --help exits 0"
	tap_like "$OUT" "^Usage: rlshape $cmd" "rlshape $cmd --help prints its Usage on stdout"
done

# ---- tables at the caps ----------------------------------------------------------------------

# write_caps_table FILE PREFIX [past]: 16 tiers of 4,094 models each plus "*" (with the hidden
# model's entry, 65,536 limit entries), naming PREFIX-0000 to PREFIX-4095 in all (4,096
# models). past "models": one more model (in t00, and t01 names one fewer: still 65,536
# entries); past "limits": t15 names one more of the 4,096 (65,537 entries). Account capper
# (key capper-key-1) is in t00: PREFIX-0000 rpd 3, "*" rpd 6; every other entry rpd 1000.
write_caps_table() {
	python3 - "$@" <<'PY'
import json, sys
path, prefix = sys.argv[1], sys.argv[2]
past = sys.argv[3] if len(sys.argv) > 3 else ""
name = lambda i: "%s-%04d" % (prefix, i)
tiers = {}
for k in range(16):
    first = 0 if k % 2 == 0 else 2  # t00 names 0..4093, t01 2..4095: all 4,096 in all
    count = 4094 - (past == "models" and k == 1) + (past == "limits" and k == 15)
    tier = {name((first + j) % 4096): {"rpd": 1000} for j in range(count)}
    tier["*"] = {"rpd": 6}
    tiers["t%02d" % k] = tier
if past == "models":
    tiers["t00"][name(4096)] = {"rpd": 1000}
tiers["t00"][name(0)] = {"rpd": 3}
json.dump({"listen": {"ports": [8000]}, "tiers": tiers,
           "accounts": {"capper": {"tier": "t00", "keys": ["capper-key-1"]}}},
          open(path, "w"))
PY
}
CAPS=$BED_DIR/caps.json
CAPS_NEW=$BED_DIR/caps-new.json
PAST_MODELS=$BED_DIR/caps-past-models.json
PAST_LIMITS=$BED_DIR/caps-past-limits.json
write_caps_table "$CAPS" m
write_caps_table "$CAPS_NEW" n
write_caps_table "$PAST_MODELS" m models
write_caps_table "$PAST_LIMITS" m limits
CAPPER=capper-key-1

capper() { # N MODEL: loadgen's summary of N requests of capper's for MODEL
	loadgen -c 1 -n "$1" -k "$CAPPER" -m "$2"
}
sent() { # N ADMITTED: loadgen's summary line when ADMITTED of N requests get a 200
	echo "sent=$1 status_200=$2 status_429=$(($1 - $2)) other=0 errors=0"
}

for t in "$CAPS" "$CAPS_NEW"; do
	run_rls check "$t"
	tap_is "$RC" 0 "check ${t##*/} (4,096 models, 65,536 limit entries) exits 0"
done
run_rls load "$CAPS" --dev "$BED_GW_DEV"
tap_is "$RC" 0 "load of the table at the caps exits 0"
tap_like "$OUT" "^rlshape: reloaded .*caps\.json on $BED_GW_DEV: 1 accounts, 4096 models" \
	"... and says 4096 models"
tap_is "$(status_field models)" 4096 "status counts 4096 models"
tap_is "$(capper 2 m-0000)" "$(sent 2 2)" "capper uses 2 of m-0000's rpd 3"
tap_is "$(capper 2 other-model)" "$(sent 2 2)" "capper uses 2 of \"*\"'s rpd 6"

run_rls load "$CAPS" --dev "$BED_GW_DEV"
tap_is "$RC" 0 "reload of the same table at the caps exits 0 (the maps hold both)"
tap_is "$(capper 2 m-0000)" "$(sent 2 1)" "m-0000's count carried over: 1 admitted, 1 refused"
tap_is "$(capper 1 other-model)" "$(sent 1 1)" "capper uses a 3rd of \"*\"'s rpd 6"
GEN_CAPS=$(status_field generation)

# One past either cap: refused by check and by load, naming the field and the cap.
for past in "$PAST_MODELS:4097 model names, at most 4096 fit the models map" \
	"$PAST_LIMITS:65537 limit entries .*at most 65536 fit the limits map"; do
	t=${past%%:*} why=${past#*:}
	run_rls check "$t"
	tap_is "$RC" 1 "check ${t##*/} exits 1"
	tap_like "$ERR" "^$t: tiers: $why" "... naming the file, the field and the cap"
	tap_is "$(wc -l <<<"$ERR")" 1 "... on one line"
	run_rls load "$t" --dev "$BED_GW_DEV"
	tap_ok "load ${t##*/} exits non-zero" test "$RC" -ne 0
	tap_like "$ERR" "^$t: tiers: $why" "... naming the file, the field and the cap"
	tap_is "$(status_field sha256)" "$(sha_of "$CAPS")" "... and the table at the caps stays live"
	tap_is "$(status_field generation)" "$GEN_CAPS" "... in the same generation"
done
tap_is "$(capper 1 other-model)" "$(sent 1 1)" \
	"the refused loads changed nothing: capper uses a 4th of \"*\"'s rpd 6"

# 4,096 other models over the 4,096 live ones: the maps hold both while the new one is written.
run_rls load "$CAPS_NEW" --dev "$BED_GW_DEV"
tap_is "$RC" 0 "reload with 4,096 new models over 4,096 live ones exits 0"
tap_is "$(status_field sha256)" "$(sha_of "$CAPS_NEW")" "... and the new table is live"
tap_is "$(status_field models)" 4096 "status counts 4096 models"
tap_is "$(capper 3 other-model)" "$(sent 3 2)" \
	"\"*\" carried over the new models: the last 2 of its rpd 6 admitted, then refused"
tap_is "$(capper 3 n-0000)" "$(sent 3 3)" "the new n-0000 counts from zero"
tap_is "$(capper 1 m-0000)" "$(sent 1 0)" "m-0000, no longer named, is charged to the spent \"*\""

# And back: the m models return (on ids the n models did not hold) without their old counts.
run_rls load "$CAPS" --dev "$BED_GW_DEV"
tap_is "$RC" 0 "reload back to the first table at the caps exits 0"
tap_is "$(capper 4 m-0000)" "$(sent 4 3)" \
	"m-0000 came back without its old count (it went with the name): rpd 3 admitted, then refused"
tap_is "$(capper 1 n-0000)" "$(sent 1 0)" "n-0000, gone, is charged to the spent \"*\""

tap_is "$(($(date +%s) / 86400))" "$START_DAY" "the run stayed inside one UTC day (rpd counts exact)"

# ---- unload -------------------------------------------------------------------------------------

run_rls unload --dev "$BED_GW_DEV"
tap_is "$RC" 0 "rlshape unload exits 0"
tap_like "$OUT" "unloaded from $BED_GW_DEV" "rlshape unload says so"
tap_ok "no XDP program left on $BED_GW_DEV" \
	bash -c "! ip -n '$BED_GW_NS' link show dev '$BED_GW_DEV' | grep -qE 'xdp|prog/'"
tap_ok "pins removed ($BED_PIN_DIR)" test ! -e "$BED_PIN_DIR"
run_rls status --dev "$BED_GW_DEV"
tap_ok "status --dev $BED_GW_DEV now exits non-zero" test "$RC" -ne 0

tap_done
