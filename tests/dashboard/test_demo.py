"""``dcmon demo`` as a new user meets it: history first, decided verdicts at once, live on top, the
printed commands work against the running demo, and a report made from --data DIR verifies after
the demo has stopped."""
import datetime as dt
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pyarrow.compute as pc
import pytest

from dcmon.collector.brokers import free_port

REPO = Path(__file__).resolve().parents[2]
SHOTS = REPO / "artifacts" / "screenshots"
DEMO_CONFIG = REPO / "fixtures" / "demo"
CHENGDU = "chengdu-2023-cloud-retrofit"
START_LIMIT_S = 240      # history, broker, collector and dashboard up (about 15 s on an idle machine)


def shot(drv, name):
    SHOTS.mkdir(parents=True, exist_ok=True)
    drv.save_screenshot(str(SHOTS / f"{name}.png"))


class Demo:
    def __init__(self, *args):
        env = dict(os.environ, PYTHONIOENCODING="utf-8")
        self.proc = subprocess.Popen([sys.executable, "-m", "dcmon.cli", "demo", *args], stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, env=env)
        self.lines: queue.Queue = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def wait_line(self, text, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=1)
            except queue.Empty:
                continue
            if line is None:
                break
            self.seen.append(line)
            if text in line:
                return line
        raise AssertionError(f"the demo never printed {text!r} within {timeout} s:\n{''.join(self.seen)}")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(60)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
        rest = []
        while True:
            try:
                line = self.lines.get(timeout=5)
            except queue.Empty:
                break
            if line is None:
                break
            rest.append(line)
        return "".join(self.seen + rest)


