#!/usr/bin/env bash
# A fleet of three gateways sharing limits through one Redis (README, "A fleet of gateways").
#
#   client ns: clients, and redis-server on 198.18.99.1 (its loopback), its own port and dir
#   gateway i (i = 1..3): its own namespace, veth, rlshape (pins under its own device's dir),
#   daemon (--fleet-host gw-i) and mock-upstream on 198.18.1i.1:8000 behind it
#
# Every client asks again after a short 429 (a lease being topped up, the smoothing) and stops
# at a long one (the window's fleet budget is spent), or after three short ones in a row (a host
# on its fallback share). What is asserted, from the upstreams' logs:
#   - rpm, clients on all three gateways: the minute's admitted total is in
#     [limit, limit + hosts * unleased], not hosts * limit;
#   - rpd, one gateway alone: it gets the whole day's limit, not a third of it;
#   - rpd, Redis killed mid-traffic: every request is answered; every gateway falls back to its
#     share; the day's total stays within limit + hosts * unleased + (hosts - 1) * share;
#   - Redis restarted empty: the gateways rejoin, and the spent day admits nothing more (no
#     second full window); a fresh account is leased from Redis again, past one host's share.
set -euo pipefail

# shellcheck source=tests/lib/suite.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/suite.sh"
suite_programs 70_fleet

if ! command -v redis-server >/dev/null; then
	echo "1..0 # SKIP redis-server is missing (tools/install-deps.sh installs it)"
	exit 0
fi

HOSTS=3
PORT=8000
REDIS_ADDR=198.18.99.1
REDIS_PORT=$((20000 + $$ % 10000))
CLIENT=$BED_REPO/tests/lib/fleet_client.py

ID=$$
CNS="rls-fc-$ID"
GNS=() DEV=() PEER=() GW4=() CL4=() PINS=() DAEMON_PIDS=() DAEMON_LOGS=() UP_LOGS=()
for i in 1 2 3; do
	GNS[i]="rls-fg$i-$ID"
	DEV[i]="rlsf$i$ID" DEV[i]=${DEV[i]:0:15}
	PEER[i]="rlsp$i$ID" PEER[i]=${PEER[i]:0:15}
	GW4[i]="198.18.1$i.1" CL4[i]="198.18.1$i.2"
	PINS[i]="$BED_PIN_ROOT/${DEV[i]}"
done
DIR=$(mktemp -d "${TMPDIR:-/tmp}/rls-fleet-$ID.XXXXXX")
PIDS=()
REDIS_PID=""

