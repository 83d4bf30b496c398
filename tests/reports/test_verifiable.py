"""Reports a regulator can trust: signed PDFs, re-rendered HTML, reading digests, verifiable exports.

Every tampering path a regulator could try is tried here, each against the real CLI.
"""
import csv
import datetime as dt
import hashlib
import io
import json
import os
import re
import shutil
import stat
import struct
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

REPO = Path(__file__).resolve().parents[2]
FIX = str(REPO / "fixtures")
ART = REPO / "artifacts" / "reports"
FAC = "cd-east-01"
WINDOW = ("--from", "2026-07-06", "--to", "2026-07-12")


@pytest.fixture(scope="module", autouse=True)
def key_dir(tmp_path_factory):
    """Sign with a key made for these tests, never with the real ~/.config/dcmon/keys (the dcmon
    subprocesses inherit the variable)."""
    d = tmp_path_factory.mktemp("keys-parent") / "keys"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DCMON_KEY_DIR", str(d))
        yield d


def dcmon(*args, check=True, env=None):
    p = subprocess.run([sys.executable, "-m", "dcmon.cli", *args], capture_output=True, text=True, timeout=600,
                       env=env)
    if check and p.returncode != 0:
        raise AssertionError(f"dcmon {' '.join(args)} → {p.returncode}\n{p.stdout}\n{p.stderr}")
    return p


def verify(path, data, *extra, check=False):
    return dcmon("verify", str(path), "--config", FIX, "--data", str(data), *extra, check=check)


def assert_verified(p):
    assert p.returncode == 0 and "NOT VERIFIED" not in p.stdout and "VERIFIED" in p.stdout, p.stdout + p.stderr


def assert_not_verified(p, *needles):
    assert p.returncode == 1 and "NOT VERIFIED" in p.stdout, p.stdout + p.stderr
    for n in needles:
        assert n in p.stdout, (n, p.stdout)


def forge_reading(data, source="grid-a", minute=(2026, 7, 8, 10, 0), delta_kwh=0.0, add=False, remove=False):
    """Change, add or remove one stored meter reading, writing the store's files directly (as an attacker would)."""
    target = dt.datetime(*minute, tzinfo=dt.UTC)
    for f in sorted(Path(data).glob(f"readings/facility={FAC}/kind=meter/*/*.parquet")):
        t = pq.read_table(f)
        ts = t.column("ts").to_pylist()
        src = t.column("source_id").to_pylist()
        hits = [i for i, (s, x) in enumerate(zip(src, ts)) if s == source and x == target]
        if not hits:
            continue
        i = hits[0]
        rows = t.to_pylist()
        if remove:
            del rows[i]
        elif add:
            extra = dict(rows[i], ts=target + dt.timedelta(seconds=30))
            rows.insert(i + 1, extra)
        else:
            rows[i]["energy_kwh"] += delta_kwh
        pq.write_table(pa.Table.from_pylist(rows, schema=t.schema), f)
        return
    raise AssertionError(f"no reading of {source} at {target}")


@pytest.fixture(scope="module")
def issued(week_store, tmp_path_factory, key_dir):
    """A signed PDF, an unsigned PDF and an HTML report of cd-east-01, and every export format, with a store copy."""
    src, _, _ = week_store
    root = tmp_path_factory.mktemp("issued")
    data = root / "data"
    shutil.copytree(src, data)
    common = ("--config", FIX, "--data", str(data))
    dcmon("evidence", *common, "--facility", FAC, *WINDOW, "--out", str(root / "signed.pdf"))
    dcmon("evidence", *common, "--facility", FAC, *WINDOW, "--unsigned", "--lang", "en", "--out", str(root / "unsigned.pdf"))
    dcmon("evidence", *common, "--facility", FAC, *WINDOW, "--lang", "en", "--out", str(root / "r.html"))
    for fmt in ("csv", "xlsx", "json", "parquet"):
        dcmon("export", *common, "--quarter", "2026Q3", "--format", fmt, "--out", str(root / f"inv.{fmt}"))
    return root, data


@pytest.fixture()
def copy(issued, tmp_path):
    """A private copy of the issued files and store, for tampering."""
    root, _ = issued
    for p in root.iterdir():
        (shutil.copytree if p.is_dir() else shutil.copy2)(p, tmp_path / p.name)
    return tmp_path, tmp_path / "data"


def session_cert():
    return Path(os.environ["DCMON_KEY_DIR"]) / "signing-cert.pem"


