"""Counter energy of a period from daily rollups, equal to the raw scan's result.

The raw scan (:class:`dcmon.metrics.energy.EnergyAccumulator` over every reading, as
``source_energy`` streams them) is the reference. For a period of whole local days this module
gets the same per-source figures from the store's rollup pieces (:mod:`dcmon.store.rollups`):

* the readings a period rests on are the same: the last reading before its start (read within
  the margin ``max_gap`` before it, or found by the edge search of ``edge_readings``, with its
  month bound), every reading inside it, and the first at or after its end (within the margin,
  or found by the edge search);
* energy [whole mWh] = Σ over pieces inside the period of (last − first counter) + Σ over the steps
  between consecutive pieces of their increase; a step across the period's start or end adds its
  exact share in proportion to time (a :class:`~fractions.Fraction`, as the raw scan does);
* covered time = Σ over pieces of (last − first time) less their steps longer than ``max_gap``,
  + the steps between pieces no longer than ``max_gap``, clipped to the period; each longer step
  is a gap event; readings and late readings add up likewise.

This holds when every step the period uses rises (no reset, rollover or noise dip), stays under
the meter's power ceiling by a clear margin, and every gap longer than ``max_gap`` inside a piece
is one the rollup lists. A source for which anything else holds — a step down, a step at the
ceiling, a power-only reading, a reading without its receive time, a gap the rollup cannot place
— is computed by the raw scan over the whole period (``raw``): never a figure that differs.
"""
from __future__ import annotations

import datetime as dt
from fractions import Fraction

import numpy as np
import orjson
import pyarrow as pa

from dcmon.metrics.energy import EnergyResult, canonical_events, to_mwh
from dcmon.periods import is_local_midnight

CHUNK_PIECES = 250_000   # pieces handled at once (numpy copies of ~20 columns)
# a step is decided from its rollup only when its power is below the ceiling by this margin
# (far more than float rounding); closer steps are decided by the raw scan
PLAUSIBLE_MARGIN = 1e-9


