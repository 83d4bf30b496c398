"""Metrics against the generator's ground truth, exact thresholds, and the JSON contract."""
import datetime as dt

import pytest

from dcmon.metrics.evaluate import Options, evaluate, facility_figures
from dcmon.periods import Period

WEEK = (dt.date(2026, 7, 6), dt.date(2026, 7, 12))  # as in conftest.week_store
WEEK_PERIOD = Period(*WEEK)


def test_energy_equals_ground_truth_for_every_fixture(registry, week_store):
    _, store, truths = week_store
    for fac in registry.select(None):
        fig = facility_figures(store, fac, WEEK_PERIOD)
        truth = truths[fac.id]
        assert fig["facility_energy_kwh"] == pytest.approx(truth.facility_energy_kwh, rel=1e-12), fac.id
        assert fig["it_energy_kwh"] == pytest.approx(truth.it_energy_kwh, rel=1e-9), fac.id
        assert fig["coverage"] == pytest.approx(1.0), fac.id


def test_daily_bins_add_up_and_match_truth(registry, week_store):
    _, store, truths = week_store
    fac = registry.get("cd-east-01")
    fig = facility_figures(store, fac, WEEK_PERIOD, Options(bins="day"))
    bins = fig["bins"]
    daily = truths[fac.id].daily
    assert list(bins["bin"]) == [d.isoformat() if hasattr(d, "isoformat") else str(d) for d in daily["date"]]
    assert bins["facility_energy_kwh"].to_numpy() == pytest.approx(daily["facility_energy_kwh"].to_numpy(), rel=1e-12)
    assert bins["it_energy_kwh"].sum() == pytest.approx(fig["it_energy_kwh"], rel=1e-12)


def test_boundary_site_is_exactly_at_each_threshold(registry, week_store):
    _, store, _ = week_store
    res = evaluate(registry, store, WEEK_PERIOD, ["cd-boundary"], ["chengdu-2023-cloud-retrofit"])
    f = res["facilities"][0]
    assert f["pue"] == 1.25 and f["standard_racks"] == 1000.0 and f["compute_share"] == 0.70
    checks = {c["metric"]: c for c in f["profiles"]["chengdu-2023-cloud-retrofit"]["checks"]}
    assert checks["pue"]["passed"] is False and checks["pue"]["margin"] == 0.0           # 1.25 fails "< 1.25"
    assert checks["racks"]["passed"] is True and checks["racks"]["margin"] == 0.0        # 1000 passes ">= 1000"
    assert checks["compute_share"]["passed"] is False                                    # 70.0% fails "> 70%"
    assert f["profiles"]["chengdu-2023-cloud-retrofit"]["eligible"] is False
    assert f["profiles"]["chengdu-2023-cloud-retrofit"]["subsidy_cny"] is None


@pytest.mark.parametrize("fid, eligible, failing", [
    ("cd-east-01", True, set()),
    ("cd-pue-fail", False, {"pue"}),
    ("cd-racks-fail", False, {"racks"}),
    ("cd-compute-fail", False, {"compute_share"}),
])
def test_retrofit_fixtures_pass_and_fail_as_designed(registry, week_store, fid, eligible, failing):
    _, store, _ = week_store
    res = evaluate(registry, store, WEEK_PERIOD, [fid], ["chengdu-2023-cloud-retrofit"])
    prof = res["facilities"][0]["profiles"]["chengdu-2023-cloud-retrofit"]
    assert prof["eligible"] is eligible
    assert {c["metric"] for c in prof["checks"] if c["passed"] is False} == failing


def test_subsidy_for_the_eligible_site_follows_the_formula(registry, week_store):
    _, store, _ = week_store
    res = evaluate(registry, store, WEEK_PERIOD, ["cd-east-01"], ["chengdu-2023-cloud-retrofit"])
    f = res["facilities"][0]
    prof = f["profiles"]["chengdu-2023-cloud-retrofit"]
    n = f["in_service_racks"]
    per_rack = min(1000, 0.5 * 4_200_000 / n)
    assert prof["subsidy_cny"] == pytest.approx(min(2_000_000, per_rack * n))
    assert prof["subsidy_is_upper_bound"] is False


def test_baoding_estimate_is_an_upper_bound(registry, week_store):
    _, store, _ = week_store
    f = evaluate(registry, store, WEEK_PERIOD, ["bd-cloud-01"])["facilities"][0]
    assert set(f["profiles"]) == {"baoding-2024-cloud-retrofit", "gb40879-2021"}
    prof = f["profiles"]["baoding-2024-cloud-retrofit"]
    assert prof["eligible"] is True
    assert prof["subsidy_cny"] == min(1_000_000, 1000 * f["in_service_racks"])
    assert prof["subsidy_is_upper_bound"] is True


def test_missing_data_is_inconclusive_never_passed(registry, week_store):
    _, store, _ = week_store
    # a period with only half the data: the PUE check cannot pass
    half = Period(dt.date(2026, 7, 9), dt.date(2026, 7, 15))
    f = evaluate(registry, store, half, ["cd-east-01"], ["chengdu-2023-cloud-retrofit"])["facilities"][0]
    pue_check = next(c for c in f["profiles"]["chengdu-2023-cloud-retrofit"]["checks"] if c["metric"] == "pue")
    assert f["coverage"] == pytest.approx(4 / 7, abs=0.01)
    assert pue_check["status"] == "inconclusive" and pue_check["passed"] is None
    assert "coverage" in pue_check["reason"]
    assert f["profiles"]["chengdu-2023-cloud-retrofit"]["eligible"] is None


