"""The applicant's package, item by item as seed 001 二(二)3 lists it, from registry + store.

Reads the data (through :func:`.evaluate.facility_figures` and :func:`.evaluate.inventory_at`)
and calls the pure functions of :mod:`.retrofit`. The result is plain JSON (floats with their
exact fractions beside them) that the evidence report embeds and ``dcmon verify`` recomputes.

Items (clause 成经信财〔2023〕31号 二(二)3):
(1) 申报表 — pre-filled fields from the facility config (the form itself is filed online);
(2) 营业执照、法定代表人身份证 — attached by the applicant;
(3) 改造升级证明材料 — attached by the applicant (dcmon states the completion date it used);
(4) 专项财务报表 — the three core figures as a statement, each with its source;
(5) 项目建设情况报告 — system functions and service results from the measured before/after
    comparison; background, main content, key directions and service fields from config;
(6) 其他证明材料 — this report (verifiable) and anything else the applicant adds.
"""
from __future__ import annotations

import datetime as dt

import pandas as pd
from dcmon.metrics import racks as racks_mod
from dcmon.metrics import retrofit
from dcmon.metrics.figures import facility_figures, inventory_at
from dcmon.metrics.options import Options
from dcmon.metrics.streaming import edge_readings
from dcmon.metrics.exact import fraction_text
from dcmon.periods import Period, month_periods, zone
from dcmon.registry import NARRATIVE_SECTIONS

CLAUSE = "成经信财〔2023〕31号 二(二)3"
# The notice's list, verbatim (seed 001 二(二)3), and who provides what.
ITEMS = (
    (1, "云计算中心改造升级补助项目申报表", "prefilled"),
    (2, "载有统一社会信用代码的营业执照（复印件）、法定代表人身份证（复印件）", "attach"),
    (3, "云计算中心改造升级证明材料（如合同、协议等具有法律约束力的文件）", "attach"),
    (4, "项目专项财务报表（包含上一年度该项目实际投资额、截至上一年年底计算功能占比、平均机架数改造成本等核心内容）", "statement"),
    (5, "项目建设情况报告（包含项目建设背景、建设主要内容、重点方向、服务领域、系统功能、服务成效等）", "report"),
    (6, "其他需要补充的有关证明材料", "supporting"),
)
REPORT_SECTIONS = ("background", "main_content", "key_directions", "service_fields", "system_functions", "service_results")
MEASURED_SECTIONS = ("system_functions", "service_results")
assert set(REPORT_SECTIONS) == set(NARRATIVE_SECTIONS) | set(MEASURED_SECTIONS)


def _local_midnight_utc(day: dt.date, timezone: str) -> pd.Timestamp:
    return pd.Timestamp(dt.datetime.combine(day, dt.time(), zone(timezone))).tz_convert("UTC")


def data_days(store, facility, lo: dt.date, hi: dt.date) -> tuple[dt.date | None, dt.date | None]:
    """First and last local day with readings of every PUE meter between ``lo`` and ``hi`` (inclusive).

    The first day is the latest of the meters' first readings on or after ``lo`` (a PUE needs
    them all); the last day the earliest of their last readings before the day after ``hi``.
    """
    roles = ("facility",) if facility.it_energy_from == "racks" else ("facility", "it")
    ids = [m.id for m in facility.meters if m.role in roles]
    start = _local_midnight_utc(lo, facility.timezone).value // 10**6
    end = _local_midnight_utc(hi + dt.timedelta(days=1), facility.timezone).value // 10**6
    cols = ["source_id", "ts", "energy_kwh", "power_kw"]
    first = edge_readings(store, facility.id, "meter", ids, cols, after_ms=start).to_pandas()
    # a reading exactly at the end bounds the last day: look up to and including it
    last = edge_readings(store, facility.id, "meter", ids, cols, before_ms=end + 1).to_pandas()
    tz = zone(facility.timezone)
    f = l_ = None
    if len(first) == len(ids) and ids:
        t = pd.to_datetime(first["ts"], utc=True).max()
        f = t.tz_convert(tz).date() if t.value // 10**6 < end else None
    if len(last) == len(ids) and ids:
        t = pd.to_datetime(last["ts"], utc=True).min()
        # a reading at local midnight closes the day before it
        l_ = (t.tz_convert(tz) - pd.Timedelta(milliseconds=1)).date() if t.value // 10**6 > start else None
    return f, l_


