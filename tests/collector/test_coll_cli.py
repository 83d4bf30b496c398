"""The CLI: bad options are named and exit non-zero; simulate and demo against real brokers."""
import re
import signal
import subprocess
import sys
import urllib.request

import pytest

from dcmon.cli import main
from dcmon.collector.brokers import free_port, wait_port
from dcmon.store import open_store

from conftest import FIXTURES, CollectorProc, count_unique, needs_mosquitto, wait_for

CFG = ["--config", str(FIXTURES)]


@pytest.mark.parametrize("argv, message", [
    (["collect", *CFG, "--broker", "http://127.0.0.1:1883"], "--broker 'http://127.0.0.1:1883': scheme must be mqtt://"),
    (["collect", *CFG, "--broker", "mqtt://u:secret@127.0.0.1"], "do not put credentials in the URL"),
    (["collect", *CFG, "--qos", "3"], "qos value must be 0 or 1: 3"),
    (["collect", *CFG, "--share-group", "g", "--protocol", "3.1.1"], "--share-group needs --protocol 5"),
    (["collect", *CFG, "--mapping", "/no/such.yaml"], "--mapping /no/such.yaml: no such file"),
    (["collect", *CFG, "--broker", "mqtts://127.0.0.1", "--ca-file", "/no/ca.pem"], "--ca-file /no/ca.pem: no such file"),
    (["collect", *CFG, "--cert-file", __file__], "--cert-file and --key-file go together"),
    (["collect", *CFG, "--batch-delay", "-1"], "--batch-delay must be ≥ 0: -1.0"),
    (["collect", *CFG, "--influx-url", "127.0.0.1:8086"], "--influx-url must start with http:// or https://"),
    (["collect", "--config", "/no/config"], "no facilities/ folder"),
    (["simulate", *CFG, "--speed", "0"], "--speed must be > 0: 0.0"),
    (["simulate", *CFG, "--duration", "soon"], "--duration 'soon'"),
    (["simulate", *CFG, "--facility", "nowhere"], "unknown facility 'nowhere'"),
    (["simulate", *CFG, "--start", "2026-07-01 08:00"], "--start: ISO time without a UTC offset"),
    (["demo", "--duration", "-5"], "--duration must be > 0"),
])
def test_bad_options_are_named_and_exit_2(argv, message, capsys, tmp_path):
    rc = main([*argv, "--data", str(tmp_path)] if argv[0] == "collect" else argv)
    err = capsys.readouterr().err
    assert rc == 2 and message in err, err
    assert "secret" not in err


def test_bad_mapping_file_names_entry_and_option(tmp_path, capsys):
    m = tmp_path / "map.yaml"
    m.write_text("mappings:\n  - name: pm\n    topic: 'a/{facility_id}/{source_id}'\n    kind: meter\n"
                 "    fields: {power_kw: {path: P, unit: hp}}\n")
    assert main(["collect", *CFG, "--data", str(tmp_path), "--mapping", str(m)]) == 2
    assert "mapping 'pm': fields.power_kw unit 'hp' is not one of W, kW, MW" in capsys.readouterr().err


def test_quarantine_cli_errors(tmp_path, capsys):
    assert main(["quarantine"]) == 2
    assert "usage: dcmon quarantine" in capsys.readouterr().out
    assert main(["quarantine", "list", "--data", str(tmp_path / "none")]) == 2
    assert "--data" in capsys.readouterr().err
    assert main(["quarantine", "show", "nonsense", "--data", str(tmp_path)]) == 2
    assert "quarantine id must look like" in capsys.readouterr().err
    assert main(["quarantine", "list", "--data", str(tmp_path)]) == 0
    assert "no quarantined rejections" in capsys.readouterr().out


@pytest.mark.integration
@needs_mosquitto
def test_simulate_publishes_everything_it_says(mosquitto, tmp_path):
    data = tmp_path / "data"
    col = CollectorProc(data, mosquitto.url).start()
    r = subprocess.run([sys.executable, "-m", "dcmon.cli", "simulate", *CFG, "--broker", mosquitto.url,
                        "--facility", "cd-edge-01", "--facility", "cd-racks-it", "--speed", "1200",
                        "--duration", "4"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    m = re.search(r"published (\d+) messages \((\d+) readings, 0 bad payloads, 0 duplicates\); "
                  r"queue-full retries \d+, publish errors 0", r.stdout)
    assert m, r.stdout
    readings = int(m.group(2))
    assert readings > 0
    wait_for(lambda: count_unique(data, "cd-edge-01") + count_unique(data, "cd-racks-it") == readings,
             timeout=60, what="every simulated reading stored")
    for fac in ("cd-edge-01", "cd-racks-it"):
        kinds = set(open_store(data).read(fac).column("kind").to_pylist())
        assert kinds == {"meter", "rack"}
    assert col.stop() == 0


@pytest.mark.integration
@needs_mosquitto
def test_simulate_with_faults_feeds_the_quarantine(mosquitto, tmp_path):
    data = tmp_path / "data"
    col = CollectorProc(data, mosquitto.url).start()
    r = subprocess.run([sys.executable, "-m", "dcmon.cli", "simulate", *CFG, "--broker", mosquitto.url,
                        "--facility", "cd-edge-01", "--speed", "3000", "--duration", "4", "--faults", "--seed", "3"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    bad = int(re.search(r"(\d+) bad payloads", r.stdout).group(1))
    assert bad > 0
    wait_for(lambda: (open_store(data).get_status("collector-test-collector") or {}).get("rejected_messages", 0) >= bad,
             timeout=60, what="bad payloads quarantined")
    assert col.proc.poll() is None
    assert col.stop() == 0


@pytest.mark.integration
def test_demo_runs_and_ctrl_c_stops_everything(tmp_path):
    """The embedded amqtt broker path (a fresh machine without Mosquitto)."""
    port = free_port()
    data = tmp_path / "demo-data"
    p = subprocess.Popen([sys.executable, "-m", "dcmon.cli", "demo", "--port", str(port), "--broker-impl", "amqtt",
                          "--facility", "cd-edge-01", "--data", str(data), "--speed", "600"],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        lines = []
        for line in p.stdout:
            lines.append(line)
            if "http://127.0.0.1:" in line:
                break
        assert f"http://127.0.0.1:{port}/" in lines[-1], "".join(lines)
        assert wait_port(port, 20)
        page = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=20).read()
        assert page
        wait_for(lambda: count_unique(data, "cd-edge-01") > 50, timeout=90, what="demo readings stored")
        p.send_signal(signal.SIGINT)
        rest = p.communicate(timeout=60)[0]
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 0, rest
    assert "dcmon demo stopped:" in rest and "Traceback" not in rest


def test_demo_serves_the_dashboard_app_when_it_is_installed(tmp_path, monkeypatch, registry):
    """When dcmon.dashboard.app exists, demo serves create_app(registry, store).server on 127.0.0.1."""
    import types

    from dcmon.cli.demo import start_dashboard
    calls = []

    def wsgi(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"dashboard here"]

    def create_app(registry, store):
        calls.append((registry, store))
        return types.SimpleNamespace(server=wsgi)
    monkeypatch.setitem(sys.modules, "dcmon.dashboard.app", types.SimpleNamespace(create_app=create_app))
    port = free_port()
    store = open_store(tmp_path)
    kind, stop = start_dashboard(registry, store, port)
    try:
        assert kind == "dashboard" and len(calls) == 1 and calls[0][0] is registry and calls[0][1] is store
        r = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10)
        assert r.read() == b"dashboard here" and r.headers["Server"] == "waitress"   # the production server
    finally:
        stop()
