"""The issue's hand-checkable cases: exact thresholds, energy across long gaps, city scope,
in-force windows, overall verdicts, subsidy steps; and property tests at each threshold.

Expected figures are computed by hand (or with fractions below), never by the product's helpers.
"""
import datetime as dt
import textwrap
from fractions import Fraction

import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dcmon.metrics.evaluate import evaluate, overall_verdict
from dcmon.metrics.policy import compare
from dcmon.metrics.subsidy import subsidy_estimate
from dcmon.periods import Period
from dcmon.readings import conform
from dcmon.registry import load_registry
from dcmon.store import open_store

CODE = "91510107MA6CR5H592"  # a valid credit code from the fixtures


def _facility(cfg, fid, *, meters, racks, city="chengdu", kind="cloud", extra=""):
    (cfg / "facilities").mkdir(parents=True, exist_ok=True)
    (cfg / "facilities" / f"{fid}.yaml").write_text(textwrap.dedent(f"""\
        id: {fid}
        name: 测试{fid}
        operator: 测试公司
        credit_code: {CODE}
        city: {city}
        district: 测试区
        kind: {kind}
        timezone: Asia/Shanghai
        cluster_start_area: false
        commissioned: 2018-05-01
        pue_category: 1
        it_energy_from: meters
        meters:
        """) + "".join(f"  - {m}\n" for m in meters) + f"racks: {fid}-racks.csv\n" + extra)
    rows = ["rack_id,room,row,position,design_power_kw,function,status"]
    rows += [f"R{i:05d},A,01,{i:05d},{kw},{fn},in_service" for i, (kw, fn) in enumerate(racks)]
    (cfg / "facilities" / f"{fid}-racks.csv").write_text("\n".join(rows) + "\n")


def _readings(store, fid, rows):
    """rows: (meter, local time 'YYYY-MM-DD HH:MM' in Asia/Shanghai, counter kWh)."""
    ts = [pd.Timestamp(t, tz="Asia/Shanghai").tz_convert("UTC") for _, t, _ in rows]
    t = pa.table({"facility_id": [fid] * len(rows), "kind": ["meter"] * len(rows),
                  "source_id": [m for m, _, _ in rows], "ts": pa.array(ts, pa.timestamp("ms", tz="UTC")),
                  "energy_kwh": [float(v) for _, _, v in rows]})
    store.append(conform(t), check_existing=False)


def _day(y, m, d, y2=None, m2=None, d2=None):
    return Period(dt.date(y, m, d), dt.date(y2 or y, m2 or m, d2 or d))


RETROFIT_RACKS = [(2.5, "compute")] * 800 + [(2.5, "storage")] * 250   # 1050 standard racks, 76.2 % compute


# 1. a PUE of exactly 1.25 fails "PUE < 1.25" ----------------------------------------------------
@pytest.mark.parametrize("grid_end, passed, text", [(13000.0, False, "1.250"), (12999.0, True, "1.2499")])
def test_pue_of_exactly_1_25_fails_below_1_25(tmp_path, grid_end, passed, text):
    cfg = tmp_path / "cfg"
    _facility(cfg, "t-pue", meters=["{id: grid-a, role: facility, max_gap_s: 86400}",
                                     "{id: ups-1, role: it, max_gap_s: 86400}"], racks=RETROFIT_RACKS)
    store = open_store(tmp_path / "data")
    _readings(store, "t-pue", [("grid-a", "2026-01-05 00:00", 1000.0), ("grid-a", "2026-01-06 00:00", grid_end),
                               ("ups-1", "2026-01-05 00:00", 6788.9), ("ups-1", "2026-01-06 00:00", 16388.9)])
    res = evaluate(load_registry(cfg), store, _day(2026, 1, 5), ["t-pue"], ["chengdu-2023-cloud-retrofit"])
    f = res["facilities"][0]
    assert f["coverage"] == 1.0
    assert f["it_energy_kwh"] == 9600.0                        # 16388.9 − 6788.9, exactly
    assert f["pue"] == (grid_end - 1000) / 9600
    pr = f["profiles"]["chengdu-2023-cloud-retrofit"]
    check = next(c for c in pr["checks"] if c["metric"] == "pue")
    assert check["passed"] is passed and check["value_text"] == text
    assert check["value_exact"] == ("5/4" if not passed else str(Fraction(11999, 9600)))
    assert pr["eligible"] is passed
    # 1050 in-service racks at the 1000 CNY ceiling (no retrofit cost: an upper bound)
    assert pr["subsidy_cny"] == (1_050_000 if passed else None)


