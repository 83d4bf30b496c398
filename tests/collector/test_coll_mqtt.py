"""The collector against a real Mosquitto: ack after durable, SIGKILL, broker restarts, bursts."""
import signal
import subprocess
import threading
import time

import orjson
import pytest

from dcmon.collector.brokers import MosquittoProcess
from dcmon.readings import now_ms
from dcmon.store import open_store

from conftest import (CollectorProc, count_unique, needs_mosquitto, needs_mosquitto_pub, paho_publisher, publish_all,
                      stop_client, stored_keys, wait_for)

pytestmark = [pytest.mark.integration, needs_mosquitto]
FAC = "cd-east-01"


def meter_messages(n, meter="grid-a", start=None, step_ms=1000):
    base = start if start is not None else now_ms() - 2 * 86_400_000
    return [(f"dcmon/v1/{FAC}/meter/{meter}",
             orjson.dumps({"ts": base + i * step_ms, "energy_kwh": 1000.0 + i * 0.01, "power_kw": 36.0}))
            for i in range(n)]


@needs_mosquitto_pub
def test_good_and_bad_messages_from_paho_and_mosquitto_pub(mosquitto, tmp_path):
    data = tmp_path / "data"
    col = CollectorProc(data, mosquitto.url).start()
    t = now_ms() - 3_600_000
    pub = paho_publisher(mosquitto.port)
    publish_all(pub, [
        (f"dcmon/v1/{FAC}/meter/grid-a", orjson.dumps({"ts": t, "energy_kwh": 10.0})),
        (f"dcmon/v1/{FAC}/meter/grid-a", b"{not json"),                                  # malformed
        (f"dcmon/v1/{FAC}/meter/ghost", orjson.dumps({"ts": t, "energy_kwh": 1.0})),       # unknown meter
        (f"dcmon/v1/{FAC}/racks", orjson.dumps({"ts": t, "readings": [
            {"rack_id": "A1-01-01", "power_kw": 3.0}, {"rack_id": "A1-01-02", "power_kw": -1}]})),
    ])
    stop_client(pub)
    # A client nobody here wrote: mosquitto_pub (line protocol, then a good JSON reading).
    for topic, msg in ((f"dcmon/v1/{FAC}/lp", f"meter,meter=ups-1 energy_kwh=5.5,power_kw=2 {t * 10**6}"),
                       (f"dcmon/v1/{FAC}/meter/ups-2", orjson.dumps({"ts": t, "power_kw": 4.0}).decode())):
        subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(mosquitto.port), "-q", "1", "-t", topic,
                        "-m", msg], check=True, timeout=30)
    wait_for(lambda: count_unique(data, FAC) == 4, what="4 readings stored")
    def health():
        doc = open_store(data).get_status("collector-test-collector") or {}
        return doc if doc.get("rejected") == 3 and doc.get("readings") == 4 else None
    status = wait_for(health, what="health status")
    assert col.proc.poll() is None, "a bad message never stops the collector"
    assert col.stop() == 0
    # Health: counts, rates and the last message per source, for the dashboard.
    assert status["readings"] == 4 and status["rejected_messages"] == 3 and "messages_per_s" in status
    assert set(status["last_seen"][FAC]) == {"grid-a", "ups-1", "ups-2", "A1-01-01"}
    log = col.text()
    assert "rejected dcmon/v1/cd-east-01/meter/grid-a: malformed JSON" in log
    assert "unknown meter 'ghost' for facility 'cd-east-01'" in log
    assert "readings[1]: power_kw is negative" in log
    # The quarantine keeps topic, reason and raw payload; the CLI lists and shows it.
    out = subprocess.run([*col.args[:3], "quarantine", "list", "--data", str(data)], capture_output=True, text=True)
    assert out.returncode == 0 and "malformed JSON" in out.stdout and "ghost" in out.stdout
    rid = out.stdout.split()[0]
    shown = subprocess.run([*col.args[:3], "quarantine", "show", rid, "--data", str(data)], capture_output=True,
                           text=True)
    assert shown.returncode == 0 and "{not json" in shown.stdout and "topic: dcmon/v1/cd-east-01/meter/grid-a" in shown.stdout


