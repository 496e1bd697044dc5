#!/usr/bin/env bash
# Adversarial byte layouts end to end: the same request, sent in every way a client can lay it
# out on the wire, must be counted as the one request the server reads.
#
# The upstream is a real nginx running in the gateway's namespace on the gateway's
# client-facing addresses, port 8000 (watched by rlshape), and 8001 (not watched: the suite's
# sync requests). It reads every POST body (proxy_pass to a second server on loopback, with
# request buffering) and logs one line per request with the x-way marker the client sent.
#
# For each way of tools/adversary (its own account and key, tier "adv": "pricey" rpd 2,
# "cheap" unlimited): 6 requests for "pricey"; nginx must serve exactly 2 and the client must
# see 2 ok and 4 limited or closed. The current XDP parser fails many of these: each failing
# way is one rate limit that a client can walk around.
#
# The honest SDK (tier "sdk": "gpt-sdk" rpd 3, "tiny" rpd 1, the strictest): ~2.5 KB prompts
# with "model" after "messages", with and without x-model, from tools/adversary (way sdk) and
# from the official OpenAI Node SDK (tests/e2e/node, installed under build/node with npm ci):
# charged to gpt-sdk (3 admitted, 1 rpd-rejected, per `rlshape stats --json`), never to "tiny"
# or "(hidden)".
#
# Forged segments from a third namespace (attacker) bridged into the client's: scapy sends
#   a) requests with a victim's key from a spoofed address, no handshake;
#   b) FIN and RST with wrong sequence numbers into a victim's live keep-alive connection;
#   c) requests with a wrong sequence number into a victim's connection;
# and the victim's quota, connection and next request must be untouched, nginx must log none of
# the forged requests, and no 429 may go to the forged address.
set -euo pipefail

# shellcheck source=tests/lib/suite.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/suite.sh"
suite_programs 50_adversary
ADV=$BUILD_DIR/tools/adversary
PY=/usr/bin/python3 # Debian's: it sees python3-scapy
PORT=8000
SYNC_PORT=8001

# ---- what the suite needs: missing = a failing test that says what to install -------------

missing=()
[[ -x $ADV ]] || missing+=("$ADV (run make)")
command -v nginx >/dev/null || missing+=("nginx (Debian package nginx; tools/install-deps.sh)")
"$PY" -c 'import scapy.all' 2>/dev/null ||
	missing+=("scapy for $PY (Debian package python3-scapy; tools/install-deps.sh)")
command -v node >/dev/null && command -v npm >/dev/null ||
	missing+=("node and npm (Debian packages nodejs and npm; tools/install-deps.sh)")
command -v ss >/dev/null || missing+=("ss (Debian package iproute2)")
suite_missing "${missing[@]}"

# ---- the bed, an attacker namespace bridged into the client's ------------------------------

ATT_NS="rls-a-$$"
ATT_DEV="rlsa$$"
ATT_PEER="rlsb$$"
BRIDGE="rlsbr$$"
ATT_DEV=${ATT_DEV:0:15} ATT_PEER=${ATT_PEER:0:15} BRIDGE=${BRIDGE:0:15}
FORGED4=198.18.1.77 # no one has this address: the forged requests of a) come from it

adv_cleanup() {
	# bed_down (which runs first) kills what runs in the bed's namespaces, nginx included,
	# and deletes them with the bridge; the attacker's namespace is ours to delete.
	if [[ -e /var/run/netns/$ATT_NS ]]; then
		# shellcheck disable=SC2046
		kill -KILL $(ip netns pids "$ATT_NS" 2>/dev/null) 2>/dev/null || true
		ip netns del "$ATT_NS" 2>/dev/null || true
	fi
}
trap adv_cleanup EXIT # bed_up keeps it and runs it after bed_down
bed_up

