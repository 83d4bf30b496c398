"""Subsidy estimates (seed 001 二(二)2; seed 004 二(一)2; seed 000 第四条).

Chengdu cloud retrofit::

    per_rack  = min(per_rack_max, cost_share × retrofit_cost / in_use_physical_racks)
    subsidy   = min(total_max, per_rack × in_use_physical_racks)

Without a retrofit cost (or where the text gives only a ceiling per rack, as Baoding's and
the edge measure do) the per-rack ceiling is used and the figure is an **upper bound**.

Every step is exact (fractions of the decimal inputs) and printed so that it multiplies out
as printed: a figure that has no exact two-decimal form is printed as a fraction with its
rounded value beside it. Only the final amount is rounded, to the fen (0.01 CNY, half up).

Flags, kept apart: ``no_retrofit_cost`` (the formula needs a cost and none is given, so the
per-rack ceiling is used and the amount is an **upper bound**), ``ceiling_only`` (the text
sets only a ceiling per rack, also an upper bound), ``per_rack_capped`` (the per-rack ceiling
limited the per-rack amount) and ``capped`` (the total ceiling limited the amount).
"""
from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction

from dcmon.metrics.exact import to_fraction


def _cny(x: Fraction) -> str:
    """An exact amount as printed: two decimals when exact, else ``a/b (≈ x.xx)``."""
    if (x * 100).denominator == 1:
        return f"{float(x):,.2f}"
    return f"{x.numerator:,}/{x.denominator:,} (≈ {float(x):,.2f})"


def _fen(x: Fraction) -> float:
    return float((Decimal(x.numerator) / Decimal(x.denominator)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


def subsidy_estimate(in_use_physical_racks: int, per_rack_max_cny: float, total_max_cny: float,
                     retrofit_cost_cny: float | None = None, cost_share: float | None = None,
                     always_upper_bound: bool = False) -> dict:
    """Estimate [CNY] with every step, for the evidence report.

    Parameters
    ----------
    in_use_physical_racks : int
        In-service physical racks (在用物理机架) [racks].
    per_rack_max_cny, total_max_cny : float
        Ceilings per rack and in total [CNY].
    retrofit_cost_cny : float, optional
        Total retrofit cost [CNY]; with ``cost_share`` it sets the per-rack amount.
    """
    n = int(in_use_physical_racks)
    if n < 0:
        raise ValueError(f"in-use racks must be ≥ 0: {n}")
    # steps are data (numbers, exact texts); dcmon.terms.steps_text puts them into sentences
    steps = [{"step": "in_use_racks", "racks": n}]
    ceiling, total_max = to_fraction(per_rack_max_cny), to_fraction(total_max_cny)
    ceiling_only = bool(always_upper_bound)
    no_cost = False
    avg = share = None
    per_rack_capped = False
    if cost_share is not None and retrofit_cost_cny is not None and n > 0:
        cost, k = to_fraction(retrofit_cost_cny), to_fraction(cost_share)
        avg = cost / n
        share = k * avg
        per_rack = min(ceiling, share)
        per_rack_capped = share > ceiling
        steps.append({"step": "avg_cost", "retrofit_cost_cny": float(cost), "racks": n, "avg_cny": _cny(avg)})
        steps.append({"step": "cost_share", "cost_share": float(k), "share_cny": _cny(share),
                      "per_rack_max_cny": float(ceiling), "per_rack_cny": _cny(per_rack)})
    else:
        per_rack = ceiling
        if cost_share is not None:
            no_cost = True
            steps.append({"step": "no_cost", "per_rack_max_cny": float(ceiling)})
        else:
            steps.append({"step": "ceiling_only", "per_rack_max_cny": float(ceiling)})
    gross = per_rack * n
    total = min(total_max, gross)
    steps.append({"step": "total", "per_rack_cny": _cny(per_rack), "racks": n, "gross_cny": _cny(gross),
                  "total_max_cny": float(total_max), "subsidy_cny": _cny(total)})
    return {"subsidy_cny": _fen(total), "per_rack_cny": float(per_rack), "in_use_physical_racks": n,
            "capped": gross > total_max, "per_rack_capped": per_rack_capped,
            "no_retrofit_cost": no_cost, "ceiling_only": ceiling_only,
            "subsidy_is_upper_bound": no_cost or ceiling_only,
            "upper_bound_reason": "no_retrofit_cost" if no_cost else ("ceiling_only" if ceiling_only else None),
            "steps": steps, "retrofit_cost_cny": retrofit_cost_cny, "cost_share": cost_share,
            "avg_cost_per_rack_cny": None if avg is None else float(avg),
            "cost_share_per_rack_cny": None if share is None else float(share),
            "per_rack_max_cny": per_rack_max_cny, "total_max_cny": total_max_cny, "gross_cny": float(gross),
            "exact": {"per_rack_cny": _cny(per_rack), "gross_cny": _cny(gross), "subsidy_cny": _cny(total)}}
