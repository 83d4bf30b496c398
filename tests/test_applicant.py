"""The applicant's pack (seed 001 二(二)3): before/after the retrofit, the item (4) statement,
the item (5) skeleton, the completion window and the checklist.

Golden facility ``fixtures/applicant/facilities/ap-golden.yaml``; every expected figure is
worked out by hand in the comments, never with the product's helpers.
"""
import datetime as dt
import re
import shutil
from pathlib import Path

import pytest

from dcmon.errors import ConfigError
from dcmon.fixtures.applicant_data import write_golden
from dcmon.metrics import retrofit
from dcmon.metrics.applicant import ITEMS, applicant_pack, before_after
from dcmon.metrics.evaluate import Options, evaluate
from dcmon.periods import Period
from dcmon.registry import load_registry
from dcmon.store import open_store

REPO = Path(__file__).resolve().parents[1]
APPLICANT = REPO / "fixtures" / "applicant"
SEED = Path("/work/shared/seeds/001_79023afb721d293c.txt")
PROFILE = "chengdu-2023-cloud-retrofit"
AFTER = Period(dt.date(2023, 7, 1), dt.date(2024, 6, 30))


@pytest.fixture(scope="module")
def golden(tmp_path_factory):
    reg = load_registry(APPLICANT)
    store = open_store(tmp_path_factory.mktemp("ap-data"))
    write_golden(store)
    write_golden(store, "ap-late")
    return reg, store


def _pack(reg, store, fid="ap-golden", period=AFTER, months=12):
    res = evaluate(reg, store, period, [fid], [PROFILE])
    f = res["facilities"][0]
    return applicant_pack(store, reg.get(fid), period, Options(), f["profiles"][PROFILE], f["in_service_racks"], months), f


# --------------------------------------------------------------------------- pure
@pytest.mark.parametrize("day, k, want", [(dt.date(2023, 6, 30), -12, dt.date(2022, 6, 30)),
                                          (dt.date(2023, 1, 31), 1, dt.date(2023, 2, 28)),
                                          (dt.date(2024, 1, 31), 1, dt.date(2024, 2, 29)),
                                          (dt.date(2023, 3, 15), -3, dt.date(2022, 12, 15))])
def test_add_months(day, k, want):
    assert retrofit.add_months(day, k) == want


def test_windows_put_the_completion_day_in_before():
    before, after = retrofit.windows(dt.date(2023, 6, 30), 12)
    assert before == (dt.date(2022, 7, 1), dt.date(2023, 6, 30))
    assert after == (dt.date(2023, 7, 1), dt.date(2024, 6, 30))
    assert retrofit.windows(dt.date(2023, 3, 15), 2) == ((dt.date(2023, 1, 16), dt.date(2023, 3, 15)),
                                                          (dt.date(2023, 3, 16), dt.date(2023, 5, 15)))


@pytest.mark.parametrize("first, last, want", [(dt.date(2022, 7, 1), dt.date(2024, 6, 30), (12, 12)),
                                               (dt.date(2022, 7, 2), dt.date(2024, 6, 29), (11, 11)),
                                               (dt.date(2023, 1, 1), dt.date(2025, 1, 1), (6, 12)),
                                               (dt.date(2023, 7, 1), dt.date(2024, 6, 30), (0, 12)),
                                               (None, None, (0, 0))])
def test_months_covered(first, last, want):
    assert retrofit.months_covered(dt.date(2023, 6, 30), first, last, 12) == want


def test_energy_saved_and_co2_by_hand():
    # (1.3 − 1.2) × 402 600 kWh = 40 260 kWh; 40.26 MWh × 0.5703 t/MWh = 22.960278 t
    saved = retrofit.energy_saved_kwh("1.3", "1.2", 402_600)
    assert saved == 40_260
    assert retrofit.t_co2(saved, 0.5703) == pytest.approx(22.960278, abs=1e-12)
    assert retrofit.energy_saved_kwh("1.2", "1.3", 1000) == -100      # the PUE rose: energy lost
    assert retrofit.energy_saved_kwh(None, "1.2", 1000) is None


