"""The store interface shared by the Parquet dataset and other backends (InfluxDB).

Contract
--------
* ``append(table)`` takes rows of :data:`dcmon.readings.SCHEMA`. When it returns, the rows are
  durable (fsync'd) and visible to readers; a crash before then leaves no partial data visible.
* Idempotent on ``(facility_id, kind, source_id, ts)``: the first row written for a key wins;
  later copies are counted as duplicates and never replace it (nothing stored is altered).
* ``read(...)`` returns a deduplicated table sorted by ``(source_id, ts)``.
* A file that cannot be read raises :class:`DamagedFile` naming it, or — for a store opened with
  ``on_damaged="move_aside"`` (the collector) — is moved to ``<data>/damaged/`` with its reason,
  logged and listed in ``damaged`` (reported in health), and the operation carries on without it.
* ``iter_sorted(...)`` streams the same rows in bounded memory: batches in day order, and within
  a day sorted by ``(source_id, ts)``. Metrics that difference counters use it.
* ``reading_digests(...)`` gives a content digest of the readings per source and UTC month
  (:mod:`dcmon.store.digest`), the same however the rows are split into files.
"""
from __future__ import annotations

import abc
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import pandas as pd
import pyarrow as pa

from dcmon.errors import DcmonError


# kind of the rack-inventory index: status, function and design-power changes of racks (rows also stored under kind=rack)
INVENTORY_KIND = "rack-inventory"


class DamagedFile(DcmonError):
    """A store file that cannot be read (disk fault, a copy gone wrong, not a dcmon file).

    The message names the file and the reason in one line, and what to do about it.
    """

    def __init__(self, path: Path, reason: str, moved_to: Path | None = None):
        self.path, self.reason, self.moved_to = Path(path), reason, moved_to
        what = (f"moved aside to {moved_to}" if moved_to is not None
                else "run 'dcmon check --repair' to move it aside (its readings are then left out)")
        super().__init__(f"damaged store file {path}: {reason}; {what}")


@dataclass
class AppendResult:
    written: int = 0           # rows newly stored
    duplicates: int = 0        # rows whose key was already stored (or repeated in the input)
    conflicts: int = 0         # duplicates whose values differ from the stored row (first kept)
    files: list[Path] = field(default_factory=list)

    def __iadd__(self, other: "AppendResult"):
        self.written += other.written
        self.duplicates += other.duplicates
        self.conflicts += other.conflicts
        self.files += other.files
        return self


class Store(abc.ABC):
    @abc.abstractmethod
    def append(self, table: pa.Table, *, check_existing: bool = True) -> AppendResult: ...

    @abc.abstractmethod
    def read(self, facility_id: str, kind: str | None = None, start: pd.Timestamp | None = None,
             end: pd.Timestamp | None = None, sources: list[str] | None = None,
             columns: list[str] | None = None) -> pa.Table: ...

    @abc.abstractmethod
    def iter_sorted(self, facility_id: str, kind: str, start: pd.Timestamp, end: pd.Timestamp,
                    columns: list[str], *, only_if_null: dict | None = None,
                    source_range: tuple[str | None, str | None] = (None, None)) -> Iterator[pa.RecordBatch]:
        """Rows sorted by (source_id, ts) within each day; ``only_if_null`` {col: other} reads col only
        where other has nulls; ``source_range`` (lo, hi) keeps lo <= source_id < hi."""

    @abc.abstractmethod
    def files(self, facility_id: str | None = None, kind: str | None = None,
              start: pd.Timestamp | None = None, end: pd.Timestamp | None = None) -> list[Path]: ...

    # Small JSON documents: collector health, last-seen times, data-quality notes.
    @abc.abstractmethod
    def put_status(self, name: str, doc: dict) -> None: ...

    @abc.abstractmethod
    def get_status(self, name: str) -> dict | None: ...

    @abc.abstractmethod
    def list_status(self, prefix: str = "") -> dict[str, dict]: ...

    def compact(self, facility_id: str | None = None) -> int:
        return 0

    def reading_digests(self, facility_id: str, kind: str, start: pd.Timestamp | None = None,
                        end: pd.Timestamp | None = None) -> dict[tuple[str, str], tuple[str, int]]:
        """Content digest of the readings in ``[start, end)``: ``{(source_id, "YYYY-MM"): (sha256, rows)}``.

        Defined on the readings, not on files (canonical form in :mod:`dcmon.store.digest`), so it
        survives compaction and re-partitioning. Backends may stream; this default reads the period.
        """
        from dcmon.store.digest import COLUMNS, DigestAccumulator
        acc = DigestAccumulator()
        acc.add(self.read(facility_id, kind, start, end, columns=COLUMNS))
        return acc.result()
