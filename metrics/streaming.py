"""Energy of a set of sources (meters or racks) streamed from the store.

Reads a facility's readings of one kind through the :class:`dcmon.store.base.Store` interface
(``read`` for the edge readings, ``iter_sorted`` for the period) and feeds them to the counter
and power accumulators of :mod:`.energy`, splitting large source sets across threads.
:mod:`.figures` and :mod:`.live` assemble facility figures from the results.
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
from dcmon.metrics.energy import EnergyAccumulator, SourceParams, event_key, exact_kwh, merge_results
from dcmon.readings import SCHEMA as READING_SCHEMA
from dcmon.registry import RACK_MAX_POWER_FACTOR

from dcmon.periods import Period, zone

ENERGY_COLUMNS = ["source_id", "ts", "energy_kwh", "power_kw", "received_at"]


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
                  coverage_weights: np.ndarray | None = None, search_edges: bool | None = None,
                  timezone: str | None = None, parts: bool = False, margin_ms: int | None = None) -> SourceSet:
    """Stream one facility's readings of ``kind`` through counter and power accumulators.

    ``search_edges`` (default: for meters) looks for each source's nearest readings outside
    the read window (:func:`edge_readings`); the live PUE does without it.

    Large source sets are split by source id into ``workers`` ranges, each streamed by its own
    thread (files are sorted by source, so each thread reads only its row groups and keeps
    per-source time order); the disjoint results are added.

    With ``timezone``, a period of whole local days of that zone is answered from the store's daily
    rollups where they give the same figures (:mod:`.period_energy`); ``parts`` returns the counter
    and power results before they are combined; ``margin_ms`` overrides the read margin.
    """
    margin = max((p.max_gap_ms for p in params), default=0) if margin_ms is None else margin_ms
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
    if timezone is not None and not parts:
        from dcmon.metrics.period_energy import rollup_source_energy
        got = rollup_source_energy(store, facility_id, kind, sources, params, groups, n_groups, edges, timezone,
                                   coverage_weights=coverage_weights, search_edges=search_edges, detect_late=late,
                                   edge_search_months=EDGE_SEARCH_MONTHS, raw=source_energy, combine=_combine)
        if got is not None:
            return got
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
            results = list(ex.map(run, ranges))
        rc = merge_results([p[0] for p in results])
        rp = merge_results([p[1] for p in results])
    if parts:
        return rc, rp
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
    events = sorted(rc.events + rp.events, key=event_key)
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


def meter_params(m, facility, default_max_kw: float | None = None) -> SourceParams:
    """A meter's counter parameters; ``default_max_kw``: the facility's default ceiling [kW] when the
    caller has it already (:func:`meters_params`)."""
    # stored counters are multiplied by the CT/PT ratio, so the register wraps at rollover × multiplier
    rollover = None if m.rollover_kwh is None else m.rollover_kwh * m.multiplier
    ceiling = m.max_power_kw if m.max_power_kw is not None else \
        (default_max_kw if default_max_kw is not None else facility.meter_max_power_kw(m.id))
    return SourceParams(rollover_kwh=rollover, noise_kwh=m.noise_kwh, max_gap_ms=m.max_gap_s * 1000,
                        max_power_kw=ceiling)


def meters_params(facility) -> list[SourceParams]:
    """:func:`meter_params` of every meter of ``facility``, its default ceiling (a sum over its rack
    table) worked out once rather than once a meter."""
    default_kw = None if all(m.max_power_kw is not None for m in facility.meters) \
        else facility.default_meter_max_power_kw
    return [meter_params(m, facility, default_kw) for m in facility.meters]


def rack_params(facility) -> list[SourceParams]:
    """Per rack: its coverage gap and its ceiling (``RACK_MAX_POWER_FACTOR`` × design power [kW])."""
    gap = facility.rack_max_gap_s * 1000
    return [SourceParams(max_gap_ms=gap, max_power_kw=RACK_MAX_POWER_FACTOR * float(dp))
            for dp in facility.racks["design_power_kw"]]
