"""``dcmon verify``: check a report or export against the data and say whether they match.

Evidence reports (PDF, HTML), each check reported by name:
1. the signature (PDF): valid over the whole file, by the certificate printed in the report,
   optionally pinned (``--certificate``/``--fingerprint``); an unsigned PDF is not verified
   unless ``allow_unsigned``;
2. the embedded summary is intact (its SHA-256 over its canonical JSON);
3. the readings of every source and month hash to the digests the summary lists (a changed,
   added or removed reading names its source and month) — file layout does not matter;
4. every figure recomputed with the same period, profile and options equals the reported one
   (relative tolerance 1e-9, for float summation order only);
5. the whole visible document equals its re-rendering from the data (byte for byte), so an edit
   of any visible character fails.

Exports: see :func:`dcmon.reports.export.verify_export`.
"""
from __future__ import annotations

import math
from pathlib import Path

from dcmon.reports.common import compare_digests
from dcmon.reports.evidence import SUMMARY_SCHEMA, VERIFIED, read_summary, reproduce, summary_digest

REL_TOL = 1e-9
MAX_LINES = 20


def same(a, b) -> bool:
    if a is None or b is None:
        return a is b
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return math.isclose(a, b, rel_tol=REL_TOL, abs_tol=1e-12)
    return a == b


# summary fields taken from the issue (provenance) or checked on their own, not recomputed
NOT_RECOMPUTED = {"sha256", "generated_at", "software", "config_fingerprint", "signature", "rejected", "renderer",
                  "readings", "figures", "monthly"}


