"""The contract's JSON payloads: one source's readings on ``{prefix}/{facility}/meter/{meter}`` and
``…/rack/{rack}`` (a JSON object or array), and rack scans on ``…/racks``
(``{"ts": …, "readings": [{"rack_id": …, …}, …]}``). See docs/collector.md for examples.

A plain scan (every reading ``{"rack_id", "power_kw"}``) is checked as a whole and becomes one
column block; anything else is decided reading by reading by :func:`dcmon.readings.make_reading`,
with the same outcome (tests/collector/test_coll_scan_batch.py).
"""
from __future__ import annotations

import math
from operator import itemgetter

import numpy as np

from dcmon.readings import MAX_POWER_KW, RACK_FIELDS, Rejection, parse_ts

from dcmon.collector.buffers import _Block
from dcmon.collector.parsers.common import (_BAD_ITEM, _MISSING, MAX_PAYLOAD_BYTES, PayloadFormat, _accept,
                                            _decode_json, _field_problem, _raw, contract_parts)

# Identity fields a payload may repeat; they must then agree with the topic.
IDENTITY_FIELDS = ("facility_id", "kind", "meter_id", "rack_id", "source_id")


def route(topic: str, ctx):
    """``(facility, kind, source)`` for a single source's topic, ``(facility,)`` for a scan, else None."""
    parts = contract_parts(topic, ctx)
    if parts is None:
        return None
    if len(parts) == 3 and parts[1] in ("meter", "rack"):
        return parts[0], parts[1], parts[2]
    if len(parts) == 2 and parts[1] == "racks":
        return (parts[0],)
    return None


def parse(topic, route, payload, ctx, rows, rejections) -> None:
    if len(route) == 3:
        _parse_single(topic, *route, payload, ctx, rows, rejections)
    else:
        _parse_scan(topic, route[0], payload, ctx, rows, rejections)


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



# ------------------------------------------------------------------ plain scans, a batch at once
# A compact plain scan, byte for byte: {"ts":<epoch ms>,"readings":[{"rack_id":"<id>","power_kw":<n>},…]}.
# The pattern admits only text that is valid JSON of exactly that shape and that orjson decodes to the
# same values: rack ids of printable ASCII without quote or backslash (no escapes); powers without sign
# or exponent, with at most 15 integer digits and no leading zero (so text → float64 is exact for
# integers and correctly rounded otherwise, as orjson does); at least one reading; no white space.
# Anything else (a space, another key, a string ts) is not wrong, only not this shape: it takes the
# per-message path, which decides it.
_RID = r'[\x20\x21\x23-\x5b\x5d-\x7e]*'
_NUM = r'(?:0|[1-9][0-9]{0,14})(?:\.[0-9]{1,40})?'
_OBJ = r'\{"rack_id":"' + _RID + r'","power_kw":' + _NUM + r'\}'
_COMPACT_SCAN = r'^\{"ts":(?:0|[1-9][0-9]{0,18}),"readings":\[' + _OBJ + r'(?:,' + _OBJ + r')*\]\}$'
# Split on '"', such a scan is 5 tokens ('{', 'ts', ':<ts>,', 'readings', ':[{') and then 6 a reading
# ('rack_id', ':', '<id>', ',', 'power_kw', ':<n>},{' or, for the last, ':<n>}]}').
_HEAD_TOKENS, _TOKENS_PER_READING, _RID_TOKEN, _NUM_TOKEN = 5, 6, 2, 5

_rack_arrays: dict = {}    # facility id -> (its rack-id set, those ids as an Arrow array, {ceilings id: array})


def _rack_array(fac):
    """The facility's rack ids as an Arrow string array (cached while its rack-id set is the same object)."""
    entry = _rack_arrays.get(fac.id)
    if entry is None or entry[0] is not fac.rack_ids:
        import pyarrow as pa
        entry = _rack_arrays[fac.id] = (fac.rack_ids, pa.array(sorted(fac.rack_ids), pa.string()), {})
    return entry


