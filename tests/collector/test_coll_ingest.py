"""Ingestor and writer without a broker: what is acknowledged is durable; bad input never stops it."""

import orjson
import pytest

from dcmon.collector.ingest import Ingestor
from dcmon.collector.mqtt import BrokerURL, Collector, MqttOptions, Received, parse_broker_url
from dcmon.store.quarantine import Quarantine, get_record, iter_records
from dcmon.readings import now_ms
from dcmon.store import open_store

T = now_ms() - 3_600_000


def _ingestor(tmp_path, registry, store=None):
    return Ingestor(registry, store or open_store(tmp_path / "data"), Quarantine(tmp_path / "data", writer="t"))


def test_one_batch_keeps_good_readings_quarantines_bad_and_dedupes(tmp_path, registry):
    ing = _ingestor(tmp_path, registry)
    good = ("dcmon/v1/cd-east-01/meter/grid-a", orjson.dumps({"ts": T, "energy_kwh": 5.0}), now_ms())
    items = [good, good,  # a redelivered copy in the same batch
             ("dcmon/v1/cd-east-01/meter/grid-a", b"\xff\xfe garbage", now_ms()),
             ("dcmon/v1/cd-east-01/racks", orjson.dumps({"ts": T, "readings": [{"rack_id": "A1-01-01", "power_kw": 1},
                                                                                {"rack_id": "nope", "power_kw": 1}]}),
              now_ms())]
    ing.process(items)
    ing.process([good], redelivered=True)   # redelivered (DUP flag) in a later batch: not written again
    store = open_store(tmp_path / "data")
    assert store.read("cd-east-01").num_rows == 2
    s = ing.stats
    assert (s.messages, s.readings, s.written, s.rejected, s.rejected_messages) == (5, 4, 2, 2, 2)
    recs = list(iter_records(tmp_path / "data"))
    assert [r["reason"][:14] for r in recs] == ["malformed JSON", "unknown rack '"]
    assert recs[0]["topic"] == "dcmon/v1/cd-east-01/meter/grid-a" and "garbage" in recs[0]["raw"]
    assert get_record(tmp_path / "data", recs[1]["id"])["where"] == "dcmon/v1/cd-east-01/racks readings[1]"
    assert s.rejects_by_reason == {"malformed JSON": 1, "unknown rack": 1}


def test_torn_quarantine_line_is_skipped(tmp_path, registry):
    ing = _ingestor(tmp_path, registry)
    ing.process([("x/y", b"1", now_ms())])
    f = next((tmp_path / "data" / "quarantine").glob("*.jsonl"))
    with open(f, "ab") as fh:
        fh.write(b'{"time": "2026')   # crash mid-write
    assert len(list(iter_records(tmp_path / "data"))) == 1


class FlakyStore:
    """Fails the first ``fail`` appends, like a full disk that recovers."""

    def __init__(self, real, fail):
        self.real, self.fail, self.calls = real, fail, 0

    def append(self, table, **kw):
        self.calls += 1
        if self.calls <= self.fail:
            raise OSError(28, "No space left on device")
        return self.real.append(table, **kw)

    def __getattr__(self, name):
        return getattr(self.real, name)


class FakeClient:
    """Without paho's private _packet_queue, ack_many falls back to the public ack()."""

    _manual_ack = True

    def __init__(self, log):
        self.log = log

    def ack(self, mid, qos):
        self.log.append(("ack", mid))


def test_writer_acks_only_after_the_store_succeeded(tmp_path, registry, monkeypatch):
    store = FlakyStore(open_store(tmp_path / "data"), fail=2)
    events = []
    orig = store.real.append

    def append(table, **kw):
        r = orig(table, **kw)
        events.append(("stored", table.num_rows))
        return r
    store.real.append = append
    ing = _ingestor(tmp_path, registry, store)
    col = Collector(MqttOptions(broker=BrokerURL("mqtt", "127.0.0.1", 1), client_id="t"), ing)
    col.client = FakeClient(events)
    monkeypatch.setattr("time.sleep", lambda s: None)
    col._generation = 3
    t0 = now_ms()
    batch = [Received("dcmon/v1/cd-east-01/meter/grid-a", orjson.dumps({"ts": T + i, "power_kw": 1.0}), i + 1, 1, 3, t0,
                      0.0, False) for i in range(3)]
    batch.append(Received("dcmon/v1/cd-east-01/meter/grid-a", orjson.dumps({"ts": T + 9, "power_kw": 1.0}), 9, 1, 2, t0,
                          0.0, False))
    col._store_and_ack(batch)
    assert store.calls == 3 and ing.stats.store_errors == 2
    # Stored first, then acked; the message from an older connection (generation 2) is not acked here:
    # the broker redelivers it on the new connection and the store keeps one copy.
    assert events == [("stored", 4), ("ack", 1), ("ack", 2), ("ack", 3)]


def test_ack_many_writes_valid_puback_packets():
    import paho.mqtt.client as mqtt
    from dcmon.collector.mqtt import ack_many
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="x", manual_ack=True)
    ack_many(c, [1, 258, 65535])
    pkt = c._out_packet[-1]
    assert bytes(pkt["packet"]) == bytes([0x40, 2, 0, 1, 0x40, 2, 1, 2, 0x40, 2, 0xFF, 0xFF])


@pytest.mark.parametrize("url, message", [
    ("http://h", "scheme must be mqtt:// or mqtts://"),
    ("mqtt://user:pw@h", "do not put credentials in the URL"),
    ("mqtt://:1883", "no host name"),
    ("mqtt://h:99999", "Port out of range"),
])
def test_bad_broker_urls(url, message):
    with pytest.raises(ValueError) as e:
        parse_broker_url(url)
    assert message in str(e.value)
    assert "pw" not in str(e.value)


def test_broker_url_defaults():
    assert parse_broker_url("mqtts://example.org").port == 8883
    assert parse_broker_url("mqtt://127.0.0.1").port == 1883


@pytest.mark.parametrize("kw, message", [
    ({"qos": 2}, "qos value must be 0 or 1: 2"),
    ({"share_group": "g"}, "--share-group needs --protocol 5"),
    ({"protocol": "5", "share_group": "a/b"}, "--share-group must be a plain name"),
    ({"ca_file": "/no/such.pem"}, "--ca-file /no/such.pem: no such file"),
    ({"keepalive_s": 1}, "--keepalive must be 5..3600 s: 1"),
])
def test_bad_mqtt_options(kw, message):
    with pytest.raises(ValueError) as e:
        MqttOptions(broker=BrokerURL("mqtt", "h", 1883), client_id="c", **kw)
    assert message in str(e.value)