def _side(store, facility, days: tuple[dt.date, dt.date], options: Options, side: str) -> tuple[dict, list[dict]]:
    period = Period(*days)
    fig = facility_figures(store, facility, period, Options(**{**options.__dict__, "bins": "month"}))
    fig.pop("_rack_energy_kwh", None)
    bins = fig.pop("bins")
    months = month_periods(period)
    series = [{"bin": b["bin"], "side": side, "from": m.first_day.isoformat(), "to": m.last_day.isoformat(),
               "days": m.days, "facility_energy_kwh": float(b["facility_energy_kwh"]),
               "it_energy_kwh": float(b["it_energy_kwh"]),
               "pue": None if pd.isna(b["pue"]) else float(b["pue"]), "coverage": float(b["coverage"])}
              for b, m in zip(bins.to_dict(orient="records"), months)]
    return fig, series


def _side_json(fig: dict | None, days, months: int) -> dict | None:
    if fig is None:
        return None
    ex = fig.get("_exact") or {}
    return {"from": days[0].isoformat(), "to": days[1].isoformat(), "months": months,
            "days": (days[1] - days[0]).days + 1, "pue_label": fig["pue_label"], "pue_category": fig["pue_category"],
            **{k: fig.get(k) for k in retrofit.SIDE_FIGURES},
            "facility_energy_coverage": fig["facility_energy_coverage"], "it_energy_coverage": fig["it_energy_coverage"],
            "exact": {k: fraction_text(ex.get(k)) for k in ("pue", "facility_energy_kwh", "it_energy_kwh",
                                                             "occupancy_rate", "compute_share", "standard_racks")}}


def before_after(store, facility, options: Options, months: int = retrofit.DEFAULT_MONTHS) -> dict:
    """The retrofit's measured effect: the same number of whole months before and after completion."""
    c = facility.retrofit_completed
    gf = facility.applicant.get("grid_emission_factor") or retrofit.DEFAULT_GRID_FACTOR
    base = {"completed": None if c is None else c.isoformat(), "months_asked": months,
            "grid_emission_factor": dict(gf), "grid_factor_configured": "grid_emission_factor" in facility.applicant}
    if c is None:
        return {**base, "status": "inconclusive", "reasons": ["no_completion_date"], "before": None, "after": None,
                "monthly": [], "months": 0}
    (b_lo, _), (_, a_hi) = retrofit.windows(c, months)
    first, last = data_days(store, facility, b_lo, a_hi)
    kb, ka = retrofit.months_covered(c, first, last, months)
    k = min(kb, ka)
    nb, na = (k, k) if k else (kb, ka)   # without a common length each side shows what it has
    fb = fa = None
    monthly: list[dict] = []
    wb = wa = None
    if nb:
        wb = retrofit.windows(c, nb)[0]
        fb, s = _side(store, facility, wb, options, "before")
        monthly += s
    if na:
        wa = retrofit.windows(c, na)[1]
        fa, s = _side(store, facility, wa, options, "after")
        monthly += s
    cmp = retrofit.compare_sides(fb, fa, min_coverage=options.min_coverage, grid_factor=gf)
    # a side without a whole month says so once, not also as "no data"
    reasons = [r for r in cmp["reasons"] if not (r == "before:no_data" and kb == 0 or r == "after:no_data" and ka == 0)]
    if kb == 0:
        reasons.insert(0, "not_enough_data_before")
    if ka == 0:
        reasons.insert(0, "not_enough_data_after")
    status = "ok" if k and cmp["status"] == "ok" else "inconclusive"
    ex = cmp.pop("_exact")
    return {**base, **cmp, "status": status, "reasons": reasons if status != "ok" else [],
            "energy_saved_kwh": cmp["energy_saved_kwh"] if status == "ok" else None,
            "energy_saved_t_co2": cmp["energy_saved_t_co2"] if status == "ok" else None,
            "months": k, "months_before_available": kb, "months_after_available": ka,
            "data_first_day": None if first is None else first.isoformat(),
            "data_last_day": None if last is None else last.isoformat(),
            "before": _side_json(fb, wb, nb), "after": _side_json(fa, wa, na), "monthly": monthly,
            "exact": {k_: fraction_text(v) for k_, v in ex.items()} if status == "ok" else {}}


