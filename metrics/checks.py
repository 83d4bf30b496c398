"""Policy checks: a facility's figures (:mod:`.figures`) against its profiles' thresholds.

Each check row carries its figure, operator, threshold, clause, coverage and status, and its
margin as data — the signed distance ``margin`` and ``margin_detail`` (kind, value, unit,
direction: what to act on) — which :mod:`dcmon.terms` puts into words per language. The
overall verdict counts required checks only; report-only ``flag`` checks raise their flag when
they fail. Thresholds, operators, conditions and flags all come from the profile files
(``config/policies/*.yaml``, parsed by :mod:`.policy`); decisions are exact (:mod:`.exact`).
"""
from __future__ import annotations

import datetime as dt

import pandas as pd
from dcmon.metrics import pue as pue_mod
from dcmon.metrics import racks as racks_mod
from dcmon.metrics.exact import figure_text, fraction_text
from dcmon.metrics.figures import aggregate, inventory_at
from dcmon.metrics.options import Options
from dcmon.metrics.policy import (
    DEFAULT_MIN_COVERAGE,
    OP_WORDS,
    Profile,
    compare,
    condition_holds,
    grade,
    select_profiles,
)
from dcmon.metrics.subsidy import subsidy_estimate

from dcmon.periods import Period
from dcmon.terms import STATUS_OF, status_of  # noqa: F401 (checks speak in status words)



def flag_raised(status: str) -> bool | None:
    """Whether a report-only check's status raises its flag: fail → True, pass → False, else None."""
    return {"fail": True, "pass": False}.get(status)


def flag_checks(profiles: dict[str, Profile]) -> dict[str, tuple[Profile, object]]:
    """Every report-only check by the flag it raises: ``{flag: (profile, check)}`` (first profile wins)."""
    out: dict = {}
    for prof in profiles.values():
        for c in prof.checks:
            if c.flag and c.flag not in out:
                out[c.flag] = (prof, c)
    return out


def facility_flags(fig: dict) -> dict[str, bool | None]:
    """The flags of an evaluated facility (``evaluate`` output): True raised, False not raised,
    None inconclusive; a flag whose check does not apply to the facility is absent."""
    out: dict = {}
    for pr in fig.get("profiles", {}).values():
        for r in pr.get("report_only", []):
            out.setdefault(r["flag"], flag_raised(r["status"]))
    return out


def _metric_value(fig: dict, metric: str, options: Options):
    """The figure a check compares: its exact fraction where the figures carry one, else as stored."""
    if metric == "racks":
        metric = "standard_racks" if options.rack_basis == "standard" else "physical_racks"
    exact = fig.get("_exact") or {}
    return exact[metric] if metric in exact else fig.get(metric)


def _metric_coverage(fig: dict, metric: str, options: Options) -> float | None:
    if metric == "pue":
        return fig["coverage"]
    if metric == "compute_share" and options.compute_share_reading == "it_energy":
        return fig["data_quality"].get("rack_energy_coverage")
    return 1.0  # inventory figures come from the registry, complete by construction


def margin_detail(fig: dict, metric: str, op: str, threshold: float, options: Options) -> dict | None:
    """The margin in units a manager acts on, as data: ``kind``, ``value`` (≥ 0), ``unit`` and
    ``direction`` (``short``: that much is missing; ``surplus``: that much to spare).
    ``dcmon.terms.margin_text`` puts it into words."""
    def out(kind, need, unit, **extra):
        # at exactly the threshold a strict operator (< >) still needs "more than 0"
        short = need > 0 or (need == 0 and op in ("<", ">"))
        return {"kind": kind, "value": abs(need), "unit": unit, "direction": "short" if short else "surplus", **extra}
    if metric == "pue" and fig.get("pue") is not None:
        save = pue_mod.energy_to_save_kwh(fig["facility_energy_kwh"], fig["it_energy_kwh"], threshold)
        return out("facility_energy", save, "kWh", facility_energy_to_save_kwh=save)
    if metric == "racks":
        if options.rack_basis == "standard":
            short = threshold - fig["standard_racks"]
            return out("standard_racks", short, "racks", standard_racks_short=short,
                       design_power_kw=short * racks_mod.STANDARD_RACK_KW)
        short = threshold - fig["physical_racks"]
        return out("physical_racks", short, "racks", physical_racks_short=short)
    if metric == "compute_share" and options.compute_share_reading in ("design_power", "compute_storage") \
            and fig.get("compute_share") is not None:
        denom = fig["in_service_design_power_kw"]
        need = threshold * denom - fig["compute_design_power_kw"]
        return out("compute_design_power", need, "kW", compute_design_power_to_add_kw=need)
    if metric == "occupancy_rate" and fig.get("occupancy_rate") is not None:
        need = threshold * fig["design_it_power_kw"] - fig["in_service_design_power_kw"]
        return out("in_service_design_power", need, "kW", in_service_design_power_to_add_kw=need)
    return None


