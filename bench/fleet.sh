#!/usr/bin/env bash
# bench/fleet.sh [--quick | --smoke] [--summary FILE]
#
# A fleet's accuracy and what it costs in Redis (README, "A fleet of gateways"), measured on the
# bed of tests/lib/fleet_bed.sh: the same paced load (RATE requests a second for SECONDS, in one
# minute window, twice an rpm limit's worth) first through one gateway with the table alone,
# then spread over three gateways sharing the limit through Redis. Reports, for each, what the
# minute admitted against the limit, and for the fleet the Redis calls each daemon made during
# the load, per second (SIGUSR1's totals before and after it; idle pings included). Then the
# packet path's indifference to Redis: the same paced load through one gateway of the fleet,
# with a limit it never reaches, first with Redis answering, then with Redis stalled (SIGSTOP:
# every daemon call waits out its timeout), each request's time from connecting to its whole
# answer, the median and 99th percentile compared.
#
# Measured, never pass/fail. Markdown on stdout; --summary appends "fleet.KEY<TAB>VALUE" lines.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
seconds=20
rate=30
summary=""
while (($#)); do
	case $1 in
	--quick) seconds=8 ;;
	--smoke) seconds=2 rate=10 ;;
	--summary)
		summary=${2:?--summary needs a file}
		shift
		;;
	*)
		echo "fleet.sh: unknown argument '$1'" >&2
		exit 2
		;;
	esac
	shift
done

# shellcheck source=tests/lib/suite.sh
source "$REPO/tests/lib/suite.sh"
suite_programs fleet.sh
if ! command -v redis-server >/dev/null; then
	echo "redis-server is missing (tools/install-deps.sh installs it): not run."
	exit 0
fi
# shellcheck source=tests/lib/fleet_bed.sh
source "$REPO/tests/lib/fleet_bed.sh"

# Twice the limit is asked for in the run: the limit binds, and the error says by how much.
limit=$((rate * seconds / 2))
((limit > 0)) || limit=1

table() { # FILE WITH_FLEET
	local fleet=""
	(($2)) && fleet="\"fleet\": { \"redis\": \"$FLEET_REDIS_ADDR:$FLEET_REDIS_PORT\", \"hosts\": 3 },"
	cat >"$1" <<EOF
{
  "listen": { "ports": [$FLEET_PORT] }, $fleet
  "tiers": { "bench": { "*": { "rpm": $limit, "burst": $limit } } },
  "accounts": { "bench": { "tier": "bench", "keys": ["bench-one-key", "bench-fleet-key", "bench-roomy-up", "bench-roomy-away"] } }
}
EOF
}

_minute_has_room() {
	(($(date -u +%s) % 60 < 60 - $1))
}

# one_minute KEY: how many minutes the upstreams logged KEY in (1: the run fit in one window).
one_minute() {
	cat "${FLEET_UP_LOGS[@]}" 2>/dev/null |
		awk -v k=" key=Bearer $1 " 'index($0, k) { print int($1 / 60000) }' | sort -u | wc -l
}

# redis_calls I: the Redis calls in gateway I's daemon's last totals line.
redis_calls() {
	sed -n 's/.*fleet: [a-z]*; \([0-9]*\) Redis calls.*/\1/p' "${FLEET_DAEMON_LOGS[$1]}" | tail -1
}

# totals I: SIGUSR1, then wait until the daemon has logged one more totals line.
totals() {
	local n
	n=$(grep -c 'Redis calls' "${FLEET_DAEMON_LOGS[$1]}" || true)
	kill -USR1 "${FLEET_DAEMON_PIDS[$1]}"
	bed_wait_until 10 _more_totals "$1" "$n"
}
_more_totals() {
	(($(grep -c 'Redis calls' "${FLEET_DAEMON_LOGS[$1]}" || true) > $2))
}

fleet_bed_up
fleet_redis_start
bed_wait_until 20 fleet_redis_up

# ---- one gateway, the table alone ----
table "$FLEET_DIR/one.json" 0
fleet_gateway_start 1 "$FLEET_DIR/one.json"
bed_wait_file "$FLEET_DIR/upstream-1.ready" 20
bed_wait_until $((70 - seconds)) _minute_has_room $((seconds + 5))
fleet_client 1 bench-one-key "$rate" "$seconds"
one=$(fleet_admitted bench-one-key)
one_windows=$(one_minute bench-one-key)
fleet_gateway_stop 1

# ---- three gateways through Redis, a third of the load each ----
table "$FLEET_DIR/fleet.json" 1
for i in 1 2 3; do
	fleet_gateway_start "$i" "$FLEET_DIR/fleet.json"
done
for i in 1 2 3; do
	bed_wait_file "$FLEET_DIR/upstream-$i.ready" 20
	bed_wait_until 20 grep -q 'joined: leasing' "${FLEET_DAEMON_LOGS[i]}"
done
bed_wait_until $((70 - seconds)) _minute_has_room $((seconds + 5))
declare -A before
for i in 1 2 3; do
	totals "$i"
	before[$i]=$(redis_calls "$i")