# 2. a compute share of exactly 70 % fails "> 70 %" -----------------------------------------------
def test_compute_share_of_exactly_70_percent_fails(tmp_path):
    cfg = tmp_path / "cfg"
    racks = [(7.7, "compute")] * 350 + [(3.3, "storage")] * 350     # 2695 / 3850 = 0.7
    _facility(cfg, "t-share", meters=["{id: grid-a, role: facility}", "{id: ups-1, role: it}"], racks=racks)
    _facility(cfg, "t-pair", meters=["{id: grid-a, role: facility}", "{id: ups-1, role: it}"],
              racks=[(7.7, "compute"), (3.3, "storage")])
    store = open_store(tmp_path / "data")
    res = evaluate(load_registry(cfg), store, _day(2026, 1, 5), None, ["chengdu-2023-cloud-retrofit"])
    for f in res["facilities"]:
        assert f["compute_share"] == 0.7
        check = next(c for c in f["profiles"]["chengdu-2023-cloud-retrofit"]["checks"] if c["metric"] == "compute_share")
        assert check["passed"] is False and check["status"] == "fail" and check["value_text"] == "70.0%"
        assert f["profiles"]["chengdu-2023-cloud-retrofit"]["eligible"] is False


# 3. energy across a gap that straddles a period boundary ------------------------------------------
def _gap_site(tmp_path, ups_gap=None, rows=None):
    cfg = tmp_path / "cfg"
    ups = "{id: ups-1, role: it" + (f", max_gap_s: {ups_gap}" if ups_gap else "") + "}"
    _facility(cfg, "t-gap", meters=["{id: grid-a, role: facility}", ups], racks=[(2.5, "compute")] * 4)
    store = open_store(tmp_path / "data")
    _readings(store, "t-gap", rows or [(m, t, v) for m in ("grid-a", "ups-1")
                                       for t, v in (("2025-12-31 23:00", 1000.0), ("2026-01-01 01:00", 1200.0))])
    return load_registry(cfg), store


def _energy(reg, store, period):
    f = evaluate(reg, store, period, ["t-gap"], ["gb40879-2021"])["facilities"][0]
    return {m["meter_id"]: m["energy_kwh"] for m in f["meters"]}, f


@pytest.mark.parametrize("period, kwh", [(_day(2025, 12, 31), 100.0), (_day(2026, 1, 1), 100.0),
                                         (_day(2025, 12, 31, 2026, 1, 1), 200.0)])
def test_gap_across_a_day_boundary_is_split_by_time(tmp_path, period, kwh):
    reg, store = _gap_site(tmp_path)
    energy, f = _energy(reg, store, period)
    assert energy == {"grid-a": kwh, "ups-1": kwh}
    assert f["coverage"] == 0.0           # the readings are 2 h apart, more than max_gap_s 900: no coverage
    assert f["data_quality"]["events"].get("gap") == 2


def test_one_meters_energy_does_not_depend_on_anothers_settings(tmp_path):
    reg, store = _gap_site(tmp_path, ups_gap=7200)
    energy, f = _energy(reg, store, _day(2025, 12, 31))
    assert energy == {"grid-a": 100.0, "ups-1": 100.0}
    assert f["meters"][1]["coverage"] == pytest.approx(1 / 24)   # ups-1 covers 23:00–24:00 now


@pytest.mark.parametrize("period, kwh", [
    (_day(2026, 3, 1, 2026, 3, 31), 200.0),       # March: the gap's days 30 and 31
    (_day(2026, 1, 1, 2026, 3, 31), 200.0),       # Q1
    (_day(2026, 4, 1, 2026, 6, 30), 200.0),       # Q2: April 1 and 2
    (_day(2026, 4, 1), 100.0),                    # a day wholly inside the gap
    (_day(2026, 3, 30, 2026, 4, 2), 400.0),
])
def test_gap_of_days_across_a_month_and_quarter_boundary(tmp_path, period, kwh):
    rows = [(m, t, v) for m in ("grid-a", "ups-1") for t, v in (("2026-03-30 00:00", 1000.0), ("2026-04-03 00:00", 1400.0))]
    reg, store = _gap_site(tmp_path, rows=rows)
    energy, f = _energy(reg, store, period)
    # two readings four days apart: 400 kWh, 100 a day; nothing is known before Mar 30 or after Apr 3
    assert energy == {"grid-a": kwh, "ups-1": kwh}