def test_sigkill_at_any_point_loses_no_acknowledged_reading_and_stores_each_once(mosquitto, tmp_path):
    data = tmp_path / "data"
    n = 4000
    msgs = meter_messages(n)
    col = CollectorProc(data, mosquitto.url).start()
    pub = paho_publisher(mosquitto.port)
    done = threading.Event()
    kills = [threading.Event(), threading.Event()]
    gates = {1000: kills[0], 3000: kills[1]}   # the publisher waits here until the collector was killed

    def produce():
        for k in range(0, n, 100):
            if k in gates:
                gates[k].wait(60)
            publish_all(pub, msgs[k:k + 100])
        done.set()
    th = threading.Thread(target=produce)
    th.start()
    for kill_after, kill in zip((500, 2500), kills):   # kill twice while messages flow, restart each time
        wait_for(lambda: count_unique(data, FAC) >= kill_after, timeout=60, what=f"{kill_after} stored")
        col.stop(sig=signal.SIGKILL)
        kill.set()
        col.start(wait_subscribed=False)
    th.join()
    stop_client(pub)
    assert done.is_set()   # every message was acknowledged by the broker (PUBACK)
    wait_for(lambda: count_unique(data, FAC) == n, timeout=60, what="all readings stored")
    assert col.stop() == 0
    store = open_store(data)
    t = store.read(FAC, "meter")
    assert t.num_rows == n   # duplicates from redelivery are stored once
    assert sorted(t.column("energy_kwh").to_pylist()) == sorted(orjson.loads(p)["energy_kwh"] for _, p in msgs)


def test_offline_collector_broker_restarts_and_reconnects(tmp_path):
    """Queued messages beyond Mosquitto's default 1000 survive a broker restart (v3.1.1 persistent session),
    a SIGKILLed broker after its autosave, and the running collector reconnects by itself."""
    port_dir = tmp_path / "broker"
    from dcmon.collector.brokers import free_port
    broker = MosquittoProcess(port_dir, free_port()).start()
    data = tmp_path / "data"
    col = CollectorProc(data, broker.url).start()
    col.stop()                                       # subscribed once: the broker keeps its session
    msgs = meter_messages(5000)
    pub = paho_publisher(broker.port)
    publish_all(pub, msgs[:3000])
    stop_client(pub)
    broker.stop()                                    # clean restart (SIGTERM saves the queue)
    broker.start()
    pub = paho_publisher(broker.port)
    publish_all(pub, msgs[3000:4000])
    stop_client(pub)
    db = port_dir / "mosquitto.db"
    mark = time.time()
    wait_for(lambda: db.exists() and db.stat().st_mtime > mark + 0.1, what="autosave after the publishes")
    broker.kill()                                    # hard crash after the autosave
    broker.start()
    col.start()
    wait_for(lambda: count_unique(data, FAC) == 4000, timeout=60, what="4000 queued readings")
    broker.stop()                                    # broker restarts under a running collector
    broker.start()
    wait_for(lambda: col.text().count("connected to") >= 2, timeout=60, what="reconnect")
    pub = paho_publisher(broker.port)
    publish_all(pub, msgs[4000:])
    stop_client(pub)
    wait_for(lambda: count_unique(data, FAC) == 5000, timeout=60, what="all 5000 readings")
    assert col.stop() == 0
    broker.stop()
    assert "reconnecting" in col.text()


@needs_mosquitto_pub
def test_burst_memory_stays_bounded(mosquitto, tmp_path):
    """50 000 queued messages arrive at once; the receive queue bound and the broker's in-flight window
    keep the collector's peak memory far below what holding them all would take."""
    data = tmp_path / "data"
    col = CollectorProc(data, mosquitto.url).start()
    col.stop()
    n = 50_000
    lines = tmp_path / "burst.txt"
    base = now_ms() - 3 * 86_400_000
    pad = "x" * 0
    lines.write_text("".join(f'{{"ts": {base + i * 1000}, "power_kw": 36.0}}\n' for i in range(n)))
    with open(lines, "rb") as fh:
        subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(mosquitto.port), "-q", "1", "-l",
                        "-t", f"dcmon/v1/{FAC}/meter/grid-b"], stdin=fh, check=True, timeout=120)
    col.start()
    pid = col.proc.pid
    wait_for(lambda: count_unique(data, FAC) == n, timeout=120, what="burst stored")
    hwm_kb = int(next(l for l in open(f"/proc/{pid}/status") if l.startswith("VmHWM")).split()[1])
    assert col.stop() == 0
    assert hwm_kb < 700 * 1024, f"peak RSS {hwm_kb / 1024:.0f} MiB"