def cert_fingerprint(pem_path) -> str:
    """Independent of dcmon: SHA-256 of the DER certificate, as openssl prints it."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    cert = x509.load_pem_x509_certificate(Path(pem_path).read_bytes())
    return cert.fingerprint(hashes.SHA256()).hex(":").upper()


# --------------------------------------------------------------------------------------- digests
def test_reading_digests_follow_readings_not_files(tmp_path):
    """Same readings in one file or in many (then compacted) → same digest; one changed value → only its source-month."""
    from dcmon.readings import SCHEMA
    from dcmon.store import open_store
    from dcmon.store.base import Store

    def table(source, start_ms, n, kwh0=100.0):
        ts = [start_ms + 60_000 * i for i in range(n)]
        return pa.table({"facility_id": [FAC] * n, "kind": ["meter"] * n, "source_id": [source] * n,
                         "ts": pa.array(ts, pa.timestamp("ms", tz="UTC")), "energy_kwh": [kwh0 + i for i in range(n)],
                         "power_kw": [None] * n, "status": [None] * n, "function": [None] * n,
                         "design_power_kw": [None] * n, "received_at": pa.array(ts, pa.timestamp("ms", tz="UTC")),
                         "origin": ["test"] * n}, schema=SCHEMA)
    july = int(dt.datetime(2026, 7, 31, 23, 0, tzinfo=dt.UTC).timestamp() * 1000)  # spans into August
    one = open_store(tmp_path / "one")
    one.append(pa.concat_tables([table("m1", july, 120), table("m2", july, 120)]))
    many = open_store(tmp_path / "many")
    for k in range(0, 120, 10):  # twelve appends: several files per month folder
        many.append(table("m1", july + k * 60_000, 10, 100.0 + k))
        many.append(table("m2", july + k * 60_000, 10, 100.0 + k))
    d_one = one.reading_digests(FAC, "meter")
    assert sorted(d_one) == [("m1", "2026-07"), ("m1", "2026-08"), ("m2", "2026-07"), ("m2", "2026-08")]
    assert d_one[("m1", "2026-07")][1] == 60 and d_one[("m1", "2026-08")][1] == 60
    assert many.reading_digests(FAC, "meter") == d_one
    many.compact()
    assert many.reading_digests(FAC, "meter") == d_one
    # the interface's default (one read of the period) agrees with the streaming Parquet method
    assert Store.reading_digests(one, FAC, "meter") == d_one
    # the canonical form, by hand for one source-month: 41-byte big-endian records, then the strings
    t = table("m1", july, 120).slice(0, 60)
    fixed = b"".join(struct.pack(">qddd", int(x.timestamp() * 1000), e, 0.0, 0.0) + bytes([0b110])
                     + struct.pack(">ii", -1, -1)
                     for x, e in zip(t.column("ts").to_pylist(), t.column("energy_kwh").to_pylist()))
    h = hashlib.sha256(b"dcmon-readings/1")
    for part in (fixed, b"", b""):
        h.update(hashlib.sha256(part).digest())
    assert d_one[("m1", "2026-07")] == (h.hexdigest(), 60)
    # one reading changed: only m2's August digest moves
    changed = open_store(tmp_path / "changed")
    t2 = table("m2", july, 120)
    e = t2.column("energy_kwh").to_pylist()
    e[100] += 0.001
    changed.append(pa.concat_tables([table("m1", july, 120), t2.set_column(4, "energy_kwh", pa.array(e))]))
    d_changed = changed.reading_digests(FAC, "meter")
    assert [k for k in d_one if d_one[k] != d_changed[k]] == [("m2", "2026-08")]


# ------------------------------------------------------------------------------------------ keys
def test_keys_init_is_owner_only_and_refuses_work_trees(tmp_path):
    kd = tmp_path / "k"
    p = dcmon("keys", "init", "--key-dir", str(kd))
    assert stat.S_IMODE(kd.stat().st_mode) == 0o700
    assert stat.S_IMODE((kd / "signing-key.pem").stat().st_mode) == 0o600
    fp = cert_fingerprint(kd / "signing-cert.pem")
    assert f"certificate SHA-256 fingerprint: {fp}" in p.stdout
    assert "PRIVATE KEY" not in p.stdout + p.stderr
    again = dcmon("keys", "init", "--key-dir", str(kd))
    assert "kept the existing" in again.stdout and fp in again.stdout
    # a key others can read is refused when signing
    os.chmod(kd / "signing-key.pem", 0o644)
    bad = dcmon("keys", "init", "--key-dir", str(kd), check=False)
    assert bad.returncode == 2 and "must be owner-only (chmod 600" in bad.stderr
    # never inside a repository
    inside = dcmon("keys", "init", "--key-dir", str(REPO / "keys-here"), check=False)
    assert inside.returncode == 2 and "inside the work tree" in inside.stderr and not (REPO / "keys-here").exists()


def test_evidence_creates_keys_on_first_use_and_says_so(week_store, tmp_path):
    data, _, _ = week_store
    env = dict(os.environ, DCMON_KEY_DIR=str(tmp_path / "fresh"))
    p = dcmon("evidence", "--config", FIX, "--data", str(data), "--facility", FAC, *WINDOW,
              "--out", str(tmp_path / "r.pdf"), env=env)
    assert "no signing key in" in p.stderr and "created one" in p.stderr
    fp = cert_fingerprint(tmp_path / "fresh" / "signing-cert.pem")
    assert fp in p.stdout
    assert b"PRIVATE KEY" not in (tmp_path / "r.pdf").read_bytes()
    assert stat.S_IMODE((tmp_path / "fresh" / "signing-key.pem").stat().st_mode) == 0o600


# ------------------------------------------------------------------------------------- signed PDF
def test_signed_pdf_is_valid_for_independent_validators(issued):
    root, data = issued
    pdf = root / "signed.pdf"
    out = subprocess.run(["pdfsig", str(pdf)], capture_output=True, text=True).stdout
    assert "Signature is Valid" in out and "Total document signed" in out, out
    # pyHanko's own validator, trusting the session certificate
    from pyhanko.keys import load_cert_from_pemder
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.sign.validation import validate_pdf_signature
    from pyhanko_certvalidator import ValidationContext
    with open(pdf, "rb") as fh:
        sig = PdfFileReader(fh).embedded_signatures[0]
        st = validate_pdf_signature(sig, ValidationContext(trust_roots=[load_cert_from_pemder(str(session_cert()))]))
    assert st.bottom_line and st.coverage.name == "ENTIRE_FILE"
    # the fingerprint is printed in the report (first page) and by verify
    fp = cert_fingerprint(session_cert())
    page1 = subprocess.run(["pdftotext", "-f", "1", "-l", "1", str(pdf), "-"], capture_output=True, text=True).stdout
    assert fp[:23] in page1.replace("\n", "") and "数字签名" in page1
    p = verify(pdf, data)
    assert_verified(p)
    assert f"signer certificate SHA-256: {fp}" in p.stdout and "visible document identical" in p.stdout


def test_signed_pdf_pinned_and_wrong_certificate(issued, tmp_path):
    root, data = issued
    pdf = root / "signed.pdf"
    fp = cert_fingerprint(session_cert())
    assert_verified(verify(pdf, data, "--fingerprint", fp.replace(":", "").lower()))
    assert_verified(verify(pdf, data, "--certificate", str(session_cert())))
    other = tmp_path / "other"
    dcmon("keys", "init", "--key-dir", str(other))
    assert_not_verified(verify(pdf, data, "--certificate", str(other / "signing-cert.pem")),
                        "signed by a different certificate than the pinned one")
    assert_not_verified(verify(pdf, data, "--fingerprint", cert_fingerprint(other / "signing-cert.pem")),
                        "different certificate")
    bad = verify(pdf, data, "--fingerprint", "12:34")
    assert bad.returncode == 2 and "64 hex digits" in bad.stderr


def test_pdf_byte_flipped_in_a_content_stream_fails(copy):
    root, data = copy
    pdf = root / "signed.pdf"
    raw = bytearray(pdf.read_bytes())
    i = raw.index(b"stream\n", raw.index(b"/Contents")) + 200  # inside a page's content stream
    raw[i] ^= 0x01
    pdf.write_bytes(bytes(raw))
    assert_not_verified(verify(pdf, data), "signature broken: the file was changed after it was signed")


def test_pdf_with_appended_update_fails(copy):
    root, data = copy
    pdf = root / "signed.pdf"
    import pypdf
    w = pypdf.PdfWriter(pdf, incremental=True)  # a valid incremental update after the signature
    w.add_metadata({"/Title": "forged"})
    w.write(pdf)
    assert_not_verified(verify(pdf, data), "signature does not cover the whole file")


def test_unsigned_pdf_says_so_and_needs_allow_unsigned(issued):
    root, data = issued
    pdf = root / "unsigned.pdf"
    page1 = subprocess.run(["pdftotext", "-f", "1", "-l", "1", str(pdf), "-"], capture_output=True, text=True).stdout
    assert "UNSIGNED" in page1
    ART.mkdir(parents=True, exist_ok=True)
    subprocess.run(["pdftoppm", "-r", "50", "-f", "1", "-l", "1", "-png", str(pdf), str(ART / "evidence-unsigned")], check=True)
    subprocess.run(["pdftoppm", "-r", "50", "-f", "1", "-l", "1", "-png", str(root / "signed.pdf"),
                    str(ART / "evidence-signed")], check=True)
    assert "does not contain any signatures" in subprocess.run(["pdfsig", str(pdf)], capture_output=True, text=True).stdout
    assert_not_verified(verify(pdf, data), "UNSIGNED: not verified without --allow-unsigned")
    p = verify(pdf, data, "--allow-unsigned")
    assert_verified(p)
    assert "UNSIGNED (accepted with --allow-unsigned)" in p.stdout


def test_unsigned_pdf_with_edited_page_fails_even_when_allowed(copy):
    """Without a signature the re-rendering still catches a changed page."""
    import pypdf
    root, data = copy
    pdf = root / "unsigned.pdf"
    w = pypdf.PdfWriter(clone_from=pdf)
    page = w.pages[0]
    content = page.get_contents()
    page.replace_contents(pypdf.generic.ContentStream(None, None))  # blank the first page, keep the attachment
    del content
    w.write(pdf)
    assert_not_verified(verify(pdf, data, "--allow-unsigned"), "differs from its re-rendering from the data")


# ------------------------------------------------------------------------------------------- HTML
def test_html_visible_text_edit_fails(copy, registry):
    root, data = copy
    html = root / "r.html"
    text = html.read_text(encoding="utf-8")
    summary_at = text.index('<script type="application/json"')
    from dcmon.reports.evidence import read_summary
    pue = f"{read_summary(html)['figures']['pue']:.4f}"
    visible = text[:summary_at]
    assert pue in visible
    html.write_text(visible.replace(pue, "1.1999") + text[summary_at:], encoding="utf-8")
    p = verify(html, data)
    assert_not_verified(p, "differs from its re-rendering from the data", "1.1999", pue)
    assert "embedded summary intact" in p.stdout  # the summary was left alone: only the visible text lies


def test_html_summary_forged_with_a_fresh_digest_is_named(copy):
    """Someone who edits the embedded summary can recompute its SHA-256; the recomputation still names the field."""
    import orjson
    from dcmon.reports.evidence import SUMMARY_ID, read_summary, summary_digest
    root, data = copy
    html = root / "r.html"
    text = html.read_text(encoding="utf-8")
    s = read_summary(html)
    s["profile_result"]["checks"][0]["threshold"] = 9.9
    s["sha256"] = summary_digest(s)
    marker = f'<script type="application/json" id="{SUMMARY_ID}">'
    i = text.index(marker) + len(marker)
    j = text.index("</script>", i)
    html.write_text(text[:i] + orjson.dumps(s).decode() + text[j:], encoding="utf-8")
    p = verify(html, data)
    assert_not_verified(p, "embedded summary intact", "profile_result.checks[0].threshold: report 9.9, recomputed")


def test_report_for_a_named_period_verifies(issued, tmp_path):
    """--quarter and --year periods carry their label (2026Q3) through the re-rendering."""
    root, data = issued
    out = tmp_path / "q.html"
    dcmon("evidence", "--config", FIX, "--data", str(data), "--facility", FAC, "--quarter", "2026Q3", "--out", str(out))
    assert_verified(verify(out, data))


def test_html_untouched_verifies(issued):
    root, data = issued
    p = verify(root / "r.html", data)
    assert_verified(p)
    assert "visible document identical" in p.stdout


# ------------------------------------------------------------------------------------- readings
@pytest.mark.parametrize("how, expect", [
    ({"delta_kwh": 0.5}, r"readings changed: cd-east-01 meter grid-a, 2026-07 \(([\d,]+) readings, values changed\)"),
    ({"add": True}, r"readings changed: cd-east-01 meter grid-a, 2026-07 \(([\d,]+) readings at issue, ([\d,]+) now\)"),
    ({"remove": True}, r"readings changed: cd-east-01 meter grid-a, 2026-07 \(([\d,]+) readings at issue, ([\d,]+) now\)"),
])
def test_changed_added_removed_reading_is_named(copy, how, expect):
    root, data = copy
    forge_reading(data, **how)
    p = verify(root / "signed.pdf", data)
    assert_not_verified(p)
    m = re.search(expect, p.stdout)
    assert m, p.stdout
    if len(m.groups()) == 2:
        before, after = (int(g.replace(",", "")) for g in m.groups())
        assert after == before + (1 if how.get("add") else -1)
    # every other source-month is untouched, so exactly one readings line
    assert len(re.findall(r"readings (changed|added|removed):", p.stdout)) == 1


def test_compaction_between_issue_and_verify_keeps_reports_valid(copy):
    root, data = copy
    # split a month folder into several files (as live appends leave it), then compact
    part = sorted(Path(data).glob(f"readings/facility={FAC}/kind=meter/month=*"))[0]
    f = sorted(part.glob("*.parquet"))[0]
    t = pq.read_table(f)
    half = t.num_rows // 2
    pq.write_table(t.slice(0, half), part / "part-0-a.parquet")
    pq.write_table(t.slice(half), part / "part-0-b.parquet")
    f.unlink()
    before = sorted(p.name for p in part.glob("*.parquet"))
    dcmon("compact", "--config", FIX, "--data", str(data))
    assert sorted(p.name for p in part.glob("*.parquet")) != before  # files were rewritten
    for name in ("signed.pdf", "r.html", "inv.xlsx", "inv.csv"):
        assert_verified(verify(root / name, data))


# --------------------------------------------------------------------------------------- exports
@pytest.mark.parametrize("fmt", ["csv", "xlsx", "json", "parquet"])
def test_export_verifies_in_every_format(issued, fmt):
    root, data = issued
    p = verify(root / f"inv.{fmt}", data)
    assert_verified(p)
    assert "manifest intact" in p.stdout and "rows ×" in p.stdout and "readings unchanged" in p.stdout


def _edit_pue(path: Path, fmt: str) -> tuple[int, str]:
    """Change cd-east-01's PUE in the file; returns the row number a reader sees and the forged value."""
    if fmt == "csv":
        rows = list(csv.reader(io.StringIO(path.read_bytes().decode("utf-8-sig"))))
        col = rows[0].index("PUE")
        i = next(i for i, r in enumerate(rows) if FAC in r)
        rows[i][col] = "1.199"
        buf = io.StringIO()
        csv.writer(buf).writerows(rows)
        path.write_bytes(buf.getvalue().encode("utf-8-sig"))
        return i + 1, "'1.199'"
    if fmt == "xlsx":
        import openpyxl
        wb = openpyxl.load_workbook(path)
        ws = wb["数据中心清单"]
        col = [c.value for c in ws[1]].index("PUE") + 1
        r = next(r for r in range(2, ws.max_row + 1) if ws.cell(r, 3).value == FAC)
        ws.cell(r, col).value = 1.199
        wb.save(path)
        return r, "1.199"
    if fmt == "json":
        doc = json.loads(path.read_text())
        i = next(i for i, r in enumerate(doc["rows"]) if r["facility_id"] == FAC)
        doc["rows"][i]["pue"] = 1.199
        path.write_text(json.dumps(doc))
        return i + 1, "1.199"
    t = pq.read_table(path)
    pue = t.column("pue").to_pylist()
    i = t.column("facility_id").to_pylist().index(FAC)
    pue[i] = 1.199
    pq.write_table(t.set_column(t.column_names.index("pue"), "pue", pa.array(pue)), path)
    return i + 1, "1.199"


