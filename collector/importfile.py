"""``dcmon import``'s intake: readings files (CSV, or Parquet by the suffix) in the columns below →
readings validated like the collector's (:func:`dcmon.readings.make_reading`, then the counter
plausibility check against the neighbours in time and the store) → the store. Also writes files in
the same columns (``dcmon generate --out``), so what one writes the other reads.
"""
from __future__ import annotations

import csv
import os
from pathlib import Path

from dcmon.errors import InputError
from dcmon.readings import make_reading, to_table

IMPORT_REQUIRED = ("ts", "facility_id", "kind", "id")
IMPORT_OPTIONAL = ("energy_kwh", "power_kw", "status", "function", "design_power_kw")
IMPORT_CHUNK = 50_000
PARQUET_SUFFIXES = (".parquet", ".pq")


def is_parquet(path: Path) -> bool:
    return path.suffix.lower() in PARQUET_SUFFIXES


def progress_total(path: Path) -> tuple[int, str]:
    """The size of the work for a progress bar: rows of a Parquet file (0 when its footer cannot be
    read: the reader then names the problem), bytes of a CSV file."""
    if is_parquet(path):
        import pyarrow.parquet as pq
        try:
            return pq.ParquetFile(path).metadata.num_rows, "rows"
        except Exception:
            return 0, "rows"
    return path.stat().st_size, "B"


def read_records(path: Path, bar):
    """The header, then (line or row number, values by column or a reason the row is unusable, the
    raw fields) per data row; ``bar.update(n)`` is told the progress (bytes or rows)."""
    return (parquet_records if is_parquet(path) else csv_records)(path, bar)


def check_columns(path, header, where):
    missing = [c for c in IMPORT_REQUIRED if c not in header]
    unknown = [c for c in header if c not in IMPORT_REQUIRED + IMPORT_OPTIONAL]
    if missing or unknown:
        raise InputError(f"{path}{where}: {'header' if where else 'columns'} {','.join(header)!r}: "
                         + (f"missing column(s) {', '.join(missing)}" if missing else "")
                         + ("; " if missing and unknown else "")
                         + (f"unknown column(s) {', '.join(unknown)}" if unknown else "")
                         + f" (expected {','.join(IMPORT_REQUIRED)} and any of {','.join(IMPORT_OPTIONAL)})")