def facts_for_conditions(fig: dict, profile: Profile, facility) -> dict:
    new_site = None
    if profile.new_site_since is not None:
        new_site = bool(facility.commissioned and facility.commissioned >= profile.new_site_since)
    return {"cluster_start_area": facility.cluster_start_area, "kind": facility.kind,
            "size_class": fig["size_class"], "new_site": new_site, "standard_racks": fig["standard_racks"]}


# digits a check's figure is printed with (figure_text adds more where they would show the threshold)
VALUE_DIGITS = {"pue": (3, False), "compute_share": (1, True), "occupancy_rate": (1, True),
                "standard_racks": (1, False), "physical_racks": (0, False), "avg_design_power_per_rack_kw": (2, False),
                "annual_terminals_served": (0, False)}


def value_text(metric: str, value, threshold, options: Options | None = None) -> str:
    """A check's figure as every output prints it, agreeing with the exact decision."""
    if metric == "racks":
        metric = "standard_racks" if (options or Options()).rack_basis == "standard" else "physical_racks"
    digits, percent = VALUE_DIGITS.get(metric, (3, False))
    return figure_text(value, digits, threshold, percent=percent)


def _in_force(profile: Profile, period: Period) -> tuple[bool | None, str | None]:
    """Whether the measure is in force for the whole period (None: the profile gives no dates)."""
    inf = profile.raw.get("in_force")
    if not inf:
        return None, None
    f, t = dt.date.fromisoformat(str(inf["from"])), dt.date.fromisoformat(str(inf["to"]))
    if f <= period.first_day and period.last_day <= t:
        return True, None
    if period.last_day < f or period.first_day > t:
        return False, f"measure not in force for this period: in force {f} to {t}; the period {period.first_day}..{period.last_day} is outside it"
    return False, f"measure not in force for this period: in force {f} to {t}; the period {period.first_day}..{period.last_day} is only partly inside it"


def _application_window(profile: Profile, facility) -> tuple[dict | None, str | None]:
    win = profile.raw.get("application_window")
    if not win:
        return None, None
    lo, hi = dt.date.fromisoformat(str(win["completion_from"])), dt.date.fromisoformat(str(win["completion_to"]))
    done = facility.retrofit_completed
    inside = None if done is None else lo <= done <= hi
    doc = {"completion_from": lo.isoformat(), "completion_to": hi.isoformat(), "clause": win.get("clause", ""),
           "completed": done.isoformat() if done else None, "inside": inside}
    if inside is None:
        return doc, f"retrofit completion date not given: the application window {lo}..{hi} cannot be checked ({win.get('clause', '')})"
    if not inside:
        return doc, f"retrofit completed {done}, outside the application window {lo}..{hi} ({win.get('clause', '')})"
    return doc, None


def overall_verdict(checks: list[dict], applicable: bool) -> tuple[bool | None, str]:
    """``(eligible, verdict)`` from the required checks (report-only flags never count).

    Pass only when every applicable required check passes; a failing one fails; otherwise,
    an inconclusive one, or none applicable, gives no pass.
    """
    if not applicable:
        return None, "not_applicable"
    gates = [r for r in checks if r["status"] != "not_applicable" and r["required"]]
    if not gates:
        return None, "not_applicable"
    if any(r["status"] == "fail" for r in gates):
        return False, "fail"
    if any(r["status"] == "inconclusive" for r in gates):
        return None, "inconclusive"
    return True, "pass"


