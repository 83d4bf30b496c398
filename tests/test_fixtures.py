"""Sample facilities (fixtures/facilities) and the ground-truth telemetry generator.

Rack figures are recomputed here straight from the racks CSVs with pandas, from the
definitions in domain.md, so they do not depend on dcmon.metrics.
"""
from __future__ import annotations

import datetime as dt
import filecmp
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from dcmon.fixtures.generate import TARGETS, Faults, generate, largest_remainder, split_rows
from dcmon.readings import SCHEMA
from dcmon.registry import credit_code_problem, load_registry

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
JUL1, JUL2 = dt.date(2026, 7, 1), dt.date(2026, 7, 2)


@pytest.fixture(scope="module")
def registry():
    return load_registry(FIXTURES)


def rack_figures(csv_path: Path) -> dict:
    racks = pd.read_csv(csv_path, dtype={"row": str, "position": str})
    existing = racks[racks["status"] != "decommissioned"]
    ins = racks[racks["status"] == "in_service"]
    return {
        "standard_racks": existing["design_power_kw"].sum() / 2.5,
        "compute_share": ins.loc[ins["function"] == "compute", "design_power_kw"].sum() / ins["design_power_kw"].sum(),
        "in_service": len(ins),
        "physical": len(racks),
        "occupancy": ins["design_power_kw"].sum() / existing["design_power_kw"].sum(),
        "all_incl_decommissioned": racks["design_power_kw"].sum() / 2.5,
    }


# id: (standard racks, compute share as Σ compute kW / Σ in-service kW, in-service racks)
EXPECTED = {
    "cd-east-01": (1320.0, 2072 / 2800, 466),
    "cd-pue-fail": (1200.0, 1900 / 2500, 411),
    "cd-racks-fail": (900.0, 1560 / 2000, 327),
    "cd-compute-fail": (1500.0, 1950 / 3000, 515),
    "cd-boundary": (1000.0, 1400 / 2000, 340),
    "cd-edge-01": (40.0, 72 / 90, 18),
    "bd-cloud-01": (1600.0, 2720 / 3400, 557),
    "cd-hyper-01": (10240.0, 15360 / 19200, 2724),
    "cd-racks-it": (120.0, 180 / 250, 51),
}


def meets_retrofit(std_racks, share, pue):
    """Chengdu/Baoding retrofit thresholds: share > 70 %, racks ≥ 1000, PUE < 1.25."""
    return share > 0.70 and std_racks >= 1000 and pue < 1.25


# --- facilities ------------------------------------------------------------------------------

def test_every_fixture_loads(registry):
    assert set(EXPECTED) <= set(registry.facilities)
    for f in registry.facilities.values():
        assert credit_code_problem(f.credit_code) is None
        assert f.timezone == "Asia/Shanghai"
        assert len(f.racks) == len(set(f.racks["rack_id"]))


@pytest.mark.parametrize("fid", sorted(EXPECTED))
def test_rack_figures_match_targets(registry, fid):
    std, share, n_in = EXPECTED[fid]
    got = rack_figures(registry.get(fid).racks_path)
    assert got["standard_racks"] == std
    assert got["compute_share"] == share
    assert got["in_service"] == n_in
    # Realistic design powers: 4–8 kW in 0.5 kW steps, so every sum above is exact.
    dp = registry.get(fid).racks["design_power_kw"]
    assert dp.between(4, 8).all() and ((dp * 2) % 1 == 0).all()
    assert set(registry.get(fid).racks["status"]) >= {"in_service", "vacant"}


