"""Pure parsers: one MQTT message ``(topic, payload)`` → readings and rejections.

Nothing here touches the network, the store or the clock: the receive time, the registry,
the topic prefix, the payload mappings and the jump guard's state are passed in, so the
live collector, the tests and the benchmark share one code path. Each reading is validated
by :func:`dcmon.readings.make_reading`, the same function ``dcmon import`` uses.

Topic contract (``prefix`` defaults to ``dcmon/v1``; see docs/collector.md for examples):

==================================== =====================================================
topic                                payload
==================================== =====================================================
``{prefix}/{facility}/meter/{meter}`` JSON object or array: ``ts`` + ``energy_kwh`` [kWh]
                                     (cumulative) and/or ``power_kw`` [kW]
``{prefix}/{facility}/rack/{rack}``   JSON object or array: ``ts`` + any of ``power_kw``,
                                     ``energy_kwh``, ``status``, ``function``,
                                     ``design_power_kw``
``{prefix}/{facility}/racks``         ``{"ts": …, "readings": [{"rack_id": …, …}, …]}``
``{prefix}/{facility}/lp``            InfluxDB line protocol (measurements ``meter`` and
                                     ``rack``, tags ``meter`` / ``rack``, ns time stamps)
==================================== =====================================================

A rejected reading never costs the accepted readings of the same message.
"""
from __future__ import annotations

import bisect
import datetime as dt
import math
import re
from dataclasses import dataclass, field
from itertools import chain
from operator import itemgetter

import numpy as np
import orjson

from dcmon.config.mappings import Mapping
from dcmon.readings import (DEFAULT_MAX_FUTURE, MAX_POWER_KW, RACK_FUNCTIONS, RACK_STATUSES, Rejection,
                            make_reading, parse_ts)

DEFAULT_PREFIX = "dcmon/v1"
ORIGIN = "mqtt"
MAX_RAW_CHARS = 2000          # raw text kept with a rejection [characters]
MAX_REASON_CHARS = 300        # a rejection reason is cut to this [characters] (it may quote attacker input)
MAX_TEXT_CHARS = 1024         # longest text value or field name in a reading [characters]
MAX_PAYLOAD_BYTES = 4 << 20   # longer payloads are rejected whole [bytes] (Mosquitto's limit is set lower)
MAX_LINE_CHARS = 65_536       # longest line of line protocol [characters]

METER_FIELDS = ("ts", "energy_kwh", "power_kw")
RACK_FIELDS = ("ts", "energy_kwh", "power_kw", "status", "function", "design_power_kw")
# Identity fields a payload may repeat; they must then agree with the topic.
IDENTITY_FIELDS = ("facility_id", "kind", "meter_id", "rack_id", "source_id")


class Rows:
    """Accepted readings in arrival order: dict rows (general path) and column blocks (fast path).

    A rack scan of hundreds of plain ``{"rack_id", "power_kw"}`` readings becomes one block of
    columns instead of hundreds of dicts, which is what lets the collector store several hundred
    thousand readings per second. :meth:`as_dicts` gives every row as a dict (tests, tools);
    :meth:`to_table` builds the Arrow table for the store, preserving arrival order (the store
    keeps the first row of a key).
    """

    def __init__(self):
        self.segments: list = []     # list[dict] or _Block, in arrival order
        self.count = 0

    def append(self, row: dict) -> None:
        if not self.segments or not isinstance(self.segments[-1], list):
            self.segments.append([])
        self.segments[-1].append(row)
        self.count += 1

    def add_block(self, block: "_Block") -> None:
        if block.source_ids:
            self.segments.append(block)
            self.count += len(block.source_ids)

    def __len__(self):
        return self.count

    def as_dicts(self) -> list[dict]:
        out = []
        for seg in self.segments:
            out += seg if isinstance(seg, list) else seg.as_dicts()
        return out

    def to_table(self):
        import pyarrow as pa

        from dcmon.readings import SCHEMA, to_table
        # Dict rows: from_pylist (~3× faster than column-by-column comprehension; missing keys are null).
        # A run of consecutive blocks (one per rack scan) becomes one set of columns, not one table per
        # scan: per-scan tables cost ~0.6 µs a reading, most of it fixed per-array overhead.
        tables, run = [], []
        for seg in self.segments:
            if isinstance(seg, list):
                if run:
                    tables.append(_blocks_table(run))
                    run = []
                tables.append(pa.Table.from_pylist(seg, schema=SCHEMA))
            else:
                run.append(seg)
        if run:
            tables.append(_blocks_table(run))
        if not tables:
            return to_table([])
        return tables[0] if len(tables) == 1 else pa.concat_tables(tables)

    def update_last_seen(self, last_seen, table=None) -> None:
        """``last_seen[facility_id][source_id] = (ts_ms, received_ms)`` for every row, in arrival order.

        ``table``: these rows as built by :meth:`to_table`; for a large batch the last row of each
        source is then found with an Arrow group-by (outside the GIL) rather than one dict update a row.
        """
        if table is not None and table.num_rows >= LAST_SEEN_ARROW_ROWS:
            for fac, latest in latest_by_source(table).items():
                last_seen[fac].update(latest)
            return
        for seg in self.segments:
            if isinstance(seg, list):
                for r in seg:
                    last_seen[r["facility_id"]][r["source_id"]] = (r["ts"], r["received_at"])
            else:
                last_seen[seg.facility_id].update(dict.fromkeys(seg.source_ids, (seg.ts, seg.received_at)))


