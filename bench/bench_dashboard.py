"""Benchmark: dashboard first render and callback latency with 300 facilities and a 10 000-rack one.

Uses the data of ``bench_reports.py`` (300 sites with 15-minute meters for 2026Q3, and a
10 000-rack site with 1-minute meters for 2026). Serves the app on 127.0.0.1 and measures in
headless Chromium (Debian ``chromium``):

- first complete render of the overview (portfolio PUE shown, grid rows with badges drawn)
  and of the 10 000-rack facility page (period PUE, live PUE, floor map and trends drawn):
  **cold** (a fresh server, nothing computed: the visitor waits for the evaluation),
  **served** (a fresh browser against a server that pre-warmed the period, as
  ``dcmon dashboard`` does at start) and **warm** (the same again);
- callback latency p50 / p95 as the browser sees it (Resource Timing of every
  ``/_dash-update-component`` request): the overview's, the facility page's on a first visit
  (its figures computed then) and on a later one (cached), and the facility page left open
  with its live part refreshing every 2 s (five times the real rate, for more samples).

Targets: first render ≤ 2 s, callback p95 ≤ 300 ms. Prints the figures and ratios to target.

    python bench/bench_dashboard.py [--data-out bench/out/reports] [--live-seconds 30]
"""
from __future__ import annotations

import argparse
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

PERIOD = "2026Q3"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-out", default="bench/out/reports")
    ap.add_argument("--live-seconds", type=float, default=30)
    a = ap.parse_args(argv)
    out = Path(a.data_out)
    if not (out / "generated.json").exists():
        subprocess.run([sys.executable, str(Path(__file__).with_name("bench_reports.py")), "--generate-only",
                        "--out", str(out)], check=True)
    from dcmon.dashboard.app import create_app
    from dcmon.dashboard.pages import facility
    from dcmon.dashboard.server import start
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    from dcmon.periods import quarter

    def serve(app):   # the production server `dcmon dashboard` uses
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        return SimpleNamespace(shutdown=start(app, "127.0.0.1", port)), f"http://127.0.0.1:{port}"

    def browser():
        opts = webdriver.ChromeOptions()
        opts.binary_location = "/usr/bin/chromium"
        for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    "--window-size=1400,1000", f"--user-data-dir={tempfile.mkdtemp()}"):
            opts.add_argument(arg)
        return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)

    # Readiness is checked inside the page, in one script per poll, and the time reported is the
    # page's own clock (navigation start to the poll that saw the page complete), so WebDriver
    # round trips do not count. Polls are 20 ms apart.
    overview_ready = """
        const t = s => (document.querySelector(s) || {}).textContent || '';
        const grid = t('#overview-grid');
        return t('#portfolio-pue') !== '' && t('#portfolio-pue') !== '—' && grid.includes('hyper-10k')
            && (grid.includes('✔') || grid.includes('✘')) ? performance.now() : null;"""
    facility_ready = """
        const t = s => (document.querySelector(s) || {}).textContent || '';
        const drawn = ['floor-map', 'trend-day', 'trend-month'].every(g => document.querySelector('#' + g + ' .main-svg'));
        return drawn && document.querySelector('#floor-map .colorbar') && t('#period-pue') !== '' && t('#period-pue') !== '—'
            && t('#live-pue') !== '' ? performance.now() : null;"""

    def render(drv, base, url, ready):
        t0 = time.perf_counter()
        drv.get(base + url)
        while time.perf_counter() - t0 < 300:
            ms = drv.execute_script(ready)
            if ms is not None:
                return ms / 1000
            time.sleep(0.02)
        raise SystemExit(f"{url}: not rendered in 300 s")

    def callback_times(drv) -> list[float]:
        return drv.execute_script(
            "return performance.getEntriesByType('resource').filter(e => e.name.includes('_dash-update-component'))"
            ".map(e => e.duration)")

    ov = (f"/?period={PERIOD}", overview_ready)
    fac = (f"/facility/hyper-10k?period={PERIOD}", facility_ready)
    results = {}
    lat = {"overview": [], "facility, first visit (computes)": [], "facility, cached": [], "facility live (2 s ticks)": []}

    # cold: a fresh server, nothing computed
    app = create_app(out / "config", out / "data")
    srv, base = serve(app)
    drv = browser()
    try:
        results["overview cold"] = render(drv, base, *ov)
        results["facility 10k cold"] = render(drv, base, *fac)
    finally:
        drv.quit()
        srv.shutdown()

    # served: what `dcmon dashboard` does (pre-warm the period at start), then a fresh browser
    app = create_app(out / "config", out / "data")
    ld = app.server.config["DCMON_LOADER"]
    t0 = time.perf_counter()
    ld.warm(quarter(PERIOD), sorted(ld.registry.facilities)).join()
    warm_s = time.perf_counter() - t0
    srv, base = serve(app)
    drv = browser()
    try:
        results["overview served"] = render(drv, base, *ov)
        lat["overview"] += callback_times(drv)
        results["overview warm"] = render(drv, base, *ov)
        lat["overview"] += callback_times(drv)
        results["facility 10k served"] = render(drv, base, *fac)
        lat["facility, first visit (computes)"] += callback_times(drv)
        results["facility 10k warm"] = render(drv, base, *fac)
        lat["facility, cached"] += callback_times(drv)
        facility.LIVE_MS = 2000  # the live part every 2 s instead of every 10 s: more samples
        render(drv, base, *fac)
        seen = len(callback_times(drv))
        time.sleep(a.live_seconds)
        lat["facility live (2 s ticks)"] += callback_times(drv)[seen:]
    finally:
        drv.quit()
        srv.shutdown()

    print(f"pre-warm of {PERIOD} for {len(ld.registry.facilities)} facilities (overview, then every facility page): "
          f"{warm_s:.1f} s (in the background)")
    for k, v in results.items():
        print(f"first render, {k:20s}: {v:6.2f} s (ratio to the 2 s target {v / 2:.2f})")
    cached = [x for k, v in lat.items() if "first visit" not in k for x in v]
    stats = {}
    for k, v in [*lat.items(), ("all but first visits", cached)]:
        v = sorted(x / 1000 for x in v)
        if not v:
            continue
        p50, p95 = statistics.median(v), v[int(0.95 * (len(v) - 1))]
        stats[k] = {"n": len(v), "p50_ms": p50 * 1000, "p95_ms": p95 * 1000}
        print(f"callbacks in Chromium, {k:34s}: n={len(v):3d} p50 {p50 * 1000:5.0f} ms, p95 {p95 * 1000:5.0f} ms "
              f"(ratio to the 300 ms target {p95 / 0.3:.2f})")
    print(json.dumps({"render_s": results, "prewarm_s": warm_s, "callbacks": stats}))


if __name__ == "__main__":
    main()
