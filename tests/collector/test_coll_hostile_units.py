"""Hostile input without a broker: plausibility against both neighbours and the store, depth and
size limits that reject only the offending item, a bounded quarantine and its index, exact
facility matching. The same code runs in the live collector (see test_coll_hostile.py)."""
import datetime as dt
import json
import os

import orjson
from hypothesis import HealthCheck, given, settings, strategies as st

from dcmon.collector.ingest import Ingestor, store_neighbours
from dcmon.collector.jumpguard import JumpGuard
from dcmon.collector.parsers import parse
from dcmon.collector.parsers.common import MAX_REASON_CHARS
from dcmon.store.quarantine import (MAX_PAYLOAD_KEPT, Quarantine, facility_summary, iter_records,
                                        quarantine_dir)
from dcmon.readings import now_ms, to_table
from dcmon.store import open_store

FAC = "cd-east-01"
TOPIC = f"dcmon/v1/{FAC}/meter/grid-a"
NOON = 1_782_907_200_000          # 2026-07-01T12:00:00Z
RECEIVED = NOON + 86_400_000      # a day later: every reading is in the past
MIN = 60_000


def _p(registry, payload, guard, topic=TOPIC, received=RECEIVED):
    return parse(topic, orjson.dumps(payload), registry, received_at_ms=received, guard=guard)


def _day(start_kwh=1000.0, kw=600.0, n=60, start=NOON - 30 * MIN):
    """n one-minute readings at ``kw`` [kW]: +kw/60 kWh a minute."""
    return [{"ts": start + i * MIN, "energy_kwh": start_kwh + i * kw / 60} for i in range(n)]


def test_meter_ceiling_defaults_to_three_times_live_design_power(registry):
    fac = registry.facilities[FAC]
    racks = fac.racks
    live = racks.loc[racks["status"] != "decommissioned", "design_power_kw"].sum()
    assert fac.meter_max_power_kw("grid-a") == max(100.0, 3 * float(live))
    assert JumpGuard().ceiling_kw(fac, "meter", "grid-a") == fac.meter_max_power_kw("grid-a")


def test_a_late_absurd_reading_between_good_ones_is_rejected(registry, tmp_path):
    """The issue's case: after a normal day, {"ts": noon + 30 s, "energy_kwh": 9e12} arrives late."""
    store = open_store(tmp_path)
    guard = JumpGuard(history=store_neighbours(store))     # as in the collector: memory, then the store
    rows, rej = _p(registry, _day(), guard)
    assert len(rows) == 60 and not rej
    store.append(to_table(rows))
    rows, rej = _p(registry, {"ts": NOON + 30_000, "energy_kwh": 9e12}, guard)
    assert not rows and len(rej) == 1
    assert "impossible for meter 'grid-a'" in rej[0].reason and "jumps from 1300" in rej[0].reason
    # a late reading that fits between its neighbours is fine (600 kW: +5 kWh in 30 s)
    before = 1000.0 + 30 * 600 / 60
    rows, rej = _p(registry, {"ts": NOON + 30_000, "energy_kwh": before + 5.0}, guard)
    assert len(rows) == 1 and not rej


def test_a_late_reading_below_its_predecessor_is_not_a_jump(registry):
    """A decrease may be a reset (the metrics classify it); only impossible rises are refused."""
    guard = JumpGuard()
    _p(registry, _day(n=10, start=NOON - 5 * MIN), guard)
    rows, rej = _p(registry, {"ts": NOON + 30_000, "energy_kwh": 3.0}, guard)
    assert len(rows) == 1 or "next reading" in rej[0].reason   # 3 → next reading ~1300 kWh in 30 s: refused
    assert all("jumps from" not in r.reason for r in rej)