def differences(a, b, path: str = "") -> list[str]:
    """Paths where two JSON documents differ (numbers with :func:`same`)."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b), key=str):
            out += differences(a.get(k), b.get(k), f"{path}.{k}" if path else str(k))
        return out
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{path}: {len(a)} entries in the report, {len(b)} recomputed"]
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in differences(x, y, f"{path}[{i}]")]
    return [] if same(a, b) else [f"{path}: report {a!r}, recomputed {b!r}"]


def _capped(lines: list[str], prefix: str = "✘ ") -> list[str]:
    out = [prefix + x for x in lines[:MAX_LINES]]
    if len(lines) > MAX_LINES:
        out.append(f"{prefix}… and {len(lines) - MAX_LINES} more")
    return out


def _first_difference(a: str, b: str) -> str:
    """Where two texts first differ, as 'line N: file «…» / re-rendered «…»'."""
    la, lb = a.splitlines(), b.splitlines()
    for i, (x, y) in enumerate(zip(la, lb), start=1):
        if x != y:
            j = next((k for k, (c, d) in enumerate(zip(x, y)) if c != d), min(len(x), len(y)))
            lo = max(0, j - 30)
            return f"line {i}: in the file «{x[lo:j + 30]}», re-rendered «{y[lo:j + 30]}»"
    n = min(len(la), len(lb)) + 1
    return f"line {n}: one text ends before the other ({len(la)} lines in the file, {len(lb)} re-rendered)"


def _pdf_text_difference(data: bytes, expected: bytes) -> str:
    import io

    import pypdf
    try:
        got = [p.extract_text() or "" for p in pypdf.PdfReader(io.BytesIO(data)).pages]
    except Exception as e:  # noqa: BLE001 - a damaged page is itself the finding
        return f"the file's pages cannot be read ({type(e).__name__}: {e})"
    want = [p.extract_text() or "" for p in pypdf.PdfReader(io.BytesIO(expected)).pages]
    for n, (x, y) in enumerate(zip(got, want), start=1):
        if x != y:
            return f"page {n}, " + _first_difference(x, y)
    if len(got) != len(want):
        return f"{len(got)} pages in the file, {len(want)} re-rendered"
    return "the page text is the same but the PDF bytes differ (drawing, images, fonts or structure changed)"


def _signature_lines(data: bytes, summary: dict, certificate: bytes | None, fingerprint: str | None,
                     allow_unsigned: bool) -> tuple[bool, bool, list[str]]:
    """(ok, signed, lines) for the PDF signature."""
    from dcmon.reports.keys import check_pdf_signature
    from dcmon.reports.keys import fingerprint as fp_of
    sig = check_pdf_signature(data)
    claimed = (summary.get("signature") or {}).get("certificate_sha256")
    if not sig.present:
        if sig.problem:
            return False, False, [f"✘ signature: {sig.problem}"]
        if claimed:
            return False, False, ["✘ the report says it is signed but the file carries no signature (removed?)"]
        if allow_unsigned:
            return True, False, ["! the PDF is UNSIGNED (accepted with --allow-unsigned): the figures are checked "
                                 "against the data, but nothing proves who issued the file"]
        return False, False, ["✘ the PDF is UNSIGNED: not verified without --allow-unsigned"]
    lines = []
    ok = sig.ok
    if sig.problem:
        lines.append(f"✘ signature invalid: {sig.problem}")
    elif not sig.intact:
        lines.append("✘ signature broken: the file was changed after it was signed")
    elif not sig.valid:
        lines.append("✘ signature invalid: it does not verify with the certificate's key")
    elif not sig.whole_file:
        lines.append("✘ signature does not cover the whole file: something was added after signing")
    else:
        lines.append(f"✔ PDF signature valid over the whole file (PAdES), signed {sig.signed_at}")
    lines.append(f"  signer certificate SHA-256: {sig.fingerprint}  ({sig.subject})")
    if claimed and sig.fingerprint and claimed != sig.fingerprint:
        ok = False
        lines.append(f"✘ the report names certificate {claimed} but was signed with {sig.fingerprint}")
    pin = fp_of(certificate) if certificate is not None else fingerprint
    if pin:
        if pin == sig.fingerprint:
            lines.append("✔ signer is the pinned certificate")
        else:
            ok = False
            lines.append(f"✘ signed by a different certificate than the pinned one ({pin})")
    else:
        lines.append("! signer not pinned: compare the fingerprint above with the operator's published one "
                     "(or pass --fingerprint / --certificate)")
    return ok, True, lines


def verify_report(path, registry, store, *, certificate: bytes | None = None, fingerprint: str | None = None,
                  allow_unsigned: bool = False) -> tuple[bool, list[str]]:
    """``(ok, lines)``: lines say what was checked and every mismatch."""
    path = Path(path)
    data = path.read_bytes()
    summary = read_summary(path)
    if summary.get("schema") != SUMMARY_SCHEMA:
        return False, [f"✘ {path}: summary schema {summary.get('schema')!r}, this dcmon verifies {SUMMARY_SCHEMA!r} "
                       "(reports made before reading digests cite file hashes: re-issue them)"]
    lines: list[str] = []
    ok = True
    is_pdf = data[:5] == b"%PDF-"
    if is_pdf:
        s_ok, _, s_lines = _signature_lines(data, summary, certificate, fingerprint, allow_unsigned)
        ok &= s_ok
        lines += s_lines
    elif certificate is not None or fingerprint:
        lines.append("! HTML reports are not signed: --certificate/--fingerprint apply to PDFs")
    if summary_digest(summary) != summary.get("sha256"):
        ok = False
        lines.append("✘ the embedded summary was altered: its SHA-256 does not match its content")
    else:
        lines.append("✔ embedded summary intact")
    if registry.fingerprint() != summary.get("config_fingerprint"):
        lines.append("! configuration differs from the one the report was made with (config SHA-256 changed)")
    expected, new, result = reproduce(registry, store, summary)

    listed = summary["readings"]["digests"]
    changes = compare_digests(listed, new["readings"]["digests"])
    if changes:
        ok = False
        lines += _capped(changes)
    else:
        lines.append(f"✔ readings unchanged: {len(listed)} source-months ({summary['readings']['method']}, "
                     f"{sum(d['rows'] for d in listed):,} readings)")

    fig = result["facilities"][0]
    bad = []
    for k in VERIFIED:
        if not same(summary["figures"].get(k), fig.get(k)):
            bad.append(f"{k}: report {summary['figures'].get(k)!r}, recomputed {fig.get(k)!r}")
    rep_months = {m["bin"]: m for m in summary.get("monthly", [])}
    for m in fig.get("bins", []):
        r = rep_months.get(m["bin"])
        for k in ("facility_energy_kwh", "it_energy_kwh", "pue"):
            if r is None or not same(r.get(k), m.get(k)):
                bad.append(f"{m['bin']} {k}: report {None if r is None else r.get(k)!r}, recomputed {m.get(k)!r}")
    prof = fig["profiles"].get(summary["profile"])
    pr = summary.get("profile_result")
    if pr is not None and prof is not None:
        for k in ("eligible", "subsidy_cny"):
            if not same(pr.get(k), prof.get(k)):
                bad.append(f"{summary['profile']} {k}: report {pr.get(k)!r}, recomputed {prof.get(k)!r}")
    # every other field of the summary (checks, options, period, …) must equal its recomputation too
    rest = differences({k: v for k, v in summary.items() if k not in NOT_RECOMPUTED},
                       {k: v for k, v in new.items() if k not in NOT_RECOMPUTED})
    bad += [d for d in rest if not d.startswith(("profile_result.eligible", "profile_result.subsidy_cny"))]
    if bad:
        ok = False
        lines += _capped(bad)
    else:
        lines.append(f"✔ {len(VERIFIED)} figures, {len(rep_months)} months, the profile result and every other "
                     "summary field recomputed and equal")

    lines += _document_lines(data, expected, summary, is_pdf)
    return ok and not any(x.startswith("✘") for x in lines), lines


def _document_lines(data: bytes, expected: bytes, summary: dict, is_pdf: bool) -> list[str]:
    from dcmon import __version__
    what = "PDF" if is_pdf else "HTML"
    if summary.get("software") != f"dcmon {__version__}":
        mark = "!" if is_pdf else "✘"
        return [f"{mark} visible document not compared: made by {summary.get('software')}, this is dcmon {__version__} "
                f"(verify with the same version{'; the signature protects the file' if is_pdf else ''})"]
    if is_pdf:
        import weasyprint
        here = f"WeasyPrint {weasyprint.__version__}"
        if summary.get("renderer") != here:
            return [f"! visible document not compared: rendered with {summary.get('renderer')}, this machine has {here}"]
        if data == expected or data[:len(expected)] == expected and len(data) > len(expected):
            return [f"✔ visible document identical to its re-rendering from the data ({len(expected):,} bytes)"]
        return [f"✘ the {what} differs from its re-rendering from the data: " + _pdf_text_difference(data, expected)]
    if data == expected:
        return [f"✔ visible document identical to its re-rendering from the data ({len(expected):,} bytes)"]
    return [f"✘ the {what} differs from its re-rendering from the data: "
            + _first_difference(data.decode("utf-8", errors="replace"), expected.decode("utf-8"))]