@pytest.mark.parametrize("fmt", ["csv", "xlsx", "json", "parquet"])
def test_export_edited_cell_is_named(copy, fmt):
    root, data = copy
    path = root / f"inv.{fmt}"
    row, forged = _edit_pue(path, fmt)
    p = verify(path, data)
    assert_not_verified(p, f"inv.{fmt} changed since it was issued",
                        f"row {row} ({FAC}), column PUE: value in file {forged}, recomputed")


def test_export_manifest_line_edit_is_caught(copy):
    root, data = copy
    m = root / "inv.csv.manifest.json"
    text = m.read_text()
    forged = re.sub(r'"rows": (\d+)', lambda x: f'"rows": {int(x.group(1)) + 1}', text, count=1)
    assert forged != text
    m.write_text(forged)
    p = verify(root / "inv.csv", data)
    assert_not_verified(p, "the manifest was altered", "readings changed:")


def test_export_reading_changed_is_named(copy):
    root, data = copy
    forge_reading(data, source="ups-1", delta_kwh=2.0)
    p = verify(root / "inv.xlsx", data)
    assert_not_verified(p, "readings changed: cd-east-01 meter ups-1, 2026-07 (")


def test_export_without_manifest_is_bad_input(copy):
    root, data = copy
    (root / "inv.json.manifest.json").unlink()
    p = verify(root / "inv.json", data)
    assert p.returncode == 2 and "no manifest inv.json.manifest.json beside it" in p.stderr


