"""Content digests of readings: one SHA-256 per source and UTC month, independent of files.

Reports cite these instead of file hashes, so ``dcmon compact`` (or any re-partitioning) keeps
earlier reports valid, while any changed, added or removed reading changes the digest of its
source and month.

Canonical form (method ``dcmon-readings/1``), over the deduplicated readings of one source in
one UTC month, in time order:

* a fixed record per reading, big-endian, packed (41 bytes): ``ts`` [ms since 1970, int64],
  ``energy_kwh``, ``power_kw``, ``design_power_kw`` (IEEE-754 float64, 0 when null), a flags
  byte (bit 0/1/2: energy/power/design power is null), then the UTF-8 byte lengths of
  ``status`` and ``function`` (int32, -1 when null);
* the concatenated UTF-8 bytes of every reading's ``status``, and separately of every ``function``
  (nulls contribute nothing; the lengths above delimit them).

``digest = SHA-256("dcmon-readings/1" ‖ SHA-256(fixed records) ‖ SHA-256(status bytes) ‖ SHA-256(function bytes))``.
Each part streams, so the digest does not depend on how the readings are split into files.
``received_at`` and ``origin`` are bookkeeping, not readings, and are not part of it.
"""
from __future__ import annotations

import hashlib

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

METHOD = "dcmon-readings/1"
COLUMNS = ["source_id", "ts", "energy_kwh", "power_kw", "design_power_kw", "status", "function"]
_FIXED = np.dtype([("ts", ">i8"), ("energy", ">f8"), ("power", ">f8"), ("design", ">f8"), ("flags", "u1"),
                   ("status_len", ">i4"), ("function_len", ">i4")])


def _month_label(month_index: int) -> str:
    return f"{1970 + month_index // 12:04d}-{month_index % 12 + 1:02d}"


def _strings(col: pa.ChunkedArray | pa.Array) -> tuple[np.ndarray, np.ndarray, bytes]:
    """(lengths with -1 for null, byte offsets per row, concatenated bytes) of a string column."""
    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    if isinstance(arr, pa.DictionaryArray):
        arr = arr.dictionary_decode()
    arr = arr.cast(pa.large_string())
    n = len(arr)
    if arr.null_count == n:
        return np.full(n, -1, dtype=np.int32), np.zeros(n + 1, dtype=np.int64), b""
    lengths = pc.fill_null(pc.binary_length(arr), -1).to_numpy(zero_copy_only=False).astype(np.int32)
    offsets = np.concatenate([[0], np.cumsum(np.maximum(lengths, 0), dtype=np.int64)])
    data = "".join(pc.fill_null(arr, "").to_pylist()).encode("utf-8")
    return lengths, offsets, data


class DigestAccumulator:
    """Feeds sorted tables (by source, then time; one source's rows in time order across calls)
    and yields ``{(source_id, "YYYY-MM"): (sha256 hex, rows)}``."""

    def __init__(self):
        self._fixed: dict[tuple[str, str], hashlib._Hash] = {}
        self._status: dict[tuple[str, str], hashlib._Hash] = {}
        self._function: dict[tuple[str, str], hashlib._Hash] = {}
        self._rows: dict[tuple[str, str], int] = {}

    def add(self, table: pa.Table) -> None:
        n = table.num_rows
        if n == 0:
            return
        ts = table.column("ts").combine_chunks().cast(pa.int64()).to_numpy(zero_copy_only=False)
        rec = np.zeros(n, dtype=_FIXED)
        rec["ts"] = ts
        flags = np.zeros(n, dtype=np.uint8)
        for bit, (name, field) in enumerate((("energy_kwh", "energy"), ("power_kw", "power"),
                                             ("design_power_kw", "design"))):
            col = table.column(name).combine_chunks()
            valid = col.is_valid().to_numpy(zero_copy_only=False)
            rec[field] = pc.fill_null(col, 0.0).to_numpy(zero_copy_only=False)
            flags |= (~valid).astype(np.uint8) << bit
        rec["flags"] = flags
        s_len, s_off, s_data = _strings(table.column("status"))
        f_len, f_off, f_data = _strings(table.column("function"))
        rec["status_len"] = s_len
        rec["function_len"] = f_len
        fixed = rec.tobytes()
        # group boundaries: a new source or a new UTC month
        month = ts.astype("datetime64[ms]").astype("datetime64[M]").astype(np.int64)
        src = table.column("source_id").combine_chunks()
        if isinstance(src, pa.DictionaryArray):
            src = src.dictionary_decode()
        change = np.zeros(n, dtype=bool)
        change[0] = True
        if n > 1:
            change[1:] = pc.not_equal(src.slice(1), src.slice(0, n - 1)).to_numpy(zero_copy_only=False)
            change[1:] |= month[1:] != month[:-1]
        starts = np.flatnonzero(change)
        ends = np.append(starts[1:], n)
        size = _FIXED.itemsize
        for a, b in zip(starts.tolist(), ends.tolist()):
            key = (src[a].as_py(), _month_label(int(month[a])))
            if key not in self._fixed:
                self._fixed[key] = hashlib.sha256()
                self._status[key] = hashlib.sha256()
                self._function[key] = hashlib.sha256()
                self._rows[key] = 0
            self._fixed[key].update(fixed[a * size:b * size])
            if s_data:
                self._status[key].update(s_data[s_off[a]:s_off[b]])
            if f_data:
                self._function[key].update(f_data[f_off[a]:f_off[b]])
            self._rows[key] += b - a

    def result(self) -> dict[tuple[str, str], tuple[str, int]]:
        out = {}
        for key in sorted(self._fixed):
            h = hashlib.sha256(METHOD.encode())
            h.update(self._fixed[key].digest())
            h.update(self._status[key].digest())
            h.update(self._function[key].digest())
            out[key] = (h.hexdigest(), self._rows[key])
        return out
