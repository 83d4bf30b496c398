"""Energy from counters and power: hand-checkable values, traps from reliability.md #9, invariants."""
import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dcmon.metrics.energy import EnergyAccumulator, SourceParams, classify_step, counter_energy, power_energy

H = 3_600_000  # one hour [ms]
T0 = 1_782_864_000_000  # 2026-07-01T00:00:00Z


def test_classify_step_rules():
    p = SourceParams(rollover_kwh=100_000.0, noise_kwh=0.5)
    assert classify_step(10.0, 12.5, p) == (2.5, None, 12.5)
    assert classify_step(99_990.0, 15.0, p) == (25.0, "rollover", 15.0)   # 10 to the top, 15 after
    assert classify_step(500.0, 499.7, p) == (0.0, "noise_dip", 500.0)     # ref kept
    assert classify_step(500.0, 3.0, p) == (3.0, "reset", 3.0)             # counted from zero


@pytest.mark.parametrize("values, expected, events", [
    ([100, 110, 125], 25.0, []),
    ([100, 110, 109.8, 112], 12.0, ["noise_dip"]),          # 10 + 0 + 2: the dip is not counted twice
    ([100, 110, 2, 7], 17.0, ["reset"]),                    # 10 + 2 + 5
    ([99_999_990.0, 99_999_999.0, 4.9, 10.9], 9 + 5.8 + 6, ["rollover"]),
])
def test_counter_energy_hand_values(values, expected, events):
    ts = [T0 + i * 60_000 for i in range(len(values))]
    total, evs = counter_energy(ts, values, SourceParams(rollover_kwh=99_999_999.9))
    assert total == pytest.approx(expected, abs=1e-6)
    assert [e["event"] for e in evs] == events


def test_late_reading_and_duplicate_are_not_resets():
    # arrival order: 100@t0, 120@t2, 110@t1 (late), 120@t2 (duplicate)
    ts = [T0, T0 + 2 * H, T0 + H, T0 + 2 * H]
    total, evs = counter_energy(ts, [100, 120, 110, 120])
    assert total == 20 and evs == []


def test_power_energy_trapezoid_and_gap():
    # 10 kW then 20 kW one hour later: 15 kWh; then a 2 h gap (> 1 h limit): missing, not zero power
    e, covered = power_energy([T0, T0 + H, T0 + 3 * H], [10, 20, 20], max_gap_ms=H)
    assert e == 15.0 and covered == H


def _batch(src, ts, energy=None, power=None, received=None):
    n = len(src)
    cols = {"source_id": pa.array(src, pa.string()), "ts": pa.array(ts, pa.timestamp("ms", tz="UTC")),
            "energy_kwh": pa.array(energy if energy is not None else [None] * n, pa.float64()),
            "power_kw": pa.array(power if power is not None else [None] * n, pa.float64())}
    if received is not None:
        cols["received_at"] = pa.array(received, pa.timestamp("ms", tz="UTC"))
    return pa.table(cols)


def _acc(sources, edges, mode="counter", params=None, groups=None):
    params = params or [SourceParams(max_gap_ms=H) for _ in sources]
    groups = np.zeros(len(sources), dtype=np.int64) if groups is None else groups
    return EnergyAccumulator(sources, params, groups, int(groups.max()) + 1, np.array(edges, dtype=np.int64), mode)


