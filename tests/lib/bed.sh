# shellcheck shell=bash
# Test bed for rlshape's end-to-end tests: three network namespaces,
#
#   client  BED_CLIENT_DEV ==veth== BED_GW_DEV  gateway  BED_GW_UP_DEV ==veth== BED_UP_DEV  upstream
#   198.18.1.2/24                   198.18.1.1           198.18.2.1            198.18.2.2/24
#   2001:2:0:1::2/64                2001:2:0:1::1        2001:2:0:2::1         2001:2:0:2::2/64
#
# Addresses only from the benchmarking ranges 198.18.0.0/15 and 2001:2::/48; client
# and upstream route only to each other's subnet via the gateway; no default route.
# The gateway forwards IPv4 and IPv6. rlshape attaches to BED_GW_DEV; the client's
# end has an XDP_PASS program so that what rlshape sends with XDP_TX is not lost.
#
# Use from a test script that runs with `set -euo pipefail`:
#
#   source "$(dirname "$0")/../lib/bed.sh"
#   bed_up                       # and `trap bed_down EXIT` is in place
#   bed_spawn bed_up_ns python3 -u -m http.server --bind "$BED_UP4" 8080
#   bed_wait_until 10 grep -q 'Serving HTTP' "$BED_LAST_LOG"
#   tap_is "$(bed_client curl -sS "http://$BED_UP4:8080/")" ... "desc"
#   tap_done
#
# Functions:
#   bed_up, bed_down                    make / remove everything (bed_down: idempotent)
#   bed_client|bed_gw|bed_up_ns CMD...  run CMD in that namespace (bed_gw: nsenter,
#                                       which keeps the host's /sys/fs/bpf)
#   bed_spawn NS_FUNC CMD...            CMD in the background in a namespace; sets
#                                       BED_LAST_PID, BED_LAST_LOG (its stdout+stderr)
#   bed_wait_file FILE TIMEOUT_S        wait until FILE exists
#   bed_wait_until TIMEOUT_S CMD...     wait until CMD succeeds
#   tap_ok DESC CMD..., tap_is GOT WANT DESC, tap_like STRING REGEX DESC,
#   tap_skip DESC REASON, tap_diag MSG..., tap_done
#
# Do not call bed_spawn in $(...): the pid would not be recorded for bed_down.

_BED_LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BED_REPO=$(cd "$_BED_LIB_DIR/../.." && pwd)
_bed_build=${BUILD:-build}
[[ $_bed_build == /* ]] || _bed_build=$BED_REPO/$_bed_build
BED_XDP_PASS_OBJ=${BED_XDP_PASS_OBJ:-$_bed_build/xdp_pass.bpf.o}
BED_PIN_ROOT=/sys/fs/bpf/rlshape
export BED_REPO BED_XDP_PASS_OBJ BED_PIN_ROOT

_BED_PIDS=()
_BED_STATE=""
BED_LAST_PID=""
BED_LAST_LOG=""

_bed_err() {
	echo "bed: $*" >&2
}

_bed_names() {
	local id=$$
	export BED_CLIENT_NS="rls-c-$id" BED_GW_NS="rls-g-$id" BED_UP_NS="rls-u-$id"
	# Interface names: at most 15 characters, unique per run (pins are keyed by BED_GW_DEV).
	export BED_GW_DEV="rlsg$id" BED_CLIENT_DEV="rlsc$id"
	export BED_GW_UP_DEV="rlsu$id" BED_UP_DEV="rlsv$id"
	BED_GW_DEV=${BED_GW_DEV:0:15} BED_CLIENT_DEV=${BED_CLIENT_DEV:0:15}
	BED_GW_UP_DEV=${BED_GW_UP_DEV:0:15} BED_UP_DEV=${BED_UP_DEV:0:15}

	export BED_CLIENT4=198.18.1.2 BED_GW_CLIENT4=198.18.1.1
	export BED_GW_UP4=198.18.2.1 BED_UP4=198.18.2.2
	export BED_CLIENT_NET4=198.18.1.0/24 BED_UP_NET4=198.18.2.0/24
	export BED_CLIENT6=2001:2:0:1::2 BED_GW_CLIENT6=2001:2:0:1::1
	export BED_GW_UP6=2001:2:0:2::1 BED_UP6=2001:2:0:2::2
	export BED_CLIENT_NET6=2001:2:0:1::/64 BED_UP_NET6=2001:2:0:2::/64
	export BED_PIN_DIR="$BED_PIN_ROOT/$BED_GW_DEV"
}

# --- running things in the namespaces -------------------------------------------------

bed_client() {
	ip netns exec "$BED_CLIENT_NS" "$@"
}

# nsenter, not `ip netns exec`: the latter gives the command a /sys of its own in which
# /sys/fs/bpf is not mounted, so pins made there would be lost.
bed_gw() {
	nsenter --net="/var/run/netns/$BED_GW_NS" -- "$@"
}

bed_up_ns() {
	ip netns exec "$BED_UP_NS" "$@"
}

bed_spawn() {
	if (($# < 2)); then
		_bed_err "usage: bed_spawn bed_client|bed_gw|bed_up_ns CMD [ARG...]"
		return 2
	fi
	local fn=$1
	shift
	local -a pre
	case $fn in
	bed_client) pre=(ip netns exec "$BED_CLIENT_NS") ;;
	bed_gw) pre=(nsenter --net="/var/run/netns/$BED_GW_NS" --) ;;
	bed_up_ns) pre=(ip netns exec "$BED_UP_NS") ;;
	*)
		_bed_err "bed_spawn: unknown namespace function '$fn'"
		return 2
		;;
	esac
	BED_LAST_LOG="$BED_DIR/spawn-${#_BED_PIDS[@]}-${1##*/}.log"
	# Both ip netns exec and nsenter exec CMD: $! is CMD's own pid.
	"${pre[@]}" "$@" </dev/null >"$BED_LAST_LOG" 2>&1 &
	BED_LAST_PID=$!
	_BED_PIDS+=("$BED_LAST_PID")
}

