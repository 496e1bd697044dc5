#!/usr/bin/env bash
# Shaping (README, "Shaping"): nginx on the gateway proxies in plain text to mock-upstream;
# rlshape is loaded with --side upstream on the gateway's upstream-facing veth, with a table
# whose entries shape (rpm 300: 5 a second, 200 ms apart; burst 5). What is asserted:
#   - a client-side load (XDP) says that only the upstream side shapes;
#   - the load puts fq at the veth's root (rlshape's handle 5253:), and unload takes it away,
#     leaving the kernel's default; on a kernel without the fq qdisc the load is refused,
#     saying so, and nothing is loaded;
#   - 20 requests at once (curl, a connection each) with max_delay_ms 5000: all 20 are
#     answered 200 and reach the upstream, spaced by the smoothing: by the upstream's log
#     timestamps, the first 5 together and the k-th after them k * 200 ms after the first,
#     each within SPACING_TOLERANCE_MS (the requests' decisions are a few ms apart; fq's timer
#     and the veth add less);
#   - 20 at once with max_delay_ms 2000: the 15 that can leave within 2 s reach the upstream,
#     the 5 past it get the 429 at once;
#   - rlshape stats counts the shaped requests.
# This is the one suite where timing is what is asserted; nothing waits by sleeping.
set -euo pipefail

# shellcheck source=tests/lib/suite.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/suite.sh"
suite_programs 17_shaping
SPACING_TOLERANCE_MS=60
TABLE=$BED_REPO/tests/e2e/data/shaping.json
PORT=8000       # the upstream's, watched
PROXY_PORT=8080 # nginx's, for the client

missing=()
for tool in nginx tc ss; do # Debian packages nginx and iproute2, from tools/install-deps.sh
	command -v "$tool" >/dev/null || missing+=("$tool (tools/install-deps.sh)")
done
suite_missing "${missing[@]}"

suite_upstream_side_bed
suite_upstream "$PORT"

suite_nginx_proxy "$PROXY_PORT" "$PORT"

root_qdisc() { bed_gw tc qdisc show dev "$BED_GW_UP_DEV" root | awk '{ print $2, $3; exit }'; }
default_root=$(root_qdisc)
tap_is "$default_root" "noqueue 0:" "the veth starts with the kernel's default root qdisc"

# ---- the client side cannot shape: it says so, and refuses as without "shape" ---------------

run_rls load "$TABLE" --dev "$BED_GW_DEV"
tap_is "$RC" 0 "a client-side load of the shaping table exits 0"
tap_like "$ERR" "shapes, which only the upstream side can \(--side upstream\): here a request too fast for the smoothing gets its 429" \
	"... and notes that only the upstream side shapes"
run_rls unload --dev "$BED_GW_DEV"
tap_is "$RC" 0 "... and unloads"

# ---- the load: fq at the root, or a clear refusal --------------------------------------------

run_rls load "$TABLE" --dev "$BED_GW_UP_DEV" --side upstream
if [[ $RC != 0 && $ERR == *"this kernel has no fq qdisc"* ]]; then
	tap_like "$ERR" "$BED_GW_UP_DEV: this kernel has no fq qdisc \\(CONFIG_NET_SCH_FQ, module sch_fq\\).*remove \"shape\" from the table; nothing changed" \
		"without fq in the kernel the load is refused, saying why"
	tap_is "$RC" 1 "... and exits 1"
	tap_is "$(root_qdisc)" "$default_root" "... and leaves the root qdisc"
	tap_is "$(bed_gw tc filter show dev "$BED_GW_UP_DEV" egress)" "" "... and attaches nothing"
	tap_ok "... and pins nothing" test ! -e "$BED_PIN_ROOT/$BED_GW_UP_DEV"
	tap_skip "bursts shaped through nginx" "the kernel has no fq qdisc (CONFIG_NET_SCH_FQ)"
	tap_done
	exit 0