def test_the_first_reading_after_a_start_is_checked_against_the_store(registry, tmp_path):
    store = open_store(tmp_path)
    rows, _ = _p(registry, _day(), JumpGuard())
    store.append(to_table(rows))
    fresh = JumpGuard(history=store_neighbours(store))       # a collector just started
    rows, rej = _p(registry, {"ts": NOON + 30 * MIN, "energy_kwh": 9e12}, fresh)
    assert not rows and "jumps from" in rej[0].reason and "from 1590 " in rej[0].reason   # last stored: 1000 + 59 × 10
    # newest good reading: accepted, and from now on memory holds the neighbours
    rows, rej = _p(registry, {"ts": NOON + 31 * MIN, "energy_kwh": 1000.0 + 61 * 10}, fresh)
    assert len(rows) == 1 and not rej
    # a late one older than anything in memory: the store again, both sides (0 → the next stored 1210 kWh in 30 s)
    rows, rej = _p(registry, {"ts": NOON - 10 * MIN + 30_000, "energy_kwh": 9e12}, fresh)
    assert not rows and "jumps from 1200 " in rej[0].reason
    rows, rej = _p(registry, {"ts": NOON - 10 * MIN + 30_000, "energy_kwh": 0.0}, fresh)
    assert not rows and "the next reading (1210 at 2026-07-01T11:51:00Z)" in rej[0].reason


def test_legitimate_reset_and_replaced_meter_keep_working(registry):
    guard = JumpGuard()
    rows, rej = _p(registry, _day(start_kwh=99_990.0, n=3) + [{"ts": NOON - 27 * MIN, "energy_kwh": 0.5}], guard)
    assert len(rows) == 4 and not rej      # a reset to 0.5 kWh: the metrics count it
    rows, rej = _p(registry, [{"ts": NOON - 26 * MIN, "energy_kwh": 5e6},            # new meter starts high: refused
                              {"ts": NOON - 25 * MIN, "energy_kwh": 5e6 + 10}], guard)   # continues: a new baseline
    assert [r["energy_kwh"] for r in rows] == [5e6 + 10] and len(rej) == 1


def test_import_rejects_the_spike_row_with_its_line(registry, tmp_path, capsys):
    from dcmon.cli import main
    from tests.conftest import FIXTURES
    csv = tmp_path / "in.csv"
    lines = ["ts,facility_id,kind,id,energy_kwh"]
    lines += [f"{r['ts']},{FAC},meter,grid-a,{r['energy_kwh']}" for r in _day(n=10)]
    lines.insert(4, f"{NOON - 27 * MIN + 30_000},{FAC},meter,grid-a,9e12")   # line 5: between two readings
    csv.write_text("\n".join(lines) + "\n")
    assert main(["import", str(csv), "--config", str(FIXTURES), "--data", str(tmp_path / "d")]) == 3
    out = capsys.readouterr().out
    assert "10 stored" in out and "1 rejected" in out
    rejects = (tmp_path / "in.csv.rejects.csv").read_text().splitlines()
    assert rejects[1].startswith("5,") and "impossible for meter 'grid-a'" in rejects[1]
    # the same row on its own, after the good ones are stored: checked against the store
    csv2 = tmp_path / "late.csv"
    csv2.write_text(f"ts,facility_id,kind,id,energy_kwh\n{NOON - 25 * MIN + 30_000},{FAC},meter,grid-a,9e12\n")
    assert main(["import", str(csv2), "--config", str(FIXTURES), "--data", str(tmp_path / "d")]) == 3


# ------------------------------------------------------------------ depth and size limits
def test_a_value_nested_1000_deep_costs_only_its_item(registry):
    deep = "[" * 1000 + "]" * 1000
    good = _day(n=2)
    payload = ("[" + orjson.dumps(good[0]).decode() + ', {"ts": 1, "energy_kwh": ' + deep + "}, "
               + orjson.dumps(good[1]).decode() + "]").encode()
    rows, rej = parse(TOPIC, payload, registry, received_at_ms=RECEIVED)
    assert [r["ts"] for r in rows] == [g["ts"] for g in good]
    assert len(rej) == 1 and rej[0].where == TOPIC + "[1]" and "JSON array" in rej[0].reason


