"""From received messages to durable readings: parse, store, quarantine, outbox — then ack.

:class:`Ingestor` knows nothing of MQTT: it takes ``(topic, payload, received_at_ms)`` items,
and when :meth:`Ingestor.process` returns, every accepted reading is in the store (fsync'd),
every rejection is in the quarantine (fsync'd), and the InfluxDB outbox (if any) holds the
readings durably. Only then may the transport acknowledge the messages (reliability.md #3).
It also keeps the health figures the collector reports.
"""
from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from typing import NamedTuple

from dcmon.readings import DEFAULT_MAX_FUTURE, Rejection

from dcmon.collector.buffers import Rows
from dcmon.collector.jumpguard import JumpGuard
from dcmon.collector.parsers import PARSERS, parse_batch
from dcmon.collector.parsers.common import DEFAULT_PREFIX, Context
from dcmon.store.quarantine import message_records

log = logging.getLogger("dcmon.collector")


@dataclass
class Stats:
    """Counters since start (the health document shows them with rates)."""

    messages: int = 0
    readings: int = 0              # accepted readings handed to the store
    written: int = 0               # rows the store newly wrote (duplicates excluded)
    duplicates: int = 0
    rejected: int = 0              # rejected readings or messages
    rejected_messages: int = 0     # messages with at least one rejection
    batches: int = 0
    bytes: int = 0
    store_errors: int = 0
    last_ack_lag_ms: float = 0.0   # arrival of the oldest message of the last batch → durable [ms]
    max_ack_lag_ms: float = 0.0
    rejects_by_reason: dict = field(default_factory=lambda: defaultdict(int))
    quarantine_records: int = 0    # records written to the quarantine (at most a few per message)
    commit_seconds: float = 0.0    # time spent making batches durable (quarantine, store, outbox) [s]
    commits: int = 0               # batches made durable
    # per configured facility (the topic's facility segment, matched exactly): accepted readings and
    # rejections by reason class; rejections on topics naming no configured facility count only above
    accepted_by_facility: dict = field(default_factory=lambda: defaultdict(int))
    rejects_by_facility: dict = field(default_factory=lambda: defaultdict(lambda: defaultdict(int)))


class _LogLimiter:
    """At most ``per_minute`` rejection log lines per topic; the rest are summarised."""

    def __init__(self, per_minute: int = 10):
        self.per_minute = per_minute
        self.window: dict[str, deque] = {}
        self.suppressed: dict[str, int] = defaultdict(int)

    def allow(self, topic: str, now: float) -> bool:
        q = self.window.setdefault(topic, deque())
        while q and now - q[0] > 60:
            q.popleft()
        if len(q) < self.per_minute:
            q.append(now)
            return True
        self.suppressed[topic] += 1
        if len(self.window) > 10_000:  # bounded under a flood of distinct topics
            self.window.clear()
        return False

    def flush(self):
        out = dict(self.suppressed)
        self.suppressed.clear()
        return out


def _reason_class(reason: str) -> str:
    """A short class of a rejection reason for counting (``unknown meter``, ``malformed JSON``...)."""
    for key in ("malformed JSON", "malformed line protocol", "unknown facility", "unknown meter", "unknown rack",
                "in the future", "impossible", "jumps", "is negative", "not finite", "is not a number",
                "missing", "payload says", "tag facility", "unknown field", "topic does not follow",
                "no value", "outside 2000..2200", "not ISO 8601", "without a UTC offset", "internal error",
                "JSON array", "JSON object", "characters long", "bytes (limit"):
        if key in reason:
            return key
    return "other"


class Rejected(NamedTuple):
    """One rejection of a batch, with the message it came from."""

    topic: str
    received_at_ms: int
    rejection: Rejection
    facility_id: str | None    # the configured facility the topic names, else None


@dataclass
class Parsed:
    """One parsed batch on its way to durability."""

    rows: Rows
    table: object            # pyarrow.Table of the accepted rows, or None
    rejected: list           # [Rejected] of every rejection
    messages: int
    bytes: int
    records: list = field(default_factory=list)   # quarantine records (a few per bad message)
    rejected_messages: int = 0
    quarantined: bool = False
    attempts: int = 0


NEIGHBOUR_WINDOW_MS = 35 * 86_400_000   # how far the guard looks into the store for a meter's neighbours [ms]


