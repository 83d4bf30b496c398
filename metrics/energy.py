"""Energy from meter data: cumulative counters and power integration.

Two pure functions state the rules on one source's readings (hand-checkable, used by
the tests and by the slow path), and :class:`EnergyAccumulator` applies the same rules to
many sources at once, streaming batches sorted by ``(source_id, ts)`` in bounded memory.

Counter rules (reliability.md #9, domain.md "Meter data, as it arrives in practice")
---------------------------------------------------------------------------------
Readings are ordered by the meter's time stamp and deduplicated before differencing (a late
reading then falls into place and is not a reset). For consecutive readings ``e[i-1], e[i]``
and the reference ``ref`` (the highest value since the last reset):

* ``e[i] >= ref``: normal; energy ``e[i] - ref``.
* rollover: the meter has ``rollover_kwh = R``, the register's modulus (it shows 0 up to
  just below R, then 0 again: an 8-digit register with one decimal has R = 100 000 000),
  ``ref >= R/2`` and ``e[i] < R/2``; energy ``R - ref + e[i]``.
* noise dip: ``ref - e[i] <= noise_kwh``; energy 0 and ``ref`` is kept, so the next
  reading is counted from the higher value (nothing is counted twice).
* reset (meter replaced, power loss): anything else; the counter restarted from zero, so the
  energy is ``e[i]`` (reported as an event with that amount, for audit).

Energy across a gap is still the counter increase across it; the gap shows in coverage.
An event (rollover, noise dip, reset) belongs to the period holding the time stamp of the
reading that reveals it, ``start <= ts < end``; its energy, like any pair's, is split by time.

Exact arithmetic: counter readings are taken to the milliwatt-hour (0.000001 kWh),
``round(e × 10⁶)`` mWh (:func:`to_mwh`; exact for every reading with at most six decimals
below 4·10⁹ kWh), and differenced and summed as integers. A pair split at a period edge adds
an exact fraction of its increase. Per source, ``EnergyResult.source_energy_exact_kwh`` is
that exact figure; the float ``source_energy_kwh`` is its nearest double. Power integration
is rounded to the milliwatt-hour per source, the resolution decisions are made at.

Implausible steps (reliability.md #13): a step whose energy would need more power than the
meter can carry, ``energy > max_power_kw × Δt``, is not counted (:func:`counter_step`): it is an
``implausible_step`` event and ``ref`` is kept, so a spike that returns to trend costs nothing.
When the next reading continues plausibly from the refused one (a meter replaced by one that
starts high), that step is counted and the counter goes on from there (``new_baseline``).

Power integration: the trapezoid rule, ``(p[i-1] + p[i]) / 2 × Δt``, for pairs no more than
``max_gap`` apart; longer gaps are *missing data*, not zero power, and lower coverage.

Periods and bins: a pair ``(t[i-1], t[i]]`` whose energy straddles a boundary is split in
proportion to time (linear interpolation of the counter), so periods add up exactly.

Coverage: the share of the period spanned by consecutive readings no more than ``max_gap``
apart, i.e. the share of expected reporting intervals that have data.

References: ISO/IEC 30134-2:2016 §6 (energy over the same period); EN 50600-4-2.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from dcmon.readings import MWH_PER_KWH, to_mwh  # noqa: F401 - the store's rollups use the same arithmetic

EVENT_LIMIT = 200  # events kept per kind (all are counted)
_NO_REF = np.iinfo(np.int64).min  # no counter reference yet


def exact_kwh(whole_mwh: int | np.integer, fraction_mwh: Fraction | int = 0) -> Fraction:
    """Exact energy [kWh] from whole milliwatt-hours and an exact fractional part [mWh]."""
    return (Fraction(int(whole_mwh)) + Fraction(fraction_mwh)) / MWH_PER_KWH


@dataclass
class SourceParams:
    """Per-source counter and coverage parameters."""

    rollover_kwh: float | None = None  # [kWh]
    noise_kwh: float = 0.5             # [kWh]
    max_gap_ms: int = 900_000          # [ms]
    max_power_kw: float | None = None  # most power the meter can carry [kW]; None: no plausibility check


def classify_step(ref: float, e: float, p: SourceParams) -> tuple[float, str | None, float]:
    """Energy for one counter step from reference ``ref`` to reading ``e``.

    Returns ``(energy_kwh, event, new_ref)`` with event None, 'rollover', 'noise_dip' or 'reset'.
    """
    if e >= ref:
        return e - ref, None, e
    if p.rollover_kwh and ref >= p.rollover_kwh / 2 and e < p.rollover_kwh / 2:
        return p.rollover_kwh - ref + e, "rollover", e
    if ref - e <= p.noise_kwh:
        return 0.0, "noise_dip", ref
    return e, "reset", e


def implausible(energy_kwh, dt_ms, max_power_kw):
    """True where counting ``energy_kwh`` [kWh] over ``dt_ms`` [ms] needs more than ``max_power_kw`` [kW].

    Notes: ``energy × 3 600 000 > max_power_kw × Δt`` (no division, so Δt = 0 is handled). Works on
    scalars and numpy arrays, and in any energy unit when the ceiling is in the same unit per hour
    (milliwatt-hours with ``max_power_kw × 10⁶``); ``max_power_kw`` None never refuses.
    """
    if max_power_kw is None:
        return np.zeros(np.shape(energy_kwh), bool) if np.ndim(energy_kwh) else False
    with np.errstate(invalid="ignore"):   # NaN readings and an infinite ceiling over Δt = 0 never refuse
        return np.asarray(energy_kwh) * 3_600_000.0 > np.asarray(max_power_kw) * np.asarray(dt_ms, dtype=np.float64)


def counter_step(ref, prev, e, dt_ms: int, p: SourceParams):
    """:func:`classify_step` with the plausibility rule: ``(energy, event, new_ref)``.

    ref : reference of the counter; prev : the previous reading (may have been refused); e : this
    reading (all in one unit, kWh or whole mWh with ``p`` in the same unit); dt_ms : time since the
    previous reading [ms]. A step needing more than ``p.max_power_kw`` (or negative energy: a
    "rollover" from above the register's top) counts 0 (event ``implausible_step``, ``ref`` kept),
    unless ``e`` continues plausibly from ``prev`` (``new_baseline``: ``e - prev`` is counted).
    """
    inc, ev, new_ref = classify_step(ref, e, p)
    if p.max_power_kw is None or not (inc < 0 or implausible(inc, dt_ms, p.max_power_kw)):
        return inc, ev, new_ref
    if e >= prev and not implausible(e - prev, dt_ms, p.max_power_kw):
        return e - prev, "new_baseline", e
    return inc * 0, "implausible_step", ref


def counter_energy(ts_ms, energy_kwh, params: SourceParams | None = None) -> tuple[float, list[dict]]:
    """Energy [kWh] over one source's counter readings (any order, duplicates allowed).

    Parameters
    ----------
    ts_ms : array of int
        Meter time stamps [ms since epoch, UTC].
    energy_kwh : array of float
        Cumulative counter readings [kWh].

    Returns the total energy between the first and last reading and the events found.
    """
    p = params or SourceParams()
    ts = np.asarray(ts_ms, dtype=np.int64)
    e = np.asarray(energy_kwh, dtype=np.float64)
    order = np.lexsort((np.arange(len(ts)), ts))
    ts, e = ts[order], e[order]
    keep = np.concatenate([[True], ts[1:] != ts[:-1]]) if len(ts) else np.zeros(0, bool)
    ts, e = ts[keep], e[keep]
    ok = ~np.isnan(e)
    ts, e = ts[ok], e[ok]
    pq = _mwh_params(p)
    total, events, ref, prev, prev_t = 0, [], None, None, None
    for t, x, q in zip(ts, e, to_mwh(e)):
        q = int(q)
        if ref is None:
            ref, prev, prev_t = q, q, int(t)
            continue
        inc, ev, ref = counter_step(ref, prev, q, int(t) - prev_t, pq)
        prev, prev_t = q, int(t)
        total += inc
        if ev:
            events.append({"ts": int(t), "event": ev, "energy_kwh": inc / MWH_PER_KWH, "value_kwh": float(x)})
    return total / MWH_PER_KWH, events


def _mwh_params(p: SourceParams) -> SourceParams:
    """The same parameters in whole milliwatt-hours, for :func:`classify_step` on integer readings."""
    return SourceParams(rollover_kwh=None if not p.rollover_kwh else int(to_mwh(p.rollover_kwh)),
                        noise_kwh=int(to_mwh(p.noise_kwh)), max_gap_ms=p.max_gap_ms,
                        max_power_kw=None if p.max_power_kw is None else p.max_power_kw * MWH_PER_KWH)


def power_energy(ts_ms, power_kw, max_gap_ms: int = 900_000) -> tuple[float, float]:
    """Energy [kWh] from power readings [kW] by the trapezoid rule; returns (energy, covered_ms)."""
    ts = np.asarray(ts_ms, dtype=np.int64)
    pw = np.asarray(power_kw, dtype=np.float64)
    order = np.argsort(ts, kind="stable")
    ts, pw = ts[order], pw[order]
    if len(ts) < 2:
        return 0.0, 0.0
    dt = np.diff(ts)
    ok = (dt > 0) & (dt <= max_gap_ms) & ~np.isnan(pw[1:]) & ~np.isnan(pw[:-1])
    e = (pw[1:] + pw[:-1]) / 2 * dt / 3_600_000
    return float(e[ok].sum()), float(dt[ok].sum())


@dataclass
class EnergyResult:
    """What an accumulator found for its sources over ``[edges[0], edges[-1])``."""

    sources: list[str]
    edges_ms: np.ndarray
    source_energy_kwh: np.ndarray          # per source, whole period [kWh]
    source_covered_ms: np.ndarray          # per source [ms]
    source_readings: np.ndarray            # readings inside the period, per source
    source_last_ts: np.ndarray             # the reading the period ends on [ms] (-1: none): the first at
    source_last_value: np.ndarray          # or after the end when one was read, else the last before it
    group_bin_energy_kwh: np.ndarray       # [group, bin]
    group_bin_covered_ms: np.ndarray       # [group, bin], summed over the group's sources
    event_counts: dict[str, int] = field(default_factory=dict)
    events: list[dict] = field(default_factory=list)
    late_readings: int = 0
    # exact energy per source [mWh]: whole milliwatt-hours plus exact fractions from pairs split at the edges
    source_energy_mwh: np.ndarray | None = None
    source_energy_frac_mwh: dict[int, Fraction] = field(default_factory=dict)

    def source_energy_exact_kwh(self, i: int) -> Fraction:
        return exact_kwh(self.source_energy_mwh[i], self.source_energy_frac_mwh.get(i, 0))

    @property
    def period_ms(self) -> int:
        return int(self.edges_ms[-1] - self.edges_ms[0])

    def source_coverage(self) -> np.ndarray:
        return self.source_covered_ms / max(self.period_ms, 1)


def _ms(arr) -> np.ndarray:
    """Timestamps [ms] of an Arrow timestamp[ms] column as int64, without copying where possible."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if arr.type != pa.int64():
        arr = arr.view(pa.int64()) if arr.type == pa.timestamp("ms", tz="UTC") else pc.cast(arr, pa.int64())
    return arr.to_numpy(zero_copy_only=False)


def _np(arr) -> np.ndarray:
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    return arr.to_numpy(zero_copy_only=False)


def event_key(e: dict) -> tuple:
    """The order events are listed in: time, then source, then kind (the same however they were read)."""
    return e["ts"], e.get("source_id") or "", e["event"]


def canonical_events(events) -> list[dict]:
    """The :data:`EVENT_LIMIT` earliest events of each kind, in :func:`event_key` order.

    Which events are kept must not depend on how the readings were batched, split across
    threads or summed from daily rollups, so the samples are the earliest, not the first seen.
    """
    by_kind: dict[str, list] = {}
    for e in events:
        by_kind.setdefault(e["event"], []).append(e)
    kept = []
    for lst in by_kind.values():
        lst.sort(key=event_key)
        kept += lst[:EVENT_LIMIT]
    kept.sort(key=event_key)
    return kept


def merge_results(parts: list["EnergyResult"]) -> "EnergyResult":
    """Add results of accumulators that saw disjoint sets of sources over the same bins."""
    first = parts[0]
    counts: dict[str, int] = {}
    for p in parts:
        for k, v in p.event_counts.items():
            counts[k] = counts.get(k, 0) + v
    frac: dict[int, Fraction] = {}
    for p in parts:
        for k, v in p.source_energy_frac_mwh.items():
            frac[k] = frac.get(k, 0) + v
    last_ts = np.max([p.source_last_ts for p in parts], axis=0)
    which = np.argmax([p.source_last_ts for p in parts], axis=0)
    last_v = np.choose(which, [p.source_last_value for p in parts])
    return EnergyResult(
        sources=first.sources, edges_ms=first.edges_ms,
        source_energy_kwh=sum(p.source_energy_kwh for p in parts),
        source_covered_ms=sum(p.source_covered_ms for p in parts),
        source_readings=sum(p.source_readings for p in parts),
        source_last_ts=last_ts, source_last_value=last_v,
        group_bin_energy_kwh=sum(p.group_bin_energy_kwh for p in parts),
        group_bin_covered_ms=sum(p.group_bin_covered_ms for p in parts),
        event_counts=counts, events=canonical_events(e for p in parts for e in p.events),
        late_readings=sum(p.late_readings for p in parts),
        source_energy_mwh=sum(p.source_energy_mwh for p in parts), source_energy_frac_mwh=frac)


class EnergyAccumulator:
    """Stream readings of many sources into per-source and per-(group, bin) energy.

    Feed batches sorted by ``(source_id, ts)``, in time order across batches of different
    days. ``mode`` is ``'counter'`` (energy_kwh) or ``'power'`` (power_kw).
    """

    def __init__(self, sources: list[str], params: list[SourceParams], groups: np.ndarray,
                 n_groups: int, edges_ms: np.ndarray, mode: str, detect_late: bool = True,
                 coverage_weights: np.ndarray | None = None):
        if mode not in ("counter", "power"):
            raise ValueError(f"mode must be 'counter' or 'power': {mode!r}")
        self.mode = mode
        self.detect_late = detect_late
        self.sources = list(sources)
        self._code_of = {sid: i for i, sid in enumerate(self.sources)}
        n = len(self.sources)
        self.rollover = np.array([p.rollover_kwh or np.nan for p in params], dtype=np.float64)
        self.noise = np.array([p.noise_kwh for p in params], dtype=np.float64)
        self.max_gap = np.array([p.max_gap_ms for p in params], dtype=np.int64)
        # ceilings [kW], and the same per hour in milliwatt-hours for the integer counter steps
        self.max_kw = np.array([np.inf if p.max_power_kw is None else p.max_power_kw for p in params], dtype=np.float64)
        self.max_mw = self.max_kw * MWH_PER_KWH
        self.min_mw = float(self.max_mw.min()) if len(self.max_mw) else np.inf
        self.uniform_gap = len(self.max_gap) > 0 and bool((self.max_gap == self.max_gap[0]).all())
        self.params = params
        self.params_mwh = [_mwh_params(p) for p in params] if mode == "counter" else None
        self.groups = np.asarray(groups, dtype=np.int64)
        # (group, bin) coverage is a weighted sum of covered time (racks: by in-service design power)
        self.cov_w = None if coverage_weights is None else np.asarray(coverage_weights, dtype=np.float64)
        self.n_groups = n_groups
        self.edges = np.asarray(edges_ms, dtype=np.int64)
        self.start, self.end = int(self.edges[0]), int(self.edges[-1])
        self.n_bins = len(self.edges) - 1
        # carried state per source
        self.last_t = np.full(n, -1, dtype=np.int64)
        self.last_v = np.full(n, np.nan)
        self.last_q = np.zeros(n, dtype=np.int64)     # counter: last reading [mWh]
        self.ref = np.full(n, _NO_REF, dtype=np.int64)  # counter: reference [mWh]
        self.last_recv = np.full(n, -1, dtype=np.int64)
        # results
        self.energy = np.zeros(n)
        self.energy_mwh = np.zeros(n, dtype=np.int64)   # counter: whole pairs inside the period [mWh]
        self.energy_frac_mwh: dict[int, Fraction] = {}  # counter: exact parts of pairs split at the edges [mWh]
        self.covered = np.zeros(n)
        self.readings = np.zeros(n, dtype=np.int64)
        self.gbin_e = np.zeros(n_groups * self.n_bins)
        self.gbin_c = np.zeros(n_groups * self.n_bins)
        self.event_counts: dict[str, int] = {}
        self._events: dict[str, list[dict]] = {}
        # the last reading fed before the period's end and the first at or after it, per source:
        # the reading a period's figure ends on (its "last reading")
        self.below_t = np.full(n, -1, dtype=np.int64)
        self.below_v = np.full(n, np.nan)
        self.after_t = np.full(n, -1, dtype=np.int64)
        self.after_v = np.full(n, np.nan)
        self.late = 0
        self.unknown_sources = 0
        self._dict_cache = None

    # ------------------------------------------------------------------
    def _dict_codes(self, d: pa.Array) -> np.ndarray:
        """Codes (index into ``sources``; -1 unknown) of a dictionary's values, cached while it repeats."""
        cached = self._dict_cache
        if cached is not None and len(cached[0]) == len(d) and cached[0].equals(d):
            return cached[1]
        get = self._code_of.get
        codes = np.fromiter((get(x, -1) for x in d.to_pylist()), dtype=np.int64, count=len(d))
        self._dict_cache = (d, codes)
        return codes

    def feed(self, batch: pa.RecordBatch | pa.Table) -> None:
        """Add a batch sorted by (source_id, ts); batches of later days come later."""
        col = "energy_kwh" if self.mode == "counter" else "power_kw"
        if col not in batch.schema.names:
            return
        vals_arr = batch.column(col)
        if vals_arr.null_count == len(vals_arr):
            return
        if vals_arr.null_count:
            batch = batch.filter(pc.is_valid(vals_arr))
            vals_arr = batch.column(col)
        src = batch.column("source_id")
        if isinstance(src, pa.ChunkedArray):
            src = src.combine_chunks()
        if not pa.types.is_dictionary(src.type):
            src = src.dictionary_encode()
        idx = src.indices.to_numpy(zero_copy_only=False)
        dmap = self._dict_codes(src.dictionary)
        t = _ms(batch.column("ts"))
        v = _np(vals_arr).astype(np.float64, copy=False)
        recv = None
        if self.detect_late and "received_at" in batch.schema.names:
            ra = batch.column("received_at")
            if ra.null_count == 0:
                recv = _ms(ra)
        n = len(idx)
        run_start = np.empty(n, dtype=bool)
        run_start[0] = True
        np.not_equal(idx[1:], idx[:-1], out=run_start[1:])
        starts = np.flatnonzero(run_start)
        cs = dmap[idx[starts]]
        if (cs < 0).any():  # readings of sources not in the registry are counted and left out
            c = dmap[idx]
            known = c >= 0
            self.unknown_sources += int((~known).sum())
            self._feed_arrays(c[known], t[known], v[known], None if recv is None else recv[known])
            return
        # a dictionary with repeated values would split one source into several runs
        unique_runs = len(cs) == 1 or len(np.unique(cs)) == len(cs)
        if self.mode == "counter" and recv is None and unique_runs and self._clean_counter_runs(t, v, starts, cs):
            return
        self._feed_arrays(dmap[idx], t, v, recv)

    def _feed_arrays(self, c, t, v, recv) -> None:
        """Rows sorted by (source code, ts): codes ``c``, times ``t`` [ms], values ``v``, arrivals ``recv`` [ms]."""
        n = len(c)
        if n == 0:
            return
        run_start = np.empty(n, dtype=bool)
        run_start[0] = True
        np.not_equal(c[1:], c[:-1], out=run_start[1:])
        starts = np.flatnonzero(run_start)
        cs = c[starts]
        # previous reading of each row: the row before, or the carried state at run starts
        pt = np.empty(n, dtype=np.int64)
        pv = np.empty(n)
        pt[1:], pv[1:] = t[:-1], v[:-1]
        pt[starts], pv[starts] = self.last_t[cs], self.last_v[cs]
        has_prev_start = pt[starts] >= 0
        all_prev = bool(has_prev_start.all())
        has_prev = None if all_prev else (pt >= 0)
        # drop rows not after their predecessor (a day merged twice; ts already deduplicated)
        if not (t > pt).all():
            fresh = (t > pt) | (pt < 0)
            if not fresh.all():
                return self._feed_arrays(c[fresh], t[fresh], v[fresh], None if recv is None else recv[fresh])
        self._count_readings(t, c)
        if recv is not None:
            prev_recv = np.empty(n, dtype=np.int64)
            prev_recv[1:] = recv[:-1]
            prev_recv[starts] = self.last_recv[cs]
            late = (prev_recv > recv) & (prev_recv >= 0) & (t >= self.start) & (t < self.end)
            self.late += int(late.sum())
        dt = t - pt
        max_gap = self.max_gap[c] if not self.uniform_gap else self.max_gap[0]
        new_ref_last = None
        if self.mode == "counter":
            # counters in whole milliwatt-hours: differences and sums are exact integers
            q = to_mwh(v)
            pq = np.empty(n, dtype=np.int64)
            pq[1:] = q[:-1]
            pq[starts] = self.last_q[cs]
            inc = q - pq
            # a run needs the slow path when it steps down anywhere, or its carried
            # reference sits above its last value (after a noise dip)
            down = inc < 0
            ref_s = self.ref[cs]
            start_bad = has_prev_start & ((q[starts] < ref_s) | (ref_s != pq[starts]))
            down[starts] = start_bad
            # a step beyond the source's ceiling: slow path (one bound first, rows only if needed)
            if float(inc.max()) * 3_600_000.0 > self.min_mw * float(dt.min()):
                down |= implausible(inc, dt, self.max_mw[c])
            if down.any():
                slow_sources = np.unique(c[down])
                slow = np.isin(c, slow_sources)
                inc[slow] = 0
                new_ref_last = self._slow_counter(c, t, v, q, pt, slow, slow_sources, inc, pq)
            covered_ok = dt <= max_gap
            energy_pairs = inc
        else:
            covered_ok = dt <= max_gap
            energy_pairs = np.where(covered_ok, (pv + v) * (dt / 7_200_000), 0.0)
        if has_prev is not None:
            energy_pairs = np.where(has_prev, energy_pairs, 0)
            covered_ok &= has_prev
            gap = has_prev & (dt > max_gap)
        else:
            gap = ~covered_ok
        if gap.any():
            self._gap_events(c[gap], pt[gap], t[gap])
        self._accumulate(c, pt, t, energy_pairs, covered_ok, has_prev)

        # carry state: last row of each run
        ends = np.empty(len(starts), dtype=np.int64)
        ends[:-1] = starts[1:] - 1
        ends[-1] = n - 1
        self.last_t[cs] = t[ends]
        self.last_v[cs] = v[ends]
        self._track_end(t, v, starts, ends, cs)
        if recv is not None:
            self.last_recv[cs] = recv[ends]
        if self.mode == "counter":
            self.last_q[cs] = q[ends]
            self.ref[cs] = q[ends]
            if new_ref_last:
                for code, r in new_ref_last.items():
                    self.ref[code] = r

    def _clean_counter_runs(self, t, v, starts, cs) -> bool:
        """Fast path for the usual batch: every counter run rises without gaps, inside the period and one bin.

        Then a run's energy telescopes to its last value minus the value before it, and its
        covered time to its last time minus the time before it. Returns False (nothing done)
        when any condition fails; the row-wise rules then apply. Only reductions run over
        the rows, no per-row masks.
        """
        if not self.uniform_gap:
            return False
        n = len(t)
        ends = np.empty(len(starts), dtype=np.int64)
        ends[:-1] = starts[1:] - 1
        ends[-1] = n - 1
        prev_t = self.last_t[cs]
        has_prev = prev_t >= 0
        t_start = t[starts]
        base_t = np.where(has_prev, prev_t, t_start)
        q_starts, q_ends = to_mwh(v[starts]), to_mwh(v[ends])
        base_q = np.where(has_prev, self.last_q[cs], q_starts)
        t_max = t[ends].max()  # times rise within each run
        if base_t.min() < self.start or t_max > self.end:
            return False
        b = 0
        if self.n_bins > 1:
            b = int(np.searchsorted(self.edges, base_t.min(), "right")) - 1
            if b != int(np.searchsorted(self.edges, t_max, "left")) - 1:
                return False
        gap = self.max_gap[0]
        # carried state must continue cleanly: later in time, no step down, no pending noise dip
        if has_prev.any():
            hp = has_prev
            qs, ts_, ref = q_starts[hp], t_start[hp], self.ref[cs][hp]
            d0 = ts_ - prev_t[hp]
            if d0.min() <= 0 or d0.max() > gap or (qs < ref).any() or (ref != base_q[hp]).any():
                return False
            if implausible(qs - ref, d0, self.max_mw[cs][hp]).any():
                return False
        if n > 1:
            crossing = starts[1:] - 1          # diffs between the last row of a run and the next run
            dv = np.diff(v)
            dv[crossing] = 0.0
            if dv.min() < 0:
                return False
            # the store keeps times strictly rising within a source (sorted, deduplicated)
            dt = np.diff(t)
            dt[crossing] = gap      # (neither a gap nor the shortest step)
            if dt.max() > gap:
                return False
            # any step beyond the smallest ceiling: the slow path decides (one bound first, rows only if needed)
            kw = self.max_kw[cs].min()
            if dv.max() * 3_600_000.0 > kw * float(dt.min()) and implausible(dv, dt, kw).any():
                return False
        e_run_mwh = q_ends - base_q
        e_run = e_run_mwh / MWH_PER_KWH
        cov_run = (t[ends] - base_t).astype(np.float64)
        self.energy_mwh[cs] += e_run_mwh
        self.covered[cs] += cov_run
        counts = ends - starts + 1
        if t_max >= self.end:
            self._count_readings(t, np.repeat(cs, counts))
        else:
            self.readings[cs] += counts
        cov_w = cov_run if self.cov_w is None else cov_run * self.cov_w[cs]
        if self.n_groups == 1:
            self.gbin_e[b] += e_run.sum()
            self.gbin_c[b] += cov_w.sum()
        else:
            k = self.groups[cs] * self.n_bins + b
            self.gbin_e += np.bincount(k, weights=e_run, minlength=len(self.gbin_e))
            self.gbin_c += np.bincount(k, weights=cov_w, minlength=len(self.gbin_c))
        self.last_t[cs] = t[ends]
        self.last_v[cs] = v[ends]
        self._track_end(t, v, starts, ends, cs)
        self.last_q[cs] = q_ends
        self.ref[cs] = q_ends
        return True

    def _count_readings(self, t, c) -> None:
        if t.min() >= self.start and t.max() < self.end:
            self.readings += np.bincount(c, minlength=len(self.readings))
        else:
            m = (t >= self.start) & (t < self.end)
            if m.any():
                self.readings += np.bincount(c[m], minlength=len(self.readings))

    def _slow_counter(self, c, t, v, q, pt, slow_mask, slow_sources, inc, pq) -> dict[int, int]:
        """Apply counter_step row by row, in whole milliwatt-hours, for the few sources that step down
        or beyond their ceiling (``pq``: each row's previous reading [mWh]).

        An event belongs to the period holding the time stamp of the reading that reveals it.
        """
        refs = {}
        idx_all = np.nonzero(slow_mask)[0]
        for code in slow_sources:
            idx = idx_all[c[idx_all] == code]
            ref = int(self.ref[code])
            p = self.params_mwh[code]
            for i in idx:
                if ref == _NO_REF:
                    ref = int(q[i])
                    continue
                before = ref
                e, ev, ref = counter_step(ref, int(pq[i]), int(q[i]), int(t[i] - pt[i]), p)
                inc[i] = e
                if ev and self.start <= t[i] < self.end:
                    self._event(ev, {"source_id": self.sources[code], "ts": int(t[i]), "event": ev,
                                     "energy_kwh": e / MWH_PER_KWH, "value_kwh": float(v[i]),
                                     "previous_kwh": before / MWH_PER_KWH})
            refs[int(code)] = ref
        return refs

    def _gap_events(self, codes, t0, t1):
        inside = (t1 > self.start) & (t0 < self.end)
        for code, a, b in zip(codes[inside], t0[inside], t1[inside]):
            self._event("gap", {"source_id": self.sources[code], "ts": int(a), "until": int(b),
                                "event": "gap", "hours": round((b - a) / 3_600_000, 3)})

    def _track_end(self, t, v, starts, ends, cs) -> None:
        """Keep each run's last reading before the period's end and its first at or after it."""
        if t[ends].max() < self.end:
            self.below_t[cs], self.below_v[cs] = t[ends], v[ends]
            return
        below = np.add.reduceat((t < self.end).astype(np.int64), starts)
        has_b = below > 0
        ib = starts[has_b] + below[has_b] - 1
        self.below_t[cs[has_b]], self.below_v[cs[has_b]] = t[ib], v[ib]
        has_a = below < ends - starts + 1
        ia = starts[has_a] + below[has_a]
        first = self.after_t[cs[has_a]] < 0   # batches come in time order: keep the earliest
        self.after_t[cs[has_a][first]], self.after_v[cs[has_a][first]] = t[ia][first], v[ia][first]

    def _event(self, kind: str, doc: dict):
        self.event_counts[kind] = self.event_counts.get(kind, 0) + 1
        lst = self._events.setdefault(kind, [])
        lst.append(doc)
        if len(lst) >= 2 * EVENT_LIMIT:   # bounded memory: keep the earliest (canonical_events)
            lst.sort(key=event_key)
            del lst[EVENT_LIMIT:]

    @property
    def events(self) -> list[dict]:
        return canonical_events(e for lst in self._events.values() for e in lst)

    def _accumulate(self, c, pt, t, energy, covered_ok, has_prev):
        """Add each pair's energy and covered time to its source and to (group, bin), split at bin edges."""
        inside_all = pt.min() >= self.start and t.max() <= self.end
        if has_prev is not None or not inside_all:
            m = (t > self.start) & (pt < self.end)
            if has_prev is not None:
                m &= has_prev
            if not m.any():
                return
            if not m.all():
                c, pt, t, energy, covered_ok = c[m], pt[m], t[m], energy[m], covered_ok[m]
            inside_all = pt.min() >= self.start and t.max() <= self.end
        n_src = len(self.energy)
        if not inside_all:
            lo = np.maximum(pt, self.start)
            hi = np.minimum(t, self.end)
        if self.mode == "counter":
            # whole pairs add whole milliwatt-hours (float sums of integers are exact below 2**53 mWh);
            # a pair split at a period edge adds its exact share of the increase, in proportion to time
            if inside_all:
                self.energy_mwh += np.rint(np.bincount(c, weights=energy, minlength=n_src)).astype(np.int64)
            else:
                whole = (pt >= self.start) & (t <= self.end)
                self.energy_mwh += np.rint(np.bincount(c[whole], weights=energy[whole],
                                                      minlength=n_src)).astype(np.int64)
                for i in np.flatnonzero(~whole & (energy != 0)):
                    k = int(c[i])
                    part = Fraction(int(energy[i]) * int(hi[i] - lo[i]), int(t[i] - pt[i]))
                    self.energy_frac_mwh[k] = self.energy_frac_mwh.get(k, 0) + part
            energy = energy / MWH_PER_KWH
        if inside_all:
            lo, hi, e_in = pt, t, energy
            c_in = np.where(covered_ok, t - pt, 0).astype(np.float64)
        else:
            dur = (t - pt).astype(np.float64)
            e_in = energy * ((hi - lo) / dur)
            c_in = np.where(covered_ok, hi - lo, 0).astype(np.float64)
        if self.mode != "counter":
            self.energy += np.bincount(c, weights=e_in, minlength=n_src)
        self.covered += np.bincount(c, weights=c_in, minlength=n_src)
        if self.cov_w is not None:
            c_in = c_in * self.cov_w[c]
        g = self.groups[c] if self.n_groups > 1 else None
        if self.n_bins == 1:
            if g is None:
                self.gbin_e[0] += e_in.sum()
                self.gbin_c[0] += c_in.sum()
            else:
                self.gbin_e += np.bincount(g, weights=e_in, minlength=self.n_groups)
                self.gbin_c += np.bincount(g, weights=c_in, minlength=self.n_groups)
            return
        b0 = np.searchsorted(self.edges, lo, side="right") - 1
        b1 = np.searchsorted(self.edges, hi, side="left") - 1
        one = b0 == b1
        idx = b0 if g is None else g * self.n_bins + b0
        w_one = one if not one.all() else None
        if w_one is None:
            self.gbin_e += np.bincount(idx, weights=e_in, minlength=len(self.gbin_e))
            self.gbin_c += np.bincount(idx, weights=c_in, minlength=len(self.gbin_c))
            return
        self.gbin_e += np.bincount(idx[one], weights=e_in[one], minlength=len(self.gbin_e))
        self.gbin_c += np.bincount(idx[one], weights=c_in[one], minlength=len(self.gbin_c))
        # pairs across bin edges: split in proportion to time
        gg = np.zeros(len(c), dtype=np.int64) if g is None else g
        for i in np.flatnonzero(~one):
            span = float(hi[i] - lo[i])
            for b in range(b0[i], b1[i] + 1):
                a = max(lo[i], self.edges[b])
                z = min(hi[i], self.edges[b + 1])
                if z <= a:
                    continue
                k = gg[i] * self.n_bins + b
                self.gbin_e[k] += e_in[i] * (z - a) / span
                self.gbin_c[k] += c_in[i] * (z - a) / span

    def result(self) -> EnergyResult:
        if self.mode == "counter":
            mwh, frac = self.energy_mwh.copy(), dict(self.energy_frac_mwh)
            energy = mwh / MWH_PER_KWH
            for k, f in frac.items():
                energy[k] = float(exact_kwh(mwh[k], f))
        else:
            energy, frac = self.energy.copy(), {}
            mwh = np.rint(energy * MWH_PER_KWH).astype(np.int64)  # power integration, to the milliwatt-hour
        return EnergyResult(
            source_energy_mwh=mwh, source_energy_frac_mwh=frac,
            sources=self.sources, edges_ms=self.edges, source_energy_kwh=energy,
            source_covered_ms=self.covered, source_readings=self.readings,
            # the reading the period ends on: the first at or after its end, else the last before it
            source_last_ts=np.where(self.after_t >= 0, self.after_t, self.below_t),
            source_last_value=np.where(self.after_t >= 0, self.after_v, self.below_v),
            group_bin_energy_kwh=self.gbin_e.reshape(self.n_groups, self.n_bins),
            group_bin_covered_ms=self.gbin_c.reshape(self.n_groups, self.n_bins),
            event_counts=dict(self.event_counts), events=self.events, late_readings=self.late)