# --- waiting on a condition, with a deadline ---------------------------------------------

_bed_now_us() {
	local t=${EPOCHREALTIME/[.,]/}
	echo "$((10#$t))"
}

bed_wait_until() {
	local timeout=$1
	shift
	local deadline=$(($(_bed_now_us) + timeout * 1000000))
	until "$@"; do
		if (($(_bed_now_us) >= deadline)); then
			_bed_err "timed out after ${timeout}s waiting for: $*"
			return 1
		fi
		sleep 0.05
	done
}

bed_wait_file() {
	bed_wait_until "$2" test -e "$1"
}

# --- up and down -------------------------------------------------------------------------

_bed_alive() {
	local st
	[[ -r /proc/$1/stat ]] || return 1
	st=$(cut -d' ' -f3 "/proc/$1/stat" 2>/dev/null) || return 1
	[[ -n $st && $st != Z ]]
}

_bed_kill() {
	local pid deadline
	(($#)) || return 0
	kill -TERM "$@" 2>/dev/null || true
	deadline=$(($(_bed_now_us) + 3000000))
	for pid in "$@"; do
		while _bed_alive "$pid" && (($(_bed_now_us) < deadline)); do
			sleep 0.05
		done
		if _bed_alive "$pid"; then
			kill -KILL "$pid" 2>/dev/null || true
		fi
	done
}

_bed_ns_exists() {
	[[ -e /var/run/netns/$1 ]]
}

# Remove what runs killed with SIGKILL left behind: namespaces rls-[cgu]-PID, pin
# directories rlsgPID and files rls-bed-PID.* whose PID is gone.
_bed_reap_stale() {
	local ns pid d
	for ns in /var/run/netns/rls-[cgu]-*; do
		[[ -e $ns ]] || continue
		ns=${ns##*/}
		pid=${ns#rls-?-}
		[[ $pid =~ ^[0-9]+$ ]] || continue
		[[ $pid == "$$" ]] && continue
		_bed_alive "$pid" && continue # a zombie is dead too
		_bed_err "removing stale namespace $ns"
		# shellcheck disable=SC2046
		_bed_kill $(ip netns pids "$ns" 2>/dev/null)
		ip netns del "$ns" 2>/dev/null || true
	done
	for d in "$BED_PIN_ROOT"/rlsg*; do
		[[ -d $d ]] || continue
		pid=${d##*/rlsg}
		[[ $pid =~ ^[0-9]+$ ]] || continue
		[[ $pid == "$$" ]] && continue
		_bed_alive "$pid" && continue # a zombie is dead too
		_bed_err "removing stale pins $d"
		rm -rf "$d"
	done
	for d in "${TMPDIR:-/tmp}"/rls-bed-*.*; do
		[[ -d $d ]] || continue
		pid=${d##*/rls-bed-}
		pid=${pid%%.*}
		[[ $pid =~ ^[0-9]+$ && $pid != "$$" ]] || continue
		_bed_alive "$pid" || rm -rf "$d"
	done
	return 0
}

bed_down() {
	local - # set +e below stays inside this function
	set +e
	local prev_pipe ns pid
	[[ -n ${BED_GW_NS:-} ]] || return 0
	# A reader that went away (Ctrl-C on a pipeline) must not stop the cleanup.
	prev_pipe=$(trap -p PIPE)
	trap '' PIPE

	local -a pids=()
	for pid in "${_BED_PIDS[@]}"; do
		_bed_alive "$pid" && pids+=("$pid")
	done
	# Anything else still running inside our namespaces was started by the test too.
	for ns in "$BED_CLIENT_NS" "$BED_GW_NS" "$BED_UP_NS"; do
		_bed_ns_exists "$ns" || continue
		for pid in $(ip netns pids "$ns" 2>/dev/null); do
			[[ $pid == "$$" || $pid == "$BASHPID" ]] || pids+=("$pid")
		done
	done
	_bed_kill "${pids[@]}"
	for pid in "${_BED_PIDS[@]}"; do
		wait "$pid" 2>/dev/null
	done
	_BED_PIDS=()

	# Deleting a namespace deletes its veth ends, and with them the XDP programs.
	for ns in "$BED_CLIENT_NS" "$BED_GW_NS" "$BED_UP_NS"; do
		if _bed_ns_exists "$ns" && ! ip netns del "$ns"; then
			_bed_err "could not delete namespace $ns"
		fi
	done
	if [[ -n ${BED_PIN_DIR:-} && -e $BED_PIN_DIR ]]; then
		rm -rf "$BED_PIN_DIR"
	fi
	rmdir "$BED_PIN_ROOT" 2>/dev/null # only if no one else pins there
	if [[ -n ${BED_DIR:-} && -d $BED_DIR ]]; then
		rm -rf "$BED_DIR"
	fi
	_BED_STATE=down
	if [[ -n $prev_pipe ]]; then eval "$prev_pipe"; else trap - PIPE; fi
	return 0
}

_bed_return() {
	return "$1"
}

_bed_on_exit() {
	local rc=$?
	bed_down
	if [[ -n ${_BED_PREV_EXIT_TRAP:-} ]]; then
		# The previous trap sees the script's exit status in $?, as it would have.
		if ((rc == 0)); then
			eval "$_BED_PREV_EXIT_TRAP"
		else
			_bed_return "$rc" || eval "$_BED_PREV_EXIT_TRAP"
		fi
	fi
}

_bed_install_traps() {
	local -a t=()
	eval "t=($(trap -p EXIT))"
	if [[ ${t[2]:-} != _bed_on_exit ]]; then
		_BED_PREV_EXIT_TRAP=${t[2]:-}
		trap _bed_on_exit EXIT
	fi
	# A signal ends the script through `exit`, so the EXIT trap runs.
	[[ -n $(trap -p INT) ]] || trap 'exit 130' INT
	[[ -n $(trap -p TERM) ]] || trap 'exit 143' TERM
	[[ -n $(trap -p HUP) ]] || trap 'exit 129' HUP
}

_bed_ns_sysctl() { # NS KEY=VALUE... (through /proc/sys: procps may not be installed)
	local ns=$1
	shift
	# shellcheck disable=SC2016 # expanded by the inner bash
	nsenter --net="/var/run/netns/$ns" -- bash -c \
		'for kv; do k=${kv%%=*}; printf "%s\n" "${kv#*=}" >"/proc/sys/${k//.//}"; done' _ "$@"
}

bed_up() {
	if [[ $(id -u) -ne 0 ]]; then
		_bed_err "root is required"
		return 1
	fi
	if [[ $_BED_STATE == up ]]; then
		_bed_err "bed_up: already up"
		return 1
	fi
	local tool
	for tool in ip nsenter ethtool; do
		if ! command -v "$tool" >/dev/null; then
			_bed_err "$tool is missing (tools/install-deps.sh installs it)"
			return 1
		fi
	done
	if [[ ! -r $BED_XDP_PASS_OBJ ]]; then
		_bed_err "$BED_XDP_PASS_OBJ is missing: run make"
		return 1
	fi
	if [[ $(stat -f -c %T /sys/fs/bpf 2>/dev/null) != bpf_fs ]]; then
		_bed_err "/sys/fs/bpf is not a bpf mount: run tools/install-deps.sh"
		return 1
	fi

	_bed_names
	_bed_install_traps # before anything is made, so a failure below still cleans up
	_bed_reap_stale
	_BED_STATE=up
	BED_DIR=$(mktemp -d "${TMPDIR:-/tmp}/rls-bed-$$.XXXXXX")
	export BED_DIR

	local ns
	for ns in "$BED_CLIENT_NS" "$BED_GW_NS" "$BED_UP_NS"; do
		ip netns add "$ns"
		ip -n "$ns" link set lo up
		# IPv6 addresses usable at once, link-local ones too.
		_bed_ns_sysctl "$ns" net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0
	done
	_bed_ns_sysctl "$BED_GW_NS" net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1

	ip link add "$BED_CLIENT_DEV" netns "$BED_CLIENT_NS" type veth \
		peer name "$BED_GW_DEV" netns "$BED_GW_NS"
	ip link add "$BED_UP_DEV" netns "$BED_UP_NS" type veth \
		peer name "$BED_GW_UP_DEV" netns "$BED_GW_NS"

	# XDP must see complete checksums: no TX checksum offload on the client-side pair.
	ip netns exec "$BED_CLIENT_NS" ethtool -K "$BED_CLIENT_DEV" tx off >/dev/null
	ip netns exec "$BED_GW_NS" ethtool -K "$BED_GW_DEV" tx off >/dev/null

	ip -n "$BED_CLIENT_NS" addr add "$BED_CLIENT4/24" dev "$BED_CLIENT_DEV"
	ip -n "$BED_CLIENT_NS" addr add "$BED_CLIENT6/64" dev "$BED_CLIENT_DEV" nodad
	ip -n "$BED_GW_NS" addr add "$BED_GW_CLIENT4/24" dev "$BED_GW_DEV"
	ip -n "$BED_GW_NS" addr add "$BED_GW_CLIENT6/64" dev "$BED_GW_DEV" nodad
	ip -n "$BED_GW_NS" addr add "$BED_GW_UP4/24" dev "$BED_GW_UP_DEV"
	ip -n "$BED_GW_NS" addr add "$BED_GW_UP6/64" dev "$BED_GW_UP_DEV" nodad
	ip -n "$BED_UP_NS" addr add "$BED_UP4/24" dev "$BED_UP_DEV"
	ip -n "$BED_UP_NS" addr add "$BED_UP6/64" dev "$BED_UP_DEV" nodad

	# What rlshape sends back with XDP_TX on BED_GW_DEV is dropped by the veth unless
	# its peer runs an XDP program: a native XDP_PASS one on the client's end.
	ip -n "$BED_CLIENT_NS" link set dev "$BED_CLIENT_DEV" xdp obj "$BED_XDP_PASS_OBJ" sec xdp

	ip -n "$BED_CLIENT_NS" link set "$BED_CLIENT_DEV" up
	ip -n "$BED_GW_NS" link set "$BED_GW_DEV" up
	ip -n "$BED_GW_NS" link set "$BED_GW_UP_DEV" up
	ip -n "$BED_UP_NS" link set "$BED_UP_DEV" up

	ip -n "$BED_CLIENT_NS" route add "$BED_UP_NET4" via "$BED_GW_CLIENT4"
	ip -n "$BED_CLIENT_NS" -6 route add "$BED_UP_NET6" via "$BED_GW_CLIENT6"
	ip -n "$BED_UP_NS" route add "$BED_CLIENT_NET4" via "$BED_GW_UP4"
	ip -n "$BED_UP_NS" -6 route add "$BED_CLIENT_NET6" via "$BED_GW_UP6"
}

# --- TAP -----------------------------------------------------------------------------------

_TAP_N=0
_TAP_FAILED=0

_tap_result() { # STATUS DESC
	_TAP_N=$((_TAP_N + 1))
	if (($1 == 0)); then
		echo "ok $_TAP_N - $2"
	else
		echo "not ok $_TAP_N - $2"
		_TAP_FAILED=$((_TAP_FAILED + 1))
	fi
}

tap_diag() {
	local line
	while IFS= read -r line; do
		echo "# $line"
	done <<<"$*"
}

# tap_ok DESC CMD [ARG...]: ok if CMD succeeds (its output is shown as diagnostics).
tap_ok() {
	local desc=$1 out st=0
	shift
	out=$("$@" 2>&1) || st=$?
	_tap_result "$st" "$desc"
	if ((st != 0)); then
		tap_diag "command failed (status $st): $*"
		[[ -z $out ]] || tap_diag "$out"
	fi
	return 0
}

tap_is() {
	local got=$1 want=$2 desc=$3
	if [[ $got == "$want" ]]; then
		_tap_result 0 "$desc"
	else
		_tap_result 1 "$desc"
		tap_diag "     got: '$got'"
		tap_diag "expected: '$want'"
	fi
}

tap_like() {
	local str=$1 re=$2 desc=$3
	if [[ $str =~ $re ]]; then
		_tap_result 0 "$desc"
	else
		_tap_result 1 "$desc"
		tap_diag "'$str'"
		tap_diag "doesn't match /$re/"
	fi
}

tap_skip() {
	_TAP_N=$((_TAP_N + 1))
	echo "ok $_TAP_N - $1 # SKIP ${2:-}"
}

# Prints the plan; fails (so the script exits non-zero under set -e) if a test failed.
tap_done() {
	echo "1..$_TAP_N"
	if ((_TAP_FAILED > 0)); then
		tap_diag "$_TAP_FAILED of $_TAP_N tests failed"
		return 1
	fi
}
