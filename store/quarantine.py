"""Quarantine: every rejected message or reading, kept for the operator to inspect.

Append-only JSON-lines files under ``<data>/quarantine/``, one per UTC day and writer
(``YYYY-MM-DD-<writer>.jsonl``), so several collectors never write the same file. Each line::

    {"time": "2026-07-01T00:00:01.234Z", "received_at_ms": …, "topic": "dcmon/v1/…",
     "where": "dcmon/v1/…[3]", "reason": "power_kw is negative: -4.0", "raw": "…",
     "id": "<file stem>:<line>"}

Bounded (reliability.md #16): a message none of whose readings was accepted is *one* record
(``rejected`` says how many readings it stood for, ``reason`` the first reason and the count of each
kind), its payload kept once, cut to ``MAX_PAYLOAD_KEPT`` bytes; a partly accepted message gives at
most ``MAX_ITEM_RECORDS`` records of rejected items (raw cut to ``MAX_RAW_CHARS``) and one summary
record for the rest. Reasons are cut to a few hundred characters by the parser. ``facility_id`` is the
registered facility the topic names (exactly; None when it names none). The quarantine as a whole is
capped at ``max_bytes`` (default ``DEFAULT_MAX_BYTES``): beyond it the oldest files are removed first,
and the writer starts a new file (``YYYY-MM-DD-<writer>.pNNNN.jsonl``) every ``max_bytes / 8``.

Counts for the dashboard come from ``index-<writer>.json`` (per facility and UTC day: messages and
readings rejected, and the latest records without their payload), rewritten at most once a second,
so nothing has to rescan the files. Lines are fsync'd before the message is acknowledged, like the
accepted readings.

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
from dcmon.store.durable import fsync_dir

log = logging.getLogger("dcmon.collector")

DEFAULT_RETENTION_DAYS = 90
DEFAULT_MAX_BYTES = 256 << 20  # the whole quarantine folder [bytes]; oldest files go first beyond it
MAX_PAYLOAD_KEPT = 16 << 10    # payload bytes kept with a wholly rejected message [bytes]
MAX_ITEM_RECORDS = 10          # records of single rejected items per partly accepted message
INDEX_DAYS = 31                # days of counts kept in the index
INDEX_LATEST = 20              # latest records per facility kept in the index
INDEX_INTERVAL_S = 1.0         # the index is rewritten at most this often [s]
_FILE_RE = re.compile(r"(\d{4}-\d{2}-\d{2})-[A-Za-z0-9_.-]+\.jsonl\Z")
_DAY_S = 86_400


def quarantine_dir(data_dir) -> Path:
    return Path(data_dir) / "quarantine"


def _iso(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _reason_kind(reason: str) -> str:
    """The reason without quoted values, for counting kinds (``unknown meter``, ``malformed JSON``)."""
    head = re.split(r"[:'\"(0-9]", reason, maxsplit=1)[0].strip()
    return head[:60] or "other"


def _count_kinds(rejections) -> dict[str, int]:
    by_reason: dict[str, int] = {}
    for r in rejections:      # (identical reasons are the usual case: classify each text once)
        by_reason[r.reason] = by_reason.get(r.reason, 0) + 1
    kinds: dict[str, int] = {}
    for reason, n in by_reason.items():
        k = _reason_kind(reason)
        kinds[k] = kinds.get(k, 0) + n
    return kinds


def message_records(topic: str, received_ms: int, payload, rejections: list[Rejection], accepted: int,
                    facility_id: str | None) -> list[dict]:
    """The quarantine records of one message (see the module notes for the bounds)."""
    base = {"time": _iso(received_ms), "received_at_ms": received_ms, "topic": topic[:1000],
            "facility_id": facility_id}
    if not rejections:
        return []
    if accepted == 0 and payload is not None:
        first = rejections[0]
        reason = first.reason
        if len(rejections) > 1:
            kinds = _count_kinds(rejections)
            top = sorted(kinds.items(), key=lambda kv: -kv[1])[:5]
            reason = (f"all {len(rejections)} readings rejected ({', '.join(f'{k} ×{n}' for k, n in top)}"
                      f"{', …' if len(kinds) > 5 else ''}); first at {first.where[:200]}: {first.reason}")[:600]
        raw = bytes(payload[:MAX_PAYLOAD_KEPT]).decode("utf-8", errors="replace")
        if len(payload) > MAX_PAYLOAD_KEPT:
            raw += f"… ({len(payload)} bytes)"
        return [dict(base, where=first.where if len(rejections) == 1 else topic[:1000], reason=reason,
                     rejected=len(rejections), raw=raw)]
    out = [dict(base, where=r.where, reason=r.reason, rejected=1, raw=r.raw) for r in rejections[:MAX_ITEM_RECORDS]]
    rest = rejections[MAX_ITEM_RECORDS:]
    if rest:
        kinds = _count_kinds(rest)
        top = sorted(kinds.items(), key=lambda kv: -kv[1])[:5]
        out.append(dict(base, where=topic[:1000], rejected=len(rest), raw="",
                        reason=f"{len(rest)} more readings of this message rejected "
                               f"({', '.join(f'{k} ×{n}' for k, n in top)}); first at {rest[0].where[:200]}: "
                               f"{rest[0].reason}"[:600]))
    return out


class Quarantine:
    """Appends rejections of one writer (collector) durably, within a size cap, with an index of counts.

    max_bytes : cap of the quarantine folder [bytes] (oldest files removed first beyond it)
    """

    def __init__(self, data_dir, writer: str = "collector", max_bytes: int = DEFAULT_MAX_BYTES):
        self.data_dir = Path(data_dir)
        self.dir = quarantine_dir(data_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.writer = re.sub(r"[^A-Za-z0-9_.-]", "_", writer) or "collector"
        self.max_bytes = max_bytes
        self.rotate_bytes = max(max_bytes // 8, 1 << 20)
        self._fh = None
        self._day = None
        self._part = 0
        self._lines = 0
        self._total_bytes = None            # of the folder, counted at the first write
        self._index_dirty = False
        self._index_at = 0.0
        self.index = self._load_index()

    # ------------------------------------------------------------ files
    def _path(self, day: str, part: int) -> Path:
        return self.dir / (f"{day}-{self.writer}.jsonl" if part == 0 else f"{day}-{self.writer}.p{part:04d}.jsonl")

    def _file(self, ms: int):
        day = _iso(ms)[:10]
        if day != self._day or (self._fh is not None and self._fh.tell() >= self.rotate_bytes):
            if day == self._day:
                self._part += 1
            else:
                self._part = 0
                while self._path(day, self._part + 1).exists():   # a restart continues the last part
                    self._part += 1
            self.close()
            self._day = day
            path = self._path(day, self._part)
            self._fh = open(path, "ab")
            if self._fh.tell() and not _ends_with_newline(path):
                self._fh.write(b"\n")   # after a torn last line (crash mid-write): start a fresh line
                self._fh.flush()
            self._lines = _count_lines(path)
            fsync_dir(self.dir)
        return self._fh

    def write(self, items: list[tuple[str, int, Rejection]]) -> None:
        """Append ``(topic, received_at_ms, rejection)`` items, one record each, and fsync; no-op when empty."""
        self.write_records([dict(time=_iso(ms), received_at_ms=ms, topic=topic, facility_id=None, where=rej.where,
                                 reason=rej.reason, rejected=1, raw=rej.raw) for topic, ms, rej in items])

    def write_records(self, records: list[dict]) -> None:
        """Append records (:func:`message_records`) and fsync, then keep the folder under its cap."""
        if not records:
            return
        by_day: dict = {}
        for rec in records:
            by_day.setdefault(rec["time"][:10], []).append(rec)
        written = 0
        for _, group in sorted(by_day.items()):
            fh = self._file(group[0]["received_at_ms"])
            stem = Path(fh.name).stem
            lines = []
            for rec in group:
                self._lines += 1
                rec["id"] = f"{stem}:{self._lines}"
                lines.append(orjson.dumps(rec))
                self._count(rec)
            buf = b"\n".join(lines) + b"\n"
            fh.write(buf)
            fh.flush()
            os.fsync(fh.fileno())
            written += len(buf)
        if self._total_bytes is None:
            self._total_bytes = _folder_bytes(self.dir)
        else:
            self._total_bytes += written
        if self._total_bytes > self.max_bytes:
            self._enforce_cap()
        self.flush_index()

    def _enforce_cap(self) -> None:
        """Remove the oldest files (not this writer's current one, nor another writer's file written in
        the last minute) until the folder is under its cap; start a new part when only the current is left."""
        files = []
        for p in self.dir.glob("*.jsonl"):
            try:
                st = p.stat()
            except FileNotFoundError:
                continue
            files.append((p.name[:10], st.st_mtime, p, st.st_size))
        files.sort()
        total = sum(f[3] for f in files)
        current = None if self._fh is None else Path(self._fh.name).resolve()
        now = time.time()
        removed = 0
        for _, mtime, p, size in files:
            if total <= self.max_bytes:
                break
            if p.resolve() == current:
                continue
            if not p.name.endswith(f"-{self.writer}.jsonl") and f"-{self.writer}.p" not in p.name and now - mtime < 60:
                continue
            try:
                p.unlink()
            except FileNotFoundError:
                continue
            total -= size
            removed += 1
            self.index["pruned_files"] = self.index.get("pruned_files", 0) + 1
            self.index["pruned_bytes"] = self.index.get("pruned_bytes", 0) + size
            log.warning("quarantine over its cap (%d MiB): removed the oldest file %s (%d bytes)",
                        self.max_bytes >> 20, p.name, size)
        self._total_bytes = total
        if total > self.max_bytes and self._fh is not None:
            self.close()     # only the current file is left: the next record opens a new part
            self._part += 1

    # ------------------------------------------------------------ index
    @property
    def index_path(self) -> Path:
        return self.dir / f"index-{self.writer}.json"

    def _load_index(self) -> dict:
        try:
            doc = orjson.loads(self.index_path.read_bytes())
            if isinstance(doc, dict) and isinstance(doc.get("facilities"), dict):
                return doc
        except (FileNotFoundError, orjson.JSONDecodeError):
            pass
        return {"writer": self.writer, "facilities": {}, "pruned_files": 0, "pruned_bytes": 0}

    def _count(self, rec: dict) -> None:
        fac = rec.get("facility_id") or ""
        f = self.index["facilities"].setdefault(fac, {"by_day": {}, "latest": []})
        d = f["by_day"].setdefault(rec["time"][:10], {"records": 0, "rejected": 0})
        d["records"] += 1
        d["rejected"] += rec.get("rejected", 1)
        f["latest"].append({k: rec.get(k) for k in ("id", "time", "received_at_ms", "topic", "where", "reason",
                                                     "rejected")})
        del f["latest"][:-INDEX_LATEST]
        if len(f["by_day"]) > INDEX_DAYS:
            for day in sorted(f["by_day"])[:-INDEX_DAYS]:
                del f["by_day"][day]
        self._index_dirty = True

    def flush_index(self, force: bool = False) -> None:
        """Rewrite the index atomically (at most every ``INDEX_INTERVAL_S`` unless ``force``)."""
        if not self._index_dirty or (not force and time.monotonic() - self._index_at < INDEX_INTERVAL_S):
            return
        self.index["updated_at_ms"] = int(time.time() * 1000)
        tmp = self.dir / f".{self.index_path.name}.tmp"
        try:
            tmp.write_bytes(orjson.dumps(self.index))
            os.replace(tmp, self.index_path)
        except OSError as e:
            log.error("could not write the quarantine index %s: %s", self.index_path, e)
            return
        self._index_dirty = False
        self._index_at = time.monotonic()

    @property
    def current_path(self) -> Path | None:
        """The file this writer has open (None before the first rejection of a day)."""
        return None if self._fh is None else Path(self._fh.name)

    def close(self):
        if self._fh is not None:
            self._fh.close()
            self._fh = None
            self._day = None
        self.flush_index(force=True)


def _ends_with_newline(path: Path) -> bool:
    with open(path, "rb") as fh:
        fh.seek(-1, os.SEEK_END)
        return fh.read(1) == b"\n"


def _count_lines(path: Path) -> int:
    n = 0
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            n += chunk.count(b"\n")
    return n


def _folder_bytes(qdir: Path) -> int:
    total = 0
    for p in qdir.glob("*.jsonl"):
        try:
            total += p.stat().st_size
        except FileNotFoundError:
            pass
    return total


def read_index(data_dir) -> dict:
    """Every writer's index merged: ``{facility_id: {"by_day": {day: {records, rejected}}, "latest": [...]}}``
    (facility ``""``: topics that name no registered facility)."""
    out: dict = {}
    qdir = quarantine_dir(data_dir)
    if not qdir.is_dir():
        return out
    for p in sorted(qdir.glob("index-*.json")):
        try:
            doc = orjson.loads(p.read_bytes())
        except (FileNotFoundError, orjson.JSONDecodeError):
            continue
        for fac, f in (doc.get("facilities") or {}).items():
            m = out.setdefault(fac, {"by_day": {}, "latest": []})
            for day, c in f.get("by_day", {}).items():
                d = m["by_day"].setdefault(day, {"records": 0, "rejected": 0})
                d["records"] += c.get("records", 0)
                d["rejected"] += c.get("rejected", 0)
            m["latest"] += f.get("latest", [])
    for m in out.values():
        m["latest"].sort(key=lambda r: r.get("received_at_ms") or 0)
    return out


def facility_summary(data_dir, facility_id: str, *, days: int = 7, limit: int = 20,
                     today: dt.date | None = None) -> dict:
    """Quarantine counts of one facility (exact id) over the last ``days`` UTC days and its latest
    records, from the index (no rescan): ``{"records", "rejected", "latest"}``."""
    f = read_index(data_dir).get(facility_id)
    if not f:
        return {"records": 0, "rejected": 0, "latest": []}
    today = today or dt.datetime.now(dt.UTC).date()
    since = (today - dt.timedelta(days=days)).isoformat()
    recent = [c for day, c in f["by_day"].items() if day >= since]
    since_ms = int(dt.datetime.combine(today - dt.timedelta(days=days), dt.time(), dt.UTC).timestamp() * 1000)
    latest = [r for r in f["latest"] if (r.get("received_at_ms") or 0) >= since_ms]
    return {"records": sum(c["records"] for c in recent), "rejected": sum(c["rejected"] for c in recent),
            "latest": latest[-limit:]}


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
        fsync_dir(quarantine_dir(data_dir))
        log.info("quarantine retention: removed %d file(s) older than %d days", len(removed), older_than_days)
    return removed


def iter_records(data_dir, *, since: str | None = None, topic: str | None = None,
                 reason: str | None = None, facility: str | None = None) -> Iterator[dict]:
    """Quarantined records in file order; filters: day ≥ ``since`` (YYYY-MM-DD), topic substring,
    reason substring, ``facility`` (exact id). Each record gets an ``id`` ``<file stem>:<line>`` for
    ``dcmon quarantine show``. A torn last line (crash mid-write) is skipped."""
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
                if facility is not None and rec.get("facility_id") != facility:
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