def evaluate_profile(fig: dict, profile: Profile, facility, options: Options, period: Period) -> dict:
    facts = facts_for_conditions(fig, profile, facility)
    applicable = condition_holds(profile.when, facts) and ("*" in profile.kinds or facility.kind in profile.kinds)
    checks, flags = [], []
    for c in profile.checks:
        value = _metric_value(fig, c.metric, options)
        cov = _metric_coverage(fig, c.metric, options)
        row = {"metric": c.metric, "value": None if value is None else float(value), "op": c.op,
               "threshold": c.threshold, "clause": c.clause, "coverage": cov,
               "value_text": value_text(c.metric, value, c.threshold, options), "value_exact": fraction_text(value),
               "required": not c.flag, "text": f"{c.metric} {OP_WORDS[c.op]} {c.threshold}"}
        if c.metric == "racks":
            row["basis"] = options.rack_basis
        if c.metric == "compute_share":
            row["basis"] = options.compute_share_reading
        if not applicable or not condition_holds(c.when, facts):
            row.update(passed=None, margin=None, status="not_applicable")
        else:
            passed, margin, status = compare(value, c.op, c.threshold, cov, options.min_coverage)
            if value is None:
                row["reason"] = f"no {c.metric} figure (missing data)"
            elif status == "inconclusive":
                row["reason"] = f"coverage {cov:.1%} below the required {options.min_coverage:.0%}"
            row.update(passed=passed, margin=margin, status=status,
                       margin_detail=margin_detail(fig, c.metric, c.op, c.threshold, options))
        if c.flag:
            row["flag"] = c.flag  # report-only: raised when the check fails, never a requirement
            if row["status"] == "fail":
                flags.append(c.flag)
        checks.append(row)
    eligible, verdict = overall_verdict(checks, applicable)
    in_force, in_force_note = _in_force(profile, period)
    window, window_note = _application_window(profile, facility)
    res = {"title": profile.title, "source": profile.source, "applicable": applicable, "eligible": eligible,
           "verdict": verdict, "in_force": in_force, "application_window": window,
           "checks": checks, "flags": flags,
           "report_only": [{"flag": r["flag"], "status": r["status"], "metric": r["metric"], "value_text": r["value_text"],
                            "op": r["op"], "threshold": r["threshold"], "raised": r["status"] == "fail", "clause": r["clause"]}
                           for r in checks if r.get("flag") and r["status"] != "not_applicable"],
           "subsidy_cny": None, "subsidy_is_upper_bound": None, "subsidy_hypothetical": None}
    if profile.grades and applicable:
        res["grade"] = grade(_metric_value(fig, "pue", options), profile.grades) \
            if fig.get("coverage", 0) >= options.min_coverage else None
        res["grade_note"] = ("annual PUE" if fig["pue_label"] == "annual"
                             else "interim: GB 40879 grades the annual PUE; this is an interim figure")
    if profile.subsidy and applicable:
        s = profile.subsidy
        est = subsidy_estimate(fig["in_service_racks"], s["per_rack_max_cny"], s["total_max_cny"],
                               retrofit_cost_cny=facility.retrofit_cost_cny, cost_share=s.get("cost_share"),
                               always_upper_bound=bool(s.get("always_upper_bound")))
        est["clause"] = s.get("clause", "")
        res["subsidy_estimate"] = est
        if eligible:
            res["subsidy_cny"] = est["subsidy_cny"]
            res["subsidy_is_upper_bound"] = est["subsidy_is_upper_bound"]
        # the figure is only an amount due when every requirement is met, the measure is in force
        # for the period and the retrofit falls in the application window
        reasons = [r for r, bad in (("not_eligible", eligible is not True), ("not_in_force", in_force is False),
                                    ("outside_application_window", bool(window) and window["inside"] is False)) if bad]
        res["subsidy_hypothetical"] = bool(reasons)
        res["hypothetical_reasons"] = reasons
    res["notes"] = [n for n in (in_force_note, window_note) if n]
    return res