# 4. city-wide checks cover the city's facilities, whatever was asked for ---------------------------
def _by_hand_city_occupancy(registry, city):
    ins = total = Fraction(0)
    for fac in registry.select(None):
        if fac.city != city:
            continue
        for r in fac.racks.itertuples():
            if r.status == "decommissioned":
                continue
            total += Fraction(repr(float(r.design_power_kw)))
            if r.status == "in_service":
                ins += Fraction(repr(float(r.design_power_kw)))
    return ins / total


@pytest.mark.parametrize("ids", [None, ["cd-east-01"], ["cd-east-01", "bd-cloud-01"]])
def test_city_checks_use_every_facility_of_the_city(registry, week_store, ids):
    _, store, _ = week_store
    res = evaluate(registry, store, Period(dt.date(2026, 7, 6), dt.date(2026, 7, 12)), ids, ["chengdu-hub-2025"])
    chengdu = sorted(f.id for f in registry.select(None) if f.city == "chengdu")
    city = [c for c in res["portfolio"]["checks"] if c["scope"] == "city"]
    assert {c["metric"] for c in city} == {"occupancy_rate", "pue"}
    for c in city:
        assert c["city"] == "chengdu" and c["facilities"] == len(chengdu) and sorted(c["facility_ids"]) == chengdu
    occ = next(c for c in city if c["metric"] == "occupancy_rate")
    assert occ["value"] == float(_by_hand_city_occupancy(registry, "chengdu"))
    start = [c for c in res["portfolio"]["checks"] if c["scope"] == "cluster_start_area"]
    sa = sorted(f.id for f in registry.select(None) if f.city == "chengdu" and f.cluster_start_area)
    assert all(sorted(c["facility_ids"]) == sa for c in start)


# 5. a measure out of force shows no amount as due --------------------------------------------------
def test_measure_out_of_force_makes_the_amount_hypothetical(registry, week_store):
    _, store, _ = week_store
    # Chengdu's measure is in force 2023-02-10 .. 2026-02-09; this week is July 2026
    res = evaluate(registry, store, Period(dt.date(2026, 7, 6), dt.date(2026, 7, 12)), ["cd-east-01", "cd-pue-fail"],
                   ["chengdu-2023-cloud-retrofit"])
    east, fail = (f["profiles"]["chengdu-2023-cloud-retrofit"] for f in res["facilities"])
    assert east["eligible"] is True and east["subsidy_cny"] is not None       # the formula's figure, as before
    assert east["in_force"] is False and east["subsidy_hypothetical"] is True
    assert "not_in_force" in east["hypothetical_reasons"]
    assert any(n.startswith("measure not in force for this period") for n in east["notes"])
    assert fail["in_force"] is False and fail["subsidy_hypothetical"] is True and fail["subsidy_cny"] is None
    from dcmon.cli.text import format_table
    text = format_table(res)
    assert "measure not in force for this period" in text
    line = next(ln for ln in text.splitlines() if ln.startswith("cd-east-01") and "chengdu-2023" in ln)
    assert "hypothetical" in line


def test_period_partly_in_force_is_not_in_force(registry, week_store):
    _, store, _ = week_store
    res = evaluate(registry, store, Period(dt.date(2026, 1, 1), dt.date(2026, 3, 31)), ["cd-east-01"],
                   ["chengdu-2023-cloud-retrofit"])
    pr = res["facilities"][0]["profiles"]["chengdu-2023-cloud-retrofit"]
    assert pr["in_force"] is False and "partly" in pr["notes"][0]
    res = evaluate(registry, store, Period(dt.date(2025, 10, 1), dt.date(2025, 12, 31)), ["cd-east-01"],
                   ["chengdu-2023-cloud-retrofit"])
    assert res["facilities"][0]["profiles"]["chengdu-2023-cloud-retrofit"]["in_force"] is True


# 6. overall verdicts: required checks only -----------------------------------------------------
def _row(status, flag=None):
    return {"status": status, "required": flag is None, "flag": flag}


