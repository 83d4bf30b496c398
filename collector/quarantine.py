"""Quarantine: every rejected message or reading, kept for the operator to inspect.

Append-only JSON-lines files under ``<data>/quarantine/``, one per UTC day and writer
(``YYYY-MM-DD-<writer>.jsonl``), so several collectors never write the same file. Each line::

    {"time": "2026-07-01T00:00:01.234Z", "received_at_ms": …, "topic": "dcmon/v1/…",
     "where": "dcmon/v1/…[3]", "reason": "power_kw is negative: -4.0", "raw": "…",
     "id": "<file stem>:<line>"}

``raw`` is the rejected reading or payload as text, truncated to ``dcmon.collector.parse.MAX_RAW_CHARS``.
Lines are fsync'd before the message is acknowledged, like the accepted readings.
"""
from __future__ import annotations

import datetime as dt
import os
import re
from pathlib import Path
from typing import Iterator

import orjson

from dcmon.readings import Rejection


def quarantine_dir(data_dir) -> Path:
    return Path(data_dir) / "quarantine"


def _iso(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Quarantine:
    """Appends rejections of one writer (collector) durably."""

    def __init__(self, data_dir, writer: str = "collector"):
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

    def close(self):
        if self._fh is not None:
            self._fh.close()
            self._fh = None
            self._day = None


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
