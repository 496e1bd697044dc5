#!/usr/bin/env bash
# bench/compare.sh [--quick | --smoke] [--json FILE]
#
# rlshape against the two usual ways of answering over-limit requests with a 429 on an
# inference gateway, measured side by side in one run, in one namespace bed:
#
#   client ns --veth-- gateway ns --veth-- upstream ns (tools/mock-upstream, $BED_UP4:8000)
#                      proxy on $BED_GW_CLIENT4:8000, keep-alive connections to the upstream
#
#   rlshape   XDP on the gateway's client-facing veth, in front of a plain nginx proxy
#   nginx     limit_req keyed on the Authorization header, limit_req_status 429
#   haproxy   stick table (http_req_rate) keyed on Authorization, deny deny_status 429
#   baselines the same proxies with no limiter: plain nginx (for rlshape and nginx), plain
#             HAProxy (for haproxy)
#
# Each limiter runs twice: with a tiny limit for the key (nearly every request is rejected:
# 429s per second, whole-machine CPU per 1,000 429s) and with a huge one (every request is
# admitted and goes through the limiter: p50/p99 latency, and what the limiter adds over its
# own baseline). wrk loads every variant with the same threads, connections and duration,
# once over keep-alive connections and once with a new connection per request. Each variant
# runs ROUNDS times, interleaved; the report gives medians.
#
# Prints a Markdown section on stdout (progress goes to stderr); --json FILE also writes the
# results, every round included. Exits non-zero only when something could not be measured.
# Needs root, `tools/install-deps.sh` (it installs nginx, haproxy and wrk with the rest) and `make`.
set -euo pipefail

usage() {
	cat <<'EOF'
Usage: bench/compare.sh [--quick | --smoke] [--json FILE] [--rounds N] [--duration S]

rlshape (XDP) vs nginx limit_req vs HAProxy stick table, each answering over-limit
requests with 429, plus the proxies without a limiter, in one namespace bed.

  --quick        1 round of 3 s runs (about a minute)
  --smoke        1 round of 1 s runs: proves the script works end to end (make check)
                 (default: 3 rounds of 5 s runs, medians; about 5 minutes)
  --json FILE    also write machine-readable results to FILE
  --rounds N     rounds per variant (medians are taken over them)
  --duration S   seconds per wrk run
  -h, --help     this text
EOF
}

profile=full
json_out=""
rounds=""
duration=""
while (($#)); do
	case $1 in
	--quick) profile=quick ;;
	--smoke) profile=smoke ;;
	--json)
		(($# >= 2)) || {
			echo "compare: --json needs a file name" >&2
			exit 2
		}
		json_out=$2
		shift
		;;
	--rounds | --duration)
		if (($# < 2)) || [[ ! $2 =~ ^[1-9][0-9]*$ ]]; then
			echo "compare: $1 needs a positive integer" >&2
			exit 2
		fi
		if [[ $1 == --rounds ]]; then rounds=$2; else duration=$2; fi
		shift
		;;
	-h | --help)
		usage
		exit 0
		;;
	*)
		echo "compare: unknown option '$1'" >&2
		usage >&2
		exit 2
		;;
	esac
	shift
done
case $profile in
full) : "${rounds:=3}" "${duration:=5}" ;;
quick) : "${rounds:=1}" "${duration:=3}" ;;
smoke) : "${rounds:=1}" "${duration:=1}" ;;
esac
# The same load for every variant.
threads=2
connections=32
port=8000    # where the clients send, rlshape or a proxy in front
up_port=8000 # mock-upstream, in its own namespace
key=sk-bench-1

