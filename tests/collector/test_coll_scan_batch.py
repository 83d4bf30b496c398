"""The whole-scan check of rack scans and the batch table: the same readings, rejections and order as
make_reading one reading at a time (``fast=False``), and the same Arrow table as from_pylist."""
import json
from collections import defaultdict

import numpy as np
import orjson
import pyarrow as pa
from hypothesis import given, settings, strategies as st

from dcmon.collector.buffers import Rows, _Block, latest_by_source
from dcmon.collector.jumpguard import JumpGuard
from dcmon.collector.parsers import parse, parse_batch, parse_message
from dcmon.collector.parsers.common import Context
from dcmon.readings import SCHEMA

RECEIVED = 1782864600000  # 2026-07-01T00:10:00Z
T0 = 1782864000000
FAC = "cd-east-01"
TOPIC = f"dcmon/v1/{FAC}/racks"
RACKS = ["A1-01-01", "A1-01-02", "A1-01-03", "A2-12-17"]   # design power 4-5 kW: ceiling 12-15 kW

PLAIN = st.fixed_dictionaries({"rack_id": st.sampled_from(RACKS),
                               "power_kw": st.floats(0, 11) | st.integers(0, 11)})
ODD = st.one_of(
    st.fixed_dictionaries({"rack_id": st.sampled_from(RACKS + ["Z9-99-99", "", 7]),
                           "power_kw": st.one_of(st.floats(-1, 20), st.just(-0.0), st.integers(-1, 2**64 - 1),
                                                 st.just(2**53 + 1),
                                                 st.booleans(), st.none(), st.just("3.5"))}),
    st.fixed_dictionaries({"rack_id": st.sampled_from(RACKS), "power_kw": st.just(1.0),
                           "status": st.sampled_from(["in_service", "broken"])}),
    st.fixed_dictionaries({"rack_id": st.sampled_from(RACKS), "ts": st.just(T0)}),
    st.lists(st.integers(-2**63, 2**63 - 1), min_size=2, max_size=2), st.just("ab"), st.integers(-2**63, 2**63 - 1),
    st.none(),
    st.fixed_dictionaries({"rack_id": st.lists(st.integers(0, 9), max_size=1), "power_kw": st.just(1.0)}),
)


def both(registry, readings, scan_ts=T0, guard=True):
    payload = orjson.dumps({"ts": scan_ts, "readings": readings})
    out = []
    for fast in (True, False):
        rows, rej = parse(TOPIC, payload, registry, received_at_ms=RECEIVED, guard=JumpGuard() if guard else None,
                          fast=fast)
        out.append((rows, [(r.where, r.reason) for r in rej]))
    return out


@settings(max_examples=400, deadline=None)
@given(plain=st.lists(PLAIN, min_size=1, max_size=30), odd=st.lists(ODD, max_size=2), at=st.integers(0, 30),
       guard=st.booleans())
def test_whole_scan_check_equals_make_reading_path(registry, plain, odd, at, guard):
    """Mostly plain scans (so the whole-scan check is what decides), with 0-2 odd readings anywhere."""
    readings = plain[:at] + odd + plain[at:]
    fast, slow = both(registry, readings, guard=guard)
    assert fast == slow
    for a, b in zip(fast[0], slow[0]):
        assert type(a["power_kw"]) is type(b["power_kw"]) is float


def test_a_plain_scan_is_one_block_checked_at_once(registry):
    readings = [{"rack_id": r, "power_kw": p} for r, p in zip(RACKS * 50, [0, 1, 2.5, -0.0] * 50)]
    ctx = Context(registry=registry, received_at_ms=RECEIVED, guard=JumpGuard())
    rows, rej = parse_message(TOPIC, orjson.dumps({"ts": T0, "readings": readings}), ctx)
    assert rej == [] and len(rows) == 200
    assert len(rows.segments) == 1 and isinstance(rows.segments[0].power_kw, np.ndarray)
    fast, slow = both(registry, readings)
    assert fast == slow and fast[1] == []


def test_a_power_above_one_racks_ceiling_is_left_to_the_guard(registry):
    guard = JumpGuard()
    ceiling = guard.ceiling_kw(registry.facilities[FAC], "rack", "A1-01-01")
    readings = [{"rack_id": "A1-01-03", "power_kw": ceiling + 1},     # below A1-01-03's ceiling (5 kW design)
                {"rack_id": "A1-01-01", "power_kw": ceiling + 1}]     # above A1-01-01's (4 kW design)
    fast, slow = both(registry, readings)
    assert fast == slow
    assert [r["source_id"] for r in fast[0]] == ["A1-01-03"]
    assert "impossible for rack 'A1-01-01'" in fast[1][0][1]