ip netns add "$ATT_NS"
ip -n "$ATT_NS" link set lo up
ip link add "$ATT_DEV" netns "$ATT_NS" type veth peer name "$ATT_PEER" netns "$BED_CLIENT_NS"
ip -n "$BED_CLIENT_NS" link add "$BRIDGE" type bridge forward_delay 0 stp_state 0
ip -n "$BED_CLIENT_NS" addr flush dev "$BED_CLIENT_DEV"
ip -n "$BED_CLIENT_NS" link set "$BED_CLIENT_DEV" master "$BRIDGE"
ip -n "$BED_CLIENT_NS" link set "$ATT_PEER" master "$BRIDGE"
ip -n "$BED_CLIENT_NS" addr add "$BED_CLIENT4/24" dev "$BRIDGE"
ip -n "$BED_CLIENT_NS" addr add "$BED_CLIENT6/64" dev "$BRIDGE" nodad
ip -n "$BED_CLIENT_NS" link set "$ATT_PEER" up
ip -n "$BED_CLIENT_NS" link set "$BRIDGE" up
ip -n "$ATT_NS" link set "$ATT_DEV" up
GW_MAC=$(ip -n "$BED_GW_NS" -o link show dev "$BED_GW_DEV" | sed -E 's/.*link\/ether ([0-9a-f:]+).*/\1/')

# ---- nginx in the gateway's namespace -------------------------------------------------------

NGX=$BED_DIR/nginx
ACCESS=$NGX/logs/access.log
UP_LOG=$ACCESS # for log_count
nginx_conf_head "$NGX"
cat >>"$NGX/nginx.conf" <<EOF
    default_type application/json;
    client_body_buffer_size 64k;
    client_max_body_size 1m;
    keepalive_timeout 120s;
    log_format way escape=json
        '\$msec way=\$http_x_way status=\$status port=\$server_port client=\$remote_addr '
        'auth="\$http_authorization" xmodel="\$http_x_model" len=\$request_length '
        'body="\$request_body"';
    server {
        listen $BED_GW_CLIENT4:$PORT;
        listen [$BED_GW_CLIENT6]:$PORT;
        listen $BED_GW_CLIENT4:$SYNC_PORT;
        access_log $ACCESS way;
        # proxy_pass reads the whole body first (request buffering): \$request_body is logged.
        location / {
            proxy_pass http://127.0.0.1:$((PORT + 2));
            proxy_http_version 1.1;
        }
    }
    server {
        listen 127.0.0.1:$((PORT + 2));
        access_log off;
        location / {
            return 200 '{"id":"chatcmpl-rls","object":"chat.completion","created":0,"model":"x","choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}';
        }
    }
}
EOF
tap_ok "nginx accepts its configuration" bed_gw nginx -t -p "$NGX" -c "$NGX/nginx.conf"
bed_spawn bed_gw nginx -p "$NGX" -c "$NGX/nginx.conf"
NGINX_PID=$BED_LAST_PID
nginx_up() {
	[[ -s $NGX/nginx.pid && $(cat "$NGX/nginx.pid") == "$NGINX_PID" ]] &&
		bed_gw ss -Htln "sport = :$SYNC_PORT" | grep -q . &&
		bed_gw ss -Htln "sport = :$PORT" | grep -q "\[$BED_GW_CLIENT6\]"
}
tap_ok "nginx (pid $NGINX_PID) listens on $BED_GW_CLIENT4 and [$BED_GW_CLIENT6] port $PORT" \
	bed_wait_until 20 nginx_up

# sync: a request on the unwatched port; once nginx logged it, it logged every request it
# answered before (one process, log lines written as each response goes out).
SYNC_N=0
sync_log() {
	SYNC_N=$((SYNC_N + 1))
	bed_client curl -sS --noproxy '*' --max-time 5 -o /dev/null -H "x-way: sync-$SYNC_N" \
		"http://$BED_GW_CLIENT4:$SYNC_PORT/sync" || true
	bed_wait_until 10 grep -q "way=sync-$SYNC_N " "$ACCESS"
}
# served MARK: requests nginx answered 200 for that marker; seen MARK: all it logged.
served() { log_count "way=$1 status=200 "; }
seen() { log_count "way=$1 "; }

tap_ok "nginx answers on the unwatched port and logs it" sync_log
tap_is "$(bed_client curl -sS --noproxy '*' --max-time 5 -H 'x-way: probe' \
	-d '{"model":"cheap","messages":[]}' "http://$BED_GW_CLIENT4:$SYNC_PORT/v1/chat/completions" |
	head -c 40)" '{"id":"chatcmpl-rls","object":"chat.comp' "nginx answers a POST with its JSON"
