"""Hostile input and store faults against a real Mosquitto and ``dcmon collect`` processes:
an impossible spike (live, late, and first after a restart), a damaged file in a live partition,
a store that keeps failing, floods of 1 MiB messages at QoS 0 and 1, deep nesting, a topic naming
another facility. Every wait polls with a generous deadline."""
import time

import orjson
import pytest

from dcmon.store.quarantine import facility_summary, iter_records
from dcmon.readings import now_ms
from dcmon.store import open_store

from conftest import (CollectorProc, count_unique, needs_mosquitto, paho_publisher, publish_all, stop_client,
                      wait_for)

pytestmark = [pytest.mark.integration, needs_mosquitto]
FAC = "cd-east-01"
METER = f"dcmon/v1/{FAC}/meter/grid-a"
MIN = 60_000


def _health(data):
    return open_store(data).get_status("collector-test-collector") or {}


def _readings(start, n, kwh0=1000.0, kw=600.0):
    return [(METER, orjson.dumps({"ts": start + i * MIN, "energy_kwh": kwh0 + i * kw / 60})) for i in range(n)]


def test_an_impossible_spike_is_rejected_live_late_and_after_a_restart(mosquitto, tmp_path):
    data = tmp_path / "data"
    col = CollectorProc(data, mosquitto.url).start()
    start = (now_ms() // MIN - 120) * MIN
    pub = paho_publisher(mosquitto.port)
    publish_all(pub, _readings(start, 60))
    wait_for(lambda: count_unique(data, FAC) == 60, what="a normal hour stored")
    # the message: a late reading 30 s after minute 30, absurd counter
    publish_all(pub, [(METER, orjson.dumps({"ts": start + 30 * MIN + 30_000, "energy_kwh": 9e12}))])
    wait_for(lambda: _health(data).get("rejected", 0) >= 1, what="the late spike rejected")
    assert col.stop() == 0
    # a fresh collector: its first reading is checked against the store
    col = CollectorProc(data, mosquitto.url).start()
    publish_all(pub, [(METER, orjson.dumps({"ts": start + 61 * MIN, "energy_kwh": 9e12})),
                      (METER, orjson.dumps({"ts": start + 62 * MIN, "energy_kwh": 1000.0 + 62 * 10}))])
    wait_for(lambda: count_unique(data, FAC) == 61, what="the good reading after the spike stored")
    wait_for(lambda: _health(data).get("rejected", 0) >= 1, what="the spike after a restart rejected")
    stop_client(pub)
    assert col.stop() == 0
    reasons = [r["reason"] for r in iter_records(data)]
    assert len(reasons) == 2 and all("impossible for meter 'grid-a'" in r for r in reasons)
    assert "jumps from 1300 " in reasons[0]      # its predecessor, minute 30: 1000 + 30 × 10 kWh
    assert "jumps from 1590 " in reasons[1]      # the store's last reading: 1000 + 59 × 10 kWh


def test_a_damaged_file_is_moved_aside_and_collection_carries_on(mosquitto, tmp_path):
    data = tmp_path / "data"
    start = (now_ms() // MIN - 120) * MIN
    store = open_store(data)
    from dcmon.readings import to_table
    store.append(to_table([{"facility_id": FAC, "kind": "meter", "source_id": "grid-a", "ts": start,
                            "energy_kwh": 1000.0, "received_at": start, "origin": "test"}]))
    part = store.files(FAC, "meter")[0].parent
    bad = part / "part-00000000000000000001-000000000bad.parquet"
    bad.write_bytes(bytes(range(256)) * 8)          # 2 KB that are no Parquet file
    col = CollectorProc(data, mosquitto.url).start()
    pub = paho_publisher(mosquitto.port)
    publish_all(pub, _readings(start + MIN, 5, kwh0=1010.0))   # the guard reads the partition: finds the file
    stop_client(pub)
    def stored():
        try:
            return count_unique(data, FAC, "meter") == 6
        except Exception:    # (this helper reads every file: the damaged one until it is moved)
            return False
    wait_for(stored, what="readings stored past the damaged file")
    h = wait_for(lambda: (lambda d: d if d.get("damaged_files") == 1 else None)(_health(data)),
                 what="health names the damaged file")
    assert h["damaged"][0]["path"].endswith(bad.name) and h["damaged"][0]["reason"]
    assert not bad.exists() and (data / "damaged" / bad.relative_to(data)).exists()
    assert "damaged store file" in col.text() and str(bad) in col.text()
    t0 = time.monotonic()
    assert col.stop(timeout=20) == 0
    assert time.monotonic() - t0 < 20


def test_sigterm_ends_a_collector_whose_store_keeps_failing(mosquitto, tmp_path):
    data = tmp_path / "data"
    blocker = data / "readings" / f"facility={FAC}"
    blocker.parent.mkdir(parents=True)
    blocker.write_text("not a folder")               # every write of this facility fails
    col = CollectorProc(data, mosquitto.url, "--queue-mib", "1").start()
    pub = paho_publisher(mosquitto.port)
    publish_all(pub, _readings((now_ms() // MIN - 10) * MIN, 3))
    wait_for(lambda: _health(data).get("store_errors", 0) >= 2, what="health reports the failing store")
    assert "store failed" in (_health(data).get("last_error") or "")
    # more than the queue's byte budget behind the stuck batch (and the batches parsed meanwhile, up to
    # 3 × 4 MiB): paho's thread waits for room too
    for topic, body in _flood(40, 512 << 10):
        assert pub.publish(topic, body, qos=1).rc == 0
    wait_for(lambda: (lambda d: d if d.get("queue", 0) >= 1 and d.get("queue_bytes", 0) >= 512 << 10
                      else None)(_health(data)), what="a full receive queue")
    assert col.stop(timeout=20) == 0                  # returns well before the 20 s deadline or fails here
    stop_client(pub)
    assert "stopping without acknowledging them" in col.text()


def _flood(n, size):
    """``n`` messages of ``size`` bytes: a JSON array of readings of an unknown meter (all rejected)."""
    item = orjson.dumps({"ts": now_ms() - 3_600_000, "energy_kwh": 1.0, "meter_id": "ghost"})
    body = b"[" + b",".join([item] * ((size - 2) // (len(item) + 1))) + b"]"
    return [(f"dcmon/v1/{FAC}/meter/grid-a", body)] * n


def test_qos0_flood_is_dropped_and_counted_beyond_the_byte_budget(mosquitto, tmp_path):
    data = tmp_path / "data"
    col = CollectorProc(data, mosquitto.url, "--qos", "0", "--queue-mib", "4").start()
    pub = paho_publisher(mosquitto.port)
    msgs = _flood(150, 1 << 20)
    for topic, body in msgs:
        assert pub.publish(topic, body, qos=0).rc == 0
    h = wait_for(lambda: (lambda d: d if d.get("messages", 0) + d.get("dropped_messages", 0) >= 150 and
                          d.get("queue", 1) == 0 else None)(_health(data)), timeout=120, what="flood handled")
    stop_client(pub)
    assert h["dropped_messages"] > 0 and h["queue_max_bytes"] == 4 << 20
    assert h["rejected_messages"] == h["messages"] and h["quarantine_records"] == h["messages"]
    assert "dropped" in col.text()
    assert col.stop() == 0


def test_qos1_flood_waits_at_the_broker_and_loses_nothing(mosquitto, tmp_path):
    data = tmp_path / "data"
    col = CollectorProc(data, mosquitto.url, "--queue-mib", "4").start()
    pub = paho_publisher(mosquitto.port)
    publish_all(pub, _flood(60, 1 << 20), timeout=180)
    stop_client(pub)
    h = wait_for(lambda: (lambda d: d if d.get("rejected_messages", 0) >= 60 else None)(_health(data)), timeout=180,
                 what="every message of the flood quarantined")
    assert h["dropped_messages"] == 0 and h["messages"] == 60
    recs = list(iter_records(data))
    assert len(recs) == 60 and all(len(r["raw"]) < 17_000 and r["rejected"] > 10_000 for r in recs)
    assert col.stop() == 0


def test_deep_nesting_costs_only_its_item_and_topics_match_facilities_exactly(mosquitto, tmp_path):
    data = tmp_path / "data"
    col = CollectorProc(data, mosquitto.url).start()
    t = (now_ms() // MIN - 30) * MIN
    deep = "[" * 1000 + "]" * 1000
    payload = ('[{"ts": %d, "energy_kwh": 5.0}, {"ts": %d, "energy_kwh": %s}, {"ts": %d, "energy_kwh": 6.0}]'
               % (t, t + MIN, deep, t + 2 * MIN)).encode()
    other = "cd-edge-01"
    pub = paho_publisher(mosquitto.port)
    publish_all(pub, [(METER, payload), (f"dcmon/v1/{other}/{FAC}/x", b'{"ts": 1}')])
    stop_client(pub)
    wait_for(lambda: count_unique(data, FAC) == 2, what="the two good readings stored")
    wait_for(lambda: _health(data).get("rejected", 0) == 2, what="two rejections")
    assert col.stop() == 0
    mine, theirs = facility_summary(data, FAC), facility_summary(data, other)
    assert [r["where"] for r in mine["latest"]] == [METER + "[1]"]
    assert [r["topic"] for r in theirs["latest"]] == [f"dcmon/v1/{other}/{FAC}/x"]
    h = _health(data)
    assert h["by_facility"][FAC] == {"accepted": 2, "rejects_by_reason": {"JSON array": 1}}
    assert sum(h["by_facility"][other]["rejects_by_reason"].values()) == 1
