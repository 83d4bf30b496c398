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

from dcmon.readings import DEFAULT_MAX_FUTURE

from dcmon.collector.parse import DEFAULT_PREFIX, Context, JumpGuard, Rows, parse_message

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
                "no value", "outside 2000..2200", "not ISO 8601", "without a UTC offset", "internal error"):
        if key in reason:
            return key
    return "other"


@dataclass
class Parsed:
    """One parsed batch on its way to durability."""

    rows: Rows
    table: object            # pyarrow.Table of the accepted rows, or None
    rejected: list           # (topic, received_at_ms, Rejection)
    messages: int
    bytes: int
    quarantined: bool = False
    attempts: int = 0


class Ingestor:
    """Parses batches of messages and makes their readings durable.

    registry : :class:`dcmon.registry.Registry`
    store : :class:`dcmon.store.Store`
    quarantine : :class:`dcmon.collector.quarantine.Quarantine`
    outbox : optional :class:`dcmon.collector.influx.Outbox` (readings also go to InfluxDB)
    """

    def __init__(self, registry, store, quarantine, *, outbox=None, prefix: str = DEFAULT_PREFIX, mappings=(),
                 max_future: dt.timedelta = DEFAULT_MAX_FUTURE, jump_guard: bool = True, origin: str = "mqtt"):
        self.registry = registry
        self.store = store
        self.quarantine = quarantine
        self.outbox = outbox
        self.prefix = prefix.rstrip("/")
        self.mappings = list(mappings)
        self.max_future = max_future
        self.guard = JumpGuard() if jump_guard else None
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
                      guard=self.guard, max_future=self.max_future, origin=self.origin)
        for topic, payload, received_ms in items:
            ctx.received_at_ms = received_ms
            _, rej = parse_message(topic, payload, ctx, rows)
            n_bytes += len(payload)
            if rej:
                for x in rej:
                    rejected.append((topic, received_ms, x))
        return Parsed(rows=rows, table=rows.to_table() if len(rows) else None, rejected=rejected,
                      messages=len(items), bytes=n_bytes)

    def commit(self, parsed: "Parsed", *, redelivered: bool = False) -> None:
        """Make a parsed batch durable: quarantine, store, outbox (each fsync'd). Idempotent, so a
        failed commit can be retried with the same ``parsed``."""
        now = time.monotonic()
        rows, rejected = parsed.rows, parsed.rejected
        if rejected and not parsed.quarantined:
            self.quarantine.write(rejected)
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
            s.rejected_messages += len({(t, ms) for t, ms, _ in rejected})
            rows.update_last_seen(self.last_seen, parsed.table)
            for topic, _, x in rejected:
                reason = _reason_class(x.reason)
                s.rejects_by_reason[reason] += 1
                fac = self._topic_facility(topic)
                if fac is not None:
                    s.rejects_by_facility[fac][reason] += 1
            if parsed.table is not None:
                for fac, n in _count_by_facility(parsed.table).items():
                    s.accepted_by_facility[fac] += n
            s.commit_seconds += time.monotonic() - now
            s.commits += 1
        for topic, _, x in rejected:
            if self._limiter.allow(topic, now):
                log.warning("rejected %s: %s", x.where, x.reason)

    def _topic_facility(self, topic: str) -> str | None:
        """The configured facility a contract topic names (``<prefix>/<facility>/...``), else None."""
        head, _, rest = topic.partition(self.prefix + "/")
        fac = rest.split("/", 1)[0] if not head and rest else None
        return fac if fac in self.registry.facilities else None

    def log_suppressed(self) -> None:
        """Summarise rejections the log rate limit held back (called with each health report)."""
        for topic, n in self._limiter.flush().items():
            log.warning("rejected %d more from %s (log rate limit; all are in the quarantine)", n, topic)


def _count_by_facility(table) -> dict[str, int]:
    """Accepted rows per facility of a batch table (Arrow value counts, outside the GIL)."""
    vc = table.column("facility_id").value_counts()
    return dict(zip(vc.field("values").to_pylist(), vc.field("counts").to_pylist()))


__all__ = ["Ingestor", "Stats"]
