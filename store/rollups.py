"""Daily rollups of counter readings: what a period's energy needs, kept per source and local day.

A *piece* is one source's readings inside one local day of a time zone, cut further at the edges
of the raw partition the readings are stored in (a UTC month for meters, a UTC day for racks), so
a piece always comes from exactly one partition. For each piece the rollup keeps facts about the
readings that do not depend on any meter's parameters (rollover register, noise, gap limit, power
ceiling), so a change of configuration never makes a rollup wrong:

=============== ===============================================================================
column          meaning
=============== ===============================================================================
source_id       meter or rack id
partition       the raw partition folder the readings are stored in (``month=2026-07``)
lo, hi          the piece's bounds, UTC [ms]: a local day, clipped to the partition
n               readings in the piece
first_ts/_v     first reading: meter time [ms] and counter [kWh] as stored
last_ts/_v      last reading
first/last_recv when those two were received [ms] (-1: not recorded)
complete        every reading has a finite counter (no power-only rows, no NaN)
monotone        no step down inside the piece (so no reset, rollover or noise dip can be in it)
max_rate        largest step inside the piece [mWh per ms] (power-ceiling checks)
energy_mwh      counter increase inside the piece [whole mWh]: last − first, exact (0 unless
                complete and monotone: only then does it not depend on the meter's parameters)
late            readings received before the reading preceding them in the piece
recv_ok         every reading has its receive time
gapK_t0, gapK_dt the three longest steps inside the piece among those longer than twice its
                shortest step: start [ms] and length [ms] (0: none)
rest_max_dt     the longest step inside the piece not listed above [ms]
=============== ===============================================================================

With these, a period made of whole local days gets each source's energy, covered time, readings,
gaps and late readings exactly (``dcmon.metrics.period_energy``): the pieces inside the period
plus the steps between consecutive pieces, which the stored first and last readings give
exactly. A piece with a step down, a missing counter or a gap the stored steps cannot place is
not summed: that source's period is computed from the raw readings instead, the reference.

Storage: one file per (time zone, facility, kind, block), ``<data>/rollups/tz=<zone>/
facility=<id>/kind=<k>/<block>.rollup``, a block being a UTC year of monthly partitions (meters) or
one daily partition (racks). The file is an Arrow IPC file (LZ4) followed by a 16-byte trailer
(``DCMONRU1`` + CRC-32 in hex); it records, per raw partition, the fingerprint (names and sizes of
its data files) the pieces were computed from. A partition whose files changed (an append, a late
reading, compaction, a damaged file moved aside) no longer matches its fingerprint: its pieces are
recomputed from its raw files on the next read and the block rewritten (dot-file, fsync, rename,
folder fsync). A block that fails its checksum is moved aside like a damaged readings file and
rebuilt from the raw partitions: rollups are derived data, never the only copy of anything.
"""
from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
import uuid
import zlib
from pathlib import Path
from urllib.parse import quote

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.ipc as ipc

from dcmon.periods import local_midnights_ms
from dcmon.readings import to_mwh
from dcmon.store.durable import fsync_dir
from dcmon.store.inventory import MONTHLY_KINDS

log = logging.getLogger("dcmon.store")

ROLLUP_DIR = "rollups"
FORMAT_VERSION = "1"
_MAGIC = b"DCMONRU1"
_TRAILER = 16
GAP_SLOTS = 3
CACHE_MAX_ROWS = 250_000   # pieces kept in memory by a process (a quarter of 301 sites with 5 meters: 140 000)
ROLLUP_KINDS = ("meter", "rack")

PIECE_SCHEMA = pa.schema(
    [pa.field("source_id", pa.string()), pa.field("partition", pa.string()),
     pa.field("lo", pa.int64()), pa.field("hi", pa.int64()), pa.field("n", pa.int64()),
     pa.field("first_ts", pa.int64()), pa.field("first_v", pa.float64()), pa.field("first_recv", pa.int64()),
     pa.field("last_ts", pa.int64()), pa.field("last_v", pa.float64()), pa.field("last_recv", pa.int64()),
     pa.field("complete", pa.bool_()), pa.field("monotone", pa.bool_()), pa.field("recv_ok", pa.bool_()),
     pa.field("max_rate", pa.float64()), pa.field("energy_mwh", pa.int64()), pa.field("late", pa.int64())]
    + [pa.field(f"gap{k}_{c}", pa.int64()) for k in range(GAP_SLOTS) for c in ("t0", "dt")]
    + [pa.field("rest_max_dt", pa.int64())])


