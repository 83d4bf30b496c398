"""A facility's figures for a period, assembled from the store: energy by role, PUE, rack
inventory (standard racks, occupancy, compute share), each with its basis and coverage.

No policy here: :mod:`.checks` compares these figures with the profiles' thresholds. The exact
fractions decisions use travel in ``_exact`` (popped before output).
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from dcmon.metrics import pue as pue_mod
from dcmon.metrics import racks as racks_mod
from dcmon.metrics.exact import to_fraction
from dcmon.metrics.options import Options
from dcmon.metrics.streaming import bin_edges, meters_params, rack_params, source_energy

from dcmon.periods import Period, zone


def inventory_at(store, facility, end: pd.Timestamp) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Rack inventory as of ``end`` (CSV baseline + telemetry changes before it), and the changes."""
    t = store.inventory_changes(facility.id, end,
                                columns=["source_id", "ts", "status", "function", "design_power_kw"])
    if t.num_rows:
        t = t.set_column(t.schema.get_field_index("ts"), "ts", pc.cast(t.column("ts"), pa.int64()))
        changes = t.to_pandas()
    else:
        changes = pd.DataFrame(columns=["source_id", "ts", "status", "function", "design_power_kw"])
    return racks_mod.apply_changes(facility.racks, changes), changes


def rack_coverage_weights(inventory: pd.DataFrame, rack_ids: list[str]) -> np.ndarray:
    """Each rack's weight in the IT coverage [kW]: its design power when in service, else 0."""
    by_id = inventory.set_index("rack_id")
    ins = by_id["status"].reindex(rack_ids).to_numpy() == "in_service"
    return by_id["design_power_kw"].reindex(rack_ids).to_numpy(dtype=float) * ins


def rack_coverage(coverage: np.ndarray, weights_kw: np.ndarray) -> float:
    """IT-energy coverage of rack-metered IT [-]: per-rack coverage weighted by design power over
    the in-service racks (:func:`rack_coverage_weights`), 0 without any.

    The one rule for every rack coverage (period figures, live PUE, quarter to date): racks count
    by design power, the basis of standard racks and occupancy (domain: seed 003 annex), so a
    silent 10 kW rack weighs four times a 2.5 kW one and a vacant or decommissioned rack, which
    draws nothing, does not lower it.
    """
    total = float(weights_kw.sum())
    return float((coverage * weights_kw).sum() / total) if total > 0 else 0.0


@dataclass
class EnergyFigures:
    facility_energy_kwh: float | None
    it_energy_kwh: float | None
    facility_coverage: float
    it_coverage: float
    by_role_kwh: dict
    meters: list[dict]
    bins: pd.DataFrame | None
    events: list[dict]
    event_counts: dict
    late_readings: int
    rack_energy_kwh: pd.Series | None
    rack_coverage: float | None
    facility_energy_exact: Fraction | None = None   # [kWh], what decisions use
    it_energy_exact: Fraction | None = None         # [kWh]