# --------------------------------------------------------------------------------- export details
def excel_shown(cell) -> str:
    """A cell as Excel displays it, for the few formats the export uses (independent of dcmon)."""
    v, f = cell.value, cell.number_format
    if v is None:
        return ""
    if isinstance(v, dt.datetime):
        assert f == "yyyy-mm-dd"
        return v.date().isoformat()
    if f == "0.0%":
        return f"{v * 100:.1f}%"
    if f == "0.000":
        return f"{v:.3f}"
    if f == "#,##0":
        return f"{v:,.0f}"
    if f == "#,##0.0":
        return f"{v:,.1f}"
    return str(v)


def test_csv_holds_what_the_xlsx_displays(issued):
    """The CSV's text equals the XLSX cells formatted with their own number formats (0.0%, #,##0, 0.000)."""
    import openpyxl
    root, _ = issued
    rows = list(csv.reader(io.StringIO((root / "inv.csv").read_bytes().decode("utf-8-sig"))))
    ws = openpyxl.load_workbook(root / "inv.xlsx")["数据中心清单"]
    assert rows[0] == [c.value for c in ws[1]]

    for r, line in enumerate(rows[1:], start=2):
        assert line == [excel_shown(ws.cell(r, c + 1)) for c in range(len(line))], r
    text = (root / "inv.csv").read_text(encoding="utf-8-sig")
    assert not re.search(r"\d\.\d{6,}", text)  # no raw floats like 0.0009359903381642512


