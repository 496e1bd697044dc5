# shellcheck shell=bash
# A bed for a fleet of three gateways sharing one Redis (tests/e2e/70_fleet.sh, bench/fleet.sh):
#
#   client ns: the clients, and redis-server on FLEET_REDIS_ADDR (its loopback), its own port
#              and dir, killed by its pid
#   gateway i (1..3): its own namespace and veth (198.18.1i.1, the client's end 198.18.1i.2),
#              rlshape on that veth (pins under its own device's directory), its daemon
#              (--fleet-host gw-i) and mock-upstream on 198.18.1i.1:FLEET_PORT behind it
#
# Source after tests/lib/suite.sh (RLS, MOCK; bed.sh's waits). fleet_bed_up makes it all but
# the gateways' programs and sets an EXIT trap that removes everything (fleet_bed_down).
#
#   fleet_redis_start, fleet_redis_up, fleet_redis_kill
#   fleet_gateway_start I TABLE  mock-upstream, `rlshape load TABLE`, and the daemon on gateway I
#   fleet_gateway_stop I         the daemon (TERM, by its pid), then `rlshape unload`
#   fleet_client I KEY [RATE SECONDS]   tests/lib/fleet_client.py against gateway I
#   fleet_admitted KEY [I...]    requests of KEY the upstreams logged (all gateways by default)

FLEET_PORT=8000
FLEET_REDIS_ADDR=198.18.99.1
FLEET_REDIS_PORT=$((20000 + $$ % 10000))
FLEET_REDIS_PID=""
FLEET_CLIENT=$BED_REPO/tests/lib/fleet_client.py
_FLEET_PIDS=()

fleet_bed_up() {
	local i id=$$
	FLEET_CNS="rls-fc-$id"
	FLEET_GNS=() FLEET_DEV=() FLEET_PEER=() FLEET_GW4=() FLEET_CL4=()
	FLEET_DAEMON_PIDS=() FLEET_DAEMON_LOGS=() FLEET_UP_LOGS=()
	for i in 1 2 3; do
		FLEET_GNS[i]="rls-fg$i-$id"
		FLEET_DEV[i]="rlsf$i$id" FLEET_DEV[i]=${FLEET_DEV[i]:0:15}
		FLEET_PEER[i]="rlsp$i$id" FLEET_PEER[i]=${FLEET_PEER[i]:0:15}
		FLEET_GW4[i]="198.18.1$i.1" FLEET_CL4[i]="198.18.1$i.2"
	done
	FLEET_DIR=$(mktemp -d "${TMPDIR:-/tmp}/rls-fleet-$id.XXXXXX")
	trap fleet_bed_down EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM

	ip netns add "$FLEET_CNS"
	ip -n "$FLEET_CNS" link set lo up
	ip -n "$FLEET_CNS" addr add "$FLEET_REDIS_ADDR/32" dev lo
	for i in 1 2 3; do
		ip netns add "${FLEET_GNS[i]}"
		ip -n "${FLEET_GNS[i]}" link set lo up
		ip link add "${FLEET_PEER[i]}" netns "$FLEET_CNS" type veth \
			peer name "${FLEET_DEV[i]}" netns "${FLEET_GNS[i]}"
		# XDP must see complete checksums; what it sends back needs an XDP program on the peer.
		ip netns exec "$FLEET_CNS" ethtool -K "${FLEET_PEER[i]}" tx off >/dev/null
		ip netns exec "${FLEET_GNS[i]}" ethtool -K "${FLEET_DEV[i]}" tx off >/dev/null
		ip -n "$FLEET_CNS" addr add "${FLEET_CL4[i]}/24" dev "${FLEET_PEER[i]}"
		ip -n "${FLEET_GNS[i]}" addr add "${FLEET_GW4[i]}/24" dev "${FLEET_DEV[i]}"
		ip -n "$FLEET_CNS" link set dev "${FLEET_PEER[i]}" xdp obj "$BED_XDP_PASS_OBJ" sec xdp
		ip -n "$FLEET_CNS" link set "${FLEET_PEER[i]}" up
		ip -n "${FLEET_GNS[i]}" link set "${FLEET_DEV[i]}" up
		ip -n "${FLEET_GNS[i]}" route add "$FLEET_REDIS_ADDR/32" via "${FLEET_CL4[i]}"
	done
}

