"""Times the dashboard in headless Chromium (chromedriver, W3C WebDriver):
from navigation to the rollout's steps and chart drawn, three times, and one
re-render of the page's state. Used by scripts/measure-dashboard."""
import json, subprocess, time, urllib.request, sys, socket
port = 9515
drv = subprocess.Popen(["/usr/bin/chromedriver", f"--port={port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
def call(method, path, body=None):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method,
        data=None if body is None else json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    return json.load(urllib.request.urlopen(req))
for _ in range(100):
    try: socket.create_connection(("127.0.0.1", port)).close(); break
    except OSError: time.sleep(0.1)
s = call("POST", "/session", {"capabilities": {"alwaysMatch": {"goog:chromeOptions": {"binary": "/usr/bin/chromium", "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1300,900"]}}}})
sid = s["value"]["sessionId"]
def js(script): return call("POST", f"/session/{sid}/execute/sync", {"script": script, "args": []})["value"]
try:
    for run in range(3):
        t0 = time.time()
        call("POST", f"/session/{sid}/url", {"url": sys.argv[1]})
        while not js("return !!document.querySelector('.steps .step') && window.bellwether.charts.size > 0"):
            time.sleep(0.02)
        shown = time.time() - t0
        nav = js("const n = performance.getEntriesByType('navigation')[0]; return [n.domContentLoadedEventEnd, n.loadEventEnd, n.transferSize];")
        print(f"run {run}: rollout shown {shown*1000:.0f} ms after navigation; DOMContentLoaded {nav[0]:.0f} ms, load {nav[1]:.0f} ms")
    t = js("const s = performance.now(); for (let i = 0; i < 20; i++) render(JSON.parse(JSON.stringify({fleet_size: 10000, fleet_time: null, vms_scored: 10000, forecaster: 'x', rollouts: Array.from(store.values())}))); return (performance.now() - s) / 20;")
    print(f"one render of the page's state: {t:.1f} ms")
finally:
    call("DELETE", f"/session/{sid}")
    drv.kill()
