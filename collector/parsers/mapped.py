"""Mapped devices: payloads in a device's own shape on its own topics, read through a
:class:`dcmon.config.mappings.Mapping` (units, time-stamp formats, record arrays; docs/collector.md)."""
from __future__ import annotations

import datetime as dt
import math

from dcmon.readings import Rejection

from dcmon.config.mappings import Mapping
from dcmon.collector.parsers.common import (_BAD_ITEM, _MISSING, MAX_TEXT_CHARS, PayloadFormat, _accept,
                                            _decode_json, _raw, _short)


def route(topic: str, ctx):
    """``(mapping, ids found in the topic)`` of the first mapping whose topic template matches, else None."""
    for m in ctx.mappings:
        found = m.match(topic)
        if found is not None:
            return m, found
    return None


def parse(topic, route, payload, ctx, rows, rejections) -> None:
    _parse_mapped(topic, route[0], route[1], payload, ctx, rows, rejections)


FORMAT = PayloadFormat(route=route, parse=parse)


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

