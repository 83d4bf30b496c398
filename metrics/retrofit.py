"""The retrofit's measured effect and the applicant's statement figures (seed 001 二(二)3).

Pure functions: dates, exact figures and the ``before``/``after`` comparison of two figure
sets; :mod:`.applicant` reads the data and calls them.

Windows around the completion date ``c`` (``retrofit.completed``), k whole months each::

    before = [(c + 1 day) − k months, c]              (the completion day is the last day of the old state)
    after  = [c + 1 day, (c + 1 day) + k months − 1 day]

k is 12 by default, or fewer when the data does not reach that far on either side (the same k
on both sides, so the two periods have the same length in months); with no whole month of
data before (or after) the completion the comparison is ``inconclusive``, never guessed.

Energy saved at the same IT load (what the after-period's IT energy would have cost at the
before-period's PUE, less what it cost)::

    saved_kwh   = (PUE_before − PUE_after) × IT_energy_after          [kWh]
    saved_t_co2 = saved_kwh / 1000 × grid_factor                       [t CO₂], factor [t CO₂/MWh]

References: ISO/IEC 30134-2 §6.2 (PUE as a ratio of energies); seed 001 二(二)1(4) (completion
window), 二(二)3(4) (statement: prior year's investment, compute share at the prior year's end,
average retrofit cost per rack), 二(二)2 (在用物理机架).
"""
from __future__ import annotations

import calendar
import datetime as dt
from fractions import Fraction

from dcmon.metrics.exact import ratio, to_fraction

DEFAULT_MONTHS = 12
# China's national grid average emission factor for 2022, published for emission reporting.
DEFAULT_GRID_FACTOR = {"t_co2_per_mwh": 0.5703,
                       "source": "生态环境部 环办气候函〔2023〕43号: 2022年度全国电网平均排放因子 0.5703 tCO2/MWh"}


def add_months(day: dt.date, months: int) -> dt.date:
    """``day`` moved by ``months`` calendar months, clipped to the month's last day (Jan 31 + 1 → Feb 28/29)."""
    m = day.month - 1 + months
    y, m = day.year + m // 12, m % 12 + 1
    return dt.date(y, m, min(day.day, calendar.monthrange(y, m)[1]))


def windows(completed: dt.date, months: int) -> tuple[tuple[dt.date, dt.date], tuple[dt.date, dt.date]]:
    """``(before, after)`` inclusive day ranges of ``months`` months each around ``completed``."""
    if months < 1:
        raise ValueError(f"months must be ≥ 1: {months!r}")
    first_after = completed + dt.timedelta(days=1)
    # anchored on the first day of the new state, so a month-end completion gives calendar months
    before = (add_months(first_after, -months), completed)
    after = (first_after, add_months(first_after, months) - dt.timedelta(days=1))
    return before, after


def months_covered(completed: dt.date, first_day: dt.date | None, last_day: dt.date | None,
                   months: int = DEFAULT_MONTHS) -> tuple[int, int]:
    """Whole months of data ``(before, after)`` the completion, each at most ``months``.

    ``first_day``/``last_day``: the first and last local days with readings (None: no data).
    """
    if months < 1:
        raise ValueError(f"months must be ≥ 1: {months!r}")
    kb = ka = 0
    if first_day is not None:
        while kb < months and windows(completed, kb + 1)[0][0] >= first_day:
            kb += 1
    if last_day is not None:
        while ka < months and windows(completed, ka + 1)[1][1] <= last_day:
            ka += 1
    return kb, ka


def energy_saved_kwh(pue_before, pue_after, it_energy_after_kwh) -> Fraction | None:
    """(PUE_before − PUE_after) [-] × IT_energy_after [kWh], exact; None if any input is missing.

    Negative when the PUE rose: energy lost at the same IT load.
    """
    b, a, it = to_fraction(pue_before), to_fraction(pue_after), to_fraction(it_energy_after_kwh)
    if b is None or a is None or it is None:
        return None
    return (b - a) * it