@pytest.mark.parametrize("rows, eligible, verdict", [
    ([_row("pass"), _row("inconclusive")], None, "inconclusive"),
    ([_row("pass"), _row("fail"), _row("inconclusive")], False, "fail"),
    ([_row("pass"), _row("fail", "retrofit_required")], True, "pass"),       # a raised flag is reported, not required
    ([_row("not_applicable"), _row("fail", "consolidate_or_edge")], None, "not_applicable"),
    ([_row("pass"), _row("pass")], True, "pass"),
])
def test_overall_verdict_needs_every_required_check(rows, eligible, verdict):
    assert overall_verdict(rows, True) == (eligible, verdict)


def test_hub_profile_reports_flags_apart(registry, week_store):
    _, store, _ = week_store
    res = evaluate(registry, store, Period(dt.date(2026, 7, 6), dt.date(2026, 7, 12)), None, ["chengdu-hub-2025"])
    for f in res["facilities"]:
        pr = f["profiles"]["chengdu-hub-2025"]
        required = [c for c in pr["checks"] if c["required"] and c["status"] != "not_applicable"]
        if not required:
            assert pr["eligible"] is None and pr["verdict"] == "not_applicable"
        elif pr["eligible"] is True:
            assert all(c["status"] == "pass" for c in required)
        assert all(r["flag"] for r in pr["report_only"])


# rollover_kwh is the register's modulus -----------------------------------------------------------
def test_rollover_is_the_registers_modulus(tmp_path):
    cfg = tmp_path / "cfg"
    _facility(cfg, "t-roll", meters=["{id: grid-a, role: facility, rollover_kwh: 100000000, max_gap_s: 86400}",
                                      "{id: ups-1, role: it, max_gap_s: 86400}"], racks=[(2.5, "compute")])
    store = open_store(tmp_path / "data")
    _readings(store, "t-roll", [("grid-a", "2026-01-05 00:00", 99_999_950.5), ("grid-a", "2026-01-05 12:00", 99_999_999.9),
                                ("grid-a", "2026-01-05 18:00", 20.0), ("grid-a", "2026-01-06 00:00", 49.5),
                                ("ups-1", "2026-01-05 00:00", 0.0), ("ups-1", "2026-01-06 00:00", 80.0)])
    res = evaluate(load_registry(cfg), store, _day(2026, 1, 5), ["t-roll"], ["gb40879-2021"])
    f = res["facilities"][0]
    # 49.4 to 99 999 999.9, then 0.1 to wrap at 100 000 000, 20.0 and 29.5 after: 99.0 kWh;
    # the rollover belongs to this day: the reading that reveals it (18:00) is inside it
    assert f["meters"][0]["energy_kwh"] == 99.0
    assert f["data_quality"]["events"] == {"rollover": 1}


# subsidy steps multiply out as printed; flags kept apart -----------------------------------------
def test_subsidy_steps_multiply_out_and_flags_are_separate():
    est = subsidy_estimate(1100, 1000, 2_000_000, retrofit_cost_cny=1_000_000, cost_share=0.5)
    assert est["subsidy_cny"] == 500_000.00                 # 50 % × 1 000 000: the racks cancel
    last = est["steps"][-1]
    assert (last["per_rack_cny"], last["racks"], last["gross_cny"]) == ("5,000/11 (≈ 454.55)", 1100, "500,000.00")
    assert not est["capped"] and not est["per_rack_capped"] and not est["subsidy_is_upper_bound"]
    est = subsidy_estimate(3000, 1000, 2_000_000, retrofit_cost_cny=9_000_000, cost_share=0.5)
    assert est["per_rack_capped"] and est["capped"] and not est["no_retrofit_cost"] and est["subsidy_cny"] == 2_000_000
    est = subsidy_estimate(1100, 1000, 2_000_000, cost_share=0.5)
    assert est["no_retrofit_cost"] and est["subsidy_is_upper_bound"] and not est["capped"]
    assert est["upper_bound_reason"] == "no_retrofit_cost"
    est = subsidy_estimate(1100, 1000, 1_000_000, always_upper_bound=True)
    assert est["ceiling_only"] and est["capped"] and est["upper_bound_reason"] == "ceiling_only"


# property tests: exactly on, just below and just above each threshold -----------------------------
OPS_EXPECT = {"<": (False, True, False), "<=": (True, True, False), ">": (False, False, True), ">=": (True, False, True)}


@settings(max_examples=80, deadline=None)
@given(it_mwh=st.integers(min_value=1, max_value=10**12), th=st.sampled_from(["1.2", "1.25", "1.3", "1.5"]),
       op=st.sampled_from(list(OPS_EXPECT)))
