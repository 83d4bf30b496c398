"""The helpers shared by figures, checks, live queries and the export: one quarter-of-date, one
tri-state status, one rack coverage rule, and export flags read from the profile files."""
import datetime as dt
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from dcmon.periods import Period, quarter_of

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("day, label, first, last", [
    ("2026-01-01", "2026Q1", "2026-01-01", "2026-03-31"), ("2026-03-31", "2026Q1", "2026-01-01", "2026-03-31"),
    ("2026-06-30", "2026Q2", "2026-04-01", "2026-06-30"), ("2026-07-01", "2026Q3", "2026-07-01", "2026-09-30"),
    ("2024-12-31", "2024Q4", "2024-10-01", "2024-12-31")])
def test_quarter_of_a_day(day, label, first, last):
    q = quarter_of(dt.date.fromisoformat(day))
    assert (q.label, q.first_day.isoformat(), q.last_day.isoformat()) == (label, first, last)


def test_quarter_bounds_follow_the_local_day():
    from dcmon.metrics.live import quarter_bounds
    # 2026-06-30T17:00Z is already 1 July in Shanghai: the third quarter
    start, end, label = quarter_bounds(pd.Timestamp("2026-06-30T17:00Z"), "Asia/Shanghai")
    assert label == "2026Q3" and start == pd.Timestamp("2026-06-30T16:00Z") and end == pd.Timestamp("2026-09-30T16:00Z")


def test_status_of_a_tri_state():
    from dcmon.metrics.checks import flag_raised, status_of
    assert [status_of(x) for x in (True, False, None)] == ["pass", "fail", "inconclusive"]
    assert [flag_raised(s) for s in ("fail", "pass", "inconclusive")] == [True, False, None]


def test_live_rack_coverage_is_weighted_by_in_service_design_power(registry, tmp_path):
    """cd-racks-it: 51 in-service racks of 250 kW design power in all (plus vacant, reserved and
    decommissioned ones). Only A1-01-01 (5 kW, in service) reports through the window: coverage
    5 / 250 = 0.02, whatever the other 61 racks do (a plain mean would say 1/62)."""
    from dcmon.metrics.live import live_pue
    from dcmon.readings import to_table
    from dcmon.store import open_store
    fac = registry.get("cd-racks-it")
    racks = fac.racks
    assert racks.loc[racks["status"] == "in_service", "design_power_kw"].sum() == 250
    assert racks.set_index("rack_id").loc["A1-01-01", ["design_power_kw", "status"]].tolist() == [5, "in_service"]
    store = open_store(tmp_path)
    now = pd.Timestamp("2026-07-12T12:00+08:00").tz_convert("UTC")
    ms = lambda minutes: int((now - pd.Timedelta(minutes=minutes)).value // 10**6)  # noqa: E731
    rows = [{"facility_id": fac.id, "kind": "meter", "source_id": "grid-a", "ts": ms(m), "energy_kwh": 1000.0 + (30 - m),
             "received_at": ms(m)} for m in range(30, -1, -1)]
    rows += [{"facility_id": fac.id, "kind": "rack", "source_id": "A1-01-01", "ts": ms(m), "power_kw": 3.0,
              "received_at": ms(m)} for m in range(30, -1, -5)]
    store.append(to_table(rows))
    live = live_pue(store, fac, now, dt.timedelta(minutes=15))
    assert live["coverage"] == pytest.approx(5 / 250)
    assert live["it_energy_kwh"] == pytest.approx(3.0 * 0.25)        # 3 kW for a quarter of an hour
    assert live["facility_energy_kwh"] == pytest.approx(15.0)         # 1 kWh a minute


def test_export_flags_follow_the_profile_file(registry, week_store, tmp_path):
    """A user copy of chengdu-hub-2025 with other flag thresholds: the export's flag columns take
    the thresholds (headers, methodology and values) and the conditions from it."""
    import yaml

    from dcmon.registry import load_registry
    from dcmon.reports.export import build_export
    _, store, _ = week_store
    cfg = tmp_path / "config"
    shutil.copytree(REPO / "fixtures" / "facilities", cfg / "facilities")
    doc = yaml.safe_load((REPO / "config" / "policies" / "chengdu-hub-2025.yaml").read_text(encoding="utf-8"))
    for c in doc["checks"]:
        if c.get("flag") == "retrofit_required":
            c["threshold"] = 1.3
        if c.get("flag") == "consolidate_or_edge":
            c["threshold"] = 500
    (cfg / "policies").mkdir()
    (cfg / "policies" / "chengdu-hub-2025.yaml").write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    reg = load_registry(cfg)
    week = Period(dt.date(2026, 7, 6), dt.date(2026, 7, 12))
    body, _, _ = build_export(reg, store, week, fmt="json", lang="en", include_all=True)
    out = json.loads(body)
    heads = {c["key"]: c["header"] for c in out["columns"]}
    assert heads["flag_retrofit_required"] == "Retrofit required (PUE > 1.3)"
    assert heads["flag_below_50_racks"] == "Fewer than 500 racks"
    rows = {r["facility_id"]: r for r in out["rows"]}
    # Chengdu sites commissioned before 2023 (existing sites), coverage complete in the generated week
    for fid in ("cd-pue-fail", "cd-racks-it", "cd-east-01"):
        r = rows[fid]
        assert r["flag_retrofit_required"] is (r["pue"] > 1.3)
    assert rows["cd-pue-fail"]["flag_retrofit_required"] is True      # PUE 1.32 generated
    assert rows["cd-racks-fail"]["flag_below_50_racks"] is True       # 367 physical racks < 500
    assert rows["cd-east-01"]["flag_below_50_racks"] is False         # 544 racks
    assert rows["cd-edge-01"]["flag_below_50_racks"] is None          # edge sites: the rule does not apply
    assert rows["bd-cloud-01"]["flag_retrofit_required"] is None      # a Baoding site: not a Chengdu profile