def test_batch_table_equals_from_pylist_for_mixed_rows():
    rows = Rows()
    rows.add_block(_Block(FAC, "rack", T0, RECEIVED, "mqtt", ["A", "B"], [1.0, 2.0]))
    rows.add_block(_Block(FAC, "rack", T0 + 1000, RECEIVED + 5, "mqtt", ["A"], np.array([3.0])))
    rows.add_block(_Block("cd-west-02", "rack", T0, RECEIVED, "sim", ["C"], [4.0]))
    rows.append({"facility_id": FAC, "kind": "meter", "source_id": "grid-a", "ts": T0, "received_at": RECEIVED,
                 "origin": "mqtt", "energy_kwh": 5.0, "power_kw": None})
    rows.add_block(_Block(FAC, "rack", T0 + 2000, RECEIVED, "mqtt", ["B", "A"], np.array([5.0, 6.0])))
    rows.add_block(_Block(FAC, "rack", T0, RECEIVED, "mqtt", [], []))          # empty: not added
    t = rows.to_table()
    assert t.schema == SCHEMA and t.num_rows == len(rows) == 7
    assert t.equals(pa.Table.from_pylist(rows.as_dicts(), schema=SCHEMA))
    assert t.column("source_id").to_pylist() == ["A", "B", "A", "C", "grid-a", "B", "A"]

    python, arrow = defaultdict(dict), defaultdict(dict)
    rows.update_last_seen(python)
    assert latest_by_source(t) == python
    import dcmon.collector.buffers as P
    old = P.LAST_SEEN_ARROW_ROWS
    P.LAST_SEEN_ARROW_ROWS = 1
    try:
        rows.update_last_seen(arrow, t)
    finally:
        P.LAST_SEEN_ARROW_ROWS = old
    assert arrow == python
    assert python[FAC] == {"A": (T0 + 2000, RECEIVED), "B": (T0 + 2000, RECEIVED), "grid-a": (T0, RECEIVED)}
    assert python["cd-west-02"] == {"C": (T0, RECEIVED)}


MESSAGE = st.one_of(
    st.lists(PLAIN, min_size=1, max_size=12).map(lambda r: (TOPIC, orjson.dumps({"ts": T0, "readings": r}))),
    st.tuples(st.lists(PLAIN, max_size=6), st.lists(ODD, max_size=2)).map(
        lambda p: (TOPIC, orjson.dumps({"ts": T0 + 1000, "readings": p[0] + p[1]}))),
    st.lists(PLAIN, min_size=1, max_size=4).map(      # valid JSON, but not compact: the per-message path
        lambda r: (TOPIC, json.dumps({"ts": T0 + 2000, "readings": r}).encode())),
    st.sampled_from([b'{"ts":01,"readings":[{"rack_id":"A1-01-01","power_kw":1}]}',
                     b'{"ts":1782864000000,"readings":[{"rack_id":"A1-01-01","power_kw":01.5}]}',
                     b'{"ts":1782864000000,"readings":[{"rack_id":"A1-01-01","power_kw":1e2}]}',
                     b'{"ts":1782864000000,"readings":[{"rack_id":"A1-01-01","power_kw":-0.0}]}',
                     b'{"ts":1782864000000,"readings":[{"rack_id":"A1-01-0\\u0031","power_kw":2}]}',
                     b'{"ts":9999999999999,"readings":[{"rack_id":"A1-01-01","power_kw":2}]}',
                     b'{"ts":1782864000000,"readings":[]}',
                     b'{"ts":1782864000000,"readings":[{"rack_id":"A1-01-01","power_kw":2}]}x']).map(
        lambda p: (TOPIC, p)),
    st.just((f"dcmon/v1/{FAC}/meter/grid-a", b'{"ts":1782864000000,"power_kw":2.5}')),
)


@settings(max_examples=300, deadline=None)
@given(messages=st.lists(MESSAGE, min_size=1, max_size=8), guard=st.booleans())
def test_a_batch_decoded_at_once_equals_each_message_through_make_reading(registry, messages, guard):
    """Batches (the ingest loop's path, where compact plain scans are decoded together as columns) give the
    same rows, in the same order, and the same rejections as every message parsed alone with fast=False."""
    ctx = Context(registry=registry, received_at_ms=RECEIVED, guard=JumpGuard() if guard else None)
    rows = Rows()
    got = parse_batch([(t, p, RECEIVED) for t, p in messages], ctx, rows)
    want_rows, want_rej = [], []
    slow_guard = JumpGuard() if guard else None
    for t, p in messages:
        r, rej = parse(t, p, registry, received_at_ms=RECEIVED, guard=slow_guard, fast=False)
        want_rows += r
        want_rej.append(([(x.where, x.reason) for x in rej], len(r)))
    assert rows.as_dicts() == want_rows
    assert [([(x.where, x.reason) for x in rej], n) for rej, n in got] == want_rej
    assert rows.to_table().equals(pa.Table.from_pylist(want_rows, schema=SCHEMA))
