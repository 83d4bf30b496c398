"""From registry + store + period to the figures every output shares.

``dcmon evaluate``, the dashboard, the quarterly export and the evidence report all call
:func:`evaluate` (or :func:`facility_figures`), so they never disagree. Arithmetic lives in
the pure modules (:mod:`.energy`, :mod:`.pue`, :mod:`.racks`, :mod:`.policy`, :mod:`.subsidy`);
this module reads data and assembles results with their period, basis and coverage.
"""
from __future__ import annotations

import datetime as dt
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from dcmon.metrics import pue as pue_mod
from dcmon.metrics import racks as racks_mod
from dcmon.metrics.energy import EnergyAccumulator, SourceParams, exact_kwh, merge_results
from dcmon.metrics.exact import figure_text, fraction_text, to_fraction
from dcmon.metrics.policy import (
    DEFAULT_MIN_COVERAGE,
    OP_WORDS,
    Profile,
    compare,
    condition_holds,
    grade,
    load_profiles,
    select_profiles,
)
from dcmon.metrics.subsidy import subsidy_estimate
from dcmon.readings import SCHEMA as READING_SCHEMA

from dcmon.periods import Period, zone

ENERGY_COLUMNS = ["source_id", "ts", "energy_kwh", "power_kw", "received_at"]


@dataclass
class Options:
    """The readings a user can choose; every output prints the ones used."""

    rack_basis: str = "standard"              # standard | physical
    compute_share_reading: str = "design_power"
    inventory: str = "end_of_period"          # end_of_period | time_weighted
    min_coverage: float = DEFAULT_MIN_COVERAGE
    bins: str | None = None                   # None | day | month: adds a per-bin table

    def __post_init__(self):
        if self.rack_basis not in racks_mod.RACK_BASES:
            raise ValueError(f"rack basis must be standard or physical: {self.rack_basis!r}")
        if self.compute_share_reading not in racks_mod.COMPUTE_SHARE_READINGS:
            raise ValueError(f"compute-share reading must be one of "
                             f"{', '.join(racks_mod.COMPUTE_SHARE_READINGS)}: {self.compute_share_reading!r}")
        if self.inventory not in ("end_of_period", "time_weighted"):
            raise ValueError(f"inventory must be end_of_period or time_weighted: {self.inventory!r}")
        if not 0 <= self.min_coverage <= 1:
            raise ValueError(f"minimum coverage must be between 0 and 1: {self.min_coverage!r}")
        if self.bins not in (None, "day", "month"):
            raise ValueError(f"bins must be day or month: {self.bins!r}")

    def to_json(self) -> dict:
        return {"rack_basis": self.rack_basis, "rack_basis_text": racks_mod.RACK_BASES[self.rack_basis],
                "compute_share_reading": self.compute_share_reading,
                "compute_share_text": racks_mod.COMPUTE_SHARE_READINGS[self.compute_share_reading],
                "inventory": self.inventory, "min_coverage": self.min_coverage}


