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
* rollover: the meter has ``rollover_kwh = R``, ``ref >= R/2`` and ``e[i] < R/2``;
  energy ``R - ref + e[i]``.
* noise dip: ``ref - e[i] <= noise_kwh``; energy 0 and ``ref`` is kept, so the next
  reading is counted from the higher value (nothing is counted twice).
* reset (meter replaced, power loss): anything else; the counter restarted from zero, so the
  energy is ``e[i]`` (reported as an event with that amount, for audit).

Energy across a gap is still the counter increase across it; the gap shows in coverage.

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

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

EVENT_LIMIT = 200  # events kept per kind (all are counted)


@dataclass
class SourceParams:
    """Per-source counter and coverage parameters."""

    rollover_kwh: float | None = None  # [kWh]
    noise_kwh: float = 0.5             # [kWh]
    max_gap_ms: int = 900_000          # [ms]


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
    total, events, ref = 0.0, [], None
    for t, x in zip(ts, e):
        if np.isnan(x):
            continue
        if ref is None:
            ref = x
            continue
        inc, ev, ref = classify_step(ref, x, p)
        total += inc
        if ev:
            events.append({"ts": int(t), "event": ev, "energy_kwh": inc, "value_kwh": float(x)})
    return total, events


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
    source_last_ts: np.ndarray             # last reading time per source [ms] (-1: none)
    source_last_value: np.ndarray          # last counter or power value per source
    group_bin_energy_kwh: np.ndarray       # [group, bin]
    group_bin_covered_ms: np.ndarray       # [group, bin], summed over the group's sources
    event_counts: dict[str, int] = field(default_factory=dict)
    events: list[dict] = field(default_factory=list)
    late_readings: int = 0

    @property
    def period_ms(self) -> int:
        return int(self.edges_ms[-1] - self.edges_ms[0])

    def source_coverage(self) -> np.ndarray:
        return self.source_covered_ms / max(self.period_ms, 1)