def test_property_pue_from_exact_energies(it_mwh, th, op):
    """Energies in whole mWh (as counters are read); PUE on, 1 mWh below and above the threshold."""
    t = Fraction(th)
    on_f = t * it_mwh
    if on_f.denominator != 1:
        it_mwh *= on_f.denominator
        on_f = t * it_mwh
    on, below, above = (compare(Fraction(int(on_f) + d, it_mwh), op, float(th), 1.0)[0] for d in (0, -1, 1))
    assert (on, below, above) == OPS_EXPECT[op]


@settings(max_examples=60, deadline=None)
@given(n_compute=st.integers(min_value=1, max_value=400), kw=st.sampled_from([2.5, 3.3, 4.4, 6.0, 7.7, 8.8]),
       delta=st.sampled_from([-1, 0, 1]))
def test_property_compute_share_on_and_around_70_percent(tmp_path_factory, n_compute, kw, delta):
    """7 compute racks to 3 storage racks of the same power is 70 % exactly; one rack more or less moves it."""
    from dcmon.metrics.racks import compute_share_exact
    n_storage = 3 * n_compute
    n_c = 7 * n_compute + delta
    inv = pd.DataFrame({"rack_id": [f"r{i}" for i in range(n_c + n_storage)], "design_power_kw": [kw] * (n_c + n_storage),
                        "function": ["compute"] * n_c + ["storage"] * n_storage, "status": "in_service"})
    share = compute_share_exact(inv)
    assert share == Fraction(n_c, n_c + n_storage)
    assert compare(share, ">", 0.70, 1.0)[0] is (delta > 0)
    assert compare(share, ">=", 0.70, 1.0)[0] is (delta >= 0)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(min_value=1, max_value=3000), delta=st.sampled_from([-0.1, 0.0, 0.1]))
def test_property_standard_racks_and_kw_per_rack(n, delta):
    """1000 standard racks = 2500 kW, kW per rack at 6: on, 0.1 kW below and above."""
    from dcmon.metrics.racks import exact_summary
    kws = [2.5] * 999 + [round(2.5 + delta, 1)]
    inv = pd.DataFrame({"rack_id": [f"r{i}" for i in range(1000)], "design_power_kw": kws,
                        "function": "compute", "status": "in_service"})
    x = exact_summary(inv)
    assert compare(x["standard_racks"], ">=", 1000, 1.0)[0] is (delta >= 0)
    inv6 = pd.DataFrame({"rack_id": [f"r{i}" for i in range(n)], "design_power_kw": [6.0] * (n - 1) + [round(6 + delta, 1)],
                         "function": "compute", "status": "in_service"})
    assert compare(exact_summary(inv6)["avg_design_power_per_rack_kw"], ">=", 6, 1.0)[0] is (delta >= 0)
    assert compare(500_000 + int(delta * 10), ">=", 500000, 1.0)[0] is (delta >= 0)   # terminals


# end to end: CSV import, then the CLI table and JSON -----------------------------------------------
def test_cli_pue_of_exactly_1_25_end_to_end(tmp_path):
    import json
    import os
    import subprocess
    import sys
    cfg = tmp_path / "cfg"
    _facility(cfg, "t-pue", meters=["{id: grid-a, role: facility, max_gap_s: 86400}",
                                     "{id: ups-1, role: it, max_gap_s: 86400}"], racks=RETROFIT_RACKS)
    csv = tmp_path / "r.csv"
    csv.write_text("ts,facility_id,kind,id,energy_kwh,power_kw\n"
                   "2025-06-05T00:00:00+08:00,t-pue,meter,grid-a,1000.0,\n"
                   "2025-06-06T00:00:00+08:00,t-pue,meter,grid-a,13000.0,\n"
                   "2025-06-05T00:00:00+08:00,t-pue,meter,ups-1,6788.9,\n"
                   "2025-06-06T00:00:00+08:00,t-pue,meter,ups-1,16388.9,\n")
    env = dict(os.environ, PYTHONIOENCODING="utf-8")

    def dcmon(*args):
        p = subprocess.run([sys.executable, "-m", "dcmon.cli", *args, "--config", str(cfg), "--data", str(tmp_path / "d")],
                           capture_output=True, text=True, env=env, timeout=300)
        assert p.returncode == 0, p.stderr
        return p.stdout
    dcmon("import", str(csv))
    args = ["evaluate", "--from", "2025-06-05", "--to", "2025-06-05", "--profile", "chengdu-2023-cloud-retrofit"]
    doc = json.loads(dcmon(*args, "--format", "json"))
    f = doc["facilities"][0]
    pr = f["profiles"]["chengdu-2023-cloud-retrofit"]
    assert f["pue"] == 1.25 and f["exact"]["pue"] == "5/4" and f["exact"]["it_energy_kwh"] == "9600"
    assert pr["eligible"] is False and pr["subsidy_cny"] is None and pr["in_force"] is True
    assert pr["subsidy_hypothetical"] is True and pr["hypothetical_reasons"] == ["not_eligible"]
    table = dcmon(*args)
    line = next(ln for ln in table.splitlines() if ln.startswith("t-pue") and "chengdu-2023" in ln)
    assert "✘pue 1.250<1.25" in line and "none due" in line and "1,050,000.00" in line


