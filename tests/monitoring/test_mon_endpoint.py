"""The /metrics endpoint without a broker: figures against hand calculations, the access model
(configured facilities only, loopback by default, bearer token), per-facility collector counters."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import urllib.error
import urllib.request

import orjson
import pandas as pd
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from mon_helpers import REPO, coll
from dcmon.collector.ingest import Ingestor
from dcmon.store.quarantine import Quarantine
from dcmon.metrics.policy import load_profiles
from dcmon.metrics.checks import min_coverage, pue_limit
from dcmon.monitoring import ENV_METRICS_TOKEN, MetricsServer, load_token
from dcmon.readings import to_table
from dcmon.registry import load_registry
from dcmon.store import open_store

FIXTURES = REPO / "fixtures"
NOW = pd.Timestamp("2026-08-15T04:00:00Z")          # 12:00 in Shanghai, in 2026Q3
NOW_MS = NOW.value // 10**6
POWER_KW = {"grid-a": 216.0, "grid-b": 216.0, "ups-1": 144.0, "ups-2": 144.0, "crac-1": 100.0}


def _config(tmp_path, ids):
    cfg = tmp_path / "config"
    (cfg / "facilities").mkdir(parents=True)
    for fid in ids:
        doc = yaml.safe_load((FIXTURES / "facilities" / f"{fid}.yaml").read_text(encoding="utf-8"))
        shutil.copy(FIXTURES / "facilities" / f"{fid}.yaml", cfg / "facilities")
        shutil.copy(FIXTURES / "facilities" / doc["racks"], cfg / "facilities")
    return load_registry(cfg)


def _meter_rows(fid, first_ms, last_ms, step_ms=60_000):
    return [{"facility_id": fid, "kind": "meter", "source_id": m, "ts": ts, "received_at": ts,
             "energy_kwh": 1000.0 + p * (ts - first_ms) / 3_600_000, "origin": "test"}
            for m, p in POWER_KW.items() for ts in range(first_ms, last_ms + 1, step_ms)]


@pytest.fixture
def served(tmp_path):
    """An endpoint for a collector configured with cd-east-01 only, over a store that also holds
    another facility's readings (a shared data folder), with a health document naming both."""
    registry = _config(tmp_path, ["cd-east-01"])
    store = open_store(tmp_path / "data")
    store.append(to_table(_meter_rows("cd-east-01", NOW_MS - 1_200_000, NOW_MS)))
    store.append(to_table(_meter_rows("cd-hyper-01", NOW_MS - 1_200_000, NOW_MS)))
    health = {"connected": True, "messages": 10, "readings": 50, "stored": 40, "duplicates": 10,
              "rejects_by_reason": {"unknown facility": 3, "unknown meter": 1}, "queue": 2, "ack_lag_ms": 1500.0,
              "store_writes": 4, "store_write_seconds": 0.2,
              "last_seen": {"cd-hyper-01": {"grid-a": [NOW_MS, NOW_MS]}},
              "by_facility": {"cd-east-01": {"accepted": 50, "rejects_by_reason": {"unknown meter": 1}},
                              "cd-hyper-01": {"accepted": 7, "rejects_by_reason": {}}}}

    def start(**kw):
        srv = MetricsServer(registry, store, lambda: health, port=0, clock=lambda: NOW, **kw)
        srv.watcher.refresh()              # figures at the fixed time before the first request
        srv.start()
        started.append(srv)
        return srv
    started = []
    yield start
    for s in started:
        s.stop()


def _get(port, path="/metrics", token=None):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}")
    if token is not None:
        req.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.status, r.read().decode()