def test_threshold_outcomes(registry):
    fig = {fid: rack_figures(registry.get(fid).racks_path) for fid in EXPECTED}
    pue = {fid: TARGETS[fid].pue for fid in EXPECTED}
    assert meets_retrofit(fig["cd-east-01"]["standard_racks"], fig["cd-east-01"]["compute_share"], pue["cd-east-01"])
    assert meets_retrofit(fig["bd-cloud-01"]["standard_racks"], fig["bd-cloud-01"]["compute_share"], pue["bd-cloud-01"])
    # Each *-fail site fails exactly one condition.
    f = fig["cd-pue-fail"]
    assert f["standard_racks"] >= 1000 and f["compute_share"] > 0.70 and pue["cd-pue-fail"] >= 1.25
    f = fig["cd-racks-fail"]
    assert f["standard_racks"] < 1000 and f["compute_share"] > 0.70 and pue["cd-racks-fail"] < 1.25
    f = fig["cd-compute-fail"]
    assert f["standard_racks"] >= 1000 and f["compute_share"] <= 0.70 and pue["cd-compute-fail"] < 1.25
    # Boundary: exactly at every threshold; 1000 passes, 70 % and 1.25 fail.
    f = fig["cd-boundary"]
    assert f["standard_racks"] == 1000.0 and f["standard_racks"] >= 1000
    assert f["compute_share"] == 0.70 and not f["compute_share"] > 0.70
    assert pue["cd-boundary"] == 1.25 and not pue["cd-boundary"] < 1.25
    # Counting decommissioned racks by mistake moves it off the boundary.
    assert f["all_incl_decommissioned"] > 1000.0
    assert fig["cd-hyper-01"]["standard_racks"] >= 10_000
    assert fig["cd-edge-01"]["standard_racks"] < 100


def test_facility_details(registry):
    east = registry.get("cd-east-01")
    assert east.cluster_start_area and east.city == "chengdu"
    assert east.retrofit_completed == dt.date(2023, 6, 30) and east.retrofit_cost_cny == 4_200_000
    assert [(m.id, m.role) for m in east.meters] == [("grid-a", "facility"), ("grid-b", "facility"),
                                                     ("ups-1", "it"), ("ups-2", "it"), ("crac-1", "cooling")]
    assert east.meter("grid-b").rollover_kwh == 99999999.9
    edge = registry.get("cd-edge-01")
    assert edge.kind == "edge" and edge.annual_terminals_served == 620_000 and len(edge.racks) == 20
    bd = registry.get("bd-cloud-01")
    assert bd.city == "baoding" and bd.retrofit_completed is not None and bd.retrofit_cost_cny is None
    hyper = registry.get("cd-hyper-01")
    assert hyper.it_energy_from == "meters" and (hyper.racks["design_power_kw"] >= 6).all()
    racks_it = registry.get("cd-racks-it")
    assert racks_it.it_energy_from == "racks" and not racks_it.meters_with_role("it")


def test_make_facilities_reproduces_committed_files(tmp_path):
    from dcmon.fixtures import make_facilities as mod
    for s in mod.SPECS:
        mod.write(s, tmp_path)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == sorted(p.name for p in (FIXTURES / "facilities").iterdir())
    match, mismatch, errors = filecmp.cmpfiles(tmp_path, FIXTURES / "facilities", names, shallow=False)
    assert not mismatch and not errors


# --- generator -------------------------------------------------------------------------------

def meter_frame(table: pa.Table) -> pd.DataFrame:
    df = table.to_pandas()
    return df[df["kind"] == "meter"].drop_duplicates(["source_id", "ts"]).sort_values(["source_id", "ts"])


def counter_energy(meters: pd.DataFrame, truth, ids) -> float:
    """Σ over meters of (last − first counter reading + the truth's fault adjustments) [kWh]."""
    return sum(g["energy_kwh"].iloc[-1] - g["energy_kwh"].iloc[0] + truth.adjust_kwh(mid)
               for mid, g in meters[meters["source_id"].isin(ids)].groupby("source_id"))


@pytest.fixture(scope="module")
def boundary_quarter(registry):
    t0 = time.perf_counter()
    g = generate(registry.get("cd-boundary"), dt.date(2026, 7, 1), dt.date(2026, 9, 30), include_racks=False)
    return g, time.perf_counter() - t0


def test_quarter_is_fast_and_exact(registry, boundary_quarter):
    g, seconds = boundary_quarter
    assert seconds < 5
    t = g.truth
    assert t.pue == 1.25                                  # exactly, not approximately
    assert t.facility_energy_kwh == 1.25 * t.it_energy_kwh
    assert g.table.schema.equals(SCHEMA)
    meters = meter_frame(g.table)
    assert len(meters) == 5 * (92 * 1440 + 1)           # 1-minute readings, both bounds included
    fac_ids = [m.id for m in registry.get("cd-boundary").meters_with_role("facility")]
    it_ids = [m.id for m in registry.get("cd-boundary").meters_with_role("it")]
    assert counter_energy(meters, t, fac_ids) == t.facility_energy_kwh
    assert counter_energy(meters, t, it_ids) == t.it_energy_kwh
    assert t.daily["facility_energy_kwh"].sum() == t.facility_energy_kwh
    assert t.daily["it_energy_kwh"].sum() == t.it_energy_kwh
    assert len(t.daily) == 92 and t.daily["date"].iloc[0] == dt.date(2026, 7, 1)