def energy_figures(store, facility, period: Period, bins: str | None = None, need_racks: bool = False,
                   inventory: pd.DataFrame | None = None) -> EnergyFigures:
    """Facility and IT energy with coverage (and optionally per-day or per-month bins)."""
    edges, labels = bin_edges(period, facility.timezone, bins)
    meters = facility.meters
    # one bin (no --bins): the period's energy can come from the daily rollups in the facility's days
    tz = facility.timezone if bins is None else None
    ms = source_energy(store, facility.id, "meter", [m.id for m in meters], meters_params(facility),
                       np.arange(len(meters)), len(meters), edges, timezone=tz)
    roles = np.array([m.role for m in meters])
    by_role = {r: float(ms.energy_kwh[roles == r].sum()) for r in dict.fromkeys(roles)}
    meter_rows = [{"meter_id": m.id, "role": m.role, "energy_kwh": float(ms.energy_kwh[i]),
                   "coverage": float(ms.coverage[i]), "readings": int(ms.readings[i]), "method": ms.method[i],
                   "last_reading": _iso(ms.last_ts[i]), "last_value": _num(ms.last_value[i])}
                  for i, m in enumerate(meters)]
    fac_idx = np.nonzero(roles == "facility")[0]
    it_idx = np.nonzero(roles == "it")[0]
    facility_exact = ms.exact_kwh(fac_idx) if len(fac_idx) else None
    facility_kwh = float(facility_exact) if len(fac_idx) else None
    facility_cov = float(ms.coverage[fac_idx].min()) if len(fac_idx) else 0.0
    bin_fac = ms.group_bin_energy_kwh[fac_idx].sum(axis=0)
    bin_fac_cov = ms.group_bin_coverage[fac_idx].min(axis=0) if len(fac_idx) else np.zeros(len(labels))
    events, counts, late = list(ms.events), dict(ms.event_counts), ms.late_readings
    rack_energy = rack_cov = None
    if facility.it_energy_from == "racks" or need_racks:
        inv = inventory if inventory is not None else facility.racks
        rack_ids = list(facility.racks["rack_id"])
        w = rack_coverage_weights(inv, rack_ids)
        rs = source_energy(store, facility.id, "rack", rack_ids, rack_params(facility),
                           np.zeros(len(rack_ids), dtype=np.int64), 1, edges, coverage_weights=w, timezone=tz)
        rack_energy = pd.Series(rs.energy_kwh, index=rack_ids)
        rack_cov = rack_coverage(rs.coverage, w)
        for k, v in rs.event_counts.items():
            counts[f"rack_{k}"] = counts.get(f"rack_{k}", 0) + v
        events += [dict(e, kind="rack") for e in rs.events[:50]]
        late += rs.late_readings
    if facility.it_energy_from == "racks":
        it_exact = rs.exact_kwh(np.arange(len(rack_ids)))
        it_kwh = float(it_exact)
        it_cov = rack_cov
        bin_it = rs.group_bin_energy_kwh[0]
        bin_it_cov = rs.group_bin_coverage[0]
        by_role["it"] = it_kwh
    else:
        it_exact = ms.exact_kwh(it_idx) if len(it_idx) else None
        it_kwh = None if it_exact is None else float(it_exact)
        it_cov = float(ms.coverage[it_idx].min()) if len(it_idx) else 0.0
        bin_it = ms.group_bin_energy_kwh[it_idx].sum(axis=0)
        bin_it_cov = ms.group_bin_coverage[it_idx].min(axis=0) if len(it_idx) else np.zeros(len(labels))
    table = None
    if bins:
        # bins to the milliwatt-hour, the resolution of every energy; a bin's PUE is the exact ratio of those
        bin_fac, bin_it = np.round(bin_fac, 6), np.round(bin_it, 6)
        pue_bins = np.array([float(Fraction(repr(float(a))) / Fraction(repr(float(b)))) if b > 0 else np.nan
                             for a, b in zip(bin_fac, bin_it)])
        table = pd.DataFrame({"bin": labels, "facility_energy_kwh": bin_fac, "it_energy_kwh": bin_it,
                              "pue": pue_bins, "coverage": np.minimum(bin_fac_cov, bin_it_cov)})
        for i, m in enumerate(meters):
            if m.role not in ("facility", "it"):
                table[f"{m.role}:{m.id}_kwh"] = ms.group_bin_energy_kwh[i]
    events.sort(key=lambda e: e["ts"])
    return EnergyFigures(facility_energy_kwh=facility_kwh, it_energy_kwh=it_kwh, facility_coverage=facility_cov,
                         it_coverage=it_cov, by_role_kwh=by_role, meters=meter_rows, bins=table, events=events,
                         event_counts=counts, late_readings=late, rack_energy_kwh=rack_energy, rack_coverage=rack_cov,
                         facility_energy_exact=facility_exact, it_energy_exact=it_exact)


def _iso(ms) -> str | None:
    return None if ms is None or ms < 0 else pd.Timestamp(int(ms), unit="ms", tz="UTC").isoformat()


def _num(x):
    return None if x is None or (isinstance(x, float) and np.isnan(x)) else float(x)