# --------------------------------------------------------------------------- energy
def bin_edges(period: Period, timezone: str, bins: str | None) -> tuple[np.ndarray, list[str]]:
    """UTC edges [ms] of the local days or months of ``period``, and their labels."""
    start, end = period.utc_bounds(timezone)
    if bins is None:
        return np.array([start.value // 10**6, end.value // 10**6], dtype=np.int64), [period.to_json()["label"]]
    tz = zone(timezone)
    labels, edges = [], []
    d = period.first_day
    while d <= period.last_day:
        edges.append(pd.Timestamp(dt.datetime.combine(d, dt.time(), tz)).value // 10**6)
        labels.append(d.isoformat() if bins == "day" else d.strftime("%Y-%m"))
        if bins == "day":
            d += dt.timedelta(days=1)
        else:
            d = dt.date(d.year + (d.month == 12), d.month % 12 + 1, 1)
    edges.append(end.value // 10**6)
    return np.array(edges, dtype=np.int64), labels


@dataclass
class SourceSet:
    """Energy of a set of sources, chosen per source from its counter or its power readings."""

    sources: list[str]
    energy_kwh: np.ndarray
    coverage: np.ndarray
    readings: np.ndarray
    method: list[str]
    group_bin_energy_kwh: np.ndarray
    group_bin_coverage: np.ndarray
    last_ts: np.ndarray
    last_value: np.ndarray
    events: list[dict] = field(default_factory=list)
    event_counts: dict = field(default_factory=dict)
    late_readings: int = 0
    energy_mwh: np.ndarray | None = None                      # whole milliwatt-hours per source [mWh]
    energy_frac_mwh: dict = field(default_factory=dict)       # exact fractional parts per source [mWh]

    def exact_kwh(self, idx) -> Fraction:
        """Exact energy [kWh] of the sources at positions ``idx`` (the figure decisions use)."""
        idx = np.asarray(idx, dtype=np.int64)
        return exact_kwh(int(self.energy_mwh[idx].sum()), sum((self.energy_frac_mwh.get(int(i), 0) for i in idx), 0))


PARALLEL_MIN_SOURCES = 500  # split larger source sets across threads (one per core, at most 2 here)
# Counter readings bound a period however far away they are; the search for them goes month by
# month, nearest first, and stops after this many months (three years) on each side.
EDGE_SEARCH_MONTHS = 37


def edge_readings(store, facility_id: str, kind: str, sources: list[str], columns: list[str], *,
                  before_ms: int | None = None, after_ms: int | None = None) -> pa.Table:
    """Each source's last reading before ``before_ms`` (or first at or after ``after_ms``).

    Reads UTC calendar months nearest first, only the sources still missing, and stops when
    every source has its reading or after :data:`EDGE_SEARCH_MONTHS` months: a bounded read.
    Returns at most one row per source, sorted by (source_id, ts).
    """
    want = set(sources)
    found = []
    if not want:
        return pa.table({c: pa.array([], READING_SCHEMA.field(c).type) for c in columns})
    edge = pd.Timestamp(before_ms if before_ms is not None else after_ms, unit="ms", tz="UTC")
    month = edge.tz_localize(None).to_period("M")
    for k in range(EDGE_SEARCH_MONTHS):
        m = month - k if before_ms is not None else month + k
        lo, hi = m.start_time.tz_localize("UTC"), (m + 1).start_time.tz_localize("UTC")
        if before_ms is not None:
            hi = min(hi, edge)
        else:
            lo = max(lo, edge)
        t = store.read(facility_id, kind, lo, hi, sources=sorted(want), columns=columns)
        t = t.filter(pc.or_(pc.is_valid(t.column("energy_kwh")), pc.is_valid(t.column("power_kw")))) if t.num_rows else t
        if t.num_rows:
            df = t.to_pandas()
            pick = df.groupby("source_id", sort=False).tail(1) if before_ms is not None \
                else df.groupby("source_id", sort=False).head(1)
            found.append(pick)
            want -= set(pick["source_id"])
        if not want:
            break
    if not found:
        return pa.table({c: pa.array([], READING_SCHEMA.field(c).type) for c in columns})
    df = pd.concat(found).sort_values(["source_id", "ts"], kind="stable")
    return pa.Table.from_pandas(df[columns], schema=pa.schema([pa.field(c, READING_SCHEMA.field(c).type) for c in columns]),
                                preserve_index=False)


def source_energy(store, facility_id: str, kind: str, sources: list[str], params: list[SourceParams],
                  groups: np.ndarray, n_groups: int, edges: np.ndarray, workers: int | None = None,
                  coverage_weights: np.ndarray | None = None, search_edges: bool | None = None) -> SourceSet:
    """Stream one facility's readings of ``kind`` through counter and power accumulators.

    ``search_edges`` (default: for meters) looks for each source's nearest readings outside
    the read window (:func:`edge_readings`); the live PUE does without it.

    Large source sets are split by source id into ``workers`` ranges, each streamed by its own
    thread (files are sorted by source, so each thread reads only its row groups and keeps
    per-source time order); the disjoint results are added.
    """
    margin = max((p.max_gap_ms for p in params), default=0)
    start = pd.Timestamp(int(edges[0]) - margin, unit="ms", tz="UTC")
    end = pd.Timestamp(int(edges[-1]) + margin, unit="ms", tz="UTC")
    # late arrivals are reported for meters; for racks they would cost a column read per rack reading
    late = kind == "meter"
    columns = ENERGY_COLUMNS if late else [c for c in ENERGY_COLUMNS if c != "received_at"]
    # Meters: the last reading before the period and the first after it bound each meter's
    # energy however far away they are (a counter's increase across a gap is still energy).
    # Racks report power, whose integration never bridges a gap longer than max_gap_s: the
    # read margin (the largest max_gap_s) is enough for them.
    if search_edges is None:
        search_edges = kind == "meter"
    before = None
    if search_edges:
        near = store.read(facility_id, kind, start, pd.Timestamp(int(edges[0]) + 1, unit="ms", tz="UTC"),
                          columns=["source_id", "ts", "energy_kwh", "power_kw"])
        near = near.filter(pc.or_(pc.is_valid(near.column("energy_kwh")), pc.is_valid(near.column("power_kw")))) \
            if near.num_rows else near
        have = set(near.column("source_id").to_pylist()) if near.num_rows else set()
        before = edge_readings(store, facility_id, kind, [s for s in sources if s not in have], columns,
                               before_ms=start.value // 10**6)
    if workers is None:
        workers = min(2, os.cpu_count() or 1) if len(sources) >= PARALLEL_MIN_SOURCES else 1
    ordered = sorted(sources)
    cuts = [None] + [ordered[len(ordered) * k // workers] for k in range(1, workers)] + [None]
    ranges = list(zip(cuts[:-1], cuts[1:]))

    def run(source_range):
        acc_c = EnergyAccumulator(sources, params, groups, n_groups, edges, "counter", detect_late=late,
                                  coverage_weights=coverage_weights)
        acc_p = EnergyAccumulator(sources, params, groups, n_groups, edges, "power", detect_late=late,
                                  coverage_weights=coverage_weights)

        def feed(batch):
            acc_c.feed(batch)
            e = batch.column("energy_kwh")
            if e.null_count:
                acc_p.feed(batch.filter(pc.is_null(e)) if e.null_count < len(e) else batch)
        if before is not None and before.num_rows:
            feed(_in_range(before, source_range))
        for batch in store.iter_sorted(facility_id, kind, start, end, columns, source_range=source_range,
                                       only_if_null={"power_kw": "energy_kwh"}):
            feed(batch)
        if search_edges:
            last = np.maximum(acc_c.last_t, acc_p.last_t)
            lo, hi = source_range
            missing = [s for i, s in enumerate(sources) if 0 <= last[i] < int(edges[-1])
                       and (lo is None or s >= lo) and (hi is None or s < hi)]
            after = edge_readings(store, facility_id, kind, missing, columns, after_ms=end.value // 10**6)
            if after.num_rows:
                feed(after)
        return acc_c.result(), acc_p.result()

    if len(ranges) == 1:
        rc, rp = run(ranges[0])
    else:
        with ThreadPoolExecutor(max_workers=len(ranges), thread_name_prefix="dcmon-energy") as ex:
            parts = list(ex.map(run, ranges))
        rc = merge_results([p[0] for p in parts])
        rp = merge_results([p[1] for p in parts])
    return _combine(rc, rp, sources, groups, n_groups, edges, coverage_weights)


def _in_range(t: pa.Table, source_range) -> pa.Table:
    lo, hi = source_range
    if lo is not None:
        t = t.filter(pc.greater_equal(t.column("source_id"), lo))
    if hi is not None:
        t = t.filter(pc.less(t.column("source_id"), hi))
    return t


def _combine(rc, rp, sources, groups, n_groups, edges, coverage_weights=None) -> SourceSet:
    """Per source, the counter result where the source has counter readings, else the power result."""
    use_c = rc.source_covered_ms > 0
    # a counter seen anywhere (inside the period or as its edge readings) gives the energy unless power covers it
    use_c |= ((rc.source_readings > 0) | (rc.source_last_ts >= 0)) & (rp.source_covered_ms == 0)
    period_ms = max(int(edges[-1] - edges[0]), 1)
    energy = np.where(use_c, rc.source_energy_kwh, rp.source_energy_kwh)
    covered = np.where(use_c, rc.source_covered_ms, rp.source_covered_ms)
    # per (group, bin): counter sources from the counter accumulator, the others from power
    if use_c.all() or not (rp.source_readings > 0).any():
        gbe, gbc = rc.group_bin_energy_kwh, rc.group_bin_covered_ms
    elif not use_c.any():
        gbe, gbc = rp.group_bin_energy_kwh, rp.group_bin_covered_ms
    else:
        gbe = rc.group_bin_energy_kwh + rp.group_bin_energy_kwh
        gbc = rc.group_bin_covered_ms + rp.group_bin_covered_ms
    bin_ms = np.diff(edges).astype(float)
    members = np.bincount(groups, weights=coverage_weights, minlength=n_groups).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        gb_cov = gbc / (members[:, None] * bin_ms[None, :])
    events = rc.events + rp.events
    counts = dict(rc.event_counts)
    for k, v in rp.event_counts.items():
        counts[k] = counts.get(k, 0) + v
    last_ts = np.maximum(rc.source_last_ts, rp.source_last_ts)
    return SourceSet(sources=list(sources), energy_kwh=energy, coverage=covered / period_ms,
                     readings=rc.source_readings + rp.source_readings,
                     method=["counter" if u else ("power" if r > 0 else "none") for u, r in zip(use_c, rp.source_readings)],
                     group_bin_energy_kwh=gbe, group_bin_coverage=np.nan_to_num(gb_cov),
                     last_ts=last_ts, last_value=np.where(use_c, rc.source_last_value, rp.source_last_value),
                     events=events, event_counts=counts, late_readings=rc.late_readings + rp.late_readings,
                     energy_mwh=np.where(use_c, rc.source_energy_mwh, rp.source_energy_mwh),
                     energy_frac_mwh={k: v for k, v in rc.source_energy_frac_mwh.items() if use_c[k]})


def _meter_params(m, facility) -> SourceParams:
    # stored counters are multiplied by the CT/PT ratio, so the register wraps at rollover × multiplier
    rollover = None if m.rollover_kwh is None else m.rollover_kwh * m.multiplier
    return SourceParams(rollover_kwh=rollover, noise_kwh=m.noise_kwh, max_gap_ms=m.max_gap_s * 1000,
                        max_power_kw=facility.meter_max_power_kw(m.id))


def _rack_params(facility) -> list[SourceParams]:
    """Per rack: its coverage gap and its ceiling (``RACK_MAX_POWER_FACTOR`` × design power [kW])."""
    from dcmon.registry import RACK_MAX_POWER_FACTOR
    gap = facility.rack_max_gap_s * 1000
    return [SourceParams(max_gap_ms=gap, max_power_kw=RACK_MAX_POWER_FACTOR * float(dp))
            for dp in facility.racks["design_power_kw"]]


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
    facility_basis: str
    facility_energy_exact: Fraction | None = None   # [kWh], what decisions use
    it_energy_exact: Fraction | None = None         # [kWh]


def energy_figures(store, facility, period: Period, bins: str | None = None, need_racks: bool = False,
                   inventory: pd.DataFrame | None = None) -> EnergyFigures:
    """Facility and IT energy with coverage (and optionally per-day or per-month bins)."""
    edges, labels = bin_edges(period, facility.timezone, bins)
    meters = facility.meters
    ms = source_energy(store, facility.id, "meter", [m.id for m in meters], [_meter_params(m, facility) for m in meters],
                       np.arange(len(meters)), len(meters), edges)
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
        ins = inv.set_index("rack_id")["status"].reindex(rack_ids).to_numpy() == "in_service"
        w = inv.set_index("rack_id")["design_power_kw"].reindex(rack_ids).to_numpy(dtype=float) * ins
        rs = source_energy(store, facility.id, "rack", rack_ids, _rack_params(facility),
                           np.zeros(len(rack_ids), dtype=np.int64), 1, edges, coverage_weights=w)
        rack_energy = pd.Series(rs.energy_kwh, index=rack_ids)
        # IT coverage from racks: design-power-weighted over in-service racks
        rack_cov = float((rs.coverage * w).sum() / w.sum()) if w.sum() > 0 else 0.0
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
                         facility_basis="facility-role meters at the utility input",
                         facility_energy_exact=facility_exact, it_energy_exact=it_exact)


def _iso(ms) -> str | None:
    return None if ms is None or ms < 0 else pd.Timestamp(int(ms), unit="ms", tz="UTC").isoformat()


def _num(x):
    return None if x is None or (isinstance(x, float) and np.isnan(x)) else float(x)


# ------------------------------------------------------------------------- figures
def facility_figures(store, facility, period: Period, options: Options | None = None) -> dict:
    """Every figure of one facility for ``period``, with its basis and coverage (no policy checks)."""
    options = options or Options()
    start, end = period.utc_bounds(facility.timezone)
    inv, changes = inventory_at(store, facility, end)
    summary = racks_mod.rack_summary(inv)
    need_racks = options.compute_share_reading == "it_energy"
    en = energy_figures(store, facility, period, options.bins, need_racks=need_racks, inventory=inv)
    exact = racks_mod.exact_summary(inv)
    exact["pue"] = pue_mod.pue_exact(en.facility_energy_exact, en.it_energy_exact)
    exact["facility_energy_kwh"], exact["it_energy_kwh"] = en.facility_energy_exact, en.it_energy_exact
    p = None if exact["pue"] is None else float(exact["pue"])
    coverage = min(en.facility_coverage, en.it_coverage)
    if options.inventory == "time_weighted":
        tw = racks_mod.time_weighted_summary(facility.racks, changes, start.value // 10**6, end.value // 10**6)
        exact["occupancy_rate"], exact["compute_share"] = tw["exact"]["occupancy_rate"], tw["exact"]["compute_share"]
        if options.compute_share_reading != "design_power":
            exact["compute_share"] = racks_mod.compute_share_exact(inv, options.compute_share_reading, en.rack_energy_kwh)
    else:
        exact["compute_share"] = racks_mod.compute_share_exact(inv, options.compute_share_reading, en.rack_energy_kwh)
    if facility.annual_terminals_served is not None:
        exact["annual_terminals_served"] = to_fraction(facility.annual_terminals_served)
    occupancy = None if exact["occupancy_rate"] is None else float(exact["occupancy_rate"])
    cshare = None if exact["compute_share"] is None else float(exact["compute_share"])
    prev_end = pd.Timestamp(dt.datetime.combine(period.previous_year_end() + dt.timedelta(days=1), dt.time(),
                                                zone(facility.timezone))).tz_convert("UTC")
    # the prior year ends before the period starts: the changes already read cover it
    prev_ms = prev_end.value // 10**6
    inv_prev = racks_mod.apply_changes(facility.racks, changes[changes["ts"] < prev_ms] if len(changes) else changes)
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
        "compute_share_prior_year_end": racks_mod.compute_share(inv_prev, options.compute_share_reading
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


# ---------------------------------------------------------------------- policies
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


def _margin_detail(fig: dict, metric: str, op: str, threshold: float, options: Options) -> dict | None:
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
                       margin_detail=_margin_detail(fig, c.metric, c.op, c.threshold, options))
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


# ----------------------------------------------------------------------- evaluate
def evaluate(registry, store, period: Period, facility_ids: list[str] | None = None,
             profile_names: list[str] | None = None, options: Options | None = None,
             progress=None) -> dict:
    """Evaluate facilities and the portfolio for ``period``; the JSON every output shares.

    City-wide and start-area checks cover every facility of the profile's city in the
    registry, whatever subset was asked for (the others are evaluated for that purpose only).
    """
    options = options or Options()
    profiles = load_profiles(registry.config_dir)
    facilities = registry.select(facility_ids)
    out_facilities = []
    used_profiles: dict[str, Profile] = {}
    for fac in facilities:
        fig = facility_figures(store, fac, period, options)
        fig.pop("_rack_energy_kwh", None)
        bins = fig.pop("bins", None)
        if bins is not None:
            fig["bins"] = _records(bins)
        fig["profiles"] = {}
        for prof in select_profiles(profiles, profile_names, fac):
            used_profiles[prof.id] = prof
            fig["profiles"][prof.id] = evaluate_profile(fig, prof, fac, options, period)
        out_facilities.append(fig)
        if progress:
            progress(fac.id)
    figs_by_id = {f["facility_id"]: f for f in out_facilities}
    scope_options = Options(**{**options.__dict__, "bins": None})

    def city_figures(city: str) -> list[dict]:
        out = []
        for fac in registry.select(None):
            if fac.city != city:
                continue
            if fac.id not in figs_by_id:
                fig = facility_figures(store, fac, period, scope_options)
                fig.pop("_rack_energy_kwh", None)
                fig.pop("bins", None)
                figs_by_id[fac.id] = fig
            out.append(figs_by_id[fac.id])
        return out
    pf = portfolio(out_facilities, used_profiles.values(), options, city_figures)
    for f in out_facilities:
        # the exact figures checks compared, as fractions a reader can verify ("5/4")
        f["exact"] = {k: fraction_text(v) for k, v in f.pop("_exact", {}).items() if v is not None}
    return {
        "period": period.to_json(),
        "generated_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "basis": {**options.to_json(), "standard_rack_kw": racks_mod.STANDARD_RACK_KW,
                  "pue": "ratio of sums: Σ facility energy ÷ Σ IT energy over the period (ISO/IEC 30134-2)",
                  "periods": "inclusive calendar days in each facility's time zone",
                  "coverage": "share of the period spanned by readings no further apart than each meter's max_gap; "
                              "PUE coverage is the lower of facility and IT energy coverage",
                  "decisions": "exact: energies in whole milliwatt-hours, design powers and thresholds at their decimal "
                               "values, ratios compared as fractions (README: How the numbers are made)"},
        "facilities": out_facilities,
        "portfolio": pf,
    }


def _records(df: pd.DataFrame) -> list[dict]:
    return [{k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in r.items()}
            for r in df.to_dict(orient="records")]


def _aggregate(rows: list[dict]) -> dict:
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


def portfolio(figs: list[dict], profiles, options: Options, city_figures=None) -> dict:
    """Figures of the facilities asked for, and each profile's city-wide and start-area checks.

    The checks take every facility of the city (``city_figures(city)``), not only those asked
    for, and state how many they cover; a facility without a PUE leaves the city PUE inconclusive.
    """
    out = _aggregate(figs)
    out.pop("_exact")
    start_area = [f for f in figs if f["cluster_start_area"]]
    out["cluster_start_area"] = _aggregate(start_area) if start_area else None
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
            aggs = {k: _aggregate(v) if v else None for k, v in scopes.items()}
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


def live_pue(store, facility, now: pd.Timestamp | None = None, window: dt.timedelta = dt.timedelta(minutes=15)) -> dict:
    """PUE over the last ``window`` (an energy ratio, not an instantaneous power ratio)."""
    now = now or pd.Timestamp.now(tz="UTC")
    end_ms = now.value // 10**6
    edges = np.array([end_ms - int(window.total_seconds() * 1000), end_ms], dtype=np.int64)
    meters = facility.meters
    # a live window is short and read every few seconds: a silent meter is no energy, not a search
    ms = source_energy(store, facility.id, "meter", [m.id for m in meters], [_meter_params(m, facility) for m in meters],
                       np.arange(len(meters)), len(meters), edges, search_edges=False)
    roles = np.array([m.role for m in meters])
    f = float(ms.energy_kwh[roles == "facility"].sum())
    cov_f = float(ms.coverage[roles == "facility"].min()) if (roles == "facility").any() else 0.0
    if facility.it_energy_from == "racks":
        ids = list(facility.racks["rack_id"])
        rs = source_energy(store, facility.id, "rack", ids,
                           _rack_params(facility),
                           np.zeros(len(ids), dtype=np.int64), 1, edges)
        i, cov_i = float(rs.energy_kwh.sum()), float(rs.coverage.mean()) if len(ids) else 0.0
    else:
        i = float(ms.energy_kwh[roles == "it"].sum())
        cov_i = float(ms.coverage[roles == "it"].min()) if (roles == "it").any() else 0.0
    hours = window.total_seconds() / 3600
    return {"pue": pue_mod.pue(f, i), "window_minutes": window.total_seconds() / 60, "to": now.isoformat(),
            "facility_energy_kwh": f, "it_energy_kwh": i, "facility_load_kw": f / hours, "it_load_kw": i / hours,
            "coverage": min(cov_f, cov_i)}


def rack_snapshot(store, facility, now: pd.Timestamp | None = None,
                  window: dt.timedelta = dt.timedelta(minutes=30)) -> pd.DataFrame:
    """Latest power of each rack within ``window`` before ``now`` and its share of design power.

    Columns: rack_id, room, row, position, design_power_kw [kW], function, status, power_kw [kW]
    (NaN when the rack reported nothing in the window), share [-] = power_kw / design_power_kw,
    last_ts (UTC).
    """
    now = now or pd.Timestamp.now(tz="UTC")
    inv, _ = inventory_at(store, facility, now)
    t = store.read(facility.id, "rack", now - pd.Timedelta(window), now, columns=["source_id", "ts", "power_kw"])
    out = inv.copy()
    if t.num_rows:
        df = t.to_pandas().dropna(subset=["power_kw"]).sort_values(["source_id", "ts"])
        last = df.groupby("source_id").last()
        out["power_kw"] = out["rack_id"].map(last["power_kw"]).astype("float64")
        out["last_ts"] = out["rack_id"].map(last["ts"])
    else:
        out["power_kw"] = np.nan
        out["last_ts"] = pd.NaT
    out["share"] = out["power_kw"] / out["design_power_kw"]
    return out


def meter_status(store, facility, now: pd.Timestamp | None = None,
                 lookback: dt.timedelta = dt.timedelta(hours=24)) -> list[dict]:
    """Each meter's latest reading before ``now`` and whether it has gone silent.

    A meter is ``silent`` when its latest reading is older than its ``max_gap_s`` (the gap after
    which coverage is lost) or when it sent nothing in the ``lookback`` window.
    Returns, per meter in registry order: meter_id, role, last_ts (UTC ms or None),
    age_s [s] (None when nothing in the lookback), max_gap_s [s], silent [bool].
    """
    now = now or pd.Timestamp.now(tz="UTC")
    now_ms = now.value // 10**6
    t = store.read(facility.id, "meter", now - pd.Timedelta(lookback), now, columns=["source_id", "ts"])
    last: dict[str, int] = {}
    if t.num_rows:
        g = t.group_by("source_id").aggregate([("ts", "max")])
        ts_ms = pc.cast(g.column("ts_max"), pa.timestamp("ms", tz="UTC")).cast(pa.int64())
        last = dict(zip(g.column("source_id").to_pylist(), ts_ms.to_pylist()))
    out = []
    for m in facility.meters:
        ts = last.get(m.id)
        age = None if ts is None else (now_ms - int(ts)) / 1000
        out.append({"meter_id": m.id, "role": m.role, "last_ts": ts, "age_s": age, "max_gap_s": m.max_gap_s,
                    "silent": age is None or age > m.max_gap_s})
    return out
