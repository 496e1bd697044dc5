#!/usr/bin/env python3
"""One keep-alive connection, several requests in turn, for tests/e2e/14_keepalive.sh.

keepalive_client.py HOST PORT KEY N: sends N POSTs one after another on one TCP connection;
after a 429 it waits what its retry-after-ms says (as an SDK does) before the next. Prints one
line per response, "STATUS CONNECTION-HEADER LOCAL-PORT", then "retransmits N" (the socket's
tcpi_total_retrans) and "closed clean|reset" after a graceful close. Exits 1 if the connection
breaks: the point is that it does not.
"""
import socket
import struct
import sys
import time

host, port, key, count = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
body = b'{"model":"gpt-small","messages":[{"role":"user","content":"hi"}]}'
request = (b"POST /v1/chat/completions HTTP/1.1\r\nHost: gateway\r\n"
           b"Authorization: Bearer " + key.encode() + b"\r\n"
           b"Content-Type: application/json\r\nContent-Length: " + str(len(body)).encode() +
           b"\r\n\r\n" + body)

sock = socket.create_connection((host, port), timeout=10)
buf = b""


def read_response():
    global buf
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise EOFError("the connection closed before a response")
        buf += chunk
    head, buf = buf.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    while len(buf) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise EOFError("the connection closed inside a response body")
        buf += chunk
    buf = buf[length:]
    return status, headers


local_port = sock.getsockname()[1]
for _ in range(count):
    sock.sendall(request)
    status, headers = read_response()
    print(status, headers.get("connection", "-"), local_port, flush=True)
    if status == 429:
        time.sleep(int(headers.get("retry-after-ms", "1000")) / 1000.0)
info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)
print("retransmits", struct.unpack_from("I", info, 100)[0], flush=True)
sock.shutdown(socket.SHUT_WR)
try:
    rest = sock.recv(65536)
    print("closed", "clean" if rest == b"" else "data", flush=True)
except ConnectionResetError:
    print("closed reset", flush=True)
sock.close()
