"""The jump guard: refuses counter steps and power values no source could physically produce.

Stateful (the last counter readings of each source), so it lives apart from the pure parsers,
which call :meth:`JumpGuard.check` for every reading they accept (reliability.md #13).
"""
from __future__ import annotations

import bisect
import datetime as dt
import math
from dataclasses import dataclass, field

import numpy as np

from dcmon.readings import MAX_POWER_KW

KEEP_POINTS = 16    # counter readings the guard keeps in memory per source (older ones: the store)


def _step_kw(rise_kwh: float, dt_ms: int) -> float:
    """Mean power [kW] of a counter rise over ``dt_ms`` (inf for Δt = 0)."""
    return rise_kwh * 3_600_000 / dt_ms if dt_ms > 0 else math.inf


def _too_much(rise_kwh: float, dt_ms: int, ceiling_kw: float) -> bool:
    """``rise > ceiling × Δt`` without division, as :func:`dcmon.metrics.energy.implausible` decides."""
    return rise_kwh > 0 and rise_kwh * 3_600_000 > ceiling_kw * dt_ms


@dataclass
class JumpGuard:
    """Rejects counter steps and power values no source could physically produce (reliability.md #13).

    The ceiling of a meter is its ``max_power_kw`` (default: 3 × the design power of the racks not
    decommissioned, at least 100 kW; :meth:`dcmon.registry.Facility.meter_max_power_kw`); of a rack,
    ``factor`` × its design power. A counter reading is checked against *both* neighbours in time:
    the rise from the reading before it and the rise to the reading after it must each need no more
    than the ceiling. Decreases are not checked here (resets and rollovers are the metrics' business).

    Neighbours come from the readings this guard accepted (the last ``KEEP_POINTS`` per source) and,
    for a meter reading older than those — the first reading after a start, a late one — from the
    store through ``history(facility_id, kind, source_id, ts_ms) -> (before, after)``, each
    ``(ts_ms, energy_kwh)`` or None. After a rejected rise, a next reading that continues plausibly
    from the rejected value is accepted as a new baseline (a replaced meter that starts high), so a
    source is never locked out.

    factor : rack ceiling over design power [-]
    history : store look-up of a meter's neighbours (None: memory only)
    """

    factor: float = 3.0
    history: object = None
    points: dict = field(default_factory=dict)      # (fac, kind, src) -> sorted [(ts_ms, energy_kwh)]
    complete_from: dict = field(default_factory=dict)  # (fac, kind, src) -> ts: memory holds every neighbour
    complete_to: dict = field(default_factory=dict)    # ... of a time between these two (default: no end)
    candidate: dict = field(default_factory=dict)   # after a rejected jump
    _ceilings: dict = field(default_factory=dict)

    def ceiling_kw(self, facility, kind: str, source_id: str) -> float:
        key = (facility.id, kind, source_id)
        c = self._ceilings.get(key)
        if c is None:
            if kind == "rack":
                racks = facility.racks
                dp = racks.loc[racks["rack_id"] == source_id, "design_power_kw"]
                c = self.factor * float(dp.iloc[0]) if len(dp) else math.inf
            else:
                c = facility.meter_max_power_kw(source_id) if source_id in facility.meter_ids else math.inf
            self._ceilings[key] = c
        return c

    def rack_ceilings(self, facility) -> dict:
        """{rack_id: ceiling [kW]} of a facility (cached), for the scan fast path."""
        key = (facility.id, "rack", None)
        c = self._ceilings.get(key)
        if c is None:
            limits = (self.factor * facility.racks["design_power_kw"].astype(float)).clip(upper=MAX_POWER_KW)
            c = dict(zip(facility.racks["rack_id"], limits.tolist()))
            self._ceilings[key] = c
        return c

    def min_rack_ceiling(self, facility) -> float:
        """Smallest rack ceiling of a facility [kW] (cached); NaN when a rack's ceiling is NaN, -inf without racks."""
        key = (facility.id, "rack-min", None)
        c = self._ceilings.get(key)
        if c is None:
            values = np.fromiter(self.rack_ceilings(facility).values(), dtype=np.float64)
            c = float(values.min()) if len(values) else -math.inf
            self._ceilings[key] = c
        return c

    def neighbours(self, facility, kind: str, source_id: str, ts: int):
        """``(before, after)``: the accepted counter readings nearest to ``ts`` on each side, or None.

        Memory holds every neighbour of a time strictly between ``complete_from`` and ``complete_to``
        of its source; outside that window a meter's neighbours come from the store, and the first
        answer seeds memory with the window between them.
        """
        key = (facility.id, kind, source_id)
        pts = self.points.get(key)
        if pts is None:
            pts = self.points[key] = []
            self.complete_from[key] = math.inf if (self.history is not None and kind == "meter") else -math.inf
        i = bisect.bisect_left(pts, (ts, -math.inf))
        before = pts[i - 1] if i > 0 else None
        after = pts[i] if i < len(pts) else None
        inside = self.complete_from[key] < ts < self.complete_to.get(key, math.inf)
        if not inside and self.history is not None and kind == "meter":
            st_before, st_after = self.history(facility.id, kind, source_id, ts)
            if st_before is not None and (before is None or st_before[0] > before[0]):
                before = st_before
            if st_after is not None and (after is None or st_after[0] < after[0]):
                after = st_after
            if not pts:
                # the first question about a source: memory now knows the window between its neighbours
                pts += [p for p in (st_before, st_after) if p is not None]
                self.complete_from[key] = st_before[0] if st_before is not None else -math.inf
                if st_after is not None:
                    self.complete_to[key] = st_after[0]
        return before, after

    def _remember(self, key, ts: int, e: float) -> None:
        pts = self.points[key]
        if not self.complete_from[key] < ts < self.complete_to.get(key, math.inf):
            return   # outside what memory covers: the store has its neighbours
        if pts and ts > pts[-1][0]:
            pts.append((ts, e))
        else:
            i = bisect.bisect_left(pts, (ts, -math.inf))
            if i < len(pts) and pts[i][0] == ts:
                return   # a copy of a key: the store keeps the first
            pts.insert(i, (ts, e))
        if len(pts) > KEEP_POINTS:
            del pts[0]
            self.complete_from[key] = pts[0][0]

    def check(self, facility, row: dict) -> None:
        """Raise ``ValueError`` when ``row`` is an impossible step or power; else remember it."""
        kind, src = row["kind"], row["source_id"]
        ceiling = self.ceiling_kw(facility, kind, src)
        p = row.get("power_kw")
        if p is not None and p > ceiling:
            raise ValueError(f"power_kw {p:g} is impossible for {kind} {src!r} (ceiling {ceiling:g} kW)")
        e = row.get("energy_kwh")
        if e is None:
            return
        key = (facility.id, kind, src)
        ts = row["ts"]
        pts = self.points.get(key)
        if pts and ts > pts[-1][0] and ts > self.complete_from[key] and key not in self.complete_to:
            before, after = pts[-1], None      # the usual case: the newest reading of a source
        else:
            before, after = self.neighbours(facility, kind, src, ts)
        if before is not None and before[0] == ts or after is not None and after[0] == ts:
            return   # same key as a reading already accepted: the store keeps the first one
        if after is not None and _too_much(after[1] - e, after[0] - ts, ceiling):
            raise ValueError(f"energy_kwh {e:g} at {_iso_ms(ts)} is impossible for {kind} {src!r}: the next reading "
                             f"({after[1]:g} at {_iso_ms(after[0])}) would need "
                             f"{_step_kw(after[1] - e, after[0] - ts):g} kW mean power (ceiling {ceiling:g} kW)")
        if before is not None and _too_much(e - before[1], ts - before[0], ceiling):
            cand = self.candidate.get(key)
            if after is None and cand is not None and ts > cand[0] \
                    and e >= cand[1] and not _too_much(e - cand[1], ts - cand[0], ceiling):
                # Continues plausibly from the previous jump: a new baseline (meter replaced).
                del self.candidate[key]
                self._remember(key, ts, e)
                return
            if after is None:
                self.candidate[key] = (ts, e)
            raise ValueError(f"energy_kwh jumps from {before[1]:g} ({_iso_ms(before[0])}) to {e:g} "
                             f"({_iso_ms(ts)}): {_step_kw(e - before[1], ts - before[0]):g} kW mean power, "
                             f"impossible for {kind} {src!r} (ceiling {ceiling:g} kW)")
        if after is None:
            self.candidate.pop(key, None)
        self._remember(key, ts, e)


def _iso_ms(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")

