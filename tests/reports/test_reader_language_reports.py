"""The evidence report (PDF, read back with pdftotext) and the quarterly list (XLSX) read in their
language: no internal codes or English sentences in Chinese, no Chinese in English but names."""
import datetime as dt
import io
import shutil
import subprocess
from pathlib import Path

import pytest
from reader_text import bad_words, names_of

from dcmon.periods import Period

WEEK = Period(dt.date(2026, 7, 6), dt.date(2026, 7, 12))
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"


def _pdf_text(data: bytes, name: str) -> str:
    if shutil.which("pdftotext") is None:
        pytest.skip("pdftotext (poppler-utils) is not installed (scripts/setup installs it)")
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    path.write_bytes(data)
    return subprocess.run(["pdftotext", str(path), "-"], capture_output=True, text=True, check=True).stdout


@pytest.mark.parametrize("lang", ["zh", "en"])
@pytest.mark.parametrize("facility_id,profile", [("cd-east-01", "chengdu-2023-cloud-retrofit"),
                                                 ("cd-east-01", "chengdu-hub-2025"),
                                                 ("bd-cloud-01", "baoding-2024-cloud-retrofit")])
def test_evidence_pdf_reads_in_its_language(registry, week_store, lang, facility_id, profile):
    from dcmon.reports.evidence import build_evidence
    _, store, _ = week_store
    data, _ = build_evidence(registry, store, facility_id, WEEK, profile=profile, lang=lang, fmt="pdf")
    text = _pdf_text(data, f"evidence-{facility_id}-{profile}-{lang}.pdf")
    bad = bad_words(text, lang, names_of(registry))
    assert not bad, sorted(set(bad))[:40]
    if lang == "zh":
        assert "e+" not in text and "CNY" not in text and ">=" not in text


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_quarterly_list_reads_in_its_language(registry, week_store, lang):
    import openpyxl

    from dcmon.reports.export import build_export
    _, store, _ = week_store
    data, _, _ = build_export(registry, store, WEEK, fmt="xlsx", lang=lang)
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / f"export-{lang}.xlsx").write_bytes(data)
    wb = openpyxl.load_workbook(io.BytesIO(data))
    problems, dates = {}, []
    for ws in wb.worksheets:
        bad = bad_words(ws.title, lang, [])
        for row in ws.iter_rows():
            for cell in row:
                if isinstance(cell.value, str):
                    bad += bad_words(cell.value, lang, names_of(registry))
                elif isinstance(cell.value, dt.datetime):
                    dates.append(cell.value)
        if bad:
            problems[ws.title] = sorted(set(bad))[:30]
    assert not problems, problems
    assert dates, "the commissioning date is a date cell, not text"