sync_log
tap_like "$(grep 'way=probe ' "$ACCESS")" 'body="\{\\"model\\":\\"cheap\\",\\"messages\\":\[\]\}"' \
	"nginx read and logged the POST body"

# ---- the table -----------------------------------------------------------------------------

WAYS=(plain split-method leading-crlf ip-options keepalive-lastbyte pipeline small-mss
	reqline-alone key-2nd-segment many-headers bearer-spaces second-model chunked-ext
	ip-fragments urgent-oob expect-100 bytewise)
WAYS6=(plain split-method reqline-alone pipeline) # also over IPv6, with keys of their own
TABLE=$BED_DIR/tiers.json
{
	printf '{\n  "listen": { "ports": [%d] },\n' "$PORT"
	printf '  "tiers": {\n'
	printf '    "adv": { "pricey": { "rpd": 2 }, "cheap": { "rpd": "unlimited" } },\n'
	printf '    "sdk": { "gpt-sdk": { "rpd": 3 }, "tiny": { "rpd": 1 } },\n'
	printf '    "anon": { "*": { "rpd": 1000 } }\n  },\n  "accounts": {\n'
	for w in "${WAYS[@]}"; do
		printf '    "w-%s": { "tier": "adv", "keys": ["key-%s"] },\n' "$w" "$w"
	done
	for w in "${WAYS6[@]}"; do
		printf '    "w6-%s": { "tier": "adv", "keys": ["key6-%s"] },\n' "$w" "$w"
	done
	for v in a b c; do
		printf '    "victim-%s": { "tier": "adv", "keys": ["victim-key-%s"] },\n' "$v" "$v"
	done
	for s in adv-hdr adv-body node-hdr node-body; do
		printf '    "sdk-%s": { "tier": "sdk", "keys": ["sdk-key-%s"] },\n' "$s" "$s"
	done
	printf '    "spare": { "tier": "adv", "keys": ["spare-key"] }\n  },\n'
	printf '  "default_tier": "anon"\n}\n'
} >"$TABLE"

# rpd counts must not straddle 00:00 UTC: the run takes a few minutes.
suite_one_day 600
START_DAY=$(($(date -u +%s) / 86400))

out=$(rls load "$TABLE" --dev "$BED_GW_DEV" 2>&1) && st=0 || st=$?
tap_is "$st" 0 "rlshape load exits 0"
[[ $st == 0 ]] || tap_diag "$out"

stats_rows() { # ACCOUNT: "MODEL ADMITTED rps rpm rph rpd burst tokens concurrency; ..." or "none"
	local rows
	rows=$(awk -v a="$1" '$1 == a { $1 = ""; sub(/^ /, ""); printf "%s; ", $0 }' \
		"$BED_DIR/stats.txt")
	echo "${rows:-none}"
}

adv() { # TARGET ARGS...: the adversary in the client's namespace, its summary line
	bed_client "$ADV" --target "$@" 2>>"$BED_DIR/adversary.err" || true
}

# ---- the harness checks itself: the ways produce what they claim ------------------------------

# What the gateway's interface receives from each way (AF_PACKET on the gateway's veth, after
# XDP passed it): tests/e2e's claim about each layout, checked on the frames themselves.
cat >"$BED_DIR/layout.py" <<'PY'
# layout.py sniff IFACE DST PORT PCAP READY | check PCAP
import re, sys
from scapy.all import IP, TCP, PcapReader
if sys.argv[1] == "sniff":
    # A plain AF_PACKET socket and a hand-written pcap: scapy's own sniffer falls behind
    # one-byte segments and loses frames.
    import socket, struct, time
    iface, dst, port, pcap, ready = sys.argv[2:7]
    dst4, port = socket.inet_aton(dst), int(port)
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
    s.setsockopt(socket.SOL_SOCKET, 33, 64 << 20)  # SO_RCVBUFFORCE
    s.bind((iface, 0))
    out = open(pcap, "wb", buffering=0)
    out.write(struct.pack("<IHHiIII", 0xa1b2c3d4, 2, 4, 0, 0, 65535, 1))
    open(ready, "w").close()
    while True:
        f = s.recv(65535)
        et = f[12:14]
        if et == b"\x08\x00":
            ip = f[14:]
            ihl = (ip[0] & 15) * 4
            frag = struct.unpack("!H", ip[6:8])[0] & 0x3fff
            keep = ip[16:20] == dst4 and ip[9] == 6 and (
                frag or struct.unpack("!H", ip[ihl + 2:ihl + 4])[0] == port)
        elif et == b"\x86\xdd":
            keep = f[20] == 6 and struct.unpack("!H", f[56:58])[0] == port
        else:
            keep = False
        if keep:
            t = time.time()
            out.write(struct.pack("<IIII", int(t), int(t % 1 * 1e6), len(f), len(f)) + f)