def test_energy_across_a_gap_of_more_than_a_year(tmp_path):
    """The nearest readings bound the period however far away: 400 days, 1 kWh a day."""
    rows = [(m, t, v) for m in ("grid-a", "ups-1") for t, v in (("2025-01-01 00:00", 0.0), ("2026-02-05 00:00", 400.0))]
    reg, store = _gap_site(tmp_path, rows=rows)
    energy, _ = _energy(reg, store, _day(2025, 12, 31, 2026, 1, 1))
    assert energy == {"grid-a": 2.0, "ups-1": 2.0}


@pytest.mark.parametrize("value, digits, threshold, percent, text", [
    (Fraction(5, 4), 3, 1.25, False, "1.250"),
    (Fraction(12496, 10000), 3, 1.25, False, "1.2496"),             # would print 1.250, which it is not
    (Fraction(125004, 100000), 3, 1.25, False, "1.25004"),
    (Fraction(7, 10), 1, 0.7, True, "70.0%"),
    (Fraction(6999, 10000), 1, 0.7, True, "69.99%"),
    (Fraction(12496, 10000), 3, None, False, "1.250"),               # no threshold: plain rounding
    (Fraction(1, 3), 3, 1.5, False, "0.333"),
])
def test_figure_text_agrees_with_the_decision(value, digits, threshold, percent, text):
    from dcmon.metrics.exact import figure_text
    assert figure_text(value, digits, threshold, percent=percent) == text


def test_decide_takes_decimal_values():
    from dcmon.metrics.exact import decide, to_fraction
    assert to_fraction(6788.9) == Fraction(67889, 10) and to_fraction("5/4") == Fraction(5, 4)
    assert decide((16388.9 - 6788.9), "<=", 9600) is False          # the float difference is 9600.000000000002
    assert decide(to_fraction(16388.9) - to_fraction(6788.9), "<=", 9600) is True
    assert compare(12000 / 9600.000000000002, "<", 1.25, 1.0)[0] is True   # a float is taken as it is written


@settings(max_examples=60, deadline=None)
@given(it_kwh_tenths=st.integers(min_value=10, max_value=10**9), th=st.sampled_from(["1.2", "1.25", "1.3", "1.5"]),
       op=st.sampled_from(list(OPS_EXPECT)), start_f=st.integers(min_value=0, max_value=10**10),
       start_i=st.integers(min_value=0, max_value=10**10), cuts=st.lists(st.floats(0.01, 0.99), min_size=0, max_size=5),
       d=st.sampled_from([-1, 0, 1]))
def test_property_pue_from_counter_readings(it_kwh_tenths, th, op, start_f, start_i, cuts, d):
    """Counter readings with one decimal (as meters print them) whose PUE is on, 0.1 kWh below or
    above the threshold, streamed through the accumulator: the decision follows the exact ratio."""
    import numpy as np

    from dcmon.metrics.energy import EnergyAccumulator, SourceParams
    from dcmon.metrics.pue import pue_exact
    t = Fraction(th)
    it = it_kwh_tenths * t.denominator                 # IT increase in 0.1 kWh, so that t × IT is whole
    fac = int(t * it) + d                              # facility increase in 0.1 kWh
    T0 = 1_782_864_000_000
    n = len(cuts) + 2
    ts = [T0 + k * 60_000 for k in range(n)]

    def readings(start, inc):
        marks = sorted({0, inc, *(int(inc * c) for c in cuts)})
        marks += [inc] * (n - len(marks))
        return [(start + m) / 10 for m in marks]      # one-decimal floats, e.g. 6788.9
    acc = EnergyAccumulator(["f", "i"], [SourceParams(max_gap_ms=900_000)] * 2, np.array([0, 1]), 2,
                            np.array([T0, ts[-1]], dtype=np.int64), "counter")
    acc.feed(pa.table({"source_id": ["f"] * n + ["i"] * n, "ts": pa.array(ts * 2, pa.timestamp("ms", tz="UTC")),
                       "energy_kwh": readings(start_f, fac) + readings(start_i, it)}))
    r = acc.result()
    f_kwh, i_kwh = r.source_energy_exact_kwh(0), r.source_energy_exact_kwh(1)
    assert (f_kwh, i_kwh) == (Fraction(fac, 10), Fraction(it, 10))
    on, below, above = OPS_EXPECT[op]
    assert compare(pue_exact(f_kwh, i_kwh), op, float(th), 1.0)[0] is {0: on, -1: below, 1: above}[d]


