"""The applicant's pack in the evidence report (zh and en): what the pages say, the form workbook,
verify on the pack, and page screenshots under artifacts/reports/ to look at.

Expected figures are the golden facility's, worked out by hand in tests/test_applicant.py.
"""
import datetime as dt
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from dcmon.fixtures.applicant_data import CONFIG, write_golden
from dcmon.periods import Period
from dcmon.registry import load_registry
from dcmon.store import open_store

REPO = Path(__file__).resolve().parents[2]
ART = REPO / "artifacts" / "reports"
AFTER = Period(dt.date(2023, 7, 1), dt.date(2024, 6, 30))


@pytest.fixture(scope="module", autouse=True)
def key_dir(tmp_path_factory):
    """Sign with a key made for these tests, never with the real ~/.config/dcmon/keys."""
    d = tmp_path_factory.mktemp("keys-parent") / "keys"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DCMON_KEY_DIR", str(d))
        yield d


def dcmon(*args, check=True):
    p = subprocess.run([sys.executable, "-m", "dcmon.cli", *args], capture_output=True, text=True, timeout=600)
    if check and p.returncode != 0:
        raise AssertionError(f"dcmon {' '.join(args)} → {p.returncode}\n{p.stdout}\n{p.stderr}")
    return p


@pytest.fixture(scope="module")
def golden(tmp_path_factory):
    data = tmp_path_factory.mktemp("ap-pack")
    store = open_store(data)
    write_golden(store)
    write_golden(store, "ap-late")
    return load_registry(CONFIG), store, data


def _html(reg, store, fid, lang):
    from dcmon.reports.evidence import render_html
    doc, summary, _ = render_html(reg, store, fid, AFTER, lang=lang)
    return doc, summary


@pytest.mark.parametrize("lang, words", [
    ("zh", ["附：申报材料（成经信财〔2023〕31号 二(二)3）", "在范围内：符合", "2022年度该项目实际投资额（元）",
            "截至2022-12-31计算功能占比", "同等IT负荷下节约电量", "40,260.0 kWh", "22.96 t", "【待申报单位填写】"]),
    ("en", ["Annex: the application materials", "inside: met", "Actual investment in 2022 (CNY)",
            "Compute-function share as of 2022-12-31", "Energy saved at the same IT load", "40,260.0 kWh", "22.96 t"]),
])
def test_pack_pages_say_the_golden_figures(golden, lang, words):
    reg, store, _ = golden
    doc, summary = _html(reg, store, "ap-golden", lang)
    pack = summary["applicant"]
    assert pack["before_after"]["energy_saved_kwh"] == 40_260
    for n in range(1, 7):
        assert f"成经信财〔2023〕31号 二(二)3({n})" in doc
    for w in words[:-1] if lang == "zh" else words:
        assert w in doc, w
    assert "1,850,000.00" in doc and "66.67%" in doc and "1,954.55 (= 21,500/11)" in doc
    assert "<b>1.300</b>" in doc and "<b>1.200</b>" in doc and "76.19%" in doc
    assert "2023-06-30" in doc and "成经信财〔2023〕31号 二(二)1(4)" in doc
    if lang == "zh":
        assert "【待申报单位填写】" not in doc      # every narrative section is configured for ap-golden


def test_outside_the_window_the_verdict_says_so(golden):
    reg, store, _ = golden
    doc, summary = _html(reg, store, "ap-late", "zh")
    assert "不在范围内：不符合申报条件" in doc and "但项目结项日期不在申报范围内，不符合申报条件" in doc
    assert summary["applicant"]["application_window"]["inside"] is False
    assert "假设测算：不符合申报条件或政策不在有效期，无应付金额" in doc        # the form's amount is not due
    assert "【待申报单位填写】" in doc and "未配置 2022 年度实际投资额" in doc     # no applicant block: marked, not invented
    doc_en, _ = _html(reg, store, "ap-late", "en")
    assert "outside: the condition is not met" in doc_en