def test_an_item_deeper_than_the_decoder_allows_costs_only_itself(registry):
    deep = "[" * 3000 + "]" * 3000
    good = _day(n=2)
    payload = ("[" + orjson.dumps(good[0]).decode() + "," + deep + "," + orjson.dumps(good[1]).decode() + "]").encode()
    rows, rej = parse(TOPIC, payload, registry, received_at_ms=RECEIVED)
    assert len(rows) == 2 and len(rej) == 1 and rej[0].where == TOPIC + "[1]"


def test_a_huge_string_is_rejected_with_a_short_reason(registry):
    payload = orjson.dumps([_day(n=1)[0], {"ts": NOON, "energy_kwh": "x" * 500_000}])
    rows, rej = parse(TOPIC, payload, registry, received_at_ms=RECEIVED)
    assert len(rows) == 1 and len(rej) == 1
    assert "500000 characters long" in rej[0].reason and len(rej[0].reason) <= MAX_REASON_CHARS + 40
    assert len(rej[0].raw) < 2100


GOOD = st.integers(min_value=0, max_value=50).map(
    lambda i: {"ts": NOON + i * MIN, "energy_kwh": 1000.0 + i, "power_kw": 60.0})
JUNK = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=50),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
                    max_leaves=20)
JUNK_ITEM = st.one_of(JUNK, st.dictionaries(st.sampled_from(["ts", "energy_kwh", "power_kw", "status", "x"]), JUNK,
                                            max_size=4),
                      st.integers(min_value=20, max_value=1500).map(lambda d: "DEEP%d" % d),
                      st.integers(min_value=1025, max_value=5000).map(lambda n: "LONG%d" % n))


def _encode(item) -> str:
    if isinstance(item, str) and item.startswith("DEEP"):
        d = int(item[4:])
        return '{"ts": 1, "power_kw": ' + "[" * d + "]" * d + "}"
    if isinstance(item, str) and item.startswith("LONG"):
        return orjson.dumps({"ts": NOON, "status": "y" * int(item[4:])}).decode()
    return json.dumps(item)   # (the standard encoder: integers beyond 64 bits too)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(good=st.lists(GOOD, max_size=8, unique_by=lambda g: g["ts"]), junk=st.lists(JUNK_ITEM, max_size=6),
       data=st.data())
def test_fuzz_no_exception_escapes_and_no_good_item_is_lost(registry, good, junk, data):
    items = [("g", g) for g in good] + [("j", j) for j in junk]
    order = data.draw(st.permutations(range(len(items))))
    text = "[" + ",".join(_encode(items[i][1]) for i in order) + "]"
    for topic in (TOPIC, f"dcmon/v1/{FAC}/rack/A1-01-01"):
        rows, rej = parse(topic, text.encode(), registry, received_at_ms=RECEIVED)
        if topic == TOPIC:
            got = {r["ts"] for r in rows}
            assert {g["ts"] for g in good} <= got
        assert all(len(r.reason) <= MAX_REASON_CHARS + 40 for r in rej)


@settings(max_examples=300, deadline=None)
@given(payload=st.binary(max_size=300) | JUNK.map(lambda j: json.dumps(j).encode()),
       topic=st.sampled_from([TOPIC, f"dcmon/v1/{FAC}/racks", f"dcmon/v1/{FAC}/lp", f"dcmon/v1/{FAC}/rack/A1-01-01",
                              "dcmon/v1/x/y/z", "other"]))
def test_fuzz_any_bytes_on_any_topic_never_raise(registry, payload, topic):
    rows, rej = parse(topic, payload, registry, received_at_ms=RECEIVED)
    assert rows or rej or topic.endswith("/lp")     # (empty line protocol holds nothing to reject)
    assert all(len(r.reason) <= MAX_REASON_CHARS + 40 and "internal error" not in r.reason for r in rej)