conns, frags = {}, {}
def seg(sport, ihl, tcp, payload, nfrags=0, first_frag=0):
    c = conns.setdefault(sport, {"segs": [], "ihl": set(), "urg": [], "frags": []})
    if payload:
        c["segs"].append(payload)
        c["ihl"].add(ihl)
        c["urg"].append(tcp.urgptr if "U" in tcp.flags else 0)
        if nfrags:
            c["frags"].append((nfrags, first_frag))
for p in PcapReader(sys.argv[2]):
    if IP in p and (p[IP].flags.MF or p[IP].frag):
        ip = p[IP]
        d = frags.setdefault((ip.src, ip.id), {})
        d[ip.frag * 8] = (bytes(ip.payload), bool(ip.flags.MF))
        offs = sorted(d)
        data = b"".join(d[o][0] for o in offs)
        if not d[offs[-1]][1] and sum(len(d[o][0]) for o in offs) == offs[-1] + len(d[offs[-1]][0]):
            tcp = TCP(data)
            seg(tcp.sport, ip.ihl, tcp, bytes(tcp.payload), len(d), len(d[0][0]) - 20)
            del frags[(ip.src, ip.id)]
        continue
    tcp = p[TCP]
    seg(tcp.sport, p[IP].ihl if IP in p else 0, tcp, bytes(tcp.payload))

LINE = b"POST /v1/chat/completions HTTP/1.1\r\n"
def check(way, c):
    s, n = c["segs"], len(c["segs"])
    if way == "plain": return n == 1 and s[0].startswith(LINE)
    if way == "split-method": return n == 2 and s[0] == b"POST"
    if way == "leading-crlf": return n == 1 and s[0].startswith(b"\r\n" + LINE)
    if way == "ip-options": return c["ihl"] == {6}
    if way == "keepalive-lastbyte":
        return sum(1 for x in s if x.startswith(b"}" + LINE)) == 5 and all(
            x.startswith(LINE) or x.startswith(b"}") for x in s)
    if way == "pipeline": return s[0].count(LINE) >= 2
    if way == "small-mss": return n >= 4 and max(map(len, s)) <= 88
    if way == "reqline-alone": return n == 2 and s[0] == LINE
    if way == "key-2nd-segment": return n == 2 and s[1].startswith(b"authorization: Bearer")
    if way == "many-headers": return n == 1 and len(re.findall(rb"\r\nx-h\d\d: ", s[0])) == 70 \
        and s[0].index(b"x-h69") < s[0].index(b"authorization")
    if way == "bearer-spaces": return n == 1 and b"authorization: Bearer" + b" " * 20 + b"s" in s[0]
    if way == "second-model": return n == 2 and s[0].endswith(b"\"}]") and \
        s[1] == b',"model":"pricey"}'
    if way == "chunked-ext": return n == 1 and re.search(
        rb'\r\n\r\n[0-9a-f]+;\{"model":"cheap"\}\r\n\{"model":"pricey"', s[0]) is not None
    if way == "ip-fragments": return n == 1 and c["frags"] and c["frags"][0][0] >= 3 and \
        c["frags"][0][1] <= 4
    if way == "urgent-oob": return n == 1 and s[0].startswith(b"!" + LINE) and c["urg"][0] == 1
    if way == "expect-100": return n == 2 and s[0].endswith(b"\r\n\r\n") and \
        b"expect: 100-continue" in s[0] and s[1].startswith(b"{")
    if way == "bytewise": return n > 100 and max(map(len, s)) == 1
    return False
res = {}
for sport, c in conns.items():
    m = re.search(rb"x-way: self-([a-z0-9-]+)\r\n", b"".join(c["segs"]))
    if m:
        w = m.group(1).decode()
        r = res.setdefault(w, [0, 0, ""])
        r[0] += 1
        if not check(w, c):
            r[1] += 1
            r[2] = r[2] or "segments %s%s" % ([len(x) for x in c["segs"]][:12],
                                             " IHL %s" % sorted(c["ihl"]))
