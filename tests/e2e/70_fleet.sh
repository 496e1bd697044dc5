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
#   - tpm (a static share per gateway): the tokens admitted are within token_burst + the
#     refill over the run + hosts x one answer's tokens;
#   - rpd, Redis stalled (SIGSTOP): calls time out, a gateway admits its share; Redis going on:
#     the gateways rejoin and the rest of the day is leased, not more;
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

# shellcheck source=tests/lib/fleet_bed.sh
source "$BED_REPO/tests/lib/fleet_bed.sh"

HOSTS=3
fleet_bed_up
DIR=$FLEET_DIR
fleet_redis_start
tap_ok "redis-server answers on $FLEET_REDIS_ADDR:$FLEET_REDIS_PORT" bed_wait_until 20 fleet_redis_up

cat >"$DIR/tiers.json" <<EOF
{
  "listen": { "ports": [$FLEET_PORT] },
  "fleet": { "redis": "$FLEET_REDIS_ADDR:$FLEET_REDIS_PORT", "hosts": $HOSTS, "unleased": 1 },
  "tiers": {
    "minute": { "*": { "rpm": 30, "burst": 30 } },
    "day": { "*": { "rpd": 60 } },
    "fresh": { "*": { "rpd": 30 } },
    "tokens": { "*": { "tpm": 600, "token_burst": 600, "reserve_tokens": 200 } }
  },
  "accounts": {
    "acct-minute": { "tier": "minute", "keys": ["fleet-minute-key"] },
    "acct-day": { "tier": "day", "keys": ["fleet-day-key"] },
    "acct-fresh": { "tier": "fresh", "keys": ["fleet-fresh-key"] },
    "acct-after": { "tier": "fresh", "keys": ["fleet-after-key"] },
    "acct-tokens": { "tier": "tokens", "keys": ["fleet-tokens-key"] },
    "acct-reloaded": { "tier": "fresh", "keys": ["fleet-reloaded-key"] },
    "acct-stalled": { "tier": "fresh", "keys": ["fleet-stalled-key"] }
  }
}
EOF

for i in 1 2 3; do
	# Not in tap_ok's subshell: the pids and logs it records are needed here.
	rc=0
	fleet_gateway_start "$i" "$DIR/tiers.json" || rc=$?
	tap_is "$rc" 0 "gateway $i: rlshape loads the fleet table, its daemon starts"
done
for i in 1 2 3; do
	tap_ok "gateway $i: mock-upstream listens" bed_wait_file "$DIR/upstream-$i.ready" 20
	tap_ok "gateway $i: the daemon joins the fleet" \
		bed_wait_until 20 grep -q 'joined: leasing' "${FLEET_DAEMON_LOGS[i]}"
done

# ---- helpers ----------------------------------------------------------------------------------

