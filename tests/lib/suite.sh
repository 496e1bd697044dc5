#!/usr/bin/env bash
# What every end-to-end suite shares on top of the namespace bed (bed.sh): the programs it
# runs, rlshape in the gateway's namespace, and the upstream's log.

# shellcheck source=tests/lib/bed.sh
source "$(dirname "${BASH_SOURCE[0]}")/bed.sh"

# suite_programs SUITE: the built programs as $RLS, $MOCK and $LOADGEN (under $BUILD,
# default build/); exits, saying what to run, when one is missing.
suite_programs() {
	local f
	BUILD_DIR=${BUILD:-build}
	[[ $BUILD_DIR == /* ]] || BUILD_DIR=$BED_REPO/$BUILD_DIR
	RLS=$BUILD_DIR/rlshape
	MOCK=$BUILD_DIR/tools/mock-upstream
	LOADGEN=$BUILD_DIR/tools/loadgen
	for f in "$RLS" "$MOCK" "$LOADGEN"; do
		if [[ ! -x $f ]]; then
			echo "$1: $f is missing: run make" >&2
			exit 1
		fi
	done
}

# rls ARGS...: rlshape in the gateway's namespace, where its pins are.
rls() {
	bed_gw "$RLS" "$@"
}

# run_rls ARGS...: sets OUT (stdout), ERR (stderr) and RC of `rlshape ARGS...`.
run_rls() {
	RC=0
	rls "$@" >"$BED_DIR/rls.out" 2>"$BED_DIR/rls.err" || RC=$?
	OUT=$(cat "$BED_DIR/rls.out")
	ERR=$(cat "$BED_DIR/rls.err")
}

# post_status URL [CURL ARGS...]: one request from the client; its status code ("000" when
# there was no HTTP response).
post_status() {
	local url=$1
	shift
	bed_client curl -sS -g --noproxy '*' --connect-timeout 5 --max-time 10 -o /dev/null \
		-w '%{http_code}' "$@" "$url" 2>>"$BED_DIR/curl.err" || true
}

# suite_one_day SECONDS: waits, if it must, until SECONDS more fit in this UTC day: tpd and rpd
# ledgers are exact only inside one.
_suite_day_has_room() {
	(($(date -u +%s) % 86400 < 86400 - $1))
}
suite_one_day() {
	bed_wait_until $(($1 + 5)) _suite_day_has_room "$1"
}

# suite_upstream PORT [ADDR...]: mock-upstream on $BED_UP4:PORT (and on each ADDR:PORT given,
# e.g. "[$BED_UP6]"), logging to $UP_LOG; one test that it listens.
suite_upstream() {
	local port=$1 extra=() a
	shift
	for a in "$@"; do
		extra+=(--listen "$a:$port")
	done
	UP_LOG=$BED_DIR/upstream.log
	bed_spawn bed_up_ns "$MOCK" --listen "$BED_UP4:$port" "${extra[@]}" --log "$UP_LOG" \
		--ready-file "$BED_DIR/upstream.ready"
	tap_ok "mock-upstream is listening on :$port" bed_wait_file "$BED_DIR/upstream.ready" 20
}

# suite_upstream_side_bed: the bed (bed_up), for rlshape on the gateway's upstream-facing
# interface: bed_down removes the pins of the client-facing interface; the upstream-facing
# one's go too, on exit.
_suite_up_pins_cleanup() {
	rm -rf "${BED_PIN_ROOT:?}/${BED_GW_UP_DEV:?}"
	rmdir "$BED_PIN_ROOT" 2>/dev/null || true
}
suite_upstream_side_bed() {
	trap _suite_up_pins_cleanup EXIT # bed_up keeps it and runs it after bed_down
	bed_up
}

# node_sdk_install: the official OpenAI Node SDK (and ws, which its Realtime client needs),
# pinned in tests/e2e/node, installed under $NODE_DIR (build/node) with npm ci, with the
# suites' scripts beside it; again whenever the pinned lockfile changed.
node_sdk_install() {
	NODE_DIR=$BUILD_DIR/node
	mkdir -p "$NODE_DIR"
	if [[ -d $NODE_DIR/node_modules ]] &&
		cmp -s "$BED_REPO/tests/e2e/node/package-lock.json" "$NODE_DIR/package-lock.json"; then
		cp "$BED_REPO"/tests/e2e/node/*.mjs "$NODE_DIR/"
		return 0
	fi
	cp "$BED_REPO/tests/e2e/node/package.json" "$BED_REPO/tests/e2e/node/package-lock.json" \
		"$BED_REPO"/tests/e2e/node/*.mjs "$NODE_DIR/"
	(cd "$NODE_DIR" && npm ci --no-audit --no-fund --loglevel=error)
}

# suite_missing WHAT...: for each thing the suite needs and lacks (what to install, as a
# sentence), a failing test saying so, and the suite ends; nothing when none is given.
suite_missing() {
	local m
	(($#)) || return 0
	for m in "$@"; do
		_tap_result 1 "needed to run: $m"
	done
	tap_done || exit 1
	exit 0
}

# nginx_conf_head DIR: DIR/nginx.conf begun, up to the inside of its http block, for the
# caller to go on with (cat >>): one process in the foreground, its pid, its logs (DIR/logs)
# and its temporary files (DIR/tmp) under DIR.
nginx_conf_head() {
	mkdir -p "$1/logs" "$1/tmp"
	cat >"$1/nginx.conf" <<EOF
# One process, in the foreground, everything under $1.
daemon off;
master_process off;
worker_processes 1;
pid $1/nginx.pid;
error_log $1/logs/error.log info;
events { worker_connections 1024; }
http {
    client_body_temp_path $1/tmp/body;
    proxy_temp_path $1/tmp/proxy;
    fastcgi_temp_path $1/tmp/fastcgi;
    uwsgi_temp_path $1/tmp/uwsgi;
    scgi_temp_path $1/tmp/scgi;
EOF
}

# suite_nginx_proxy PORT UPSTREAM_PORT: nginx in the gateway on $BED_GW_CLIENT4:PORT,
# proxying in plain text to mock-upstream on $BED_UP4:UPSTREAM_PORT (nginx's default: HTTP/1.0,
# a connection per request); one test that it listens.
suite_nginx_proxy() {
	local ngx=$BED_DIR/nginx
	nginx_conf_head "$ngx"
	cat >>"$ngx/nginx.conf" <<NGINX
    access_log off;
    server {
        listen $BED_GW_CLIENT4:$1;
        location / { proxy_pass http://$BED_UP4:$2; }
    }
}
NGINX
	bed_spawn bed_gw nginx -p "$ngx" -c "$ngx/nginx.conf"
	tap_ok "nginx proxies on $BED_GW_CLIENT4:$1" bed_wait_until 20 _suite_nginx_listens "$1"
}
_suite_nginx_listens() {
	bed_gw ss -Htln "sport = :$1" | grep -q .
}

# The WebSocket suites' server and client, tests/lib/ws_session.py, run by Debian's python3,
# which sees python3-websockets (a pyenv one in PATH would not).
WS_PY=/usr/bin/python3
WS_SESSION=$BED_REPO/tests/lib/ws_session.py

# suite_need_websockets: where python3-websockets is not there, what to install, appended to
# the caller's missing=() for suite_missing.
suite_need_websockets() {
	"$WS_PY" -c 'import websockets' 2>/dev/null ||
		missing+=("python3-websockets for $WS_PY (Debian package; tools/install-deps.sh)")
}

# suite_ws_server NS_FUNC HOST WHERE: the WebSocket echo server in NS_FUNC's namespace on
# HOST:$PORT, its output in BED_LAST_LOG; one test that it listens (WHERE: "in the upstream
# namespace", ...).
suite_ws_server() {
	local ready
	ready=$(mktemp -u "$BED_DIR/ws.ready.XXXXXX")
	bed_spawn "$1" "$WS_PY" "$WS_SESSION" serve "$2" "$PORT" "$ready"
	tap_ok "the WebSocket server listens $3" bed_wait_file "$ready" 20
}

# suite_need_tls_proxy: what suite_tls_cert and suite_nginx_start run, where missing, appended
# to the caller's missing=() for suite_missing.
suite_need_tls_proxy() {
	command -v nginx >/dev/null || missing+=("nginx (Debian package nginx; tools/install-deps.sh)")
	command -v openssl >/dev/null ||
		missing+=("openssl (Debian package openssl; tools/install-deps.sh)")
	command -v ss >/dev/null || missing+=("ss (Debian package iproute2)")
}

# suite_tls_cert DIR: a self-signed certificate for the gateway's client-facing addresses,
# DIR/gw.crt, and its key DIR/gw.key; one test.
suite_tls_cert() {
	tap_ok "openssl makes a self-signed certificate for $BED_GW_CLIENT4" \
		openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj "/CN=rlshape-gw.test" \
		-addext "subjectAltName=IP:$BED_GW_CLIENT4,IP:$BED_GW_CLIENT6" -keyout "$1/gw.key" \
		-out "$1/gw.crt"
}

# suite_nginx_start DIR PORT: nginx in the gateway from DIR/nginx.conf (nginx_conf_head and
# the caller's server blocks), checked first; one test each that it accepts the configuration
# and that it terminates TLS on $BED_GW_CLIENT4:PORT.
suite_nginx_start() {
	tap_ok "nginx accepts its configuration" bed_gw nginx -t -q -p "$1" -c "$1/nginx.conf"
	bed_spawn bed_gw nginx -p "$1" -c "$1/nginx.conf"
	tap_ok "nginx terminates TLS on $BED_GW_CLIENT4:$2" bed_wait_until 20 _suite_nginx_listens "$2"
}

# log_count ERE: lines of the upstream's log ($UP_LOG) that match.
log_count() {
	local n
	n=$(grep -cE -- "$1" "$UP_LOG" 2>/dev/null) || true
	echo "${n:-0}"
}

# snapshot_stats [DEV]: `rlshape stats --json` of DEV (default: the client-facing interface)
# once, as lines "ACCOUNT MODEL ADMITTED rps rpm rph rpd burst tokens concurrency" and
# "packets EVENT COUNT" in $BED_DIR/stats.txt (python starts slowly: once per snapshot, not
# per row). packets EVENT: that count from the snapshot.
snapshot_stats() {
	[[ -e $BED_DIR/stats_rows.py ]] || cat >"$BED_DIR/stats_rows.py" <<'PY'
import json, sys

doc = json.load(sys.stdin)
for r in doc["requests"]:
    rej = r["rejected"]
    print(r["account"], r["model"], r["admitted"],
          *(rej[k] for k in ("rps", "rpm", "rph", "rpd", "burst", "tokens", "concurrency")))
for k, v in doc["packets"].items():
    print("packets", k, v)
PY
	rls stats --dev "${1:-$BED_GW_DEV}" --json >"$BED_DIR/stats.json"
	python3 "$BED_DIR/stats_rows.py" <"$BED_DIR/stats.json" >"$BED_DIR/stats.txt"
}
packets() {
	awk -v e="$1" '$1 == "packets" && $2 == e { print $3 }' "$BED_DIR/stats.txt"
}

# token_day_used ACCOUNT: token_day_used of (ACCOUNT, "*") in the pinned rls_counters, the
# exact ledger of reservations and settlements; -1 while the account has no counter.
token_day_used() {
	[[ -e $BED_DIR/day_used.py ]] || cat >"$BED_DIR/day_used.py" <<'PY'
import json, subprocess, sys

pins, name = sys.argv[1:3]
def entries(m):
    cmd = ["bpftool", "-j", "map", "dump", "pinned", "%s/%s" % (pins, m)]
    return [e["formatted"] for e in json.loads(subprocess.check_output(cmd))]
acct = next((e["key"] for e in entries("rls_accounts") if e["value"]["name"] == name), None)
print(next((e["value"]["token_day_used"] for e in entries("rls_counters")
            if e["key"]["account"] == acct and e["key"]["model"] == 0), -1))
PY
	python3 "$BED_DIR/day_used.py" "$BED_PIN_DIR" "$1"
}
token_day_used_is() { # ACCOUNT WANT
	[[ $(token_day_used "$1") == "$2" ]]
}