# ------------------------------------------------------------------ bounded quarantine
def _ingestor(tmp_path, registry, **kw):
    return Ingestor(registry, open_store(tmp_path / "data"), Quarantine(tmp_path / "data", writer="t", **kw))


def test_a_wholly_bad_message_is_one_record_with_its_payload_cut(tmp_path, registry):
    ing = _ingestor(tmp_path, registry)
    bad = [{"ts": NOON + i, "energy_kwh": 1.0, "meter_id": "ghost"} for i in range(30_000)]
    payload = orjson.dumps(bad)[: 1 << 20]
    payload = payload[: payload.rindex(b"},") + 1] + b"]"
    assert len(payload) > 900_000
    ing.process([(TOPIC, payload, now_ms())])
    recs = list(iter_records(tmp_path / "data"))
    assert len(recs) == 1
    (rec,) = recs
    assert rec["rejected"] > 15_000 and rec["facility_id"] == FAC
    assert rec["reason"].startswith(f"all {rec['rejected']} readings rejected") and len(rec["reason"]) <= 600
    assert len(rec["raw"].encode()) <= MAX_PAYLOAD_KEPT + 100
    size = sum(p.stat().st_size for p in quarantine_dir(tmp_path / "data").glob("*.jsonl"))
    assert size / len(payload) < 0.03       # quarantine bytes per rejected byte
    assert ing.stats.rejected == rec["rejected"] and ing.stats.rejected_messages == 1


def test_a_partly_good_message_keeps_a_few_item_records_and_a_summary(tmp_path, registry):
    ing = _ingestor(tmp_path, registry)
    items = _day(n=1) + [{"ts": NOON + i, "energy_kwh": 1.0, "bogus": i} for i in range(500)]
    ing.process([(TOPIC, orjson.dumps(items), now_ms())])
    recs = list(iter_records(tmp_path / "data"))
    assert len(recs) == 11 and sum(r["rejected"] for r in recs) == 500
    assert recs[-1]["reason"].startswith("490 more readings of this message rejected")


def test_the_quarantine_stays_under_its_cap_oldest_first(tmp_path, registry):
    cap = 1 << 20
    q = Quarantine(tmp_path, writer="t", max_bytes=cap)
    day0 = dt.datetime(2026, 7, 1, tzinfo=dt.UTC)
    for d in range(6):          # six days of ~300 KB each
        ms = int((day0 + dt.timedelta(days=d)).timestamp() * 1000)
        q.write_records([{"time": dt.datetime.fromtimestamp(ms / 1000, dt.UTC).isoformat()[:19] + "Z",
                          "received_at_ms": ms, "topic": TOPIC, "facility_id": FAC, "where": TOPIC,
                          "reason": "r", "rejected": 1, "raw": "x" * 3000} for _ in range(100)])
    files = sorted(p.name for p in quarantine_dir(tmp_path).glob("*.jsonl"))
    total = sum(p.stat().st_size for p in quarantine_dir(tmp_path).glob("*.jsonl"))
    assert total <= cap and files[0] > "2026-07-01" and files[-1].startswith("2026-07-06")
    assert q.index["pruned_files"] >= 2


