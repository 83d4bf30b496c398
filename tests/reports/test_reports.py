"""Quarterly export and evidence report: same numbers as evaluate, files open, verify catches tampering."""
import datetime as dt
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dcmon.metrics.evaluate import Options, evaluate
from dcmon.periods import Period, quarter

REPO = Path(__file__).resolve().parents[2]
FIX = str(REPO / "fixtures")
ART = REPO / "artifacts" / "reports"
Q3 = quarter("2026Q3")
WINDOW = Period(dt.date(2026, 7, 1), dt.date(2026, 8, 31))


@pytest.fixture(scope="module", autouse=True)
def key_dir(tmp_path_factory):
    """Sign with a key made for these tests, never with the real ~/.config/dcmon/keys (the dcmon
    subprocesses inherit the variable)."""
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
def east_store(registry, tmp_path_factory):
    """Two months of cd-east-01 meter data (with a counter reset), in a store of its own."""
    from dcmon.fixtures.generate import Faults, generate
    from dcmon.store import open_store
    data = tmp_path_factory.mktemp("east")
    store = open_store(data)
    g = generate(registry.get("cd-east-01"), WINDOW.first_day, WINDOW.last_day, include_racks=False, seed=4,
                 faults=Faults(counter_reset=True))
    store.append(g.table, check_existing=False)
    return data, store


# ------------------------------------------------------------------------------------------ export
def test_export_formats_match_evaluate(registry, week_store, tmp_path):
    data, store, _ = week_store
    expected = evaluate(registry, store, Q3, None, None, Options())
    by_id = {f["facility_id"]: f for f in expected["facilities"]}
    for fmt in ("json", "csv", "parquet", "xlsx"):
        dcmon("export", "--config", FIX, "--data", str(data), "--quarter", "2026Q3", "--format", fmt,
              "--out", str(tmp_path / f"inv.{fmt}"))
    doc = json.loads((tmp_path / "inv.json").read_text())
    ids = [r["facility_id"] for r in doc["rows"]]
    assert "cd-edge-01" not in ids                        # 40 standard racks: not above 100
    assert set(ids) == {i for i, f in by_id.items() if f["standard_racks"] > 100}
    for r in doc["rows"]:
        f = by_id[r["facility_id"]]
        for k in ("pue", "facility_energy_kwh", "it_energy_kwh", "standard_racks", "occupancy_rate", "compute_share",
                  "coverage", "physical_racks", "in_service_racks"):
            assert r[k] == f[k], (r["facility_id"], k)
    table = pq.read_table(tmp_path / "inv.parquet")
    assert table.column("pue").to_pylist() == [r["pue"] for r in doc["rows"]]
    raw = (tmp_path / "inv.csv").read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")                 # BOM: Excel shows Chinese
    text = raw.decode("utf-8-sig")
    assert "统一社会信用代码" in text and "天府东部云计算中心" in text
    import openpyxl
    wb = openpyxl.load_workbook(tmp_path / "inv.xlsx")
    assert wb.sheetnames == ["按区汇总", "数据中心清单", "方法说明", "数据质量"]
    sheet = wb["数据中心清单"]
    head = [c.value for c in sheet[1]]
    col = head.index("PUE")
    xl = {sheet.cell(row=i, column=3).value: sheet.cell(row=i, column=col + 1).value for i in range(2, sheet.max_row + 1)}
    assert xl["cd-east-01"] == by_id["cd-east-01"]["pue"]
    manifest = json.loads((tmp_path / "inv.xlsx.manifest.json").read_text())
    from dcmon.reports.common import sha256_file
    assert manifest["outputs"][0]["sha256"] == sha256_file(tmp_path / "inv.xlsx")
    digests = manifest["inputs"]["digests"]
    assert digests and all(len(i["sha256"]) == 64 for i in digests)
    assert manifest["config_fingerprint"] == registry.fingerprint()


def test_export_english_headers_filters_and_all(week_store, tmp_path):
    data, _, _ = week_store
    dcmon("export", "--config", FIX, "--data", str(data), "--quarter", "2026Q3", "--format", "csv", "--lang", "en",
          "--all", "--district", "武侯区", "--out", str(tmp_path / "w.csv"))
    text = (tmp_path / "w.csv").read_text(encoding="utf-8-sig")
    assert text.splitlines()[0].startswith("Operator,Unified social credit code")
    assert "cd-edge-01" in text and "cd-east-01" not in text
    bad = dcmon("export", "--config", FIX, "--data", str(data), "--quarter", "2026Q3", "--format", "csv",
                "--district", "火星区", "--out", str(tmp_path / "x.csv"), check=False)
    assert bad.returncode == 2 and "no facility matches district '火星区'" in bad.stderr


# ---------------------------------------------------------------------------------------- evidence
@pytest.mark.parametrize("lang, words", [("zh", ["申报条件核验", "申报主体与数据中心", "标准机架", "补贴测算"]),
                                         ("en", ["Eligibility checks", "Evaluation window", "Subsidy computation"])])
