#!/usr/bin/env bash
# bench/table_load.sh [--quick|--smoke|--cases CASE:RUNS...]
#
# `rlshape check`, a fresh `rlshape load` and two reloads of the same table (the second clears
# the generation the first load wrote), timed for this build ("after") and for the rlshape of
# commit REV ("before", built from `git archive REV` in a scratch directory), alternating
# between the two in one run, so that their ratio is what counts: wall time, and CPU time (user
# and system, every thread). Tables (written by gen_* below):
#   models-1k   one tier naming 1,024 models
#   models-4k   the caps: 16 tiers naming 4,094 of 4,096 models each (65,536 limit entries)
#   accounts-N  N accounts with one API key each, in one tier (10k, 100k, 1M)
# REV is $RLS_LOAD_BASELINE, by default 90f9ece: the last commit before the accounts were
# scanned from the text (7b596d0 was the one before issue 13's first work on a load of a
# million accounts, c573427 the one before issue 11's). --quick (4k models, 100k
# accounts, one run) and --smoke (1k models, 10k accounts) time this build only: the scratch
# build alone takes most of a minute. --cases runs the cases given (e.g. accounts-1000000:5),
# before and after. Prints a Markdown section on stdout.
# Measured, never pass/fail. Everything it makes is removed on exit, also on failure.
set -euo pipefail

REPO=$(realpath "$(dirname "${BASH_SOURCE[0]}")/..")
cd "$REPO"
AFTER=$(realpath -m "${BUILD:-build}/rlshape")
baseline=${RLS_LOAD_BASELINE:-90f9ece}

# Cases as CASE:RUNS, how many times each binary runs it (the median is taken over them). A
# million accounts too are run 3 times: a run follows the other binary's unload, while the
# kernel still frees its maps of a million entries, and one run was noise.
case ${1:-} in
"") CASES=(models-1k:3 models-4k:3 accounts-10000:3 accounts-100000:3 accounts-1000000:3) ;;
--quick) CASES=(models-4k:1 accounts-100000:1) ;;
--smoke) CASES=(models-1k:1 accounts-10000:1) ;;
--cases) # --cases CASE:RUNS...: those only, before and after (BENCHMARKS.md's series)
	shift
	CASES=("$@")
	set --
	;;
*)
	sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'
	[[ $1 == -h || $1 == --help ]]
	exit
	;;
esac
LIMIT=300 # seconds, per command: the baseline's 1M-account reload took about 20

if [[ ! -x $AFTER ]]; then
	echo "table_load.sh: $AFTER is missing: run make" >&2
	exit 1
fi

# shellcheck source=tests/lib/bed.sh
source "$REPO/tests/lib/bed.sh"
bed_up >&2 # traps EXIT, INT, TERM: bed_down removes namespaces, pins and $BED_DIR

# ---- the baseline --------------------------------------------------------------------------

BEFORE="" before_note=""
if [[ -n ${1:-} ]]; then
	before_note="not measured with $1 (make bench measures it)"
elif ! rev=$(git -C "$REPO" rev-parse --short --verify -q "$baseline^{commit}"); then
	before_note="not measured: $baseline is not a commit of this checkout"
else
	mkdir "$BED_DIR/base"
	if git -C "$REPO" archive "$rev" | tar -x -C "$BED_DIR/base" &&
		make -s -C "$BED_DIR/base" -j2 build/rlshape >"$BED_DIR/base.log" 2>&1; then
		BEFORE=$BED_DIR/base/build/rlshape before_note="commit $rev, built in a scratch directory"
	else
		before_note="not measured: commit $rev did not build (see its make output)"
		tail -n 20 "$BED_DIR/base.log" >&2 || true
	fi
fi

# ---- tables ----------------------------------------------------------------------------------

gen_models() { # TIERS PER_TIER MODELS FILE
	awk -v tiers="$1" -v per="$2" -v models="$3" 'BEGIN {
		printf "{\"listen\": {\"ports\": [8000]}, \"tiers\": {"
		for (t = 0; t < tiers; t++) {
			printf "%s\"t%02d\": {\"*\": {\"rpm\": 60}", (t ? ", " : ""), t
			for (j = 0; j < per; j++)
				printf ", \"model-%04d\": {\"rpm\": 600}", (2 * (t % 2) + j) % models
			printf "}"
		}
		printf "}, \"accounts\": {\"a\": {\"tier\": \"t00\", \"keys\": [\"sk-a\"]}}}\n"
	}' >"$4"
}

gen_accounts() { # N FILE (N at most 1,000,000: %g prints larger numbers with an exponent)
	{
		echo '{"listen": {"ports": [8000]}, "tiers": {"t": {"*": {"rpm": 60}}}, "accounts": {'
		seq -f '%07g' 0 $(($1 - 1)) |
			sed 's/.*/"acct-&": {"tier": "t", "keys": ["sk-load-&"]},/; $s/,$//'
		echo '}}'
	} >"$2"
}

table_of() { # CASE: writes its table, prints its path
	local f=$BED_DIR/$1.json
	case $1 in
	models-1k) gen_models 1 1024 1024 "$f" ;;
	models-4k) gen_models 16 4094 4096 "$f" ;;
	accounts-*) gen_accounts "${1#accounts-}" "$f" ;;
	esac
	echo "$f"
}

