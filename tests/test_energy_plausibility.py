"""Evaluation refuses to count a counter step no meter could carry (reliability.md #13): hand values,
the streaming accumulator agreeing with the reference function, and a whole facility day."""
import datetime as dt

import numpy as np
import pyarrow as pa
import pytest

from dcmon.metrics.energy import EnergyAccumulator, SourceParams, counter_energy, counter_step, implausible

MIN = 60_000
T0 = 1_782_864_000_000  # 2026-07-01T00:00:00Z


def test_implausible_is_decided_without_division():
    # 1000 kW for 30 s is exactly 8.333… kWh: 25/3 kWh is at the ceiling (allowed), a hair more is not
    assert not implausible(25 / 3, 30_000, 1000.0) or 25 / 3 * 3_600_000 > 1000.0 * 30_000
    assert implausible(8.34, 30_000, 1000.0) and not implausible(8.33, 30_000, 1000.0)
    assert implausible(0.001, 0, 1000.0)            # any energy in no time
    assert not implausible(1e12, 30_000, None)      # no ceiling: no refusal
    assert not implausible(float("nan"), 30_000, 1000.0)


P = SourceParams(rollover_kwh=99_999_999.9, noise_kwh=0.5, max_power_kw=1000.0)


@pytest.mark.parametrize("values, step_s, expected, events", [
    # the issue: a spike that returns to trend is an event, not energy: 100 → 101 counts 1 kWh
    ([100, 9e12, 101], 30, 1.0, ["implausible_step"]),
    # a spike as the first reading: 101 and 102 are refused as resets needing > 1000 kW… until the counter
    # goes on plausibly from the previous reading: 101 → 102 (1 kWh/30 s = 120 kW) is a new baseline
    ([9e12, 101, 102, 103], 30, 1.0 + 1.0, ["implausible_step", "new_baseline"]),
    # a replaced meter that starts high: 10 → 5000 refused (299 400 kW), 5000 → 5001 a new baseline, then +2
    ([10, 5000, 5001, 5003], 60, 1.0 + 2.0, ["implausible_step", "new_baseline"]),
    # legitimate reset (3 kWh in a minute = 180 kW) and rollover (9 + 5.8 kWh) keep working
    ([9000, 9010, 3], 60, 10 + 3, ["reset"]),
    ([99_999_990.0, 99_999_999.0, 4.9, 10.9], 60, 9 + 5.8 + 6, ["rollover"]),
])
def test_counter_energy_refuses_impossible_steps(values, step_s, expected, events):
    ts = [T0 + i * step_s * 1000 for i in range(len(values))]
    total, evs = counter_energy(ts, values, P)
    assert total == pytest.approx(expected, abs=1e-6)
    assert [e["event"] for e in evs] == events


def test_without_a_ceiling_the_old_rules_apply():
    total, _ = counter_energy([T0, T0 + 30_000], [100, 9e12], SourceParams())
    assert total == 9e12 - 100


def test_counter_step_hand_values():
    assert counter_step(100.0, 100.0, 9e12, 30_000, P) == (0.0, "implausible_step", 100.0)
    assert counter_step(100.0, 9e12, 101.0, 30_000, P) == (1.0, None, 101.0)


def _table(values, step_ms=MIN, source="grid-a"):
    n = len(values)
    return pa.table({"source_id": pa.array([source] * n), "ts": pa.array([T0 + i * step_ms for i in range(n)],
                                                                       pa.timestamp("ms", tz="UTC")),
                     "energy_kwh": pa.array(values, pa.float64())})