done
t0=$EPOCHREALTIME
pids=()
for i in 1 2 3; do
	fleet_client "$i" bench-fleet-key "$(awk -v r="$rate" 'BEGIN { print r / 3 }')" "$seconds" &
	pids+=($!)
done
wait "${pids[@]}"
elapsed=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { print b - a }')
calls=()
for i in 1 2 3; do
	totals "$i"
	calls[i]=$(awk -v a="${before[$i]}" -v b="$(redis_calls "$i")" -v t="$elapsed" \
		'BEGIN { printf "%.1f", (b - a) / t }')
done
fleet=$(fleet_admitted bench-fleet-key)
fleet_windows=$(one_minute bench-fleet-key)
for i in 1 2 3; do
	fleet_gateway_stop "$i"
done

# ---- one gateway of the fleet, a limit never reached: Redis answering, then stalled ----
roomy=$((rate * seconds * 100))
sed -e "s/\"rpm\": $limit, \"burst\": $limit/\"rpm\": $roomy, \"burst\": $roomy/" \
	"$FLEET_DIR/fleet.json" >"$FLEET_DIR/roomy.json"
fleet_gateway_start 1 "$FLEET_DIR/roomy.json"
bed_wait_until 20 grep -q 'joined: leasing' "${FLEET_DAEMON_LOGS[1]}"
fleet_client 1 bench-roomy-up "$rate" "$seconds"
up_line=$(cat "$FLEET_DIR/client-1-bench-roomy-up.out")
t0=$EPOCHREALTIME
kill -STOP "$FLEET_REDIS_PID"
bed_wait_until 20 grep -q 'is away' "${FLEET_DAEMON_LOGS[1]}"
# From the stop to the daemon's log of its fallback, to within the 50 ms the wait polls at.
away_after=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f", b - a }')
fleet_client 1 bench-roomy-away "$rate" "$seconds"
away_line=$(cat "$FLEET_DIR/client-1-bench-roomy-away.out")
kill -CONT "$FLEET_REDIS_PID"
fleet_gateway_stop 1
field() { # LINE NAME: NAME=VALUE's value
	sed -n "s/.* $2=\([^ ]*\).*/\1/p" <<<"$1"
}

err() { # ADMITTED: (admitted - limit) / limit, in percent
	awk -v a="$1" -v l="$limit" 'BEGIN { printf "%+.1f%%", (a - l) * 100 / l }'
}

echo "$rate requests a second for $seconds s (twice an rpm limit of $limit in one minute window)."
echo "Admitted: what the upstreams logged. Redis calls: lease scripts and pings during the load, per"
echo "second, each gateway's daemon (SIGUSR1 totals before and after it)."
echo
echo "| setup | admitted | limit | error | minute windows | Redis calls/s per gateway |"
echo "| --- | ---: | ---: | ---: | ---: | --- |"
echo "| one gateway, no fleet | $one | $limit | $(err "$one") | $one_windows | 0 |"
echo "| three gateways, one Redis, a third of the load each | $fleet | $limit | $(err "$fleet") | $fleet_windows | ${calls[1]} / ${calls[2]} / ${calls[3]} |"
echo
echo "One gateway of the fleet, rpm $roomy (never reached), $rate requests a second for $seconds s, a"
echo "new connection each; the time from connecting to the whole answer, ms:"
echo
echo "| Redis | admitted | errors | p50 ms | p99 ms |"
echo "| --- | ---: | ---: | ---: | ---: |"
echo "| answering | $(field " $up_line" admitted) | $(field " $up_line" errors) | $(field "$up_line" p50_ms) | $(field "$up_line" p99_ms) |"
echo "| stalled (SIGSTOP) | $(field " $away_line" admitted) | $(field " $away_line" errors) | $(field "$away_line" p50_ms) | $(field "$away_line" p99_ms) |"
ratio=$(awk -v a="$(field "$up_line" p50_ms)" -v b="$(field "$away_line" p50_ms)" \
	'BEGIN { if (a > 0) printf "%.2f", b / a; else print "-" }')
echo
echo "Median, stalled over answering: ${ratio}x. The gateway's daemon logged its fallback to its"
echo "share ${away_after} s after Redis was stopped."
if [[ -n $summary ]]; then
	{
		printf 'fleet.limit\t%s\n' "$limit"
		printf 'fleet.one_host.admitted\t%s\n' "$one"
		printf 'fleet.fleet.admitted\t%s\n' "$fleet"
		printf 'fleet.fleet.redis_calls_per_s\t%s / %s / %s\n' "${calls[1]}" "${calls[2]}" "${calls[3]}"
		printf 'fleet.latency.redis_up.p50_ms\t%s\n' "$(field "$up_line" p50_ms)"
		printf 'fleet.latency.redis_stalled.p50_ms\t%s\n' "$(field "$away_line" p50_ms)"
		printf 'fleet.latency.stalled_over_up\t%s\n' "$ratio"
		printf 'fleet.fallback_after_s\t%s\n' "$away_after"
	} >>"$summary"
fi
