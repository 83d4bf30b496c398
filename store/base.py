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
  (:mod:`dcmon.store.digest`), the same however the rows are split into files. Reports cite and
  verify readings only through it: no other layer hashes or walks the store's files.
* The rack-inventory index (:mod:`dcmon.store.inventory`) is kept by ``append`` under kind
  :data:`INVENTORY_KIND`; ``inventory_changes(...)`` reads it.
* Status documents (``put_status``/``get_status``/``list_status``) are small JSON documents
  replaced atomically.
* The quarantine (:mod:`dcmon.store.quarantine`): rejected telemetry, written by the collector
  through ``quarantine_writer(...)``, read through ``quarantine_records``, ``quarantine_record``,
  ``quarantine_summary`` and ``rejected_counts``, pruned by ``quarantine_prune``.

Every method another layer calls is declared here (``tests/test_store_interface.py`` checks it);
other layers hold a ``Store``, never a concrete backend (only entry points and tests open one).
"""
from __future__ import annotations

import abc
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import pandas as pd
import pyarrow as pa

from dcmon.errors import DcmonError
from dcmon.store.digest import METHOD as DIGEST_METHOD  # noqa: F401 - the digests' method, cited by reports

# Kind of the rack-inventory index rows (rack rows stating status, function or design power).
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
    # Where ``dcmon check`` looked and where damaged files were set aside (for its messages), and the
    # files this process set aside (collector health); backends without files leave them empty.
    readings_dir: Path | None = None
    damaged_dir: Path | None = None
    damaged: tuple | list = ()
    damaged_total: int = 0

    @abc.abstractmethod
    def append(self, table: pa.Table, *, check_existing: bool = True) -> AppendResult: ...

    @abc.abstractmethod
    def read(self, facility_id: str, kind: str | None = None, start: pd.Timestamp | None = None,
             end: pd.Timestamp | None = None, sources: list[str] | None = None,
             columns: list[str] | None = None) -> pa.Table: ...

    @abc.abstractmethod
    def iter_sorted(self, facility_id: str, kind: str, start: pd.Timestamp | None, end: pd.Timestamp | None,
                    columns: list[str], *, only_if_null: dict[str, str] | None = None,
                    source_range: tuple[str | None, str | None] = (None, None),
                    prefetch: int = 3) -> Iterator[pa.RecordBatch]:
        """Rows sorted by ``(source_id, ts)`` within each day, days in order. ``only_if_null``
        ``{a: b}``: column ``a`` may be left null where ``b`` has no nulls (a backend may skip
        reading it there); ``source_range`` ``(lo, hi)`` keeps ``lo <= source_id < hi``;
        ``prefetch``: batches a backend may read ahead (0: none)."""

    @abc.abstractmethod
    def files(self, facility_id: str | None = None, kind: str | None = None,
              start: pd.Timestamp | None = None, end: pd.Timestamp | None = None) -> list[Path]: ...

    def check_file(self, path: Path) -> str | None:
        """Why a file of :meth:`files` cannot be read in full, or None when it can."""
        return None

    def move_aside(self, path: Path, reason: str) -> Path | None:
        """Set a damaged file aside (under :attr:`damaged_dir`) with its reason; its new path."""
        raise NotImplementedError(f"{type(self).__name__} keeps no files to move aside")

    def damaged_files(self) -> list[Path]:
        """Files set aside earlier (any process), sorted."""
        return []

    def inventory_changes(self, facility_id: str, end: pd.Timestamp | None = None,
                          columns: list[str] | None = None) -> pa.Table:
        """The rack-inventory index before ``end``: rack rows stating status, function or design power,
        sorted by ``(source_id, ts)``."""
        return self.read(facility_id, INVENTORY_KIND, None, end, columns=columns)

    # Small JSON documents: collector health, last-seen times, data-quality notes.
    @abc.abstractmethod
    def put_status(self, name: str, doc: dict) -> None: ...

    @abc.abstractmethod
    def get_status(self, name: str) -> dict | None: ...

    @abc.abstractmethod
    def list_status(self, prefix: str = "") -> dict[str, dict]: ...

    def compact(self, facility_id: str | None = None) -> int:
        """Merge small files; the number of partitions merged (0 for backends that need no compaction)."""
        return 0

    # Quarantine: rejected telemetry with its reasons (:mod:`dcmon.store.quarantine`).
    @abc.abstractmethod
    def quarantine_writer(self, writer: str = "collector", max_bytes: int | None = None):
        """A writer of quarantine records (:class:`dcmon.store.quarantine.Quarantine` interface:
        ``write_records``, ``write``, ``flush_index``, ``current_path``, ``close``)."""

    @abc.abstractmethod
    def quarantine_records(self, *, since: str | None = None, topic: str | None = None,
                           reason: str | None = None, facility: str | None = None) -> Iterator[dict]:
        """Quarantined records, oldest first, each with its ``id``; filters as
        :func:`dcmon.store.quarantine.iter_records`."""

    @abc.abstractmethod
    def quarantine_record(self, record_id: str) -> dict | None:
        """One record by its ``id`` (None when there is none); ValueError for a malformed id."""

    @abc.abstractmethod
    def quarantine_summary(self, facility_id: str, *, days: int = 7, limit: int = 20) -> dict:
        """``{"records", "rejected", "latest"}`` of one facility over the last ``days`` UTC days."""

    @abc.abstractmethod
    def quarantine_prune(self, older_than_days: int, *, keep=(), dry_run: bool = False,
                         now: float | None = None) -> list[Path]:
        """Remove (or with ``dry_run`` only list) quarantine files older than ``older_than_days``."""

    def rejected_counts(self, facility_id: str, start_ms: int, end_ms: int) -> dict[str, int]:
        """Rejected readings or messages whose topic names the facility, received in
        ``[start_ms, end_ms)``, counted by reason (the text before its first colon)."""
        out: dict[str, int] = {}
        for rec in self.quarantine_records():
            if f"/{facility_id}/" not in rec.get("topic", "") + "/":
                continue
            if not start_ms <= rec.get("received_at_ms", 0) < end_ms:
                continue
            reason = rec.get("reason", "").split(":")[0]
            out[reason] = out.get(reason, 0) + 1
        return out

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
