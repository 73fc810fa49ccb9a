#!/usr/bin/env python3
"""Hostile load on a running bellwether server, as benches/README reports it.

Usage: benches/hostile_http.py URL PID
  URL  the server (e.g. http://127.0.0.1:9464/), PID its process (for RSS).

1. 400 silent connections (and 100 sending half a request head), all from
   127.0.0.2 (loopback too): how many were answered 503 at once, how long the
   others were held, and whether the dashboard's snapshot was still answered
   meanwhile to a client at 127.0.0.1.
2. 50 concurrent heavy /api/sql queries (a self-join of samples): answers by
   status, the slowest answer, and the process's peak RSS.
Standard library only.
"""
import concurrent.futures
import json
import socket
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

url, pid = sys.argv[1].rstrip("/") + "/", int(sys.argv[2])
host, port = urllib.parse.urlparse(url).hostname, urllib.parse.urlparse(url).port


def rss_mb():
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


peak = [rss_mb()]
stop = threading.Event()


def watch():
    while not stop.is_set():
        peak[0] = max(peak[0], rss_mb())
        time.sleep(0.05)


threading.Thread(target=watch, daemon=True).start()


def snapshot_ok():
    try:
        with urllib.request.urlopen(url + "api/snapshot", timeout=5) as r:
            return r.status == 200
    except Exception:
        return False


# 1. Silent and half-sent connections.
opened = time.time()
socks = []
for i in range(500):
    s = socket.create_connection((host, port), source_address=("127.0.0.2", 0))
    if i >= 400:
        s.sendall(b"GET / HTTP/1.1\r\nhost: loc")
    socks.append(s)
time.sleep(0.5)
served_meanwhile = snapshot_ok()
refused, closed_after = 0, []


def wait_closed(s):
    s.settimeout(120)
    data = b""
    try:
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    except OSError:
        pass
    return data, time.time() - opened


with concurrent.futures.ThreadPoolExecutor(max_workers=500) as pool:
    for data, after in pool.map(wait_closed, socks):
        if data.startswith(b"HTTP/1.1 503"):
            refused += 1
        else:
            closed_after.append(after)
for s in socks:
    s.close()
print(json.dumps({
    "connections": 500,
    "answered_503_at_once": refused,
    "held_then_closed": len(closed_after),
    "longest_held_s": round(max(closed_after, default=0), 1),
    "snapshot_answered_meanwhile": served_meanwhile,
    "snapshot_answered_after": snapshot_ok(),
}))

# 2. Heavy queries.
query = "SELECT count(*) FROM samples a JOIN samples b ON a.metric = b.metric"


def heavy(_):
    start = time.time()
    request = urllib.request.Request(
        url + "api/sql", data=query.encode(), headers={"Content-Type": "application/sql"}
    )
    try:
        with urllib.request.urlopen(request, timeout=300) as r:
            status = r.status
    except urllib.error.HTTPError as e:
        status = e.code
    except Exception:
        status = "error"
    return status, time.time() - start


base = rss_mb()
peak[0] = base
with concurrent.futures.ThreadPoolExecutor(max_workers=50) as pool:
    answers = list(pool.map(heavy, range(50)))
stop.set()
by_status = {}
for status, _ in answers:
    by_status[str(status)] = by_status.get(str(status), 0) + 1
print(json.dumps({
    "queries": 50,
    "by_status": by_status,
    "slowest_answer_s": round(max(t for _, t in answers), 1),
    "rss_before_mb": round(base),
    "rss_peak_mb": round(peak[0]),
    "snapshot_answered_after": snapshot_ok(),
}))
