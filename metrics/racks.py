"""Rack figures: standard racks, size class, occupancy rate, compute-function share.

All functions take an inventory DataFrame with columns ``rack_id, design_power_kw [kW],
function, status`` (the racks CSV, updated by telemetry; see :func:`inventory_at`).

References
----------
seed 003 annex 名词解释 §2 (standard rack = 2.5 kW), §3 (size classes), §8 (上架率 occupancy);
domain.md "Compute-function share" (not defined by the seeds: readings offered below).
"""
from __future__ import annotations

from fractions import Fraction

import numpy as np
import pandas as pd
from dcmon.metrics.exact import decide, exact_sum, ratio, to_fraction

STANDARD_RACK_KW = 2.5  # seed 003 annex §2: 以功率2.5千瓦为一个标准机架
_STANDARD_RACK_KW = Fraction(5, 2)
SIZE_CLASSES = (("hyperscale", 10_000), ("large", 3_000), ("small_medium", 100), ("micro", 0))
COMPUTE_SHARE_READINGS = {
    "design_power": "design power of in-service compute racks ÷ design power of all in-service racks",
    "rack_count": "in-service compute racks ÷ all in-service racks (physical count)",
    "it_energy": "measured energy of compute racks ÷ measured energy of all racks",
    "compute_storage": "design power of in-service compute racks ÷ in-service compute + storage racks",
}
RACK_BASES = {"standard": "standard racks (Σ design power ÷ 2.5 kW)", "physical": "physical racks (count)"}


def existing(inv: pd.DataFrame) -> pd.DataFrame:
    """Racks that exist: every status but ``decommissioned``."""
    return inv[inv["status"] != "decommissioned"]


def standard_racks(design_power_kw) -> float:
    """Standard racks [-] = Σ design_power_kw [kW] / 2.5 kW (seed 003 annex §2)."""
    return float(np.nansum(np.asarray(design_power_kw, dtype=float)) / STANDARD_RACK_KW)


def size_class(std_racks) -> str:
    """Size class by standard racks (seed 003 annex §3), decided exactly; below 100 the seed's edge site: ``micro``."""
    if to_fraction(std_racks) is None:
        raise ValueError(f"standard racks must be a number: {std_racks!r}")
    for name, lower in SIZE_CLASSES:
        if decide(std_racks, ">=", lower):
            return name
    return "micro"


def occupancy_rate(inv: pd.DataFrame) -> float | None:
    """Σ design power of in-service racks ÷ Σ design power of all existing racks [-] (seed 003 annex §8)."""
    x = exact_summary(inv)["occupancy_rate"]
    return None if x is None else float(x)


def compute_share(inv: pd.DataFrame, reading: str = "design_power", rack_energy_kwh: pd.Series | None = None) -> float | None:
    """Compute-function share [-] under one of :data:`COMPUTE_SHARE_READINGS` (nearest float of :func:`compute_share_exact`)."""
    x = compute_share_exact(inv, reading, rack_energy_kwh)
    return None if x is None else float(x)


def compute_share_exact(inv: pd.DataFrame, reading: str = "design_power",
                        rack_energy_kwh: pd.Series | None = None) -> Fraction | None:
    """Compute-function share [-] as an exact fraction of decimal design powers (or counts, or energies).

    ``rack_energy_kwh`` (indexed by rack_id) is needed for the ``it_energy`` reading; without
    it that reading is None (inconclusive). Rack energies are taken to the milliwatt-hour.
    """
    if reading not in COMPUTE_SHARE_READINGS:
        raise ValueError(f"compute-share reading must be one of {', '.join(COMPUTE_SHARE_READINGS)}: {reading!r}")
    ins = inv[inv["status"] == "in_service"]
    comp = ins["function"] == "compute"
    if reading == "design_power":
        return ratio(exact_sum(ins.loc[comp, "design_power_kw"]), exact_sum(ins["design_power_kw"]))
    if reading == "rack_count":
        return ratio(int(comp.sum()), len(ins))
    if reading == "compute_storage":
        cs = ins["function"].isin(["compute", "storage"])
        return ratio(exact_sum(ins.loc[comp, "design_power_kw"]), exact_sum(ins.loc[cs, "design_power_kw"]))
    if rack_energy_kwh is None or len(rack_energy_kwh) == 0:
        return None
    e = rack_energy_kwh.reindex(inv["rack_id"]).fillna(0.0).to_numpy()
    mwh = np.rint(e * 1_000_000).astype(np.int64)  # to the milliwatt-hour, as every energy
    fn = inv["function"].to_numpy()
    return ratio(int(mwh[fn == "compute"].sum()), int(mwh.sum()))