def store_neighbours(store, window_ms: int = NEIGHBOUR_WINDOW_MS):
    """A :class:`JumpGuard` ``history``: the stored counter readings of one source nearest to ``ts``
    on each side (within ``window_ms``), each ``(ts_ms, energy_kwh)`` or None.

    A store that cannot be read gives no neighbours (logged); evaluation still refuses to count
    an implausible step, so nothing wrong becomes energy.
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    import pandas as pd   # the Store interface takes pd.Timestamp bounds

    latest: dict = {}   # (facility_id, kind) -> {source_id: (ts_ms, energy_kwh)}: last stored, read once

    def newest(facility_id, kind):
        """The last stored counter reading of every source of a facility within the window before now:
        one read per facility and kind after a start, instead of one per source."""
        key = (facility_id, kind)
        if key not in latest:
            now = time.time() * 1000
            try:
                t = store.read(facility_id, kind, pd.Timestamp(int(now - window_ms), unit="ms", tz="UTC"), None,
                               columns=["source_id", "ts", "energy_kwh"])
            except Exception as e:  # noqa: BLE001
                log.warning("jump guard: cannot read the stored readings of %s (%s)", facility_id, e)
                return None, now
            t = t.filter(pc.is_valid(t.column("energy_kwh")))
            out = {}
            if t.num_rows:
                src = t.column("source_id").to_pylist()
                ts = t.column("ts").cast(pa.int64()).to_numpy()
                e = t.column("energy_kwh").to_numpy()
                for i in range(t.num_rows):          # sorted by (source, ts): the last row of each source wins
                    out[src[i]] = (int(ts[i]), float(e[i]))
            latest[key] = (out, now)
        return latest[key]

    asked: set = set()   # sources the facility-wide read has answered once (later: the store itself)

    def lookup(facility_id, kind, source_id, ts_ms):
        key = (facility_id, kind, source_id)
        known, loaded_at = (None, 0) if key in asked else newest(facility_id, kind)
        asked.add(key)
        if known is not None:   # (only the first question about a source: the store changes after the read)
            last = known.get(source_id)
            if last is not None and ts_ms > last[0] and ts_ms >= loaded_at - window_ms:
                return last, None        # the usual first reading after a start: newer than anything stored
            if last is None and loaded_at - window_ms <= ts_ms:
                return None, None        # nothing stored in the window before it (and nothing after 'now')
        try:
            t = store.read(facility_id, kind, pd.Timestamp(ts_ms - window_ms, unit="ms", tz="UTC"),
                           pd.Timestamp(ts_ms + window_ms + 1, unit="ms", tz="UTC"), sources=[source_id],
                           columns=["ts", "energy_kwh"])
        except Exception as e:  # noqa: BLE001 - a look-up must not stop ingestion
            log.warning("jump guard: cannot read the stored readings of %s %s/%s (%s); checking against "
                        "this collector's readings only", kind, facility_id, source_id, e)
            return None, None
        t = t.filter(pc.is_valid(t.column("energy_kwh")))
        if not t.num_rows:
            return None, None
        ts = t.column("ts").cast(pa.int64()).to_numpy()
        e = t.column("energy_kwh").to_numpy()
        i = int(np.searchsorted(ts, ts_ms, "left"))
        j = int(np.searchsorted(ts, ts_ms, "right"))
        before = (int(ts[i - 1]), float(e[i - 1])) if i > 0 else None
        after = (int(ts[j]), float(e[j])) if j < len(ts) else None
        if j > i:   # the same key is stored already
            before = (int(ts[i]), float(e[i]))
        return before, after
    return lookup


class Ingestor:
    """Parses batches of messages and makes their readings durable.

    registry : :class:`dcmon.registry.Registry`
    store : :class:`dcmon.store.Store`
    quarantine : :class:`dcmon.store.quarantine.Quarantine` (``store.quarantine_writer(...)``)
    outbox : optional :class:`dcmon.collector.influx.Outbox` (readings also go to InfluxDB)
    parsers : payload formats by name, tried in order (default: every registered format,
        :data:`dcmon.collector.parsers.PARSERS`)
    """

    def __init__(self, registry, store, quarantine, *, outbox=None, prefix: str = DEFAULT_PREFIX, mappings=(),
                 max_future: dt.timedelta = DEFAULT_MAX_FUTURE, jump_guard: bool = True, origin: str = "mqtt",
                 parsers: dict | None = None):
        self.registry = registry
        self.store = store
        self.quarantine = quarantine
        self.outbox = outbox
        self.prefix = prefix.rstrip("/")
        self.mappings = list(mappings)
        self.parsers = dict(PARSERS if parsers is None else parsers)
        self.max_future = max_future
        self.guard = JumpGuard(history=store_neighbours(store)) if jump_guard else None
        self.origin = origin
        self.stats = Stats()
        self.last_seen: dict[str, dict[str, list]] = defaultdict(dict)  # fac -> src -> [ts_ms, received_ms]
        self.lock = threading.Lock()
        self._limiter = _LogLimiter()

    def process(self, items, *, redelivered: bool = False) -> None:
        """Parse ``(topic, payload, received_at_ms)`` items and store them durably.

        ``redelivered``: the batch holds messages the broker sent again (MQTT DUP flag); the
        store then compares with what it already holds, so the copy is not even written.
        Otherwise copies are still never visible: reads and compaction keep the first row.

        Raises (without acknowledging anything) when the store, the quarantine or the outbox
        fails; the caller retries the same items later. Rejections never raise.
        """
        self.commit(self.parse_batch(items), redelivered=redelivered)

    def parse_batch(self, items) -> "Parsed":
        """The pure half of :meth:`process` (no I/O), so parsing the next batch can overlap storing this one."""
        rows = Rows()
        rejected = []
        n_bytes = 0
        ctx = Context(registry=self.registry, received_at_ms=0, prefix=self.prefix, mappings=self.mappings,
                      guard=self.guard, max_future=self.max_future, origin=self.origin,
                      parsers=self.parsers)
        records = []
        bad_messages = 0
        for (topic, payload, received_ms), (rej, accepted) in zip(items, parse_batch(items, ctx, rows)):
            n_bytes += len(payload)
            if rej:
                fac = self.facility_of(topic)
                bad_messages += 1
                records += message_records(topic, received_ms, payload, rej, accepted, fac)
                rejected += [Rejected(topic, received_ms, x, fac) for x in rej]
        return Parsed(rows=rows, table=rows.to_table() if len(rows) else None, rejected=rejected,
                      messages=len(items), bytes=n_bytes, records=records, rejected_messages=bad_messages)

    def facility_of(self, topic: str) -> str | None:
        """The registered facility a topic names, matched exactly (``dcmon/v1/<facility>/…`` or a
        mapping's ``{facility_id}``); None when it names none. Never a substring match: a topic
        ``dcmon/v1/B/A/x`` is facility B's."""
        fac = None
        if topic.startswith(self.prefix + "/"):
            fac = topic[len(self.prefix) + 1:].split("/", 1)[0]
        else:
            for m in self.mappings:
                found = m.match(topic)
                if found is not None:
                    fac = found.get("facility_id") or m.facility_id
                    break
        return fac if fac in self.registry.facilities else None

    def commit(self, parsed: "Parsed", *, redelivered: bool = False) -> None:
        """Make a parsed batch durable: quarantine, store, outbox (each fsync'd). Idempotent, so a
        failed commit can be retried with the same ``parsed``."""
        now = time.monotonic()
        rows, rejected = parsed.rows, parsed.rejected
        if parsed.records and not parsed.quarantined:
            self.quarantine.write_records(parsed.records)
            parsed.quarantined = True
        result = None
        if parsed.table is not None:
            # A retry after a failure compares with the store: some partitions may already be written.
            parsed.attempts += 1
            result = self.store.append(parsed.table, check_existing=redelivered or parsed.attempts > 1)
            if self.outbox is not None:
                self.outbox.put(parsed.table)
        n_bytes = parsed.bytes
        items = range(parsed.messages)
        with self.lock:
            s = self.stats
            s.messages += len(items)
            s.batches += 1
            s.bytes += n_bytes
            s.readings += len(rows)
            if result is not None:
                s.written += result.written
                s.duplicates += result.duplicates
            s.rejected += len(rejected)
            s.rejected_messages += parsed.rejected_messages
            s.quarantine_records += len(parsed.records)
            rows.update_last_seen(self.last_seen, parsed.table)
            by_text: dict = {}
            for r in rejected:
                key = (r.rejection.reason, r.facility_id)
                by_text[key] = by_text.get(key, 0) + 1
            for (text, fac), n in by_text.items():   # (a flood repeats a few reasons: classify each text once)
                reason = _reason_class(text)
                s.rejects_by_reason[reason] += n
                if fac is not None:
                    s.rejects_by_facility[fac][reason] += n
            if parsed.table is not None:
                for fac, n in _count_by_facility(parsed.table).items():
                    s.accepted_by_facility[fac] += n
            s.commit_seconds += time.monotonic() - now
            s.commits += 1
        logged = set()
        for r in rejected:
            if (r.topic, r.received_at_ms) in logged:
                continue     # one line per message: the quarantine holds the rest
            logged.add((r.topic, r.received_at_ms))
            if self._limiter.allow(r.topic, now):
                log.warning("rejected %s: %s", r.rejection.where, r.rejection.reason)

    def log_suppressed(self) -> None:
        """Summarise rejections the log rate limit held back (called with each health report)."""
        for topic, n in self._limiter.flush().items():
            log.warning("rejected %d more from %s (log rate limit; all are in the quarantine)", n, topic)


def _count_by_facility(table) -> dict[str, int]:
    """Accepted rows per facility of a batch table (Arrow value counts, outside the GIL)."""
    vc = table.column("facility_id").value_counts()
    return dict(zip(vc.field("values").to_pylist(), vc.field("counts").to_pylist()))


__all__ = ["Ingestor", "Stats"]