class EnergyAccumulator:
    """Stream readings of many sources into per-source and per-(group, bin) energy.

    Feed batches sorted by ``(source_id, ts)``, in time order across batches of different
    days. ``mode`` is ``'counter'`` (energy_kwh) or ``'power'`` (power_kw).
    """

    def __init__(self, sources: list[str], params: list[SourceParams], groups: np.ndarray,
                 n_groups: int, edges_ms: np.ndarray, mode: str):
        if mode not in ("counter", "power"):
            raise ValueError(f"mode must be 'counter' or 'power': {mode!r}")
        self.mode = mode
        self.sources = list(sources)
        self.value_set = pa.array(self.sources, pa.string())
        n = len(self.sources)
        self.rollover = np.array([p.rollover_kwh or np.nan for p in params], dtype=np.float64)
        self.noise = np.array([p.noise_kwh for p in params], dtype=np.float64)
        self.max_gap = np.array([p.max_gap_ms for p in params], dtype=np.int64)
        self.params = params
        self.groups = np.asarray(groups, dtype=np.int64)
        self.n_groups = n_groups
        self.edges = np.asarray(edges_ms, dtype=np.int64)
        self.start, self.end = int(self.edges[0]), int(self.edges[-1])
        self.n_bins = len(self.edges) - 1
        # carried state per source
        self.last_t = np.full(n, -1, dtype=np.int64)
        self.last_v = np.full(n, np.nan)
        self.ref = np.full(n, np.nan)
        self.last_recv = np.full(n, -1, dtype=np.int64)
        # results
        self.energy = np.zeros(n)
        self.covered = np.zeros(n)
        self.readings = np.zeros(n, dtype=np.int64)
        self.gbin_e = np.zeros(n_groups * self.n_bins)
        self.gbin_c = np.zeros(n_groups * self.n_bins)
        self.event_counts: dict[str, int] = {}
        self.events: list[dict] = []
        self.late = 0
        self.unknown_sources = 0

    # ------------------------------------------------------------------
    def feed(self, batch: pa.RecordBatch | pa.Table) -> None:
        col = "energy_kwh" if self.mode == "counter" else "power_kw"
        vals_arr = batch.column(col)
        if vals_arr.null_count == len(vals_arr):
            return
        if vals_arr.null_count:
            batch = batch.filter(pc.is_valid(vals_arr))
            vals_arr = batch.column(col)
        codes = pc.index_in(batch.column("source_id"), value_set=self.value_set)
        if codes.null_count:
            self.unknown_sources += codes.null_count
            valid = pc.is_valid(codes)
            batch, codes = batch.filter(valid), codes.filter(valid)
            vals_arr = batch.column(col)
        if len(codes) == 0:
            return
        c = codes.to_numpy(zero_copy_only=False).astype(np.int64)
        t = pc.cast(batch.column("ts"), pa.int64()).to_numpy(zero_copy_only=False)
        v = vals_arr.to_numpy(zero_copy_only=False).astype(np.float64)
        recv = None
        if "received_at" in batch.schema.names:
            ra = batch.column("received_at")
            if ra.null_count == 0:
                recv = pc.cast(ra, pa.int64()).to_numpy(zero_copy_only=False)
        n = len(c)
        run_start = np.empty(n, dtype=bool)
        run_start[0] = True
        run_start[1:] = c[1:] != c[:-1]
        # previous reading of each row: the row before, or the carried state at run starts
        pt = np.empty(n, dtype=np.int64)
        pv = np.empty(n)
        pt[1:], pv[1:] = t[:-1], v[:-1]
        pt[run_start], pv[run_start] = self.last_t[c[run_start]], self.last_v[c[run_start]]
        has_prev = pt >= 0
        # drop rows not after their predecessor (a day merged twice; ts already deduplicated)
        fresh = ~has_prev | (t > pt)
        if not fresh.all():
            return self.feed(batch.filter(pa.array(fresh)))
        in_period = (t >= self.start) & (t < self.end)
        np.add.at(self.readings, c[in_period], 1) if in_period.any() else None
        if recv is not None:
            prev_recv = np.empty(n, dtype=np.int64)
            prev_recv[1:] = recv[:-1]
            prev_recv[run_start] = self.last_recv[c[run_start]]
            late = has_prev & (prev_recv > recv) & (prev_recv >= 0) & in_period
            self.late += int(late.sum())
        dt = (t - pt).astype(np.float64)

        if self.mode == "counter":
            inc = v - pv
            # a run needs the slow path when it steps down anywhere, or its carried
            # reference sits above its last value (after a noise dip)
            ref_prev = pv.copy()
            ref_prev[run_start] = self.ref[c[run_start]]
            bad_row = has_prev & ((v < ref_prev) | (ref_prev != pv))
            slow_sources = np.unique(c[bad_row]) if bad_row.any() else np.zeros(0, np.int64)
            new_ref_last = None
            if len(slow_sources):
                slow = np.isin(c, slow_sources)
                inc = np.where(slow, 0.0, inc)
                new_ref_last = self._slow_counter(c, t, v, pt, slow, slow_sources, inc)
            inc = np.where(has_prev, inc, 0.0)
            covered_ok = has_prev & (dt <= self.max_gap[c])
            gap = has_prev & ~covered_ok
            energy_pairs = inc
        else:
            ok = has_prev & (dt <= self.max_gap[c]) & ~np.isnan(pv) & ~np.isnan(v)
            energy_pairs = np.where(ok, (pv + v) / 2 * dt / 3_600_000, 0.0)
            covered_ok = ok
            gap = has_prev & (dt > self.max_gap[c])
            new_ref_last = None
        if gap.any():
            self._gap_events(c[gap], pt[gap], t[gap])
        self._accumulate(c, pt, t, energy_pairs, covered_ok, has_prev)

        # carry state: last row of each run
        run_end = np.empty(n, dtype=bool)
        run_end[-1] = True
        run_end[:-1] = c[1:] != c[:-1]
        ce = c[run_end]
        self.last_t[ce] = t[run_end]
        self.last_v[ce] = v[run_end]
        if recv is not None:
            self.last_recv[ce] = recv[run_end]
        if self.mode == "counter":
            self.ref[ce] = v[run_end]
            if new_ref_last:
                for code, r in new_ref_last.items():
                    self.ref[code] = r

    def _slow_counter(self, c, t, v, pt, slow_mask, slow_sources, inc) -> dict[int, float]:
        """Apply classify_step row by row for the few sources that step down."""
        refs = {}
        idx_all = np.nonzero(slow_mask)[0]
        for code in slow_sources:
            idx = idx_all[c[idx_all] == code]
            ref = self.ref[code]
            p = self.params[code]
            for i in idx:
                if np.isnan(ref):
                    ref = v[i]
                    continue
                before = ref
                e, ev, ref = classify_step(ref, v[i], p)
                inc[i] = e
                if ev and t[i] > self.start and pt[i] < self.end:
                    self._event(ev, {"source_id": self.sources[code], "ts": int(t[i]), "event": ev,
                                     "energy_kwh": round(float(e), 6), "value_kwh": float(v[i]),
                                     "previous_kwh": float(before)})
            refs[int(code)] = float(ref)
        return refs

    def _gap_events(self, codes, t0, t1):
        inside = (t1 > self.start) & (t0 < self.end)
        for code, a, b in zip(codes[inside], t0[inside], t1[inside]):
            self._event("gap", {"source_id": self.sources[code], "ts": int(a), "until": int(b),
                                "event": "gap", "hours": round((b - a) / 3_600_000, 3)})

    def _event(self, kind: str, doc: dict):
        k = self.event_counts.get(kind, 0)
        self.event_counts[kind] = k + 1
        if k < EVENT_LIMIT:
            self.events.append(doc)

    def _accumulate(self, c, pt, t, energy, covered_ok, has_prev):
        """Add each pair's energy and covered time to its source and to (group, bin), split at bin edges."""
        m = has_prev & (t > self.start) & (pt < self.end)
        if not m.any():
            return
        c, pt, t, energy, cov = c[m], pt[m], t[m], energy[m], covered_ok[m]
        dur = (t - pt).astype(np.float64)
        lo = np.maximum(pt, self.start)
        hi = np.minimum(t, self.end)
        b0 = np.searchsorted(self.edges, lo, side="right") - 1
        b1 = np.searchsorted(self.edges, hi, side="left") - 1
        g = self.groups[c]
        # pairs inside one bin (the usual case)
        one = b0 == b1
        frac = (hi - lo) / dur
        e_in = energy * frac
        c_in = np.where(cov, hi - lo, 0).astype(np.float64)
        np.add.at(self.energy, c, e_in)
        np.add.at(self.covered, c, c_in)
        if one.any():
            idx = g[one] * self.n_bins + b0[one]
            self.gbin_e += np.bincount(idx, weights=e_in[one], minlength=len(self.gbin_e))
            self.gbin_c += np.bincount(idx, weights=c_in[one], minlength=len(self.gbin_c))
        # pairs across bin edges: split in proportion to time
        for i in np.nonzero(~one)[0]:
            for b in range(b0[i], b1[i] + 1):
                a = max(lo[i], self.edges[b])
                z = min(hi[i], self.edges[b + 1])
                if z <= a:
                    continue
                k = g[i] * self.n_bins + b
                self.gbin_e[k] += energy[i] * (z - a) / dur[i]
                if cov[i]:
                    self.gbin_c[k] += z - a

    def result(self) -> EnergyResult:
        return EnergyResult(
            sources=self.sources, edges_ms=self.edges, source_energy_kwh=self.energy,
            source_covered_ms=self.covered, source_readings=self.readings, source_last_ts=self.last_t,
            source_last_value=self.last_v,
            group_bin_energy_kwh=self.gbin_e.reshape(self.n_groups, self.n_bins),
            group_bin_covered_ms=self.gbin_c.reshape(self.n_groups, self.n_bins),
            event_counts=dict(self.event_counts), events=list(self.events), late_readings=self.late)
