#!/usr/bin/env bash
# bench/metrics_scrape.sh [--quick|--smoke]
#
# What a Prometheus scrape of `rlshape daemon` costs with large tables: N accounts with one key
# each are loaded, the daemon started, and GET /metrics timed (curl's total time): the first
# scrape after the load, which counts the table's maps, and the median of the next five, which
# use that count (user/metrics.c). The baseline, measured in the same run on the same maps, is
# `rlshape status`, which counts the accounts and models one key at a time. Cases: 100k and 1M
# accounts (--quick: 100k; --smoke: 1k). Prints a Markdown section on stdout.
# Measured, never pass/fail. Everything it makes is removed on exit, also on failure.
set -euo pipefail

REPO=$(realpath "$(dirname "${BASH_SOURCE[0]}")/..")
cd "$REPO"
case ${1:-} in
"") CASES=(100000 1000000) ;;
--quick) CASES=(100000) ;;
--smoke) CASES=(1000) ;;
*)
	sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'
	[[ $1 == -h || $1 == --help ]]
	exit
	;;
esac
LATER=5

# shellcheck source=tests/lib/suite.sh
source "$REPO/tests/lib/suite.sh"
suite_programs metrics_scrape >&2
bed_up >&2 # traps EXIT, INT, TERM: bed_down removes namespaces, pins, the daemon and $BED_DIR

wall() { # CMD...: its wall seconds in the gateway's namespace (output discarded)
	local t0=$EPOCHREALTIME
	bed_gw "$@" >/dev/null
	awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { print b - a }'
}
scrape_seconds() {
	bed_gw curl -sS --noproxy '*' -o /dev/null -w '%{time_total}' http://127.0.0.1:9473/metrics
}
median() {
	sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'
}

echo "| accounts | load (s) | \`rlshape status\` (s) | first scrape (s) | later scrapes, median (s) | first / status | later / status |"
echo "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
for n in "${CASES[@]}"; do
	table=$BED_DIR/accounts-$n.json
	{
		echo '{"listen": {"ports": [8000]}, "tiers": {"t": {"*": {"rpm": 60}}}, "accounts": {'
		seq -f '%07g' 0 $((n - 1)) | sed 's/.*/"acct-&": {"tier": "t", "keys": ["sk-&"]},/; $s/,$//'
		echo '}}'
	} >"$table"
	load=$(wall "$RLS" load "$table" --dev "$BED_GW_DEV")
	bed_spawn bed_gw "$RLS" daemon --dev "$BED_GW_DEV"
	daemon=$BED_LAST_PID
	bed_wait_until 30 grep -q 'settling token usage' "$BED_LAST_LOG"
	first=$(scrape_seconds)
	later=$(for _ in $(seq "$LATER"); do scrape_seconds; echo; done | median)
	status=$(for _ in $(seq "$LATER"); do wall "$RLS" status --dev "$BED_GW_DEV"; done | median)
	kill -TERM "$daemon"
	wait "$daemon" || true
	bed_gw "$RLS" unload --dev "$BED_GW_DEV" >/dev/null
	printf '| %s | %.2f | %.3f | %.3f | %.4f | %.2f | %.3f |\n' "$n" "$load" "$status" "$first" \
		"$later" "$(awk -v a="$first" -v b="$status" 'BEGIN { print a / b }')" \
		"$(awk -v a="$later" -v b="$status" 'BEGIN { print a / b }')"
done
echo
echo "One run of each; the machine is shared, so compare the ratios, taken within the run."
