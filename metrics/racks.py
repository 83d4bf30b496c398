"""Rack figures: standard racks, size class, occupancy rate, compute-function share.

All functions take an inventory DataFrame with columns ``rack_id, design_power_kw [kW],
function, status`` (the racks CSV, updated by telemetry; see :func:`inventory_at`).

References
----------
seed 003 annex 名词解释 §2 (standard rack = 2.5 kW), §3 (size classes), §8 (上架率 occupancy);
domain.md "Compute-function share" (not defined by the seeds: readings offered below).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import pandas as pd
from dcmon.metrics.exact import decide, ratio, to_fraction

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


@dataclass(frozen=True)
class RackCounts:
    """An inventory reduced to counts, from which every rack figure is a few sums.

    ``count[v, s, f]`` is the number of racks of design power ``powers[v]`` [kW] (exact, at its
    decimal value; a missing power counts as a rack of 0 kW, as :func:`exact_summary` always
    skipped it), status ``statuses[s]`` and function ``functions[f]``. Exact sums are integers
    over the common denominator of the distinct powers, so a 10 000-rack site costs one
    ``np.bincount`` and a handful of small integer dot products, and no float rounding enters.
    ``rack_id``/``function`` per rack are kept for the ``it_energy`` reading.
    """

    statuses: tuple
    functions: tuple
    power_units: tuple       # each distinct design power × ``unit_den``, a Python int
    unit_den: int            # common denominator of the distinct design powers
    count: np.ndarray        # int64 [powers, statuses, functions]
    frame: pd.DataFrame      # the inventory counted (read again only by the it_energy reading)

    def _mask(self, names: tuple, keep) -> np.ndarray:
        return np.array([keep(n) for n in names], dtype=bool)

    def racks(self, status=lambda s: True, function=lambda f: True) -> int:
        """Racks whose status and function pass the given tests."""
        return int(self.count[:, self._mask(self.statuses, status)][:, :, self._mask(self.functions, function)].sum())

    def design_kw(self, status=lambda s: True, function=lambda f: True) -> Fraction:
        """Σ design power [kW] of those racks, exact."""
        per_power = self.count[:, self._mask(self.statuses, status)][:, :, self._mask(self.functions, function)]
        per_power = per_power.sum(axis=(1, 2)).tolist()
        return Fraction(sum(u * n for u, n in zip(self.power_units, per_power)), self.unit_den)


def _exists(status) -> bool:
    return status != "decommissioned"


def _in_service(status) -> bool:
    return status == "in_service"


def _is_compute(function) -> bool:
    return function == "compute"


def rack_counts(inv) -> RackCounts:
    """The :class:`RackCounts` of an inventory DataFrame (as is when already counted)."""
    if isinstance(inv, RackCounts):
        return inv
    s_codes, statuses = _codes(inv["status"])
    f_codes, functions = _codes(inv["function"])
    dp = inv["design_power_kw"].to_numpy(dtype=np.float64, na_value=np.nan)
    powers, v_codes = np.unique(dp, return_inverse=True)    # NaN (at most one, last) skipped in sums as before
    exact = [Fraction(0) if np.isnan(x) else Fraction(repr(float(x))) for x in powers.tolist()]
    den = math.lcm(*(x.denominator for x in exact)) if exact else 1
    ns, nf = len(statuses), len(functions)
    cell = (v_codes.reshape(-1).astype(np.int64) * ns + s_codes) * nf + f_codes
    count = np.bincount(cell, minlength=len(powers) * ns * nf).reshape(len(powers), ns, nf)
    return RackCounts(statuses=statuses, functions=functions, power_units=tuple(int(x * den) for x in exact),
                      unit_den=den, count=count, frame=inv)


def _codes(column) -> tuple[np.ndarray, tuple]:
    """Small integer codes of a text column and the values they stand for (a missing value is None)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    arr = pa.array(column, type=pa.string(), from_pandas=True)
    enc = pc.dictionary_encode(arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr)
    values = tuple(enc.dictionary.to_pylist())
    idx = enc.indices
    if idx.null_count:     # missing status or function: a value of its own, as value_counts() left out
        return pc.fill_null(idx, len(values)).to_numpy().astype(np.int64), values + (None,)
    return idx.to_numpy(zero_copy_only=False).astype(np.int64), values


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


def occupancy_rate(inv) -> float | None:
    """Σ design power of in-service racks ÷ Σ design power of all existing racks [-] (seed 003 annex §8)."""
    x = exact_summary(inv)["occupancy_rate"]
    return None if x is None else float(x)


def compute_share(inv, reading: str = "design_power", rack_energy_kwh: pd.Series | None = None) -> float | None:
    """Compute-function share [-] under one of :data:`COMPUTE_SHARE_READINGS` (nearest float of :func:`compute_share_exact`)."""
    x = compute_share_exact(inv, reading, rack_energy_kwh)
    return None if x is None else float(x)