for w, (n, bad, why) in sorted(res.items()):
    print("%s connections=%d %s" % (w, n, "as claimed" if not bad else
                                    "%d not as claimed, e.g. %s" % (bad, why)))
PY
bed_spawn bed_gw "$PY" "$BED_DIR/layout.py" sniff "$BED_GW_DEV" "$BED_GW_CLIENT4" "$SYNC_PORT" \
	"$BED_DIR/layout.pcap" "$BED_DIR/layout.ready"
LAYOUT_PID=$BED_LAST_PID
tap_ok "a sniffer on $BED_GW_DEV records what reaches the gateway on port $SYNC_PORT" \
	bed_wait_file "$BED_DIR/layout.ready" 30

# Over the unwatched port nothing is limited: every way must get its 6 answers from nginx, which
# must read each as one whole request with its key and body (so the layouts are real requests).
for w in "${WAYS[@]}"; do
	got=$(adv "$BED_GW_CLIENT4:$SYNC_PORT" --way "$w" --key spare-key --marker "self-$w")
	sync_log
	n=$(log_count "way=self-$w status=200 .*auth=\"Bearer +spare-key\".* body=\"\\{")
	if [[ $got == *" ok=6 limited=0 closed=0 timeout=0 other=0 "* && $n == 6 ]]; then
		tap_is ok ok "harness: way $w, unwatched port: 6 answered, nginx logged 6 with key and body"
	else
		tap_is "$got; nginx logged $n" "... ok=6 ...; nginx logged 6" \
			"harness: way $w, unwatched port: 6 answered, nginx logged 6 with key and body"
	fi
done
# Every frame up to the last sync request is in the capture: then stop the sniffer, and read it.
tap_ok "the sniffer saw everything up to the last sync request" \
	bed_wait_until 20 grep -qa "x-way: sync-$SYNC_N" "$BED_DIR/layout.pcap"
kill "$LAYOUT_PID" 2>/dev/null || true
wait "$LAYOUT_PID" 2>/dev/null || true
"$PY" "$BED_DIR/layout.py" check "$BED_DIR/layout.pcap" >"$BED_DIR/layout.txt" 2>&1 || true
for w in "${WAYS[@]}"; do
	want=6
	[[ $w == pipeline || $w == keepalive-lastbyte ]] && want=1
	tap_is "$(grep "^$w " "$BED_DIR/layout.txt" || head -3 "$BED_DIR/layout.txt")" \
		"$w connections=$want as claimed" "layout: way $w reaches the gateway as it claims"
done

# The model nginx's body holds for the ways that play with it.
tap_like "$(grep -m1 'way=self-second-model ' "$ACCESS")" \
	'body="\{\\"model\\":\\"cheap\\",.*,\\"model\\":\\"pricey\\"\}"' \
	"harness: second-model's body is {\"model\":\"cheap\",...,\"model\":\"pricey\"}"
tap_like "$(grep -m1 'way=self-chunked-ext ' "$ACCESS")" 'body="\{\\"model\\":\\"pricey\\",' \
	"harness: chunked-ext's body (de-chunked by nginx) is the real one, model pricey"
tap_like "$(grep -m1 'way=self-urgent-oob ' "$ACCESS")" 'status=200 ' \
	"harness: urgent-oob: nginx reads the request without the urgent byte"

# ---- every way, for "pricey" (rpd 2) --------------------------------------------------------------