# ---- timing --------------------------------------------------------------------------------

# The CPU seconds (user + system) of the shell's children that had ended when `times` wrote FILE
# (written by the shell itself: in a subshell of its own, `times` knows no children).
children_cpu() { # FILE
	awk 'NR == 2 {
		for (i = 1; i <= 2; i++) { split($i, t, /[ms]/); s += t[1] * 60 + t[2] }
		printf "%.3f", s }' "$1"
}

# seconds BINARY ARGS...: "WALL CPU", the wall and CPU seconds of BINARY ARGS in the gateway's
# namespace, or "failed failed" (its stderr goes to $BED_DIR/last.err).
seconds() {
	local t0=$EPOCHREALTIME rc=0
	times >"$BED_DIR/times.before"
	timeout -k 5 "$LIMIT" nsenter --net="/var/run/netns/$BED_GW_NS" -- "$@" \
		>/dev/null 2>"$BED_DIR/last.err" || rc=$?
	times >"$BED_DIR/times.after"
	if ((rc != 0)); then
		echo failed failed
		return
	fi
	awk -v a="${t0/,/.}" -v b="${EPOCHREALTIME/,/.}" \
		-v c0="$(children_cpu "$BED_DIR/times.before")" \
		-v c1="$(children_cpu "$BED_DIR/times.after")" \
		'BEGIN { printf "%.3f %.3f\n", b - a, c1 - c0 }'
}

unload() { # BINARY
	nsenter --net="/var/run/netns/$BED_GW_NS" -- "$1" unload --dev "$BED_GW_DEV" \
		>/dev/null 2>&1 || true
	rm -rf "$BED_PIN_DIR"
}

# One round of BINARY on TABLE: "CHECK LOAD RELOAD RELOAD2" wall seconds appended to FILE, and
# their CPU seconds to FILE.cpu.
round() { # BINARY TABLE FILE
	local walls="" cpus="" wall cpu i
	read -r wall cpu < <(seconds "$1" check "$2")
	walls+=$wall cpus+=$cpu
	for i in load reload reload2; do
		read -r wall cpu < <(seconds "$1" load "$2" --dev "$BED_GW_DEV")
		walls+=" $wall" cpus+=" $cpu"
	done
	unload "$1"
	echo "$walls" >>"$3"
	echo "$cpus" >>"$3.cpu"
}

median() { # FILE COLUMN: the median of a column ("failed" if any run failed)
	if awk -v c="$2" '$c == "failed" { bad = 1 } END { exit !bad }' "$1"; then
		echo failed
		return
	fi
	awk -v c="$2" '{ print $c }' "$1" | sort -n |
		awk '{ v[NR] = $1 } END { print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'
}

ratio() { # AFTER BEFORE
	awk -v a="$1" -v b="$2" 'BEGIN { if (a + 0 > 0 && b + 0 > 0) printf "%.2f", a / b; else print "n/a" }'
}

# One row of medians: WHAT (AFTER or AFTER.cpu) of case C over RUNS runs.
row_of() { # C RUNS WHAT
	local row="| $1 ($2) |" col a b
	for col in 1 2 3 4; do
		a=$(median "$BED_DIR/after$3" "$col")
		b=n/a
		[[ -z $BEFORE ]] || b=$(median "$BED_DIR/before$3" "$col")
		row+=" $b | $a | $(ratio "$a" "$b") |"
	done
	echo "$row"
}

rows=() cpu_rows=()
for c_runs in "${CASES[@]}"; do
	c=${c_runs%:*} runs=${c_runs#*:}
	echo "table_load.sh: $c ..." >&2
	table=$(table_of "$c")
	for f in after before after.cpu before.cpu; do : >"$BED_DIR/$f"; done
	for ((i = 0; i < runs; i++)); do
		# Alternate which goes first, so neither always runs on a warmer machine.
		if ((i % 2)); then
			round "$AFTER" "$table" "$BED_DIR/after"
			[[ -z $BEFORE ]] || round "$BEFORE" "$table" "$BED_DIR/before"
		else
			[[ -z $BEFORE ]] || round "$BEFORE" "$table" "$BED_DIR/before"
			round "$AFTER" "$table" "$BED_DIR/after"
		fi
	done
	rows+=("$(row_of "$c" "$runs" "")")
	cpu_rows+=("$(row_of "$c" "$runs" .cpu)")
	rm -f "$table"
done

header="| table | check before | check after | ratio | load before | load after | ratio |"
header+=" reload before | reload after | ratio | reload 2 before | reload 2 after | ratio |"
echo "Wall time in seconds, the median of (N) runs; before: $before_note; after: this" \
	"build. \`load\` is fresh (nothing loaded), the reloads are of the same table over it (the" \
	"second clears the generation the load wrote); all on a veth of the test bed, and include" \
	"loading the BPF programs (the verifier). The ratio is after / before, from the same run." \
	"Load average when it ended: $(cut -d' ' -f1-3 /proc/loadavg)."
echo
echo "$header"
echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
printf '%s\n' "${rows[@]}"
echo
echo "CPU time in seconds (user and system, every thread), the median of the same runs:"
echo
echo "$header"
echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
printf '%s\n' "${cpu_rows[@]}"