LAST_SEEN_ARROW_ROWS = 16_384   # from this many rows a batch (rack scans), last_seen is computed with Arrow


def latest_by_source(table) -> dict:
    """``{facility_id: {source_id: (ts_ms, received_ms)}}`` of the last row (in table order) of each source."""
    import pyarrow as pa
    import pyarrow.compute as pc
    keys = pa.table({"f": table.column("facility_id"), "s": table.column("source_id"),
                     "i": pa.array(np.arange(table.num_rows, dtype=np.int64))})
    last = keys.group_by(["f", "s"], use_threads=False).aggregate([("i", "max")]).column("i_max")
    sub = table.select(["facility_id", "source_id", "ts", "received_at"]).take(last)
    cols = [sub.column(0).to_pylist(), sub.column(1).to_pylist(),
            pc.cast(sub.column(2), pa.int64()).to_pylist(), pc.cast(sub.column(3), pa.int64()).to_pylist()]
    out: dict = {}
    for fac, src, ts, rec in zip(*cols):
        d = out.get(fac)
        if d is None:
            d = out[fac] = {}
        d[src] = (ts, rec)
    return out


@dataclass
class _Block:
    """Rack power readings of one scan that passed the fast checks: same facility, kind, ts.

    ``power_kw`` is a list of floats (per-reading path) or a float64 array (whole-scan path)."""

    facility_id: str
    kind: str
    ts: int
    received_at: int
    origin: str
    source_ids: list = field(default_factory=list)
    power_kw: list = field(default_factory=list)

    def as_dicts(self) -> list[dict]:
        power = self.power_kw.tolist() if isinstance(self.power_kw, np.ndarray) else self.power_kw
        return [{"facility_id": self.facility_id, "kind": self.kind, "source_id": sid, "ts": self.ts,
                 "received_at": self.received_at, "origin": self.origin, "energy_kwh": None, "power_kw": p,
                 "status": None, "function": None, "design_power_kw": None}
                for sid, p in zip(self.source_ids, power)]

    def to_table(self):
        return _blocks_table([self])


def _blocks_table(blocks: list):
    """One Arrow table (SCHEMA) of consecutive blocks, rows in block order."""
    import pyarrow as pa

    from dcmon.readings import SCHEMA, TS_TYPE
    counts = np.fromiter((len(b.source_ids) for b in blocks), dtype=np.int64, count=len(blocks))
    n = int(counts.sum())

    def per_block_int(attr):
        return pa.array(np.repeat(np.fromiter((getattr(b, attr) for b in blocks), dtype=np.int64,
                                              count=len(blocks)), counts), type=TS_TYPE)

    def per_block_str(attr):
        runs: list = []     # [value, rows] of consecutive blocks with the same value (usually one run)
        for b, c in zip(blocks, counts.tolist()):
            v = getattr(b, attr)
            if runs and runs[-1][0] == v:
                runs[-1][1] += c
            else:
                runs.append([v, c])
        parts = [pa.repeat(pa.scalar(v, pa.string()), c) for v, c in runs]
        return parts[0] if len(parts) == 1 else pa.concat_arrays(parts)

    power = np.concatenate([np.asarray(b.power_kw, dtype=np.float64) for b in blocks])
    cols = {"facility_id": per_block_str("facility_id"), "kind": per_block_str("kind"),
            "source_id": pa.array(list(chain.from_iterable(b.source_ids for b in blocks)), pa.string()),
            "ts": per_block_int("ts"), "energy_kwh": pa.nulls(n, pa.float64()), "power_kw": pa.array(power),
            "status": pa.nulls(n, pa.string()), "function": pa.nulls(n, pa.string()),
            "design_power_kw": pa.nulls(n, pa.float64()), "received_at": per_block_int("received_at"),
            "origin": per_block_str("origin")}
    return pa.Table.from_arrays([cols[f.name] for f in SCHEMA], schema=SCHEMA)