def statement(store, facility, options: Options, year: int, in_use_physical_racks: int, racks_as_of: str) -> dict:
    """Item (4): the prior year's actual investment, the compute share at its end, the average cost per rack."""
    inv_row = retrofit.investment_for(facility.applicant.get("actual_investment"), year)
    end_day = dt.date(year, 12, 31)
    end = _local_midnight_utc(end_day + dt.timedelta(days=1), facility.timezone)
    inv, changes = inventory_at(store, facility, end)
    # an instant has no measured energy: the it_energy reading falls back to design power
    reading = options.compute_share_reading if options.compute_share_reading != "it_energy" else "design_power"
    share = racks_mod.compute_share_exact(inv, reading)
    ins = inv[inv["status"] == "in_service"]
    x = racks_mod.exact_summary(inv)
    avg = retrofit.avg_cost_per_rack_cny(facility.retrofit_cost_cny, in_use_physical_racks)
    return {
        "year": year,
        "investment": None if inv_row is None else {"amount_cny": float(inv_row["amount_cny"]),
                                                     "source": inv_row["source"]},
        "investment_years_configured": [r["year"] for r in facility.applicant.get("actual_investment") or []],
        "compute_share": {"as_of": end_day.isoformat(), "instant_utc": end.isoformat(), "reading": reading,
                          "reading_text": racks_mod.COMPUTE_SHARE_READINGS[reading],
                          "fallback_from_it_energy": options.compute_share_reading == "it_energy",
                          "value": None if share is None else float(share), "value_exact": fraction_text(share),
                          "compute_design_power_kw": float(x["compute_design_power_kw"]),
                          "in_service_design_power_kw": float(x["in_service_design_power_kw"]),
                          "in_service_racks": int(len(ins)),
                          "compute_racks": int((ins["function"] == "compute").sum()),
                          "inventory_changes_applied": int(len(changes)),
                          "racks_file": facility.racks_path.name},
        "avg_cost_per_rack": {"retrofit_cost_cny": facility.retrofit_cost_cny,
                              "in_use_physical_racks": int(in_use_physical_racks), "racks_as_of": racks_as_of,
                              "value_cny": None if avg is None else float(avg), "value_exact": fraction_text(avg),
                              "source": f"{facility.path.name}: retrofit.cost_cny"},
    }