def test_dashboard_counts_come_from_the_index_with_exact_facility(tmp_path, registry):
    """A topic dcmon/v1/B/A/x published by B is B's, never A's (no substring match)."""
    ing = _ingestor(tmp_path, registry)
    other = "cd-edge-01"
    ing.process([(f"dcmon/v1/{other}/{FAC}/x", b"{}", now_ms()),
                 (f"dcmon/v1/{FAC}/meter/ghost", orjson.dumps({"ts": NOON, "energy_kwh": 1}), now_ms())])
    ing.quarantine.close()
    mine = facility_summary(tmp_path / "data", FAC)
    assert mine["records"] == 1 and [r["topic"] for r in mine["latest"]] == [f"dcmon/v1/{FAC}/meter/ghost"]
    theirs = facility_summary(tmp_path / "data", other)
    assert theirs["records"] == 1 and theirs["latest"][0]["topic"] == f"dcmon/v1/{other}/{FAC}/x"
    # the files themselves are not read: removing them leaves the counts
    for p in quarantine_dir(tmp_path / "data").glob("*.jsonl"):
        os.remove(p)
    assert facility_summary(tmp_path / "data", FAC)["records"] == 1
    assert ing.stats.accepted_by_facility.get(FAC, 0) == 0
    assert dict(ing.stats.rejects_by_facility[FAC]) == {"unknown meter": 1}
    assert dict(ing.stats.rejects_by_facility[other]) == {"topic does not follow": 1}


def test_operators_see_only_their_facilitys_collector_figures():
    from dcmon.dashboard.pages.facility import health_items
    doc = {"collector-a": {"updated_at_ms": now_ms(), "connected": True, "messages_per_s": 12345.0, "rejected": 999,
                           "by_facility": {FAC: {"accepted": 7, "rejects_by_reason": {"unknown meter": 2}},
                                           "cd-edge-01": {"accepted": 50}}}}
    text = str(health_items(doc, "en", facility_id=FAC, only_facility=True))
    assert "12,345" not in text and "12345" not in text and "999" not in text and "cd-edge-01" not in text
    assert "readings accepted for this facility 7, rejected 2" in text
    assert "12,345" in str(health_items(doc, "en"))


def test_after_a_start_one_store_read_serves_every_meter_of_a_facility(registry, tmp_path):
    store = open_store(tmp_path)
    t0 = (now_ms() // MIN - 60) * MIN
    rows = [{"facility_id": FAC, "kind": "meter", "source_id": m, "ts": t0 + i * MIN, "energy_kwh": 100.0 + i,
             "received_at": t0, "origin": "test"} for m in ("grid-a", "grid-b", "ups-1") for i in range(10)]
    store.append(to_table(rows))
    reads = []

    class Counting:
        def read(self, *a, **kw):
            reads.append(a)
            return store.read(*a, **kw)
    lookup = store_neighbours(Counting())
    assert lookup(FAC, "meter", "grid-a", t0 + 20 * MIN) == ((t0 + 9 * MIN, 109.0), None)
    assert lookup(FAC, "meter", "ups-1", t0 + 20 * MIN) == ((t0 + 9 * MIN, 109.0), None)
    assert lookup(FAC, "meter", "crac-1", t0 + 20 * MIN) == (None, None)
    assert len(reads) == 1
    # a late reading between stored ones still finds both neighbours (one more read, for that source)
    assert lookup(FAC, "meter", "grid-b", t0 + 4 * MIN + 1) == ((t0 + 4 * MIN, 104.0), (t0 + 5 * MIN, 105.0))
    assert len(reads) == 2


def test_an_import_older_than_the_store_asks_the_store_once_per_source(registry, tmp_path):
    """Backfilling a gap before stored data: the first row finds both neighbours in the store, the
    rows after it are checked in memory (the window between those neighbours)."""
    store = open_store(tmp_path)
    rows, _ = _p(registry, _day(n=5, start=NOON + 60 * MIN, start_kwh=5000.0), JumpGuard())
    store.append(to_table(rows))
    calls = []
    inner = store_neighbours(store)

    def history(*a):
        calls.append(a)
        return inner(*a)
    guard = JumpGuard(history=history)
    older = _day(n=30, start=NOON, start_kwh=4600.0)           # 4600 … 4890 kWh, then the stored 5000 at +60 min
    rows, rej = _p(registry, older, guard)
    assert len(rows) == 30 and not rej and len(calls) == 1
    rows, rej = _p(registry, {"ts": NOON + 45 * MIN, "energy_kwh": 9e12}, guard)
    assert not rows and "impossible" in rej[0].reason and len(calls) == 1