def _ceiling_array(fac, ceilings: dict) -> np.ndarray:
    """``ceilings`` [kW] in the order of :func:`_rack_array` (cached per ceilings dict)."""
    _, ids, by_dict = _rack_array(fac)
    hit = by_dict.get(id(ceilings))
    if hit is None or hit[0] is not ceilings:
        if len(by_dict) > 8:
            by_dict.clear()
        hit = by_dict[id(ceilings)] = (ceilings, np.array([ceilings[r] for r in ids.to_pylist()], dtype=np.float64))
    return hit[1]


def prepare(batch, ctx) -> dict:
    """Plain rack scans of a batch decoded at once, without a Python object per reading.

    ``batch``: ``[(index, topic, route, payload, received_at_ms)]`` of the messages routed here.
    Returns ``{index: block}`` for every message that is a compact plain scan (see ``_COMPACT_SCAN``)
    whose readings all pass what :func:`_plain_scan` checks (known facility, valid and not future ts,
    known racks, ``0 <= power_kw <= ceiling``): the same rows :func:`_parse_scan` would accept, with no
    rejection. Messages not returned take the per-message path. Splitting, pattern matching and
    number conversion run in Arrow's C++ kernels, which release the interpreter lock.
    """
    if not ctx.fast:
        return {}
    cand = [(i, route[0], bytes(payload), rec) for i, _, route, payload, rec in batch
            if len(route) == 1 and len(payload) <= MAX_PAYLOAD_BYTES]
    cand = [c for c in cand if c[2].startswith(b'{"ts":') and c[2].isascii()]
    if not cand:
        return {}
    import pyarrow as pa
    import pyarrow.compute as pc
    text = pa.array([c[2] for c in cand], pa.binary()).cast(pa.string())   # ASCII: valid UTF-8
    ok = pc.match_substring_regex(text, _COMPACT_SCAN).to_numpy(zero_copy_only=False)
    if not ok.any():
        return {}
    keep = np.flatnonzero(ok)
    cand = [cand[k] for k in keep.tolist()]
    tokens = pc.split_pattern(text.take(pa.array(keep)), '"')
    flat = tokens.flatten()
    offsets = np.asarray(tokens.offsets)
    starts = offsets[:-1] - offsets[0]
    counts = (np.diff(offsets) - _HEAD_TOKENS) // _TOKENS_PER_READING
    total = int(counts.sum())
    first = np.cumsum(counts) - counts                       # first reading of each message
    k = np.arange(total) - np.repeat(first, counts)          # reading number within its message
    base = np.repeat(starts + _HEAD_TOKENS, counts) + _TOKENS_PER_READING * k
    rids = flat.take(pa.array(base + _RID_TOKEN))
    power = pc.cast(pc.utf8_slice_codeunits(flat.take(pa.array(base + _NUM_TOKEN)), 1, -3),
                    pa.float64()).to_numpy(zero_copy_only=False)
    ts_tokens = flat.take(pa.array(starts + 2)).to_pylist()   # ':<ts>,'
    out: dict = {}
    by_fac: dict = {}
    for j, (i, facility_id, _, rec) in enumerate(cand):
        ctx.received_at_ms = rec
        fast = _scan_fast_path(facility_id, int(ts_tokens[j][1:-1]), ctx)
        if fast is not None:
            by_fac.setdefault(facility_id, []).append((j, i, fast))
    for facility_id, msgs in by_fac.items():
        fac = ctx.registry.facilities[facility_id]
        _, ids, _ = _rack_array(fac)
        sel = np.concatenate([np.arange(first[j], first[j] + counts[j]) for j, _, _ in msgs])
        codes = pc.index_in(rids.take(pa.array(sel)), value_set=ids)
        known = codes.is_valid().to_numpy(zero_copy_only=False)
        code = codes.fill_null(0).to_numpy(zero_copy_only=False)
        at = 0
        for j, i, (scan_ms, _, ceilings, min_ceiling) in msgs:
            n = int(counts[j])
            lo = int(first[j])
            p = power[lo:lo + n]
            if known[at:at + n].all() and (p.max() <= min_ceiling
                                           or (p <= _ceiling_array(fac, ceilings)[code[at:at + n]]).all()):
                out[i] = _Block(facility_id, "rack", scan_ms, cand[j][3], ctx.origin, rids.slice(lo, n), p)
            at += n
    return out


FORMAT = PayloadFormat(route=route, parse=parse, topics=("meter/<id>", "rack/<id>", "racks"), prepare=prepare)
