#!/usr/bin/env bash
# mock-upstream's request reader (tools/http_conn.h, the one the test tools share) on loopback:
# bodies by content-length and chunked (CRLF or bare LF, trailers, split across many reads,
# larger than its buffer), pipelined and 100-continue requests, and each malformed request
# answered with its own status and reason. What the server logged (bytes=N) is the body it
# read. No root needed, no namespaces: the server and the client are on 127.0.0.1.
set -euo pipefail

# shellcheck source=tests/lib/suite.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/suite.sh" # the TAP helpers and programs only
suite_programs 05_mock_requests

TMP=$(mktemp -d)
mock_pid=""
cleanup() {
	[[ -z $mock_pid ]] || kill "$mock_pid" 2>/dev/null || true
	[[ -z $mock_pid ]] || wait "$mock_pid" 2>/dev/null || true
	rm -rf "$TMP"
}
trap cleanup EXIT

"$MOCK" --listen 127.0.0.1:0 --log "$TMP/requests.log" --ready-file "$TMP/ready" \
	</dev/null >"$TMP/mock.out" 2>&1 &
mock_pid=$!
tap_ok "mock-upstream is listening" bed_wait_file "$TMP/ready" 20
port=$(sed -n '1s/.*://p' "$TMP/ready")

# One connection a case: send, half-close, read to the end. Prints "NAME STATUS... REASON...".
cat >"$TMP/client.py" <<'PY'
import re, socket, sys

port = int(sys.argv[1])
head = b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer k1\r\n"
body = b'{"model":"m1","messages":[]}'
big = b'{"model":"m1","pad":"' + b"a" * 3000000 + b'"}'

def cl(b):
    return head + b"content-length: %d\r\n\r\n" % len(b) + b

def chunked(rest):
    return head + b"transfer-encoding: chunked\r\n\r\n" + rest

cases = [
    ("content-length", cl(body)),
    ("chunked", chunked(b"5\r\n" + body[:5] + b"\r\n%x\r\n" % (len(body) - 5) + body[5:]
                        + b"\r\n0\r\n\r\n")),
    ("chunked-bare-lf", chunked(b"5\n" + body[:5] + b"\n%x\n" % (len(body) - 5) + body[5:]
                                + b"\n0\n\n")),
    ("chunked-trailer", chunked(b"%x\r\n" % len(body) + body + b"\r\n0\r\nx-t: 1\r\n\r\n")),
    ("big-content-length", cl(big)),
    ("big-chunked", chunked(b"%x\r\n" % len(big) + big + b"\r\n0\r\n\r\n")),
    ("pipelined", cl(body) * 3),
    ("leading-crlf", b"\r\n\r\n" + cl(body)),
    # The head alone first: the body follows once the server has said 100 Continue.
    ("expect-continue", (head + b"expect: 100-continue\r\ncontent-length: %d\r\n\r\n"
                         % len(body), body)),
    ("bad-chunk-size", chunked(b"zz\r\n")),
    ("chunk-without-crlf", chunked(b"5\r\n" + body[:5] + b"XX\r\n0\r\n\r\n")),
    ("cut-in-chunk", chunked(b"50\r\n" + body[:5])),
    ("cut-before-chunk", chunked(b"")),
    ("cut-in-trailer", chunked(b"5\r\n" + body[:5] + b"\r\n0\r\n")),
    ("chunk-over-64MiB", chunked(b"4000001\r\n" + body)),
    ("short-content-length", head + b"content-length: 100\r\n\r\n" + body),
    ("head-over-64KiB", head + b"x-pad: " + b"a" * 70000 + b"\r\n\r\n"),
    ("length-and-chunked", head + b"content-length: 5\r\ntransfer-encoding: chunked\r\n\r\n"),
]
for name, data in cases:
    s = socket.create_connection(("127.0.0.1", port), timeout=20)
    got = b""
    if isinstance(data, tuple):
        s.sendall(data[0])
        while b"\r\n\r\n" not in got:
            got += s.recv(65536) or sys.exit("%s: closed before 100 Continue" % name)
        data = data[1]
    s.sendall(data)
    s.shutdown(socket.SHUT_WR)
    while True:
        b = s.recv(65536)
        if not b:
            break
        got += b
    s.close()
    statuses = [m.decode() for m in re.findall(rb"HTTP/1.1 (\d+)", got)]
    reasons = [m.decode() for m in re.findall(rb'"message":"([^"]*)"', got)]
    print(name, " ".join(statuses + reasons))
PY
python3 "$TMP/client.py" "$port" >"$TMP/answers" 2>"$TMP/client.err" ||
	tap_diag "client: $(cat "$TMP/client.err")"

declare -A WANT=(
	[content-length]="200"
	[chunked]="200"
	[chunked-bare-lf]="200"
	[chunked-trailer]="200"
	[big-content-length]="200"
	[big-chunked]="200"
	[pipelined]="200 200 200"
	[leading-crlf]="200"
	[expect-continue]="100 200"
	[bad-chunk-size]="400 bad chunk size line"
	[chunk-without-crlf]="400 chunk data not followed by CRLF"
	[cut-in-chunk]="400 truncated chunk"
	[cut-before-chunk]="400 truncated chunked body"
	[cut-in-trailer]="400 truncated chunked trailer"
	[chunk-over-64MiB]="413 body too large"
	[short-content-length]="400 body shorter than content-length"
	[head-over-64KiB]="431 request header block too large"
	[length-and-chunked]="400 both content-length and transfer-encoding"
)
for name in content-length chunked chunked-bare-lf chunked-trailer big-content-length \
	big-chunked pipelined leading-crlf expect-continue bad-chunk-size chunk-without-crlf \
	cut-in-chunk cut-before-chunk cut-in-trailer chunk-over-64MiB short-content-length \
	head-over-64KiB length-and-chunked; do
	got=$(awk -v n="$name" '$1 == n { $1 = ""; sub(/^ /, ""); print }' "$TMP/answers")
	tap_is "$got" "${WANT[$name]}" "$name: ${WANT[$name]}"
done

# Every complete request is logged with the size of the body the server read: 28 bytes for
# the small body (9 requests: 3 pipelined), the big one twice; none for a malformed request.
tap_is "$(grep -c ' bytes=28$' "$TMP/requests.log")" 9 "9 small bodies logged as 28 bytes"
tap_is "$(grep -c ' bytes=3000023$' "$TMP/requests.log")" 2 "both big bodies logged whole"
tap_is "$(wc -l <"$TMP/requests.log")" 11 "nothing else logged"
tap_done
