"""Daily rollups: a period's energy from them equals the raw scan's, exactly, on hostile data.

The raw scan (``source_energy`` without a time zone: every reading through the accumulator) is
the reference; ``source_energy(..., timezone=...)`` answers from the store's rollup pieces where
they suffice and scans the rest. Every per-source figure, event and count must be the same.
"""
from __future__ import annotations

import datetime as dt
import math
from fractions import Fraction

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dcmon.metrics.energy import SourceParams
from dcmon.metrics.streaming import source_energy
from dcmon.metrics.period_energy import rollup_counter_result
from dcmon.readings import SCHEMA
from dcmon.store import open_store
from dcmon.store.rollups import compute_pieces

SHANGHAI = "Asia/Shanghai"
DAY = 86_400_000
# 2026-07-01 00:00 in Shanghai (UTC+8, no daylight saving) is 2026-06-30 16:00 UTC
JULY1_SH = int(dt.datetime(2026, 6, 30, 16, tzinfo=dt.UTC).timestamp() * 1000)
JULY1_UTC = int(dt.datetime(2026, 7, 1, tzinfo=dt.UTC).timestamp() * 1000)


def table(source, ts, energy, recv=None, power=None, facility="f1", kind="meter") -> pa.Table:
    n = len(ts)
    ts_arr = pa.array(np.asarray(ts, dtype=np.int64), pa.timestamp("ms", tz="UTC"))
    return pa.table({
        "facility_id": [facility] * n, "kind": [kind] * n, "source_id": [source] * n, "ts": ts_arr,
        "energy_kwh": pa.array(energy, pa.float64()),
        "power_kw": pa.array(power if power is not None else [None] * n, pa.float64()),
        "status": pa.nulls(n, pa.string()), "function": pa.nulls(n, pa.string()),
        "design_power_kw": pa.nulls(n, pa.float64()),
        "received_at": pa.array(np.asarray(recv if recv is not None else ts, dtype=np.int64), pa.timestamp("ms", tz="UTC")),
        "origin": ["test"] * n}, schema=SCHEMA)


def both(store, sources, params, edges, tz, kind="meter", **kw):
    args = (store, "f1", kind, sources, params, np.arange(len(sources)), len(sources), np.asarray(edges, dtype=np.int64))
    return source_energy(*args, **kw), source_energy(*args, timezone=tz, **kw)


def assert_same(raw, rolled):
    assert raw.sources == rolled.sources
    assert raw.energy_mwh.tolist() == rolled.energy_mwh.tolist()
    assert {k: Fraction(v) for k, v in raw.energy_frac_mwh.items() if v} == \
        {k: Fraction(v) for k, v in rolled.energy_frac_mwh.items() if v}
    assert raw.energy_kwh.tolist() == rolled.energy_kwh.tolist()
    assert raw.coverage.tolist() == rolled.coverage.tolist()
    assert raw.readings.tolist() == rolled.readings.tolist()
    assert raw.method == rolled.method
    assert raw.last_ts.tolist() == rolled.last_ts.tolist()
    assert [None if math.isnan(x) else x for x in raw.last_value] == [None if math.isnan(x) else x for x in rolled.last_value]
    assert raw.event_counts == rolled.event_counts
    assert repr(raw.events) == repr(rolled.events)   # (NaN values compare by their text)
    assert raw.late_readings == rolled.late_readings
    for i in range(len(raw.sources)):
        assert raw.exact_kwh([i]) == rolled.exact_kwh([i])


