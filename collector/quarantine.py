"""Quarantine: every rejected message or reading, kept for the operator to inspect.

Append-only JSON-lines files under ``<data>/quarantine/``, one per UTC day and writer
(``YYYY-MM-DD-<writer>.jsonl``), so several collectors never write the same file. Each line::

    {"time": "2026-07-01T00:00:01.234Z", "received_at_ms": …, "topic": "dcmon/v1/…",
     "where": "dcmon/v1/…[3]", "reason": "power_kw is negative: -4.0", "raw": "…",
     "id": "<file stem>:<line>"}

``raw`` is the rejected reading or payload as text, truncated to ``dcmon.collector.parse.MAX_RAW_CHARS``.
Lines are fsync'd before the message is acknowledged, like the accepted readings.

Retention (:func:`prune`): whole files are removed once their UTC day ended more than N days ago
*and* they were last written more than N days ago; a writer's current file is never removed.
"""
from __future__ import annotations

import datetime as dt
import logging
import os
import re
import time
from pathlib import Path
from typing import Iterator

import orjson

from dcmon.readings import Rejection

log = logging.getLogger("dcmon.collector")

DEFAULT_RETENTION_DAYS = 90
_FILE_RE = re.compile(r"(\d{4}-\d{2}-\d{2})-[A-Za-z0-9_.-]+\.jsonl\Z")
_DAY_S = 86_400


def quarantine_dir(data_dir) -> Path:
    return Path(data_dir) / "quarantine"


def _iso(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Quarantine:
    """Appends rejections of one writer (collector) durably."""

    def __init__(self, data_dir, writer: str = "collector"):
        self.data_dir = Path(data_dir)
        self.dir = quarantine_dir(data_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.writer = re.sub(r"[^A-Za-z0-9_.-]", "_", writer) or "collector"
        self._fh = None
        self._day = None

    def _file(self, ms: int):
        day = _iso(ms)[:10]
        if day != self._day:
            self.close()
            self._day = day
            path = self.dir / f"{day}-{self.writer}.jsonl"
            self._fh = open(path, "ab")
            fd = os.open(self.dir, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        return self._fh

    def write(self, items: list[tuple[str, int, Rejection]]) -> None:
        """Append ``(topic, received_at_ms, rejection)`` items and fsync; no-op when empty."""
        if not items:
            return
        by_day: dict = {}
        for topic, ms, rej in items:
            by_day.setdefault(_iso(ms)[:10], []).append((topic, ms, rej))
        for _, group in sorted(by_day.items()):
            fh = self._file(group[0][1])
            buf = b"".join(orjson.dumps({"time": _iso(ms), "received_at_ms": ms, "topic": topic, "where": rej.where,
                                         "reason": rej.reason, "raw": rej.raw}) + b"\n"
                           for topic, ms, rej in group)
            fh.write(buf)
            fh.flush()
            os.fsync(fh.fileno())

    @property
    def current_path(self) -> Path | None:
        """The file this writer has open (None before the first rejection of a day)."""
        return None if self._fh is None else Path(self._fh.name)

    def close(self):
        if self._fh is not None:
            self._fh.close()
            self._fh = None
            self._day = None


def prune_candidates(data_dir, older_than_days: int, *, now: float | None = None, keep=()) -> list[Path]:
    """Quarantine files older than ``older_than_days`` (≥ 1), oldest first.

    A file ``<YYYY-MM-DD>-<writer>.jsonl`` qualifies when its UTC day ended at least
    ``older_than_days`` × 24 h before ``now`` (every record in it is that old) *and* it was not
    written in that time (mtime), so a file a collector still appends to is never a candidate.
    Paths in ``keep`` (a writer's current file) never are; other files in the folder are ignored.
    """
    if not isinstance(older_than_days, int) or older_than_days < 1:
        raise ValueError(f"quarantine retention must be a whole number of days ≥ 1: {older_than_days!r}")
    qdir = quarantine_dir(data_dir)
    if not qdir.is_dir():
        return []
    now = time.time() if now is None else now
    cutoff = now - older_than_days * _DAY_S
    keep = {Path(k).resolve() for k in keep if k is not None}
    out = []
    for path in sorted(qdir.iterdir()):
        m = _FILE_RE.match(path.name)
        if m is None or not path.is_file() or path.resolve() in keep:
            continue
        try:
            day = dt.date.fromisoformat(m.group(1))
            mtime = path.stat().st_mtime
        except (ValueError, FileNotFoundError):
            continue
        day_end = dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp() + _DAY_S
        if day_end <= cutoff and mtime <= cutoff:
            out.append(path)
    return out


def prune(data_dir, older_than_days: int, *, now: float | None = None, keep=(), dry_run: bool = False) -> list[Path]:
    """Remove the :func:`prune_candidates` (or only list them with ``dry_run``); returns them.

    Each removal is logged with the file name and the total with the count.
    """
    paths = prune_candidates(data_dir, older_than_days, now=now, keep=keep)
    if dry_run or not paths:
        return paths
    removed = []
    for path in paths:
        try:
            path.unlink()
        except FileNotFoundError:   # another collector's retention got there first
            continue
        removed.append(path)
        log.info("quarantine retention: removed %s (older than %d days)", path.name, older_than_days)
    if removed:
        fd = os.open(quarantine_dir(data_dir), os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        log.info("quarantine retention: removed %d file(s) older than %d days", len(removed), older_than_days)
    return removed


def iter_records(data_dir, *, since: str | None = None, topic: str | None = None,
                 reason: str | None = None) -> Iterator[dict]:
    """Quarantined records in file order; filters: day ≥ ``since`` (YYYY-MM-DD), topic substring,
    reason substring. Each record gets an ``id`` ``<file stem>:<line>`` for ``dcmon quarantine show``.
    A torn last line (crash mid-write) is skipped."""
    qdir = quarantine_dir(data_dir)
    if not qdir.is_dir():
        return
    for path in sorted(qdir.glob("*.jsonl")):
        if since and path.name[:10] < since:
            continue
        with open(path, "rb") as fh:
            for lineno, line in enumerate(fh, start=1):
                try:
                    rec = orjson.loads(line)
                except orjson.JSONDecodeError:
                    continue
                if topic and topic not in rec.get("topic", ""):
                    continue
                if reason and reason.lower() not in rec.get("reason", "").lower():
                    continue
                rec["id"] = f"{path.stem}:{lineno}"
                yield rec


def get_record(data_dir, record_id: str) -> dict | None:
    stem, _, line = record_id.rpartition(":")
    if not stem or not line.isdigit() or "/" in stem or stem.startswith("."):
        raise ValueError(f"quarantine id must look like 2026-07-01-collector:12: {record_id!r}")
    path = quarantine_dir(data_dir) / f"{stem}.jsonl"
    if not path.is_file():
        return None
    with open(path, "rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            if lineno == int(line):
                try:
                    rec = orjson.loads(raw)
                except orjson.JSONDecodeError:
                    return None
                rec["id"] = record_id
                return rec
    return None
