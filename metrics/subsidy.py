"""Subsidy estimates (seed 001 二(二)2; seed 004 二(一)2; seed 000 第四条).

Chengdu cloud retrofit::

    per_rack  = min(per_rack_max, cost_share × retrofit_cost / in_use_physical_racks)
    subsidy   = min(total_max, per_rack × in_use_physical_racks)

Without a retrofit cost (or where the text gives only a ceiling per rack, as Baoding's and
the edge measure do) the per-rack ceiling is used and the figure is an **upper bound**.
"""
from __future__ import annotations


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
    steps = [f"in-use physical racks = {n}"]
    upper = always_upper_bound
    avg = share = None
    if cost_share is not None and retrofit_cost_cny is not None and n > 0:
        avg = retrofit_cost_cny / n
        share = cost_share * avg
        per_rack = min(per_rack_max_cny, share)
        steps.append(f"average retrofit cost per rack = {retrofit_cost_cny:,.2f} / {n} = {avg:,.2f} CNY")
        steps.append(f"{cost_share:.0%} of it = {share:,.2f} CNY; per rack = min({per_rack_max_cny:,.0f}, {share:,.2f}) = {per_rack:,.2f} CNY")
    else:
        per_rack = per_rack_max_cny
        if cost_share is not None:
            upper = True
            steps.append(f"no retrofit cost given: per rack taken at its ceiling {per_rack_max_cny:,.0f} CNY (upper bound)")
        else:
            steps.append(f"per rack at most {per_rack_max_cny:,.0f} CNY (ceiling; the text sets no formula)")
    gross = per_rack * n
    total = min(total_max_cny, gross)
    steps.append(f"{per_rack:,.2f} × {n} = {gross:,.2f} CNY; capped at {total_max_cny:,.0f} → {total:,.2f} CNY")
    return {"subsidy_cny": round(total, 2), "per_rack_cny": round(per_rack, 2), "in_use_physical_racks": n,
            "capped": gross > total_max_cny, "subsidy_is_upper_bound": upper, "steps": steps,
            "retrofit_cost_cny": retrofit_cost_cny, "cost_share": cost_share,
            "avg_cost_per_rack_cny": avg, "cost_share_per_rack_cny": share,
            "per_rack_max_cny": per_rack_max_cny, "total_max_cny": total_max_cny, "gross_cny": gross}
