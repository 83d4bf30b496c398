"""The dashboard's alerts panel: the shipped rules as a real Prometheus evaluates them, filtered
server-side for each user, shown in the user's language; and in headless Chromium."""
from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import flask
import pytest

from mon_helpers import REPO, RULES_DIR, PrometheusProcess, needs_prometheus, wait_for
from mon_helpers import _stop_leftover_processes  # noqa: F401 - fixture: stops what a failing test left running
from dcmon.dashboard import alerts
from dcmon.dashboard.auth import User, hash_password
from dcmon.monitoring import MetricsServer
from dcmon.registry import load_registry
from dcmon.store import open_store
from wiring import app_for

FACILITIES = ("cd-east-01", "bd-cloud-01")


def _text(component) -> str:
    return json.dumps(component.to_plotly_json(), ensure_ascii=False,
                      default=lambda o: o.to_plotly_json() if hasattr(o, "to_plotly_json") else str(o))


@pytest.fixture
def cfg(tmp_path):
    cfg = tmp_path / "config"
    (cfg / "facilities").mkdir(parents=True)
    for fid in FACILITIES:
        for suffix in (".yaml", "-racks.csv"):
            shutil.copy(REPO / "fixtures" / "facilities" / f"{fid}{suffix}", cfg / "facilities")
    (cfg / "users.yaml").write_text(
        "users:\n"
        f"  - {{name: east-ops, role: operator, facilities: [cd-east-01], password_hash: '{hash_password('east-pw')}'}}\n"
        f"  - {{name: reviewer, role: regulator, password_hash: '{hash_password('rev-pw')}'}}\n",
        encoding="utf-8")
    return cfg


@pytest.fixture
def prometheus_with_alerts(cfg, tmp_path):
    """A real Prometheus with the shipped rules, scraping a metrics endpoint whose facilities have
    no readings at all: every meter of both facilities is silent, so DcmonMeterSilent fires."""
    registry = load_registry(cfg)
    health = {"connected": True}
    srv = MetricsServer(registry, open_store(tmp_path / "data"), lambda: health, port=0, live_interval_s=1)
    srv.start()
    prom = PrometheusProcess(tmp_path / "prometheus", f"""
global: {{scrape_interval: 1s, evaluation_interval: 1s}}
rule_files: ["{RULES_DIR / 'dcmon-rules.yml'}"]
scrape_configs:
  - job_name: dcmon-collector
    static_configs: [{{targets: ["127.0.0.1:{srv.port}"]}}]
""").start()
    wait_for(lambda: {a["labels"].get("facility") for a in prom.alerts()} >= set(FACILITIES), what="alerts firing")
    yield prom
    prom.stop()
    srv.stop()


def _call(app, user, params):
    with app.server.test_request_context("/_dash-update-component"):
        flask.g.dcmon_user = app.server.config["DCMON_USERS"].current()[user]   # as app.require_login resolves it
        return alerts.update_alerts(1, params)


@needs_prometheus
@pytest.mark.integration
def test_panel_shows_each_user_the_alerts_of_their_facilities(cfg, tmp_path, prometheus_with_alerts):
    prom = prometheus_with_alerts
    app = app_for(cfg, tmp_path / "data", prometheus_url=f"http://127.0.0.1:{prom.port}")
    # the operator of cd-east-01, on the overview: cd-east-01's silent meters only, in Chinese
    op = _text(_call(app, "east-ops", {"lang": "zh", "facility_id": None}))
    assert "电表 cd-east-01/grid-a 无读数" in op and "bd-cloud-01" not in op
    # the regulator sees both facilities; in English
    reg = _text(_call(app, "reviewer", {"lang": "en", "facility_id": None}))
    assert "Meter cd-east-01/grid-a is silent" in reg and "Meter bd-cloud-01/ups-1 is silent" in reg
    # a facility page shows that facility's alerts; the operator gets nothing for another facility
    page = _text(_call(app, "reviewer", {"lang": "en", "facility_id": "bd-cloud-01"}))
    assert "bd-cloud-01/ups-1" in page and "cd-east-01" not in page
    assert _text(_call(app, "east-ops", {"lang": "en", "facility_id": "bd-cloud-01"})) == _text(alerts.html.Div())