def compute_share_exact(inv, reading: str = "design_power",
                        rack_energy_kwh: pd.Series | None = None) -> Fraction | None:
    """Compute-function share [-] as an exact fraction of decimal design powers (or counts, or energies).

    ``inv``: an inventory DataFrame or its :class:`RackCounts`. ``rack_energy_kwh`` (indexed by
    rack_id) is needed for the ``it_energy`` reading; without it that reading is None
    (inconclusive). Rack energies are taken to the milliwatt-hour.
    """
    if reading not in COMPUTE_SHARE_READINGS:
        raise ValueError(f"compute-share reading must be one of {', '.join(COMPUTE_SHARE_READINGS)}: {reading!r}")
    c = rack_counts(inv)
    if reading == "design_power":
        return ratio(c.design_kw(_in_service, _is_compute), c.design_kw(_in_service))
    if reading == "rack_count":
        return ratio(c.racks(_in_service, _is_compute), c.racks(_in_service))
    if reading == "compute_storage":
        return ratio(c.design_kw(_in_service, _is_compute),
                     c.design_kw(_in_service, lambda f: f in ("compute", "storage")))
    if rack_energy_kwh is None or len(rack_energy_kwh) == 0:
        return None
    e = rack_energy_kwh.reindex(c.frame["rack_id"]).fillna(0.0).to_numpy()
    mwh = np.rint(e * 1_000_000).astype(np.int64)  # to the milliwatt-hour, as every energy
    return ratio(int(mwh[c.frame["function"].to_numpy() == "compute"].sum()), int(mwh.sum()))


def exact_summary(inv) -> dict:
    """The rack figures checks compare, as exact fractions of the decimal design powers.

    ``inv``: an inventory DataFrame or its :class:`RackCounts`.
    """
    c = rack_counts(inv)
    design, in_service = c.design_kw(_exists), c.design_kw(_in_service)
    physical = c.racks(_exists)
    return {"physical_racks": Fraction(physical), "in_service_racks": Fraction(c.racks(_in_service)),
            "standard_racks": design / _STANDARD_RACK_KW,
            "in_service_standard_racks": in_service / _STANDARD_RACK_KW,
            "design_it_power_kw": design, "in_service_design_power_kw": in_service,
            "compute_design_power_kw": c.design_kw(_in_service, _is_compute),
            "avg_design_power_per_rack_kw": ratio(design, physical),
            "occupancy_rate": ratio(in_service, design)}


def rack_summary(inv) -> dict:
    """Counts and design power of the inventory; every figure the policies need about racks.

    ``inv``: an inventory DataFrame or its :class:`RackCounts`. Each float is the nearest double
    of the exact figure (:func:`exact_summary`).
    """
    c = rack_counts(inv)
    x = exact_summary(c)
    by_status = c.count.sum(axis=(0, 2)).tolist()
    by_function = c.count[:, np.array([_in_service(s) for s in c.statuses], dtype=bool)].sum(axis=(0, 1)).tolist()

    def f(k):
        return None if x[k] is None else float(x[k])
    return {
        "physical_racks": int(x["physical_racks"]),
        "in_service_racks": int(x["in_service_racks"]),
        "decommissioned_racks": c.racks(lambda s: s == "decommissioned"),
        "standard_racks": f("standard_racks"),
        "in_service_standard_racks": f("in_service_standard_racks"),
        "size_class": size_class(x["standard_racks"]),
        "design_it_power_kw": f("design_it_power_kw"),
        "in_service_design_power_kw": f("in_service_design_power_kw"),
        "compute_design_power_kw": f("compute_design_power_kw"),
        "avg_design_power_per_rack_kw": f("avg_design_power_per_rack_kw"),
        "occupancy_rate": f("occupancy_rate"),
        # value_counts() left out missing values and empty groups: so do these
        "racks_by_status": dict(sorted((k, int(n)) for k, n in zip(c.statuses, by_status) if isinstance(k, str) and n)),
        "racks_by_function": dict(sorted((k, int(n)) for k, n in zip(c.functions, by_function)
                                         if isinstance(k, str) and n)),
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
        c = rack_counts(state)
        acc["existing_kw"] += w * c.design_kw(_exists)
        acc["in_service_kw"] += w * c.design_kw(_in_service)
        acc["compute_kw"] += w * c.design_kw(_in_service, _is_compute)
    exact = {"occupancy_rate": ratio(acc["in_service_kw"], acc["existing_kw"]),
             "compute_share": ratio(acc["compute_kw"], acc["in_service_kw"]),
             "standard_racks": acc["existing_kw"] / _STANDARD_RACK_KW}
    return {**{k: None if v is None else float(v) for k, v in exact.items()}, "exact": exact}
