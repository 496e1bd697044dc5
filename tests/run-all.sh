#!/usr/bin/env bash
# Run every rlshape test suite and sum up their TAP results.
#
#   tests/run-all.sh                 all suites: a short run of every fuzzer (fuzz/run.sh),
#                                      build/tests/unit/*, build/tests/bpf/*, the same built
#                                      with ASan and UBSan when RLS_SANITIZED_BUILD names their
#                                      build tree (san-unit/NAME, san-bpf/NAME), all of these
#                                      RLS_JOBS at a time (default: one per CPU) and printed
#                                      whole as each ends; then tests/e2e/*.sh one at a time
#   RLS_TESTS=REGEX tests/run-all.sh only suites whose name (unit/NAME, bpf/NAME,
#                                      e2e/NAME.sh) matches the extended regex
#
# A suite prints TAP: "ok N - desc", "not ok N - desc", "... # SKIP reason" (skipped,
# whether ok or not ok: cmocka prints "not ok N # SKIP"), and may print "1..0 # SKIP why"
# to skip as a whole. Counted as one failure each: a suite that exits non-zero without
# any "not ok" line (crash, timeout), one that prints no result line at all, and one
# that prints fewer results than its plan announced.
# Every failing result is listed again after the last suite, under "# failed:".
# The last line is "N passed, N failed, N skipped"; the exit status is 1 if any failed.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

BUILD=${BUILD:-build}
SUITE_TIMEOUT=${RLS_SUITE_TIMEOUT:-600}
export CMOCKA_MESSAGE_OUTPUT=TAP

passed=0
failed=0
skipped=0

summary() {
	echo "$passed passed, $failed failed, $skipped skipped"
}

if [[ $(id -u) -ne 0 ]]; then
	echo "run-all: root is required (BPF programs, network namespaces); run as root" >&2
	failed=1
	summary
	exit 1
fi

shopt -s nullglob
suites=() # entries "name<TAB>path"
# The fuzzers' short run: one result per harness; a missing fuzzer binary fails it. It is the
# longest of the suites run side by side, so it starts first.
suites+=("fuzz/run.sh"$'\t'"fuzz/run.sh")
export LC_ALL=C
for kind in unit bpf; do
	for f in "$BUILD/tests/$kind"/*; do
		[[ -f $f && -x $f ]] && suites+=("$kind/${f##*/}"$'\t'"$f")
	done
done
if [[ -n ${RLS_SANITIZED_BUILD:-} ]]; then
	for kind in unit bpf; do
		for f in "$RLS_SANITIZED_BUILD/tests/$kind"/*; do
			[[ -f $f && -x $f ]] && suites+=("san-$kind/${f##*/}"$'\t'"$f")
		done
	done
fi
for f in tests/e2e/*.sh; do
	suites+=("e2e/${f##*/}"$'\t'"$f")
done
unset LC_ALL

selected=()
for s in "${suites[@]}"; do
	name=${s%%$'\t'*}
	if [[ -z ${RLS_TESTS:-} ]] || grep -Eq -- "$RLS_TESTS" <<<"$name"; then
		selected+=("$s")
	fi
done