# metric I SAMPLE: gateway I's daemon's /metrics (its default listen, in its namespace) has the
# sample line SAMPLE ("name{labels} value"), exactly.
metric() {
	local scrape
	# The whole scrape first: grep -q stopping at its match would cut curl's write short
	# (curl exits 23, and pipefail makes that the check's failure).
	scrape=$(fleet_gw "$1" curl -sS --noproxy '*' --max-time 5 http://127.0.0.1:9473/metrics) ||
		return 1
	grep -qxF "$2" <<<"$scrape"
}

# clients_everywhere KEY: a client on each gateway, in the background (pids in CLIENT_PIDS).
clients_everywhere() {
	local i
	CLIENT_PIDS=()
	for i in 1 2 3; do
		fleet_client "$i" "$1" &
		CLIENT_PIDS+=($!)
	done
}

admitted() {
	fleet_admitted "$@"
}

# minutes KEY: the distinct UTC minutes the upstreams logged KEY in.
minutes() {
	cat "${FLEET_UP_LOGS[@]}" | awk -v k=" key=Bearer $1 " 'index($0, k) { print int($1 / 60000) }' |
		sort -u | wc -l
}

admitted_at_least() { # KEY N
	(($(admitted "$1") >= $2))
}

joined_times() { # I N: gateway I's daemon has joined the fleet N times (the first, then rejoins)
	(($(grep -c 'joined: leasing' "${FLEET_DAEMON_LOGS[$1]}") >= $2))
}

away_times() { # I N: gateway I's daemon has found Redis away N times
	(($(grep -c 'is away.*each host admits its share' "${FLEET_DAEMON_LOGS[$1]}") >= $2))
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

for i in 1 2 3; do
	tap_ok "gateway $i: /metrics says the fleet is leasing" \
		metric "$i" 'rlshape_fleet_state{state="leasing"} 1'
done

# ---- rpm: clients on every gateway --------------------------------------------------------------

# The count is per minute window: start with 35 s of it left (waits on the clock, at most 35 s,
# so the wait's own limit is above that: a start at :25 to :29 once timed out at 30 s).
bed_wait_until 40 _minute_has_room 35
clients_everywhere fleet-minute-key
wait "${CLIENT_PIDS[@]}"
tap_diag "rpm: $(cat "$DIR"/client-*-fleet-minute-key.out | tr '\n' ' ')"
tap_is "$(minutes fleet-minute-key)" 1 "rpm: every admitted request fell in one minute"
in_range "$(admitted fleet-minute-key)" 30 $((30 + HOSTS)) \
	"rpm 30 on 3 gateways: the minute admitted the limit, at most hosts x unleased more"

# ---- rpd: one gateway alone gets the whole budget ------------------------------------------------

suite_one_day 120
fleet_client 1 fleet-fresh-key
in_range "$(admitted fleet-fresh-key)" 30 $((30 + 1)) \
	"rpd 30, all on gateway 1: it is leased the whole day's limit, not its share of 10"

# ---- tpm: clients on every gateway ---------------------------------------------------------------

# Each host holds a share of the budget, token_burst / 3, refilled at tpm / 3 a minute, and
# admits while its share is above zero: the fleet's tokens over a run of T seconds are at most
# token_burst + tpm x T / 60 + hosts x one answer's tokens (100 each, fleet_client.py), against
# hosts x token_burst and more if each counted alone.
t0=$EPOCHREALTIME
clients_everywhere fleet-tokens-key
wait "${CLIENT_PIDS[@]}"
elapsed_ms=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { print int((b - a) * 1000) + 1 }')
tap_diag "tpm: $(cat "$DIR"/client-*-fleet-tokens-key.out | tr '\n' ' ')"
in_range "$(($(admitted fleet-tokens-key) * 100))" 300 $((600 + 600 * elapsed_ms / 60000 + 1 + HOSTS * 100)) \
	"tpm 600 on 3 gateways: tokens admitted in ${elapsed_ms} ms within token_burst + refill + hosts x one answer"

# ---- rpd: Redis stalled (SIGSTOP), then going on -------------------------------------------------

# Slow, not gone: calls time out. Each gateway falls back to its share; when Redis goes on, with
# its state, the gateways rejoin and the rest of the day is leased, the limit never passed.
kill -STOP "$FLEET_REDIS_PID"
for i in 1 2 3; do
	tap_ok "gateway $i: a stalled Redis is found away (its calls time out)" \
		bed_wait_until 20 away_times "$i" 1
done
tap_ok "gateway 1: /metrics counts the fallback" metric 1 'rlshape_fleet_fallbacks_total 1'
fleet_client 1 fleet-stalled-key
tap_is "$(admitted fleet-stalled-key)" 10 "rpd 30, Redis stalled: gateway 1 admits its share, 10"
kill -CONT "$FLEET_REDIS_PID"
for i in 1 2 3; do
	tap_ok "gateway $i: the daemon rejoins when Redis goes on" bed_wait_until 20 joined_times "$i" 2
done
fleet_client 1 fleet-stalled-key
in_range "$(admitted fleet-stalled-key)" 30 $((30 + 1)) \
	"rpd 30: after Redis went on, gateway 1 is leased the rest of the day, not more"
tap_is "$(client_errors)" 0 "every request got an HTTP answer while Redis was stalled"

# ---- rpd: Redis killed mid-traffic, restarted empty --------------------------------------------

clients_everywhere fleet-day-key
bed_wait_until 30 admitted_at_least fleet-day-key 10
fleet_redis_kill
tap_diag "Redis killed after $(admitted fleet-day-key) admitted requests of rpd 60"
wait "${CLIENT_PIDS[@]}"
tap_diag "rpd: $(cat "$DIR"/client-*-fleet-day-key.out | tr '\n' ' ')"
for i in 1 2 3; do
	tap_ok "gateway $i: the daemon logged its fallback to a share" away_times "$i" 2
	in_range "$(admitted fleet-day-key "$i")" 20 60 \
		"gateway $i admitted at least its share of rpd 60 (20) while Redis was away"
done
DAY_BOUND=$((60 + HOSTS * 1 + (HOSTS - 1) * 20))
in_range "$(admitted fleet-day-key)" 60 "$DAY_BOUND" \
	"rpd 60 with Redis killed mid-traffic: limit + hosts x unleased + (hosts - 1) x share at most"
tap_is "$(client_errors)" 0 "every request got an HTTP answer, Redis away or not"

day_before=$(admitted fleet-day-key)
fleet_redis_start
tap_ok "redis-server restarted, empty" bed_wait_until 20 fleet_redis_up
for i in 1 2 3; do
	tap_ok "gateway $i: the daemon rejoins" \
		bed_wait_until 20 joined_times "$i" 3
done
fleet_client 1 fleet-day-key
tap_is "$(admitted fleet-day-key)" "$day_before" \
	"after Redis restarted empty, the spent day admits nothing more (no second full window)"
tap_ok "... and the gateway's 429 said the day is spent" \
	grep -Eq 'admitted=0 refused=[0-9]+ errors=0' "$DIR/client-1-fleet-day-key.out"
fleet_client 2 fleet-after-key
in_range "$(admitted fleet-after-key)" 30 $((30 + 1)) \
	"rejoined: rpd 30, all on gateway 2, is leased from Redis again past its share of 10"

# An unload and a load under the running daemon make new maps: its fleet thread follows them.
tap_ok "gateway 3: rlshape unloads and loads again under its daemon" \
	fleet_gw 3 sh -c '"$1" unload --dev "$2" && "$1" load "$3" --dev "$2"' _ "$RLS" "${FLEET_DEV[3]}" \
	"$DIR/tiers.json"
tap_ok "gateway 3: the daemon's fleet follows the new maps" \
	bed_wait_until 20 grep -q 'leasing for the maps pinned now' "${FLEET_DAEMON_LOGS[3]}"
fleet_client 3 fleet-reloaded-key
in_range "$(admitted fleet-reloaded-key)" 30 $((30 + 1)) \
	"after the new load, rpd 30 on gateway 3 alone is leased from Redis past its share of 10"

for i in 1 2 3; do
	rc=0
	fleet_gateway_stop "$i" || rc=$?
	tap_is "$rc" 0 "gateway $i: the daemon stops, rlshape unloads"
	tap_ok "gateway $i: the daemon's totals name the fleet" \
		grep -q 'fleet: leasing; [0-9]* Redis calls' "${FLEET_DAEMON_LOGS[i]}"
done
tap_done