def form_fields(facility, stmt: dict, profile_result: dict | None) -> list[dict]:
    """Item (1): the application form's fields dcmon can fill, each with where it comes from."""
    a = facility.applicant
    f = facility.path.name
    est = (profile_result or {}).get("subsidy_estimate") or {}
    inv = stmt["investment"]
    rows = [("applicant_name", facility.operator, f"{f}: operator"),
            ("credit_code", facility.credit_code, f"{f}: credit_code"),
            ("legal_representative", a.get("legal_representative"), f"{f}: applicant.legal_representative"),
            ("address", facility.extra.get("address"), f"{f}: address"),
            ("contact_person", a.get("contact_person"), f"{f}: applicant.contact_person"),
            ("contact_phone", a.get("contact_phone"), f"{f}: applicant.contact_phone"),
            ("contact", facility.extra.get("contact"), f"{f}: contact"),
            ("facility_name", facility.name, f"{f}: name"),
            ("project_name", a.get("project_name"), f"{f}: applicant.project_name"),
            ("retrofit_completed", None if facility.retrofit_completed is None else facility.retrofit_completed.isoformat(),
             f"{f}: retrofit.completed"),
            ("retrofit_cost_cny", facility.retrofit_cost_cny, f"{f}: retrofit.cost_cny"),
            ("actual_investment_cny", None if inv is None else inv["amount_cny"],
             None if inv is None else inv["source"]),
            # computed figures name what they are computed from as codes the report words
            ("in_use_physical_racks", stmt["avg_cost_per_rack"]["in_use_physical_racks"],
             f"inventory:{stmt['avg_cost_per_rack']['racks_as_of']}"),
            ("subsidy_requested_cny", est.get("subsidy_cny"), "subsidy_computation")]
    out = [{"field": k, "value": v, "source": s, "missing": v is None} for k, v, s in rows]
    # an amount that is not due (not eligible, not in force, outside the window) is marked, with why
    out[-1]["hypothetical"] = bool((profile_result or {}).get("subsidy_hypothetical"))
    out[-1]["upper_bound"] = bool(est.get("subsidy_is_upper_bound"))
    return out


def narrative(facility, ba: dict) -> dict:
    """Item (5): each section, either from config (``config``) or from measured figures (``measured``)."""
    text = facility.applicant.get("narrative") or {}
    out = {}
    for k in REPORT_SECTIONS:
        if k in MEASURED_SECTIONS:
            out[k] = {"from": "measured", "status": ba["status"]}
        else:
            out[k] = {"from": "config", "text": text.get(k), "missing": k not in text}
    return out


def checklist(item1: list[dict], stmt: dict, report: dict, ba: dict) -> list[dict]:
    """The notice's items (1)–(6): what the pack holds and what the applicant attaches, with a status."""
    missing1 = [r["field"] for r in item1 if r["missing"]]
    missing4 = [k for k, bad in (("investment", stmt["investment"] is None),
                                 ("compute_share", stmt["compute_share"]["value"] is None),
                                 ("avg_cost_per_rack", stmt["avg_cost_per_rack"]["value_cny"] is None)) if bad]
    missing5 = [k for k, v in report.items() if v.get("missing")] + (["before_after"] if ba["status"] != "ok" else [])
    status = {1: "complete" if not missing1 else "incomplete", 2: "attach", 3: "attach",
              4: "complete" if not missing4 else "incomplete", 5: "complete" if not missing5 else "incomplete",
              6: "supporting"}
    missing = {1: missing1, 4: missing4, 5: missing5}
    return [{"item": n, "text": text, "clause": f"{CLAUSE}({n})", "kind": kind, "status": status[n],
             "missing": missing.get(n, [])} for n, text, kind in ITEMS]


def applicant_pack(store, facility, period: Period, options: Options, profile_result: dict | None,
                   in_use_physical_racks: int, months: int = retrofit.DEFAULT_MONTHS) -> dict:
    """Every figure and field of the applicant's pack for ``facility`` (JSON)."""
    window = (profile_result or {}).get("application_window")
    wto = None if not window else dt.date.fromisoformat(window["completion_to"])
    year = retrofit.statement_year(wto, period.first_day)
    ba = before_after(store, facility, options, months)
    stmt = statement(store, facility, options, year, in_use_physical_racks, period.last_day.isoformat())
    item1 = form_fields(facility, stmt, profile_result)
    report = narrative(facility, ba)
    return {"clause": CLAUSE, "application_window": window, "statement_year": year, "before_after": ba,
            "statement": stmt, "form_fields": item1, "report": report,
            "checklist": checklist(item1, stmt, report, ba)}

