#!/usr/bin/env bash
# make demo [VENDOR=name]: a gateway in network namespaces, a real upstream, real clients.
#
#   client (198.18.1.2) --veth--> gateway, rlshape's XDP on its client side --veth--> upstream
#
# Three clients send bursts: two accounts with API keys, one with no key (the default tier).
# rlshape admits what their tiers allow and answers the rest with a 429 from the kernel; the
# upstream's log shows it never saw a rejected request. Everything is removed at the end.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
vendor=${1:-}
table=examples/tiers.json
if [[ -n "$vendor" ]]; then
	table=examples/$vendor/tiers.json
	if [[ ! -f "$table" ]]; then
		echo "demo: no table for vendor \"$vendor\" ($table); the vendors are:" \
			"$(find examples -mindepth 2 -name tiers.json -printf '%h ' | sed 's|examples/||g')" >&2
		exit 1
	fi
fi

# shellcheck source=tests/lib/bed.sh
source tests/lib/bed.sh

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "Network namespaces: client, gateway, upstream (198.18.0.0/15, no route off the machine)"
bed_up
echo "gateway interface facing the clients: $BED_GW_DEV"

step "Upstream: an OpenAI-compatible mock on $BED_UP4:8000"
bed_spawn bed_up_ns build/tools/mock-upstream --listen "*:8000" --log "$BED_DIR/upstream.log" \
	--ready-file "$BED_DIR/upstream.ready"
bed_wait_file "$BED_DIR/upstream.ready" 10

step "rlshape check $table && rlshape load $table --dev $BED_GW_DEV"
build/rlshape check "$table"
bed_gw build/rlshape load "$table" --dev "$BED_GW_DEV"
bed_gw build/rlshape status --dev "$BED_GW_DEV"

send() { # label, loadgen arguments...
	local label=$1
	shift
	printf '%-44s ' "$label"
	bed_client build/tools/loadgen --target "$BED_UP4:8000" "$@" || true
}

# What each client is, in examples/tiers.json; a vendor's table has no accounts, so there
# every client is an unknown one, charged to the table's default tier per address.
label() { # default-table label, vendor-table label
	if [[ -n "$vendor" ]]; then echo "$2"; else echo "$1"; fi
}
if [[ -n "$vendor" ]]; then
	echo "$table has no accounts: every client below is charged to its default tier, per address."
fi

step "Traffic: 20 requests back to back from each client, over keep-alive connections"
send "$(label "acme (tier1), DeepSeek-R1: tpm 30000, rpm 60" "key sk-acme-1, DeepSeek-R1")" \
	--requests 20 --connections 2 --key sk-acme-1 --model deepseek-ai/DeepSeek-R1
send "$(label "acme (tier1), any other model: rpm 200" "key sk-acme-1, Qwen3-32B")" \
	--requests 20 --connections 2 --key sk-acme-1 --model Qwen/Qwen3-32B
send "$(label "globex (tier2), DeepSeek-R1: rpm 120, burst 10" "key sk-globex-1, DeepSeek-R1")" \
	--requests 20 --connections 2 --key sk-globex-1 --key-header x-api-key \
	--model deepseek-ai/DeepSeek-R1
send "$(label "no key (free tier, per address): rpm 3" "no key, DeepSeek-R1")" \
	--requests 20 --connections 1 --model deepseek-ai/DeepSeek-R1 --save-429 "$BED_DIR/429.txt"

step "What a rejected client received, built in the kernel by XDP"
cat "$BED_DIR/429.txt"
echo

step "What reached the upstream: requests per key in its log"
for key in "Bearer sk-acme-1" "sk-globex-1" "-"; do
	printf '  key=%-20s %3d requests\n' "$key" "$(grep -c -F "key=$key " "$BED_DIR/upstream.log" || true)"
done

step "rlshape stats: admitted and rejected per account, model and reason"
bed_gw build/rlshape stats --dev "$BED_GW_DEV"

step "rlshape daemon: Prometheus metrics on http://127.0.0.1:9473/metrics (a few lines of a scrape)"
bed_spawn bed_gw build/rlshape daemon --dev "$BED_GW_DEV"
bed_wait_until 10 grep -q 'settling token usage' "$BED_LAST_LOG"
bed_gw curl -sS --noproxy '*' http://127.0.0.1:9473/metrics >"$BED_DIR/scrape.txt"
grep -E '^rlshape_requests_(admitted|rejected)_total' "$BED_DIR/scrape.txt" | grep -v ' 0$' || true
grep -E '^rlshape_(map_fill_ratio\{map="rls_(counters|flows)"|table_loaded|daemon_ring_lag)' "$BED_DIR/scrape.txt"
echo "    ... ($(grep -c '^rlshape_' "$BED_DIR/scrape.txt") samples in all; README, Metrics, lists them)"
kill -TERM "$BED_LAST_PID"
wait "$BED_LAST_PID" || true

step "bpftool map dump pinned $BED_PIN_DIR/rls_limits (BTF-typed: named fields)"
bed_gw bpftool map dump pinned "$BED_PIN_DIR/rls_limits" > "$BED_DIR/limits.dump"
head -36 "$BED_DIR/limits.dump"
echo "    ... ($(grep -c '"key"' "$BED_DIR/limits.dump") entries in all)"

step "rlshape unload --dev $BED_GW_DEV, then the namespaces go"
bed_gw build/rlshape unload --dev "$BED_GW_DEV"
bed_down
echo "demo: done; nothing is left behind"
