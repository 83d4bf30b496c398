"""``dcmon verify``: recompute a report's figures from the data and say whether they match.

Three things are checked, each reported by name:
1. the embedded summary is intact (its SHA-256 over its canonical JSON);
2. the data files it lists are present with the same SHA-256 (a changed, missing or new file
   in the period is named);
3. every figure recomputed with the same period, profile and readings equals the reported one
   (relative tolerance 1e-9, for float summation order only).
"""
from __future__ import annotations

import math
from pathlib import Path

from dcmon.metrics.evaluate import Options, evaluate
from dcmon.periods import Period, parse_date
from dcmon.reports.common import data_files
from dcmon.reports.evidence import VERIFIED, read_summary, summary_digest

REL_TOL = 1e-9


def _same(a, b) -> bool:
    if a is None or b is None:
        return a is b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return math.isclose(a, b, rel_tol=REL_TOL, abs_tol=1e-12)
    return a == b


def _differences(a, b, path: str) -> list[str]:
    """Paths where two JSON documents differ (numbers with :func:`_same`)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for k in sorted(set(a) | set(b), key=str) for d in _differences(a.get(k), b.get(k), f"{path}.{k}")]
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in _differences(x, y, f"{path}[{i}]")]
    return [] if _same(a, b) else [f"{path}: report {a!r}, recomputed {b!r}"]


def verify_report(path, registry, store) -> tuple[bool, list[str]]:
    """``(ok, lines)``: lines say what was checked and every mismatch."""
    lines: list[str] = []
    ok = True
    summary = read_summary(Path(path))
    if summary.get("schema") != "dcmon-evidence/1":
        return False, [f"{path}: unknown summary schema {summary.get('schema')!r}"]
    if summary_digest(summary) != summary.get("sha256"):
        ok = False
        lines.append("✘ the embedded summary was altered: its SHA-256 does not match its content")
    else:
        lines.append("✔ embedded summary intact")
    if registry.fingerprint() != summary.get("config_fingerprint"):
        lines.append("! configuration differs from the one the report was made with (config SHA-256 changed)")
    fid = summary["facility_id"]
    period = Period(parse_date(summary["period"]["from"]), parse_date(summary["period"]["to"]))
    listed = {f["path"]: f["sha256"] for f in summary.get("data_files", [])}
    from dcmon.reports.evidence import pack_span
    now = {f["path"]: f["sha256"] for f in data_files(store, [fid], pack_span(period, summary.get("applicant")), registry)}
    changed = sorted(p for p in listed if p in now and now[p] != listed[p])
    missing = sorted(p for p in listed if p not in now)
    new = sorted(p for p in now if p not in listed)
    if changed or missing or new:
        ok = False
        for label, items in (("changed", changed), ("missing", missing), ("new", new)):
            for p in items[:20]:
                lines.append(f"✘ data file {label}: {p}")
            if len(items) > 20:
                lines.append(f"✘ … and {len(items) - 20} more {label} files")
    else:
        lines.append(f"✔ {len(listed)} data files unchanged (SHA-256)")
    o = summary["options"]
    options = Options(rack_basis=o["rack_basis"], compute_share_reading=o["compute_share_reading"],
                      inventory=o["inventory"], min_coverage=o["min_coverage"], bins="month")
    result = evaluate(registry, store, period, [fid], [summary["profile"]], options)
    fig = result["facilities"][0]
    bad = 0
    for k in VERIFIED:
        if not _same(summary["figures"].get(k), fig.get(k)):
            bad += 1
            lines.append(f"✘ {k}: report {summary['figures'].get(k)!r}, recomputed {fig.get(k)!r}")
    rep_months = {m["bin"]: m for m in summary.get("monthly", [])}
    for m in fig.get("bins", []):
        r = rep_months.get(m["bin"])
        for k in ("facility_energy_kwh", "it_energy_kwh", "pue"):
            if r is None or not _same(r.get(k), m.get(k)):
                bad += 1
                lines.append(f"✘ {m['bin']} {k}: report {None if r is None else r.get(k)!r}, recomputed {m.get(k)!r}")
    prof = fig["profiles"].get(summary["profile"])
    pr = summary.get("profile_result")
    if pr is not None and prof is not None:
        for k in ("eligible", "subsidy_cny"):
            if not _same(pr.get(k), prof.get(k)):
                bad += 1
                lines.append(f"✘ {summary['profile']} {k}: report {pr.get(k)!r}, recomputed {prof.get(k)!r}")
    # the applicant's pack (before/after, statement, form fields) recomputed from the same data
    from dcmon.reports.evidence import applicant_pack_for
    pack = applicant_pack_for(store, registry.get(fid), period, options, result, summary["profile"])
    for d in _differences(summary.get("applicant"), pack, "applicant"):
        bad += 1
        lines.append(f"✘ {d}")
    if bad:
        ok = False
    else:
        lines.append(f"✔ {len(VERIFIED)} figures, {len(rep_months)} months and the profile result recomputed and equal")
    return ok, lines