cleanup() {
	local - pid ns i
	set +e
	for pid in "${PIDS[@]}" $REDIS_PID; do
		kill -TERM "$pid" 2>/dev/null
	done
	for pid in "${PIDS[@]}" $REDIS_PID; do
		wait "$pid" 2>/dev/null
	done
	for i in 1 2 3; do
		ip netns pids "${GNS[i]}" 2>/dev/null | xargs -r kill -KILL 2>/dev/null
		ip netns del "${GNS[i]}" 2>/dev/null
		rm -rf "${PINS[i]}"
	done
	ip netns pids "$CNS" 2>/dev/null | xargs -r kill -KILL 2>/dev/null
	ip netns del "$CNS" 2>/dev/null
	rmdir "$BED_PIN_ROOT" 2>/dev/null
	rm -rf "$DIR"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

gw() { # I CMD...: in gateway I's namespace, with the host's /sys/fs/bpf
	local i=$1
	shift
	nsenter --net="/var/run/netns/${GNS[i]}" -- "$@"
}

# ---- the bed ----------------------------------------------------------------------------------

ip netns add "$CNS"
ip -n "$CNS" link set lo up
ip -n "$CNS" addr add "$REDIS_ADDR/32" dev lo
for i in 1 2 3; do
	ip netns add "${GNS[i]}"
	ip -n "${GNS[i]}" link set lo up
	ip link add "${PEER[i]}" netns "$CNS" type veth peer name "${DEV[i]}" netns "${GNS[i]}"
	ip netns exec "$CNS" ethtool -K "${PEER[i]}" tx off >/dev/null
	ip netns exec "${GNS[i]}" ethtool -K "${DEV[i]}" tx off >/dev/null
	ip -n "$CNS" addr add "${CL4[i]}/24" dev "${PEER[i]}"
	ip -n "${GNS[i]}" addr add "${GW4[i]}/24" dev "${DEV[i]}"
	ip -n "$CNS" link set dev "${PEER[i]}" xdp obj "$BED_XDP_PASS_OBJ" sec xdp
	ip -n "$CNS" link set "${PEER[i]}" up
	ip -n "${GNS[i]}" link set "${DEV[i]}" up
	ip -n "${GNS[i]}" route add "$REDIS_ADDR/32" via "${CL4[i]}"
done

start_redis() {
	ip netns exec "$CNS" redis-server --bind "$REDIS_ADDR" --port "$REDIS_PORT" \
		--dir "$DIR" --save '' --appendonly no --protected-mode no --daemonize no \
		--logfile "$DIR/redis.log" </dev/null >/dev/null 2>&1 &
	REDIS_PID=$!
}
redis_up() {
	ip netns exec "$CNS" redis-cli -h "$REDIS_ADDR" -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG
}
start_redis
tap_ok "redis-server answers on $REDIS_ADDR:$REDIS_PORT" bed_wait_until 20 redis_up

cat >"$DIR/tiers.json" <<EOF
{
  "listen": { "ports": [$PORT] },
  "fleet": { "redis": "$REDIS_ADDR:$REDIS_PORT", "hosts": $HOSTS, "unleased": 1 },
  "tiers": {
    "minute": { "*": { "rpm": 30, "burst": 30 } },
    "day": { "*": { "rpd": 60 } },
    "fresh": { "*": { "rpd": 30 } }
  },
  "accounts": {
    "acct-minute": { "tier": "minute", "keys": ["fleet-minute-key"] },
    "acct-day": { "tier": "day", "keys": ["fleet-day-key"] },
    "acct-fresh": { "tier": "fresh", "keys": ["fleet-fresh-key"] },
    "acct-after": { "tier": "fresh", "keys": ["fleet-after-key"] }
  }
}
EOF

for i in 1 2 3; do
	UP_LOGS[i]=$DIR/upstream-$i.log
	# nsenter directly, not through gw(): $! must be the program's own pid.
	nsenter --net="/var/run/netns/${GNS[i]}" -- "$MOCK" --listen "${GW4[i]}:$PORT" --log "${UP_LOGS[i]}" \
		--ready-file "$DIR/upstream-$i.ready" </dev/null >"$DIR/mock-$i.out" 2>&1 &
	PIDS+=($!)
	tap_ok "gateway $i: rlshape loads the fleet table" \
		gw "$i" "$RLS" load "$DIR/tiers.json" --dev "${DEV[i]}"
	DAEMON_LOGS[i]=$DIR/daemon-$i.log
	nsenter --net="/var/run/netns/${GNS[i]}" -- "$RLS" daemon --dev "${DEV[i]}" --fleet-host "gw-$i" </dev/null \
		>"${DAEMON_LOGS[i]}" 2>&1 &
	DAEMON_PIDS[i]=$!
	PIDS+=($!)
done
for i in 1 2 3; do
	tap_ok "gateway $i: mock-upstream listens" bed_wait_file "$DIR/upstream-$i.ready" 20
	tap_ok "gateway $i: the daemon joins the fleet" \
		bed_wait_until 20 grep -q 'joined: leasing' "${DAEMON_LOGS[i]}"
done

# ---- helpers ----------------------------------------------------------------------------------

# client I KEY: runs fleet_client.py against gateway I; its summary in $DIR/client-I-KEY.out.
client() {
	ip netns exec "$CNS" python3 "$CLIENT" "${GW4[$1]}" "$PORT" "$2" gpt \
		>"$DIR/client-$1-$2.out" 2>&1
}

# clients_everywhere KEY: a client on each gateway, in the background (pids in CLIENT_PIDS).
clients_everywhere() {
	local i
	CLIENT_PIDS=()
	for i in 1 2 3; do
		client "$i" "$1" &
		CLIENT_PIDS+=($!)
	done
}

# admitted KEY [I...]: the upstream log lines of KEY (on gateways I..., default all).
admitted() {
	local key=$1 i n=0
	shift
	(($#)) || set -- 1 2 3
	for i in "$@"; do
		n=$((n + $(grep -c " key=Bearer $key " "${UP_LOGS[i]}" || true)))
	done
	echo "$n"
}

# minutes KEY: the distinct UTC minutes the upstreams logged KEY in.
minutes() {
	cat "${UP_LOGS[@]}" | awk -v k=" key=Bearer $1 " 'index($0, k) { print int($1 / 60000) }' | sort -u |
		wc -l
}

admitted_at_least() { # KEY N
	(($(admitted "$1") >= $2))
}

joined_twice() { # I: joined, then rejoined after Redis came back
	(($(grep -c 'joined: leasing' "${DAEMON_LOGS[$1]}") >= 2))
}

client_errors() { # the clients' requests that got no HTTP answer
	cat "$DIR"/client-*.out | sed -n 's/.*errors=\([0-9]*\).*/\1/p' | awk '{ s += $1 } END { print s + 0 }'
}

in_range() { # GOT LOW HIGH DESC
	if (($1 >= $2 && $1 <= $3)); then
		tap_ok "$4: $1 in [$2, $3]" true
	else
		tap_ok "$4: $1 not in [$2, $3]" false
	fi
}

_minute_has_room() {
	(($(date -u +%s) % 60 < 60 - $1))
}

# ---- rpm: clients on every gateway --------------------------------------------------------------

# The count is per minute window: start with room for the run (waits on the clock, at most 25 s).
bed_wait_until 30 _minute_has_room 35
clients_everywhere fleet-minute-key
wait "${CLIENT_PIDS[@]}"
tap_diag "rpm: $(cat "$DIR"/client-*-fleet-minute-key.out | tr '\n' ' ')"
tap_is "$(minutes fleet-minute-key)" 1 "rpm: every admitted request fell in one minute"
in_range "$(admitted fleet-minute-key)" 30 $((30 + HOSTS)) \
	"rpm 30 on 3 gateways: the minute admitted the limit, at most hosts x unleased more"

# ---- rpd: one gateway alone gets the whole budget ------------------------------------------------

suite_one_day 120
client 1 fleet-fresh-key
in_range "$(admitted fleet-fresh-key)" 30 $((30 + 1)) \
	"rpd 30, all on gateway 1: it is leased the whole day's limit, not its share of 10"

# ---- rpd: Redis killed mid-traffic, restarted empty --------------------------------------------

clients_everywhere fleet-day-key
bed_wait_until 30 admitted_at_least fleet-day-key 10
kill -KILL "$REDIS_PID"
wait "$REDIS_PID" 2>/dev/null || true
REDIS_PID=""
tap_diag "Redis killed after $(admitted fleet-day-key) admitted requests of rpd 60"
wait "${CLIENT_PIDS[@]}"
tap_diag "rpd: $(cat "$DIR"/client-*-fleet-day-key.out | tr '\n' ' ')"
for i in 1 2 3; do
	tap_ok "gateway $i: the daemon logged its fallback to a share" \
		grep -q 'is away.*each host admits its share' "${DAEMON_LOGS[i]}"
	in_range "$(admitted fleet-day-key "$i")" 20 60 \
		"gateway $i admitted at least its share of rpd 60 (20) while Redis was away"
done
DAY_BOUND=$((60 + HOSTS * 1 + (HOSTS - 1) * 20))
in_range "$(admitted fleet-day-key)" 60 "$DAY_BOUND" \
	"rpd 60 with Redis killed mid-traffic: limit + hosts x unleased + (hosts - 1) x share at most"
tap_is "$(client_errors)" 0 "every request got an HTTP answer, Redis away or not"

day_before=$(admitted fleet-day-key)
start_redis
tap_ok "redis-server restarted, empty" bed_wait_until 20 redis_up
for i in 1 2 3; do
	tap_ok "gateway $i: the daemon rejoins" \
		bed_wait_until 20 joined_twice "$i"
done
client 1 fleet-day-key
tap_is "$(admitted fleet-day-key)" "$day_before" \
	"after Redis restarted empty, the spent day admits nothing more (no second full window)"
tap_ok "... and the gateway's 429 said the day is spent" \
	grep -Eq 'admitted=0 refused=[0-9]+ errors=0' "$DIR/client-1-fleet-day-key.out"
client 2 fleet-after-key
in_range "$(admitted fleet-after-key)" 30 $((30 + 1)) \
	"rejoined: rpd 30, all on gateway 2, is leased from Redis again past its share of 10"

for i in 1 2 3; do
	kill -TERM "${DAEMON_PIDS[i]}"
	wait "${DAEMON_PIDS[i]}" || true
	tap_ok "gateway $i: the daemon's totals name the fleet" \
		grep -q 'fleet: leasing; [0-9]* Redis calls' "${DAEMON_LOGS[i]}"
	tap_ok "gateway $i: rlshape unloads" gw "$i" "$RLS" unload --dev "${DEV[i]}"
done
tap_done
