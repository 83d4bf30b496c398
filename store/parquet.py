"""Parquet dataset store.

Layout (hive-style, one folder per facility, kind and UTC day)::

    <data>/readings/facility=<id>/kind=rack/date=<YYYY-MM-DD>/part-<ns>-<uuid>.parquet
    <data>/readings/facility=<id>/kind=meter/month=<YYYY-MM>/part-<ns>-<uuid>.parquet
    <data>/readings/facility=<id>/kind=rack-inventory/month=<YYYY-MM>/part-<ns>-<uuid>.parquet
    <data>/status/<name>.json
    <data>/quarantine/<UTC day>-<writer>.jsonl     (rejected telemetry: :mod:`dcmon.store.quarantine`)

Rack readings (millions a day at a large site) are partitioned by UTC day; meters and the
rack-inventory index (thousands a day) by UTC month, so small sites do not scatter into
thousands of tiny files. One quarter of one facility touches ~92 day folders and 4 month
folders of that facility only. Readers accept either granularity for any kind. Every file is
sorted by ``(source_id, ts)`` and free of duplicate keys, so a day with one file streams
straight into the counter arithmetic; a day with several files (live appends) is merged
on read and merged on disk by :meth:`ParquetStore.compact`.

Damaged files (reliability.md #14): a file that cannot be read (or is not a dcmon readings file)
raises :class:`~dcmon.store.base.DamagedFile` naming it; a store opened with
``on_damaged="move_aside"`` (the collector) moves it to ``<data>/damaged/<same relative path>`` with
a ``.reason.txt`` beside it, logs it, lists it in :attr:`ParquetStore.damaged` and carries on.
Files are written with page checksums (CRC-32), verified by partition reads, compaction and
``dcmon check``, so flipped bits are caught, not merged into new files.

Durability (reliability.md #8): a file is written under a dot-name, fsync'd, renamed into
place and the folder fsync'd. Readers ignore dot-files, so they never see a partial file;
a writer killed mid-write leaves only a dot-file, removed by the next compaction.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import logging
import os
import threading
import time
import uuid
from collections import deque
from pathlib import Path
from typing import Iterator

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from dcmon.readings import SCHEMA, TS_TYPE, VALUE_COLUMNS, conform
import dcmon.store.quarantine as qr
from dcmon.store.base import INVENTORY_KIND, AppendResult, DamagedFile, Store
from dcmon.store.durable import fsync_dir
from dcmon.store.inventory import MONTHLY_KINDS, inventory_rows

log = logging.getLogger("dcmon.store")
DAMAGED_DIR = "damaged"
ON_DAMAGED = ("raise", "move_aside")

ROW_GROUP = 262_144
# LZ4: measured here, a day of 2.9 M rack readings decodes 2.6x faster than with zstd for 12% more disk.
_DAY_MS = 86_400_000
_STALE_TMP_S = 3600
SMALL_READ_BYTES = 32 << 20  # below this, a period is read in one threaded scan (see _small_read)


def _to_ms(t) -> int | None:
    if t is None:
        return None
    return int(pd.Timestamp(t).tz_convert("UTC").value // 1_000_000) if pd.Timestamp(t).tzinfo else \
        int(pd.Timestamp(t, tz="UTC").value // 1_000_000)


def _day(ms: int) -> dt.date:
    return dt.date(1970, 1, 1) + dt.timedelta(days=ms // _DAY_MS)


def _partition_keys(kind: str, ts_ms: np.ndarray) -> np.ndarray:
    """Partition key per row: days since epoch (rack), or months since epoch (meter, inventory)."""
    if kind in MONTHLY_KINDS:
        return ts_ms.astype("datetime64[ms]").astype("datetime64[M]").astype(np.int64)
    return ts_ms // _DAY_MS


def _partition_name(kind: str, key: int) -> str:
    if kind in MONTHLY_KINDS:
        return f"month={1970 + key // 12:04d}-{key % 12 + 1:02d}"
    return f"date={(dt.date(1970, 1, 1) + dt.timedelta(days=int(key))).isoformat()}"


def _partition_bounds(name: str) -> tuple[int, int] | None:
    """[start, end) in ms of a partition folder name, or None if it is not one."""
    try:
        if name.startswith("date="):
            d = dt.date.fromisoformat(name[5:])
            lo = (d - dt.date(1970, 1, 1)).days * _DAY_MS
            return lo, lo + _DAY_MS
        if name.startswith("month="):
            y, m = int(name[6:10]), int(name[11:13])
            a = dt.datetime(y, m, 1, tzinfo=dt.UTC)
            b = dt.datetime(y + (m == 12), m % 12 + 1, 1, tzinfo=dt.UTC)
            return int(a.timestamp() * 1000), int(b.timestamp() * 1000)
    except ValueError:
        return None
    return None


def sort_dedupe(table: pa.Table, *, constant: tuple = ()) -> tuple[pa.Table, pa.Table]:
    """Sort by (source_id, ts) keeping input order among equal keys; return (kept, dropped).

    The first row of each (source_id, ts) key wins (within one facility and kind). ``constant``
    names columns the caller knows hold one value (an append's facility and kind): they are
    rebuilt rather than reordered.
    """
    if table.num_rows == 0:
        return table, table.slice(0, 0)
    order, dup = _sort_order(table)
    if order is None and not dup.any():
        return table, table.slice(0, 0)      # already in order (a scan arrives sorted by rack id)
    kept = _take_rows(table, order, ~dup, constant)
    dropped = _take_rows(table, order, dup, constant) if dup.any() else table.slice(0, 0)
    return kept, dropped


def _sort_order(table: pa.Table) -> tuple[np.ndarray | None, np.ndarray]:
    """(stable permutation sorting by (source_id, ts), or None when the rows already are in that
    order; the rows of that order that repeat the key of the row before them).

    Sorting on one int64 key — the rank of the rack id among the batch's distinct ids, then the
    time stamp — instead of comparing strings: the ids are hashed once (``dictionary_encode``)
    and only the distinct ones are sorted as strings. numpy's stable sort (timsort) merges the
    sorted runs a batch of rack scans is made of.
    """
    src = table.column("source_id")
    if pa.types.is_dictionary(src.type):
        src = src.cast(pa.string())   # chunks may carry different dictionaries
    src = src.combine_chunks() if isinstance(src, pa.ChunkedArray) else src
    if src.null_count or table.column("ts").null_count:   # not a valid reading; sorted as before (nulls last)
        order = pc.sort_indices(pa.table({"s": src, "t": table.column("ts")}),
                                [("s", "ascending"), ("t", "ascending")]).to_numpy()
        s, t = src.take(order), table.column("ts").take(order)
        same = pc.and_(pc.equal(s[1:], s[:-1]), pc.equal(t[1:], t[:-1])).fill_null(False)
        return order, np.concatenate([[False], same.to_numpy(zero_copy_only=False)])
    ts = table.column("ts").combine_chunks().view(pa.int64()).to_numpy(zero_copy_only=False)
    codes = pc.dictionary_encode(src)
    ranks = np.empty(len(codes.dictionary), dtype=np.int64)
    ranks[pc.sort_indices(codes.dictionary).to_numpy()] = np.arange(len(ranks), dtype=np.int64)
    rank = ranks[codes.indices.to_numpy(zero_copy_only=False)]
    span = int(ts.max()) - int(ts.min())
    if len(ranks).bit_length() + span.bit_length() <= 62:
        key = (rank << span.bit_length()) | (ts - ts.min())
        step = np.diff(key)
        if (step >= 0).all():    # already sorted: a pass instead of a sort and a take of every column
            return None, np.concatenate([[False], step == 0])
        order = np.argsort(key, kind="stable")
        key = key[order]
        return order, np.concatenate([[False], key[1:] == key[:-1]])
    order = np.lexsort((ts, rank))            # stable as well
    r, t = rank[order], ts[order]
    return order, np.concatenate([[False], (r[1:] == r[:-1]) & (t[1:] == t[:-1])])


def _take_rows(table: pa.Table, order: np.ndarray | None, mask: np.ndarray, constant) -> pa.Table:
    """The rows ``order[mask]`` (or the rows where ``mask`` holds, ``order`` None) of ``table``.

    Columns without a value (rack scans carry no counter, status…) and ``constant`` ones are
    rebuilt at the new length instead of taken row by row: in a batch of rack scans they are most
    of the columns, and taking them cost as much as taking the others."""
    idx = np.flatnonzero(mask) if order is None else order[mask]
    if order is None and len(idx) == table.num_rows:
        return table
    n = len(idx)
    indices = pa.array(idx)
    cols = []
    for name, col in zip(table.column_names, table.columns):
        if col.null_count == len(col):
            cols.append(pa.nulls(n, col.type))
        elif name in constant and col.null_count == 0:
            cols.append(pa.repeat(col[0], n) if n else col.slice(0, 0))
        else:
            cols.append(col.take(indices))
    return pa.Table.from_arrays(cols, schema=table.schema)


def damage_reason(e: BaseException) -> str | None:
    """One line saying why a file could not be read, or None when ``e`` is not about the file's
    contents (missing file, no permission, anything else: those are not damage)."""
    if isinstance(e, (FileNotFoundError, PermissionError)) or not isinstance(e, (pa.ArrowException, OSError)):
        return None
    text = " ".join(str(e).split()) or type(e).__name__
    return text if len(text) <= 300 else text[:300] + "…"


def schema_problem(schema: pa.Schema, columns) -> str | None:
    """Why a file's schema cannot hold dcmon readings' ``columns`` (None when it can)."""
    for c in columns:
        i = schema.get_field_index(c)
        if i < 0:
            return f"not a dcmon readings file: no column {c!r}"
        t, want = schema.field(i).type, SCHEMA.field(c).type
        if pa.types.is_dictionary(t):
            t = t.value_type
        if t != want:
            return f"not a dcmon readings file: column {c!r} is {t}, expected {want}"
    return None


class ParquetStore(Store):
    """The Parquet dataset. ``on_damaged``: ``raise`` (commands: name the file, exit 2) or
    ``move_aside`` (the collector: set it aside under ``<data>/damaged/`` and carry on)."""

    def __init__(self, data_dir, *, create: bool = True, on_damaged: str = "raise"):
        if on_damaged not in ON_DAMAGED:
            raise ValueError(f"on_damaged must be one of {', '.join(ON_DAMAGED)}: {on_damaged!r}")
        self.root = Path(data_dir)
        self.readings_dir = self.root / "readings"
        self.status_dir = self.root / "status"
        self.damaged_dir = self.root / DAMAGED_DIR
        self.on_damaged = on_damaged
        self.damaged: deque = deque(maxlen=100)   # files set aside by this process, newest last
        self.damaged_total = 0
        self._damaged_lock = threading.Lock()
        if create:
            self.readings_dir.mkdir(parents=True, exist_ok=True)
            self.status_dir.mkdir(parents=True, exist_ok=True)
        self._rollups = None

    # ------------------------------------------------------------------ paths
    def _partition(self, facility_id: str, kind: str, key: int) -> Path:
        return self.readings_dir / f"facility={facility_id}" / f"kind={kind}" / _partition_name(kind, key)

    def _partitions(self, facility_id: str, kind: str, start_ms: int | None, end_ms: int | None) -> list[tuple[int, Path]]:
        """Partition folders overlapping [start_ms, end_ms), in time order."""
        base = self.readings_dir / f"facility={facility_id}" / f"kind={kind}"
        if not base.is_dir():
            return []
        out = []
        for p in base.iterdir():
            b = _partition_bounds(p.name)
            if b is None:
                continue
            if (start_ms is None or b[1] > start_ms) and (end_ms is None or b[0] < end_ms):
                out.append((b[0], p))
        out.sort()
        return out

    @staticmethod
    def _data_files(part: Path) -> list[Path]:
        try:
            return sorted(p for p in part.iterdir() if p.suffix == ".parquet" and not p.name.startswith("."))
        except FileNotFoundError:
            return []

    def files(self, facility_id=None, kind=None, start=None, end=None) -> list[Path]:
        s, e = _to_ms(start), _to_ms(end)
        facs = [facility_id] if facility_id else sorted(
            p.name.split("=", 1)[1] for p in self.readings_dir.glob("facility=*"))
        kinds = [kind] if kind else ["meter", "rack", INVENTORY_KIND]
        out = []
        for f in facs:
            for k in kinds:
                for _, part in self._partitions(f, k, s, e):
                    out += self._data_files(part)
        return out

    # ---------------------------------------------------------------- damage
    def move_aside(self, path: Path, reason: str) -> Path | None:
        """Move a damaged file to ``<data>/damaged/<its relative path>`` with ``<name>.reason.txt``.

        Returns the new path (None when the file was already gone: another process set it aside).
        """
        path = Path(path)
        try:
            rel = path.resolve().relative_to(self.root.resolve())
        except ValueError:
            rel = Path(path.name)
        dest = self.damaged_dir / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        if dest.exists():
            dest = dest.with_name(f"{dest.stem}-{uuid.uuid4().hex[:8]}{dest.suffix}")
        try:
            os.replace(path, dest)
        except FileNotFoundError:
            return None
        note = (f"reason: {reason}\nfrom: {rel}\nmoved_at: "
                f"{dt.datetime.now(dt.UTC).isoformat(timespec='seconds')}\n")
        with open(dest.with_name(dest.name + ".reason.txt"), "w", encoding="utf-8") as fh:
            fh.write(note)
            fh.flush()
            os.fsync(fh.fileno())
        fsync_dir(dest.parent)
        fsync_dir(path.parent)
        return dest

    def _damaged_file(self, path: Path, reason: str) -> None:
        """Raise :class:`DamagedFile`, or (``move_aside``) set the file aside, log and record it."""
        if self.on_damaged != "move_aside":
            raise DamagedFile(path, reason)
        moved = self.move_aside(path, reason)
        if moved is None:
            return
        log.error("damaged store file %s: %s; moved aside to %s (its readings are left out; the rest "
                  "of the store is used as usual)", path, reason, moved)
        with self._damaged_lock:
            self.damaged_total += 1
            self.damaged.append({"path": str(Path(path).relative_to(self.root)) if Path(path).is_relative_to(self.root)
                                 else str(path), "reason": reason, "moved_to": str(moved),
                                 "at_ms": int(time.time() * 1000)})

    def _read_file(self, path: Path, columns: list[str] | None) -> pa.Table | None:
        """One data file, page checksums verified; None when it was damaged and set aside."""
        try:
            t = pq.read_table(path, columns=columns, page_checksum_verification=True)
        except Exception as e:  # noqa: BLE001 - classified below; anything else is re-raised
            reason = damage_reason(e)
            if reason is None:
                raise
            self._damaged_file(path, reason)
            return None
        problem = schema_problem(t.schema, columns or [f.name for f in SCHEMA])
        if problem:
            self._damaged_file(path, problem)
            return None
        return t

    def check_file(self, path: Path) -> str | None:
        """Why ``path`` cannot be read in full (every column, page checksums), or None when it can."""
        try:
            t = pq.read_table(path, page_checksum_verification=True)
        except FileNotFoundError:
            return None
        except Exception as e:  # noqa: BLE001
            reason = damage_reason(e)
            if reason is None:
                raise
            return reason
        return schema_problem(t.schema, [f.name for f in SCHEMA])

    def damaged_files(self) -> list[Path]:
        """Files set aside earlier under ``<data>/damaged/`` (any process), sorted."""
        if not self.damaged_dir.is_dir():
            return []
        return sorted(p for p in self.damaged_dir.rglob("*") if p.is_file() and not p.name.endswith(".reason.txt"))

    # ----------------------------------------------------------------- writes
    def _write_file(self, part: Path, table: pa.Table, prefix: str = "part") -> Path:
        part.mkdir(parents=True, exist_ok=True)
        name = f"{prefix}-{time.time_ns():020d}-{uuid.uuid4().hex[:12]}.parquet"
        tmp = part / f".{name}.tmp"
        final = part / name
        with open(tmp, "wb") as fh:
            pq.write_table(table, fh, row_group_size=ROW_GROUP, compression="lz4",
                           use_dictionary=["facility_id", "kind", "source_id", "status", "function", "origin"],
                           write_statistics=["ts", "source_id"], write_page_checksum=True)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, final)
        fsync_dir(part)
        return final

    def append(self, table: pa.Table, *, check_existing: bool = True) -> AppendResult:
        """Store readings durably; idempotent on (facility_id, kind, source_id, ts).

        With ``check_existing`` the rows are compared with what is already stored so the
        result counts duplicates exactly (imports). Without it (the live collector, which
        writes small batches often) duplicates are still never visible to readers: reads
        and compaction keep the first row of each key.
        """
        result = AppendResult()
        if table.num_rows == 0:
            return result
        table = conform(table)
        inv = inventory_rows(table)
        if inv is not None:
            # A small index of rack inventory changes, so "inventory as of" never scans rack power.
            table = pa.concat_tables([table, inv])
        ts = table.column("ts").combine_chunks().view(pa.int64()).to_numpy(zero_copy_only=False)
        facs, kinds = pc.unique(table.column("facility_id")), pc.unique(table.column("kind"))
        if len(facs) == 1 and len(kinds) == 1:
            # the usual append (one facility and kind): group by partition key with numpy
            f, k = facs[0].as_py(), kinds[0].as_py()
            keys = _partition_keys(k, ts)
            if keys.min() == keys.max():   # one day (or month): no sort of the keys (np.unique) needed
                groups = [((f, k, int(keys[0])), None)]
            else:
                uniq, inverse = np.unique(keys, return_inverse=True)
                groups = [((f, k, int(key)), np.flatnonzero(inverse == i)) for i, key in enumerate(uniq)]
        else:
            fac = table.column("facility_id").to_numpy(zero_copy_only=False)
            kind = table.column("kind").to_numpy(zero_copy_only=False)
            key = np.empty(len(ts), dtype=np.int64)
            for k in np.unique(kind):
                m = kind == k
                key[m] = _partition_keys(str(k), ts[m])
            frame = pd.DataFrame({"f": fac, "k": kind, "d": key})
            groups = [((f, k, int(d)), idx) for (f, k, d), idx in frame.groupby(["f", "k", "d"], sort=True).indices.items()]
        for (f, k, key), idx in groups:
            part_table = table if idx is None else table.take(pa.array(idx))
            part = self._partition(f, k, key)
            with self._lock(part, shared=True):
                r = self._append_partition(part, part_table, check_existing)
            if k == INVENTORY_KIND:  # an index of rows already counted under kind=rack
                r = AppendResult(files=r.files)
            result += r
        return result

    def _append_partition(self, part: Path, table: pa.Table, check_existing: bool) -> AppendResult:
        kept, dropped = sort_dedupe(table, constant=("facility_id", "kind"))   # one partition: one of each
        res = AppendResult(duplicates=dropped.num_rows)
        if check_existing and kept.num_rows:
            existing = self._read_partition(part, ["source_id", "ts", *VALUE_COLUMNS],
                                            sources=pc.unique(kept.column("source_id")).to_pylist())
            if existing.num_rows:
                kept, n_dup, n_conf = _anti_join(kept, existing)
                res.duplicates += n_dup
                res.conflicts += n_conf
        if kept.num_rows:
            res.files.append(self._write_file(part, kept))
            res.written = kept.num_rows
        return res

    @contextlib.contextmanager
    def _lock(self, part: Path, shared: bool):
        """Writers take a shared lock, compaction an exclusive one, per partition."""
        part.parent.mkdir(parents=True, exist_ok=True)
        lock_path = part.parent / f".{part.name}.lock"
        with open(lock_path, "a+") as fh:
            fcntl.flock(fh, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    # ------------------------------------------------------------------ reads
    def _read_partition(self, part: Path, columns: list[str], *, sources=None, start_ms=None, end_ms=None) -> pa.Table:
        """All rows of one day folder, merged, deduplicated and sorted by (source_id, ts)."""
        cols = list(dict.fromkeys(["source_id", "ts", *columns]))
        for attempt in range(5):
            files = self._data_files(part)
            try:
                tables = [t for t in (self._read_file(p, cols) for p in files) if t is not None]
                break
            except FileNotFoundError:  # compaction replaced the files under us: list again
                time.sleep(0.01 * (attempt + 1))
        else:
            raise RuntimeError(f"could not read {part}: files keep changing")
        if not tables:
            return pa.Table.from_batches([], schema=pa.schema([SCHEMA.field(c) for c in cols]))
        t = tables[0] if len(tables) == 1 else pa.concat_tables(tables)
        t = _filter(t, sources, start_ms, end_ms)
        if len(tables) > 1:
            t, _ = sort_dedupe(t)
        return t.select(cols)

    def read(self, facility_id, kind=None, start=None, end=None, sources=None, columns=None) -> pa.Table:
        s, e = _to_ms(start), _to_ms(end)
        cols = columns or [f.name for f in SCHEMA]
        base_cols = list(dict.fromkeys(["source_id", "ts", *cols]))
        kinds = [kind] if kind else ["meter", "rack"]
        parts = []
        for k in kinds:
            for _, part in self._partitions(facility_id, k, s, e):
                t = self._read_partition(part, [c for c in base_cols if c not in ("facility_id", "kind")],
                                         sources=sources, start_ms=s, end_ms=e)
                if "facility_id" in cols:
                    t = t.append_column("facility_id", pa.array([facility_id] * t.num_rows, pa.string()))
                if "kind" in cols:
                    t = t.append_column("kind", pa.array([k] * t.num_rows, pa.string()))
                parts.append(t.select(base_cols))
        if not parts:
            return pa.schema([SCHEMA.field(c) for c in base_cols]).empty_table()
        out = pa.concat_tables(parts)
        if len(parts) > 1:  # each part is sorted; together they are not
            out = out.sort_by([("source_id", "ascending"), ("ts", "ascending")])
        return out.select(base_cols)

    def iter_sorted(self, facility_id, kind, start, end, columns, *, only_if_null: dict | None = None,
                    source_range: tuple[str | None, str | None] = (None, None),
                    prefetch: int = 3) -> Iterator[pa.RecordBatch]:
        """Stream rows sorted by (source_id, ts) within each day, days in order.

        ``source_id`` comes dictionary-encoded where the file allows. ``only_if_null`` maps a
        column to another: the first is read only for row groups where the second has nulls
        (power is only needed where there is no counter). ``source_range`` ``(lo, hi)`` keeps
        sources with ``lo <= source_id < hi``; row groups outside it are not read (files are
        sorted by source), so callers can split the sources across threads. A background
        thread reads ahead up to ``prefetch`` batches so decoding overlaps the caller's arithmetic.
        """
        small = self._small_read(facility_id, kind, start, end, columns, source_range)
        if small is not None:
            yield from small
            return
        gen = self._iter_sorted(facility_id, kind, start, end, columns, only_if_null or {}, source_range)
        if prefetch <= 0:
            yield from gen
            return
        yield from _read_ahead(gen, prefetch)

    def _small_read(self, facility_id, kind, start, end, columns, source_range):
        """For little data (meters of a quarter, say), one threaded scan of every file, then one sort.

        Opening many small day files one by one costs more than the rows in them; below
        ``SMALL_READ_BYTES`` the whole period is read at once, deduplicated and sorted by
        (source_id, ts), which satisfies the same ordering contract. None when the data is large.
        """
        s, e = _to_ms(start), _to_ms(end)
        files = [f for _, part in self._partitions(facility_id, kind, s, e) for f in self._data_files(part)]
        if len(files) < 2:
            return None
        try:
            total = sum(f.stat().st_size for f in files)
        except FileNotFoundError:
            return None  # compaction under way: take the streaming path, which retries
        if total > SMALL_READ_BYTES:
            return None
        import pyarrow.dataset as ds
        cols = list(dict.fromkeys(["source_id", "ts", *columns]))
        try:
            fmt = ds.ParquetFileFormat(default_fragment_scan_options=ds.ParquetFragmentScanOptions(
                page_checksum_verification=True))
            t = ds.dataset([str(f) for f in files], format=fmt).to_table(columns=cols)
        except (OSError, pa.ArrowException):
            return None   # a file replaced by compaction, or damaged: the streaming path finds out which
        t = _source_slice(_filter(t, None, s, e), source_range)
        t, _ = sort_dedupe(t)
        return t.to_batches(max_chunksize=ROW_GROUP)

    def _iter_sorted(self, facility_id, kind, start, end, columns, only_if_null, source_range):
        s, e = _to_ms(start), _to_ms(end)
        cols = list(dict.fromkeys(["source_id", "ts", *columns]))
        for _, part in self._partitions(facility_id, kind, s, e):
            files = self._data_files(part)
            if len(files) == 1:
                try:
                    pf = pq.ParquetFile(files[0], read_dictionary=["source_id"])
                    problem = schema_problem(pf.schema_arrow, cols)
                except FileNotFoundError:
                    files = []  # replaced by compaction: fall through to the merged read
                except Exception as exc:  # noqa: BLE001 - classified: damage, or re-raised
                    problem = damage_reason(exc)
                    if problem is None:
                        raise
                    self._damaged_file(files[0], problem)
                    continue
                else:
                    if problem:
                        self._damaged_file(files[0], problem)
                        continue
                    try:
                        yield from _row_groups(pf, cols, only_if_null, s, e, source_range)
                    except Exception as exc:  # noqa: BLE001
                        problem = damage_reason(exc)
                        if problem is None:
                            raise
                        # rows of this file were already handed out: the result is incomplete either way
                        self._damaged_file(files[0], problem)
                        raise DamagedFile(files[0], problem) from None
                    continue
            t = _source_slice(self._read_partition(part, cols, start_ms=s, end_ms=e), source_range)
            yield from t.to_batches(max_chunksize=ROW_GROUP)

    def reading_digests(self, facility_id, kind, start=None, end=None):
        """Streams one partition at a time (merged and deduplicated as readers see it), so a year
        of readings digests in bounded memory."""
        from dcmon.store.digest import COLUMNS, DigestAccumulator
        s, e = _to_ms(start), _to_ms(end)
        acc = DigestAccumulator()
        for _, part in self._partitions(facility_id, kind, s, e):
            acc.add(self._read_partition(part, COLUMNS[2:], start_ms=s, end_ms=e))
        return acc.result()

    # ---------------------------------------------------------------- rollups
    @property
    def rollups(self):
        if self._rollups is None:
            from dcmon.store.rollups import Rollups
            self._rollups = Rollups(self, partition_bounds=_partition_bounds, sort_dedupe=sort_dedupe)
        return self._rollups

    def rollup_pieces(self, facility_id, kind, timezone, start_ms, end_ms):
        """Daily rollup pieces (:mod:`dcmon.store.rollups`) of the partitions overlapping the range,
        brought up to date with the raw files first; None with ``DCMON_ROLLUPS=off`` (every figure
        then comes from the raw scan: for comparisons and benchmarks)."""
        if os.environ.get("DCMON_ROLLUPS", "").lower() in ("off", "0", "no"):
            return None
        return self.rollups.pieces(facility_id, kind, timezone, start_ms, end_ms)

    def rollup_files(self, facility_id=None) -> list[Path]:
        return self.rollups.files(facility_id)

    def check_rollup_file(self, path) -> str | None:
        return self.rollups.check_file(path)

    def repair_rollup_file(self, path, reason: str) -> Path | None:
        return self.rollups.repair(path, reason)

    def refresh_rollups(self, facility_id, kind, timezone) -> int:
        """Bring the rollups of a facility's ``kind`` up to date with every stored partition now
        (rather than on the next read); returns the number of partitions summarized."""
        return self.rollups.rebuild(facility_id, kind, timezone)

    # ------------------------------------------------------------- compaction
    def compact(self, facility_id: str | None = None, *, min_files: int = 2) -> int:
        """Merge each day folder holding ``min_files`` or more files into one sorted file.

        Returns the number of folders compacted. Safe while writers and readers run:
        the merged file is renamed into place before the old ones are removed, and
        readers deduplicate meanwhile.
        """
        n = 0
        facs = [facility_id] if facility_id else [p.name.split("=", 1)[1] for p in self.readings_dir.glob("facility=*")]
        for f in facs:
            for k in ("meter", "rack", INVENTORY_KIND):
                for _, part in self._partitions(f, k, None, None):
                    self._remove_stale_tmp(part)
                    files = self._data_files(part)
                    if len(files) < min_files:
                        continue
                    with self._lock(part, shared=False):
                        files = self._data_files(part)
                        if len(files) < min_files:
                            continue
                        read = [(p, self._read_file(p, None)) for p in files]
                        read = [(p, t) for p, t in read if t is not None]   # damaged ones were set aside
                        if len(read) < min_files:
                            continue
                        merged, _ = sort_dedupe(pa.concat_tables([t.select([fld.name for fld in SCHEMA])
                                                                  for _, t in read]))
                        self._write_file(part, merged.select([fld.name for fld in SCHEMA]), prefix="part")
                        for p, _ in read:
                            p.unlink(missing_ok=True)
                        fsync_dir(part)
                        n += 1
        if n:   # merged files have new names: their rollups are made again now rather than on the next read
            self.rollups.refresh_existing(facility_id)
        return n

    @staticmethod
    def _remove_stale_tmp(part: Path):
        now = time.time()
        for p in part.glob(".*.tmp"):
            with contextlib.suppress(FileNotFoundError):
                if now - p.stat().st_mtime > _STALE_TMP_S:
                    p.unlink()

    # ------------------------------------------------------------- quarantine
    # JSON-lines files under <data>/quarantine/ (:mod:`dcmon.store.quarantine`).
    def quarantine_writer(self, writer: str = "collector", max_bytes: int | None = None) -> qr.Quarantine:
        return qr.Quarantine(self.root, writer=writer,
                             max_bytes=qr.DEFAULT_MAX_BYTES if max_bytes is None else max_bytes)

    def quarantine_records(self, *, since=None, topic=None, reason=None, facility=None) -> Iterator[dict]:
        return qr.iter_records(self.root, since=since, topic=topic, reason=reason, facility=facility)

    def quarantine_record(self, record_id: str) -> dict | None:
        return qr.get_record(self.root, record_id)

    def quarantine_summary(self, facility_id: str, *, days: int = 7, limit: int = 20) -> dict:
        return qr.facility_summary(self.root, facility_id, days=days, limit=limit)

    def quarantine_prune(self, older_than_days: int, *, keep=(), dry_run: bool = False,
                         now: float | None = None) -> list[Path]:
        return qr.prune(self.root, older_than_days, now=now, keep=keep, dry_run=dry_run)

    # ----------------------------------------------------------------- status
    def put_status(self, name: str, doc: dict) -> None:
        """Replace status document ``name`` atomically: dot-file, fsync, rename, folder fsync (like data
        files), so a crash leaves the previous document or the new one, never a torn one."""
        _check_name(name)
        data = orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS)
        path = self.status_dir / f"{name}.json"
        tmp = self.status_dir / f".{name}.{uuid.uuid4().hex[:8]}.tmp"
        try:
            with open(tmp, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        fsync_dir(self.status_dir)

    def get_status(self, name: str) -> dict | None:
        _check_name(name)
        try:
            return orjson.loads((self.status_dir / f"{name}.json").read_bytes())
        except FileNotFoundError:
            return None

    def list_status(self, prefix: str = "") -> dict[str, dict]:
        out = {}
        for p in sorted(self.status_dir.glob(f"{prefix}*.json")):
            with contextlib.suppress(FileNotFoundError, orjson.JSONDecodeError):
                out[p.stem] = orjson.loads(p.read_bytes())
        return out


def _source_slice(t, source_range):
    """Rows with lo <= source_id < hi."""
    lo, hi = source_range
    if lo is None and hi is None:
        return t
    src = t.column("source_id")
    if pa.types.is_dictionary(src.type):
        src = src.cast(pa.string())
    mask = None
    if lo is not None:
        mask = pc.greater_equal(src, lo)
    if hi is not None:
        m = pc.less(src, hi)
        mask = m if mask is None else pc.and_(mask, m)
    return t.filter(mask)


def _row_groups(pf: pq.ParquetFile, cols, only_if_null, start_ms, end_ms, source_range=(None, None)):
    md = pf.metadata
    names = pf.schema_arrow.names
    lo, hi = source_range
    for i in range(md.num_row_groups):
        rg = md.row_group(i)
        partial = False
        if lo is not None or hi is not None:
            st = rg.column(names.index("source_id")).statistics
            if st is None or not st.has_min_max:
                partial = True
            else:
                smin, smax = _text(st.min), _text(st.max)
                if (hi is not None and smin >= hi) or (lo is not None and smax < lo):
                    continue
                partial = (lo is not None and smin < lo) or (hi is not None and smax >= hi)
        ts_stats = rg.column(names.index("ts")).statistics
        if ts_stats is not None and ts_stats.has_min_max:
            t_lo, t_hi = _stat_ms(ts_stats.min), _stat_ms(ts_stats.max)
            if (start_ms is not None and t_hi < start_ms) or (end_ms is not None and t_lo >= end_ms):
                continue
        want = []
        for c in cols:
            dep = only_if_null.get(c)
            if dep is not None and dep in names:
                st = rg.column(names.index(dep)).statistics
                if st is not None and st.null_count == 0:
                    continue
            want.append(c)
        t = pf.read_row_group(i, columns=want)
        if partial:
            t = _source_slice(t, source_range)
        for batch in t.to_batches():
            batch = _filter_batch(batch, start_ms, end_ms)
            if batch.num_rows:
                yield batch


def _text(v) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def _stat_ms(v) -> int:
    if isinstance(v, int):
        return v
    return int(pd.Timestamp(v).value // 1_000_000) if pd.Timestamp(v).tzinfo else int(pd.Timestamp(v, tz="UTC").value // 1_000_000)


def _read_ahead(gen, depth: int):
    """Run ``gen`` in a thread, ``depth`` items ahead; errors are re-raised in the caller."""
    import queue
    import threading
    q: queue.Queue = queue.Queue(maxsize=depth)
    done = object()
    stop = threading.Event()

    def work():
        try:
            for item in gen:
                while not stop.is_set():
                    try:
                        q.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put(done)
        except BaseException as e:  # noqa: BLE001 - handed to the consumer
            q.put(e)

    th = threading.Thread(target=work, name="dcmon-read-ahead", daemon=True)
    th.start()
    try:
        while True:
            item = q.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        th.join(timeout=5)




def _check_name(name: str):
    if not name or "/" in name or name.startswith(".") or "\\" in name:
        raise ValueError(f"status name must be a plain file name: {name!r}")


def _filter(t: pa.Table, sources, start_ms, end_ms) -> pa.Table:
    mask = None
    if sources is not None:
        mask = pc.is_in(t.column("source_id"), value_set=pa.array(list(sources), pa.string()))
    if start_ms is not None:
        m = pc.greater_equal(t.column("ts"), pa.scalar(start_ms, TS_TYPE))
        mask = m if mask is None else pc.and_(mask, m)
    if end_ms is not None:
        m = pc.less(t.column("ts"), pa.scalar(end_ms, TS_TYPE))
        mask = m if mask is None else pc.and_(mask, m)
    return t if mask is None else t.filter(mask)


def _filter_batch(b: pa.RecordBatch, start_ms, end_ms) -> pa.RecordBatch:
    if start_ms is None and end_ms is None:
        return b
    ts = b.column(b.schema.get_field_index("ts"))
    tsi = pc.cast(ts, pa.int64()).to_numpy()
    if (start_ms is None or tsi.min(initial=start_ms) >= start_ms) and (end_ms is None or tsi.max(initial=0) < end_ms):
        return b
    mask = np.ones(len(tsi), dtype=bool)
    if start_ms is not None:
        mask &= tsi >= start_ms
    if end_ms is not None:
        mask &= tsi < end_ms
    return b.filter(pa.array(mask))


def _anti_join(new: pa.Table, existing: pa.Table) -> tuple[pa.Table, int, int]:
    """Rows of ``new`` whose key is not in ``existing``; count duplicates and conflicting ones."""
    ex = existing.to_pandas()
    nw = new.to_pandas()
    ex["_k"] = 1
    merged = nw.merge(ex, on=["source_id", "ts"], how="left", suffixes=("", "_old"))
    is_dup = merged["_k"].notna().to_numpy()
    conflicts = 0
    if is_dup.any():
        d = merged[is_dup]
        diff = np.zeros(len(d), dtype=bool)
        for c in VALUE_COLUMNS:
            a, b = d[c], d[f"{c}_old"]
            diff |= ~((a == b) | (a.isna() & b.isna())).to_numpy()
        conflicts = int(diff.sum())
    return new.filter(pa.array(~is_dup)), int(is_dup.sum()), conflicts