def test_filter_rules_for_users():
    registry = load_registry(REPO / "fixtures")
    items = [{"labels": {"alertname": "DcmonMeterSilent", "facility": "cd-east-01", "severity": "warning"},
              "activeAt": "2026-08-01T00:00:00Z"},
             {"labels": {"alertname": "DcmonPueAboveLimit", "facility": "bd-cloud-01", "severity": "warning"}},
             {"labels": {"alertname": "DcmonCollectorDown", "instance": "c1", "severity": "critical"}},
             {"labels": {"alertname": "NodeDiskFull", "facility": "cd-east-01", "severity": "critical"}},
             {"labels": {"alertname": "DcmonMeterSilent", "facility": "not-configured", "severity": "warning"}}]
    op = User(name="east-ops", role="operator", facilities=frozenset({"cd-east-01"}))
    reg = User(name="reviewer", role="regulator")
    names = lambda xs: [(a["labels"]["alertname"], a["labels"].get("facility")) for a in xs]  # noqa: E731
    # another system's alert on the same Prometheus, unknown facilities, collector alerts: not for an operator
    assert names(alerts.for_user(items, registry, op)) == [("DcmonMeterSilent", "cd-east-01")]
    # critical first, then oldest first
    assert names(alerts.for_user(items, registry, reg)) == [
        ("DcmonCollectorDown", None), ("DcmonPueAboveLimit", "bd-cloud-01"), ("DcmonMeterSilent", "cd-east-01")]
    assert alerts.for_user(items, registry, None) == []


def test_panel_without_prometheus_says_where_alerts_come_from(cfg, tmp_path, monkeypatch):
    monkeypatch.delenv(alerts.ENV_PROMETHEUS_URL, raising=False)
    app = app_for(cfg, tmp_path / "data")
    assert "--prometheus-url" in _text(_call(app, "reviewer", {"lang": "zh", "facility_id": None}))
    # an unreachable Prometheus is said in one line, not an exception
    from dcmon.collector.brokers import free_port
    app = app_for(cfg, tmp_path / "data", prometheus_url=f"http://127.0.0.1:{free_port()}")
    out = _text(_call(app, "reviewer", {"lang": "en", "facility_id": None}))
    assert "Cannot read alerts from Prometheus" in out and "alerts-unavailable" in out


@needs_prometheus
@pytest.mark.integration
def test_facility_page_in_chromium(cfg, tmp_path, prometheus_with_alerts):
    """The operator logs in and sees the alerts panel on their facility page (screenshot saved)."""
    if not Path("/usr/bin/chromium").exists() or not Path("/usr/bin/chromedriver").exists():
        pytest.skip("Debian chromium and chromium-driver are not installed")
    import tempfile

    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from dcmon.collector.brokers import free_port
    from dcmon.dashboard.server import start
    app = app_for(cfg, tmp_path / "data", prometheus_url=f"http://127.0.0.1:{prometheus_with_alerts.port}")
    port = free_port()
    stop = start(app, "127.0.0.1", port)
    opts = webdriver.ChromeOptions()
    opts.binary_location = "/usr/bin/chromium"
    profile = tempfile.mkdtemp(prefix="dcmon-chrome-")
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
              "--window-size=1400,1000", f"--user-data-dir={profile}"):
        opts.add_argument(a)
    drv = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)
    try:
        base = f"http://127.0.0.1:{port}"
        drv.get(base + "/login")
        drv.find_element(By.ID, "user").send_keys("east-ops")
        drv.find_element(By.ID, "password").send_keys("east-pw")
        drv.find_element(By.ID, "login").click()
        drv.get(base + "/facility/cd-east-01")
        wait_for(lambda: drv.find_elements(By.ID, "alerts-list"), timeout=60, what="alerts list rendered")
        time.sleep(0.5)
        text = drv.find_element(By.ID, "alerts-list").text
        assert "cd-east-01" in text and "无读数" in text and "bd-cloud-01" not in text
        shots = REPO / "artifacts" / "screenshots"
        shots.mkdir(parents=True, exist_ok=True)
        drv.save_screenshot(str(shots / "monitoring-facility-alerts.png"))
    finally:
        drv.quit()
        stop()
        shutil.rmtree(profile, ignore_errors=True)


def test_bad_prometheus_url_exits_2_with_one_line(tmp_path):
    import subprocess
    import sys
    p = subprocess.run([sys.executable, "-m", "dcmon.cli", "dashboard", "--config", str(REPO / "fixtures"), "--data",
                        str(tmp_path / "data"), "--prometheus-url", "127.0.0.1:9090"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 2, p.stderr
    assert len(p.stderr.strip().splitlines()) == 1
    assert "--prometheus-url must start with http:// or https://: '127.0.0.1:9090'" in p.stderr