def month_start_ms(ms: int, months: int = 0) -> int:
    """Start [UTC ms] of the UTC calendar month holding ``ms``, moved by ``months``."""
    d = dt.datetime.fromtimestamp(ms / 1000, dt.UTC)
    k = d.year * 12 + d.month - 1 + months
    return int(dt.datetime(k // 12, k % 12 + 1, 1, tzinfo=dt.UTC).timestamp() * 1000)


def _certainly_plausible(inc_mwh, dt_ms, max_mw) -> np.ndarray:
    """True where ``inc`` over ``dt`` is under the ceiling ``max_mw`` [mWh per hour] with a clear margin."""
    with np.errstate(invalid="ignore", over="ignore"):
        return np.asarray(inc_mwh, dtype=np.float64) * 3_600_000.0 < \
            np.asarray(max_mw) * (1 - PLAUSIBLE_MARGIN) * np.asarray(dt_ms, dtype=np.float64)


def rollup_counter_result(store, facility_id: str, kind: str, sources: list[str], params, edges: np.ndarray,
                          timezone: str, *, search_edges: bool, detect_late: bool, edge_search_months: int
                          ) -> tuple[EnergyResult, np.ndarray] | None:
    """Counter results of the sources a rollup can answer, and a mask of those it cannot.

    Returns None when the store keeps no rollups or the period is not whole local days of
    ``timezone``. Sources in the mask have zeros in the result: the caller scans them.
    """
    if len(edges) != 2:
        return None
    S, E = int(edges[0]), int(edges[-1])
    if not (is_local_midnight(timezone, S) and is_local_midnight(timezone, E)):
        return None
    nsrc = len(sources)
    G = np.array([p.max_gap_ms for p in params], dtype=np.int64)
    M = int(G.max()) if nsrc else 0
    max_mw = np.array([np.inf if p.max_power_kw is None else p.max_power_kw * 1_000_000 for p in params])
    lo_bound = month_start_ms(S - M, -(edge_search_months - 1))
    hi_bound = month_start_ms(E + M, edge_search_months)
    P = store.rollup_pieces(facility_id, kind, timezone, S - M, E + M)
    if P is None:
        return None
    code_of = {s: i for i, s in enumerate(sources)}
    tables = [P]
    if search_edges and nsrc:
        c0 = _codes(P, code_of)
        have_b = np.zeros(nsrc, bool)
        have_a = np.zeros(nsrc, bool)
        known = c0 >= 0
        hi_col = P.column("hi").to_numpy()
        lo_col = P.column("lo").to_numpy()
        have_b[c0[known & (hi_col <= S)]] = True
        have_a[c0[known & (lo_col >= E)]] = True
        # the edge searches continue outside what the pieces read so far account for
        span = orjson.loads((P.schema.metadata or {}).get(b"span", b"[null, null]"))
        first_lo = S - M if span[0] is None else min(int(span[0]), S - M)
        last_hi = E + M if span[1] is None else max(int(span[1]), E + M)
        if not have_b.all() and first_lo > lo_bound:
            tables.append(store.rollup_pieces(facility_id, kind, timezone, lo_bound, first_lo))
        if not have_a.all() and last_hi < hi_bound:
            tables.append(store.rollup_pieces(facility_id, kind, timezone, last_hi, hi_bound))
    P = pa.concat_tables([t.replace_schema_metadata(None) for t in tables]) if len(tables) > 1 else P
    code = _codes(P, code_of)
    # columns as numpy, one at a time, in (source, time) order: a quarter of a 10 000-rack site is
    # 1.8 M pieces, so only what the arithmetic needs is copied (the longest steps only where there are)
    order = np.flatnonzero(code >= 0)
    lo_all = P.column("lo").to_numpy()
    order = order[np.lexsort((lo_all[order], code[order]))]
    code = code[order]
    if len(code) > 1:   # the same piece twice, when a search overlapped the first read
        dup = np.zeros(len(code), bool)
        dup[1:] = (code[1:] == code[:-1]) & (lo_all[order][1:] == lo_all[order][:-1])
        if dup.any():
            order, code = order[~dup], code[~dup]
    del lo_all
    energy = np.zeros(nsrc, dtype=np.int64)
    covered = np.zeros(nsrc, dtype=np.int64)
    readings = np.zeros(nsrc, dtype=np.int64)
    last_ts = np.full(nsrc, -1, dtype=np.int64)
    last_v = np.full(nsrc, np.nan)
    bad_all = np.zeros(nsrc, bool)
    late = [0]
    events: list[dict] = []
    frac: dict[int, Fraction] = {}

    def chunk(order, code) -> bool:
        """Add the figures of the sources of rows ``order`` of ``P`` (whole sources, sorted by
        source and time; ``code`` their source codes); False when rollups cannot be used at all."""
        names = ["lo", "hi", "n", "first_ts", "first_v", "last_ts", "last_v", "complete", "monotone", "max_rate",
                 "rest_max_dt", "recv_ok"] + (["first_recv", "last_recv", "late"] if detect_late else [])
        col = {name: _column(P, name, order) for name in names}
        if not detect_late:
            col["first_recv"] = col["last_recv"] = col["late"] = np.zeros(len(order), dtype=np.int64)
        has_gap = _column(P, "gap0_dt", order) > 0
        gap_rows = np.flatnonzero(has_gap)
        gap_cols = {f"gap{k}_{c}": _column(P, f"gap{k}_{c}", order[gap_rows]) for k in range(3) for c in ("t0", "dt")}
        lo, hi = col["lo"], col["hi"]
        before, period, after = hi <= S, (lo >= S) & (hi <= E), lo >= E
        if not (before | period | after).all():
            return None   # a piece across the period's edge: rollups cut at another time zone's days
        fts, lts = col["first_ts"], col["last_ts"]
        complete, mono, recv_ok = col["complete"], col["monotone"], col["recv_ok"]
        fq = to_mwh(np.where(complete, col["first_v"], 0.0))
        lq = to_mwh(np.where(complete, col["last_v"], 0.0))
        src_start = np.searchsorted(code, np.arange(nsrc), side="left")
        n_before = np.bincount(code[before], minlength=nsrc)
        n_period = np.bincount(code[period], minlength=nsrc)
        n_after = np.bincount(code[after], minlength=nsrc)
        first_p = src_start + n_before
        pred_idx = np.where(n_before > 0, first_p - 1, -1)
        succ_idx = np.where(n_after > 0, first_p + n_period, -1)
        # the reading before the period: within the margin, or found by the edge search (none when a
        # reading falls exactly on the start and nothing is in the margin: the search is not made then)
        has_b = pred_idx >= 0
        b_ts = _at(lts, pred_idx, -1)
        at_start = (n_period > 0) & (_at(fts, np.where(n_period > 0, first_p, -1), -1) == S)
        in_margin = has_b & (b_ts >= S - M)
        pred_ok = in_margin | (has_b & search_edges & ~at_start & (b_ts >= lo_bound))
        has_a = succ_idx >= 0
        a_ts = _at(fts, succ_idx, -1)
        fed = pred_ok | (n_period > 0)
        succ_ok = has_a & ((a_ts < E + M) | (search_edges & fed & (a_ts < hi_bound)))
        # pieces the chain goes through, in order per source
        is_pred = np.zeros(len(code), bool)
        is_pred[pred_idx[pred_ok]] = True
        is_succ = np.zeros(len(code), bool)
        is_succ[succ_idx[succ_ok]] = True
        chain = period | is_pred | is_succ
        window = (hi > S - M) & (lo < E + M)
        # ---- which sources the rollups answer
        piece_ok = complete & mono & _certainly_plausible(col["max_rate"] * 1.0, 1.0, max_mw[code])
        if detect_late:
            piece_ok &= recv_ok
        if detect_late and not recv_ok[chain | window].all():
            return None   # the raw scan leaves late detection out for a whole batch then: scan everything
        bad = np.zeros(nsrc, bool)   # (this chunk's sources)
        np.logical_or.at(bad, code, (window & ~piece_ok) | (chain & ~complete) | (period & (col["rest_max_dt"] > G[code])))
        # steps between consecutive pieces of a source, where both are in the window or on the chain
        linked = window | chain
        li = np.flatnonzero(linked)
        ci = np.flatnonzero(chain)
        for idx in (li, ci):
            if len(idx) > 1:
                a, b = idx[:-1], idx[1:]
                same = code[a] == code[b]
                a, b = a[same], b[same]
                inc, dt_ = fq[b] - lq[a], fts[b] - lts[a]
                step_bad = (inc < 0) | ~_certainly_plausible(inc, dt_, max_mw[code[a]])
                np.logical_or.at(bad, code[a], step_bad)
        # ---- figures of the sources answered
        np.logical_or(bad_all, bad, out=bad_all)
        good_piece = period & ~bad[code]
        gc = code[good_piece]
        np.add.at(energy, gc, (lq - fq)[good_piece])
        np.add.at(readings, gc, col["n"][good_piece])
        np.add.at(covered, gc, (lts - fts)[good_piece])
        gp = good_piece[gap_rows]          # pieces with long steps: less the steps longer than max_gap
        gcode = code[gap_rows][gp]
        for k in range(3):
            gdt, gt0 = gap_cols[f"gap{k}_dt"][gp], gap_cols[f"gap{k}_t0"][gp]
            long = gdt > G[gcode]
            np.add.at(covered, gcode[long], -gdt[long])
            for c, t0, d in zip(gcode[long], gt0[long], gdt[long]):
                events.append(_gap(sources[c], int(t0), int(t0 + d)))
        if detect_late:
            late[0] += int(col["late"][good_piece].sum())
        if len(ci) > 1:
            a, b = ci[:-1], ci[1:]
            same = (code[a] == code[b]) & ~bad[code[a]]
            a, b = a[same], b[same]
            c = code[a]
            ta, tb = lts[a], fts[b]
            inc, dt_ = fq[b] - lq[a], tb - ta
            inside = (tb > S) & (ta < E)
            whole = inside & (ta >= S) & (tb <= E)
            np.add.at(energy, c[whole], inc[whole])
            lo_c, hi_c = np.maximum(ta, S), np.minimum(tb, E)
            cov_ok = inside & (dt_ <= G[c])
            np.add.at(covered, c[cov_ok], (hi_c - lo_c)[cov_ok])
            for i in np.flatnonzero(inside & ~whole & (inc != 0)):
                k = int(c[i])
                frac[k] = frac.get(k, 0) + Fraction(int(inc[i]) * int(hi_c[i] - lo_c[i]), int(dt_[i]))
            for i in np.flatnonzero(inside & (dt_ > G[c])):
                events.append(_gap(sources[c[i]], int(ta[i]), int(tb[i])))
            if detect_late:
                ra, rb = col["last_recv"][a], col["first_recv"][b]
                late[0] += int(((tb >= S) & (tb < E) & (ra > rb) & (ra >= 0)).sum())
        # the reading the period ends on: the first at or after its end, else the last before it
        last_period = first_p + n_period - 1
        for mask, idx, ts_col, v_col in ((pred_ok & (n_period == 0), pred_idx, lts, col["last_v"]),
                                         (n_period > 0, last_period, lts, col["last_v"]),
                                         (succ_ok, succ_idx, fts, col["first_v"])):
            mask = mask & ~bad
            if mask.any():
                last_ts[mask], last_v[mask] = ts_col[idx[mask]], v_col[idx[mask]]
        return True

    # in chunks of whole sources, so the copies stay small whatever the number of sources
    cuts = [0]
    while cuts[-1] < len(order):
        k = min(cuts[-1] + CHUNK_PIECES, len(order))
        if k < len(order):
            k = int(np.searchsorted(code, code[k - 1], side="right"))
        cuts.append(k)
    for a, b in zip(cuts[:-1], cuts[1:]):
        if not chunk(order[a:b], code[a:b]):
            return None
    del P, tables
    bad = bad_all
    late = late[0]
    energy_kwh = energy / 1_000_000
    for k, f in frac.items():
        energy_kwh[k] = float((Fraction(int(energy[k])) + f) / 1_000_000)
    n_gaps = len(events)
    res = EnergyResult(
        sources=list(sources), edges_ms=np.asarray(edges, dtype=np.int64), source_energy_kwh=energy_kwh,
        source_covered_ms=covered.astype(np.float64), source_readings=readings, source_last_ts=last_ts,
        source_last_value=last_v, group_bin_energy_kwh=np.zeros((0, 1)), group_bin_covered_ms=np.zeros((0, 1)),
        event_counts={"gap": n_gaps} if n_gaps else {}, events=canonical_events(events), late_readings=late,
        source_energy_mwh=energy, source_energy_frac_mwh=frac)
    return res, bad


def _column(P: pa.Table, name: str, rows: np.ndarray) -> np.ndarray:
    """Column ``name`` of ``P`` at ``rows``, as numpy."""
    return P.column(name).take(pa.array(rows)).to_numpy(zero_copy_only=False)


def _at(a: np.ndarray, idx: np.ndarray, fill) -> np.ndarray:
    """``a[idx]`` where ``idx >= 0``, else ``fill``."""
    out = np.full(len(idx), fill, dtype=a.dtype)
    ok = idx >= 0
    out[ok] = a[idx[ok]]
    return out


def _gap(source: str, t0: int, t1: int) -> dict:
    # rounded as the raw scan rounds it (numpy's round of a float64)
    return {"source_id": source, "ts": t0, "until": t1, "event": "gap",
            "hours": round(np.float64(np.int64(t1) - np.int64(t0)) / 3_600_000, 3)}


def _codes(P: pa.Table, code_of: dict) -> np.ndarray:
    src = P.column("source_id").combine_chunks() if P.num_rows else pa.array([], pa.string())
    if pa.types.is_dictionary(src.type):
        src = src.cast(pa.string())
    enc = src.dictionary_encode()
    get = code_of.get
    dmap = np.array([get(x, -1) for x in enc.dictionary.to_pylist()], dtype=np.int64)
    idx = enc.indices.to_numpy(zero_copy_only=False)
    return dmap[idx] if len(dmap) else np.zeros(0, dtype=np.int64)


def _expand(res: EnergyResult, idx: np.ndarray, sources: list[str], groups: np.ndarray, n_groups: int,
            coverage_weights) -> EnergyResult:
    """A result over the sources at positions ``idx`` as one over all ``sources`` (zeros elsewhere)."""
    n = len(sources)

    def put(a, fill, dtype):
        out = np.full(n, fill, dtype=dtype)
        out[idx] = a
        return out
    energy = put(res.source_energy_kwh, 0.0, np.float64)
    covered = put(res.source_covered_ms, 0.0, np.float64)
    return EnergyResult(
        sources=list(sources), edges_ms=res.edges_ms, source_energy_kwh=energy, source_covered_ms=covered,
        source_readings=put(res.source_readings, 0, np.int64), source_last_ts=put(res.source_last_ts, -1, np.int64),
        source_last_value=put(res.source_last_value, np.nan, np.float64),
        group_bin_energy_kwh=_group_sum(groups, energy, n_groups),
        group_bin_covered_ms=_group_sum(groups, covered if coverage_weights is None else covered * coverage_weights,
                                        n_groups),
        event_counts=dict(res.event_counts), events=list(res.events), late_readings=res.late_readings,
        source_energy_mwh=put(res.source_energy_mwh, 0, np.int64),
        source_energy_frac_mwh={int(idx[k]): v for k, v in res.source_energy_frac_mwh.items()})


def _group_sum(groups, values, n_groups) -> np.ndarray:
    return np.bincount(np.asarray(groups, dtype=np.int64), weights=values, minlength=n_groups).reshape(n_groups, 1)


def rollup_source_energy(store, facility_id, kind, sources, params, groups, n_groups, edges, timezone, *,
                         coverage_weights, search_edges, detect_late, edge_search_months, raw, combine):
    """``source_energy``'s result for one period of whole local days, from rollups where they answer
    and from the raw scan (``raw(..., parts=True)``) for the sources they do not; None when rollups
    cannot be used at all (the caller scans everything).

    With one bin, the (group, bin) sums are the sums of the per-source figures.
    """
    got = rollup_counter_result(store, facility_id, kind, sources, params, edges, timezone,
                                search_edges=search_edges, detect_late=detect_late,
                                edge_search_months=edge_search_months)
    if got is None:
        return None
    rc, bad = got
    groups = np.asarray(groups, dtype=np.int64)
    rc.group_bin_energy_kwh = _group_sum(groups, rc.source_energy_kwh, n_groups)
    rc.group_bin_covered_ms = _group_sum(groups, rc.source_covered_ms if coverage_weights is None
                                         else rc.source_covered_ms * coverage_weights, n_groups)
    n = len(sources)
    rp = EnergyResult(sources=list(sources), edges_ms=rc.edges_ms, source_energy_kwh=np.zeros(n),
                      source_covered_ms=np.zeros(n), source_readings=np.zeros(n, dtype=np.int64),
                      source_last_ts=np.full(n, -1, dtype=np.int64), source_last_value=np.full(n, np.nan),
                      group_bin_energy_kwh=np.zeros((n_groups, 1)), group_bin_covered_ms=np.zeros((n_groups, 1)),
                      source_energy_mwh=np.zeros(n, dtype=np.int64))
    if bad.any():
        from dcmon.metrics.energy import merge_results
        idx = np.flatnonzero(bad)
        sub_rc, sub_rp = raw(store, facility_id, kind, [sources[i] for i in idx], [params[i] for i in idx],
                             np.arange(len(idx)), max(len(idx), 1), edges,
                             coverage_weights=None if coverage_weights is None else np.asarray(coverage_weights)[idx],
                             search_edges=search_edges, parts=True,
                             margin_ms=max((p.max_gap_ms for p in params), default=0))  # the same readings read
        rc = merge_results([rc, _expand(sub_rc, idx, sources, groups, n_groups, coverage_weights)])
        rp = _expand(sub_rp, idx, sources, groups, n_groups, coverage_weights)
    return combine(rc, rp, sources, groups, n_groups, edges, coverage_weights)


def compare_with_raw_scan(store, facility, edges: np.ndarray, source_energy, kinds) -> list[str]:
    """Each source's figures for ``[edges[0], edges[-1])`` from the daily rollups and from the raw
    scan; one line per difference (none: they agree exactly).

    ``kinds``: ``[(kind, source ids, their SourceParams)]``; ``source_energy`` is the figures' energy
    function (passed in: this module sits below it).
    """
    out = []
    for kind, ids, params in kinds:
        args = (store, facility.id, kind, ids, params, np.arange(len(ids)), max(len(ids), 1), edges)
        raw = source_energy(*args)
        rolled = source_energy(*args, timezone=facility.timezone)
        for name in ("energy_mwh", "coverage", "readings", "last_ts", "late_readings", "event_counts"):
            a, b = getattr(raw, name), getattr(rolled, name)
            if not (np.array_equal(a, b) if isinstance(a, np.ndarray) else a == b):
                out.append(f"{facility.id} {kind}: {name} differs: raw scan {_short(a)}, rollups {_short(b)}")
        fr = {k: Fraction(v) for k, v in raw.energy_frac_mwh.items() if v}
        fo = {k: Fraction(v) for k, v in rolled.energy_frac_mwh.items() if v}
        if fr != fo:
            out.append(f"{facility.id} {kind}: energy split at the period's edges differs")
        if repr(raw.events) != repr(rolled.events):
            out.append(f"{facility.id} {kind}: event samples differ")
    return out


def _short(x) -> str:
    text = str(x.tolist() if isinstance(x, np.ndarray) else x)
    return text if len(text) <= 120 else text[:120] + "…"
