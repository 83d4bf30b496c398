"""Figures for watching a facility live: what the Prometheus exporter publishes and the shipped
alert rules compare (``deploy/prometheus/dcmon-rules.yml``, ``docs/monitoring.md``).

- the quarter-to-date PUE and its coverage over the *elapsed* part of the quarter (calendar
  quarter in the facility's time zone, up to now), and the share of the quarter elapsed;
- the PUE limit of the facility: the strictest PUE check among the policy profiles that apply to
  it (by city, kind and the check's conditions), with its operator and profile;
- the minimum coverage a verdict needs (``policy.DEFAULT_MIN_COVERAGE`` unless a profile sets
  ``min_coverage``).

Alerts are operational signals; the verdict on a period stays with ``dcmon evaluate``
(exact comparisons, coverage rules) — an alert says "look now", not "failed".
"""
from __future__ import annotations

import datetime as dt

import pandas as pd
from dcmon.metrics import evaluate as ev
from dcmon.metrics import racks as racks_mod
from dcmon.metrics.policy import DEFAULT_MIN_COVERAGE, condition_holds, select_profiles

from dcmon.periods import quarter, zone


def quarter_bounds(now: pd.Timestamp, timezone: str) -> tuple[pd.Timestamp, pd.Timestamp, str]:
    """``(start, end, label)`` of the calendar quarter holding ``now`` in ``timezone`` (UTC, half-open)."""
    local = now.tz_convert(zone(timezone))
    label = f"{local.year}Q{(local.month - 1) // 3 + 1}"
    start, end = quarter(label).utc_bounds(timezone)
    return start, end, label


def best_case_coverage(coverage: float, elapsed_ratio: float) -> float:
    """The quarter's coverage if every remaining moment is covered [-].

    ``coverage`` [-] is the covered share of the elapsed part, ``elapsed_ratio`` [-] the elapsed
    share of the quarter: best = coverage × elapsed + (1 − elapsed). Below the minimum, the
    quarter can no longer reach it.
    """
    return coverage * elapsed_ratio + (1.0 - elapsed_ratio)


def quarter_to_date(store, facility, now: pd.Timestamp | None = None) -> dict:
    """PUE and coverage of the quarter so far (its first moment to ``now``).

    Returns quarter (label), pue [-] (None without IT energy), facility_energy_kwh, it_energy_kwh
    [kWh], coverage [-] (lower of facility and IT coverage over the elapsed time, as
    :func:`metrics.evaluate.live_pue` measures it), elapsed_ratio [-], best_case_coverage [-].
    """
    now = now or pd.Timestamp.now(tz="UTC")
    start, end, label = quarter_bounds(now, facility.timezone)
    elapsed = now - start
    live = ev.live_pue(store, facility, now, window=elapsed.to_pytimedelta()) if elapsed > pd.Timedelta(0) else \
        {"pue": None, "facility_energy_kwh": 0.0, "it_energy_kwh": 0.0, "coverage": 0.0}
    elapsed_ratio = elapsed / (end - start)
    return {"quarter": label, "pue": live["pue"], "facility_energy_kwh": live["facility_energy_kwh"],
            "it_energy_kwh": live["it_energy_kwh"], "coverage": live["coverage"], "elapsed_ratio": elapsed_ratio,
            "best_case_coverage": best_case_coverage(live["coverage"], elapsed_ratio)}


_STRICTNESS = {"<": 0, "<=": 1}   # at the same threshold, "<" (1.25 fails) is stricter than "<="


def pue_limit(store, facility, profiles: dict, now: pd.Timestamp | None = None) -> dict | None:
    """The strictest PUE target that applies to the facility now: ``{profile, op, threshold, clause}``.

    Only gating checks count (a ``flag`` such as retrofit_required is a note, not a target); a
    profile applies by city and kind, and by its and the check's ``when`` conditions on the
    current rack inventory. None when no profile sets a PUE target for the facility.
    """
    inv, _ = ev.inventory_at(store, facility, now or pd.Timestamp.now(tz="UTC"))
    summary = racks_mod.rack_summary(inv)
    best = None
    for prof in select_profiles(profiles, None, facility):
        facts = ev.facts_for_conditions(summary, prof, facility)
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


def seconds_since(ts_ms: int | None, now: dt.datetime | pd.Timestamp) -> float:
    """Seconds from a reading's time stamp [ms] to ``now``; +inf when there is none."""
    if ts_ms is None:
        return float("inf")
    return (pd.Timestamp(now).value // 10**6 - int(ts_ms)) / 1000.0