def _samples(text) -> dict:
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_figures_match_hand_calculation(served):
    srv = served()
    assert srv._httpd.server_address[0] == "127.0.0.1"      # loopback unless told otherwise
    status, text = _get(srv.port)
    assert status == 200
    s = _samples(text)
    fac = (("facility", "cd-east-01"),)
    # 20 minutes of readings, every meter at constant power: PUE (216+216)/(144+144) = 1.5
    assert s[("dcmon_facility_pue_15m_ratio", fac)] == pytest.approx(1.5, abs=1e-12)
    # the 15-minute window holds 15 one-minute steps of 432 kW: 108 kWh / 0.25 h
    assert s[("dcmon_facility_power_watts", fac)] == pytest.approx(432_000, rel=1e-12)
    assert s[("dcmon_facility_it_power_watts", fac)] == pytest.approx(288_000, rel=1e-12)
    # quarter 2026Q3 in Asia/Shanghai starts 2026-06-30 16:00 UTC and lasts 92 days; 45.5 days elapsed;
    # 20 minutes of them covered
    elapsed_s, quarter_s = 45.5 * 86400, 92 * 86400
    assert s[("dcmon_facility_quarter_elapsed_ratio", fac)] == pytest.approx(elapsed_s / quarter_s, rel=1e-12)
    assert s[("dcmon_facility_quarter_coverage_ratio", fac)] == pytest.approx(1200 / elapsed_s, rel=1e-9)
    assert s[("dcmon_facility_quarter_best_coverage_ratio", fac)] == pytest.approx(
        (1200 + quarter_s - elapsed_s) / quarter_s, rel=1e-9)
    assert s[("dcmon_facility_quarter_pue_ratio", fac)] == pytest.approx(1.5, abs=1e-12)
    # Chengdu cloud centre in the start area: "< 1.25" (retrofit subsidy) is stricter than "<= 1.25" (hub)
    assert s[("dcmon_facility_pue_limit_ratio", (("facility", "cd-east-01"), ("op", "<"),
                                                 ("profile", "chengdu-2023-cloud-retrofit")))] == 1.25
    assert s[("dcmon_facility_min_coverage_ratio", fac)] == 0.95
    assert s[("dcmon_meter_max_gap_seconds", (("facility", "cd-east-01"), ("meter", "ups-1")))] == 900
    # collector counters from the health document; units converted (ms → s)
    assert s[("dcmon_collector_ack_lag_seconds", ())] == 1.5
    assert s[("dcmon_collector_store_write_seconds_count", ())] == 4
    assert s[("dcmon_collector_rejected_total", (("reason", "unknown facility"),))] == 3
    assert s[("dcmon_facility_readings_stored_total", fac)] == 50
    assert s[("dcmon_facility_readings_rejected_total", fac + (("reason", "unknown meter"),))] == 1
    assert s[("dcmon_collector_connected", ())] == 1
    assert s[("dcmon_store_damaged_files", ())] == 0


def test_serves_only_the_configured_facilities(served):
    srv = served()
    _, text = _get(srv.port)
    # cd-hyper-01 has readings in the store and appears in the health document: not a word of it
    assert "cd-hyper-01" not in text
    facilities = {s.labels.get("facility") for fam in text_string_to_metric_families(text) for s in fam.samples}
    assert facilities == {None, "cd-east-01"}
    # no rack labels, no free text
    labels = {k for fam in text_string_to_metric_families(text) for s in fam.samples for k in s.labels}
    assert labels <= {"facility", "meter", "role", "reason", "profile", "op", "quantile"}


def test_token_is_required_when_set(served):
    srv = served(token="tok-123")
    for token in (None, "wrong", ""):
        with pytest.raises(urllib.error.HTTPError) as e:
            _get(srv.port, token=token)
        assert e.value.code == 401 and b"cd-east-01" not in e.value.read()
    status, text = _get(srv.port, token="tok-123")
    assert status == 200 and "dcmon_facility_pue_15m_ratio" in text
    with pytest.raises(urllib.error.HTTPError) as e:
        _get(srv.port, path="/", token="tok-123")
    assert e.value.code == 404


def test_token_sources(tmp_path, monkeypatch):
    monkeypatch.delenv(ENV_METRICS_TOKEN, raising=False)
    assert load_token(None) is None
    monkeypatch.setenv(ENV_METRICS_TOKEN, "from-env")
    assert load_token(None) == "from-env"
    f = tmp_path / "token"
    f.write_text("from-file\n")
    os.chmod(f, 0o644)
    with pytest.raises(ValueError, match="readable by group or others .*chmod 600"):
        load_token(str(f))
    os.chmod(f, 0o600)
    assert load_token(str(f)) == "from-file"
    f.write_text("\n")
    with pytest.raises(ValueError, match="empty"):
        load_token(str(f))