if [[ -n $json_out && $json_out != /* ]]; then
	json_out=$PWD/$json_out
fi
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
build=${BUILD:-build}
tpl=bench/compare

die() {
	echo "compare: $*" >&2
	exit 1
}
note() {
	echo "compare: $*" >&2
}

# --- what must be there ----------------------------------------------------------------

[[ $(id -u) -eq 0 ]] || die "must run as root (network namespaces, XDP)"
for tool in wrk nginx haproxy curl python3; do
	command -v "$tool" >/dev/null ||
		die "$tool is missing: run tools/install-deps.sh (or make check)"
done
for f in "$build/rlshape" "$build/tools/mock-upstream" "$build/rlshape.bpf.o" \
	"$build/xdp_pass.bpf.o"; do
	[[ -x $f || ($f == *.o && -r $f) ]] || die "$f is missing: run make"
done
for f in post.lua report.py nginx.conf.in haproxy.cfg.in tiers.json.in; do
	[[ -r $tpl/$f ]] || die "$tpl/$f is missing"
done
clk_tck=$(getconf CLK_TCK)

# shellcheck source=tests/lib/bed.sh disable=SC1091 # (followed with shellcheck -x)
source tests/lib/bed.sh

# --- helpers -------------------------------------------------------------------------------

# render TEMPLATE OUT NAME=VALUE...: replace every @NAME@ of TEMPLATE (values without '|',
# '&' or '\').
render() {
	local in=$1 out=$2 kv
	shift 2
	local -a sed_args=()
	for kv in "$@"; do
		sed_args+=(-e "s|@${kv%%=*}@|${kv#*=}|g")
	done
	sed "${sed_args[@]}" "$in" >"$out"
	if grep -q '@[A-Z_]*@' "$out"; then
		die "$out: unfilled fields: $(grep -o '@[A-Z_]*@' "$out" | sort -u | tr '\n' ' ')"
	fi
}

proc_alive() { # PID: running, not a zombie (nginx and haproxy have no space in their name)
	local _pid _comm st
	{ read -r _pid _comm st _ <"/proc/$1/stat"; } 2>/dev/null || return 1
	[[ -n $st && $st != Z ]]
}

proc_gone() {
	! proc_alive "$1"
}

# Whole-machine busy CPU time, in jiffies: user+nice+system+irq+softirq+steal
# (guest time is already inside user and nice).
cpu_jiffies() {
	local _cpu user nice system _idle _iowait irq softirq steal _rest
	read -r _cpu user nice system _idle _iowait irq softirq steal _rest </proc/stat
	echo $((user + nice + system + irq + softirq + steal))
}

# tcp_counter FILE NAME: a Tcp counter of an /proc/net/snmp (PassiveOpens: connections
# accepted, RetransSegs: segments sent again). FILE is - for standard input.
tcp_counter() {
	local -a names=() values=()
	local i src=$1
	if [[ $src == - ]]; then src=/dev/stdin; fi
	while read -r -a values; do
		[[ ${values[0]} == Tcp: ]] || continue
		if ((${#names[@]} == 0)); then
			names=("${values[@]}")
			continue
		fi
		for ((i = 1; i < ${#names[@]}; i++)); do
			if [[ ${names[i]} == "$2" ]]; then
				echo "${values[i]}"
				return 0
			fi
		done
		break
	done <"$src"
	local where=$1
	[[ $where != - ]] || where="the client's /proc/net/snmp"
	die "no Tcp counter $2 in $where"
}

# The client's counter: one process in its namespace. The gateway's: through the server's
# /proc entry, which shows the namespace it runs in.
client_retransmits() {
	bed_client cat /proc/net/snmp | tcp_counter - RetransSegs
}

gw_accepts() {
	tcp_counter "/proc/$srv_pid/net/snmp" PassiveOpens
}

upstream_count() {
	wc -l <"$BED_DIR/upstream.log"
}

# What rlshape's XDP program counted since the table was first loaded: "REQUESTS REPLIES",
# the HTTP requests it parsed and the 429s it sent.
xdp_counts() {
	local st re1='"requests": *([0-9]+)' re2='"replies_429": *([0-9]+)' n
	st=$(bed_gw "$build/rlshape" stats --dev "$BED_GW_DEV" --json) ||
		die "rlshape stats --dev $BED_GW_DEV failed"
	st=${st#*\"packets\"} # the packet counters come after the per-account list
	[[ $st =~ $re1 ]] || die "rlshape stats --json has no packets.requests: $st"
	n=${BASH_REMATCH[1]}
	[[ $st =~ $re2 ]] || die "rlshape stats --json has no packets.replies_429: $st"
	echo "$n ${BASH_REMATCH[1]}"
}

# record VARIANT MODE ROUND CPU_JIFFIES WALL_US UPSTREAM ACCEPTS RETRANS "XDP0" "XDP1"
# "RESULT k=v ...": one JSON object (no python per run: it can take a second to start on a
# busy machine).
record() {
	local variant=$1 mode=$2 round=$3 jiffies=$4 wall=$5 upstream=$6 accepts=$7 retrans=$8
	local xdp0=$9 xdp1=${10} result=${11} kv json
	json="{\"variant\": \"$variant\", \"connections_mode\": \"$mode\", \"round\": $round"
	json+=", \"cpu_jiffies\": $jiffies, \"clk_tck\": $clk_tck, \"wall_us\": $wall"
	json+=", \"upstream_requests\": $upstream, \"gateway_accepts\": $accepts"
	json+=", \"client_retransmits\": $retrans"
	if [[ -z $xdp0 ]]; then
		json+=", \"xdp_requests\": null, \"xdp_replies_429\": null"
	else
		local -a x0 x1
		read -r -a x0 <<<"$xdp0"
		read -r -a x1 <<<"$xdp1"
		json+=", \"xdp_requests\": $((x1[0] - x0[0])), \"xdp_replies_429\": $((x1[1] - x0[1]))"
	fi
	for kv in ${result#RESULT }; do
		[[ $kv =~ ^[a-z0-9_]+=[0-9.]+$ ]] || die "unexpected wrk result field '$kv' in: $result"
		json+=", \"${kv%%=*}\": ${kv#*=}"
	done
	echo "$json}"
}

# progress VARIANT MODE ROUND CPU_JIFFIES "RESULT k=v ...": one line on stderr.
progress() {
	local kv d
	local -A x=()
	for kv in ${5#RESULT }; do
		x[${kv%%=*}]=${kv#*=}
	done
	d=$((x[duration_us] / 1000)) # ms
	((d > 0)) || d=1
	printf 'compare: %-14s %-9s round %d: %6d req/s %6d 429/s  p50 %6d us  p99 %6d us  cpu %d.%02d s\n' \
		"$1" "$2" "$3" $((x[requests] * 1000 / d)) $((x[r429] * 1000 / d)) "${x[p50_us]}" \
		"${x[p99_us]}" $(($4 / clk_tck)) $(($4 * 100 / clk_tck % 100)) >&2
}

srv_pid=""
srv_log=""
srv_extra_log=""
srv_name=""

server_logs() {
	local f
	for f in "$srv_log" "$srv_extra_log"; do
		[[ -s $f ]] || continue
		echo "--- $f (its end; $BED_DIR is removed on exit)"
		tail -n 20 "$f"
	done
}

server_ready() {
	if ! proc_alive "$srv_pid"; then
		die "$srv_name exited before it answered on $BED_GW_CLIENT4:$port:
$(server_logs)"
	fi
	bed_client curl -sf -o /dev/null -m 1 "http://$BED_GW_CLIENT4:$port/ready"
}

# start_server NAME EXTRA_LOG CMD...: CMD in the gateway namespace, until the client gets a
# 2xx through it from the upstream (a GET without a key: no limiter counts it).
start_server() {
	srv_name=$1 srv_extra_log=$2
	shift 2
	bed_spawn bed_gw "$@"
	srv_pid=$BED_LAST_PID
	srv_log=$BED_LAST_LOG
	bed_wait_until 15 server_ready ||
		die "$srv_name did not answer on $BED_GW_CLIENT4:$port within 15 s:
$(server_logs)"
}

stop_server() {
	[[ -n $srv_pid ]] || return 0
	kill -TERM "$srv_pid" 2>/dev/null || true
	if ! bed_wait_until 10 proc_gone "$srv_pid"; then
		kill -KILL "$srv_pid" 2>/dev/null || true
	fi
	wait "$srv_pid" 2>/dev/null || true
	# Forget it in bed.sh's list too, so that bed_down never signals a reused pid.
	local -a keep=()
	local p
	for p in "${_BED_PIDS[@]}"; do
		[[ $p == "$srv_pid" ]] || keep+=("$p")
	done
	_BED_PIDS=("${keep[@]}")
	srv_pid=""
}

# render_proxy TEMPLATE CONF NAME=VALUE...: a proxy's config (render) in CONF's directory (DIR),
# listening where the clients send ($BED_GW_CLIENT4:$port), forwarding to the upstream.
render_proxy() {
	local template=$1 conf=$2
	shift 2
	mkdir -p "${conf%/*}"
	render "$template" "$conf" DIR="${conf%/*}" GW_ADDR="$BED_GW_CLIENT4" GW_PORT="$port" \
		UP_ADDR="$BED_UP4" UP_PORT="$up_port" "$@"
}

# start_nginx DIR LIMIT_ZONE LIMIT_REQ
start_nginx() {
	local d=$1
	render_proxy "$tpl/nginx.conf.in" "$d/nginx.conf" LIMIT_ZONE="$2" LIMIT_REQ="$3"
	start_server "nginx ($d/nginx.conf)" "$d/error.log" \
		nginx -p "$d/" -c "$d/nginx.conf" -e "$d/error.log" -g 'daemon off;'
}

# start_haproxy DIR TRACK DENY
start_haproxy() {
	local d=$1
	render_proxy "$tpl/haproxy.cfg.in" "$d/haproxy.cfg" TRACK="$2" DENY="$3"
	start_server "haproxy ($d/haproxy.cfg)" "" \
		haproxy -f "$d/haproxy.cfg" -db -p "$d/haproxy.pid"
}

rls_load() { # RPD
	local table=$BED_DIR/tiers-rpd$1.json
	render "$tpl/tiers.json.in" "$table" GW_PORT="$port" RPD="$1"
	bed_gw "$build/rlshape" load "$table" --dev "$BED_GW_DEV" >"$BED_DIR/rlshape-load.log" 2>&1 ||
		die "rlshape load $table --dev $BED_GW_DEV failed: $(cat "$BED_DIR/rlshape-load.log")"
}

rls_unload() {
	bed_gw "$build/rlshape" unload --dev "$BED_GW_DEV" >"$BED_DIR/rlshape-unload.log" 2>&1 ||
		die "rlshape unload --dev $BED_GW_DEV failed: $(cat "$BED_DIR/rlshape-unload.log")"
}

# measure VARIANT ROUND: one wrk run per connection mode against the server that is up;
# appends one JSON object per run to $BED_DIR/runs.jsonl.
measure() {
	local variant=$1 round=$2 conn out line l c0 c1 u0 u1 a0 a1 r0 r1 t0 t1 x0 x1
	local -a hdr
	for conn in keepalive close; do
		hdr=()
		[[ $conn == close ]] && hdr=(-H 'Connection: close')
		out=$BED_DIR/wrk-$variant-$conn-r$round.txt
		x0="" x1=""
		[[ $variant == rlshape_* ]] && x0=$(xdp_counts)
		u0=0 u1=0
		[[ $variant == *_tiny ]] && u0=$(upstream_count)
		a0=$(gw_accepts)
		r0=$(client_retransmits)
		t0=${EPOCHREALTIME/[.,]/}
		c0=$(cpu_jiffies)
		if ! bed_client wrk -t "$threads" -c "$connections" -d "${duration}s" --timeout 5s \
			-s "$tpl/post.lua" "${hdr[@]}" \
			"http://$BED_GW_CLIENT4:$port/v1/chat/completions" >"$out" 2>&1; then
			die "wrk failed for $variant ($conn): $(cat "$out")"
		fi
		c1=$(cpu_jiffies)
		t1=${EPOCHREALTIME/[.,]/}
		r1=$(client_retransmits)
		a1=$(gw_accepts)
		[[ $variant == *_tiny ]] && u1=$(upstream_count)
		[[ $variant == rlshape_* ]] && x1=$(xdp_counts)
		line=""
		while IFS= read -r l; do
			[[ $l == "RESULT "* ]] && line=$l
		done <"$out"
		[[ -n $line ]] || die "wrk printed no result for $variant ($conn): $(cat "$out")"
		record "$variant" "$conn" "$round" "$((c1 - c0))" "$((10#$t1 - 10#$t0))" \
			"$((u1 - u0))" "$((a1 - a0))" "$((r1 - r0))" \
			"$x0" "$x1" "$line" >>"$BED_DIR/runs.jsonl"
		[[ $line == *" requests=0 "* ]] &&
			die "$variant ($conn): wrk got no answer at all: $(cat "$out")"
		progress "$variant" "$conn" "$round" "$((c1 - c0))" "$line"
	done
}

# --- the bed, the upstream -----------------------------------------------------------------

note "$rounds round(s) of ${duration} s wrk runs (-t $threads -c $connections), 16 runs per round"
bed_up
# Whichever side closes first keeps the connection in TIME_WAIT for a minute: the gateway for
# nginx and HAProxy, which close after their 429; the client for rlshape, whose closing 429
# lets the client close. At thousands of new connections a second the client's ports would
# run out and slow every later run: wrk reuses them, as a load generator is set up to.
_bed_ns_sysctl "$BED_CLIENT_NS" net.ipv4.tcp_tw_reuse=1
: >"$BED_DIR/runs.jsonl"
bed_spawn bed_up_ns "$build/tools/mock-upstream" --listen "*:$up_port" \
	--log "$BED_DIR/upstream.log" --ready-file "$BED_DIR/upstream.ready"
bed_wait_file "$BED_DIR/upstream.ready" 10 || die "mock-upstream did not start: $(cat "$BED_LAST_LOG")"

nginx_zone_tiny="limit_req_zone \$http_authorization zone=bench:10m rate=1r/m;"
nginx_req_tiny="limit_req zone=bench; limit_req_status 429;"
# nginx counts in milliseconds: without a burst, two requests of a key in the same
# millisecond are over any rate. The burst lets every request through at once (nodelay).
nginx_zone_huge="limit_req_zone \$http_authorization zone=bench:10m rate=100000000r/s;"
nginx_req_huge="limit_req zone=bench burst=1000000 nodelay; limit_req_status 429;"
haproxy_track="http-request track-sc0 req.hdr(authorization) table st_bench"
haproxy_deny_tiny="http-request deny deny_status 429 if { sc_http_req_rate(0) gt 1 }"
haproxy_deny_huge="http-request deny deny_status 429 if { sc_http_req_rate(0) gt 1000000000 }"

read -r load1 load5 load15 _ </proc/loadavg
started=$EPOCHSECONDS
for ((round = 1; round <= rounds; round++)); do
	sd=$BED_DIR/srv-r$round
	# (a) plain nginx: the baseline, then the same nginx behind rlshape.
	start_nginx "$sd/nginx-plain" "" ""
	measure nginx_plain "$round"
	rls_load 1000000000
	measure rlshape_huge "$round"
	rls_load 1
	measure rlshape_tiny "$round"
	rls_unload
	stop_server
	# (b) nginx limit_req.
	start_nginx "$sd/nginx-huge" "$nginx_zone_huge" "$nginx_req_huge"
	measure nginx_huge "$round"
	stop_server
	start_nginx "$sd/nginx-tiny" "$nginx_zone_tiny" "$nginx_req_tiny"
	measure nginx_tiny "$round"
	stop_server
	# (c) HAProxy: baseline, then the stick table.
	start_haproxy "$sd/haproxy-plain" "" ""
	measure haproxy_plain "$round"
	stop_server
	start_haproxy "$sd/haproxy-huge" "$haproxy_track" "$haproxy_deny_huge"
	measure haproxy_huge "$round"
	stop_server
	start_haproxy "$sd/haproxy-tiny" "$haproxy_track" "$haproxy_deny_tiny"
	measure haproxy_tiny "$round"
	stop_server
done
note "measured in $((EPOCHSECONDS - started)) s"

python3 "$tpl/report.py" --runs "$BED_DIR/runs.jsonl" --json "${json_out:-}" \
	--profile "$profile" --rounds "$rounds" --duration "$duration" --threads "$threads" \
	--connections "$connections" --key "$key" --clk-tck "$clk_tck" \
	--kernel "$(uname -r)" --cpus "$(nproc)" --loadavg "$load1 $load5 $load15" \
	--nginx "$(nginx -v 2>&1 | sed 's|.*nginx/||')" \
	--haproxy "$(haproxy -v | sed -n '1s/^HAProxy version \([^ ]*\).*/\1/p')" \
	--wrk "$(wrk -v 2>&1 | sed -n '1s/^wrk \([^ ]*\).*/\1/p' | sed 's|^debian/||')" ||
	die "could not write the report"
bed_down
