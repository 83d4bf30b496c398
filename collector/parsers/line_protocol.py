"""InfluxDB line protocol on ``{prefix}/{facility}/lp``: measurements ``meter`` and ``rack``, tags
``meter`` / ``rack`` (and optionally ``facility``), time stamps in nanoseconds."""
from __future__ import annotations

import re

from dcmon.readings import METER_FIELDS, RACK_FIELDS, Rejection

from dcmon.collector.parsers.common import PayloadFormat, _accept, _raw, contract_parts

MAX_LINE_CHARS = 65_536       # longest line of line protocol [characters]


def route(topic: str, ctx):
    """The facility of a ``{prefix}/{facility}/lp`` topic, else None."""
    parts = contract_parts(topic, ctx)
    return parts[0] if parts is not None and len(parts) == 2 and parts[1] == "lp" else None


def parse(topic, facility_id, payload, ctx, rows, rejections) -> None:
    _parse_line_protocol(topic, facility_id, payload, ctx, rows, rejections)


FORMAT = PayloadFormat(route=route, parse=parse, topics=("lp",))

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