@pytest.mark.parametrize("values", [
    [100, 9e12, 101, 102],
    [100 + i for i in range(30)] + [9e12] + [130 + i for i in range(30)],
    [9e12, 101, 102, 103, 104],
    [10, 5000, 5001, 5003],
    [100, 110, 120, 130],
])
@pytest.mark.parametrize("split", [0, 1, 2])
def test_the_accumulator_agrees_with_the_reference(values, split):
    edges = np.array([T0 - MIN, T0 + (len(values) + 1) * MIN], dtype=np.int64)
    acc = EnergyAccumulator(["grid-a"], [P], np.zeros(1, dtype=np.int64), 1, edges, "counter")
    t = _table(values)
    if split:
        acc.feed(t.slice(0, split))
        acc.feed(t.slice(split))
    else:
        acc.feed(t)
    ref, evs = counter_energy([T0 + i * MIN for i in range(len(values))], values, P)
    r = acc.result()
    assert r.source_energy_kwh[0] == pytest.approx(ref, abs=1e-6)
    assert r.group_bin_energy_kwh.sum() == pytest.approx(ref, abs=1e-6)
    assert r.event_counts.get("implausible_step", 0) == sum(e["event"] == "implausible_step" for e in evs)


def test_a_facility_day_keeps_its_pue_with_a_spike_in_the_store(registry, tmp_path):
    """The issue: one late counter reading of 9e12 kWh made a day's PUE 4 166 666 668."""
    from dcmon.fixtures.generate import generate
    from dcmon.metrics.evaluate import energy_figures
    from dcmon.periods import Period
    from dcmon.readings import to_table
    from dcmon.store import open_store
    fac = registry.facilities["cd-east-01"]
    day = dt.date(2026, 7, 6)
    store = open_store(tmp_path)
    store.append(generate(fac, day, day, include_racks=False, seed=1).table, check_existing=False)
    before = energy_figures(store, fac, Period(day, day))
    noon_local = int(dt.datetime(2026, 7, 6, 12, tzinfo=dt.timezone(dt.timedelta(hours=8))).timestamp() * 1000)
    spike = {"facility_id": fac.id, "kind": "meter", "source_id": "grid-a", "ts": noon_local + 30_000,
             "energy_kwh": 9e12, "received_at": noon_local + 60_000, "origin": "test"}
    store.append(to_table([spike]), check_existing=True)     # as if it got past ingestion
    after = energy_figures(store, fac, Period(day, day))
    assert after.facility_energy_kwh == pytest.approx(before.facility_energy_kwh, rel=1e-9)
    assert after.it_energy_kwh == pytest.approx(before.it_energy_kwh, rel=1e-9)
    assert after.event_counts.get("implausible_step") == 1
    pue = after.facility_energy_kwh / after.it_energy_kwh
    assert 1.0 < pue < 3.0


from hypothesis import given, settings, strategies as st  # noqa: E402

STEP = st.one_of(st.floats(0, 10), st.just(9e12), st.just(-5000.0), st.floats(-0.4, 0))


@settings(max_examples=200, deadline=None)
@given(steps=st.lists(STEP, min_size=1, max_size=40), split=st.integers(0, 40))
def test_accumulator_equals_reference_with_spikes_dips_and_resets(steps, split):
    """Random counters (normal steps, spikes to 9e12, drops, noise dips), fed whole or in two batches."""
    values, x = [], 100_000.0
    for d in steps:
        x = 5.0 if x + d < 0 else (x + d if d != 9e12 else 9e12)
        values.append(x)
        if x == 9e12:
            x = values[-2] if len(values) > 1 else 100_000.0   # the spike returns to trend
    edges = np.array([T0 - MIN, T0 + (len(values) + 1) * MIN], dtype=np.int64)
    acc = EnergyAccumulator(["grid-a"], [P], np.zeros(1, dtype=np.int64), 1, edges, "counter")
    t = _table(values)
    k = min(split, len(values))
    for part in (t.slice(0, k), t.slice(k)) if 0 < k < len(values) else (t,):
        acc.feed(part)
    ref, _ = counter_energy([T0 + i * MIN for i in range(len(values))], values, P)
    assert acc.result().source_energy_kwh[0] == pytest.approx(ref, rel=1e-9, abs=1e-6)
    assert ref < 1e6      # never the spike