def facility_figures(store, facility, period: Period, options: Options | None = None) -> dict:
    """Every figure of one facility for ``period``, with its basis and coverage (no policy checks)."""
    options = options or Options()
    start, end = period.utc_bounds(facility.timezone)
    inv, changes = inventory_at(store, facility, end)
    counts = racks_mod.rack_counts(inv)   # every rack figure below is a few sums of these counts
    summary = racks_mod.rack_summary(counts)
    need_racks = options.compute_share_reading == "it_energy"
    en = energy_figures(store, facility, period, options.bins, need_racks=need_racks, inventory=inv)
    exact = racks_mod.exact_summary(counts)
    exact["pue"] = pue_mod.pue_exact(en.facility_energy_exact, en.it_energy_exact)
    exact["facility_energy_kwh"], exact["it_energy_kwh"] = en.facility_energy_exact, en.it_energy_exact
    p = None if exact["pue"] is None else float(exact["pue"])
    coverage = min(en.facility_coverage, en.it_coverage)
    if options.inventory == "time_weighted":
        tw = racks_mod.time_weighted_summary(facility.racks, changes, start.value // 10**6, end.value // 10**6)
        exact["occupancy_rate"], exact["compute_share"] = tw["exact"]["occupancy_rate"], tw["exact"]["compute_share"]
        if options.compute_share_reading != "design_power":
            exact["compute_share"] = racks_mod.compute_share_exact(counts, options.compute_share_reading,
                                                                   en.rack_energy_kwh)
    else:
        exact["compute_share"] = racks_mod.compute_share_exact(counts, options.compute_share_reading, en.rack_energy_kwh)
    if facility.annual_terminals_served is not None:
        exact["annual_terminals_served"] = to_fraction(facility.annual_terminals_served)
    occupancy = None if exact["occupancy_rate"] is None else float(exact["occupancy_rate"])
    cshare = None if exact["compute_share"] is None else float(exact["compute_share"])
    prev_end = pd.Timestamp(dt.datetime.combine(period.previous_year_end() + dt.timedelta(days=1), dt.time(),
                                                zone(facility.timezone))).tz_convert("UTC")
    # the prior year ends before the period starts: the changes already read cover it
    prev_ms = prev_end.value // 10**6
    changes_prev = changes[changes["ts"] < prev_ms] if len(changes) else changes
    # without changes before it, the prior year's inventory is the one already counted
    counts_prev = racks_mod.rack_counts(racks_mod.apply_changes(facility.racks, changes_prev)) \
        if len(changes_prev) else racks_mod.rack_counts(facility.racks) if len(changes) else counts
    out = {
        "facility_id": facility.id, "name": facility.name, "name_en": facility.name_en,
        "operator": facility.operator, "credit_code": facility.credit_code, "city": facility.city,
        "district": facility.district, "kind": facility.kind, "timezone": facility.timezone,
        "cluster_start_area": facility.cluster_start_area,
        "commissioned": facility.commissioned.isoformat() if facility.commissioned else None,
        "utc_from": start.isoformat(), "utc_to": end.isoformat(),
        "pue": p, "pue_category": facility.pue_category,
        "pue_category_text": pue_mod.PUE_CATEGORIES[facility.pue_category],
        "pue_label": pue_mod.label(period.is_annual),
        "facility_energy_kwh": en.facility_energy_kwh, "it_energy_kwh": en.it_energy_kwh,
        "it_energy_from": facility.it_energy_from,
        "coverage": coverage, "facility_energy_coverage": en.facility_coverage, "it_energy_coverage": en.it_coverage,
        **{k: summary[k] for k in ("physical_racks", "in_service_racks", "standard_racks", "size_class")},
        "occupancy_rate": occupancy, "compute_share": cshare,
        "compute_share_prior_year_end": racks_mod.compute_share(counts_prev, options.compute_share_reading
                                                                 if options.compute_share_reading != "it_energy" else "design_power"),
        "prior_year_end": period.previous_year_end().isoformat(),
        **{k: summary[k] for k in ("decommissioned_racks", "in_service_standard_racks", "design_it_power_kw",
                                    "in_service_design_power_kw", "compute_design_power_kw",
                                    "avg_design_power_per_rack_kw", "racks_by_status", "racks_by_function")},
        "energy_by_role_kwh": en.by_role_kwh, "meters": en.meters,
        "data_quality": {"events": en.event_counts, "late_readings": en.late_readings,
                         "event_samples": en.events[:100], "rack_energy_coverage": en.rack_coverage},
        "annual_terminals_served": facility.annual_terminals_served,
        "retrofit": {"completed": facility.retrofit_completed.isoformat() if facility.retrofit_completed else None,
                     "cost_cny": facility.retrofit_cost_cny},
        "inventory_changes_in_period": int(((changes["ts"] >= start.value // 10**6) & (changes["ts"] < end.value // 10**6)).sum())
        if len(changes) else 0,
    }
    if en.bins is not None:
        out["bins"] = en.bins
    if en.rack_energy_kwh is not None:
        out["_rack_energy_kwh"] = en.rack_energy_kwh
    out["_exact"] = exact  # exact fractions of the figures checks compare (popped before output)
    return out


def aggregate(rows: list[dict]) -> dict:
    """Energy-weighted PUE and design-power occupancy of facilities, exact (seed 003 一(二))."""
    fe = [(r.get("_exact") or {}).get("facility_energy_kwh") for r in rows]
    ie = [(r.get("_exact") or {}).get("it_energy_kwh") for r in rows]
    both = [(a, b) for a, b in zip(fe, ie) if a is not None and b is not None and b > 0]
    pue_x = pue_mod.pue_exact(sum((a for a, _ in both), Fraction(0)), sum((b for _, b in both), Fraction(0))) \
        if both else None
    design = sum(((r.get("_exact") or {}).get("design_it_power_kw") or 0 for r in rows), Fraction(0))
    ins = sum(((r.get("_exact") or {}).get("in_service_design_power_kw") or 0 for r in rows), Fraction(0))
    occ_x = ins / design if design > 0 else None
    covs = [r["coverage"] for r in rows if r.get("pue") is not None]
    return {"facilities": len(rows), "pue": None if pue_x is None else float(pue_x),
            "occupancy_rate": None if occ_x is None else float(occ_x),
            "facility_energy_kwh": float(sum((a for a in fe if a), Fraction(0))),
            "it_energy_kwh": float(sum((b for b in ie if b), Fraction(0))),
            "coverage": min(covs) if covs else 0.0,
            "facilities_without_pue": [r["facility_id"] for r in rows if r.get("pue") is None],
            "_exact": {"pue": pue_x, "occupancy_rate": occ_x}}