@pytest.mark.parametrize("args, message", [
    (["--metrics-port", "0", "--metrics-token-file", "/nonexistent/token"], "--metrics-token-file /nonexistent/token: no such file"),
    (["--metrics-port", "70000"], "--metrics-port must be 0..65535: 70000"),
    (["--metrics-port", "0", "--metrics-refresh", "0.5"], "--metrics-refresh must be ≥ 1 s: 0.5"),
])
def test_bad_options_exit_2_with_one_line(tmp_path, args, message):
    p = subprocess.run([sys.executable, "-m", "dcmon.cli", "collect", "--config", str(FIXTURES), "--data",
                        str(tmp_path / "data"), "--broker", "mqtt://127.0.0.1:1", *args],
                       capture_output=True, text=True, timeout=60, env={**os.environ, ENV_METRICS_TOKEN: ""})
    assert p.returncode == 2, p.stderr
    assert message in p.stderr and "Traceback" not in p.stderr and len(p.stderr.strip().splitlines()) == 1


def test_busy_port_exits_2_with_one_line(tmp_path):
    import socket
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        p = subprocess.run([sys.executable, "-m", "dcmon.cli", "collect", "--config", str(FIXTURES), "--data",
                            str(tmp_path / "data"), "--broker", "mqtt://127.0.0.1:1", "--metrics-port", str(port)],
                           capture_output=True, text=True, timeout=60)
    assert p.returncode == 2, p.stderr
    assert f"--metrics-port {port} on 127.0.0.1: cannot listen" in p.stderr and "Traceback" not in p.stderr


def test_profile_limits(tmp_path):
    registry = load_registry(FIXTURES)
    profiles = load_profiles(registry.config_dir)
    store = open_store(tmp_path / "data")
    lim = pue_limit(store, registry.get("bd-cloud-01"), profiles, NOW)
    assert (lim["profile"], lim["op"], lim["threshold"]) == ("baoding-2024-cloud-retrofit", "<", 1.25)
    assert min_coverage(registry.get("bd-cloud-01"), profiles) == 0.95


def test_ingestor_counts_per_configured_facility(tmp_path):
    registry = load_registry(FIXTURES)
    ing = Ingestor(registry, open_store(tmp_path / "data"), Quarantine(tmp_path / "data", writer="t"))
    t = NOW_MS - 3_600_000
    ing.process([
        ("dcmon/v1/cd-east-01/meter/grid-a", orjson.dumps([{"ts": t, "energy_kwh": 5.0}, {"ts": t + 60_000, "energy_kwh": 6.0}]), NOW_MS),
        ("dcmon/v1/cd-east-01/meter/nope", orjson.dumps({"ts": t, "energy_kwh": 5.0}), NOW_MS),
        ("dcmon/v1/bd-cloud-01/meter/grid-a", orjson.dumps({"ts": t, "energy_kwh": 5.0}), NOW_MS),
        ("dcmon/v1/not-configured/meter/grid-a", orjson.dumps({"ts": t, "energy_kwh": 5.0}), NOW_MS),
        ("dcmon/v1/bd-cloud-01/cd-east-01/x", b"{}", NOW_MS),   # names cd-east-01, but it is bd-cloud-01's topic
    ])
    s = ing.stats
    assert dict(s.accepted_by_facility) == {"cd-east-01": 2, "bd-cloud-01": 1}
    assert {f: dict(r) for f, r in s.rejects_by_facility.items()} == {
        "cd-east-01": {"unknown meter": 1}, "bd-cloud-01": {s_reason: 1 for s_reason in s.rejects_by_facility["bd-cloud-01"]}}
    assert sum(s.rejects_by_facility["bd-cloud-01"].values()) == 1
    assert "not-configured" not in s.rejects_by_facility
    assert sum(s.rejects_by_reason.values()) == 3 and s.commits == 1 and s.commit_seconds > 0