# ------------------------------------------------------------------ pure computation
def compute_pieces(table: pa.Table, timezone: str, lo_ms: int, hi_ms: int, partition: str) -> pa.Table:
    """Pieces of one partition's readings (``[lo_ms, hi_ms)``), sorted by (source_id, lo).

    ``table``: the partition's rows deduplicated and sorted by (source_id, ts), with columns
    ``source_id``, ``ts``, ``energy_kwh`` and optionally ``received_at``.
    """
    n = table.num_rows
    if n == 0:
        return PIECE_SCHEMA.empty_table()
    src = table.column("source_id").combine_chunks()
    if pa.types.is_dictionary(src.type):
        src = src.cast(pa.string())
    codes_arr = src.dictionary_encode()
    code = codes_arr.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    names = codes_arr.dictionary
    t = table.column("ts").combine_chunks()
    t = (t.view(pa.int64()) if t.type == pa.timestamp("ms", tz="UTC") else pc.cast(t, pa.int64())).to_numpy(
        zero_copy_only=False)
    e_arr = table.column("energy_kwh").combine_chunks()
    v = e_arr.to_numpy(zero_copy_only=False).astype(np.float64)   # nulls become NaN
    valid = np.isfinite(v)
    if "received_at" in table.column_names:
        r_arr = pc.cast(table.column("received_at").combine_chunks(), pa.int64())
        r_null = r_arr.is_null().to_numpy(zero_copy_only=False)
        recv = pc.fill_null(r_arr, -1).to_numpy(zero_copy_only=False)
    else:
        r_null = np.ones(n, bool)
        recv = np.full(n, -1, dtype=np.int64)
    bounds = np.array([lo_ms, *local_midnights_ms(timezone, lo_ms, hi_ms), hi_ms], dtype=np.int64)
    piece = np.clip(np.searchsorted(bounds, t, side="right") - 1, 0, len(bounds) - 2)
    start = np.empty(n, bool)
    start[0] = True
    np.not_equal(code[1:], code[:-1], out=start[1:])
    start[1:] |= piece[1:] != piece[:-1]
    starts = np.flatnonzero(start)
    ends = np.append(starts[1:] - 1, n - 1)
    gid = np.cumsum(start) - 1
    q = to_mwh(np.where(valid, v, 0.0))
    # steps inside a piece: (row i-1 → row i) where row i does not start a piece
    dt_ = np.zeros(n, dtype=np.int64)
    dq = np.zeros(n, dtype=np.int64)
    dt_[1:] = t[1:] - t[:-1]
    dq[1:] = q[1:] - q[:-1]
    dt_[start] = 0
    dq[start] = 0
    step = ~start
    complete = np.add.reduceat((~valid).astype(np.int64), starts) == 0
    monotone = np.minimum.reduceat(dq, starts) >= 0
    with np.errstate(divide="ignore", invalid="ignore"):
        rate = np.where(step, dq / np.maximum(dt_, 1), 0.0)
    max_rate = np.maximum.reduceat(rate, starts)
    late_rows = np.zeros(n, bool)
    late_rows[1:] = (recv[:-1] > recv[1:]) & (recv[:-1] >= 0)
    late_rows &= step
    late = np.add.reduceat(late_rows.astype(np.int64), starts)
    recv_ok = np.add.reduceat(r_null.astype(np.int64), starts) == 0
    # the longest steps: candidates are steps longer than twice the piece's shortest
    big = np.iinfo(np.int64).max
    min_dt = np.minimum.reduceat(np.where(step, dt_, big), starts)
    cand = step & (dt_ > 2 * min_dt[gid])
    gaps = np.zeros((len(starts), GAP_SLOTS, 2), dtype=np.int64)
    rest_src = np.where(step, dt_, 0)
    ci = np.flatnonzero(cand)
    if len(ci):
        order = np.lexsort((t[ci], -dt_[ci], gid[ci]))
        ci = ci[order]
        g = gid[ci]
        first_of_g = np.searchsorted(g, g, side="left")
        rank = np.arange(len(ci)) - first_of_g
        keep = rank < GAP_SLOTS
        kept = ci[keep]
        gaps[g[keep], rank[keep], 0] = t[kept] - dt_[kept]
        gaps[g[keep], rank[keep], 1] = dt_[kept]
        rest_src = rest_src.copy()
        rest_src[kept] = 0
    rest_max = np.maximum.reduceat(rest_src, starts)
    ok = complete & monotone
    cols = {
        "source_id": names.take(pa.array(code[starts])), "partition": pa.array([partition] * len(starts), pa.string()),
        "lo": bounds[piece[starts]], "hi": bounds[piece[starts] + 1], "n": ends - starts + 1,
        "first_ts": t[starts], "first_v": v[starts], "first_recv": recv[starts],
        "last_ts": t[ends], "last_v": v[ends], "last_recv": recv[ends],
        "complete": complete, "monotone": monotone, "recv_ok": recv_ok, "max_rate": max_rate,
        "energy_mwh": np.where(ok, q[ends] - q[starts], 0), "late": late,
    }
    for k in range(GAP_SLOTS):
        cols[f"gap{k}_t0"], cols[f"gap{k}_dt"] = gaps[:, k, 0], gaps[:, k, 1]
    cols["rest_max_dt"] = rest_max
    return pa.Table.from_arrays([pa.array(cols[f.name], f.type) if not isinstance(cols[f.name], pa.Array)
                                 else cols[f.name] for f in PIECE_SCHEMA], schema=PIECE_SCHEMA)