def test_accumulator_splits_pairs_at_period_and_bin_edges():
    # counter 0 at 23:30, 10 at 00:30 next day: 5 kWh on each side of midnight
    acc = _acc(["m"], [T0, T0 + 24 * H, T0 + 48 * H])
    acc.feed(_batch(["m", "m", "m"], [T0 + 23 * H + H // 2, T0 + 24 * H + H // 2, T0 + 25 * H + H // 2], [0.0, 10.0, 30.0]))
    r = acc.result()
    assert r.group_bin_energy_kwh[0].tolist() == [5.0, 25.0]
    assert r.source_energy_kwh[0] == 30.0


def test_accumulator_carries_state_across_batches_and_counts_gap_energy():
    acc = _acc(["a", "b"], [T0, T0 + 10 * H])
    acc.feed(_batch(["a", "a", "b"], [T0, T0 + H, T0], [0.0, 1.0, 50.0]))
    # next day's batch: 'a' jumps after a 3 h gap: energy counts, coverage does not
    acc.feed(_batch(["a", "b"], [T0 + 4 * H, T0 + H], [7.0, 52.0]))
    r = acc.result()
    assert r.source_energy_kwh.tolist() == [7.0, 2.0]
    assert r.source_covered_ms.tolist() == [H, H]
    assert r.event_counts == {"gap": 1}


def test_accumulator_slow_path_matches_pure_function():
    vals = [100, 110, 109.8, 112, 3, 8, 8.2]
    ts = [T0 + i * 60_000 for i in range(len(vals))]
    acc = _acc(["m"], [T0, T0 + H])
    acc.feed(_batch(["m"] * 4, ts[:4], vals[:4]))
    acc.feed(_batch(["m"] * 3, ts[4:], vals[4:]))
    expected, _ = counter_energy(ts, vals)
    assert acc.result().source_energy_kwh[0] == pytest.approx(expected) == pytest.approx(12 + 3 + 5.2)
    assert acc.result().event_counts == {"noise_dip": 1, "reset": 1}


def test_accumulator_counts_late_arrivals():
    acc = _acc(["m"], [T0, T0 + H])
    acc.feed(_batch(["m"] * 3, [T0, T0 + 60_000, T0 + 120_000], [1.0, 2.0, 3.0],
                    received=[T0, T0 + 500_000, T0 + 130_000]))  # the 2nd arrived after the 3rd
    assert acc.result().late_readings == 1


def test_power_mode_gap_is_missing_not_zero():
    acc = _acc(["r"], [T0, T0 + 4 * H], mode="power", params=[SourceParams(max_gap_ms=H)])
    acc.feed(_batch(["r"] * 3, [T0, T0 + H, T0 + 4 * H], power=[4.0, 4.0, 4.0]))
    r = acc.result()
    assert r.source_energy_kwh[0] == 4.0          # only the first hour is measured
    assert r.source_coverage()[0] == 0.25


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(min_value=0, max_value=50, allow_nan=False), min_size=2, max_size=60),
       st.integers(min_value=1, max_value=59))
def test_property_counter_energy_is_additive_over_any_split(increments, split):
    """Energy over [a, c) equals energy over [a, b) + [b, c) and equals the sum of increments."""
    counter = np.cumsum([1000.0] + increments)
    ts = [T0 + i * 60_000 for i in range(len(counter))]
    end = ts[-1]
    mid = T0 + split * 60_000 + 17_000  # inside a pair: forces a proportional split
    whole = _acc(["m"], [T0, end])
    whole.feed(_batch(["m"] * len(ts), ts, counter.tolist()))
    parts = _acc(["m"], [T0, min(mid, end - 1), end])
    parts.feed(_batch(["m"] * len(ts), ts, counter.tolist()))
    total = whole.result().source_energy_kwh[0]
    # counters are read to the milliwatt-hour (the documented resolution): the first and the
    # last reading each round by at most 0.0000005 kWh
    assert total == pytest.approx(sum(increments), rel=1e-9, abs=1e-6)
    assert parts.result().group_bin_energy_kwh[0].sum() == pytest.approx(total, rel=1e-9, abs=1e-9)
    assert total >= 0


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(min_value=0, max_value=100, allow_nan=False), min_size=2, max_size=50),
       st.randoms(use_true_random=False))
def test_property_order_and_duplicates_do_not_change_energy(values, rnd):
    counter = np.cumsum(values)
    ts = [T0 + i * 60_000 for i in range(len(counter))]
    ref, _ = counter_energy(ts, counter)
    idx = list(range(len(ts))) + [rnd.randrange(len(ts)) for _ in range(5)]
    rnd.shuffle(idx)
    shuffled, _ = counter_energy([ts[i] for i in idx], [counter[i] for i in idx])
    assert shuffled == pytest.approx(ref)
