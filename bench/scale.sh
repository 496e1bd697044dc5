#!/usr/bin/env bash
# bench/scale.sh [--quick|--smoke] [--summary FILE] [--sizes "N ..."] [--limits LOAD_S,RELOAD_S]
#
# How rlshape scales with the size of the tier table: tables of 1, 1,000, 100,000 and
# 1,000,000 accounts with one API key each (written by gen_table below), and for each
#   - the wall time of `rlshape load` on a veth in a namespace of the test bed, fresh, then of
#     a reload of the same table (the atomic swap), each under a time limit;
#   - the kernel memory of the maps after the load (bpftool's memlock, summed over the pins);
#   - the per-packet cost of an admitted request start (build/bench/prog_cost --table), with
#     the same table in the bench's own unpinned skeleton, and the memlock of those maps.
# Prints a Markdown section on stdout; with --summary, appends "scale.N.FIELD<TAB>VALUE" lines.
# Everything it makes (namespaces, veths, pins, the tables) is removed on exit, also on failure.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
REPO=$PWD
BUILD_DIR=${BUILD:-build}
[[ $BUILD_DIR == /* ]] || BUILD_DIR=$REPO/$BUILD_DIR
RLS=$BUILD_DIR/rlshape
PROG_COST=$BUILD_DIR/bench/prog_cost

mode=full
summary=""
sizes_arg=""
limits_arg=""
while (($#)); do
	case $1 in
	--quick) mode=quick ;;
	--smoke) mode=smoke ;;
	--summary)
		summary=${2:?--summary needs a file}
		shift
		;;
	--sizes)
		sizes_arg=${2:?--sizes needs a list}
		shift
		;;
	--limits)
		limits_arg=${2:?--limits needs LOAD_S,RELOAD_S}
		shift
		;;
	-h | --help)
		sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'
		exit 0
		;;
	*)
		echo "scale.sh: unknown argument '$1'" >&2
		exit 2
		;;
	esac
	shift
done

# Sizes, time limits (s) for `rlshape load` and for the reload, single runs for prog_cost.
case $mode in
full)
	SIZES=(1 1000 100000 1000000)
	LOAD_LIMIT=60 RELOAD_LIMIT=60 RUNS=200000
	;;
quick)
	SIZES=(1 1000 100000)
	LOAD_LIMIT=15 RELOAD_LIMIT=10 RUNS=50000
	;;
smoke)
	SIZES=(1 1000)
	LOAD_LIMIT=30 RELOAD_LIMIT=20 RUNS=2000
	;;
esac

if [[ -n $sizes_arg ]]; then
	read -r -a SIZES <<<"$sizes_arg"
fi
if [[ -n $limits_arg ]]; then
	LOAD_LIMIT=${limits_arg%,*} RELOAD_LIMIT=${limits_arg#*,}
fi
for n in "${SIZES[@]}"; do
	[[ $n =~ ^[1-9][0-9]{0,6}$ ]] || { echo "scale.sh: bad size '$n' (1 to 9999999)" >&2; exit 2; }
done

for f in "$RLS" "$PROG_COST"; do
	if [[ ! -x $f ]]; then
		echo "scale.sh: $f is missing: run make" >&2
		exit 1
	fi
done
if ! command -v bpftool >/dev/null; then
	echo "scale.sh: bpftool is missing (tools/install-deps.sh installs it)" >&2
	exit 1
fi

# shellcheck source=tests/lib/bed.sh
source "$REPO/tests/lib/bed.sh"
bed_up >&2 # traps EXIT, INT, TERM: bed_down removes namespaces, pins and $BED_DIR

# The limits of prog_cost's built-in table: never reached by a bench run.
LIMITS='{"rpm": 1000000000, "burst": 1000000000, "rph": 4000000000, "rpd": 4000000000}'

# gen_table N FILE: N accounts acct-NNNNNNN, each with the one key sk-scale-NNNNNNN (the names
# build/bench/prog_cost expects: BENCH_SCALE_*_FMT in bench/bench.h).
gen_table() {
	awk -v n="$1" -v lim="$LIMITS" 'BEGIN {
		printf "{\"listen\": {\"ports\": [8000]},\n"
		printf " \"identify\": {\"key_headers\": [\"authorization\", \"x-api-key\", \"api-key\"],"
		printf " \"model_header\": \"x-model\"},\n"
		printf " \"tiers\": {\"bench\": {\"*\": %s, \"gpt-bench\": %s}},\n", lim, lim
		printf " \"accounts\": {\n"
		for (i = 0; i < n; i++)
			printf "  \"acct-%07d\": {\"tier\": \"bench\", \"keys\": [\"sk-scale-%07d\"]}%s\n",
				i, i, (i < n - 1 ? "," : "")
		printf " }}\n"
	}' >"$2"
}

now_s() {
	local stamp=${EPOCHREALTIME/,/.}
	echo "$stamp"
}

# timed LIMIT CMD...: runs CMD in the gateway namespace (nsenter: pins stay visible) under a
# time limit. Sets T (seconds, 2 decimals) and RC (124: stopped at the limit).
timed() {
	local limit=$1 t0 t1
	shift
	t0=$(now_s)
	RC=0
	# --foreground: Ctrl-C reaches the command (timeout would put it in a group of its own).
	timeout --foreground -k 5 "$limit" nsenter --net="/var/run/netns/$BED_GW_NS" -- "$@" \
		>"$BED_DIR/cmd.out" 2>"$BED_DIR/cmd.err" || RC=$?
	t1=$(now_s)
	# Interrupted: stop here (the EXIT trap cleans up).
	((RC != 130 && RC != 143)) || exit "$RC"
	T=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')
}

# Sum of memlock over the pinned maps (bytes), as bpftool prints it; "NAME BYTES" lines of
# each map into the file $1.
pinned_memlock() {
	local f total=0 m
	: >"$1"
	for f in "$BED_PIN_DIR"/rls_*; do
		[[ -e $f ]] || continue
		m=$(bpftool map show pinned "$f" | sed -n 's/.*memlock \([0-9]*\)B.*/\1/p' | head -1)
		total=$((total + ${m:-0}))
		echo "${f##*/} ${m:-0}" >>"$1"
	done
	echo "$total"
}

commas() {
	sed ':a;s/\B[0-9]\{3\}\>/,&/;ta' <<<"$1"
}

mib() {
	awk -v b="$1" 'BEGIN { printf "%.1f MiB", b / 1048576 }'
}

unload_all() {
	nsenter --net="/var/run/netns/$BED_GW_NS" -- "$RLS" unload --dev "$BED_GW_DEV" \
		>/dev/null 2>&1 || true
	# A load stopped at its time limit may leave pins without a link, or a link without pins.
	ip -n "$BED_GW_NS" link set dev "$BED_GW_DEV" xdp off 2>/dev/null || true
	rm -rf "$BED_PIN_DIR"
}

sum() { # KEY FILE: the value of a summary line, or "?"
	awk -F'\t' -v k="$1" '$1 == k { v = $2 } END { print (v == "" ? "?" : v) }' "$2"
}

rows=()
loaded_sizes=()
declare -A load_s=() reload_s=()
stopped_at=""
for n in "${SIZES[@]}"; do
	table=$BED_DIR/scale-$n.json
	gen_table "$n" "$table"
	size=$(stat -c %s "$table")

	if [[ -n $stopped_at ]]; then
		# A fresh load is linear in the accounts: a larger table cannot finish either.
		T="" RC=125
	else
		timed "$LOAD_LIMIT" "$RLS" load "$table" --dev "$BED_GW_DEV"
	fi
	load_t=$T load_rc=$RC
	reload_t=""
	mem="" reload=""
	if ((load_rc == 0)); then
		load_cell="$load_t s"
		mem=$(pinned_memlock "$BED_DIR/mem-$n")
		loaded_sizes+=("$n")
		timed "$RELOAD_LIMIT" "$RLS" load "$table" --dev "$BED_GW_DEV"
		if ((RC == 0)); then
			reload="$T s" reload_t=$T
		elif ((RC == 124)); then
			reload="> $RELOAD_LIMIT s (stopped)"
		else
			reload="failed ($RC): $(head -c 200 "$BED_DIR/cmd.err")"
		fi
	elif ((load_rc == 124)); then
		load_cell="> $LOAD_LIMIT s (stopped)"
		reload="not run"
		stopped_at=$n
	elif ((load_rc == 125)); then
		load_cell="> $LOAD_LIMIT s (not run: $(commas "$stopped_at") accounts already took longer)"
		reload="not run"
	else
		echo "scale.sh: rlshape load of $n accounts failed ($load_rc):" >&2
		cat "$BED_DIR/cmd.err" >&2
		exit 1
	fi
	mem_cell=n/a
	[[ -z $mem ]] || mem_cell=$(mib "$mem")
	unload_all

	pc_sum=$BED_DIR/prog_cost-$n.tsv
	: >"$pc_sum"
	rc=0
	"$PROG_COST" --table "$table" --accounts "$n" --cases floor,request --runs "$RUNS" \
		--repeat 0 --no-markdown --summary "$pc_sum" >&2 || rc=$?
	if ((rc != 0)); then
		echo "scale.sh: prog_cost on the table of $n accounts failed ($rc)" >&2
		exit $((rc > 128 ? rc : 1))
	fi
	req=$(sum prog_cost.request.median_ns "$pc_sum")
	ratio=$(sum prog_cost.request.ratio "$pc_sum")
	floor=$(sum prog_cost.floor.median_ns "$pc_sum")
	bench_mem=$(sum prog_cost.maps.memlock_loaded "$pc_sum")
	rm -f "$table"

	((load_rc != 0)) || load_s[$n]=$load_t
	[[ -z $reload_t ]] || reload_s[$n]=$reload_t
	rows+=("| $(commas "$n") | $(awk -v b="$size" 'BEGIN { printf "%.1f MB", b / 1e6 }') | $load_cell | $reload | $mem_cell | $(mib "$bench_mem") | $req | $ratio |")
	if [[ -n $summary ]]; then
		{
			printf 'scale.%s.load_s\t%s\n' "$n" "$( ((load_rc == 0)) && echo "$load_t" || echo "> $LOAD_LIMIT")"
			printf 'scale.%s.reload\t%s\n' "$n" "$reload"
			printf 'scale.%s.memlock_bytes\t%s\n' "$n" "${mem:-n/a}"
			printf 'scale.%s.bench_memlock_bytes\t%s\n' "$n" "$bench_mem"
			printf 'scale.%s.request_median_ns\t%s\n' "$n" "$req"
			printf 'scale.%s.request_ratio\t%s\n' "$n" "$ratio"
			printf 'scale.%s.floor_median_ns\t%s\n' "$n" "$floor"
		} >>"$summary"
	fi
done

echo "Tables of N accounts with one API key each (\`rlshape check\`-valid, written by bench/scale.sh)." \
	"\`rlshape load\` runs on a veth in a network namespace of the test bed (native XDP);" \
	"its limit here is ${LOAD_LIMIT} s, the reload's ${RELOAD_LIMIT} s." \
	"Memory is the memlock the kernel charges for the maps (bpftool), after the load and" \
	"before any traffic; the same maps filled by the bench (table written in bulk, see" \
	"BENCHMARKS.md) give the second figure, also where the load did not finish." \
	"The request start cycles through up to 1,024 keys spread over the accounts;" \
	"$(commas "$RUNS") single runs, median ns and ratio to the no-op program's floor."
echo
echo "| accounts | table file | \`rlshape load\`, fresh | reload, same table | maps memlock after load | maps memlock, bench skeleton | request start median ns | x floor |"
echo "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
printf '%s\n' "${rows[@]}"

# The largest table that loaded, per account: both a fresh load and a reload are linear in
# the accounts (user/apply.c reads the known accounts once; see BENCHMARKS.md).
largest=""
for n in "${!load_s[@]}"; do
	[[ -z $largest || $n -gt $largest ]] && largest=$n
done
if [[ -n $largest && $largest -ge 1000 ]]; then
	echo
	awk -v n="$largest" -v l="${load_s[$largest]}" -v r="${reload_s[$largest]:-}" 'BEGIN {
		printf "The largest table loaded, %d accounts, took %.1f us per account to load", n, l / n * 1e6
		if (r != "")
			printf " and %.1f us per account to reload", r / n * 1e6
		printf ".\n"
	}'
fi

if ((${#loaded_sizes[@]})); then
	echo
	echo "Where the memory goes after \`rlshape load\` (memlock per pinned map; maps not listed hold" \
		"less than 0.1 MiB):"
	echo
	hdr="| map |" sep="| --- |"
	for n in "${loaded_sizes[@]}"; do
		hdr+=" $(commas "$n") account$( ((n == 1)) || echo s) |"
		sep+=" ---: |"
	done
	echo "$hdr"
	echo "$sep"
	while read -r m _; do
		line="| $m |" big=0
		for n in "${loaded_sizes[@]}"; do
			b=$(awk -v m="$m" '$1 == m { print $2 }' "$BED_DIR/mem-$n")
			((${b:-0} < 104858)) || big=1
			line+=" $(mib "${b:-0}") |"
		done
		((big == 0)) || echo "$line"
	done <"$BED_DIR/mem-${loaded_sizes[-1]}"
fi
