#!/usr/bin/env bash
# bench/run.sh [--quick | --smoke] [--out FILE]
#
# Runs every rlshape benchmark and prints one Markdown report, ending in a summary table:
#   1. per-packet cost of the XDP program (build/bench/prog_cost, BPF_PROG_TEST_RUN), and of
#      the upstream side's TC egress program (build/bench/egress_cost)
#   2. scale with the tier table's size (bench/scale.sh), and the table's load against an
#      earlier commit's (bench/table_load.sh)
#   3. a metrics scrape of the daemon with large tables (bench/metrics_scrape.sh), and accuracy
#      under a saturating load on every CPU (build/bench/accuracy)
#   4. rlshape against nginx and HAProxy (bench/compare.sh, when it exists)
#   5. a fleet of three gateways through Redis against one gateway (bench/fleet.sh)
#   6. an admitted request's time through nginx with and without rlshape on the upstream side
#      (bench/upstream_latency.sh)
#
#   (default)  the full run, `make bench`: about 10 minutes; writes bench/results/LATEST.md
#   --quick    fewer runs, smaller tables, `make bench-quick`: under 2 minutes; also writes
#              bench/results/LATEST.md (its header says which mode made it)
#   --smoke    tiny counts, under a minute: proves the scripts work (tests/e2e/90_bench_smoke.sh);
#              writes no file unless --out is given
#   --out FILE write the report to FILE instead
#
# Measured, never pass/fail: it exits non-zero only when a part could not run. Needs root.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
REPO=$PWD
BUILD_DIR=${BUILD:-build}
[[ $BUILD_DIR == /* ]] || BUILD_DIR=$REPO/$BUILD_DIR

mode=full
out=""
out_given=0
while (($#)); do
	case $1 in
	--quick) mode=quick ;;
	--smoke) mode=smoke ;;
	--out)
		out=${2:?--out needs a file}
		out_given=1
		shift
		;;
	-h | --help)
		sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'
		exit 0
		;;
	*)
		echo "run.sh: unknown argument '$1' (see --help)" >&2
		exit 2
		;;
	esac
	shift
done
if ((!out_given)) && [[ $mode != smoke ]]; then
	out=$REPO/bench/results/LATEST.md
fi

if [[ $(id -u) -ne 0 ]]; then
	echo "run.sh: root is required (BPF_PROG_TEST_RUN, network namespaces)" >&2
	exit 1
fi

# What each mode runs. prog_cost: single runs per case (over all rounds), rounds, .repeat.
case $mode in
full)
	PROG_COST_ARGS=(--runs 1000000 --rounds 5 --repeat 1000000 --data-path)
	EGRESS_COST_ARGS=(--runs 200000 --rounds 5)
	ACCURACY_ARGS=(--rps 20000 --rps-seconds 10 --rpm 12000 --burst 1000 --rpm-seconds 5
		--rpd 100000 --rpd-seconds 2)
	SUB_MODE=()
	;;
quick)
	PROG_COST_ARGS=(--runs 200000 --rounds 5 --repeat 200000 --data-path)
	EGRESS_COST_ARGS=(--runs 50000 --rounds 5)
	ACCURACY_ARGS=(--rps 20000 --rps-seconds 3 --rpm 12000 --burst 500 --rpm-seconds 2
		--rpd 50000 --rpd-seconds 1)
	SUB_MODE=(--quick)
	;;
smoke)
	PROG_COST_ARGS=(--runs 6000 --rounds 3 --repeat 10000 --data-path)
	EGRESS_COST_ARGS=(--runs 2000 --rounds 3)
	ACCURACY_ARGS=(--rps 2000 --rps-seconds 2.2 --rpm 6000 --burst 50 --rpm-seconds 0.5
		--rpd 2000 --rpd-seconds 0.3)
	SUB_MODE=(--smoke)
	;;
esac

# Build what runs here (make bench has built everything already: then this is a no-op).
if ! make --no-print-directory -s -C "$REPO" "$BUILD_DIR/rlshape" "$BUILD_DIR/xdp_pass.bpf.o" \
	"$BUILD_DIR/bench/prog_cost" "$BUILD_DIR/bench/egress_cost" "$BUILD_DIR/bench/accuracy" >&2; then
	echo "run.sh: the build failed" >&2
	exit 1
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/rls-bench.XXXXXX")
cleanup() {
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
report=$tmp/report.md
summary=$tmp/summary.tsv
: >"$report"
: >"$summary"
failed=()

emit() {
	printf '%s\n' "$@" | tee -a "$report"
}

# section TITLE CMD...: runs CMD, its stdout (Markdown) under "## TITLE"; headings CMD prints
# itself go one level down.
section() {
	local title=$1 rc=0 t0=$SECONDS
	shift
	echo "run.sh: $title ..." >&2
	"$@" >"$tmp/section.md" || rc=$?
	emit "## $title" ""
	sed 's/^#/##/' "$tmp/section.md" | tee -a "$report"
	if ((rc == 130 || rc == 143)); then
		echo "run.sh: interrupted" >&2
		exit "$rc"
	fi
	if ((rc != 0)); then
		emit "" "**This part failed (exit status $rc); its messages went to stderr.**"
		failed+=("$title")
	fi
	emit "" "_Took $((SECONDS - t0)) s._" ""
}

val() { # KEY: the value of a summary line, or "n/a"
	awk -F'\t' -v k="$1" '$1 == k { v = $2 } END { print (v == "" ? "n/a" : v) }' "$summary"
}

cpu_model=$(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo)
[[ -n $cpu_model ]] || cpu_model=$(uname -m)
# Hosts of one CPU model have given different ratios to the HTTP floor (BENCHMARKS.md, "Issue 13
# on a second kind of host"). What differed between them: a hypervisor, PCID (without it, PTI
# empties the TLB at every syscall) and SRSO's safe RET (which makes every return dear).
cpu_flags=$(awk -F': *' '/^flags/ { print $2; exit }' /proc/cpuinfo)
has_flag() { [[ " $cpu_flags " == *" $1 "* ]] && echo yes || echo no; }
vulnerability() {
	cat "/sys/devices/system/cpu/vulnerabilities/$1" 2>/dev/null || echo "not reported"
}
host_notes="hypervisor: $(has_flag hypervisor); pcid: $(has_flag pcid);"
host_notes+=" meltdown: $(vulnerability meltdown);"
host_notes+=" spec_rstack_overflow: $(vulnerability spec_rstack_overflow)"
commit=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo "?")
if [[ -n $(git -C "$REPO" status --porcelain --untracked-files=no 2>/dev/null) ]]; then
	commit+=" (with uncommitted changes)"
fi
started=$SECONDS

emit "# rlshape benchmarks" "" \
	"- date: $(date -u +%Y-%m-%dT%H:%M:%SZ)" \
	"- mode: $mode (\`bench/run.sh${SUB_MODE[*]:+ ${SUB_MODE[*]}}\`)" \
	"- machine: $cpu_model, $(nproc) cores, kernel $(uname -r)" \
	"- host: $host_notes" \
	"- commit: $commit" "" \
	"Absolute times on a shared machine are not a claim: other work on the host moves them" \
	"from run to run. Compare ratios taken within one run, and medians; BENCHMARKS.md says" \
	"what each figure measures and how to reproduce it." ""

section "Per-packet cost (bench/prog_cost.c)" \
	"$BUILD_DIR/bench/prog_cost" "${PROG_COST_ARGS[@]}" --summary "$summary"
section "Per-packet cost of the upstream side (bench/egress_cost.c)" \
	"$BUILD_DIR/bench/egress_cost" "${EGRESS_COST_ARGS[@]}" --summary "$summary"
section "Scale with the table's size (bench/scale.sh)" \
	"$REPO/bench/scale.sh" "${SUB_MODE[@]}" --summary "$summary"
section "Table load before and after (bench/table_load.sh)" \
	"$REPO/bench/table_load.sh" "${SUB_MODE[@]}"
section "Metrics scrape with large tables (bench/metrics_scrape.sh)" \
	"$REPO/bench/metrics_scrape.sh" "${SUB_MODE[@]}"
section "Accuracy under saturation (bench/accuracy.c)" \
	"$BUILD_DIR/bench/accuracy" "${ACCURACY_ARGS[@]}" --summary "$summary"
compare_note=""
if [[ -f $REPO/bench/compare.sh ]]; then
	section "Comparison with nginx and HAProxy (bench/compare.sh)" \
		bash "$REPO/bench/compare.sh" "${SUB_MODE[@]}"
	compare_note="see the section above"
else
	emit "## Comparison with nginx and HAProxy (bench/compare.sh)" "" \
		"bench/compare.sh does not exist in this tree: this section was not run." ""
	compare_note="not run: bench/compare.sh does not exist"
fi

section "A fleet of gateways through Redis (bench/fleet.sh)" \
	"$REPO/bench/fleet.sh" "${SUB_MODE[@]}" --summary "$summary"
section "An admitted request through nginx, with rlshape on the upstream side (bench/upstream_latency.sh)" \
	"$REPO/bench/upstream_latency.sh" "${SUB_MODE[@]}" --summary "$summary"

# ---- the summary ----
ns() { # CASE: "median ns (x ratio; +ns over the floor)"
	echo "$(val "prog_cost.$1.median_ns") ns (x $(val "prog_cost.$1.ratio");" \
		"+$(val "prog_cost.$1.over_ns") ns over the floor)"
}
acc() { # TEST
	echo "$(val "accuracy.$1.allowed") | $(val "accuracy.$1.admitted") | $(val "accuracy.$1.error")"
}
sizes=$(awk -F'\t' '$1 ~ /^scale\.[0-9]+\.request_median_ns$/ { split($1, p, "."); print p[2] }' "$summary")

emit "## Summary" "" \
	"| figure | value |" "| --- | --- |" \
	"| no-op XDP program (the floor), single runs | $(val prog_cost.floor.median_ns) ns |" \
	"| pure ACK to the watched port | $(ns ack) |" \
	"| body segment, 1400 bytes of JSON, scanned | $(ns body) |" \
	"| body segment, 256 bytes of JSON, scanned | $(ns body_small) |" \
	"| body scan per byte: slope between the two sizes / 1400-byte segment over the ACK | $(val prog_cost.body.ns_per_byte) / $(val prog_cost.body.over_ack_ns_per_byte) ns |" \
	"| the HTTP floor (bench/floor) on a 400-byte header block: key, SipHash-1-3, lookup, GCRA | $(ns http_floor) |" \
	"| request start, small headers, admitted | $(ns request) |" \
	"| request start, a 400-byte header block: x the HTTP floor, over the no-op (issue 13: at most 2.5, goal 1.5) | $(ns request_400); x $(val prog_cost.request_400.http_floor_ratio) |" \
	"| request start, 1 KB of headers before the key | $(ns request_1k) |" \
	"| GET with a key, no body | $(ns get) |" \
	"| request start, model only in the JSON body | $(ns body_model) |" \
	"| request start under concurrency 1, keep-alive (slot given back and taken) | $(ns request_slot) |" \
	"| request start rejected with the 429: x the HTTP floor, over the no-op | $(ns rejected); x $(val prog_cost.rejected.http_floor_ratio) |" \
	"| in the data path (veth, NAPI, the kernel's run statistics): request start, 400-byte header block / the 429 that closes | $(val prog_cost.request_400.data_path_ns) ns (x $(val prog_cost.request_400.data_path_http_floor_ratio) the HTTP floor) / $(val prog_cost.rejected.data_path_ns) ns |" \
	"| .repeat: floor / ACK | $(val prog_cost.floor.repeat_ns) / $(val prog_cost.ack.repeat_ns) (x $(val prog_cost.ack.repeat_ratio)) ns |" \
	"| upstream side (TC egress): no-op TC program / pure ACK (x the no-op) | $(val egress_cost.floor.median_ns) / $(val egress_cost.ack.median_ns) ns (x $(val egress_cost.ack.ratio)) |" \
	"| upstream side: request on a kept connection, admitted / rejected into the 429 (x the no-op TC program) | $(val egress_cost.request.median_ns) ns (x $(val egress_cost.request.ratio)) / $(val egress_cost.rejected.median_ns) ns (x $(val egress_cost.rejected.ratio)) |"
commas() {
	sed ':a;s/\B[0-9]\{3\}\>/,&/;ta' <<<"$1"
}
for n in $sizes; do
	emit "| $(commas "$n") account$( ((n == 1)) || echo s): \`rlshape load\` / reload / maps memlock / request start | $(val "scale.$n.load_s") s / $(val "scale.$n.reload") / $(awk -v b="$(val "scale.$n.bench_memlock_bytes")" 'BEGIN { printf "%.1f MiB", b / 1048576 }') / $(val "scale.$n.request_median_ns") ns (x $(val "scale.$n.request_ratio")) |"
done
emit "" "| accuracy | allowed | admitted | error |" "| --- | ---: | ---: | ---: |" \
	"| rps (all full 1-s windows) | $(acc rps) |" \
	"| rpm + burst (GCRA, one minute window) | $(acc rpm) |" \
	"| rpd | $(acc rpd) |" "" \
	"Comparison with nginx and HAProxy: $compare_note." ""
emit "| fleet (rpm $(val fleet.limit)) | admitted | Redis calls/s per gateway |" "| --- | ---: | --- |" \
	"| one gateway, no fleet | $(val fleet.one_host.admitted) | 0 |" \
	"| three gateways, one Redis | $(val fleet.fleet.admitted) | $(val fleet.fleet.redis_calls_per_s) |" ""
emit "| an admitted request through nginx, a new connection each | p50 | ratio |" "| --- | ---: | ---: |" \
	"| rlshape on the upstream side, loaded / none | $(val upstream_latency.p50_rlshape_us) / $(val upstream_latency.p50_none_us) us | $(val upstream_latency.p50_ratio) (p99: $(val upstream_latency.p99_ratio)) |" ""
if ((${#failed[@]})); then
	emit "**Parts that failed:** $(printf '%s; ' "${failed[@]}")" ""
fi
emit "_Whole run: $((SECONDS - started)) s._"

if [[ -n $out ]]; then
	mkdir -p "$(dirname "$out")"
	cp "$report" "$out"
	echo "run.sh: report written to $out" >&2
else
	echo "run.sh: --smoke writes no report file (give --out FILE for one)" >&2
fi
((${#failed[@]} == 0))
