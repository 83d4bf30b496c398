"""InfluxDB sink against a real server speaking the InfluxDB v2 write API (Debian victoria-metrics),
including an outage in the middle of a run and a collector killed during it."""
import shutil
import signal
import subprocess
import urllib.parse
import urllib.request

import orjson
import pytest

from dcmon.collector.brokers import free_port, wait_port
from dcmon.collector.influx import Outbox, to_line_protocol
from dcmon.readings import now_ms, to_table

from conftest import CollectorProc, count_unique, needs_mosquitto, paho_publisher, publish_all, stop_client, wait_for

VM = shutil.which("victoria-metrics")
FAC = "cd-east-01"


class VictoriaMetrics:
    def __init__(self, workdir, port):
        self.dir, self.port, self.proc = workdir, port, None

    def start(self):
        self.dir.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen([VM, f"-httpListenAddr=127.0.0.1:{self.port}", f"-storageDataPath={self.dir}",
                                      "-search.latencyOffset=0s", "-retentionPeriod=100y"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        assert wait_port(self.port, 20)
        return self

    def stop(self):
        if self.proc:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(30)
            self.proc = None

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def points(self, metric="meter_power_kw"):
        urllib.request.urlopen(f"{self.url}/internal/force_flush", timeout=10).read()
        q = urllib.parse.quote(f'{{__name__="{metric}"}}')
        body = urllib.request.urlopen(f"{self.url}/api/v1/export?match[]={q}", timeout=10).read()
        out = {}
        for line in body.splitlines():
            d = orjson.loads(line)
            out[d["metric"].get("meter") or d["metric"].get("rack")] = dict(zip(d["timestamps"], d["values"]))
        return out


@pytest.fixture
def vm(tmp_path):
    if VM is None:
        pytest.skip("victoria-metrics is not installed (Debian package victoria-metrics)")
    v = VictoriaMetrics(tmp_path / "vm", free_port()).start()
    yield v
    v.stop()


def test_line_protocol_of_readings():
    t = to_table([{"facility_id": "cd-east-01", "kind": "rack", "source_id": "A 1", "ts": 1782864000000,
                   "power_kw": 2.5, "status": 'in "x"', "energy_kwh": None},
                  {"facility_id": "cd-east-01", "kind": "meter", "source_id": "grid-a", "ts": 1782864000000}])
    assert to_line_protocol(t) == ['rack,facility=cd-east-01,rack=A\\ 1 power_kw=2.5,status="in \\"x\\"" 1782864000000']


@pytest.mark.integration
@needs_mosquitto
def test_influx_outage_loses_nothing(mosquitto, vm, tmp_path):
    data = tmp_path / "data"
    args = ("--influx-url", vm.url, "--influx-token", "test-token", "--influx-org", "dcmon", "--influx-bucket", "dcmon")
    col = CollectorProc(data, mosquitto.url, *args).start()
    base = now_ms() - 86_400_000
    msgs = [(f"dcmon/v1/{FAC}/meter/grid-a", orjson.dumps({"ts": base + i * 1000, "power_kw": float(i % 500)}))
            for i in range(9000)]
    pub = paho_publisher(mosquitto.port)
    publish_all(pub, msgs[:3000])
    wait_for(lambda: len(vm.points().get("grid-a", {})) == 3000, timeout=60, what="3000 points in InfluxDB")
    vm.stop()                                            # outage
    publish_all(pub, msgs[3000:6000])
    wait_for(lambda: count_unique(data, FAC) == 6000, timeout=60, what="store keeps going during the outage")
    outbox = Outbox(data)
    wait_for(lambda: outbox.pending_lines() == 3000, what="3000 lines waiting in the outbox")
    assert "InfluxDB write to" in col.text() and "are retried" in col.text()
    col.stop(sig=signal.SIGKILL)                         # and the collector dies during the outage
    publish_all(pub, msgs[6000:])
    vm.start()
    col.start()
    wait_for(lambda: len(vm.points().get("grid-a", {})) == 9000, timeout=90, what="all 9000 points after the outage")
    wait_for(lambda: outbox.pending() == [], what="outbox empty")
    stop_client(pub)
    assert col.stop() == 0
    pts = vm.points()["grid-a"]
    assert all(pts[base + i * 1000] == float(i % 500) for i in range(9000))