def test_no_data_before_the_retrofit_says_inconclusive(tmp_path):
    store = open_store(tmp_path / "d")
    write_golden(store, first=dt.date(2023, 7, 1))
    doc, summary = _html(load_registry(CONFIG), store, "ap-golden", "zh")
    assert "数据不足，无法得出改造前后对比结论：改造完成前不足一个完整月的数据。不作推测。" in doc
    assert summary["applicant"]["before_after"]["energy_saved_kwh"] is None
    assert "同等IT负荷下节约电量" not in doc


def test_pdf_pages_form_workbook_and_verify(golden, tmp_path):
    from openpyxl import load_workbook
    _, _, data = golden
    ART.mkdir(parents=True, exist_ok=True)
    for fid, lang in (("ap-golden", "zh"), ("ap-golden", "en"), ("ap-late", "zh")):
        pdf = tmp_path / f"{fid}-{lang}.pdf"
        xlsx = tmp_path / f"{fid}-{lang}.xlsx"
        dcmon("evidence", "--config", str(CONFIG), "--data", str(data), "--facility", fid, "--from", "2023-07-01",
              "--to", "2024-06-30", "--lang", lang, "--out", str(pdf), "--form-xlsx", str(xlsx))
        v = dcmon("verify", str(pdf), "--config", str(CONFIG), "--data", str(data), check=False)
        assert v.returncode == 0, v.stdout + v.stderr
        if shutil.which("pdftoppm"):
            for old in ART.glob(f"applicant-{fid}-{lang}-*.png"):
                old.unlink()
            subprocess.run(["pdftoppm", "-r", "70", "-png", str(pdf), str(ART / f"applicant-{fid}-{lang}")], check=True)
            assert list(ART.glob(f"applicant-{fid}-{lang}-*.png"))
        if fid == "ap-golden" and lang == "zh":
            wb = load_workbook(xlsx)
            rows = {r[0]: r[1] for r in wb["申报表"].iter_rows(min_row=2, values_only=True)}
            assert rows["统一社会信用代码"] == "91510107MA6CR5H592"
            assert rows["申请补贴金额（元，测算）"] == 1_075_000
            st = {r[0]: r[1] for r in wb["专项财务报表"].iter_rows(min_row=2, values_only=True)}
            assert st["2022年度该项目实际投资额（元）"] == 1_850_000
            assert st["截至2022-12-31计算功能占比"] == pytest.approx(2 / 3)


def test_form_workbook_needs_a_profile_with_a_notice(golden, tmp_path):
    _, _, data = golden
    p = dcmon("evidence", "--config", str(CONFIG), "--data", str(data), "--facility", "ap-golden", "--from",
              "2024-06-01", "--to", "2024-06-30", "--profile", "chengdu-hub-2025", "--out", str(tmp_path / "r.html"),
              "--form-xlsx", str(tmp_path / "f.xlsx"), check=False)
    assert p.returncode == 2 and "names no application notice" in p.stderr and "Traceback" not in p.stderr


def test_verify_catches_a_changed_reading_before_the_retrofit(golden, tmp_path):
    """A reading changed in 2022 (outside the evaluated period, inside the before period) fails verify."""
    import pandas as pd
    import pyarrow as pa

    from dcmon.readings import conform
    _, _, data = golden
    copy = tmp_path / "data"
    shutil.copytree(data, copy)
    pdf = tmp_path / "r.html"
    dcmon("evidence", "--config", str(CONFIG), "--data", str(copy), "--facility", "ap-golden", "--from", "2023-07-01",
          "--to", "2024-06-30", "--out", str(pdf))
    assert dcmon("verify", str(pdf), "--config", str(CONFIG), "--data", str(copy), check=False).returncode == 0
    ts = pd.Timestamp("2022-10-15 12:00", tz="Asia/Shanghai").tz_convert("UTC")
    open_store(copy).append(conform(pa.table({                        # a grid reading out of line with the counter
        "facility_id": ["ap-golden"], "kind": ["meter"], "source_id": ["grid-a"],
        "ts": pa.array([ts], pa.timestamp("ms", tz="UTC")), "energy_kwh": [999_999.0]})), check_existing=False)
    v = dcmon("verify", str(pdf), "--config", str(CONFIG), "--data", str(copy), check=False)
    # the reading digests cover the before period: the changed month is named
    assert v.returncode == 1 and "readings changed: ap-golden meter grid-a, 2022-10" in v.stdout, v.stdout