def portfolio(figs: list[dict], profiles, options: Options, city_figures=None) -> dict:
    """Figures of the facilities asked for, and each profile's city-wide and start-area checks.

    The checks take every facility of the city (``city_figures(city)``), not only those asked
    for, and state how many they cover; a facility without a PUE leaves the city PUE inconclusive.
    """
    out = aggregate(figs)
    out.pop("_exact")
    start_area = [f for f in figs if f["cluster_start_area"]]
    out["cluster_start_area"] = aggregate(start_area) if start_area else None
    if out["cluster_start_area"]:
        out["cluster_start_area"].pop("_exact")
    checks, cities = [], {}
    for prof in profiles:
        if not prof.portfolio_checks or city_figures is None:
            continue
        for city in prof.cities:
            if city == "*":
                continue
            members = city_figures(city)
            scopes = {"city": members, "cluster_start_area": [f for f in members if f["cluster_start_area"]]}
            aggs = {k: aggregate(v) if v else None for k, v in scopes.items()}
            cities[city] = {k: None if a is None else {**{x: y for x, y in a.items() if x != "_exact"},
                                                       "facility_ids": [f["facility_id"] for f in scopes[k]]}
                            for k, a in aggs.items()}
            for c in prof.portfolio_checks:
                agg, rows = aggs[c["scope"]], scopes[c["scope"]]
                if agg is None:
                    continue
                value = agg["_exact"][c["metric"]]
                # a city PUE needs every facility's energy: the lowest coverage of all of them
                cov = min((r["coverage"] if r.get("pue") is not None else 0.0) for r in rows) \
                    if c["metric"] == "pue" else 1.0
                passed, margin, status = compare(value, c["op"], c["threshold"], cov, options.min_coverage)
                checks.append({"profile": prof.id, "scope": c["scope"], "city": city, "metric": c["metric"],
                               "value": None if value is None else float(value),
                               "value_text": value_text(c["metric"], value, c["threshold"]),
                               "value_exact": fraction_text(value), "op": c["op"], "threshold": c["threshold"],
                               "passed": passed, "margin": margin, "status": status, "coverage": cov,
                               "facilities": len(rows), "facility_ids": [r["facility_id"] for r in rows],
                               "clause": c.get("clause", "")})
    out["checks"] = checks
    out["cities"] = cities
    return out


_STRICTNESS = {"<": 0, "<=": 1}   # at the same threshold, "<" (1.25 fails) is stricter than "<="


def pue_limit(store, facility, profiles: dict, now: pd.Timestamp | None = None) -> dict | None:
    """The strictest PUE target that applies to the facility now: ``{profile, op, threshold, clause}``.

    Only gating checks count (a ``flag`` such as retrofit_required is a note, not a target); a
    profile applies by city and kind, and by its and the check's ``when`` conditions on the
    current rack inventory. None when no profile sets a PUE target for the facility.
    """
    inv, _ = inventory_at(store, facility, now or pd.Timestamp.now(tz="UTC"))
    summary = racks_mod.rack_summary(inv)
    best = None
    for prof in select_profiles(profiles, None, facility):
        facts = facts_for_conditions(summary, prof, facility)
        if not condition_holds(prof.when, facts):
            continue
        for c in prof.checks:
            if c.metric != "pue" or c.flag or c.op not in _STRICTNESS or not condition_holds(c.when, facts):
                continue
            key = (c.threshold, _STRICTNESS[c.op])
            if best is None or key < best[0]:
                best = (key, {"profile": prof.id, "op": c.op, "threshold": float(c.threshold), "clause": c.clause})
    return None if best is None else best[1]


def min_coverage(facility, profiles: dict) -> float:
    """The coverage a verdict on the facility needs [-]: the highest ``min_coverage`` its profiles
    set, else the default (0.95)."""
    values = [float(p.raw["min_coverage"]) for p in select_profiles(profiles, None, facility)
              if isinstance(p.raw.get("min_coverage"), (int, float))]
    return max(values, default=DEFAULT_MIN_COVERAGE)
