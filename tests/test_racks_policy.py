"""Rack figures, inventory changes, policy comparisons, grades and subsidies: hand-checkable values."""
import datetime as dt

import pandas as pd
import pytest

from dcmon.metrics import racks as R
from dcmon.metrics.policy import compare, grade, load_profiles
from dcmon.metrics.pue import energy_to_save_kwh, portfolio_pue, pue
from dcmon.metrics.subsidy import subsidy_estimate

INV = pd.DataFrame({
    "rack_id": ["a", "b", "c", "d", "e"],
    "design_power_kw": [5.0, 5.0, 10.0, 2.5, 7.5],
    "function": ["compute", "compute", "storage", "network", "compute"],
    "status": ["in_service", "in_service", "in_service", "vacant", "decommissioned"],
})


def test_rack_figures_by_hand():
    s = R.rack_summary(INV)
    assert s["physical_racks"] == 4                      # e is decommissioned
    assert s["standard_racks"] == (5 + 5 + 10 + 2.5) / 2.5 == 9.0
    assert s["in_service_racks"] == 3
    assert s["occupancy_rate"] == 20 / 22.5
    assert s["avg_design_power_per_rack_kw"] == 22.5 / 4
    assert R.compute_share(INV) == 10 / 20                # design power, in service
    assert R.compute_share(INV, "rack_count") == 2 / 3
    assert R.compute_share(INV, "compute_storage") == 10 / 20
    energy = pd.Series({"a": 30.0, "b": 10.0, "c": 60.0})
    assert R.compute_share(INV, "it_energy", energy) == 40 / 100
    assert R.compute_share(INV, "it_energy") is None      # no measured energy: inconclusive
    with pytest.raises(ValueError, match="compute-share reading must be one of"):
        R.compute_share(INV, "gpu")


@pytest.mark.parametrize("std, cls", [(0, "micro"), (99.99, "micro"), (100, "small_medium"), (2999.9, "small_medium"),
                                      (3000, "large"), (9999.6, "large"), (10000, "hyperscale")])
def test_size_class_edges(std, cls):
    assert R.size_class(std) == cls


def test_empty_inventory_gives_none_not_crash():
    empty = INV.iloc[0:0]
    assert R.occupancy_rate(empty) is None and R.compute_share(empty) is None


def test_inventory_changes_and_time_weighted_figures():
    changes = pd.DataFrame({"source_id": ["d", "a"], "ts": [1000, 3000], "status": ["in_service", None],
                            "function": [None, "storage"], "design_power_kw": [None, None]})
    now = R.apply_changes(INV, changes)
    assert now.set_index("rack_id").loc["d", "status"] == "in_service"
    assert now.set_index("rack_id").loc["a", "function"] == "storage"
    tw = R.time_weighted_summary(INV, changes, 0, 4000)
    # occupancy: 20/22.5 for [0,1000), 22.5/22.5 after; compute: 10/20, then 10/22.5, then 5/22.5 from 3000
    assert tw["occupancy_rate"] == pytest.approx((0.25 * 20 + 0.75 * 22.5) / 22.5)
    assert tw["compute_share"] == pytest.approx((0.25 * 10 + 0.5 * 10 + 0.25 * 5) / (0.25 * 20 + 0.75 * 22.5))


@pytest.mark.parametrize("value, op, thr, passed, margin", [
    (1.25, "<", 1.25, False, 0.0), (1.249, "<", 1.25, True, pytest.approx(0.001)),
    (1000, ">=", 1000, True, 0), (999.6, ">=", 1000, False, pytest.approx(-0.4)),
    (0.70, ">", 0.70, False, 0.0), (0.7001, ">", 0.70, True, pytest.approx(0.0001)),
    (1.30, "<=", 1.30, True, 0.0),
])
def test_compare_exact_inequalities(value, op, thr, passed, margin):
    p, m, status = compare(value, op, thr, coverage=1.0)
    assert p is passed and m == margin and status == ("pass" if passed else "fail")


def test_compare_inconclusive_without_data_or_coverage():
    assert compare(None, "<", 1.25, 1.0) == (None, None, "inconclusive")
    p, m, status = compare(1.1, "<", 1.25, coverage=0.94)
    assert p is None and status == "inconclusive" and m == pytest.approx(0.15)
    with pytest.raises(ValueError, match="op must be one of"):
        compare(1, "=", 1, 1)


def test_gb40879_grades():
    g = load_profiles()["gb40879-2021"].grades
    assert [grade(x, g) for x in (1.15, 1.20, 1.21, 1.30, 1.31, 1.50, 1.51, None)] == [1, 1, 2, 2, 3, 3, None, None]


def test_pue_and_energy_to_save():
    assert pue(123.1, 100.0) == pytest.approx(1.231)
    assert pue(100.0, 0.0) is None and pue(float("nan"), 1.0) is None and pue(None, 1.0) is None
    assert energy_to_save_kwh(12_310_000, 10_000_000, 1.25) == pytest.approx(-190_000)
    assert portfolio_pue([130, 250, 99], [100, 200, 0]) == pytest.approx(380 / 300)


