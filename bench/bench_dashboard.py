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

Targets: overview first render ≤ 2 s cold and ≤ 1 s for a new browser on a running server; the
10 000-rack facility page ≤ 1.5 s for a new browser on a running server (its first page); callback
p95 ≤ 200 ms (every callback but a facility page's first visit, which computes its figures).
Also the server's CPU time to serve ``plotly.min.js`` (brotli) to a new browser, compressed once and
kept (``dashboard/static_files.py``) against compressed on every request (flask-compress without the
cache, as before), same run: ≤ 0.1×.
Prints the figures and one ``RESULT`` line per target.

    python bench/bench_dashboard.py [--data-out bench/out/reports] [--live-seconds 30]
    python bench/bench_dashboard.py --smoke     # 4 facilities in a temporary folder, 2 s live, seconds
"""
from __future__ import annotations

import argparse
import atexit
import json
import shutil
import socket
import statistics
import sys
import tempfile
import os
import time
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine_load, require, result  # noqa: E402
from bench_reports import FULL, SMOKE, ensure_data  # noqa: E402

PERIOD = "2026Q3"
TARGETS_S = {"overview cold": 2.0, "overview served": 1.0, "facility 10k served": 1.5}
CALLBACK_P95_S = 0.2
RENDER_LIMIT_S = float(os.environ.get("DCMON_BENCH_RENDER_LIMIT_S", "300"))
STATIC_CPU_RATIO = 0.1


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-out", default="bench/out/reports")
    ap.add_argument("--live-seconds", type=float, default=30)
    ap.add_argument("--smoke", action="store_true", help="tiny data in a temporary folder, 2 s live (seconds)")
    a = ap.parse_args(argv)
    require("/usr/bin/chromium", "/usr/bin/chromedriver")
    if a.smoke:
        tmp = Path(tempfile.mkdtemp(prefix="bench-dashboard-"))
        try:
            ensure_data(tmp, SMOKE)
            return bench(tmp, 2.0)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    out = Path(a.data_out)
    ensure_data(out, FULL)
    return bench(out, a.live_seconds)


def dashboard_app(out: Path):
    """The app as `dcmon dashboard` wires it: registry and store of the generated folders."""
    from dcmon.dashboard.app import create_app
    from dcmon.registry import load_registry
    from dcmon.store import open_store
    return create_app(load_registry(out / "config"), open_store(out / "data"))


def bench(out: Path, live_seconds: float) -> None:
    import logging
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request
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
        profile = tempfile.mkdtemp(prefix="bench-chrome-")
        atexit.register(shutil.rmtree, profile, True)
        for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    "--window-size=1400,1000", f"--user-data-dir={profile}"):
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
        while time.perf_counter() - t0 < RENDER_LIMIT_S:
            ms = drv.execute_script(ready)
            if ms is not None:
                return ms / 1000
            time.sleep(0.02)
        body = drv.execute_script("return document.body ? document.body.innerText : ''") or ""
        raise SystemExit(f"{url}: not rendered in 300 s; the page shows: {body[:1500]!r}")

    def callback_times(drv) -> list[float]:
        return drv.execute_script(
            "return performance.getEntriesByType('resource').filter(e => e.name.includes('_dash-update-component'))"
            ".map(e => e.duration)")

    ov = (f"/?period={PERIOD}", overview_ready)
    fac = (f"/facility/hyper-10k?period={PERIOD}", facility_ready)
    results = {}
    lat = {"overview": [], "facility, first visit (computes)": [], "facility, cached": [], "facility live (2 s ticks)": []}

    print(f"machine: {machine_load()}", flush=True)
    static_serving(out)
    # cold: a fresh server, nothing computed
    app = dashboard_app(out)
    srv, base = serve(app)
    drv = browser()
    try:
        results["overview cold"] = render(drv, base, *ov)
        results["facility 10k cold"] = render(drv, base, *fac)
    finally:
        drv.quit()
        srv.shutdown()

    # served: what `dcmon dashboard` does (pre-warm the period at start), then a new browser per page
    app = dashboard_app(out)
    ld = app.server.config["DCMON_LOADER"]
    t0 = time.perf_counter()
    ld.warm(quarter(PERIOD), sorted(ld.registry.facilities)).join()
    warm_s = time.perf_counter() - t0
    srv, base = serve(app)
    try:
        drv = browser()
        try:
            results["overview served"] = render(drv, base, *ov)
            lat["overview"] += callback_times(drv)
            results["overview warm"] = render(drv, base, *ov)
            lat["overview"] += callback_times(drv)
        finally:
            drv.quit()
        drv = browser()
        try:
            results["facility 10k served"] = render(drv, base, *fac)
            lat["facility, first visit (computes)"] += callback_times(drv)
            results["facility 10k warm"] = render(drv, base, *fac)
            lat["facility, cached"] += callback_times(drv)
            facility.LIVE_MS = 2000  # the live part every 2 s instead of every 10 s: more samples
            render(drv, base, *fac)
            seen = len(callback_times(drv))
            time.sleep(live_seconds)
            lat["facility live (2 s ticks)"] += callback_times(drv)[seen:]
        finally:
            drv.quit()
    finally:
        srv.shutdown()

    print(f"machine: {machine_load()}")
    print(f"pre-warm of {PERIOD} for {len(ld.registry.facilities)} facilities (overview, then every facility page): "
          f"{warm_s:.1f} s (in the background)")
    for k, v in results.items():
        print(f"first render, {k:20s}: {v:6.2f} s")
    cached = [x for k, v in lat.items() if "first visit" not in k for x in v]
    stats = {}
    for k, v in [*lat.items(), ("all but first visits", cached)]:
        v = sorted(x / 1000 for x in v)
        if not v:
            continue
        p50, p95 = statistics.median(v), v[int(0.95 * (len(v) - 1))]
        stats[k] = {"n": len(v), "p50_ms": p50 * 1000, "p95_ms": p95 * 1000}
        print(f"callbacks in Chromium, {k:34s}: n={len(v):3d} p50 {p50 * 1000:5.0f} ms, p95 {p95 * 1000:5.0f} ms")
    print(json.dumps({"render_s": results, "prewarm_s": warm_s, "callbacks": stats}))
    n = len(ld.registry.facilities)
    for k, limit in TARGETS_S.items():
        who = "a new browser on a running server" if "served" in k else "a server that has computed nothing"
        result(f"dashboard/{k.replace('10k', 'hyper-10k')}, {n} facilities",
               f"first render {results[k]:.2f} s for {who} vs target {limit:g} s", results[k] / limit, 1.0)
    if "all but first visits" in stats:
        p95 = stats["all but first visits"]["p95_ms"] / 1000
        result("dashboard/callbacks p95", f"{p95 * 1000:.0f} ms over {stats['all but first visits']['n']} callbacks "
               f"vs target {CALLBACK_P95_S * 1000:.0f} ms", p95 / CALLBACK_P95_S, 1.0)


def static_serving(out: Path, n: int = 5) -> None:
    """Server CPU time [s] per request of plotly.min.js (brotli), kept compressed vs compressed each time."""
    from dcmon.dashboard import app as app_module, static_files

    def per_request_cpu_s(app) -> float:
        c = app.server.test_client()
        get = lambda: c.get(static_files.PLOTLY_PATH, headers={"Accept-Encoding": "br, gzip"})  # noqa: E731
        first = get()   # the first request compresses in both cases
        assert first.status_code == 200 and first.headers["Content-Encoding"] == "br", first.status_code
        t0 = time.process_time()
        for _ in range(n):
            assert get().data == first.data
        return (time.process_time() - t0) / n

    kept = per_request_cpu_s(dashboard_app(out))
    configure = static_files.configure_compression
    app_module.static_files.configure_compression = lambda server: None   # as before: no cache
    try:
        each = per_request_cpu_s(dashboard_app(out))
    finally:
        app_module.static_files.configure_compression = configure
    result("dashboard/plotly.min.js served (brotli)", f"server CPU {kept * 1000:.1f} ms a request compressed once "
           f"vs {each * 1000:.1f} ms compressed every time (mean of {n})", kept / each, STATIC_CPU_RATIO)


if __name__ == "__main__":
    main()
