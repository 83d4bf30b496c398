"""Row buffers: the accepted readings of a batch on their way to one Arrow table.

Parsers append dict rows (general path) or column blocks (a rack scan that passed the whole-scan
check); :meth:`Rows.to_table` builds the store's table in arrival order, and
:meth:`Rows.update_last_seen` keeps the health document's last-seen times.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from itertools import chain

import numpy as np


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
                last_seen[seg.facility_id].update(dict.fromkeys(seg.ids(), (seg.ts, seg.received_at)))


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

    ``source_ids`` is a list of str or an Arrow string array (a scan decoded with its batch);
    ``power_kw`` a list of floats (per-reading path) or a float64 array (whole-scan paths)."""

    facility_id: str
    kind: str
    ts: int
    received_at: int
    origin: str
    source_ids: list = field(default_factory=list)
    power_kw: list = field(default_factory=list)

    def ids(self) -> list:
        """The rack ids as a list of str."""
        return self.source_ids if isinstance(self.source_ids, list) else self.source_ids.to_pylist()

    def as_dicts(self) -> list[dict]:
        power = self.power_kw.tolist() if isinstance(self.power_kw, np.ndarray) else self.power_kw
        return [{"facility_id": self.facility_id, "kind": self.kind, "source_id": sid, "ts": self.ts,
                 "received_at": self.received_at, "origin": self.origin, "energy_kwh": None, "power_kw": p,
                 "status": None, "function": None, "design_power_kw": None}
                for sid, p in zip(self.ids(), power)]

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
            "source_id": _source_ids(blocks),
            "ts": per_block_int("ts"), "energy_kwh": pa.nulls(n, pa.float64()), "power_kw": pa.array(power),
            "status": pa.nulls(n, pa.string()), "function": pa.nulls(n, pa.string()),
            "design_power_kw": pa.nulls(n, pa.float64()), "received_at": per_block_int("received_at"),
            "origin": per_block_str("origin")}
    return pa.Table.from_arrays([cols[f.name] for f in SCHEMA], schema=SCHEMA)


def _source_ids(blocks: list):
    """The rack ids of consecutive blocks as one Arrow string array: runs of blocks holding lists become
    one array each, blocks holding Arrow arrays (slices of their batch) are concatenated as they are."""
    import pyarrow as pa
    parts, run = [], []
    for b in blocks:
        if isinstance(b.source_ids, list):
            run.append(b.source_ids)
            continue
        if run:
            parts.append(pa.array(list(chain.from_iterable(run)), pa.string()))
            run = []
        parts.append(b.source_ids)
    if run or not parts:
        parts.append(pa.array(list(chain.from_iterable(run)), pa.string()))
    return parts[0] if len(parts) == 1 else pa.concat_arrays(parts)