def _raw(value) -> str:
    """The rejected input as text for the quarantine, at most ``MAX_RAW_CHARS`` (never a repr of a
    nested value: that recurses, and costs memory for nothing)."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        n = len(value)
        text = bytes(value[:MAX_RAW_CHARS * 4]).decode("utf-8", errors="replace")
        if n > MAX_RAW_CHARS * 4 or len(text) > MAX_RAW_CHARS:
            return text[:MAX_RAW_CHARS] + f"… ({n} bytes)"
        return text
    if isinstance(value, str):
        text = value
    else:
        try:
            text = orjson.dumps(value).decode()
        except Exception as e:  # noqa: BLE001 - too deep, not JSON: say so instead
            return f"<{type(value).__name__} not shown: {e}>"
    return text if len(text) <= MAX_RAW_CHARS else text[:MAX_RAW_CHARS] + f"… ({len(text)} characters)"


def _short(value, limit: int = 60) -> str:
    """``repr`` of a scalar for a reason, cut to ``limit`` characters."""
    r = repr(value) if isinstance(value, (str, int, float, bool, type(None))) else f"<{type(value).__name__}>"
    return r if len(r) <= limit else r[:limit] + f"… ({len(r)} characters)"


def _cut(text: str, limit: int = MAX_REASON_CHARS) -> str:
    return text if len(text) <= limit else text[:limit] + f"… ({len(text)} characters)"


def _field_problem(obj: dict) -> str | None:
    """Why a reading object cannot be a reading before looking at its meaning: a nested value (arrays
    and objects are never reading values; a deep one would cost the message) or an oversized text."""
    for k, v in obj.items():
        t = type(v)
        if t is float or t is int:
            continue
        if len(k) > MAX_TEXT_CHARS:
            return f"a field name is {len(k)} characters long (limit {MAX_TEXT_CHARS})"
        if t is dict or t is list:
            return (f"field {_short(k)} is a JSON {'object' if t is dict else 'array'}; reading fields take "
                    f"numbers, text or time stamps")
        if t is str and len(v) > MAX_TEXT_CHARS:
            return f"field {_short(k)} is {len(v)} characters long (limit {MAX_TEXT_CHARS})"
    return None


# ----------------------------------------------------------------------------- jump guard
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


_MISSING = object()


def get_path(doc, path: str):
    """``a.b.0.c`` in nested dicts and lists; a missing step gives the sentinel ``_MISSING``."""
    cur = doc
    for step in path.split("."):
        if isinstance(cur, dict):
            cur = cur.get(step, _MISSING)
        elif isinstance(cur, list) and step.lstrip("-").isdigit() and -len(cur) <= int(step) < len(cur):
            cur = cur[int(step)]
        else:
            return _MISSING
        if cur is _MISSING:
            return _MISSING
    return cur


def mapped_ts(value, fmt: str, tzname: str | None):
    """A device time stamp in ``fmt`` → epoch ms, or the value for :func:`parse_ts` (``auto``)."""
    if fmt in ("auto", "epoch_ms"):
        if fmt == "auto" and isinstance(value, str) and tzname and not value.strip().lstrip("-").isdigit():
            return _localize(value, None, tzname)
        return value
    if fmt == "iso":
        if tzname and isinstance(value, str):
            return _localize(value, None, tzname)
        return value
    if fmt.startswith("epoch_"):
        scale = {"epoch_s": 1000, "epoch_us": 1e-3, "epoch_ns": 1e-6}[fmt]
        if isinstance(value, bool):
            raise ValueError(f"ts: not a number: {value!r}")
        try:
            x = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"ts: not a {fmt} number: {value!r}") from None
        if not math.isfinite(x):
            raise ValueError(f"ts: not finite: {value!r}")
        if fmt == "epoch_ns" and isinstance(value, int):
            return value // 1_000_000
        return int(round(x * scale))
    return _localize(value, fmt[len("strptime:"):], tzname)


def _localize(value, pattern, tzname):
    from dcmon.periods import zone
    if not isinstance(value, str):
        raise ValueError(f"ts: expected a text time stamp, got {value!r}")
    try:
        t = dt.datetime.strptime(value.strip(), pattern) if pattern else dt.datetime.fromisoformat(value.strip())
    except ValueError:
        raise ValueError(f"ts: {value!r} does not match the format {pattern or 'ISO 8601'!r}") from None
    if t.tzinfo is None:
        t = t.replace(tzinfo=zone(tzname))
    return int(round(t.timestamp() * 1000))


# -------------------------------------------------------------------------------- parsers
@dataclass
class Context:
    """What the parsers need besides the message: registry, clock reading and options."""

    registry: object
    received_at_ms: int
    prefix: str = DEFAULT_PREFIX
    mappings: list = field(default_factory=list)
    guard: JumpGuard | None = None
    max_future: dt.timedelta = DEFAULT_MAX_FUTURE
    origin: str = ORIGIN
    fast: bool = True           # False: every reading through make_reading (the equivalence tests)


def parse(topic: str, payload: bytes, registry, *, received_at_ms: int, prefix: str = DEFAULT_PREFIX,
          mappings=(), guard: JumpGuard | None = None, max_future: dt.timedelta = DEFAULT_MAX_FUTURE,
          origin: str = ORIGIN, fast: bool = True) -> tuple[list[dict], list[Rejection]]:
    """Decode and validate one MQTT message.

    Parameters
    ----------
    topic : the MQTT topic the message arrived on
    payload : the raw message bytes
    registry : :class:`dcmon.registry.Registry`
    received_at_ms : when the message arrived [ms since epoch, UTC]
    prefix : topic prefix of the contract (default ``dcmon/v1``)
    mappings : :class:`Mapping` list for payloads in other shapes
    guard : :class:`JumpGuard` holding the last counters (None: no jump check)
    max_future : how far a time stamp may be ahead of ``received_at_ms``

    Returns ``(rows, rejections)``: rows of :data:`dcmon.readings.SCHEMA` (``ts`` in epoch ms)
    and one :class:`dcmon.readings.Rejection` per rejected reading or message.
    """
    ctx = Context(registry=registry, received_at_ms=received_at_ms, prefix=prefix.rstrip("/"),
                  mappings=list(mappings), guard=guard, max_future=max_future, origin=origin, fast=fast)
    rows, rejections = parse_message(topic, payload, ctx)
    return rows.as_dicts(), rejections


def parse_message(topic: str, payload: bytes, ctx: Context, rows: Rows | None = None) -> tuple[Rows, list[Rejection]]:
    """Like :func:`parse`, appending accepted readings to ``rows`` (a :class:`Rows`, new if None)."""
    rows = Rows() if rows is None else rows
    rejections: list[Rejection] = []
    try:
        _parse_any(topic, payload, ctx, rows, rejections)
    except Exception as e:  # a parser bug must not stop the collector: quarantine the message
        rejections.append(Rejection(topic, f"internal error while parsing ({type(e).__name__}: {_cut(str(e), 120)}); "
                                           "please report it with this payload", _raw(payload)))
    for r in rejections:   # reasons and places may quote attacker input: keep them short
        if len(r.reason) > MAX_REASON_CHARS:
            r.reason = _cut(r.reason)
        if len(r.where) > MAX_REASON_CHARS:
            r.where = _cut(r.where)
    return rows, rejections


def _parse_any(topic, payload, ctx, rows, rejections) -> None:
    if len(payload) > MAX_PAYLOAD_BYTES:
        rejections.append(Rejection(topic, f"payload is {len(payload)} bytes (limit {MAX_PAYLOAD_BYTES})",
                                    _raw(payload)))
        return
    pre = ctx.prefix + "/"
    if topic.startswith(pre):
        parts = topic[len(pre):].split("/")
        if len(parts) == 3 and parts[1] in ("meter", "rack"):
            _parse_single(topic, parts[0], parts[1], parts[2], payload, ctx, rows, rejections)
            return
        if len(parts) == 2 and parts[1] == "racks":
            _parse_scan(topic, parts[0], payload, ctx, rows, rejections)
            return
        if len(parts) == 2 and parts[1] == "lp":
            _parse_line_protocol(topic, parts[0], payload, ctx, rows, rejections)
            return
    for m in ctx.mappings:
        found = m.match(topic)
        if found is not None:
            _parse_mapped(topic, m, found, payload, ctx, rows, rejections)
            return
    rejections.append(Rejection(topic, f"topic does not follow the contract ({ctx.prefix}/<facility>/meter/<id>, "
                                       f"…/rack/<id>, …/racks, …/lp) nor any payload mapping", _raw(payload)))


def _decode_json(topic, payload, rejections):
    try:
        return orjson.loads(payload)
    except orjson.JSONDecodeError as e:
        items = _split_array(payload) if len(payload) <= MAX_SPLIT_BYTES else None
        if items is None:
            rejections.append(Rejection(topic, f"malformed JSON: {_cut(str(e), 200)}", _raw(payload)))
            return _MISSING
    # An array the decoder refuses as a whole (an item too deep — orjson stops at 1024 levels —, an
    # Infinity literal, a stray comma): decode item by item, so only the offending items are rejected.
    doc = []
    for i, chunk in enumerate(items):
        try:
            doc.append(orjson.loads(chunk))
        except orjson.JSONDecodeError as e:
            rejections.append(Rejection(f"{topic}[{i}]", f"malformed JSON: {_cut(str(e), 200)}", _raw(chunk)))
            doc.append(_BAD_ITEM)
    return doc


_BAD_ITEM = object()     # an array item already rejected by _decode_json
MAX_SPLIT_BYTES = 256 << 10   # an undecodable array is split item by item up to this size [bytes]


def _split_array(payload) -> list[bytes] | None:
    """The items of a top-level JSON array as byte strings (not decoded), or None when the payload is
    not a well-bracketed array. Iterative: any depth costs no recursion."""
    b = bytes(payload).strip()
    if not b.startswith(b"[") or not b.endswith(b"]"):
        return None
    items, depth, start, in_str, esc = [], 0, 1, False, False
    for i in range(1, len(b) - 1):
        ch = b[i]
        if in_str:
            if esc:
                esc = False
            elif ch == 0x5C:        # backslash
                esc = True
            elif ch == 0x22:        # quote
                in_str = False
        elif ch == 0x22:
            in_str = True
        elif ch in (0x5B, 0x7B):    # [ {
            depth += 1
        elif ch in (0x5D, 0x7D):    # ] }
            depth -= 1
            if depth < 0:
                return None
        elif ch == 0x2C and depth == 0:   # comma between items
            items.append(b[start:i])
            start = i + 1
    if depth != 0 or in_str:
        return None
    last = b[start:-1]
    if last.strip() or items:
        items.append(last)
    return items


def _accept(ctx: Context, facility_id, kind, source_id, raw, where, rows, rejections):
    try:
        fac = ctx.registry.facilities.get(facility_id)
        row = make_reading(ctx.registry, facility_id, kind, source_id, raw, received_at_ms=ctx.received_at_ms,
                           origin=ctx.origin, max_future=ctx.max_future)
        if ctx.guard is not None:
            ctx.guard.check(fac, row)
    except ValueError as e:
        rejections.append(Rejection(where, str(e), _raw(raw)))
        return
    rows.append(row)


def _contradiction(obj: dict, facility_id, kind, source_id) -> str | None:
    for k in IDENTITY_FIELDS:
        if k not in obj:
            continue
        v = obj[k]
        expected = {"facility_id": facility_id, "kind": kind, "source_id": source_id,
                    "meter_id": source_id if kind == "meter" else None,
                    "rack_id": source_id if kind == "rack" else None}[k]
        if v != expected:
            return (f"payload says {k}={v!r} but the topic says "
                    + (f"{kind} {source_id!r} of facility {facility_id!r}" if expected is None or k != "facility_id"
                       else f"facility {facility_id!r}"))
    return None


def _check_fields(obj, allowed, kind):
    unknown = [k for k in obj if k not in allowed and k not in IDENTITY_FIELDS]
    if unknown:
        return (f"unknown field(s) {', '.join(map(repr, unknown))} for a {kind} reading "
                f"(expected {', '.join(allowed)})")
    return None


def _parse_single(topic, facility_id, kind, source_id, payload, ctx, rows, rejections):
    doc = _decode_json(topic, payload, rejections)
    if doc is _MISSING:
        return
    items = doc if isinstance(doc, list) else [doc]
    if isinstance(doc, list) and not doc:
        rejections.append(Rejection(topic, "empty array: no readings", _raw(payload)))
        return
    # Rack fields on a meter topic pass here so make_reading can say "status applies to racks".
    allowed = RACK_FIELDS
    for i, obj in enumerate(items):
        where = f"{topic}[{i}]" if isinstance(doc, list) else topic
        if obj is _BAD_ITEM:
            continue
        if not isinstance(obj, dict):
            rejections.append(Rejection(where, f"expected a JSON object {{\"ts\": …, …}}, got {type(obj).__name__}",
                                        _raw(obj)))
            continue
        problem = _field_problem(obj) or _contradiction(obj, facility_id, kind, source_id) \
            or _check_fields(obj, allowed, kind)
        if problem:
            rejections.append(Rejection(where, problem, _raw(obj)))
            continue
        _accept(ctx, facility_id, kind, source_id, obj, where, rows, rejections)


def _parse_scan(topic, facility_id, payload, ctx, rows, rejections):
    doc = _decode_json(topic, payload, rejections)
    if doc is _MISSING:
        return
    if not isinstance(doc, dict) or not isinstance(doc.get("readings"), list):
        rejections.append(Rejection(topic, 'a rack scan must be {"ts": …, "readings": [{"rack_id": …, …}, …]}',
                                    _raw(payload)))
        return
    bad = [k for k in doc if k not in ("ts", "readings", "facility_id")]
    if bad or ("facility_id" in doc and doc["facility_id"] != facility_id):
        reason = (f"payload says facility_id={doc.get('facility_id')!r} but the topic says facility {facility_id!r}"
                  if not bad else f"unknown field(s) {', '.join(map(repr, bad))} in a rack scan (expected ts, readings)")
        rejections.append(Rejection(topic, reason, _raw(payload)))
        return
    scan_ts = doc.get("ts")
    if type(scan_ts) in (list, dict):
        rejections.append(Rejection(topic, f"the scan's ts is a JSON {'object' if type(scan_ts) is dict else 'array'}, "
                                           "not a time stamp", _raw(payload)))
        return
    fast = _scan_fast_path(facility_id, scan_ts, ctx) if ctx.fast else None
    if fast is not None and doc["readings"]:
        plain = _plain_scan(doc["readings"], fast[1], fast[2], fast[3])
        if plain is not None:   # the usual scan: every reading checked at once, no per-reading Python
            rows.add_block(_Block(facility_id, "rack", fast[0], ctx.received_at_ms, ctx.origin, *plain))
            return
    block = None
    if fast is not None:
        scan_ms, rack_ids, ceilings, _ = fast
        block = _Block(facility_id, "rack", scan_ms, ctx.received_at_ms, ctx.origin)
        src_append, p_append = block.source_ids.append, block.power_kw.append
    for i, obj in enumerate(doc["readings"]):
        if block is not None and type(obj) is dict and len(obj) == 2:
            # Exactly what make_reading accepts for {"rack_id", "power_kw"} with the scan's ts;
            # anything else takes the general path below and gets its reason from make_reading.
            rid = obj.get("rack_id")
            p = obj.get("power_kw")
            if type(rid) is str and rid in rack_ids and (type(p) is float or type(p) is int) \
                    and 0 <= p <= ceilings[rid]:   # (a list or dict rack_id is unhashable: general path)
                src_append(rid)
                p_append(float(p))
                continue
        if block is not None and block.source_ids:
            # Keep arrival order (the store keeps the first row of a key): close the block here.
            rows.add_block(block)
            block = _Block(facility_id, "rack", scan_ms, ctx.received_at_ms, ctx.origin)
            src_append, p_append = block.source_ids.append, block.power_kw.append
        where = f"{topic} readings[{i}]"
        if not isinstance(obj, dict):
            rejections.append(Rejection(where, f"expected a JSON object with rack_id, got {type(obj).__name__}",
                                        _raw(obj)))
            continue
        problem = _field_problem(obj)
        if problem:
            rejections.append(Rejection(where, problem, _raw(obj)))
            continue
        rid = obj.get("rack_id")
        if not isinstance(rid, str) or not rid:
            rejections.append(Rejection(where, "missing rack_id", _raw(obj)))
            continue
        extra = [k for k in obj if k not in RACK_FIELDS and k != "rack_id"]
        if extra:
            rejections.append(Rejection(where, f"unknown field(s) {', '.join(map(repr, extra))} for a rack reading "
                                               f"(expected rack_id, {', '.join(RACK_FIELDS)})", _raw(obj)))
            continue
        raw = {k: v for k, v in obj.items() if k != "rack_id"}
        if "ts" not in raw:
            raw["ts"] = scan_ts
        _accept(ctx, facility_id, "rack", rid, raw, where, rows, rejections)
    if block is not None:
        rows.add_block(block)


_RACK_ID = itemgetter("rack_id")
_POWER_KW = itemgetter("power_kw")
_PLAIN_NUMBER_TYPES = frozenset((float, int))   # exact types: bool (a subclass of int) is not a number here


def _plain_scan(readings: list, rack_ids, ceilings: dict, min_ceiling: float = -math.inf):
    """``(rack ids, power_kw float64 array)`` when *every* reading of a scan is a plain
    ``{"rack_id": <known rack>, "power_kw": <int or float>}`` with ``0 <= power_kw <= ceiling``, else None.

    The same conditions as the per-reading fast check in :func:`_parse_scan` (exactly what
    ``make_reading`` and the jump guard accept for that shape with the scan's valid ts), tested for the
    whole scan at once with C-level ``map``/set operations and numpy. On anything else (one odd reading
    is enough) it returns None and the per-reading path decides every reading, reasons included.
    ``min_ceiling``: the smallest ceiling of the facility (NaN if any is NaN); when no power exceeds
    it, the per-rack ceilings need not be looked up.
    """
    try:
        # orjson gives dict, list, str, int, float, bool or None: len() refuses the scalars, and the
        # itemgetters below refuse a list or str of length 2, so only two-key dicts get through.
        if set(map(len, readings)) != {2}:
            return None
        rids = list(map(_RACK_ID, readings))        # two keys, both present: exactly rack_id and power_kw
        powers = list(map(_POWER_KW, readings))
        if not rack_ids.issuperset(rids) or not _PLAIN_NUMBER_TYPES.issuperset(map(type, powers)):
            return None
        p = np.array(powers, dtype=np.float64)      # ints: correctly rounded, as float() does
        # NaN never passes a comparison; an int above 2**53 rounds but stays far above any ceiling (≤ 1e7 kW).
        if not p.min() >= 0:
            return None
        if not p.max() <= min_ceiling:
            limit = np.fromiter(map(ceilings.__getitem__, rids), dtype=np.float64, count=len(rids))
            if not (p <= limit).all():
                return None
    except (KeyError, TypeError, ValueError, OverflowError):   # unhashable rack_id, int beyond float...
        return None
    return rids, p


def _scan_fast_path(facility_id, scan_ts, ctx):
    """(scan ts [ms], rack ids, power ceilings [kW], smallest ceiling [kW]) when the scan's own fields are
    valid, else None."""
    fac = ctx.registry.facilities.get(facility_id)
    if fac is None:
        return None
    try:
        ms = parse_ts(scan_ts)
    except ValueError:
        return None
    if ms > ctx.received_at_ms + ctx.max_future.total_seconds() * 1000:
        return None
    if ctx.guard is not None:
        ceilings, min_ceiling = ctx.guard.rack_ceilings(fac), ctx.guard.min_rack_ceiling(fac)
    else:
        ceilings, min_ceiling = dict.fromkeys(fac.rack_ids, MAX_POWER_KW), MAX_POWER_KW
    return ms, fac.rack_ids, ceilings, min_ceiling


# ------------------------------------------------------------------------- line protocol
_LP_MEASUREMENTS = {"meter": ("meter", METER_FIELDS[1:]), "rack": ("rack", RACK_FIELDS[1:])}


def _split_unescaped(text: str, sep: str, *, quotes: bool = False) -> list[str]:
    out, cur, i, inq = [], [], 0, False
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            cur.append(text[i:i + 2])
            i += 2
            continue
        if quotes and ch == '"':
            inq = not inq
        if ch == sep and not inq:
            out.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
        i += 1
    if inq:
        raise ValueError("unterminated string field")
    out.append("".join(cur))
    return out


def _unescape(s: str) -> str:
    return re.sub(r"\\([ ,=\"\\])", r"\1", s)


def parse_line(line: str) -> tuple[str, dict, dict, int | None]:
    """One line of InfluxDB line protocol → (measurement, tags, fields, timestamp [ns] or None)."""
    sections = _split_unescaped(line, " ", quotes=True)
    sections = [s for s in sections if s != ""]
    if len(sections) < 2:
        raise ValueError("expected 'measurement,tags fields timestamp'")
    if len(sections) > 3:
        raise ValueError("too many space-separated sections (unescaped space?)")
    head = _split_unescaped(sections[0], ",")
    measurement = _unescape(head[0])
    tags = {}
    for t in head[1:]:
        kv = _split_unescaped(t, "=")
        if len(kv) != 2 or not kv[0]:
            raise ValueError(f"bad tag {t!r}")
        tags[_unescape(kv[0])] = _unescape(kv[1])
    fields = {}
    for f in _split_unescaped(sections[1], ",", quotes=True):
        kv = _split_unescaped(f, "=", quotes=True)
        if len(kv) != 2 or not kv[0]:
            raise ValueError(f"bad field {f!r}")
        key, val = _unescape(kv[0]), kv[1]
        if val.startswith('"'):
            if len(val) < 2 or not val.endswith('"'):
                raise ValueError(f"bad string field {f!r}")
            fields[key] = _unescape(val[1:-1])
        elif val[-1:] in ("i", "u") and val[:-1].lstrip("-").isdigit():
            fields[key] = int(val[:-1])
        elif val in ("t", "T", "true", "True", "TRUE", "f", "F", "false", "False", "FALSE"):
            fields[key] = val.lower().startswith("t")
        else:
            try:
                fields[key] = float(val)
            except ValueError:
                raise ValueError(f"field {key!r} is not a number, string or boolean: {val!r}") from None
    ts = None
    if len(sections) == 3:
        if not sections[2].lstrip("-").isdigit():
            raise ValueError(f"timestamp is not an integer (nanoseconds): {sections[2]!r}")
        ts = int(sections[2])
    return measurement, tags, fields, ts


def _parse_line_protocol(topic, facility_id, payload, ctx, rows, rejections):
    try:
        text = bytes(payload).decode("utf-8")
    except UnicodeDecodeError as e:
        rejections.append(Rejection(topic, f"malformed line protocol: not UTF-8 ({e})", _raw(payload)))
        return
    for lineno, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        where = f"{topic} line {lineno}"
        if len(line) > MAX_LINE_CHARS:
            rejections.append(Rejection(where, f"line is {len(line)} characters long (limit {MAX_LINE_CHARS})",
                                        _raw(line)))
            continue
        try:
            measurement, tags, fields, ts_ns = parse_line(line)
        except ValueError as e:
            rejections.append(Rejection(where, f"malformed line protocol: {e}", _raw(line)))
            continue
        if measurement not in _LP_MEASUREMENTS:
            rejections.append(Rejection(where, f"unknown measurement {measurement!r} (expected meter or rack)",
                                        _raw(line)))
            continue
        kind, allowed = _LP_MEASUREMENTS[measurement]
        source_id = tags.get(kind)
        if not source_id:
            rejections.append(Rejection(where, f"missing tag {kind}=<id>", _raw(line)))
            continue
        fac_tag = tags.get("facility", tags.get("facility_id"))
        if fac_tag is not None and fac_tag != facility_id:
            rejections.append(Rejection(where, f"tag facility={fac_tag!r} but the topic says facility "
                                               f"{facility_id!r}", _raw(line)))
            continue
        unknown = [k for k in fields if k not in allowed]
        if unknown:
            rejections.append(Rejection(where, f"unknown field(s) {', '.join(map(repr, unknown))} for measurement "
                                               f"{measurement} (expected {', '.join(allowed)})", _raw(line)))
            continue
        if ts_ns is None:
            rejections.append(Rejection(where, "missing timestamp (the meter's time in nanoseconds is required)",
                                        _raw(line)))
            continue
        raw = dict(fields)
        raw["ts"] = ts_ns // 1_000_000
        _accept(ctx, facility_id, kind, source_id, raw, where, rows, rejections)


# ------------------------------------------------------------------------------- mapped
def _parse_mapped(topic, m: Mapping, found: dict, payload, ctx, rows, rejections):
    doc = _decode_json(topic, payload, rejections)
    if doc is _MISSING:
        return
    if m.records:
        items = get_path(doc, m.records)
        if not isinstance(items, list):
            rejections.append(Rejection(topic, f"mapping {m.name!r}: records path {m.records!r} is not an array",
                                        _raw(payload)))
            return
    else:
        items = doc if isinstance(doc, list) else [doc]
    for i, obj in enumerate(items):
        if obj is _BAD_ITEM:
            continue
        where = f"{topic}[{i}]" if len(items) > 1 or m.records else topic
        try:
            fac = found.get("facility_id") or m.facility_id
            if m.facility_path:
                fac = get_path(obj, m.facility_path)
            src = found.get("source_id") or m.source_id
            if m.source_path:
                src = get_path(obj, m.source_path)
            if fac is _MISSING or not isinstance(fac, str):
                raise ValueError(f"mapping {m.name!r}: no facility id at {m.facility_path!r}")
            if src is _MISSING or not isinstance(src, (str, int)):
                raise ValueError(f"mapping {m.name!r}: no source id at {m.source_path!r}")
            ts_val = get_path(obj, m.ts_path)
            if ts_val is _MISSING:
                raise ValueError(f"missing ts (mapping {m.name!r} reads it from {m.ts_path!r})")
            if type(ts_val) in (list, dict) or (type(ts_val) is str and len(ts_val) > MAX_TEXT_CHARS):
                raise ValueError(f"ts (from {m.ts_path!r}) is not a time stamp: {_short(ts_val)}")
            raw = {"ts": mapped_ts(ts_val, m.ts_format, m.ts_timezone)}
            for fname, (path, factor) in m.fields.items():
                v = get_path(obj, path)
                if v is _MISSING:
                    continue
                if type(v) in (list, dict) or (type(v) is str and len(v) > MAX_TEXT_CHARS):
                    raise ValueError(f"{fname} (from {path!r}) is not a number or short text: {_short(v)}")
                if factor != 1.0 and v is not None:
                    if isinstance(v, bool):
                        raise ValueError(f"{fname} (from {path!r}) is not a number: {v!r}")
                    try:
                        v = float(v) * factor
                    except (TypeError, ValueError):
                        raise ValueError(f"{fname} (from {path!r}) is not a number: {v!r}") from None
                raw[fname] = v
        except ValueError as e:
            rejections.append(Rejection(where, str(e), _raw(obj)))
            continue
        _accept(ctx, fac, m.kind, str(src), raw, where, rows, rejections)


__all__ = ["parse", "parse_message", "parse_line", "Context", "Rows", "JumpGuard", "Mapping",
           "DEFAULT_PREFIX", "RACK_STATUSES", "RACK_FUNCTIONS", "parse_ts"]