@pytest.mark.parametrize("fid", sorted(EXPECTED))
def test_truth_is_consistent_for_every_fixture(registry, fid):
    fac = registry.get(fid)
    g = generate(fac, JUL1, JUL2, include_racks=False, seed=3)
    t = g.truth
    assert t.pue == TARGETS[fid].pue
    assert t.facility_energy_kwh > t.it_energy_kwh > 0
    start, end = t.period_start, t.period_end
    assert start == pd.Timestamp("2026-06-30 16:00", tz="UTC") and end == pd.Timestamp("2026-07-02 16:00", tz="UTC")
    meters = meter_frame(g.table)
    assert meters["ts"].min() == start and meters["ts"].max() == end
    fac_ids = [m.id for m in fac.meters_with_role("facility")]
    assert counter_energy(meters, t, fac_ids) == t.facility_energy_kwh
    assert sum(t.meter_energy_kwh[m] for m in fac_ids) == t.facility_energy_kwh
    assert t.daily["facility_energy_kwh"].sum() == t.facility_energy_kwh
    assert t.daily["it_energy_kwh"].sum() == t.it_energy_kwh
    if fac.it_energy_from == "meters":
        it_ids = [m.id for m in fac.meters_with_role("it")]
        assert counter_energy(meters, t, it_ids) == t.it_energy_kwh
    # Each day's energy is the counter increase between local midnights.
    midnight = pd.Timestamp("2026-07-01 16:00", tz="UTC")
    at = meters[meters["source_id"].isin(fac_ids)].set_index("ts").groupby(level=0)["energy_kwh"].sum()
    assert at[midnight] - at[start] == t.daily["facility_energy_kwh"].iloc[0]
    # Cooling is part of the overhead.
    assert 0 < t.cooling_energy_kwh < t.facility_energy_kwh - t.it_energy_kwh


def test_table_shape_and_determinism(registry):
    fac = registry.get("cd-east-01")
    a = generate(fac, JUL1, JUL1, seed=1)
    b = generate(fac, JUL1, JUL1, seed=1)
    c = generate(fac, JUL1, JUL1, seed=2)
    assert a.table.equals(b.table) and not a.table.equals(c.table)
    tb = a.table
    assert tb.schema.equals(SCHEMA)
    df = tb.to_pandas()
    assert df["ts"].is_monotonic_increasing
    assert (df["origin"] == "sim").all() and (df["facility_id"] == "cd-east-01").all()
    delay = (df["received_at"] - df["ts"]).dt.total_seconds()
    assert delay.between(0, 5).all()
    meter_ts = tb.filter(pc.equal(tb["kind"], "meter"))["ts"].cast(pa.int64()).to_numpy()
    assert (meter_ts % 60_000 == 0).all()                                  # on UTC epoch multiples
    assert not df.duplicated(["kind", "source_id", "ts"]).any()