# ---------------------------------------------------------------- hostile data
@st.composite
def meter_history(draw):
    """One meter's readings over ~9 days around a period, with resets, rollovers, dips, gaps,
    implausible steps, duplicates, late and power-only readings."""
    step = draw(st.sampled_from([60_000, 300_000, 900_000, 3_600_000]))
    start = JULY1_SH - 2 * DAY + draw(st.integers(0, 4)) * step
    n = draw(st.integers(0, min(9 * DAY // step, 400)))
    ts = start + np.arange(n, dtype=np.int64) * step
    ts = ts + np.asarray(draw(st.lists(st.integers(0, step // 3), min_size=n, max_size=n)), dtype=np.int64) \
        * draw(st.booleans())
    ts = np.unique(ts)
    n = len(ts)
    rate = draw(st.sampled_from([0.0, 0.25, 1.5, 37.0]))          # kWh per step
    e = 1000.0 + np.cumsum(np.full(n, rate))
    e = np.round(e, draw(st.integers(0, 6)))
    recv = ts.copy()
    power = [None] * n
    for _ in range(draw(st.integers(0, 6))):
        if n == 0:
            break
        i = draw(st.integers(0, n - 1))
        what = draw(st.sampled_from(["reset", "rollover", "dip", "spike", "drop", "late", "power", "nan", "norecv"]))
        if what == "reset":
            e[i:] = e[i:] - e[i] + draw(st.floats(0, 5))
        elif what == "rollover":
            e[i:] = e[i:] - e[i] + 1.0          # the register wrapped (rollover_kwh below)
            e[:i] = e[:i] + 99_000.0
        elif what == "dip":
            e[i] = e[i] - draw(st.sampled_from([0.1, 0.4, 3.0]))
        elif what == "spike":
            e[i] = e[i] + 9e6
        elif what == "drop":
            k = draw(st.integers(1, max(1, n // 3)))
            keep = np.ones(n, bool)
            keep[i:i + k] = False
            ts, e, recv = ts[keep], e[keep], recv[keep]
            power = [p for p, kp in zip(power, keep) if kp]
            n = len(ts)
        elif what == "late":
            recv[i] = recv[i] + draw(st.integers(1, 3)) * DAY
        elif what == "power":
            power[i] = 12.5
            e[i] = np.nan
        elif what == "nan":
            e[i] = np.nan
        elif what == "norecv":
            recv[i] = -1
    # a reading far before or after (months away: the edge search finds it, within its bound)
    for sign in (-1, 1):
        if n and draw(st.booleans()):
            k = draw(st.sampled_from([20, 45, 400, 1200]))
            t_far = int(ts[0] - k * DAY) if sign < 0 else int(ts[-1] + k * DAY)
            e_far = float(e[0] - 7.0) if sign < 0 else float(e[-1] + 11.0)
            where = 0 if sign < 0 else n
            ts, e, recv = np.insert(ts, where, t_far), np.insert(e, where, e_far), np.insert(recv, where, t_far)
            power.insert(where, None)
            n += 1
    return ts, e, recv, power


def _store_history(store, source, hist, rng, kind="meter"):
    ts, e, recv, power = hist
    if len(ts) == 0:
        return
    energy = [None if (p is not None) else float(x) for x, p in zip(e, power)]
    energy = [None if (x is not None and math.isnan(x) and rng.random() < 0.5) else x for x in energy]
    t = table(source, ts, energy, recv=np.where(recv < 0, ts, recv), power=power, kind=kind)
    if (recv < 0).any():
        ra = t.column("received_at").to_pylist()
        t = t.set_column(t.schema.get_field_index("received_at"), "received_at",
                         pa.array([None if r < 0 else x for x, r in zip(ra, recv)], pa.timestamp("ms", tz="UTC")))
    # several appends (several files per partition, merged on read), and duplicates of some rows
    order = rng.permutation(len(ts))
    for chunk in np.array_split(order, rng.integers(1, 4)):
        if len(chunk):
            store.append(t.take(pa.array(np.sort(chunk))), check_existing=False)
    dup = t.take(pa.array(rng.choice(len(ts), size=min(3, len(ts)), replace=False)))
    dup = dup.set_column(dup.schema.get_field_index("energy_kwh"), "energy_kwh",
                         pa.array([1e9] * dup.num_rows, pa.float64()))
    store.append(dup, check_existing=False)   # later copies of a key never win


params_st = st.builds(
    SourceParams,
    rollover_kwh=st.sampled_from([None, 100_000.0]),
    noise_kwh=st.sampled_from([0.5, 0.0]),
    max_gap_ms=st.sampled_from([600_000, 1_800_000, 7_200_000]),
    max_power_kw=st.sampled_from([None, 5_000.0, 1e7]))


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(hists=st.lists(meter_history(), min_size=1, max_size=3), params=st.lists(params_st, min_size=3, max_size=3),
       first=st.integers(-1, 4), days=st.integers(1, 4), tz=st.sampled_from([SHANGHAI, "UTC"]),
       search=st.booleans(), seed=st.integers(0, 2**31 - 1), kind=st.sampled_from(["meter", "rack"]))
def test_rollup_period_equals_raw_scan(tmp_path_factory, hists, params, first, days, tz, search, seed, kind):
    """Meters (monthly partitions, late readings) and racks (daily partitions), Shanghai and UTC days."""
    store = open_store(tmp_path_factory.mktemp("roll"))
    rng = np.random.default_rng(seed)
    sources = [f"m{i}" for i in range(len(hists))] + ["silent"]
    for s, h in zip(sources, hists):
        _store_history(store, s, h, rng, kind=kind)
    day0 = JULY1_SH if tz == SHANGHAI else JULY1_UTC
    edges = [day0 + first * DAY, day0 + (first + days) * DAY]
    prm = (params * 2)[:len(sources)]
    raw, rolled = both(store, sources, prm, edges, tz, kind=kind, search_edges=search)
    assert_same(raw, rolled)
    # and again once the rollups are on disk (a new process reads them from their files)
    raw2, rolled2 = both(open_store(store.root), sources, prm, edges, tz, kind=kind, search_edges=search)
    assert_same(raw2, rolled2)


# ---------------------------------------------------------------- answered from rollups
def _clean_store(path, days=10, step=900_000):
    store = open_store(path)
    ts = np.arange(JULY1_SH - 3 * DAY, JULY1_SH + days * DAY + 1, step, dtype=np.int64)
    for i, s in enumerate(["a", "b"]):
        store.append(table(s, ts, 500.0 * i + np.arange(len(ts)) * 0.123456), check_existing=False)
    return store, ts


def test_clean_counters_are_answered_from_rollups_without_a_raw_scan(tmp_path):
    store, _ = _clean_store(tmp_path)
    edges = np.array([JULY1_SH, JULY1_SH + 7 * DAY])
    prm = [SourceParams(max_gap_ms=1_800_000, max_power_kw=1000.0)] * 2
    got = rollup_counter_result(store, "f1", "meter", ["a", "b"], prm, edges, SHANGHAI, search_edges=True,
                                detect_late=True, edge_search_months=37)
    res, bad = got
    assert not bad.any()
    # 7 days of 15-minute readings: 672 steps of 0.123456 kWh, and the readings counted inside
    assert res.source_energy_mwh.tolist() == [672 * 123456] * 2
    assert res.source_readings.tolist() == [672, 672]
    assert res.source_covered_ms.tolist() == [7 * DAY] * 2
    raw, rolled = both(store, ["a", "b"], prm, edges, SHANGHAI)
    assert_same(raw, rolled)


def test_a_late_reading_makes_its_day_stale_and_the_figure_follows(tmp_path):
    store, ts = _clean_store(tmp_path)
    edges = [JULY1_SH, JULY1_SH + 7 * DAY]
    prm = [SourceParams(max_gap_ms=1_800_000)] * 2
    raw, rolled = both(store, ["a", "b"], prm, edges, SHANGHAI)
    assert_same(raw, rolled)
    computed = store.rollups.computed_partitions
    # a reading between two stored ones, received a day later: a late reading, not a reset
    t_mid = int(ts[300] + 450_000)
    store.append(table("a", [t_mid], [0.123456 * 300 + 0.05], recv=[t_mid + DAY]), check_existing=False)
    raw2, rolled2 = both(store, ["a", "b"], prm, edges, SHANGHAI)
    assert_same(raw2, rolled2)
    assert rolled2.late_readings == rolled.late_readings + 1
    assert rolled2.readings[0] == rolled.readings[0] + 1
    assert store.rollups.computed_partitions == computed + 1     # only the partition that changed


def test_damaged_rollup_file_is_moved_aside_and_rebuilt(tmp_path):
    store, _ = _clean_store(tmp_path)
    edges = [JULY1_SH, JULY1_SH + 7 * DAY]
    prm = [SourceParams(max_gap_ms=1_800_000)] * 2
    raw, _ = both(store, ["a", "b"], prm, edges, SHANGHAI)
    (path,) = store.rollups.files("f1")[:1] if len(store.rollups.files("f1")) == 1 else store.rollups.files("f1")
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    fresh = open_store(store.root)
    assert "checksum" in fresh.rollups.check_file(path)
    _, rolled = both(fresh, ["a", "b"], prm, edges, SHANGHAI)
    assert_same(raw, rolled)
    assert fresh.rollups.check_file(path) is None
    assert any(p.name.startswith(path.name) and p.suffix == ".rollup" for p in (tmp_path / "damaged").rglob("*"))


def test_period_not_of_whole_local_days_is_scanned(tmp_path):
    store, _ = _clean_store(tmp_path)
    prm = [SourceParams(max_gap_ms=1_800_000)] * 2
    edges = np.array([JULY1_SH + 3_600_000, JULY1_SH + 2 * DAY])
    assert rollup_counter_result(store, "f1", "meter", ["a", "b"], prm, edges, SHANGHAI, search_edges=True,
                                 detect_late=True, edge_search_months=37) is None
    raw, rolled = both(store, ["a", "b"], prm, edges, SHANGHAI)
    assert_same(raw, rolled)


def test_pieces_by_hand():
    """Two local days of one meter, cut at Shanghai midnight (16:00 UTC), checked by hand."""
    t0 = JULY1_SH - 2 * 3_600_000
    ts = [t0, t0 + 3_600_000, JULY1_SH + 3_600_000, JULY1_SH + 5 * 3_600_000, JULY1_SH + 6 * 3_600_000]
    t = table("m", ts, [10.0, 10.5, 12.0, 11.0, 11.25], recv=[ts[0], ts[1], ts[2], ts[4] + 5, ts[4]])
    p = compute_pieces(t.select(["source_id", "ts", "energy_kwh", "received_at"]), SHANGHAI,
                       JULY1_SH - DAY, JULY1_SH + DAY, "month=2026-06").to_pylist()
    assert [(r["lo"], r["hi"], r["n"]) for r in p] == [(JULY1_SH - DAY, JULY1_SH, 2), (JULY1_SH, JULY1_SH + DAY, 3)]
    assert p[0]["energy_mwh"] == 500_000 and p[0]["monotone"] and p[0]["complete"]
    assert not p[1]["monotone"] and p[1]["energy_mwh"] == 0      # 12.0 → 11.0 steps down
    assert p[1]["late"] == 1                                     # the last was received before the one before it
    assert p[1]["gap0_t0"] == JULY1_SH + 3_600_000 and p[1]["gap0_dt"] == 4 * 3_600_000
    assert p[1]["rest_max_dt"] == 3_600_000


# ---------------------------------------------------------------- whole evaluations
@pytest.mark.parametrize("first, last", [(dt.date(2026, 7, 6), dt.date(2026, 7, 12)),    # the data's week
                                         (dt.date(2026, 7, 8), dt.date(2026, 7, 9)),     # inside it
                                         (dt.date(2026, 7, 1), dt.date(2026, 7, 31))])   # around it
def test_evaluate_with_rollups_equals_evaluate_by_raw_scan(registry, week_store, monkeypatch, first, last):
    """Every fixture facility (hostile one included): the whole JSON of ``evaluate`` is the same."""
    from dcmon.metrics import period_energy
    from dcmon.metrics.evaluate import evaluate
    from dcmon.periods import Period
    _, store, _ = week_store
    period = Period(first, last)
    monkeypatch.setattr(period_energy, "CHUNK_PIECES", 7)   # many chunks of whole sources
    rolled = evaluate(registry, store, period)
    monkeypatch.setenv("DCMON_ROLLUPS", "off")
    raw = evaluate(registry, store, period)
    rolled.pop("generated_at"), raw.pop("generated_at")
    assert repr(rolled) == repr(raw)


def test_compare_with_raw_scan_finds_no_difference(registry, week_store):
    from dcmon.metrics.period_energy import compare_with_raw_scan
    from dcmon.metrics.streaming import bin_edges, meter_params, rack_params, source_energy
    from dcmon.periods import Period
    _, store, _ = week_store
    for fac in registry.select(None):
        edges, _ = bin_edges(Period(dt.date(2026, 7, 6), dt.date(2026, 7, 12)), fac.timezone, None)
        kinds = [("meter", [m.id for m in fac.meters], [meter_params(m, fac) for m in fac.meters])]
        if fac.it_energy_from == "racks":
            kinds.append(("rack", list(fac.racks["rack_id"]), rack_params(fac)))
        assert compare_with_raw_scan(store, fac, edges, source_energy, kinds) == [], fac.id


def test_compaction_and_repair_keep_rollups_current(tmp_path):
    store, ts = _clean_store(tmp_path)
    edges = [JULY1_SH, JULY1_SH + 7 * DAY]
    prm = [SourceParams(max_gap_ms=1_800_000)] * 2
    raw, _ = both(store, ["a", "b"], prm, edges, SHANGHAI)
    store.append(table("a", [int(ts[300]) + 1000], [0.123456 * 300 + 0.001]), check_existing=False)  # a second file
    before = store.rollups.computed_partitions
    assert store.compact("f1") >= 1
    assert store.rollups.computed_partitions > before          # made again by the compaction, not left stale
    (path,) = store.rollup_files("f1")
    path.write_bytes(b"not a rollup")
    assert store.check_rollup_file(path) == "not a dcmon rollup file (no trailer)"
    moved = store.repair_rollup_file(path, store.check_rollup_file(path))
    assert moved is not None and moved.exists() and store.check_rollup_file(path) is None
    raw2, rolled2 = both(store, ["a", "b"], prm, edges, SHANGHAI)
    assert_same(raw2, rolled2)
    assert rolled2.readings[0] == raw.readings[0] + 1