fi
tap_is "$RC" 0 "rlshape load --side upstream of a shaping table exits 0"
[[ $RC == 0 ]] || tap_diag "$ERR"
tap_is "$(root_qdisc)" "fq 5253:" "the load puts rlshape's fq at the veth's root"

# ---- bursts through nginx --------------------------------------------------------------------

URL=http://$BED_GW_CLIENT4:$PROXY_PORT/v1/chat/completions
BODY='{"model":"gpt-small","messages":[{"role":"user","content":"hi"}]}'
burst() { # KEY: 20 requests at once, a connection each; their statuses counted, "200x20"
	local args=() _
	for _ in $(seq 20); do
		args+=(-o /dev/null "$URL")
	done
	bed_client curl -sS --no-progress-meter -Z --parallel-max 20 --parallel-immediate --max-time 15 \
		-H "Authorization: Bearer $1" -H 'Content-Type: application/json' -d "$BODY" \
		-w '%{http_code}\n' "${args[@]}" 2>>"$BED_DIR/curl.err" | sort | uniq -c |
		awk '{ printf "%s%sx%s", sep, $2, $1; sep = " " }'
}
# arrivals KEY: the upstream's log times of KEY's requests, in ms after the first, in order.
arrivals() {
	grep -F "key=Bearer $1 " "$UP_LOG" | awk '{ print $1 }' | sort -n |
		awk 'NR == 1 { t0 = $1 } { printf "%s%d", sep, $1 - t0; sep = " " }'
}
# spaced KEY N: "ok", or where the N arrivals are off the smoothing's schedule: the first 5
# within the tolerance of the first, the k-th after them k * 200 ms after it.
spaced() {
	arrivals "$1" | awk -v n="$2" -v tol="$SPACING_TOLERANCE_MS" '{
		bad = ""
		if (NF != n) bad = NF " arrivals, not " n
		for (i = 1; i <= NF && !bad; i++) {
			want = i <= 5 ? 0 : (i - 5) * 200
			if ($i < want - tol || $i > want + tol)
				bad = "arrival " i " at " $i " ms, not " want " +-" tol
		}
		print bad ? bad : "ok"
	}'
}

tap_is "$(burst shape-roomy-key)" "200x20" "20 at once, max_delay_ms 5000: all 20 answered 200"
tap_is "$(log_count 'key=Bearer shape-roomy-key ')" 20 "... and all 20 reached the upstream"
tap_is "$(spaced shape-roomy-key 20)" ok \
	"... spaced by the smoothing: 5 at once, then one each 200 ms (+-$SPACING_TOLERANCE_MS ms)"
tap_diag "arrivals (ms after the first): $(arrivals shape-roomy-key)"

tap_is "$(burst shape-tight-key)" "200x15 429x5" \
	"20 at once, max_delay_ms 2000: 15 answered 200, 5 get the 429"
tap_is "$(log_count 'key=Bearer shape-tight-key ')" 15 "... and the upstream got the 15 only"
tap_is "$(spaced shape-tight-key 15)" ok "... spaced by the smoothing, the last 2 s after the first"
[[ -s $BED_DIR/curl.err ]] && tap_diag "$(cat "$BED_DIR/curl.err")"

run_rls stats --dev "$BED_GW_UP_DEV" --json
tap_is "$(python3 -c 'import json, sys
rows = sorted(json.load(sys.stdin)["requests"], key=lambda r: r["account"])
print(" ".join("%s=%d" % (r["account"], r["shaped"]) for r in rows))' <<<"$OUT")" \
	"roomy=15 tight=10" "rlshape stats: 15 and 10 requests shaped"

run_rls unload --dev "$BED_GW_UP_DEV"
tap_is "$RC" 0 "rlshape unload exits 0"
tap_is "$(root_qdisc)" "$default_root" "unload takes rlshape's fq away: the default root again"
tap_done