def test_no_data_gives_null_pue(registry, week_store):
    _, store, _ = week_store
    f = evaluate(registry, store, Period(dt.date(2025, 1, 1), dt.date(2025, 1, 31)), ["cd-east-01"])["facilities"][0]
    assert f["pue"] is None and f["coverage"] == 0.0
    assert all(c["status"] in ("inconclusive", "pass", "fail", "not_applicable")
               for p in f["profiles"].values() for c in p["checks"])
    assert f["profiles"]["chengdu-2023-cloud-retrofit"]["eligible"] is None


def test_json_contract_keys(registry, week_store):
    _, store, _ = week_store
    res = evaluate(registry, store, WEEK_PERIOD, ["cd-east-01"])
    assert res["period"]["from"] == "2026-07-06" and res["period"]["to"] == "2026-07-12"
    f = res["facilities"][0]
    for key in ("facility_id", "pue", "pue_category", "pue_label", "facility_energy_kwh", "it_energy_kwh", "coverage",
                "physical_racks", "in_service_racks", "standard_racks", "size_class", "occupancy_rate", "compute_share",
                "profiles"):
        assert key in f
    assert f["pue_label"] == "interim"
    prof = f["profiles"]["chengdu-2023-cloud-retrofit"]
    assert {"eligible", "checks", "subsidy_cny", "subsidy_is_upper_bound"} <= set(prof)
    assert {"metric", "value", "op", "threshold", "passed", "margin"} <= set(prof["checks"][0])
    assert {"pue", "occupancy_rate"} <= set(res["portfolio"])


def test_portfolio_pue_is_energy_weighted(registry, week_store):
    _, store, _ = week_store
    res = evaluate(registry, store, WEEK_PERIOD)
    fs = res["facilities"]
    expected = sum(f["facility_energy_kwh"] for f in fs) / sum(f["it_energy_kwh"] for f in fs)
    assert res["portfolio"]["pue"] == pytest.approx(expected)
    occ = sum(f["in_service_design_power_kw"] for f in fs) / sum(f["design_it_power_kw"] for f in fs)
    assert res["portfolio"]["occupancy_rate"] == pytest.approx(occ)


def test_faults_are_handled_and_reported(registry, tmp_path):
    from dcmon.fixtures.generate import Faults, generate
    from dcmon.store import open_store
    fac = registry.get("cd-east-01")
    g = generate(fac, *WEEK, include_racks=False, seed=3,
                 faults=Faults(counter_reset=True, rollover=True, noise_dip=True, gap_hours=3, duplicates=50, late=20))
    store = open_store(tmp_path)
    store.append(g.table, check_existing=False)
    fig = facility_figures(store, fac, WEEK_PERIOD)
    assert fig["facility_energy_kwh"] == pytest.approx(g.truth.facility_energy_kwh, rel=1e-12)
    assert fig["it_energy_kwh"] == pytest.approx(g.truth.it_energy_kwh, rel=1e-12)
    ev = fig["data_quality"]["events"]
    assert ev.get("reset") == 1 and ev.get("rollover") == 1 and ev.get("noise_dip") == 1 and ev.get("gap") == 1
    assert fig["data_quality"]["late_readings"] >= 1
    assert fig["coverage"] < 1.0


def test_parallel_source_split_equals_sequential(registry, week_store):
    """Splitting racks across threads by source range gives the same figures as one stream."""
    import numpy as np

    from dcmon.metrics.energy import SourceParams
    from dcmon.metrics.evaluate import bin_edges, source_energy
    _, store, truths = week_store
    fac = registry.get("cd-racks-it")
    ids = list(fac.racks["rack_id"])
    edges, _ = bin_edges(WEEK_PERIOD, fac.timezone, "day")
    args = (store, fac.id, "rack", ids, [SourceParams(max_gap_ms=1_800_000)] * len(ids),
            np.zeros(len(ids), dtype=np.int64), 1, edges)
    one, two, three = (source_energy(*args, workers=w) for w in (1, 2, 3))
    for other in (two, three):
        assert np.array_equal(one.energy_kwh, other.energy_kwh)
        assert np.array_equal(one.coverage, other.coverage)
        assert np.allclose(one.group_bin_energy_kwh, other.group_bin_energy_kwh, rtol=1e-13)
    assert one.energy_kwh.sum() == pytest.approx(truths[fac.id].it_energy_kwh, rel=1e-12)


def test_rack_metered_site_daily_it_energy_and_coverage(registry, week_store):
    _, store, truths = week_store
    fac = registry.get("cd-racks-it")
    fig = facility_figures(store, fac, WEEK_PERIOD, Options(bins="day"))
    daily = truths[fac.id].daily
    assert fig["bins"]["it_energy_kwh"].to_numpy() == pytest.approx(daily["it_energy_kwh"].to_numpy(), rel=1e-9)
    assert fig["bins"]["coverage"].to_numpy() == pytest.approx(1.0)
    assert fig["it_energy_from"] == "racks" and fig["it_energy_coverage"] == pytest.approx(1.0)