def test_sigterm_stores_what_was_received_and_exits_cleanly(mosquitto, tmp_path):
    data = tmp_path / "data"
    col = CollectorProc(data, mosquitto.url).start()
    pub = paho_publisher(mosquitto.port)
    msgs = meter_messages(2000, meter="ups-1")
    publish_all(pub, msgs)
    assert col.stop(signal.SIGTERM) == 0
    assert "collector stopped" in col.text()
    col.start()                       # anything not acknowledged before the stop is redelivered now
    wait_for(lambda: count_unique(data, FAC) == 2000, what="2000 stored")
    stop_client(pub)
    assert col.stop(signal.SIGINT) == 0
    keys, rows = stored_keys(data, FAC)
    assert len(set(keys)) == 2000


def test_shared_subscription_sessions_survive_a_broker_restart(tmp_path):
    """reliability #11 for the protocol shipped in scale-out mode (MQTT 5, session expiry): messages
    queued for offline group members survive a clean broker restart."""
    from dcmon.collector.brokers import free_port
    broker = MosquittoProcess(tmp_path / "broker", free_port()).start()
    data = tmp_path / "data"
    cols = [CollectorProc(data, broker.url, "--share-group", "g", client_id=f"shared-{i}").start() for i in (1, 2)]
    for c in cols:
        c.stop()
    pub = paho_publisher(broker.port)
    publish_all(pub, meter_messages(2000))
    stop_client(pub)
    broker.stop()
    broker.start()
    for c in cols:
        c.start()
    wait_for(lambda: count_unique(data, FAC) == 2000, timeout=60, what="queued shared messages after restart")
    for c in cols:
        assert c.stop() == 0
    broker.stop()


def test_broker_drops_are_reported_in_log_and_health(tmp_path):
    """reliability #1: with Mosquitto's default-style queue limit an offline collector loses messages;
    the collector watches $SYS/broker/publish/messages/dropped and reports it."""
    from dcmon.collector.brokers import free_port, plain_config
    port = free_port()
    conf = plain_config(port).replace("max_queued_messages 0", "max_queued_messages 100") + "sys_interval 1\n"
    broker = MosquittoProcess(tmp_path / "broker", port, config_text=conf).start()
    data = tmp_path / "data"
    col = CollectorProc(data, broker.url).start()
    col.stop()
    pub = paho_publisher(broker.port)
    publish_all(pub, meter_messages(300))
    stop_client(pub)
    col.start()

    def dropped():
        doc = open_store(data).get_status("collector-test-collector") or {}
        return (doc.get("broker_dropped") or 0) > 0
    wait_for(dropped, what="broker_dropped in the health document")
    assert col.stop() == 0
    broker.stop()
    assert "the broker dropped messages" in col.text()
    assert count_unique(data, FAC) < 300


def test_mapped_device_payloads_are_collected(mosquitto, tmp_path):
    """The shipped example mapping: the collector subscribes to the device's own topic and converts units."""
    from conftest import REPO
    data = tmp_path / "data"
    col = CollectorProc(data, mosquitto.url, "--mapping", str(REPO / "deploy" / "collector" / "mapping.example.yaml")
                        ).start()
    import datetime as dt
    local = (dt.datetime.now(dt.timezone(dt.timedelta(hours=8))) - dt.timedelta(hours=1)).strftime("%Y-%m-%d %H:%M:%S")
    pub = paho_publisher(mosquitto.port)
    publish_all(pub, [("acrel/cd-east-01/pm/crac-1/data",
                       orjson.dumps({"time": local, "data": {"EP": 2_500_000, "P": 45_000}}))])
    stop_client(pub)
    wait_for(lambda: count_unique(data, FAC) == 1, what="mapped reading")
    assert col.stop() == 0
    t = open_store(data).read(FAC, "meter").to_pylist()[0]
    assert (t["source_id"], t["energy_kwh"], t["power_kw"]) == ("crac-1", 2500.0, 45.0)   # Wh → kWh, W → kW
