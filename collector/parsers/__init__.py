"""Pure parsers: one MQTT message ``(topic, payload)`` → readings and rejections.

Each payload format is one module with a ``FORMAT`` (:class:`~dcmon.collector.parsers.common.PayloadFormat`:
which topics it takes, how it reads them), registered in :data:`PARSERS`. The ingest loop is handed
that table; a message goes to the first format whose ``route`` takes its topic. Each reading is
validated by :func:`dcmon.readings.make_reading`, the same function ``dcmon import`` uses.

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
a mapping's topic template           the device's own JSON, read through the mapping
==================================== =====================================================

A rejected reading never costs the accepted readings of the same message.
"""
from __future__ import annotations

import datetime as dt
import logging

from dcmon.readings import DEFAULT_MAX_FUTURE, Rejection

from dcmon.collector.buffers import Rows
from dcmon.collector.jumpguard import JumpGuard
from dcmon.collector.parsers import contract, line_protocol, mapped
from dcmon.collector.parsers.common import (DEFAULT_PREFIX, MAX_PAYLOAD_BYTES, MAX_REASON_CHARS, ORIGIN, Context,
                                            _cut, _raw)

log = logging.getLogger("dcmon.collector")

# Payload formats, tried in this order (contract topics before the mappings' templates).
PARSERS = {
    "contract-json": contract.FORMAT,
    "line-protocol": line_protocol.FORMAT,
    "mapped": mapped.FORMAT,
}


def parse(topic: str, payload: bytes, registry, *, received_at_ms: int, prefix: str = DEFAULT_PREFIX,
          mappings=(), guard: JumpGuard | None = None, max_future: dt.timedelta = DEFAULT_MAX_FUTURE,
          origin: str = ORIGIN, fast: bool = True, parsers: dict | None = None) -> tuple[list[dict], list[Rejection]]:
    """Decode and validate one MQTT message.

    Parameters
    ----------
    topic : the MQTT topic the message arrived on
    payload : the raw message bytes
    registry : :class:`dcmon.registry.Registry`
    received_at_ms : when the message arrived [ms since epoch, UTC]
    prefix : topic prefix of the contract (default ``dcmon/v1``)
    mappings : :class:`dcmon.config.mappings.Mapping` list for payloads in other shapes
    guard : :class:`JumpGuard` holding the last counters (None: no jump check)
    max_future : how far a time stamp may be ahead of ``received_at_ms``
    parsers : payload formats by name (None: :data:`PARSERS`)

    Returns ``(rows, rejections)``: rows of :data:`dcmon.readings.SCHEMA` (``ts`` in epoch ms)
    and one :class:`dcmon.readings.Rejection` per rejected reading or message.
    """
    ctx = Context(registry=registry, received_at_ms=received_at_ms, prefix=prefix.rstrip("/"),
                  mappings=list(mappings), guard=guard, max_future=max_future, origin=origin, fast=fast,
                  parsers=parsers)
    rows = Rows()
    [(rejections, _)] = parse_batch([(topic, payload, received_at_ms)], ctx, rows)
    return rows.as_dicts(), rejections


def parse_batch(items, ctx: Context, rows: Rows) -> list[tuple[list[Rejection], int]]:
    """Parse ``(topic, payload, received_at_ms)`` items in order into ``rows``; for each item, its
    rejections and the number of readings accepted from it.

    Each topic is routed once. Formats with a ``prepare`` step first decode the messages they can all
    at once (rack scans as columns); every other message goes through the per-message path of
    :func:`parse_message`. Rows stay in arrival order.
    """
    formats = PARSERS if ctx.parsers is None else ctx.parsers
    routes = [_route(formats, topic, ctx) for topic, _, _ in items]
    prepared: dict = {}
    for fmt in formats.values():
        if fmt.prepare is None:
            continue
        mine = [(i, topic, r[1], payload, received_ms)
                for i, ((topic, payload, received_ms), r) in enumerate(zip(items, routes)) if r is not None and r[0] is fmt]
        if mine:
            try:
                prepared.update(fmt.prepare(mine, ctx))
            except Exception:   # a bug in the batch step must cost nothing: the per-message path decides
                log.exception("batch parsing failed; parsing these %d messages one by one", len(mine))
    out = []
    for i, (topic, payload, received_ms) in enumerate(items):
        block = prepared.get(i)
        if block is not None:
            rows.add_block(block)
            out.append(([], len(block.source_ids)))
            continue
        ctx.received_at_ms = received_ms
        before = len(rows)
        rejections = _parse_routed(topic, payload, ctx, rows, routes[i])
        out.append((rejections, len(rows) - before))
    return out


def _route(formats: dict, topic: str, ctx):
    """``(format, route)`` of the first format that takes ``topic``, or None."""
    for fmt in formats.values():
        route = fmt.route(topic, ctx)
        if route is not None:
            return fmt, route
    return None


def parse_message(topic: str, payload: bytes, ctx: Context, rows: Rows | None = None) -> tuple[Rows, list[Rejection]]:
    """Like :func:`parse`, appending accepted readings to ``rows`` (a :class:`Rows`, new if None)."""
    rows = Rows() if rows is None else rows
    formats = PARSERS if ctx.parsers is None else ctx.parsers
    return rows, _parse_routed(topic, payload, ctx, rows, _route(formats, topic, ctx))


def _parse_routed(topic, payload, ctx, rows, routed) -> list[Rejection]:
    """One message whose topic was routed (``routed``: ``(format, route)`` or None); its rejections."""
    rejections: list[Rejection] = []
    try:
        _parse_any(topic, payload, ctx, rows, rejections, routed)
    except Exception as e:  # a parser bug must not stop the collector: quarantine the message
        rejections.append(Rejection(topic, f"internal error while parsing ({type(e).__name__}: {_cut(str(e), 120)}); "
                                           "please report it with this payload", _raw(payload)))
    for r in rejections:   # reasons and places may quote attacker input: keep them short
        if len(r.reason) > MAX_REASON_CHARS:
            r.reason = _cut(r.reason)
        if len(r.where) > MAX_REASON_CHARS:
            r.where = _cut(r.where)
    return rejections


def _parse_any(topic, payload, ctx, rows, rejections, routed) -> None:
    if len(payload) > MAX_PAYLOAD_BYTES:
        rejections.append(Rejection(topic, f"payload is {len(payload)} bytes (limit {MAX_PAYLOAD_BYTES})",
                                    _raw(payload)))
        return
    if routed is not None:
        fmt, route = routed
        fmt.parse(topic, route, payload, ctx, rows, rejections)
        return
    formats = PARSERS if ctx.parsers is None else ctx.parsers
    shapes = [t for fmt in formats.values() for t in fmt.topics] or ["…"]
    rejections.append(Rejection(topic, f"topic does not follow the contract ({ctx.prefix}/<facility>/{shapes[0]}"
                                       + "".join(f", …/{t}" for t in shapes[1:]) + ") nor any payload mapping",
                                _raw(payload)))


__all__ = ["parse", "parse_batch", "parse_message", "PARSERS", "Context", "DEFAULT_PREFIX"]