def t_co2(energy_kwh, t_co2_per_mwh) -> Fraction | None:
    """Emissions [t CO₂] of ``energy_kwh`` [kWh] at a grid factor [t CO₂/MWh]."""
    e, f = to_fraction(energy_kwh), to_fraction(t_co2_per_mwh)
    if e is None or f is None:
        return None
    return e / 1000 * f


SIDE_FIGURES = ("pue", "facility_energy_kwh", "it_energy_kwh", "coverage", "occupancy_rate", "compute_share",
                "standard_racks", "physical_racks", "in_service_racks")


def side_status(fig: dict | None, min_coverage: float) -> tuple[str, str | None]:
    """``(status, reason)`` of one side: ``ok`` or ``inconclusive`` with the reason."""
    if fig is None:
        return "inconclusive", "no_data"
    if fig.get("pue") is None:
        return "inconclusive", "no_pue"
    if fig["coverage"] < min_coverage:
        return "inconclusive", "low_coverage"
    return "ok", None


def compare_sides(before: dict | None, after: dict | None, *, min_coverage: float,
                  grid_factor: dict | None = None) -> dict:
    """The before/after comparison of two figure sets (:func:`dcmon.metrics.evaluate.facility_figures` rows).

    Each side keeps :data:`SIDE_FIGURES` and its exact PUE; ``change`` holds after − before for
    each figure; the energy saved needs both PUEs with enough coverage, else it is None and the
    status says which side is short.
    """
    grid_factor = grid_factor or DEFAULT_GRID_FACTOR
    sb, rb = side_status(before, min_coverage)
    sa, ra = side_status(after, min_coverage)
    status = "ok" if sb == sa == "ok" else "inconclusive"
    reasons = [f"{side}:{r}" for side, r in (("before", rb), ("after", ra)) if r]

    def exact_pue(fig):
        return None if fig is None else (fig.get("_exact") or {}).get("pue", to_fraction(fig.get("pue")))
    pb, pa = exact_pue(before), exact_pue(after)
    saved = energy_saved_kwh(pb, pa, None if after is None else (after.get("_exact") or {}).get(
        "it_energy_kwh", after.get("it_energy_kwh"))) if status == "ok" else None
    co2 = None if saved is None else t_co2(saved, grid_factor["t_co2_per_mwh"])
    change = {}
    for k in SIDE_FIGURES:
        if k == "coverage":
            continue
        vb, va = (None if f is None else f.get(k) for f in (before, after))
        change[k] = None if vb is None or va is None else va - vb
    if pb is not None and pa is not None:
        change["pue"] = float(pa - pb)
    return {"status": status, "reasons": reasons,
            "energy_saved_kwh": None if saved is None else float(saved),
            "energy_saved_t_co2": None if co2 is None else float(co2),
            "change": change, "grid_emission_factor": dict(grid_factor),
            "_exact": {"pue_before": pb, "pue_after": pa, "energy_saved_kwh": saved, "energy_saved_t_co2": co2}}


def statement_year(window_to: dt.date | None, period_first_day: dt.date) -> int:
    """The "上一年度" of the statement: the year before the application (the window's year), else before the period."""
    return (window_to.year if window_to is not None else period_first_day.year) - 1


def investment_for(rows: list[dict], year: int) -> dict | None:
    """The configured actual investment of ``year`` (``{year, amount_cny, source}``), or None."""
    return next((r for r in rows or [] if r["year"] == year), None)


def avg_cost_per_rack_cny(retrofit_cost_cny, in_use_physical_racks: int) -> Fraction | None:
    """Average retrofit cost per in-use physical rack [CNY/rack] (seed 001 二(二)2 平均每个在用物理机架改造成本)."""
    return ratio(retrofit_cost_cny, in_use_physical_racks) if retrofit_cost_cny is not None else None

