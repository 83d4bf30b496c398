"""What every payload parser shares: the parsing context, the format record, limits, JSON decoding
that keeps the good items of a bad array, the accept step (make_reading + jump guard), and the
helpers that keep attacker input short in rejections.

Nothing here touches the network, the store or the clock: the receive time, the registry, the
topic prefix, the payload mappings and the jump guard are passed in a :class:`Context`.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Callable

import orjson

from dcmon.readings import DEFAULT_MAX_FUTURE, Rejection, make_reading

from dcmon.collector.jumpguard import JumpGuard

DEFAULT_PREFIX = "dcmon/v1"
ORIGIN = "mqtt"
MAX_RAW_CHARS = 2000          # raw text kept with a rejection [characters]
MAX_REASON_CHARS = 300        # a rejection reason is cut to this [characters] (it may quote attacker input)
MAX_TEXT_CHARS = 1024         # longest text value or field name in a reading [characters]
MAX_PAYLOAD_BYTES = 4 << 20   # longer payloads are rejected whole [bytes] (Mosquitto's limit is set lower)


@dataclass(frozen=True, slots=True)
class PayloadFormat:
    """One payload format, as registered in :data:`dcmon.collector.parsers.PARSERS`.

    route : ``(topic, ctx) -> route or None``: what ``parse`` needs from the topic (ids), or None
        when the topic is not this format's
    parse : ``(topic, route, payload, ctx, rows, rejections) -> None``: appends accepted readings
        to ``rows`` (:class:`dcmon.collector.buffers.Rows`) and :class:`dcmon.readings.Rejection`\\ s
        to ``rejections``; never raises for bad input
    topics : the topic shapes under ``{prefix}/<facility>/`` it takes, named in the rejection of a
        topic no format takes
    prepare : optional ``(batch, ctx) -> {index: block}``: decodes many of a batch's messages at once
        (``batch``: ``[(index, topic, route, payload, received_at_ms)]``) into column blocks
        (:class:`dcmon.collector.buffers._Block`) that stand for exactly what ``parse`` would accept from
        them, with no rejection; the messages it leaves out go through ``parse``
    """

    route: Callable
    parse: Callable
    topics: tuple = ()
    prepare: Callable | None = None


def contract_parts(topic: str, ctx) -> list[str] | None:
    """The levels of a contract topic after ``{prefix}/`` (facility first), or None."""
    pre = ctx.prefix + "/"
    return topic[len(pre):].split("/") if topic.startswith(pre) else None


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
    parsers: dict | None = None  # format name -> PayloadFormat (None: the registered table)


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



_MISSING = object()      # an absent value (a payload that is not JSON, a missing path)


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