def test_evidence_pdf_renders_with_key_figures(registry, east_store, tmp_path, lang, words):
    data, store = east_store
    out = tmp_path / f"report-{lang}.pdf"
    dcmon("evidence", "--config", FIX, "--data", str(data), "--facility", "cd-east-01", "--from", "2026-07-01",
          "--to", "2026-08-31", "--lang", lang, "--out", str(out))
    ART.mkdir(parents=True, exist_ok=True)
    subprocess.run(["pdftoppm", "-r", "50", "-png", str(out), str(ART / f"evidence-{lang}")], check=True)
    assert (ART / f"evidence-{lang}-1.png").exists()
    text = subprocess.run(["pdftotext", "-layout", str(out), "-"], capture_output=True, text=True, check=True).stdout
    fig = evaluate(registry, store, WINDOW, ["cd-east-01"], ["chengdu-2023-cloud-retrofit"], Options())["facilities"][0]
    for w in words + ["91510185MA6CUQ2L81", f"{fig['pue']:.4f}", f"{fig['standard_racks']:,.1f}",
                      f"{fig['facility_energy_kwh']:,.1f}", "2026-07", "2026-08"]:
        assert w in text, w
    assert ("计数器重置" if lang == "zh" else "counter reset") in text


def test_evidence_html_is_self_contained_and_embeds_the_summary(registry, east_store, tmp_path):
    from dcmon.reports.evidence import read_summary
    data, store = east_store
    out = tmp_path / "r.html"
    dcmon("evidence", "--config", FIX, "--data", str(data), "--facility", "cd-east-01", "--from", "2026-07-01",
          "--to", "2026-08-31", "--out", str(out))
    html = out.read_text(encoding="utf-8")
    import re
    assert not re.search(r'(src|href)\s*=\s*["\']?(https?:)?//|url\(\s*["\']?(https?:)?//|<link\b', html)  # nothing fetched
    assert "<svg" in html
    s = read_summary(out)
    fig = evaluate(registry, store, WINDOW, ["cd-east-01"], ["chengdu-2023-cloud-retrofit"], Options())["facilities"][0]
    assert s["figures"]["pue"] == fig["pue"] and s["figures"]["compute_share_prior_year_end"] == fig["compute_share_prior_year_end"]
    assert [m["bin"] for m in s["monthly"]] == ["2026-07", "2026-08"]


# ------------------------------------------------------------------------------------------ verify
@pytest.fixture()
def report_and_store(registry, east_store, tmp_path):
    data, _ = east_store
    copy = tmp_path / "data"
    shutil.copytree(data, copy)
    pdf = tmp_path / "r.pdf"
    dcmon("evidence", "--config", FIX, "--data", str(copy), "--facility", "cd-east-01", "--from", "2026-07-01",
          "--to", "2026-08-31", "--out", str(pdf))
    html = tmp_path / "r.html"
    dcmon("evidence", "--config", FIX, "--data", str(copy), "--facility", "cd-east-01", "--from", "2026-07-01",
          "--to", "2026-08-31", "--lang", "en", "--out", str(html))
    return pdf, html, copy


def test_verify_passes_on_untouched_report(report_and_store):
    pdf, html, data = report_and_store
    for rep in (pdf, html):
        p = dcmon("verify", str(rep), "--config", FIX, "--data", str(data))
        assert "VERIFIED" in p.stdout and "NOT VERIFIED" not in p.stdout


def test_verify_fails_when_data_is_tampered(report_and_store):
    from dcmon.readings import to_table
    from dcmon.store import open_store
    pdf, _, data = report_and_store
    st = open_store(data)
    # a forged counter jump of 50 kWh in 30 s on grid-a inside the period (6 MW: below the meter's ceiling,
    # so evaluation counts it; an impossible one would be refused as an implausible step)
    t = st.read("cd-east-01", "meter", dt.datetime(2026, 7, 15, tzinfo=dt.UTC), dt.datetime(2026, 7, 15, 0, 2, tzinfo=dt.UTC),
                sources=["grid-a"])
    row = {k: t.column(k)[0].as_py() for k in t.column_names}
    row["ts"] = int(row["ts"].timestamp() * 1000) + 30_000
    row["energy_kwh"] += 50.0
    row["received_at"] = row["ts"]
    st.append(to_table([row]))
    p = dcmon("verify", str(pdf), "--config", FIX, "--data", str(data), check=False)
    assert p.returncode == 1 and "NOT VERIFIED" in p.stdout
    import re
    m = re.search(r"readings changed: cd-east-01 meter grid-a, 2026-07 \(([\d,]+) readings at issue, ([\d,]+) now\)", p.stdout)
    assert m and int(m.group(2).replace(",", "")) == int(m.group(1).replace(",", "")) + 1, p.stdout
    assert "facility_energy_kwh: report" in p.stdout


def test_verify_fails_when_the_report_is_tampered(report_and_store):
    pdf, html, data = report_and_store
    text = html.read_text(encoding="utf-8")
    import re
    forged = re.sub(r'("pue":)([0-9.]+)', lambda m: m.group(1) + "1.199", text, count=1)
    assert forged != text
    html.write_text(forged, encoding="utf-8")
    p = dcmon("verify", str(html), "--config", FIX, "--data", str(data), check=False)
    assert p.returncode == 1 and "summary was altered" in p.stdout and "pue: report 1.199" in p.stdout
    garbage = pdf.with_name("not-a-report.pdf")
    garbage.write_bytes(b"%PDF-1.4\n%%EOF\n")
    p = dcmon("verify", str(garbage), "--config", FIX, "--data", str(data), check=False)
    assert p.returncode == 2 and "not-a-report.pdf" in p.stderr
