#!/usr/bin/env python3
"""A client that keeps asking until its window is spent: fleet_client.py ADDR PORT KEY MODEL.

Every answer costs TOKENS_PER_ANSWER tokens (mock-upstream's x-mock-tokens), so that a token
budget's admitted tokens are the admitted requests times it.

With RATE SECONDS after them, it sends RATE requests a second for SECONDS instead, whatever
the answers (a load for bench/fleet.sh), and never retries; it then also prints the median
and 99th percentile of the time from connecting to the whole answer, in ms (p50_ms, p99_ms).

Requests one at a time on new connections. A 429 whose retry-after-ms is at most WAIT_MAX_MS (a
lease being topped up, or the rpm smoothing) is waited out and retried; a longer one (the
fleet's budget of the window is spent), or MAX_SHORT_429 short ones in a row (a host on its
fallback share, which no top-up raises), ends the run, as does the deadline. Prints
"admitted=A refused=R errors=E trace=..." (errors: no HTTP answer at all; the trace, each
answer in order: "." a 200, "429/MS" a 429 and its retry-after-ms, "x" no answer).
"""
import http.client
import json
import sys
import time

MAX_SHORT_429 = 3
WAIT_MAX_MS = 10000
DEADLINE_S = 60
TOKENS_PER_ANSWER = (50, 50)

addr, port, key, model = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
rate = float(sys.argv[5]) if len(sys.argv) > 6 else 0
body = json.dumps({"model": model, "messages": [{"role": "user", "content": "hi"}]})
admitted = refused = errors = short = sent = 0
trace = []
times_ms = []
start = time.monotonic()
end = start + (float(sys.argv[6]) if rate else DEADLINE_S)
while time.monotonic() < end:
    if rate:
        # paced: the next request at its time, behind or not
        time.sleep(max(0, start + sent / rate - time.monotonic()))
        sent += 1
    t0 = time.monotonic()
    try:
        c = http.client.HTTPConnection(addr, port, timeout=5)
        c.request("POST", "/v1/chat/completions", body,
                  {"authorization": "Bearer " + key, "content-type": "application/json",
                   "connection": "close", "x-mock-tokens": "%d,%d" % TOKENS_PER_ANSWER})
        r = c.getresponse()
        r.read()
        # A 429 in a small frame is bare: retry-after (seconds) without retry-after-ms.
        status = r.status
        wait_ms = int(r.getheader("retry-after-ms") or 1000 * int(r.getheader("retry-after") or "0"))
        c.close()
        times_ms.append((time.monotonic() - t0) * 1000)
    except (OSError, http.client.HTTPException):
        errors += 1
        trace.append("x")
        time.sleep(0.1)
        continue
    trace.append("." if status == 200 else "%d/%d" % (status, wait_ms))
    if status == 200:
        admitted += 1
        short = 0
        continue
    refused += 1
    if rate:
        continue
    if status != 429 or wait_ms > WAIT_MAX_MS:
        break
    short += 1
    if short >= MAX_SHORT_429:
        break
    # The client honours retry-after, as the SDKs do.
    time.sleep(wait_ms / 1000)

def percentile(values, q):
    """The value below which a fraction q of the sorted values fall (nearest rank)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


if rate:
    trace = ["(paced)"]
print("admitted=%d refused=%d errors=%d trace=%s" % (admitted, refused, errors, " ".join(trace)),
      end="")
if rate:
    print(" p50_ms=%.2f p99_ms=%.2f" % (percentile(times_ms, 0.5), percentile(times_ms, 0.99)),
          end="")
print()