def test_rack_readings(registry):
    fac = registry.get("cd-east-01")
    g = generate(fac, JUL1, JUL1, seed=1)
    df = g.table.to_pandas()
    racks = df[df["kind"] == "rack"]
    status = fac.racks.set_index("rack_id")["status"]
    by_status = racks.groupby(racks["source_id"].map(status)).size()
    n_times = 24 * 12 + 1
    assert by_status["in_service"] == (status == "in_service").sum() * n_times
    assert by_status["vacant"] == (status == "vacant").sum() * n_times
    assert by_status["reserved"] == (status == "reserved").sum()             # announcement only
    assert "decommissioned" not in by_status
    assert (racks.loc[racks["source_id"].map(status) == "vacant", "power_kw"] == 0).all()
    # The first row of every reporting rack announces its registry state.
    first = racks[racks["ts"] == racks["ts"].min()].set_index("source_id")
    reg = fac.racks.set_index("rack_id")
    assert (first["status"] == reg.loc[first.index, "status"]).all()
    assert (first["function"] == reg.loc[first.index, "function"]).all()
    assert (first["design_power_kw"] == reg.loc[first.index, "design_power_kw"]).all()
    assert racks.loc[racks["ts"] > racks["ts"].min(), "status"].isna().all()
    # Σ rack power tracks the IT meters' power (same time stamps).
    rack_sum = racks.groupby("ts")["power_kw"].sum()
    meters = df[df["kind"] == "meter"]
    it_power = meters[meters["source_id"].isin(["ups-1", "ups-2"])].groupby("ts")["power_kw"].sum()
    ratio = (rack_sum / it_power.reindex(rack_sum.index)).dropna()
    assert ratio.between(0.95, 1.05).all()


def test_racks_report_it_energy_when_it_energy_from_racks(registry):
    fac = registry.get("cd-racks-it")
    g = generate(fac, JUL1, JUL2, seed=5)
    t = g.truth
    df = g.table.to_pandas()
    racks = df[(df["kind"] == "rack") & df["energy_kwh"].notna()].sort_values(["source_id", "ts"])
    in_service = set(fac.racks.loc[fac.racks["status"] == "in_service", "rack_id"])
    inc = racks.groupby("source_id")["energy_kwh"].agg(lambda s: s.iloc[-1] - s.iloc[0])
    assert inc.sum() == t.it_energy_kwh
    assert set(t.rack_energy_kwh) == in_service
    assert sum(t.rack_energy_kwh.values()) == t.it_energy_kwh
    assert inc[sorted(in_service)].to_dict() == {k: t.rack_energy_kwh[k] for k in sorted(in_service)}
    assert (inc.drop(sorted(in_service)) == 0).all()                       # vacant racks: flat counters
    assert t.pue == TARGETS["cd-racks-it"].pue
    assert generate(fac, JUL1, JUL2, seed=5, include_racks=False).truth.it_energy_kwh == t.it_energy_kwh


def test_summer_pue_higher_than_winter(registry):
    g = generate(registry.get("cd-east-01"), dt.date(2026, 1, 1), dt.date(2026, 12, 31),
                 meter_interval_s=900, include_racks=False)
    d = g.truth.daily
    month = pd.to_datetime(d["date"]).dt.month
    sums = d.groupby(month)[["facility_energy_kwh", "it_energy_kwh"]].sum()
    pue = sums["facility_energy_kwh"] / sums["it_energy_kwh"]
    assert pue[7] > pue[4] > pue[1]
    assert g.truth.pue == TARGETS["cd-east-01"].pue
    # Weekends carry less IT load than weekdays.
    dow = pd.to_datetime(d["date"]).dt.day_of_week
    assert d.loc[dow >= 5, "it_energy_kwh"].mean() < d.loc[dow < 5, "it_energy_kwh"].mean()


ALL_FAULTS = Faults(counter_reset=True, rollover=True, noise_dip=True, gap_hours=3, duplicates=7, late=5)


@pytest.fixture(scope="module")
def faulty(registry):
    fac = registry.get("cd-east-01")
    return fac, generate(fac, JUL1, JUL2, faults=ALL_FAULTS, seed=7), generate(fac, JUL1, JUL2, seed=7)


def test_faults_leave_truth_unchanged(faulty):
    fac, bad, good = faulty
    for name in ("facility_energy_kwh", "it_energy_kwh", "pue", "cooling_energy_kwh", "meter_energy_kwh"):
        assert getattr(bad.truth, name) == getattr(good.truth, name)
    assert not good.truth.events
    kinds = sorted({e.kind for e in bad.truth.events})
    assert kinds == ["duplicate", "gap", "late", "noise_dip", "reset", "rollover"]