def exact_summary(inv: pd.DataFrame) -> dict:
    """The rack figures checks compare, as exact fractions of the decimal design powers."""
    ex = existing(inv)
    ins = ex[ex["status"] == "in_service"]
    design = exact_sum(ex["design_power_kw"])
    in_service = exact_sum(ins["design_power_kw"])
    return {"physical_racks": Fraction(len(ex)), "in_service_racks": Fraction(len(ins)),
            "standard_racks": design / _STANDARD_RACK_KW,
            "in_service_standard_racks": in_service / _STANDARD_RACK_KW,
            "design_it_power_kw": design, "in_service_design_power_kw": in_service,
            "compute_design_power_kw": exact_sum(ins.loc[ins["function"] == "compute", "design_power_kw"]),
            "avg_design_power_per_rack_kw": ratio(design, len(ex)),
            "occupancy_rate": ratio(in_service, design)}


def rack_summary(inv: pd.DataFrame) -> dict:
    """Counts and design power of the inventory; every figure the policies need about racks.

    Each float is the nearest double of the exact figure (:func:`exact_summary`).
    """
    x = exact_summary(inv)
    ex = existing(inv)
    ins = ex[ex["status"] == "in_service"]

    def f(k):
        return None if x[k] is None else float(x[k])
    return {
        "physical_racks": int(len(ex)),
        "in_service_racks": int(len(ins)),
        "decommissioned_racks": int((inv["status"] == "decommissioned").sum()),
        "standard_racks": f("standard_racks"),
        "in_service_standard_racks": f("in_service_standard_racks"),
        "size_class": size_class(x["standard_racks"]),
        "design_it_power_kw": f("design_it_power_kw"),
        "in_service_design_power_kw": f("in_service_design_power_kw"),
        "compute_design_power_kw": f("compute_design_power_kw"),
        "avg_design_power_per_rack_kw": f("avg_design_power_per_rack_kw"),
        "occupancy_rate": f("occupancy_rate"),
        "racks_by_status": {k: int(v) for k, v in inv["status"].value_counts().sort_index().items()},
        "racks_by_function": {k: int(v) for k, v in ins["function"].value_counts().sort_index().items()},
    }


def racks_by(inv: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Existing racks grouped by ``keys``: racks [-], design_power_kw [kW], standard_racks [-] per group."""
    ex = existing(inv)
    g = ex.groupby(keys, sort=True)["design_power_kw"]
    out = pd.DataFrame({"racks": g.size(), "design_power_kw": g.sum()})
    out["standard_racks"] = out["design_power_kw"] / STANDARD_RACK_KW
    return out.reset_index()


def apply_changes(baseline: pd.DataFrame, changes: pd.DataFrame) -> pd.DataFrame:
    """Inventory after telemetry changes: the latest non-null status, function and design power per rack.

    ``changes`` has columns rack_id (``source_id``), ts, status, function, design_power_kw,
    with nulls where a reading did not change that field.
    """
    inv = baseline.copy()
    if changes is None or len(changes) == 0:
        return inv
    ch = changes.sort_values(["source_id", "ts"], kind="stable")
    pos = pd.Series(np.arange(len(inv)), index=inv["rack_id"])
    for col in ("status", "function", "design_power_kw"):
        last = ch.dropna(subset=[col]).groupby("source_id")[col].last()
        last = last[last.index.isin(pos.index)]
        if len(last):
            inv.iloc[pos[last.index].to_numpy(), inv.columns.get_loc(col)] = last.to_numpy()
    return inv


def time_weighted_summary(baseline: pd.DataFrame, changes: pd.DataFrame, start_ms: int, end_ms: int) -> dict:
    """Occupancy and compute share weighted by the time each rack spent in each state in [start, end).

    State before the first change inside the period is the state as of ``start``.
    """
    if end_ms <= start_ms:
        raise ValueError("period must have positive length")
    ch = changes if changes is not None else pd.DataFrame(columns=["source_id", "ts", "status", "function", "design_power_kw"])
    before = ch[ch["ts"] < start_ms] if len(ch) else ch
    inside = ch[(ch["ts"] >= start_ms) & (ch["ts"] < end_ms)] if len(ch) else ch
    state = apply_changes(baseline, before)
    # boundaries where anything changes
    cuts = sorted({start_ms, end_ms, *[int(x) for x in inside["ts"]]}) if len(inside) else [start_ms, end_ms]
    acc = {"in_service_kw": Fraction(0), "existing_kw": Fraction(0), "compute_kw": Fraction(0)}
    for a, b in zip(cuts[:-1], cuts[1:]):
        if len(inside):
            state = apply_changes(state, inside[inside["ts"] == a]) if a != start_ms else state
        w = Fraction(b - a, end_ms - start_ms)  # exact time weights
        ex = existing(state)
        ins = ex[ex["status"] == "in_service"]
        acc["existing_kw"] += w * exact_sum(ex["design_power_kw"])
        acc["in_service_kw"] += w * exact_sum(ins["design_power_kw"])
        acc["compute_kw"] += w * exact_sum(ins.loc[ins["function"] == "compute", "design_power_kw"])
    exact = {"occupancy_rate": ratio(acc["in_service_kw"], acc["existing_kw"]),
             "compute_share": ratio(acc["compute_kw"], acc["in_service_kw"]),
             "standard_racks": acc["existing_kw"] / _STANDARD_RACK_KW}
    return {**{k: None if v is None else float(v) for k, v in exact.items()}, "exact": exact}