# ------------------------------------------------------------------ files
def _encode(table: pa.Table, fingerprints: dict[str, str]) -> bytes:
    meta = {b"dcmon-rollup": FORMAT_VERSION.encode(), b"fingerprints": orjson.dumps(fingerprints)}
    sink = pa.BufferOutputStream()
    # LZ4: most columns of a clean day are constant (no gaps, no late readings) and shrink to little
    with ipc.new_file(sink, table.schema.with_metadata(meta), options=ipc.IpcWriteOptions(compression="lz4")) as w:
        w.write_table(table)
    body = sink.getvalue().to_pybytes()
    return body + _MAGIC + f"{zlib.crc32(body):08x}".encode()


def _decode(data: bytes) -> tuple[pa.Table, dict[str, str]]:
    """The pieces and fingerprints of a block file; ValueError saying why it cannot be used."""
    if len(data) < _TRAILER or data[-_TRAILER:-8] != _MAGIC:
        raise ValueError("not a dcmon rollup file (no trailer)")
    body = data[:-_TRAILER]
    if f"{zlib.crc32(body):08x}".encode() != data[-8:]:
        raise ValueError("checksum mismatch (CRC-32 of the contents differs from the one recorded)")
    try:
        t = ipc.open_file(pa.py_buffer(body)).read_all()
    except pa.ArrowException as e:
        raise ValueError(f"unreadable: {' '.join(str(e).split())[:200]}") from None
    meta = t.schema.metadata or {}
    if meta.get(b"dcmon-rollup") != FORMAT_VERSION.encode():
        raise ValueError("rollup format version differs")
    if t.schema.remove_metadata() != PIECE_SCHEMA:
        raise ValueError("unexpected columns")
    return t.replace_schema_metadata(None), orjson.loads(meta[b"fingerprints"])


def _block_of(kind_daily: bool, partition: str) -> str:
    """Rollup block of a raw partition: the day folder itself (a large site's racks: ~20 000 pieces
    a day, so a live day is summarized again without rewriting others), or a UTC year of month folders."""
    if kind_daily:                      # date=YYYY-MM-DD
        return partition
    return f"year={partition.split('=', 1)[1][:4]}"