for w in "${WAYS[@]}"; do
	snapshot_stats
	urgent_before=$(packets urgent_dropped)
	wait_ms=5000
	[[ $w == urgent-oob ]] && wait_ms=1500 # never answered: no need to wait long
	got=$(adv "$BED_GW_CLIENT4:$PORT" --way "$w" --key "key-$w" --count 6 --timeout-ms "$wait_ms")
	sync_log
	tap_diag "$got; nginx: $(served "$w") served, $(seen "$w") logged"
	if [[ $w == urgent-oob ]]; then
		# Urgent data to a watched port is dropped, every time it is sent: no HTTP client
		# needs it, and the server would read the stream without the urgent byte. The
		# request never reaches nginx; nothing goes through uncounted.
		snapshot_stats
		tap_like "$got" "^way=$w sent=6 ok=0 " "way $w: no request got through"
		tap_is "$(served "$w")" 0 "way $w: nginx served none of them"
		tap_ok "way $w: the urgent segments were dropped and counted" \
			test "$(packets urgent_dropped)" -ge "$((urgent_before + 6))"
		continue
	fi
	tap_like "$got" "^way=$w sent=6 ok=2 (limited=4 closed=0|limited=[0-4] closed=[0-4]) timeout=0 other=0 " \
		"way $w: the client got 2 answers and 4 429s (or closed connections)"
	tap_is "$(served "$w")" 2 "way $w: nginx served exactly 2 of 6 pricey requests (rpd 2)"
done
for w in "${WAYS6[@]}"; do
	got=$(adv "[$BED_GW_CLIENT6]:$PORT" --way "$w" --key "key6-$w" --count 6 --marker "v6-$w")
	sync_log
	tap_diag "$got; nginx: $(served "v6-$w") served, $(seen "v6-$w") logged"
	tap_is "$(served "v6-$w")" 2 "IPv6 way $w: nginx served exactly 2 of 6 pricey requests"
done

# ---- the honest SDK: charged to its own model -----------------------------------------------------

# tools/adversary's emulation (way sdk: ~2.5 KB body, "model" last, keep-alive).
for s in adv-hdr adv-body; do
	hdr=()
	[[ $s == *-hdr ]] && hdr=(--header-model gpt-sdk)
	got=$(adv "$BED_GW_CLIENT4:$PORT" --way sdk --key "sdk-key-$s" --model gpt-sdk --count 4 \
		--marker "sdk-$s" "${hdr[@]}")
	sync_log
	tap_like "$got" "^way=sdk sent=4 ok=3 limited=1 closed=0 timeout=0 other=0 " \
		"SDK layout ($s): gpt-sdk rpd 3: 3 admitted, 1 limited"
	tap_is "$(served "sdk-$s")" 3 "SDK layout ($s): nginx served 3"
done

# The official OpenAI Node SDK (node_sdk_install: tests/lib/suite.sh).
if node_sdk_install >"$BED_DIR/npm.log" 2>&1; then
	tap_is ok ok "the OpenAI Node SDK is installed under $NODE_DIR (npm ci)"
	for s in node-hdr node-body; do
		xm=()
		[[ $s == *-hdr ]] && xm=(gpt-sdk)
		got=$(bed_client node "$NODE_DIR/sdk.mjs" "http://$BED_GW_CLIENT4:$PORT/v1" \
			"sdk-key-$s" gpt-sdk 4 "sdk-$s" "${xm[@]}" 2>>"$BED_DIR/node.err" || true)
		sync_log
		tap_is "$got" "way=sdk-$s sent=4 ok=3 limited=1 other=0" \
			"OpenAI Node SDK ($s): gpt-sdk rpd 3: 3 admitted, 1 limited"
		tap_is "$(served "sdk-$s")" 3 "OpenAI Node SDK ($s): nginx served 3"
	done
	tap_diag "node SDK body: $(grep -m1 'way=sdk-node-body ' "$ACCESS" | grep -oE 'len=[0-9]+ body=".{0,40}')"
else
	tap_is "npm ci failed" ok "the OpenAI Node SDK is installed under $NODE_DIR (npm ci)"
	tap_diag "$(tail -5 "$BED_DIR/npm.log")"
fi

snapshot_stats
for s in adv-hdr adv-body node-hdr node-body; do
	tap_is "$(stats_rows "sdk-$s")" "gpt-sdk 3 0 0 0 1 0 0 0; " \
		"stats: sdk-$s charged to gpt-sdk only (3 admitted, 1 rpd), not tiny, not (hidden)"
done

# ---- forged segments from the attacker's namespace ---------------------------------------------