def test_event_belongs_to_the_period_of_the_reading_that_reveals_it():
    import numpy as np

    from dcmon.metrics.energy import EnergyAccumulator, SourceParams
    T0, H = 1_782_864_000_000, 3_600_000
    batch = pa.table({"source_id": ["m"] * 3, "ts": pa.array([T0, T0 + H, T0 + 2 * H], pa.timestamp("ms", tz="UTC")),
                      "energy_kwh": [500.0, 600.0, 5.0]})                     # a reset revealed at T0 + 1 h... + 2 h
    counts = []
    for edges in ([T0, T0 + 2 * H], [T0 + 2 * H, T0 + 3 * H]):
        acc = EnergyAccumulator(["m"], [SourceParams(max_gap_ms=4 * H)], np.array([0]), 1,
                                np.array(edges, dtype=np.int64), "counter")
        acc.feed(batch)
        counts.append(acc.result().event_counts.get("reset", 0))
    assert counts == [0, 1]        # the reading at T0 + 2 h starts the second period: [start, end)


def test_retrofit_outside_the_application_window_is_hypothetical(tmp_path):
    cfg = tmp_path / "cfg"
    _facility(cfg, "t-win", meters=["{id: grid-a, role: facility}", "{id: ups-1, role: it}"], racks=RETROFIT_RACKS,
              extra="retrofit: {completed: 2024-03-01, cost_cny: 1000000}\n")
    store = open_store(tmp_path / "data")
    res = evaluate(load_registry(cfg), store, _day(2025, 6, 1), ["t-win"], ["chengdu-2023-cloud-retrofit"])
    pr = res["facilities"][0]["profiles"]["chengdu-2023-cloud-retrofit"]
    assert pr["in_force"] is True and pr["application_window"]["inside"] is False
    assert "outside_application_window" in pr["hypothetical_reasons"] and pr["subsidy_hypothetical"] is True
    assert any("outside the application window 2023-01-10..2023-07-31" in n for n in pr["notes"])


def test_export_says_which_measures_are_not_in_force(registry, week_store):
    from dcmon.reports.export import build_export
    _, store, _ = week_store
    data, _, result = build_export(registry, store, Period(dt.date(2026, 7, 6), dt.date(2026, 7, 12)), fmt="csv",
                                   lang="zh", city="chengdu")
    header = data.decode("utf-8-sig").splitlines()[0]
    assert "政策：成都市云计算中心提档升级一次性改造补贴（该政策在此期间不在有效期内）" in header
    assert "政策：成都市全国一体化算力网络枢纽节点建设目标（2025）," in header + ","   # no dates: nothing said
    city = [c for c in result["portfolio"]["checks"] if c["scope"] == "city"]
    assert city and all(c["facilities"] == sum(f.city == "chengdu" for f in registry.select(None)) for c in city)


@pytest.mark.parametrize("lang, notice, not_due", [("zh", "该政策在此期间不在有效期内", "无应付金额"),
                                                   ("en", "measure not in force for this period", "no amount due")])
def test_evidence_says_not_in_force_and_no_amount_due(registry, week_store, lang, notice, not_due):
    from dcmon.reports.evidence import render_html
    _, store, _ = week_store
    out = render_html(registry, store, "cd-east-01", Period(dt.date(2026, 7, 6), dt.date(2026, 7, 12)), lang=lang)
    text = out[0] if isinstance(out, tuple) else out
    assert notice in text and not_due in text