def test_xlsx_layout_dates_widths_and_city_summary(issued):
    import openpyxl
    root, _ = issued
    wb = openpyxl.load_workbook(root / "inv.xlsx")
    ws = wb["数据中心清单"]
    head = [c.value for c in ws[1]]
    col = head.index("投运日期") + 1
    assert isinstance(ws.cell(2, col).value, dt.datetime) and ws.cell(2, col).number_format == "yyyy-mm-dd"
    for j, h in enumerate(head, start=1):
        letter = openpyxl.utils.get_column_letter(j)
        longest = max(sum(2 if ord(ch) > 0x2E80 else 1 for ch in excel_shown(ws.cell(r, j)))
                      for r in range(2, ws.max_row + 1))
        assert ws.column_dimensions[letter].width >= min(longest, 58), (h, longest)
    s = wb["按区汇总"]
    head = [c.value for c in s[1]]
    assert head[:3] == ["城市", "区（市）县", "数据中心数"]
    body = [[c.value for c in r] for r in s.iter_rows(min_row=2) if r[0].value and r[2].value is not None]
    total = next(r for r in body if r[0] == "总计")
    districts = [r for r in body if r[0] != "总计" and not str(r[1]).endswith("合计")]
    assert total[2] == sum(r[2] for r in districts) == ws.max_row - 1
    assert [(r[0], r[1]) for r in districts] == sorted((r[0], r[1]) for r in districts)  # grouped by city
    fe = sum(r[5] for r in districts)
    assert total[5] == pytest.approx(fe) and total[7] == pytest.approx(fe / sum(r[6] for r in districts))


def test_export_format_and_extension_must_agree(week_store, tmp_path):
    data, _, _ = week_store
    p = dcmon("export", "--config", FIX, "--data", str(data), "--quarter", "2026Q3", "--format", "xlsx",
              "--out", str(tmp_path / "x.csv"), check=False)
    assert p.returncode == 2 and "--format xlsx writes a .xlsx file, but --out" in p.stderr and "x.csv" in p.stderr
    assert "Traceback" not in p.stderr and not (tmp_path / "x.csv").exists()


def test_export_quarter_without_data_warns_and_fails(week_store, tmp_path):
    data, _, _ = week_store
    p = dcmon("export", "--config", FIX, "--data", str(data), "--quarter", "2027Q1", "--format", "csv",
              "--out", str(tmp_path / "q.csv"), check=False)
    assert p.returncode == 1 and "warning: no meter readings in 2027Q1" in p.stderr
    assert not (tmp_path / "q.csv").exists()
