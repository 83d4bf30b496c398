"""Text tables for people: ``dcmon evaluate``'s table and the aligned columns of listings."""
from __future__ import annotations

import io
import unicodedata


from dcmon.terms import STATUS_MARK as MARK


def _pct(x):
    return "—" if x is None else f"{x * 100:.1f}%"


def _f(x, nd=3):
    return "—" if x is None else f"{x:.{nd}f}"


def _eligible_mark(e):
    return {True: "✔", False: "✘", None: "?"}[e]


def align(rows: list[list[str]]) -> str:
    def width(s):
        return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in s)
    w = [max(width(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for r in rows:
        lines.append("  ".join(c + " " * (w[i] - width(c)) for i, c in enumerate(r)).rstrip())
    lines.insert(1, "  ".join("-" * x for x in w))
    return "\n".join(lines) + "\n"


def format_table(result: dict) -> str:
    b = result["basis"]
    per = result["period"]
    out = io.StringIO()
    out.write(f"Period {per['from']} .. {per['to']} ({per['days']} days, calendar days in each facility's time zone)\n")
    out.write(f"Readings: racks {b['rack_basis']} ({b['rack_basis_text']}); compute share {b['compute_share_reading']} "
              f"({b['compute_share_text']}); inventory {b['inventory']}; checks need coverage ≥ {b['min_coverage']:.0%}\n")
    out.write("PUE = Σ facility energy ÷ Σ IT energy over the period. ✔ pass  ✘ fail  ? inconclusive  – not applicable\n\n")
    rows = [["facility", "PUE", "label", "cat", "coverage", "std racks", "physical", "in service", "class",
             "occupancy", "compute", "facility kWh", "IT kWh"]]
    for f in result["facilities"]:
        rows.append([f["facility_id"], _f(f["pue"]), f["pue_label"], str(f["pue_category"]), _pct(f["coverage"]),
                     f"{f['standard_racks']:.1f}", str(f["physical_racks"]), str(f["in_service_racks"]), f["size_class"],
                     _pct(f["occupancy_rate"]), _pct(f["compute_share"]),
                     "—" if f["facility_energy_kwh"] is None else f"{f['facility_energy_kwh']:,.1f}",
                     "—" if f["it_energy_kwh"] is None else f"{f['it_energy_kwh']:,.1f}"])
    out.write(align(rows))
    out.write("\nPolicy checks (result: ✔ only when every required check passes; report-only flags never decide it)\n")
    rows = [["facility", "profile", "result", "required checks", "report-only flags", "subsidy CNY"]]
    for f in result["facilities"]:
        for pid, pr in f["profiles"].items():
            if not pr["applicable"]:
                rows.append([f["facility_id"], pid, "–", "not applicable", "", ""])
                continue
            checks = " ".join(f"{MARK[c['status']]}{c['metric']} {c.get('value_text', '')}{c['op']}{c['threshold']:g}"
                              for c in pr["checks"] if c["status"] != "not_applicable" and not c.get("flag"))
            if pr.get("grade") is not None or "grade_note" in pr:
                checks += f" grade {pr.get('grade') or '—'}"
            flags = " ".join(f"{MARK[r['status']]}{r['flag']}" + (" RAISED" if r["raised"] else "")
                             for r in pr.get("report_only", []))
            rows.append([f["facility_id"], pid, MARK.get(pr.get("verdict"), _eligible_mark(pr["eligible"])),
                         checks or "no required check applies", flags, _subsidy_text(pr)])
    out.write(align(rows))
    p = result["portfolio"]
    out.write(f"\nFacilities shown ({p['facilities']}): energy-weighted PUE {_f(p['pue'])}, "
              f"occupancy {_pct(p['occupancy_rate'])}, coverage {_pct(p['coverage'])}\n")
    for c in p["checks"]:
        out.write(f"  {MARK[c['status']]} {c['profile']} {c['scope']} {c.get('city', '')} ({c.get('facilities', '?')} "
                  f"facilities of the registry): {c['metric']} {c.get('value_text', _f(c['value']))} {c['op']} {c['threshold']}\n")
    for f in result["facilities"]:
        for pid, pr in f["profiles"].items():
            for c in pr["checks"]:
                if c["status"] == "inconclusive":
                    out.write(f"  ? {f['facility_id']} {pid} {c['metric']}: {c.get('reason', '')}\n")
            for n in pr.get("notes", []):
                out.write(f"  note {f['facility_id']} {pid}: {n}\n")
    return out.getvalue()


def _subsidy_text(pr: dict) -> str:
    """The amount column: due only when eligible, in force and in the window; else marked hypothetical."""
    est = pr.get("subsidy_estimate")
    if not est:
        return ""
    amount = f"{est['subsidy_cny']:,.2f}"
    tags = []
    if est.get("no_retrofit_cost"):
        tags.append("upper bound: no retrofit cost")
    elif est.get("ceiling_only"):
        tags.append("upper bound: ceiling only")
    if est.get("per_rack_capped"):
        tags.append("per-rack cap applied")
    if est.get("capped"):
        tags.append("total cap applied")
    if pr.get("subsidy_hypothetical"):
        why = {"not_eligible": "not eligible", "not_in_force": "measure not in force for this period",
               "outside_application_window": "outside the application window"}
        return f"none due; hypothetical {amount} ({', '.join(why[r] for r in pr.get('hypothetical_reasons', []))})"
    return amount + (f" ({'; '.join(tags)})" if tags else "")