def test_counter_formula_holds_with_faults(faulty):
    fac, bad, _ = faulty
    t = bad.truth
    meters = meter_frame(bad.table)
    fac_ids = [m.id for m in fac.meters_with_role("facility")]
    # grid-b's reading after its wrap is (true − 99999999.9) rounded to float64.
    assert counter_energy(meters, t, fac_ids) == pytest.approx(t.facility_energy_kwh, abs=1e-6)
    for mid in ("ups-1", "ups-2", "crac-1", "grid-a"):      # meters without a rollover: exact
        assert counter_energy(meters, t, [mid]) == t.meter_energy_kwh[mid]


def test_each_fault_shows_in_the_readings(faulty):
    fac, bad, _ = faulty
    t = bad.truth
    df = bad.table.to_pandas()
    meters = meter_frame(bad.table).set_index(["source_id", "ts"])["energy_kwh"]

    (reset,) = t.events_of("reset")
    assert reset.source_id == "grid-a"
    series = meters["grid-a"]
    prev = series[series.index < reset.ts].iloc[-1]
    assert prev == reset.adjust_kwh and series[reset.ts] < 100 < prev        # drops to ~0

    (roll,) = t.events_of("rollover")
    assert roll.source_id == "grid-b" and roll.adjust_kwh == 99999999.9
    series = meters["grid-b"]
    before = series[series.index < roll.ts].iloc[-1]
    assert before < 99999999.9 and before > 99999999.9 - 1000 and series[roll.ts] < 1000
    assert series.max() < 99999999.9

    (dip,) = t.events_of("noise_dip")
    series = meters[dip.source_id]
    i = series.index.get_loc(dip.ts)
    assert 0 < series.iloc[i - 1] - series.iloc[i] < fac.meter(dip.source_id).noise_kwh
    assert series.iloc[i + 1] > series.iloc[i - 1]

    (gap,) = t.events_of("gap")
    series = meters[gap.source_id]
    assert not ((series.index >= gap.ts) & (series.index < gap.end_ts)).any()
    assert gap.end_ts - gap.ts == pd.Timedelta(hours=3) and gap.end_ts in series.index
    assert len(series) == 2 * 1440 + 1 - 180

    dups = t.events_of("duplicate")
    assert len(dups) == 7
    raw = df[df["kind"] == "meter"]
    assert raw.duplicated().sum() == 7                                      # verbatim copies
    keys = set(map(tuple, raw.loc[raw.duplicated(), ["source_id", "ts"]].to_numpy()))
    assert keys == {(e.source_id, e.ts) for e in dups}

    late = t.events_of("late")
    assert len(late) == 5
    lag = raw.set_index(["source_id", "ts"])
    lag = (lag["received_at"] - lag.index.get_level_values("ts")).dt.total_seconds()
    lag = lag[~lag.index.duplicated()]
    assert set(lag[lag >= 3600].index) == {(e.source_id, e.ts) for e in late}
    assert (lag[lag >= 3600] == ALL_FAULTS.late_delay_s).all()


def test_bad_options_raise(registry):
    fac = registry.get("cd-east-01")
    with pytest.raises(ValueError, match="before"):
        generate(fac, JUL2, JUL1)
    with pytest.raises(ValueError, match="does not divide"):
        generate(fac, JUL1, JUL1, meter_interval_s=86400)
    with pytest.raises(ValueError, match="rollover_kwh"):
        generate(registry.get("cd-edge-01"), JUL1, JUL1, faults=Faults(rollover=True))
    with pytest.raises(ValueError, match="multiple"):
        generate(registry.get("cd-racks-it"), JUL1, JUL1, meter_interval_s=120, rack_interval_s=300)


def test_unknown_facility_gets_default_target(registry):
    import copy
    fac = copy.copy(registry.get("cd-edge-01"))
    fac.id = "somewhere-else"
    g = generate(fac, JUL1, JUL1, include_racks=False)
    assert g.truth.pue == 1.3


def test_integer_splitting_is_exact():
    assert largest_remainder(10, np.array([1.0, 1.0, 1.0])).tolist() == [4, 3, 3]
    assert largest_remainder(0, np.array([1.0, 2.0])).tolist() == [0, 0]
    out = split_rows(np.array([7, 0, 100]), np.array([[1.0, 1.0], [1.0, 3.0], [0.0, 0.0]]))
    assert out.sum(axis=1).tolist() == [7, 0, 100] and (out >= 0).all()


# --- the demo set and long ranges -----------------------------------------------------------

