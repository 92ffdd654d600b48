#!/usr/bin/env python3
"""A real HTTP client for the namespace tests: short connections (`Connection: close`, a new
TCP connection per request) from several source addresses at a steady rate, as wrk or a
browser fleet would make them. Prints one JSON summary line.

usage: http_close_load.py URL RATE SECONDS SRC_ADDR [SRC_ADDR ...]

Each source address gets its own thread and RATE/len(addrs) requests a second, on schedule
(late requests are sent at once, not dropped). A request that fails (refused, reset, timed
out after 5 s, a bad status) counts as failed; one that takes 1 s or more (a SYN the real
server ignored and the client sent again, as a PAWS rejection in TIME_WAIT does) as slow.
"""
import http.client
import json
import sys
import threading
import time
import urllib.parse


def worker(url, per_s, seconds, src, out, lock):
    u = urllib.parse.urlsplit(url)
    start = time.monotonic()
    n = int(per_s * seconds)
    mine = {"ok": 0, "failed": 0, "slow": 0, "max_ms": 0.0, "names": {}, "errors": []}
    for i in range(n):
        due = start + i / per_s
        now = time.monotonic()
        if due > now:
            time.sleep(due - now)
        t0 = time.monotonic()
        try:
            c = http.client.HTTPConnection(u.hostname, u.port or 80, timeout=5, source_address=(src, 0))
            c.request("GET", u.path or "/", headers={"Connection": "close"})
            r = c.getresponse()
            body = r.read().decode(errors="replace").strip()
            c.close()
            if r.status != 200:
                raise RuntimeError(f"status {r.status}")
            mine["ok"] += 1
            mine["names"][body] = mine["names"].get(body, 0) + 1
        except Exception as e:  # every failure is counted, and a few are shown
            mine["failed"] += 1
            if len(mine["errors"]) < 5:
                mine["errors"].append(f"{src}: {e!r}")
        ms = (time.monotonic() - t0) * 1000
        mine["max_ms"] = max(mine["max_ms"], ms)
        if ms >= 1000:
            mine["slow"] += 1
    with lock:
        out["ok"] += mine["ok"]
        out["failed"] += mine["failed"]
        out["slow"] += mine["slow"]
        out["max_ms"] = max(out["max_ms"], round(mine["max_ms"], 1))
        for k, v in mine["names"].items():
            out["names"][k] = out["names"].get(k, 0) + v
        out["errors"] += mine["errors"]


def main():
    if len(sys.argv) < 5:
        sys.exit(__doc__)
    url, rate, seconds, addrs = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), sys.argv[4:]
    out = {"ok": 0, "failed": 0, "slow": 0, "max_ms": 0.0, "names": {}, "errors": []}
    lock = threading.Lock()
    threads = [
        threading.Thread(target=worker, args=(url, rate / len(addrs), seconds, a, out, lock)) for a in addrs
    ]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    out["seconds"] = round(time.monotonic() - t0, 1)
    out["sent"] = out["ok"] + out["failed"]
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