cat >"$BED_DIR/forge.py" <<'PY'
# forge.py IFACE GW_MAC MODE ...: forged TCP from the attacker's namespace, with scapy.
#   request SRC SPORT DST DPORT KEY MARKER COUNT  requests, no handshake, seq at random
#   inject  SRC SPORT DST DPORT KIND COUNT        KIND fin, rst or request (victim's key in
#                                                 MARKER form "KEY/MARKER"), seq at random
# Sniffs the interface meanwhile, and a second past the last frame; prints
#   sent=N replies=N replies_429=N   (TCP from DST:DPORT to SRC carrying data)
import random, sys, threading
from scapy.all import AsyncSniffer, Ether, IP, TCP, Raw, conf, get_if_hwaddr, sendp
conf.verb = 0
iface, gw_mac, mode = sys.argv[1:4]
args = sys.argv[4:]
src, sport, dst, dport = args[0], int(args[1]), args[2], int(args[3])
def request(key, marker):
    body = '{"model":"pricey","messages":[{"role":"user","content":"%s"}]}' % ("x" * 200)
    return ("POST /v1/chat/completions HTTP/1.1\r\nhost: %s\r\nx-way: %s\r\n"
            "authorization: Bearer %s\r\ncontent-type: application/json\r\n"
            "content-length: %d\r\n\r\n%s" % (dst, marker, key, len(body), body)).encode()
frames = []
if mode == "request":
    key, marker, count = args[4], args[5], int(args[6])
    for _ in range(count):
        frames.append(TCP(sport=random.randint(20000, 60000) if sport == 0 else sport,
                          dport=dport, flags="PA", seq=random.getrandbits(32),
                          ack=random.getrandbits(32), window=502) / Raw(request(key, marker)))
else:
    kind, count = args[4], int(args[5])
    for _ in range(count):
        seq, ack = random.getrandbits(32), random.getrandbits(32)
        if kind == "fin":
            frames.append(TCP(sport=sport, dport=dport, flags="FA", seq=seq, ack=ack, window=502))
        elif kind == "rst":
            frames.append(TCP(sport=sport, dport=dport, flags="R", seq=seq))
        else:
            key, marker = kind.split("/", 1)
            frames.append(TCP(sport=sport, dport=dport, flags="PA", seq=seq, ack=ack,
                              window=502) / Raw(request(key, marker)))
mine = lambda p: (IP in p and TCP in p and p[IP].src == dst and p[IP].dst == src
                  and p[TCP].sport == dport and len(p[TCP].payload) > 0)
started = threading.Event()
sn = AsyncSniffer(iface=iface, lfilter=mine, store=True, started_callback=started.set)
sn.start()
if not started.wait(10):
    sys.exit("the sniffer did not start")
# The attacker's own MAC: scapy, finding no route, would send 00:00:00:00:00:00, which the
# bridge drops as an invalid source.
sendp([Ether(src=get_if_hwaddr(iface), dst=gw_mac) / IP(src=src, dst=dst) / f for f in frames], iface=iface)
threading.Event().wait(1.0)   # replies come within microseconds: a bounded look, not a sync
got = sn.stop() or []
n429 = sum(1 for p in got if bytes(p[TCP].payload).startswith(b"HTTP/1.1 429"))
print("sent=%d replies=%d replies_429=%d" % (len(frames), len(got), n429))
PY
forge() {
	ip netns exec "$ATT_NS" "$PY" "$BED_DIR/forge.py" "$ATT_DEV" "$GW_MAC" "$@" \
		2>>"$BED_DIR/forge.err" || echo "forge.py failed: $(tail -3 "$BED_DIR/forge.err")"
}

# a) 6 requests with victim a's key from a spoofed address, no handshake.
snapshot_stats
r429_before=$(packets replies_429)
seen_before=$(packets seen)
req_before=$(packets requests)
got=$(forge request "$FORGED4" 0 "$BED_GW_CLIENT4" "$PORT" victim-key-a forged-a 6)
tap_is "$got" "sent=6 replies=0 replies_429=0" \
	"a) 6 forged requests with victim a's key from $FORGED4, no handshake: nothing sent back to it"
snapshot_stats
tap_is "$(packets replies_429)" "$r429_before" "a) rlshape sent no 429 for them (replies_429 unchanged)"
tap_ok "a) the forged frames reached rlshape's XDP program (packets seen +$(($(packets seen) - seen_before)))" \
	test "$(($(packets seen) - seen_before))" -ge 6
