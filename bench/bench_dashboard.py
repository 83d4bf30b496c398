"""Benchmark: dashboard first render and callback latency with 300 facilities and a 10 000-rack one.

Uses the data of ``bench_reports.py`` (300 sites with 15-minute meters for 2026Q3, and a
10 000-rack site with 1-minute meters for 2026). Serves the app on 127.0.0.1 and measures in
headless Chromium the time to the first complete render of the overview (grid rows drawn)
and of the 10 000-rack facility page (floor map drawn), cold (empty cache) and warm; then
the router callback's latency p50 / p95 over 30 calls (language switches, cached period).
Targets: first render ≤ 2 s, callback p95 ≤ 300 ms. Prints the figures and ratios to target.

    python bench/bench_dashboard.py [--data-out bench/out/reports]
"""
from __future__ import annotations

import argparse
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-out", default="bench/out/reports")
    a = ap.parse_args(argv)
    out = Path(a.data_out)
    if not (out / "generated.json").exists():
        subprocess.run([sys.executable, str(Path(__file__).with_name("bench_reports.py")), "--generate-only",
                        "--out", str(out)], check=True)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from werkzeug.serving import make_server

    from dcmon.dashboard.app import create_app
    app = create_app(out / "config", out / "data")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    srv = make_server("127.0.0.1", port, app.server, threaded=True)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{port}"
    opts = webdriver.ChromeOptions()
    opts.binary_location = "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--window-size=1400,1000", f"--user-data-dir={tempfile.mkdtemp()}"):
        opts.add_argument(arg)
    drv = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)

    def render(url, css, ready):
        t0 = time.perf_counter()
        drv.get(base + url)
        while time.perf_counter() - t0 < 300:
            els = drv.find_elements(By.CSS_SELECTOR, css)
            if els and ready(els[0]):
                return time.perf_counter() - t0
            time.sleep(0.05)
        raise SystemExit(f"{url}: {css} not rendered in 300 s")

    grid = ("/?period=2026Q3", "#overview-grid", lambda e: "site-299" in e.text or "hyper-10k" in e.text)
    fac = ("/facility/hyper-10k?period=2026Q3", "#floor-map .main-svg", lambda e: True)
    results = {}
    try:
        results["overview cold"] = render(*grid)
        results["overview warm"] = render(*grid)
        results["facility 10k cold"] = render(*fac)
        results["facility 10k warm"] = render(*fac)
        c = app.server.test_client()
        lat = []
        for i in range(30):
            body = {"output": "..page.children...logout.children..",
                    "outputs": [{"id": "page", "property": "children"}, {"id": "logout", "property": "children"}],
                    "inputs": [{"id": "url", "property": "pathname", "value": "/"},
                               {"id": "url", "property": "search", "value": "?period=2026Q3"},
                               {"id": "period", "property": "value", "value": None},
                               {"id": "range", "property": "start_date", "value": None},
                               {"id": "range", "property": "end_date", "value": None},
                               {"id": "lang", "property": "value", "value": "en" if i % 2 else "zh"},
                               {"id": "tick", "property": "n_intervals", "value": i}],
                    "changedPropIds": ["lang.value"], "state": []}
            t0 = time.perf_counter()
            r = c.post("/_dash-update-component", json=body)
            lat.append(time.perf_counter() - t0)
            assert r.status_code == 200
        lat.sort()
        p50, p95 = statistics.median(lat), lat[int(0.95 * (len(lat) - 1))]
    finally:
        drv.quit()
        srv.shutdown()
    for k, v in results.items():
        print(f"first render, {k:18s}: {v:6.2f} s (ratio to the 2 s target {v / 2:.2f})")
    print(f"router callback (overview, 301 facilities, cached period): p50 {p50 * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms "
          f"(ratio to the 300 ms target {p95 / 0.3:.2f})")
    print(json.dumps({"render_s": results, "callback_p50_ms": p50 * 1000, "callback_p95_ms": p95 * 1000}))


if __name__ == "__main__":
    main()
