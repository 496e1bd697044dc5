#!/usr/bin/env bash
# Run the libFuzzer harnesses built in $BUILD/fuzz (make fuzzers) and print TAP, one line per
# harness with the executions it saw; fail when one finds a crash or breaks a property.
#
#   fuzz/run.sh                     the short run `make check` does: each harness for
#                                   FUZZ_CHECK_SECONDS (default 8) over a fresh copy of its
#                                   seed corpus, plus whatever new inputs it makes up
#   fuzz/run.sh --seconds N [NAME]  the long run `make fuzz` does: each harness (or those
#                                   named) for N seconds, over $BUILD/fuzz/corpus/NAME, which
#                                   starts as a copy of fuzz/corpus/NAME and keeps what runs add
#
# The tree is never written to. A harness's inputs are fuzz/corpus/NAME/ (seeds), its
# dictionary fuzz/NAME.dict and extra libFuzzer flags fuzz/NAME.flags (one a line, # comments),
# each where present. A crashing input is kept as $BUILD/fuzz/findings/NAME-crash-*; rerun it
# with `$BUILD/fuzz/NAME FILE`. A missing harness binary fails: it is never skipped.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

BUILD=${BUILD:-build}
seconds=${FUZZ_CHECK_SECONDS:-8}
long=""
names=()

while (($#)); do
	case $1 in
	--seconds)
		[[ ${2:-} =~ ^[1-9][0-9]*$ ]] || {
			echo "run.sh: --seconds needs a positive whole number, got '${2:-}'" >&2
			exit 2
		}
		seconds=$2 long=1
		shift 2
		;;
	-h | --help)
		sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'
		exit 0
		;;
	-*)
		echo "run.sh: unknown option '$1' (see fuzz/run.sh --help)" >&2
		exit 2
		;;
	*)
		names+=("$1")
		shift
		;;
	esac
done

if ((${#names[@]} == 0)); then
	for src in fuzz/*.c; do
		names+=("$(basename "$src" .c)")
	done
fi

findings=$BUILD/fuzz/findings
logs=$BUILD/fuzz/logs
mkdir -p "$findings" "$logs"
scratch=""
if [[ -z $long ]]; then
	scratch=$(mktemp -d "$BUILD/fuzz/check.XXXXXX")
	trap 'rm -rf "$scratch"' EXIT
fi

# The value of a libFuzzer "stat::NAME: value" line, or of "NAME: value" in its last status line.
final_stat() {
	sed -n "s/^stat::$1: *\([0-9]*\).*/\1/p" "$2" | tail -1
}
status_field() {
	grep -E '^#[0-9]+' "$2" | tail -1 | sed -n "s/.* $1: \([^ ]*\).*/\1/p"
}

echo "1..${#names[@]}"
failed=0
n=0
for name in "${names[@]}"; do
	n=$((n + 1))
	bin=$BUILD/fuzz/$name
	if [[ ! -x $bin ]]; then
		echo "not ok $n - $name: $bin is missing (make fuzzers builds it)"
		failed=1
		continue
	fi
	if [[ -n $long ]]; then
		corpus=$BUILD/fuzz/corpus/$name
	else
		corpus=$scratch/$name
	fi
	mkdir -p "$corpus"
	if [[ -d fuzz/corpus/$name ]]; then
		cp -n fuzz/corpus/"$name"/* "$corpus"/ 2>/dev/null || true
	fi
	seeds=$(find "$corpus" -type f | wc -l)
	args=(-max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
		-artifact_prefix="$findings/$name-")
	[[ -f fuzz/$name.dict ]] && args+=(-dict="fuzz/$name.dict")
	if [[ -f fuzz/$name.flags ]]; then
		while read -r flag; do
			[[ -z $flag || $flag == \#* ]] || args+=("$flag")
		done <"fuzz/$name.flags"
	fi
	log=$logs/$name.log
	rc=0
	"$bin" "${args[@]}" "$corpus" >"$log" 2>&1 || rc=$?

	execs=$(final_stat number_of_executed_units "$log")
	took=$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$log" | tail -1)
	what="${execs:-0} executions in ${took:-?} s, $seeds seeds -> $(find "$corpus" -type f | wc -l) inputs, cov $(status_field cov "$log") ft $(status_field ft "$log")"
	if ((rc != 0)); then
		artifact=$(sed -n "s/.*Test unit written to \(.*\)/\1/p" "$log" | tail -1)
		echo "not ok $n - $name: exit $rc after $what; input kept as ${artifact:-(none)}"
		grep -E 'property broken|runtime error|ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|SUMMARY' \
			"$log" | head -5 | sed 's/^/# /'
		echo "# full log: $log"
		failed=1
	elif [[ -z $execs ]] || ((execs < seeds)); then
		# Every seed must at least have run: otherwise the harness did not really start.
		echo "not ok $n - $name: ran ${execs:-no} inputs of $seeds seeds; log: $log"
		failed=1
	else
		echo "ok $n - $name: $what"
	fi
done
exit $failed
