"""Helpers for the collector tests: real Mosquitto / VictoriaMetrics processes on 127.0.0.1,
collector subprocesses, publishers and store checks. Every wait polls a condition with a
generous deadline; no test asserts a duration."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.compute as pc
import pytest

from dcmon.collector.brokers import MosquittoProcess, find_mosquitto, free_port
from dcmon.registry import load_registry

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "fixtures"
PY = sys.executable
MOSQUITTO = find_mosquitto()
needs_mosquitto = pytest.mark.skipif(MOSQUITTO is None, reason="mosquitto is not installed (/usr/sbin/mosquitto)")
needs_mosquitto_pub = pytest.mark.skipif(shutil.which("mosquitto_pub") is None,
                                         reason="mosquitto_pub is not installed (mosquitto-clients)")


def wait_for(cond, timeout=30.0, interval=0.05, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}")


_STARTED: list = []   # every collector / broker process a test started, stopped at its teardown


@pytest.fixture(autouse=True)
def _stop_leftover_processes():
    """A failing assertion must not leave collectors or brokers running."""
    yield
    while _STARTED:
        obj = _STARTED.pop()
        try:
            if isinstance(obj, CollectorProc):
                obj.stop(sig=signal.SIGKILL)
            else:
                obj.stop()
        except Exception:
            pass


_orig_mosquitto_start = MosquittoProcess.start


def _tracked_start(self, *a, **kw):
    _STARTED.append(self)
    return _orig_mosquitto_start(self, *a, **kw)


MosquittoProcess.start = _tracked_start


@pytest.fixture(scope="session")
def registry():
    return load_registry(FIXTURES)


@pytest.fixture
def mosquitto(tmp_path):
    if MOSQUITTO is None:
        pytest.skip("mosquitto is not installed (/usr/sbin/mosquitto)")
    b = MosquittoProcess(tmp_path / "broker", free_port()).start()
    yield b
    b.stop()


class CollectorProc:
    """``dcmon collect`` as a child process (so it can be SIGKILLed)."""

    def __init__(self, data: Path, broker_url: str, *extra, client_id="test-collector", env=None):
        self.data = Path(data)
        self.args = [PY, "-m", "dcmon.cli", "collect", "--config", str(FIXTURES), "--data", str(data),
                     "--broker", broker_url, "--client-id", client_id, "--health-interval", "0.5", *extra]
        self.log = self.data.parent / f"{client_id}.log"
        self.env = {**os.environ, **(env or {})}
        self.proc = None

    def start(self, wait_subscribed=True):
        _STARTED.append(self)
        self.data.parent.mkdir(parents=True, exist_ok=True)
        self._fh = open(self.log, "ab")
        start_mark = self.log.stat().st_size
        self.proc = subprocess.Popen(self.args, stdout=self._fh, stderr=subprocess.STDOUT, env=self.env)
        if wait_subscribed:
            wait_for(lambda: b"connected to" in self.log.read_bytes()[start_mark:] or self.proc.poll() is not None,
                     what="collector connect")
            assert self.proc.poll() is None, self.log.read_text()[-3000:]
            time.sleep(0.3)  # the SUBACK follows the CONNACK
        return self

    def stop(self, sig=signal.SIGTERM, timeout=30):
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        self.proc = None
        self._fh.close()
        return rc

    def text(self):
        return self.log.read_text(errors="replace")


def stored_keys(data, facility_id, kind=None):
    """All stored (kind, source_id, ts_ms) keys and the raw row count over every file (duplicates included)."""
    import pyarrow.parquet as pq
    root = Path(data) / "readings" / f"facility={facility_id}"
    rows = 0
    keys = []
    for p in sorted(root.rglob("*.parquet")) if root.exists() else []:
        if p.name.startswith("."):
            continue
        k = p.parent.parent.name.split("=", 1)[1]
        if k == "rack-inventory" or (kind and k != kind):
            continue
        t = pq.read_table(p, columns=["source_id", "ts"])
        rows += t.num_rows
        ts = pc.cast(t.column("ts"), "int64").to_pylist()
        keys += [(k, s, x) for s, x in zip(t.column("source_id").to_pylist(), ts)]
    return keys, rows


def count_unique(data, facility_id, kind=None):
    keys, _ = stored_keys(data, facility_id, kind)
    return len(set(keys))


def paho_publisher(url_port, client_id="test-pub", username=None, password=None, protocol=None):
    import paho.mqtt.client as mqtt
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                    protocol=protocol or mqtt.MQTTv311)
    if username:
        c.username_pw_set(username, password)
    c.max_inflight_messages_set(1000)
    c.connect("127.0.0.1", url_port, keepalive=30)
    c.loop_start()
    wait_for(c.is_connected, timeout=15, what="publisher connected")
    return c


def publish_all(client, messages, qos=1, timeout=60):
    """Publish ``(topic, payload)`` pairs at QoS 1, checking return codes, and wait for every PUBACK."""
    import paho.mqtt.client as mqtt
    infos = []
    for topic, payload in messages:
        while True:
            info = client.publish(topic, payload, qos=qos)
            if info.rc == mqtt.MQTT_ERR_QUEUE_SIZE:
                time.sleep(0.01)
                continue
            assert info.rc == mqtt.MQTT_ERR_SUCCESS, mqtt.error_string(info.rc)
            break
        infos.append(info)
    deadline = time.monotonic() + timeout
    for info in infos:
        info.wait_for_publish(max(0.1, deadline - time.monotonic()))
        assert info.is_published()
    return len(infos)


def stop_client(c):
    c.disconnect()
    c.loop_stop()
