#!/usr/bin/env python3
"""A client that keeps asking until its window is spent: fleet_client.py ADDR PORT KEY MODEL.

Requests one at a time on new connections. A 429 whose retry-after-ms is at most WAIT_MAX_MS (a
lease being topped up, or the rpm smoothing) is waited out and retried; a longer one (the
fleet's budget of the window is spent), or MAX_SHORT_429 short ones in a row (a host on its
fallback share, which no top-up raises), ends the run, as does the deadline. Prints
"admitted=A refused=R errors=E" (errors: no HTTP answer at all).
"""
import http.client
import json
import sys
import time

MAX_SHORT_429 = 3
WAIT_MAX_MS = 10000
DEADLINE_S = 60

addr, port, key, model = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
body = json.dumps({"model": model, "messages": [{"role": "user", "content": "hi"}]})
admitted = refused = errors = short = 0
end = time.monotonic() + DEADLINE_S
while time.monotonic() < end:
    try:
        c = http.client.HTTPConnection(addr, port, timeout=5)
        c.request("POST", "/v1/chat/completions", body,
                  {"authorization": "Bearer " + key, "content-type": "application/json",
                   "connection": "close"})
        r = c.getresponse()
        r.read()
        status, wait_ms = r.status, int(r.getheader("retry-after-ms") or "0")
        c.close()
    except (OSError, http.client.HTTPException):
        errors += 1
        time.sleep(0.1)
        continue
    if status == 200:
        admitted += 1
        short = 0
        continue
    refused += 1
    if status != 429 or wait_ms > WAIT_MAX_MS:
        break
    short += 1
    if short >= MAX_SHORT_429:
        break
    # The client honours retry-after, as the SDKs do.
    time.sleep(wait_ms / 1000)
print("admitted=%d refused=%d errors=%d" % (admitted, refused, errors))
