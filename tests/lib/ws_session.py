#!/usr/bin/python3
"""WebSocket sessions for tests/e2e/18_websocket.sh and 19_websocket_tls.sh, with Debian's
python3-websockets.

  ws_session.py serve HOST PORT READY_FILE
      An echo server: each text message comes back as it was. Logs one line per session
      ("session PATH AUTHORIZATION") and per message ("message TEXT") on stdout, and writes
      READY_FILE once it listens. A session whose path names a model (the OpenAI SDK's
      Realtime client: /v1/realtime?model=M) is answered as the Realtime API would, as far
      as the SDK's test needs: "session.created" at once, "session.updated" to each
      "session.update".

  ws_session.py client URL KEY
      The suite's sessions, with "Authorization: Bearer KEY", one line each on stdout:
        A echoes=N          session A: three messages, the echoes that came back
        B status=S          session B, opened while A is open: the HTTP status it got
                            (101 when it opened)
        C echoes=N tries=T  after A closed: a new session, opened again while it gets 429
                            (the slot comes back when rlshape sees A's FIN), one message
      Every wait has a deadline; nothing sleeps in place of one.

  ws_session.py once URL KEY
      One session, one message: "echoes=1"; "reset" where a TCP reset ended the connection
      before any echo came ("closed" where it ended otherwise); "no echo" where nothing came
      within ONCE_WAIT_S (the connection is then
      dropped, not closed: a connection reset unseen would keep a close waiting); "status=S"
      where it did not open.

  For a wss:// URL, the server's certificate is checked against the file WS_CAFILE names.
"""
import asyncio
import json
import os
import ssl
import sys
import time

import websockets
from websockets.exceptions import ConnectionClosed, InvalidStatusCode

TIMEOUT_S = 10
C_DEADLINE_S = 10
ONCE_WAIT_S = 3


async def echo(ws, path=None):
    path = path if path is not None else getattr(ws, "path", "?")
    auth = ws.request_headers.get("Authorization", "-")
    print("session", path, auth, flush=True)
    realtime = "model=" in path
    if realtime:
        await ws.send(json.dumps({"type": "session.created", "event_id": "event_1",
                                  "session": {"id": "sess_1", "object": "realtime.session"}}))
    async for message in ws:
        print("message", message, flush=True)
        if not realtime:
            await ws.send(message)
        elif json.loads(message).get("type") == "session.update":
            await ws.send(json.dumps({"type": "session.updated", "event_id": "event_2",
                                      "session": {"id": "sess_1"}}))


async def serve(host, port, ready):
    async with websockets.serve(echo, host, int(port)):
        with open(ready, "w") as f:
            f.write("ready\n")
        await asyncio.Future()


def opener(url, key):
    tls = ssl.create_default_context(cafile=os.environ["WS_CAFILE"]) \
        if url.startswith("wss:") else None
    return websockets.connect(url, extra_headers={"Authorization": "Bearer " + key}, ssl=tls,
                              open_timeout=TIMEOUT_S, close_timeout=TIMEOUT_S)


async def echoes(ws, messages):
    n = 0
    for m in messages:
        await ws.send(m)
        if await asyncio.wait_for(ws.recv(), TIMEOUT_S) == m:
            n += 1
    return n


async def client(url, key):
    a = await opener(url, key)
    print("A echoes=%d" % await echoes(a, ["one", "two", "three"]), flush=True)
    try:
        b = await opener(url, key)
        print("B status=101", flush=True)
        await b.close()
    except InvalidStatusCode as e:
        print("B status=%d" % e.status_code, flush=True)
    await a.close()
    tries, deadline = 0, time.monotonic() + C_DEADLINE_S
    while True:
        tries += 1
        try:
            c = await opener(url, key)
            break
        except InvalidStatusCode as e:
            if e.status_code != 429 or time.monotonic() > deadline:
                print("C status=%d tries=%d" % (e.status_code, tries), flush=True)
                return
    print("C echoes=%d tries=%d" % (await echoes(c, ["four"]), tries), flush=True)
    await c.close()


async def once(url, key):
    try:
        ws = await opener(url, key)
    except InvalidStatusCode as e:
        print("status=%d" % e.status_code)
        return
    await ws.send("hello")
    try:
        got = await asyncio.wait_for(ws.recv(), ONCE_WAIT_S)
        print("echoes=%d" % (got == "hello"))
        await ws.close()
    except ConnectionClosed as e:
        # A TCP reset reaches recv() as the closing's cause (websockets' legacy protocol).
        cause = e.__cause__ or getattr(ws, "transfer_data_exc", None)
        print("reset" if isinstance(cause, ConnectionResetError) else "closed")
    except asyncio.TimeoutError:
        print("no echo")
        ws.transport.abort()


def main():
    if len(sys.argv) == 5 and sys.argv[1] == "serve":
        asyncio.run(serve(*sys.argv[2:]))
    elif len(sys.argv) == 4 and sys.argv[1] in ("client", "once"):
        asyncio.run((client if sys.argv[1] == "client" else once)(*sys.argv[2:]))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