tap_diag "a) packets: requests +$(($(packets requests) - req_before))"
tap_is "$(stats_rows victim-a)" none "a) victim a: nothing admitted or rejected on its account"
got=$(adv "$BED_GW_CLIENT4:$PORT" --way plain --key victim-key-a --count 3 --marker victim-a)
sync_log
tap_like "$got" " ok=2 limited=1 " "a) victim a's own 3 requests: its 2 are still there, then 429"
tap_is "$(seen forged-a)" 0 "a) nginx logged none of the forged requests"

# b) and c): a victim with a live keep-alive connection, its request 2 held back until the
# forged segments are in.
flows_dump() { # CLIENT_PORT: the victim's entries in rls_flows (its port is kept big-endian)
	bpftool -j map dump pinned "$BED_PIN_DIR/rls_flows" | "$PY" -c '
import json, sys
port = int(sys.argv[1])
port = (port >> 8) | ((port & 0xff) << 8)
for x in json.load(sys.stdin):
    f = x.get("formatted", x)
    if f["key"]["client_port"] == port:
        print(json.dumps(f, sort_keys=True))' "$1"
}
victim() { # LETTER FORGE-ARGS...: one victim run; the results as TAP
	local v=$1 log tuple sport
	shift
	bed_spawn bed_client "$ADV" --target "$BED_GW_CLIENT4:$PORT" --way plain --keepalive \
		--key "victim-key-$v" --count 2 --marker "victim-$v" --gate "$BED_DIR/gate-$v" -v
	log=$BED_LAST_LOG
	tap_ok "$v) victim $v's request 1 on a keep-alive connection: 200" \
		bed_wait_until 10 grep -q '^request 1: ok' "$log"
	tuple=$(bed_client ss -Htn state established "( dport = :$PORT and dst $BED_GW_CLIENT4 )" |
		awk '{ print $3 }')
	sport=${tuple##*:}
	tap_like "$tuple" "^$BED_CLIENT4:[0-9]+\$" "$v) ss shows the victim's connection ($tuple)"
	local before after
	before=$(flows_dump "$sport")
	snapshot_stats
	local seen0
	seen0=$(packets seen)
	for kind in "$@"; do
		got=$(forge inject "$BED_CLIENT4" "$sport" "$BED_GW_CLIENT4" "$PORT" "$kind" 4)
		tap_like "$got" "^sent=4 replies=[0-9]+ replies_429=0\$" \
			"$v) 4 forged ${kind%%/*} segments with wrong seq into it: no 429 from rlshape"
	done
	after=$(flows_dump "$sport")
	snapshot_stats
	tap_ok "$v) the forged segments reached rlshape's XDP program (packets seen +$(($(packets seen) - seen0)))" \
		test "$(($(packets seen) - seen0))" -ge "$((4 * $#))"
	tap_like "$before" '"key"' "$v) rls_flows has the victim's connection"
	tap_is "$after" "$before" "$v) its rls_flows entry is unchanged by the forged segments"
	tap_ok "$v) the victim's connection is still established" \
		bash -c "ip netns exec '$BED_CLIENT_NS' ss -Htn state established '( sport = :$sport )' | grep -q ."
	: >"$BED_DIR/gate-$v.2"
	tap_ok "$v) victim $v's request 2 on the same connection: 200 (quota and connection intact)" \
		bed_wait_until 10 grep -q '^request 2: ok' "$log"
	bed_wait_until 10 grep -q '^way=plain ' "$log" || true
	tap_like "$(cat "$log")" "way=plain sent=2 ok=2 limited=0 closed=0 timeout=0 other=0 retrans=" \
		"$v) the victim saw 2 answers, nothing else"
	sync_log
	tap_is "$(served "victim-$v")" 2 "$v) nginx served the victim's 2 requests"
}
victim b fin rst
victim c "victim-key-c/forged-c"
tap_is "$(seen forged-c)" 0 "c) nginx logged none of the forged requests"
snapshot_stats
tap_like "$(stats_rows victim-c)" "^pricey 2 0 0 0 0 0 0 0; \$" \
	"c) stats: victim c charged for its own 2 requests only"

tap_diag "packets: $(awk '$1 == "packets" { printf "%s=%s ", $2, $3 }' "$BED_DIR/stats.txt")"
tap_is "$(($(date -u +%s) / 86400))" "$START_DAY" "the run stayed inside one UTC day (rpd counts exact)"
tap_done
