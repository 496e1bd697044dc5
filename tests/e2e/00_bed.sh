#!/usr/bin/env bash
# The test bed itself: client <-> gateway <-> upstream, TCP over IPv4 and IPv6 through
# the gateway, no default route, the XDP_PASS program on the client's veth, pins made
# from the gateway namespace visible from the host, and bed_down removing it all.
set -euo pipefail

# shellcheck source=tests/lib/bed.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/bed.sh"

PORT=8080

bed_up

# Addresses: only the benchmarking ranges.
for a in "$BED_CLIENT4" "$BED_GW_CLIENT4" "$BED_GW_UP4" "$BED_UP4"; do
	tap_like "$a" '^198\.1[89]\.' "IPv4 address $a is in 198.18.0.0/15"
done
for a in "$BED_CLIENT6" "$BED_GW_CLIENT6" "$BED_GW_UP6" "$BED_UP6"; do
	tap_like "$a" '^2001:2:0:' "IPv6 address $a is in 2001:2::/48"
done
tap_ok "gateway device name '$BED_GW_DEV' fits IFNAMSIZ" test "${#BED_GW_DEV}" -le 15

for ns in "$BED_CLIENT_NS" "$BED_GW_NS" "$BED_UP_NS"; do
	tap_is "$(ip -n "$ns" -4 route show default)" "" "no IPv4 default route in $ns"
	tap_is "$(ip -n "$ns" -6 route show default)" "" "no IPv6 default route in $ns"
done
tap_is "$(bed_gw cat /proc/sys/net/ipv4/ip_forward)" 1 "gateway forwards IPv4"
tap_is "$(bed_gw cat /proc/sys/net/ipv6/conf/all/forwarding)" 1 "gateway forwards IPv6"

link=$(ip -n "$BED_CLIENT_NS" -d link show dev "$BED_CLIENT_DEV")
tap_like "$link" ' xdp ' "native XDP program attached to the client's veth"
tap_like "$link" 'prog/xdp id [0-9]+' "client's veth shows its XDP program id"
for end in "$BED_CLIENT_NS $BED_CLIENT_DEV" "$BED_GW_NS $BED_GW_DEV"; do
	read -r ns dev <<<"$end"
	tap_like "$(ip netns exec "$ns" ethtool -k "$dev")" $'tx-checksumming: off' \
		"TX checksum offload off on $dev"
done

# Real TCP through the gateway: an HTTP server on each upstream address.
mkdir -p "$BED_DIR/www"
echo "rlshape bed $$" >"$BED_DIR/www/hello.txt"
want="rlshape bed $$"
bed_spawn bed_up_ns python3 -u -m http.server --bind "$BED_UP4" --directory "$BED_DIR/www" "$PORT"
log4=$BED_LAST_LOG
server_pid=$BED_LAST_PID
bed_spawn bed_up_ns python3 -u -m http.server --bind "$BED_UP6" --directory "$BED_DIR/www" "$PORT"
log6=$BED_LAST_LOG
tap_ok "IPv4 HTTP server listening" bed_wait_until 20 grep -q 'Serving HTTP' "$log4"
tap_ok "IPv6 HTTP server listening" bed_wait_until 20 grep -q 'Serving HTTP' "$log6"

curl_c() {
	bed_client curl -sS -g --noproxy '*' --connect-timeout 5 --max-time 10 "$@" 2>&1 || true
}
tap_is "$(curl_c "http://$BED_UP4:$PORT/hello.txt")" "$want" "client reaches upstream over TCP/IPv4"
tap_is "$(curl_c "http://[$BED_UP6]:$PORT/hello.txt")" "$want" "client reaches upstream over TCP/IPv6"
tap_like "$(curl_c -o /dev/null -w '%{local_ip} %{remote_ip}' "http://$BED_UP4:$PORT/hello.txt")" \
	"^$BED_CLIENT4 $BED_UP4\$" "IPv4 connection is client address to upstream address"
tap_like "$(bed_client ip -6 route get "$BED_UP6")" "via $BED_GW_CLIENT6 dev $BED_CLIENT_DEV" \
	"client's IPv6 route to upstream goes via the gateway"
tap_like "$(bed_up_ns ip route get "$BED_CLIENT4")" "via $BED_GW_UP4 dev $BED_UP_DEV" \
	"upstream's IPv4 route to client goes via the gateway"
tap_ok "no route from the client to outside the bed" \
	bash -c "! ip netns exec '$BED_CLIENT_NS' ip route get 198.19.0.1 >/dev/null 2>&1"

# A pin made from the gateway namespace (bed_gw uses nsenter) is seen by the host.
bed_gw mkdir -p "$BED_PIN_DIR"
bed_gw bpftool prog load "$BED_XDP_PASS_OBJ" "$BED_PIN_DIR/pass" type xdp
tap_ok "pin made inside bed_gw is visible from the host" test -e "$BED_PIN_DIR/pass"

# A process started inside a namespace but not through bed_spawn: bed_down ends it too.
ip netns exec "$BED_CLIENT_NS" sleep 600 </dev/null >/dev/null 2>&1 &
stray_pid=$!

names=("$BED_CLIENT_NS" "$BED_GW_NS" "$BED_UP_NS")
bed_down
netns=$(ip netns list)
for ns in "${names[@]}"; do
	tap_ok "bed_down deleted namespace $ns" bash -c "! grep -qw -- '$ns' <<<'$netns'"
done
tap_ok "bed_down removed the pins" test ! -e "$BED_PIN_DIR"
tap_ok "bed_down ended the spawned HTTP server" test ! -e "/proc/$server_pid/cmdline"
wait "$stray_pid" 2>/dev/null || true
tap_ok "bed_down ended a stray process in a namespace" test ! -e "/proc/$stray_pid/cmdline"
tap_ok "bed_down removed the bed's files" test ! -e "$BED_DIR"
tap_ok "bed_down is idempotent" bed_down

tap_done