fleet_bed_down() {
	local - pid i
	set +e
	# A Redis a test stopped (SIGSTOP) would hold SIGTERM until it goes on.
	[[ -z $FLEET_REDIS_PID ]] || kill -CONT "$FLEET_REDIS_PID" 2>/dev/null
	for pid in "${_FLEET_PIDS[@]}" $FLEET_REDIS_PID; do
		kill -TERM "$pid" 2>/dev/null
	done
	for pid in "${_FLEET_PIDS[@]}" $FLEET_REDIS_PID; do
		wait "$pid" 2>/dev/null
	done
	for i in 1 2 3; do
		ip netns pids "${FLEET_GNS[i]}" 2>/dev/null | xargs -r kill -KILL 2>/dev/null
		ip netns del "${FLEET_GNS[i]}" 2>/dev/null
		rm -rf "${BED_PIN_ROOT:?}/${FLEET_DEV[i]}"
	done
	ip netns pids "$FLEET_CNS" 2>/dev/null | xargs -r kill -KILL 2>/dev/null
	ip netns del "$FLEET_CNS" 2>/dev/null
	rmdir "$BED_PIN_ROOT" 2>/dev/null
	rm -rf "$FLEET_DIR"
}

fleet_gw() { # I CMD...: in gateway I's namespace, with the host's /sys/fs/bpf
	local i=$1
	shift
	nsenter --net="/var/run/netns/${FLEET_GNS[i]}" -- "$@"
}

fleet_redis_start() {
	ip netns exec "$FLEET_CNS" redis-server --bind "$FLEET_REDIS_ADDR" --port "$FLEET_REDIS_PORT" \
		--dir "$FLEET_DIR" --save '' --appendonly no --protected-mode no --daemonize no \
		--logfile "$FLEET_DIR/redis.log" </dev/null >/dev/null 2>&1 &
	FLEET_REDIS_PID=$!
}

fleet_redis_up() {
	ip netns exec "$FLEET_CNS" redis-cli -h "$FLEET_REDIS_ADDR" -p "$FLEET_REDIS_PORT" ping \
		2>/dev/null | grep -q PONG
}

fleet_redis_kill() {
	kill -KILL "$FLEET_REDIS_PID"
	wait "$FLEET_REDIS_PID" 2>/dev/null || true
	FLEET_REDIS_PID=""
}

fleet_gateway_start() { # I TABLE
	local i=$1
	FLEET_UP_LOGS[i]=$FLEET_DIR/upstream-$i.log
	FLEET_DAEMON_LOGS[i]=$FLEET_DIR/daemon-$i.log
	if [[ ! -e $FLEET_DIR/upstream-$i.ready ]]; then
		# nsenter itself, not through fleet_gw(): $! must be the program's own pid.
		nsenter --net="/var/run/netns/${FLEET_GNS[i]}" -- "$MOCK" \
			--listen "${FLEET_GW4[i]}:$FLEET_PORT" --log "${FLEET_UP_LOGS[i]}" \
			--ready-file "$FLEET_DIR/upstream-$i.ready" </dev/null >"$FLEET_DIR/mock-$i.out" 2>&1 &
		_FLEET_PIDS+=($!)
	fi
	fleet_gw "$i" "$RLS" load "$2" --dev "${FLEET_DEV[i]}" >"$FLEET_DIR/load-$i.out" 2>&1 ||
		return 1
	nsenter --net="/var/run/netns/${FLEET_GNS[i]}" -- "$RLS" daemon --dev "${FLEET_DEV[i]}" \
		--fleet-host "gw-$i" </dev/null >>"${FLEET_DAEMON_LOGS[i]}" 2>&1 &
	FLEET_DAEMON_PIDS[i]=$!
	_FLEET_PIDS+=($!)
}

fleet_gateway_stop() { # I
	local i=$1
	kill -TERM "${FLEET_DAEMON_PIDS[i]}"
	wait "${FLEET_DAEMON_PIDS[i]}" || true
	fleet_gw "$i" "$RLS" unload --dev "${FLEET_DEV[i]}" >/dev/null
}

fleet_client() { # I KEY [RATE SECONDS]: its summary in $FLEET_DIR/client-I-KEY.out
	ip netns exec "$FLEET_CNS" python3 "$FLEET_CLIENT" "${FLEET_GW4[$1]}" "$FLEET_PORT" "$2" gpt \
		"${@:3}" >"$FLEET_DIR/client-$1-$2.out" 2>&1
}

fleet_admitted() { # KEY [I...]
	local key=$1 i n=0
	shift
	(($#)) || set -- 1 2 3
	for i in "$@"; do
		[[ -e ${FLEET_UP_LOGS[i]:-} ]] || continue
		n=$((n + $(grep -c " key=Bearer $key " "${FLEET_UP_LOGS[i]}" || true)))
	done
	echo "$n"
}