def test_make_facilities_reproduces_the_demo_set(tmp_path):
    from dcmon.fixtures import make_facilities as mod
    by_id = {s.id: s for s in mod.SPECS + mod.DEMO_EXTRA}
    for fid in mod.DEMO_IDS:
        mod.write(by_id[fid], tmp_path)
    demo_dir = FIXTURES / "demo" / "facilities"
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == sorted(p.name for p in demo_dir.iterdir())
    match, mismatch, errors = filecmp.cmpfiles(tmp_path, demo_dir, names, shallow=False)
    assert not mismatch and not errors


def test_demo_set_has_every_verdict():
    """By the definitions, from the racks CSVs and the PUE targets (the demo adds a meter gap to
    cd-meter-gap, so its PUE check is inconclusive although these figures pass)."""
    reg = load_registry(FIXTURES / "demo")
    fig = {fid: rack_figures(reg.get(fid).racks_path) for fid in reg.facilities}
    outcome = {fid: meets_retrofit(f["standard_racks"], f["compute_share"], TARGETS[fid].pue)
               for fid, f in fig.items() if reg.get(fid).kind == "cloud"}
    assert {k for k, v in outcome.items() if v} == {"cd-east-01", "cd-line-racks", "bd-cloud-01", "cd-meter-gap"}
    assert fig["cd-line-racks"]["standard_racks"] == 1000.0
    assert fig["cd-line-share"]["compute_share"] == 0.70 and fig["cd-line-share"]["standard_racks"] >= 1000
    assert TARGETS["cd-line-pue"].pue == 1.25 and fig["cd-line-pue"]["compute_share"] > 0.70
    assert reg.get("bd-cloud-01").city == "baoding" and reg.get("cd-edge-01").kind == "edge"


def test_generate_range_is_continuous_and_every_quarter_exact(registry):
    """Across quarter bounds the counters run on (no drop, the bound's reading once), and each whole
    quarter — and the range — hits the target PUE exactly, from the raw counters."""
    from dcmon.fixtures.generate import generate_range
    fac = registry.get("cd-boundary")
    t = generate_range(fac, dt.date(2026, 5, 20), dt.date(2026, 10, 3), split_at=[dt.date(2026, 8, 15)],
                       meter_interval_s=900)
    df = t.to_pandas()
    assert not df.duplicated(["kind", "source_id", "ts"]).any()
    meters = df[df["kind"] == "meter"].sort_values(["source_id", "ts"])
    for mid, g in meters.groupby("source_id"):
        assert (g["energy_kwh"].diff().dropna() >= 0).all(), mid      # no reset, no wrap
        assert (g["ts"].diff().dropna() == pd.Timedelta(minutes=15)).all(), mid
    ids = {r: [m.id for m in fac.meters if m.role == r] for r in ("facility", "it")}

    def energy(role, first, last):
        s, e = pd.Timestamp(f"{first}T00:00+08:00"), pd.Timestamp(f"{last}T00:00+08:00") + pd.Timedelta(days=1)
        m = meters[meters["source_id"].isin(ids[role])].set_index(["source_id", "ts"])["energy_kwh"]
        return sum(m[(mid, e)] - m[(mid, s)] for mid in ids[role])
    for first, last in (("2026-07-01", "2026-09-30"), ("2026-05-20", "2026-10-03"), ("2026-08-15", "2026-09-30")):
        assert energy("facility", first, last) / energy("it", first, last) == 1.25, (first, last)
    cut = generate_range(fac, dt.date(2026, 9, 29), dt.date(2026, 9, 30),
                         until_ms=int(pd.Timestamp("2026-09-30T12:00+08:00").value // 10**6),
                         silent=(("ups-1", int(pd.Timestamp("2026-09-29T06:00+08:00").value // 10**6),
                                  int(pd.Timestamp("2026-09-29T12:00+08:00").value // 10**6)),))
    c = cut.to_pandas()
    assert c["ts"].max() < pd.Timestamp("2026-09-30T12:00+08:00")
    ups = c[c["source_id"] == "ups-1"]["ts"]
    assert not ups.between(pd.Timestamp("2026-09-29T06:00+08:00"), pd.Timestamp("2026-09-29T11:59+08:00")).any()