def csv_records(path: Path, bar):
    """(line number, values by column or a reason the row is unusable, the raw fields) per data row."""
    with open(path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.reader(fh)
        try:
            header = [h.strip() for h in next(reader)]
        except StopIteration:
            raise InputError(f"{path}: empty file (expected a header: "
                             f"{','.join(IMPORT_REQUIRED + IMPORT_OPTIONAL)})") from None
        check_columns(path, header, ":1")
        yield header
        last_pos = 0
        for lineno, rec in enumerate(reader, start=2):
            if not rec or (len(rec) == 1 and not rec[0].strip()):
                continue
            if len(rec) != len(header):
                yield lineno, f"has {len(rec)} fields, header has {len(header)}", rec
            else:
                yield lineno, {h: v.strip() for h, v in zip(header, rec)}, rec
            if lineno % 10_000 == 0:
                pos = _approx_pos(fh, path)
                bar.update(max(0, pos - last_pos))
                last_pos = pos
        bar.update(max(0, path.stat().st_size - last_pos))


def _parquet_value(v):
    return v.strip() if isinstance(v, str) else v


def parquet_records(path: Path, bar):
    """As :func:`csv_records` for a Parquet file: row numbers from 1, the same columns. Time stamps
    may be timestamp columns with a time zone, epoch milliseconds or text as in the CSV."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    try:
        pf = pq.ParquetFile(path)
    except (pa.ArrowInvalid, OSError) as e:
        raise InputError(f"{path}: not a readable Parquet file ({e})") from None
    header = list(pf.schema_arrow.names)
    check_columns(path, header, "")
    ts_type = pf.schema_arrow.field("ts").type
    if pa.types.is_timestamp(ts_type) and ts_type.tz is None:
        raise InputError(f"{path}: column ts is a timestamp without a time zone; its instant is unknown "
                         "(store UTC timestamps, epoch milliseconds or ISO 8601 text with an offset)")
    yield header
    row = 0
    for batch in pf.iter_batches(batch_size=IMPORT_CHUNK):
        cols = {}
        for name in header:
            col = batch.column(name)
            if name == "ts" and pa.types.is_timestamp(col.type):
                col = col.cast(pa.timestamp("ms", tz=col.type.tz), safe=False).cast(pa.int64())
            cols[name] = col.to_pylist()
        for k in range(batch.num_rows):
            row += 1
            values = {name: _parquet_value(cols[name][k]) for name in header}
            yield row, values, ["" if values[h] is None else values[h] for h in header]
        bar.update(batch.num_rows)


def _approx_pos(fh, path):
    try:
        return os.lseek(fh.fileno(), 0, os.SEEK_CUR)
    except OSError:
        return 0


def import_records(registry, store, records, reject, *, received_at_ms: int, origin: str) -> dict:
    """Store the valid, plausible readings of ``records`` (:func:`read_records` after its header)
    in chunks of :data:`IMPORT_CHUNK` rows; every other row goes to ``reject(line or row number,
    reason, raw fields)``. Returns the counts: rows, written, duplicates (already stored),
    conflicts (already stored with other values: the stored ones are kept) and rejected."""
    from dcmon.collector.ingest import store_neighbours
    from dcmon.collector.jumpguard import JumpGuard
    totals = {"rows": 0, "written": 0, "duplicates": 0, "conflicts": 0, "rejected": 0}

    def rejected(where, reason, rec):
        totals["rejected"] += 1
        reject(where, reason, rec)
    rows = []   # (row, line or row number, record)
    guard = JumpGuard(history=store_neighbours(store))
    for where, values, rec in records:
        totals["rows"] += 1
        try:
            if isinstance(values, str):
                raise ValueError(values)
            raw = {k: values[k] for k in IMPORT_OPTIONAL if k in values}
            raw["ts"] = values["ts"]
            rows.append((make_reading(registry, str(values["facility_id"] or ""), str(values["kind"] or ""),
                                      str(values["id"] or ""), raw, received_at_ms=received_at_ms, origin=origin),
                         where, rec))
        except ValueError as e:
            rejected(where, str(e), rec)
        if len(rows) >= IMPORT_CHUNK:
            _store_rows(store, _plausible(rows, registry, guard, rejected), totals)
            rows = []
    _store_rows(store, _plausible(rows, registry, guard, rejected), totals)
    return totals


def _plausible(items, registry, guard, reject) -> list[dict]:
    """The rows of a chunk that pass the counter plausibility check (the collector's, against both
    neighbours in time and the store), taken in time order per source so a file's own order does
    not matter; the others go to ``reject(line, reason, record)``."""
    out = []
    for row, where, rec in sorted(items, key=lambda x: (x[0]["facility_id"], x[0]["kind"], x[0]["source_id"],
                                                       x[0]["ts"], x[1])):
        try:
            guard.check(registry.facilities[row["facility_id"]], row)
        except ValueError as e:
            reject(where, str(e), rec)
            continue
        out.append(row)
    return out


def _store_rows(store, rows, totals):
    if rows:
        append_counted(store, to_table(rows), totals)


def append_counted(store, table, totals: dict) -> None:
    """Append ``table`` (existing readings are kept) and add its written, duplicate and conflicting
    rows to ``totals``."""
    res = store.append(table, check_existing=True)
    totals["written"] += res.written
    totals["duplicates"] += res.duplicates
    totals["conflicts"] += res.conflicts


def write_readings_file(tables, out: Path):
    """Readings in the columns dcmon import reads (CSV: ISO 8601 UTC time stamps)."""
    import pyarrow as pa
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq
    t = pa.concat_tables(tables).rename_columns(["id" if n == "source_id" else n for n in tables[0].column_names])
    t = t.select(list(IMPORT_REQUIRED + IMPORT_OPTIONAL))
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    if out.suffix.lower() == ".parquet":
        pq.write_table(t, tmp)
    else:
        import pyarrow.compute as pc
        ts = pc.strftime(t.column("ts"), format="%Y-%m-%dT%H:%M:%SZ")
        t = t.set_column(0, "ts", ts)
        pcsv.write_csv(t, tmp, pcsv.WriteOptions(quoting_style="needed"))
    tmp.replace(out)