class Rollups:
    """The rollup files of one store (used by :class:`dcmon.store.parquet.ParquetStore`)."""

    def __init__(self, store, *, partition_bounds, sort_dedupe):
        """``store``: the Parquet store whose partitions are summarized; ``partition_bounds(name)``:
        a partition folder's UTC range [ms]; ``sort_dedupe(table)``: its readers' merge of files."""
        self.store = store
        self._bounds = partition_bounds
        self._sort_dedupe = sort_dedupe
        self.root = Path(store.root) / ROLLUP_DIR
        self._cache: dict[Path, tuple[dict[str, str], pa.Table]] = {}
        self._listings: dict[tuple[str, str], tuple[int, list[Path]]] = {}
        self._lock = threading.Lock()
        self.computed_partitions = 0      # partitions summarized from raw files by this process

    def _block_path(self, timezone: str, facility_id: str, kind: str, block: str) -> Path:
        return self.root / f"tz={quote(timezone, safe='')}" / f"facility={facility_id}" / f"kind={kind}" / f"{block}.rollup"

    @staticmethod
    def _fingerprint(files: list[Path]) -> str:
        h = hashlib.sha1()
        for f in files:
            h.update(f"{f.name}:{f.stat().st_size}\n".encode())
        return h.hexdigest()[:20]

    def _load(self, path: Path) -> tuple[dict[str, str], pa.Table] | None:
        """A block's fingerprints and pieces; None when there is none (a damaged one is moved aside)."""
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        try:
            pieces, fps = _decode(data)
        except ValueError as e:
            try:
                moved = self.store.move_aside(path, str(e))
            except OSError as err:    # a read-only store: the figures come from the readings all the same
                moved = f"nowhere ({err})"
            log.warning("damaged rollup file %s: %s; moved aside to %s and rebuilt from the readings",
                        path, e, moved)
            return None
        return fps, pieces

    def _write(self, path: Path, table: pa.Table, fingerprints: dict[str, str]) -> None:
        data = _encode(table, fingerprints)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
            with open(tmp, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
            fsync_dir(path.parent)
        except OSError as e:   # a read-only copy of a store: the figures are still right, only not kept
            log.info("rollup file %s not written (%s): computed again next time", path, e)

    def _partition_rows(self, facility_id: str, kind: str, part: Path, files: list[Path], timezone: str,
                        bounds: tuple[int, int]) -> pa.Table:
        cols = ["source_id", "ts", "energy_kwh"] + (["received_at"] if kind == "meter" else [])
        tables = [t for t in (self.store._read_file(f, cols) for f in files) if t is not None]
        if not tables:
            return PIECE_SCHEMA.empty_table()
        t = tables[0].select(cols) if len(tables) == 1 else pa.concat_tables([x.select(cols) for x in tables])
        if len(tables) > 1:
            t, _ = self._sort_dedupe(t)
        self.computed_partitions += 1
        return compute_pieces(t, timezone, bounds[0], bounds[1], part.name)

    def pieces(self, facility_id: str, kind: str, timezone: str, start_ms: int | None, end_ms: int | None) -> pa.Table:
        """Pieces of every raw partition overlapping ``[start_ms, end_ms)``, current with the raw files.

        The table's metadata ``span`` gives the UTC range [ms] the pieces account for (those
        partitions' bounds, at least the range asked for): a search for readings further away
        continues outside it.
        """
        daily = kind not in MONTHLY_KINDS
        blocks: dict[str, list[Path]] = {}
        span = [start_ms, end_ms]
        for part in self._listing(facility_id, kind):
            b = self._bounds(part.name)
            if (start_ms is None or b[1] > start_ms) and (end_ms is None or b[0] < end_ms):
                blocks.setdefault(_block_of(daily, part.name), []).append(part)
                span = [b[0] if span[0] is None else min(span[0], b[0]), b[1] if span[1] is None else max(span[1], b[1])]
        out = [self._fresh_block(facility_id, kind, timezone, self._block_path(timezone, facility_id, kind, block), parts)
               for block, parts in blocks.items()]
        t = (pa.concat_tables(out) if len(out) > 1 else out[0]) if out else PIECE_SCHEMA.empty_table()
        return t.replace_schema_metadata({b"span": orjson.dumps(span)})

    def _listing(self, facility_id: str, kind: str) -> list[Path]:
        """The partition folders of a facility's kind, sorted; the last listing is reused while the
        folder's modification time is unchanged and not recent (a change within the clock's tick
        could otherwise go unseen)."""
        base = self.store.readings_dir / f"facility={facility_id}" / f"kind={kind}"
        try:
            mtime = base.stat().st_mtime_ns
        except FileNotFoundError:
            return []
        key = (facility_id, kind)
        hit = self._listings.get(key)
        if hit is not None and hit[0] == mtime and time.time_ns() - mtime > 2_000_000_000:
            return hit[1]
        parts = [p for _, p in self.store._partitions(facility_id, kind, None, None)]
        self._listings[key] = (mtime, parts)
        return parts

    def _fresh_block(self, facility_id, kind, timezone, path: Path, members: list[Path]) -> pa.Table:
        """The block's pieces of the partitions ``members``, recomputing those whose files changed.
        Partitions of the block not asked for are kept as they are (checked when asked for)."""
        for attempt in range(5):
            try:
                files = {p.name: self.store._data_files(p) for p in members}
                now = {name: self._fingerprint(fs) for name, fs in files.items()}
                break
            except FileNotFoundError:     # compaction replaced files while we listed them
                time.sleep(0.01 * (attempt + 1))
        else:
            raise RuntimeError(f"could not list the partitions of {path}: files keep changing")
        def current(fps):
            return all(fps.get(name, "") == fp for name, fp in now.items())
        with self._lock:
            cached = self._cache.get(path)
        if cached is None or not current(cached[0]):
            loaded = self._load(path)
            if loaded is not None and current(loaded[0]):
                cached = loaded
            else:
                old_fps, old = loaded if loaded is not None else ({}, PIECE_SCHEMA.empty_table())
                stale = sorted(name for name, fp in now.items() if old_fps.get(name, "") != fp)
                fps = {k: v for k, v in old_fps.items() if k not in stale}
                parts = [old.filter(pc.invert(pc.is_in(old.column("partition"), pa.array(stale, pa.string()))))]
                by_name = {p.name: p for p in members}
                for name in stale:
                    if not files[name]:       # an empty (or emptied) partition has no pieces
                        fps[name] = now[name]
                        continue
                    try:
                        parts.append(self._partition_rows(facility_id, kind, by_name[name], files[name], timezone,
                                                          self._bounds(name)))
                    except FileNotFoundError:   # replaced under us: list again
                        return self._fresh_block(facility_id, kind, timezone, path, members)
                    fps[name] = now[name]
                table = pa.concat_tables(parts).sort_by([("lo", "ascending"), ("source_id", "ascending")])
                self._write(path, table, fps)
                cached = (fps, table)
            with self._lock:
                self._cache.pop(path, None)
                self._cache[path] = cached
                # bounded: the most recently used blocks, up to CACHE_MAX_ROWS pieces in all
                total = sum(t.num_rows for _, t in self._cache.values())
                while total > CACHE_MAX_ROWS and len(self._cache) > 1:
                    oldest = next(iter(self._cache))
                    total -= self._cache.pop(oldest)[1].num_rows
        fps, table = cached
        if set(fps) <= set(now) or table.num_rows == 0:
            return table
        return table.filter(pc.is_in(table.column("partition"), pa.array(sorted(now), pa.string())))

    # ------------------------------------------------------------ maintenance
    def files(self, facility_id: str | None = None) -> list[Path]:
        if not self.root.is_dir():
            return []
        pat = f"tz=*/facility={facility_id}/kind=*/*.rollup" if facility_id else "tz=*/facility=*/kind=*/*.rollup"
        return sorted(self.root.glob(pat))

    def check_file(self, path: Path) -> str | None:
        """Why a rollup file cannot be used, or None."""
        try:
            _decode(Path(path).read_bytes())
        except FileNotFoundError:
            return None
        except ValueError as e:
            return str(e)
        return None

    def refresh_existing(self, facility_id: str | None = None) -> int:
        """Bring every rollup already kept (each time zone, facility and kind found on disk) up to
        date with the raw partitions; after compaction. Returns the partitions summarized."""
        from urllib.parse import unquote
        n = 0
        for tz_dir in sorted(self.root.glob("tz=*")) if self.root.is_dir() else []:
            tz = unquote(tz_dir.name[3:])
            pat = f"facility={facility_id}" if facility_id else "facility=*"
            for fac_dir in sorted(tz_dir.glob(pat)):
                for kind_dir in sorted(fac_dir.glob("kind=*")):
                    n += self.rebuild(fac_dir.name.split("=", 1)[1], kind_dir.name.split("=", 1)[1], tz)
        return n

    def repair(self, path: Path, reason: str) -> Path | None:
        """Move a damaged rollup file aside and make its facility's rollups again from the readings."""
        from urllib.parse import unquote
        path = Path(path)
        moved = self.store.move_aside(path, reason)
        with self._lock:
            self._cache.pop(path, None)
        kind, fac, tz = path.parent.name, path.parent.parent.name, path.parent.parent.parent.name
        if kind.startswith("kind=") and fac.startswith("facility=") and tz.startswith("tz="):
            self.rebuild(fac.split("=", 1)[1], kind.split("=", 1)[1], unquote(tz[3:]))
        return moved

    def rebuild(self, facility_id: str, kind: str, timezone: str) -> int:
        """Bring every block of a facility's ``kind`` up to date with its raw partitions; returns the
        number of partitions summarized from raw files."""
        before = self.computed_partitions
        self.pieces(facility_id, kind, timezone, None, None)
        return self.computed_partitions - before
