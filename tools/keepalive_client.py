#!/usr/bin/env python3
"""One long-lived HTTP/1.1 connection: for every line read on stdin, GET /name on the same
connection and print the answer (or "error: ..." once the connection is gone)."""
import http.client
import sys

host, port = sys.argv[1], int(sys.argv[2])
conn = http.client.HTTPConnection(host, port, timeout=3)
for _ in sys.stdin:
    try:
        conn.request("GET", "/name")
        r = conn.getresponse()
        print(r.read().decode().strip(), flush=True)
    except Exception as e:  # the connection is gone: say so, never reconnect
        print(f"error: {e}", flush=True)
        conn = None
        break
