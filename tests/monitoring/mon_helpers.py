"""Helpers for the monitoring tests: a real Prometheus (Debian ``prometheus``) on a free port with
temporary storage, plus the collector-test helpers (Mosquitto, collector subprocesses, publishers).

A plain module, not a conftest.py: the collector tests import names ``from conftest``, which
resolves to whichever conftest was imported last; a third one here would shadow theirs.
Test modules import the fixtures they use from here."""
from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from dcmon.collector.brokers import free_port, wait_port

REPO = Path(__file__).resolve().parents[2]
RULES_DIR = REPO / "deploy" / "prometheus"
PROMTOOL = shutil.which("promtool")
PROMETHEUS = shutil.which("prometheus")
needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason="promtool is not installed (Debian package prometheus)")
needs_prometheus = pytest.mark.skipif(PROMETHEUS is None, reason="prometheus is not installed (Debian package prometheus)")

# The collector tests' helpers (broker fixture, collector subprocess, publishers), under another
# module name so both conftests can be loaded in one session.
_spec = importlib.util.spec_from_file_location("dcmon_tests_collector_helpers", REPO / "tests" / "collector" / "conftest.py")
coll = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(coll)
_stop_leftover_processes = coll._stop_leftover_processes   # autouse: stops what a failing test left running
mosquitto = coll.mosquitto


class PrometheusProcess:
    """``prometheus`` on 127.0.0.1:<free port> with its own storage and configuration."""

    def __init__(self, workdir: Path, config_text: str):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config = self.workdir / "prometheus.yml"
        self.config.write_text(config_text, encoding="utf-8")
        self.port = free_port()
        self.proc = None
        self.log = self.workdir / "prometheus.log"

    def start(self):
        self._fh = open(self.log, "ab")
        self.proc = subprocess.Popen([PROMETHEUS, f"--config.file={self.config}",
                                      f"--storage.tsdb.path={self.workdir / 'tsdb'}",
                                      f"--web.listen-address=127.0.0.1:{self.port}"],
                                     stdout=self._fh, stderr=subprocess.STDOUT)
        coll._STARTED.append(self)
        if not wait_port(self.port, timeout=30):
            self.stop()
            raise AssertionError(f"prometheus did not start:\n{self.log.read_text()[-3000:]}")
        wait_for(self._ready, timeout=30, what="prometheus ready")   # 503 until its storage is open
        return self

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/-/ready", timeout=5) as r:
                return r.status == 200
        except OSError:
            return False

    def stop(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        self._fh.close()

    def api(self, path: str, **params) -> dict:
        url = f"http://127.0.0.1:{self.port}/api/v1/{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        with urllib.request.urlopen(url, timeout=10) as r:
            doc = json.loads(r.read())
        assert doc["status"] == "success", doc
        return doc["data"]

    def query(self, expr: str) -> list[dict]:
        return self.api("query", query=expr)["result"]

    def alerts(self, state: str | None = "firing") -> list[dict]:
        return [a for a in self.api("alerts")["alerts"] if state is None or a["state"] == state]


def wait_for(cond, timeout=60.0, interval=0.2, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}")