# ----------------------------------------------------------------------- golden
def test_golden_before_and_after_by_hand(golden):
    reg, store = golden
    pack, fig = _pack(reg, store)
    ba = pack["before_after"]
    assert ba["status"] == "ok" and ba["months"] == 12
    b, a = ba["before"], ba["after"]
    assert (b["from"], b["to"], b["days"]) == ("2022-07-01", "2023-06-30", 365)
    assert (a["from"], a["to"], a["days"]) == ("2023-07-01", "2024-06-30", 366)   # 2024 is a leap year
    assert b["facility_energy_kwh"] == 1300 * 365 == 474_500 and b["it_energy_kwh"] == 365_000
    assert a["facility_energy_kwh"] == 1320 * 366 == 483_120 and a["it_energy_kwh"] == 402_600
    assert b["exact"]["pue"] == "13/10" and a["exact"]["pue"] == "6/5"
    assert b["coverage"] == a["coverage"] == 1.0 and b["pue_label"] == a["pue_label"] == "annual"
    assert ba["energy_saved_kwh"] == 40_260 and ba["exact"]["energy_saved_kwh"] == "40260"
    assert ba["energy_saved_t_co2"] == pytest.approx(22.960278, abs=1e-9)
    assert "环办气候函〔2023〕43号" in ba["grid_emission_factor"]["source"]
    # racks: 1050 × 6 kW + 100 × 3 kW = 6600 kW → 2640 standard racks; in service 6300 kW → 21/22
    assert b["standard_racks"] == a["standard_racks"] == 2640
    assert b["exact"]["occupancy_rate"] == "21/22"
    # compute share at each side's end: before 700 × 6 / 6300 = 2/3; after 800 × 6 / 6300 = 16/21
    assert b["exact"]["compute_share"] == "2/3" and a["exact"]["compute_share"] == "16/21"
    months = [(m["side"], m["bin"]) for m in ba["monthly"]]
    assert months[0] == ("before", "2022-07") and months[11] == ("before", "2023-06")
    assert months[12] == ("after", "2023-07") and months[-1] == ("after", "2024-06") and len(months) == 24
    assert all(m["pue"] == pytest.approx(1.3 if m["side"] == "before" else 1.2) for m in ba["monthly"])


def test_golden_statement_by_hand(golden):
    reg, store = golden
    pack, fig = _pack(reg, store)
    st = pack["statement"]
    assert pack["statement_year"] == 2022          # the 2023 notice asks for 上一年度 = 2022
    assert st["investment"] == {"amount_cny": 1_850_000.0,
                                "source": "2022年度项目专项审计报告（示范会计师事务所）第4页"}
    cs = st["compute_share"]
    assert cs["as_of"] == "2022-12-31" and cs["instant_utc"] == "2022-12-31T16:00:00+00:00"
    assert cs["value_exact"] == "2/3" and cs["compute_racks"] == 700 and cs["in_service_racks"] == 1100
    assert cs["compute_design_power_kw"] == 4200 and cs["in_service_design_power_kw"] == 6300
    assert cs["reading"] == "design_power" and cs["inventory_changes_applied"] == 100
    # 2 150 000 CNY / 1100 in-use racks = 21500/11 = 1954.5454… CNY
    avg = st["avg_cost_per_rack"]
    assert avg["value_exact"] == "21500/11" and avg["in_use_physical_racks"] == 1100
    assert fig["profiles"][PROFILE]["subsidy_cny"] == 1_075_000.0   # min(1000, 10750/11) × 1100


def test_golden_form_fields_and_checklist(golden):
    reg, store = golden
    pack, _ = _pack(reg, store)
    fields = {r["field"]: r for r in pack["form_fields"]}
    assert fields["credit_code"]["value"] == "91510107MA6CR5H592"
    assert fields["project_name"]["value"] == "天府示范云计算中心提档升级改造项目"
    assert fields["actual_investment_cny"]["source"].startswith("2022年度项目专项审计报告")
    assert fields["subsidy_requested_cny"]["value"] == 1_075_000.0
    assert not [r for r in pack["form_fields"] if r["missing"]]
    status = {c["item"]: c["status"] for c in pack["checklist"]}
    assert status == {1: "complete", 2: "attach", 3: "attach", 4: "complete", 5: "complete", 6: "supporting"}
    assert pack["report"]["background"]["text"].startswith("原数据中心")
    assert pack["report"]["system_functions"] == {"from": "measured", "status": "ok"}
    assert pack["application_window"]["inside"] is True


def test_checklist_items_are_the_seeds_list():
    text = SEED.read_text(encoding="utf-8")
    sec = text[text.index("（二）加快云计算中心提档升级"):text.index("(三)鼓励算力服务国家战略")]
    listed = sec[sec.index("3. 申报材料"):]
    norm = lambda s: re.sub(r"\s+", "", s).replace("(", "（").replace(")", "）").replace(",", "，").replace(";", "；")  # noqa: E731
    assert len(ITEMS) == 6
    for n, item, _ in ITEMS:
        assert norm(f"({n}){item}") in norm(listed), item