def _counter_energy_kwh(store, facility, role, start, end):
    """Σ over the facility's meters of a role: counter at the period end − counter at its start.
    Computed here from the stored readings, independently of metrics (the sample counters have no
    reset or rollover within the period)."""
    total = 0.0
    for m in facility.meters:
        if m.role != role:
            continue
        t = store.read(facility.id, "meter", start, end + dt.timedelta(seconds=1), sources=[m.id],
                       columns=["ts", "energy_kwh"])
        ts = pc.cast(t.column("ts"), "int64").to_pylist()
        e = t.column("energy_kwh").to_pylist()
        by_ts = dict(zip(ts, e))
        total += by_ts[end.value // 10**6] - by_ts[start.value // 10**6]
    return total


@pytest.mark.integration
def test_demo_shows_verdicts_and_its_report_verifies_after_stop(browser, tmp_path):
    from dcmon.fixtures.demo_history import demo_period
    from dcmon.metrics.evaluate import Options, evaluate
    from dcmon.periods import zone
    from dcmon.registry import load_registry
    from dcmon.store import open_store

    data = tmp_path / "demo-data"
    port = free_port()
    t0 = time.monotonic()
    demo = Demo("--data", str(data), "--port", str(port))
    try:
        demo.wait_line("Ctrl-C stops everything.", START_LIMIT_S)
        started_s = time.monotonic() - t0
        text = "".join(demo.seen)
        assert f"data folder    {data}" in text and f"config folder  {DEMO_CONFIG}" in text
        assert "(kept: --data)" in text and "removed" not in text
        url = next(l.split(" at ", 1)[1].strip() for l in demo.seen if "dashboard at http://127.0.0.1:" in l)
        commands = [l.strip() for l in demo.seen if l.startswith("  ") and (" evaluate " in l or " evidence " in l
                                                                              or " verify " in l)]
        assert [c.split()[1] for c in commands] == ["evaluate", "evidence", "verify"], text

        # The store decides the demo period at once: every verdict the sample sites are made for.
        registry = load_registry(DEMO_CONFIG)
        store = open_store(data)
        period = demo_period(dt.datetime.now(zone("Asia/Shanghai")).date())
        res = evaluate(registry, store, period, None, [CHENGDU], Options())
        verdict = {f["facility_id"]: f["profiles"][CHENGDU]["eligible"] for f in res["facilities"]
                   if f["profiles"][CHENGDU]["applicable"]}
        assert {k for k, v in verdict.items() if v is True} >= {"cd-east-01", "cd-line-racks"}, verdict
        assert {k for k, v in verdict.items() if v is False} >= {"cd-pue-fail", "cd-racks-fail", "cd-compute-fail",
                                                                 "cd-line-pue", "cd-line-share"}, verdict
        assert verdict["cd-meter-gap"] is None
        # the PUE edge, by hand from the counters: exactly 1.25, which fails "< 1.25"
        fac = registry.get("cd-line-pue")
        start, end = period.utc_bounds(fac.timezone)
        assert (_counter_energy_kwh(store, fac, "facility", start, end)
                / _counter_energy_kwh(store, fac, "it", start, end)) == 1.25

        # The overview in Chromium shows decided verdicts for the demo period, row by row.
        from selenium.webdriver.common.by import By
        browser.set_window_size(2600, 1100)   # every column in view, for the screenshot too
        browser.get(url)
        want = {"cd-east-01": "✔", "cd-line-racks": "✔", "cd-line-pue": "✘", "cd-racks-fail": "✘",
                "cd-meter-gap": "?"}
        rows = {}
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                # the verdicts are pinned left, the ids in the centre: one text per row index
                by_row = {}
                for r in browser.find_elements(By.CSS_SELECTOR, "#overview-grid .ag-pinned-left-cols-container .ag-row, "
                                                                "#overview-grid .ag-center-cols-container .ag-row"):
                    by_row[r.get_attribute("row-index")] = by_row.get(r.get_attribute("row-index"), "") + " " + r.text
                texts = list(by_row.values())
            except Exception:
                texts = []
            rows = {fid: next((t for t in texts if fid in t.split()), "") for fid in want}
            if all(mark in rows[fid] for fid, mark in want.items()):
                break
            time.sleep(0.5)
        shot(browser, "demo-overview")
        assert all(mark in rows[fid] for fid, mark in want.items()), rows

        # Live telemetry lands on top of the history (which ends where the live replay starts, 2 h ago).
        recent = int(time.time() * 1000) - 10 * 60_000
        deadline = time.monotonic() + 150
        while time.monotonic() < deadline:
            t = store.read("cd-east-01", "meter", recent, None, columns=["ts"])
            if t.num_rows:
                break
            time.sleep(1)
        assert t.num_rows, "no live readings in the last 10 minutes"
        # ... and the facility page shows a live PUE from them
        import re
        browser.set_window_size(1400, 1000)
        browser.get(url.replace("/?", "/facility/cd-east-01?"))
        deadline = time.monotonic() + 120
        live = ""
        while time.monotonic() < deadline and not re.fullmatch(r"\d\.\d{3}", live):
            try:
                live = browser.find_element(By.CSS_SELECTOR, "#live-pue").text.strip()
            except Exception:
                pass
            time.sleep(0.5)
        shot(browser, "demo-facility")
        assert re.fullmatch(r"\d\.\d{3}", live) and 1.1 < float(live) < 1.4, live

        # The three printed commands work as pasted, against the running demo.
        for c in commands:
            p = subprocess.run(c, shell=True, cwd=tmp_path, capture_output=True, text=True, timeout=300)
            assert p.returncode == 0, f"{c}\n{p.stdout}\n{p.stderr}"
            assert "Traceback" not in p.stderr and " INFO " not in p.stderr, p.stderr[-2000:]
        report = next(tmp_path.glob("evidence-cd-east-01-*.pdf"))
    finally:
        out = demo.stop()
    assert demo.proc.returncode == 0, out
    assert f"data kept in {data}" in out and "Traceback" not in out
    assert " INFO " not in out and "GET /" not in out, out[-3000:]   # quiet by default

    # After the stop the report still verifies from DIR.
    p = subprocess.run([sys.executable, "-m", "dcmon.cli", "verify", str(report), "--config", str(DEMO_CONFIG),
                        "--data", str(data)], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0 and "VERIFIED" in p.stdout, p.stdout + p.stderr
    print(f"demo ready after {started_s:.1f} s")


@pytest.mark.integration
def test_demo_without_data_says_where_and_that_it_is_removed(tmp_path):
    demo = Demo("--port", str(free_port()), "--facility", "cd-edge-01", "--broker-impl", "amqtt")
    try:
        first = demo.wait_line("dcmon demo: data folder", 60)
        assert "temporary: removed when the demo stops" in first
        folder = Path(first.split("data folder ", 1)[1].split(" (", 1)[0])
        assert folder.is_dir()
        demo.wait_line("Ctrl-C stops everything.", START_LIMIT_S)
    finally:
        out = demo.stop()
    assert demo.proc.returncode == 0, out
    assert f"removing the temporary data folder {folder}" in out
    assert not folder.exists()


def test_demo_refuses_a_data_folder_that_holds_a_store(tmp_path):
    (tmp_path / "readings" / "facility=x").mkdir(parents=True)
    p = subprocess.run([sys.executable, "-m", "dcmon.cli", "demo", "--data", str(tmp_path)], capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 2 and "already holds a store" in p.stderr and "Traceback" not in p.stderr


@pytest.mark.parametrize("today, first, last, label", [
    (dt.date(2026, 11, 30), dt.date(2026, 10, 1), dt.date(2026, 11, 29), "2026Q4 to date"),
    (dt.date(2026, 10, 2), dt.date(2026, 10, 1), dt.date(2026, 10, 1), "2026Q4 to date"),
    (dt.date(2026, 10, 1), dt.date(2026, 7, 1), dt.date(2026, 9, 30), "2026Q3"),      # first day: the last quarter
    (dt.date(2027, 1, 1), dt.date(2026, 10, 1), dt.date(2026, 12, 31), "2026Q4"),
])
def test_demo_period_is_whole_days_of_history(today, first, last, label):
    from dcmon.fixtures.demo_history import demo_period
    p = demo_period(today)
    assert (p.first_day, p.last_day, p.label) == (first, last, label)


def test_start_text_names_folders_and_three_commands(tmp_path):
    from dcmon.cli.demo import start_text
    txt = start_text("dashboard", 8050, DEMO_CONFIG, tmp_path / "d", ["cd-east-01", "cd-edge-01"],
                     broker_text="mosquitto mqtt://127.0.0.1:1", today=dt.date(2027, 1, 1))
    assert "http://127.0.0.1:8050/?from=2026-10-01&to=2026-12-31" in txt
    assert f"config folder  {DEMO_CONFIG}" in txt and f"data folder    {tmp_path / 'd'}" in txt
    assert "evaluate --config" in txt and "--from 2026-10-01 --to 2026-12-31" in txt
    assert "evidence --config" in txt and "--facility cd-east-01 --year 2026 --out evidence-cd-east-01-2026.pdf" in txt
    assert "verify evidence-cd-east-01-2026.pdf --config" in txt