if ((${#selected[@]} == 0)); then
	echo "run-all: no test suite found${RLS_TESTS:+ matching RLS_TESTS="$RLS_TESTS"}" \
		"(did the build run?)" >&2
	failed=1
	summary
	exit 1
fi

# Suites that touch nothing shared run RLS_JOBS at a time (default: one per CPU): the unit
# and BPF suites (each in a network namespace, on interfaces and pins named after its own
# PID) and the fuzzers. The end-to-end suites share the test bed's names, ports and pins, so
# they run one at a time, after them, each printed as it goes.
JOBS=${RLS_JOBS:-$(nproc)}
((JOBS >= 1)) || JOBS=1
logdir=$(mktemp -d)
declare -A running=() # pid -> index into selected
declare -A started=() # pid -> SECONDS at its start
interrupted=""
nsig=0
failures=() # "suite: the failing line", printed again at the end
# Ctrl-C or TERM: pass it on to the running suites (timeout forwards it to each suite's
# whole process group, so its cleanup traps run), let them finish, start no further suite.
on_signal() {
	interrupted=$1
	nsig=$((nsig + 1))
	local pid
	for pid in "${!running[@]}"; do
		kill "-$1" "$pid" 2>/dev/null || true
	done
}
trap 'on_signal INT' INT
trap 'on_signal TERM' TERM
trap 'rm -rf "$logdir"' EXIT

parallel_ok() { [[ $1 == unit/* || $1 == bpf/* || $1 == san-* || $1 == fuzz/* ]]; }

# start I: suite I in the background, its output in $logdir/I.
start() {
	local s=${selected[$1]} path cmd
	path=${s#*$'\t'}
	cmd=("$path")
	[[ $path == *.sh ]] && cmd=(bash "$path")
	# The log exists before the suite starts: a serial suite's output is followed with
	# tail -f from the moment start returns, and tail gives up on a file not there yet
	# (the suite's own redirection may come later), leaving the suite's lines unshown.
	: >"$logdir/$1"
	# timeout puts the suite in a process group of its own and, on expiry, signals all
	# of it (a suite's bash waiting on a command would not run its traps otherwise).
	timeout -k 30 "$SUITE_TIMEOUT" "${cmd[@]}" </dev/null >"$logdir/$1" 2>&1 &
	running[$!]=$1
	started[$!]=$SECONDS
}

# finish PID RC SHOWN: count suite PID's results; print its output first unless SHOWN.
finish() {
	local i rc=$2 log name elapsed
	i=${running[$1]}
	log=$logdir/$i
	name=${selected[$i]%%$'\t'*}
	elapsed=$((SECONDS - started[$1]))
	unset "running[$1]" "started[$1]"
	if [[ $3 != shown ]]; then
		echo "# ---- $name"
		sed 's/^/    /' "$log"
	fi

	s_ok=$(grep -Ec '^ok([[:space:]]|$)' "$log" || true)
	s_notok=$(grep -Ec '^not ok([[:space:]]|$)' "$log" || true)
	s_skip=$(grep -Ec '^(not )?ok([[:space:]].*)?#[[:space:]]*[Ss][Kk][Ii][Pp]' "$log" || true)
	plan=$(grep -Em1 '^1\.\.[0-9]+' "$log" || true)
	# A skipped test is counted as skipped only, whether printed "ok" or "not ok".
	s_skip_notok=$(grep -Ec '^not ok([[:space:]].*)?#[[:space:]]*[Ss][Kk][Ii][Pp]' "$log" || true)
	s_pass=$((s_ok - (s_skip - s_skip_notok)))
	s_fail=$((s_notok - s_skip_notok))
	s_results=$((s_ok + s_notok))

	why=""
	if ((s_results == 0)); then
		if [[ $plan =~ ^1\.\.0([[:space:]]|$) ]] && [[ $plan =~ \#[[:space:]]*[Ss][Kk][Ii][Pp] ]] && ((rc == 0)); then
			s_skip=$((s_skip + 1))
		else
			why="printed no test result"
			s_fail=$((s_fail + 1))
		fi
	elif ((rc != 0 && s_fail == 0)); then
		why="exited with status $rc without a failing test"
		((rc == 124 || rc == 137)) && why="timed out after ${SUITE_TIMEOUT}s"
		s_fail=$((s_fail + 1))
	elif [[ $plan =~ ^1\.\.([0-9]+) ]] && ((BASH_REMATCH[1] > s_results)); then
		why="planned ${BASH_REMATCH[1]} tests, ran $s_results"
		s_fail=$((s_fail + 1))
	fi

	local line
	while IFS= read -r line; do
		failures+=("$name: $line")
	done < <(grep -E '^not ok([[:space:]]|$)' "$log" | grep -Ev '#[[:space:]]*[Ss][Kk][Ii][Pp]' || true)
	[[ -z $why ]] || failures+=("$name: $why")

	passed=$((passed + s_pass))
	failed=$((failed + s_fail))
	skipped=$((skipped + s_skip))
	echo "# ==== $name: $([[ $s_fail -eq 0 ]] && echo OK || echo FAILED)" \
		"(pass $s_pass, fail $s_fail, skip $s_skip; exit $rc; ${elapsed}s)${why:+: $why}"
}

# wait_one: wait for any running suite and finish it. A trapped signal ends wait early
# with no suite done: then the caller's loop waits again.
wait_one() {
	local pid="" rc=0
	wait -n -p pid "${!running[@]}" || rc=$?
	[[ -n $pid ]] && finish "$pid" "$rc" ""
	return 0
}

i=0
while ((i < ${#selected[@]})) && parallel_ok "${selected[$i]%%$'\t'*}"; do
	[[ -z $interrupted ]] || break
	while ((${#running[@]} >= JOBS)); do
		wait_one
	done
	[[ -z $interrupted ]] || break
	start "$i"
	i=$((i + 1))
done
while ((${#running[@]} > 0)); do
	wait_one
done

for (( ; i < ${#selected[@]}; i++)); do
	[[ -z $interrupted ]] || break
	echo "# ---- ${selected[$i]%%$'\t'*}"
	start "$i"
	pid=$!
	tail -n +1 -s 0.1 --pid="$pid" -f "$logdir/$i" | sed -u 's/^/    /' &
	showpid=$!
	while :; do
		n=$nsig
		rc=0
		wait "$pid" || rc=$?
		# wait returns early when a trapped signal arrives: then wait again.
		if ((nsig != n)) && kill -0 "$pid" 2>/dev/null; then
			continue
		fi
		break
	done
	wait "$showpid" || true
	finish "$pid" "$rc" shown
done

if ((${#failures[@]} > 0)); then
	echo "# failed:"
	printf '#   %s\n' "${failures[@]}"
fi
if [[ -n $interrupted ]]; then
	echo "run-all: stopped by SIG$interrupted" >&2
	failed=$((failed + 1))
fi
summary
((failed == 0))