def test_shorter_data_gives_the_same_months_on_both_sides(tmp_path):
    reg = load_registry(APPLICANT)
    store = open_store(tmp_path / "d")
    write_golden(store, first=dt.date(2023, 1, 1), last=dt.date(2025, 1, 1))
    ba = before_after(store, reg.get("ap-golden"), Options())
    # 6 whole months before (2023-01-01..06-30), so 6 after (2023-07-01..12-31, 184 days)
    assert ba["status"] == "ok" and ba["months"] == 6 and ba["months_after_available"] == 12
    assert (ba["before"]["from"], ba["after"]["to"]) == ("2023-01-01", "2023-12-31")
    assert ba["before"]["pue_label"] == "interim"
    assert ba["energy_saved_kwh"] == pytest.approx(0.1 * 1100 * 184)     # 20 240 kWh
    assert ba["exact"]["energy_saved_kwh"] == "20240"


def test_no_data_before_the_retrofit_is_inconclusive(tmp_path):
    reg = load_registry(APPLICANT)
    store = open_store(tmp_path / "d")
    write_golden(store, first=dt.date(2023, 7, 1))
    ba = before_after(store, reg.get("ap-golden"), Options())
    assert ba["status"] == "inconclusive" and "not_enough_data_before" in ba["reasons"]
    assert ba["before"] is None and ba["energy_saved_kwh"] is None and ba["energy_saved_t_co2"] is None
    assert ba["after"]["months"] == 12 and ba["after"]["exact"]["pue"] == "6/5"   # what there is, shown


def test_retrofit_outside_the_window_is_shown_as_a_failed_condition(golden):
    reg, store = golden
    pack, fig = _pack(reg, store, "ap-late")
    w = pack["application_window"]
    assert w == {"completion_from": "2023-01-10", "completion_to": "2023-07-31", "clause": "成经信财〔2023〕31号 二(二)1(4)",
                 "completed": "2023-09-15", "inside": False}
    pr = fig["profiles"][PROFILE]
    assert pr["subsidy_hypothetical"] is True and "outside_application_window" in pr["hypothetical_reasons"]
    # ap-late has no applicant block: item (1), (4), (5) say what is missing
    status = {c["item"]: (c["status"], c["missing"]) for c in pack["checklist"]}
    assert status[4] == ("incomplete", ["investment"])
    assert status[1][0] == "incomplete" and "project_name" in status[1][1]
    assert status[5][0] == "incomplete" and "background" in status[5][1]
    assert pack["before_after"]["grid_factor_configured"] is False
    assert pack["before_after"]["grid_emission_factor"] == retrofit.DEFAULT_GRID_FACTOR


# ------------------------------------------------------------------------- config
@pytest.mark.parametrize("block, message", [
    ("applicant: {actual_investment: [{year: 2022, amount_cny: 100}]}",
     "applicant.actual_investment[0].source is required"),
    ("applicant: {actual_investment: [{year: 22, amount_cny: 100, source: x}]}",
     "applicant.actual_investment[0].year must be a year such as 2022: 22"),
    ("applicant: {actual_investment: [{year: 2022, amount_cny: -5, source: x}]}",
     "applicant.actual_investment[0].amount_cny must be ≥ 0: -5"),
    ("applicant: {grid_emission_factor: {t_co2_per_mwh: 0.57}}", "applicant.grid_emission_factor.source is required"),
    ("applicant: {grid_emission_factor: {t_co2_per_mwh: abc, source: x}}",
     "applicant.grid_emission_factor.t_co2_per_mwh is not a number: 'abc'"),
    ("applicant: {narrative: missing.yaml}", "applicant.narrative file not found: 'missing.yaml'"),
    ("applicant: {narrative: {backgroud: x}}", "applicant.narrative: unknown section(s) backgroud"),
    ("applicant: {projekt_name: x}", "applicant: unknown key(s) projekt_name"),
])
def test_bad_applicant_config_names_file_field_and_value(tmp_path, block, message):
    fdir = tmp_path / "facilities"
    fdir.mkdir()
    src = (APPLICANT / "facilities" / "ap-late.yaml").read_text(encoding="utf-8")
    (fdir / "ap-late.yaml").write_text(src + block + "\n", encoding="utf-8")
    shutil.copy(APPLICANT / "facilities" / "ap-golden-racks.csv", fdir)
    with pytest.raises(ConfigError) as e:
        load_registry(tmp_path)
    line = next(x for x in str(e.value).splitlines() if message in x)
    assert str(fdir / "ap-late.yaml") in line


def test_narrative_side_file_is_part_of_the_config_fingerprint(tmp_path):
    shutil.copytree(APPLICANT, tmp_path / "cfg")
    before = load_registry(tmp_path / "cfg").fingerprint()
    p = tmp_path / "cfg" / "facilities" / "narratives" / "ap-golden.yaml"
    p.write_text(p.read_text(encoding="utf-8").replace("PUE约1.3", "PUE约1.31"), encoding="utf-8")
    assert load_registry(tmp_path / "cfg").fingerprint() != before