@pytest.mark.parametrize("n, cost, share, expected, upper", [
    (1100, 4_200_000, 0.5, min(1000, 0.5 * 4_200_000 / 1100) * 1100, False),   # 1909.09/rack → 1000 cap
    (1100, 1_000_000, 0.5, 0.5 * 1_000_000, False),                             # 454.55/rack
    (3000, 9_000_000, 0.5, 2_000_000, False),                                  # total cap
    (1100, None, 0.5, 1_100_000, True),                                        # no cost: upper bound
])
def test_chengdu_subsidy(n, cost, share, expected, upper):
    est = subsidy_estimate(n, 1000, 2_000_000, retrofit_cost_cny=cost, cost_share=share)
    assert est["subsidy_cny"] == pytest.approx(expected, abs=0.01)
    assert est["subsidy_is_upper_bound"] is upper
    assert est["steps"]


def test_profiles_cite_a_clause_for_every_threshold():
    for prof in load_profiles().values():
        assert prof.source
        for c in prof.checks:
            assert c.clause, (prof.id, c.metric)


def test_hub_profile_flags_and_conditions(registry, week_store):
    from dcmon.metrics.evaluate import evaluate
    from dcmon.periods import Period
    _, store, _ = week_store
    res = evaluate(registry, store, Period(dt.date(2026, 7, 6), dt.date(2026, 7, 12)), profile_names=["chengdu-hub-2025"])
    by_id = {f["facility_id"]: f["profiles"]["chengdu-hub-2025"] for f in res["facilities"]}
    # cd-edge-01 (kind edge, 20 racks): the <50-rack consolidation rule does not apply to edge sites
    edge = {(c["metric"], c.get("flag")): c for c in by_id["cd-edge-01"]["checks"]}
    assert edge[("physical_racks", "consolidate_or_edge")]["status"] == "not_applicable"
    # start-area site: occupancy and PUE targets apply
    east = [c for c in by_id["cd-east-01"]["checks"] if c["status"] != "not_applicable"]
    assert {c["metric"] for c in east} >= {"occupancy_rate", "pue"}
    portfolio = {(c["scope"], c["metric"]) for c in res["portfolio"]["checks"]}
    assert portfolio == {("city", "occupancy_rate"), ("city", "pue"), ("cluster_start_area", "occupancy_rate"),
                         ("cluster_start_area", "pue")}


def test_live_pue_is_a_short_window_energy_ratio(registry, week_store):
    from dcmon.metrics.evaluate import live_pue
    _, store, truths = week_store
    fac = registry.get("cd-boundary")
    now = pd.Timestamp("2026-07-12T12:00+08:00").tz_convert("UTC")
    live = live_pue(store, fac, now, dt.timedelta(minutes=15))
    assert live["window_minutes"] == 15 and live["coverage"] == pytest.approx(1.0)
    assert live["pue"] == pytest.approx(1.25, abs=0.2)
    assert live["it_load_kw"] == pytest.approx(live["it_energy_kwh"] * 4)


def test_meter_status_flags_meters_silent_longer_than_their_max_gap(registry, tmp_path):
    from dcmon.metrics.evaluate import meter_status
    from dcmon.readings import to_table
    from dcmon.store import open_store
    store = open_store(tmp_path)
    fac = registry.get("cd-boundary")
    now = pd.Timestamp("2026-07-12T12:00+08:00").tz_convert("UTC")
    ms = lambda minutes: int((now - pd.Timedelta(minutes=minutes)).value // 10**6)  # noqa: E731
    gap = {m.id: m.max_gap_s for m in fac.meters}
    store.append(to_table([
        {"facility_id": fac.id, "kind": "meter", "source_id": "grid-a", "ts": ms(1), "energy_kwh": 10.0, "received_at": ms(1)},
        {"facility_id": fac.id, "kind": "meter", "source_id": "grid-b", "ts": ms(gap["grid-b"] / 60 + 1), "energy_kwh": 10.0,
         "received_at": ms(1)},
    ]))
    status = {m["meter_id"]: m for m in meter_status(store, fac, now)}
    assert list(status) == [m.id for m in fac.meters]
    assert status["grid-a"]["silent"] is False and status["grid-a"]["age_s"] == 60
    assert status["grid-b"]["silent"] is True and status["grid-b"]["age_s"] == gap["grid-b"] + 60
    assert status["ups-1"]["silent"] is True and status["ups-1"]["last_ts"] is None


def test_racks_by_room_adds_up_to_the_totals():
    g = R.racks_by(INV, ["function"])
    assert g.set_index("function")["racks"].to_dict() == {"compute": 2, "network": 1, "storage": 1}
    assert g["standard_racks"].sum() == R.rack_summary(INV)["standard_racks"] == 9.0
