"""The MQTT transport: subscribe, hand messages to the :class:`~dcmon.collector.ingest.Ingestor`,
acknowledge only what is durable.

Flow (reliability.md #3, #5): paho's network thread runs ``on_message``, which only puts a
:class:`Received` on a bounded queue. One writer thread
takes batches from the queue, has the ingestor make them durable, and *then* sends the PUBACKs
(paho ``manual_ack=True``). A message that is not acknowledged is redelivered by the broker
after a crash or reconnect; the store keeps the first copy of each reading (reliability.md #4).

Sessions: MQTT 3.1.1 with ``clean_session=False`` and a stable client id (the default), which
survived Mosquitto restarts in tests (reliability.md #11); MQTT 5 with a session expiry when a
shared subscription (``$share/<group>/…``) spreads the load over several collectors.
"""
from __future__ import annotations

import logging
import os
import queue
import socket
import ssl
import struct
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import NamedTuple
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from pydantic import Field, field_validator, model_validator

from dcmon.config.errors import Settings, fail
from dcmon.readings import now_ms

log = logging.getLogger("dcmon.collector")
_DONE = object()
SYS_DROPPED = "$SYS/broker/publish/messages/dropped"


@dataclass(frozen=True)
class BrokerURL:
    scheme: str
    host: str
    port: int

    @property
    def tls(self) -> bool:
        return self.scheme == "mqtts"

    def __str__(self):
        return f"{self.scheme}://{self.host}:{self.port}"


def parse_broker_url(url: str) -> BrokerURL:
    """``mqtt://host[:1883]`` or ``mqtts://host[:8883]``; ``ValueError`` names the bad part.

    Credentials in the URL are refused so they never reach a log or a process list.
    """
    try:
        u = urlsplit(url)
        port = u.port
    except ValueError as e:
        raise ValueError(f"--broker {url!r}: {e}") from None
    if u.scheme not in ("mqtt", "mqtts"):
        raise ValueError(f"--broker {url!r}: scheme must be mqtt:// or mqtts://")
    if u.username or u.password:
        raise ValueError("--broker: do not put credentials in the URL; use --username and --password "
                         "(or DCMON_MQTT_USERNAME / DCMON_MQTT_PASSWORD)")
    if not u.hostname:
        raise ValueError(f"--broker {url!r}: no host name")
    if u.path not in ("", "/"):
        raise ValueError(f"--broker {url!r}: unexpected path {u.path!r}")
    return BrokerURL(u.scheme, u.hostname, port or (8883 if u.scheme == "mqtts" else 1883))


class MqttOptions(Settings):
    """Connection options, validated at start-up (a bad one raises ``ValueError`` naming the option).

    protocol : ``3.1.1`` (persistent session, default) or ``5``; a shared subscription needs ``5``
    share_group : name of the MQTT 5 shared-subscription group (None: every message to this collector)
    qos : subscription QoS, 0 or 1 [-]
    keepalive_s : MQTT keep-alive [s]
    session_expiry_s : MQTT 5 session expiry interval [s]
    """

    broker: BrokerURL
    client_id: str
    username: str | None = None
    password: str | None = Field(default=None, repr=False)     # never in a log line
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    protocol: str = "3.1.1"
    share_group: str | None = None
    qos: int = 1
    keepalive_s: int = 30
    session_expiry_s: int = 7 * 86400
    topics: list = Field(default_factory=list)

    # "plain" validators: a value they accept is kept exactly as given
    @field_validator("client_id", mode="plain")
    @classmethod
    def _client_id(cls, v):
        if not isinstance(v, str) or not v or len(v) > 128:
            raise fail(f"--client-id must be 1..128 characters: {v!r}")
        return v

    @field_validator("ca_file", "cert_file", "key_file", mode="plain")
    @classmethod
    def _existing_file(cls, v, info):
        if v is not None and not os.path.isfile(v):
            raise fail(f"--{info.field_name.replace('_', '-')} {v}: no such file")
        return v

    @field_validator("protocol", mode="plain")
    @classmethod
    def _protocol(cls, v):
        if v not in ("3.1.1", "5"):
            raise fail(f"--protocol must be 3.1.1 or 5: {v!r}")
        return v

    @field_validator("share_group", mode="plain")
    @classmethod
    def _share_group(cls, v, info):
        if v is None:
            return v
        if info.data.get("protocol", "5") != "5":   # a wrong protocol is reported on its own
            raise fail("--share-group needs --protocol 5 (shared subscriptions are MQTT 5)")
        if not isinstance(v, str) or not v or any(c in v for c in "/+#"):
            raise fail(f"--share-group must be a plain name without '/', '+', '#': {v!r}")
        return v

    @field_validator("qos", mode="plain")
    @classmethod
    def _qos(cls, v):
        if v not in (0, 1):
            raise fail(f"qos value must be 0 or 1: {v!r}")
        return v

    @field_validator("keepalive_s", mode="plain")
    @classmethod
    def _keepalive(cls, v):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 5 <= v <= 3600:
            raise fail(f"--keepalive must be 5..3600 s: {v!r}")
        return v

    @model_validator(mode="after")
    def _tls(self):
        if (self.cert_file is None) != (self.key_file is None):
            raise fail("--cert-file and --key-file go together (client certificate and its key)")
        if (self.ca_file or self.cert_file) and not self.broker.tls:
            raise fail("--ca-file / --cert-file need an mqtts:// broker URL")
        return self


class DrainingClient(mqtt.Client):
    """paho's client, reading every packet the socket holds per wake-up, through a receive buffer.

    paho 2.x reads one packet per ``select()`` when it has nothing in flight outbound — a
    subscriber's normal state — so a collector pays a wake-up for every message. Reading on
    until the socket would block (paho's own stop condition, at most ``READ_BURST`` packets)
    keeps the semantics and cuts that cost. paho also reads each packet's header a byte per
    ``recv`` call (the type, then each byte of the length): three to five system calls a message.
    Here one ``recv`` of up to ``RECV_BYTES`` fills a buffer that serves those reads, and a
    wake-up ends only once the buffer is empty, so ``select()`` never waits for bytes already
    read. The buffer belongs to one connection: it is emptied when the socket is closed or
    replaced. Uses paho internals (``_packet_read``, ``_loop_rc_handle``, ``_sock_recv``,
    ``_sock_close``, ``_create_socket``; paho pinned < 3).
    """

    READ_BURST = 1000
    RECV_BYTES = 65536

    def __init__(self, *args, **kwargs):
        self._rbuf = b""     # bytes received but not yet handed to paho
        self._rpos = 0       # how much of _rbuf was handed over
        super().__init__(*args, **kwargs)

    def _sock_recv(self, bufsize: int) -> bytes:
        if self._rpos < len(self._rbuf):
            out = self._rbuf[self._rpos:self._rpos + bufsize]
            self._rpos += len(out)
            return out
        data = super()._sock_recv(max(bufsize, self.RECV_BYTES))   # BlockingIOError when nothing came
        if len(data) <= bufsize:      # all of it asked for (or b"": the connection closed)
            self._rbuf, self._rpos = b"", 0
            return data
        self._rbuf, self._rpos = data, bufsize
        return data[:bufsize]

    def _buffered(self) -> bool:
        return self._rpos < len(self._rbuf)

    def _drop_buffer(self) -> None:
        self._rbuf, self._rpos = b"", 0

    def _sock_close(self) -> None:
        self._drop_buffer()
        super()._sock_close()

    def _create_socket(self):
        self._drop_buffer()      # bytes of an earlier connection are never read on a new one
        return super()._create_socket()

    def loop_read(self, max_packets: int = 1) -> mqtt.MQTTErrorCode:
        if self._sock is None:
            return mqtt.MQTTErrorCode.MQTT_ERR_NO_CONN
        burst = 0
        while burst < self.READ_BURST or self._buffered():   # past the burst only what is buffered (< RECV_BYTES)
            burst += 1
            if self._sock is None:
                return mqtt.MQTTErrorCode.MQTT_ERR_NO_CONN
            rc = self._packet_read()
            if rc > 0:
                return self._loop_rc_handle(rc)
            elif rc == mqtt.MQTTErrorCode.MQTT_ERR_AGAIN and not self._buffered():
                return mqtt.MQTTErrorCode.MQTT_ERR_SUCCESS
        return mqtt.MQTTErrorCode.MQTT_ERR_SUCCESS


def default_client_id() -> str:
    return f"dcmon-collector-{socket.gethostname()}"[:64]


def make_client(opts: MqttOptions, *, manual_ack: bool, client_id: str | None = None,
                persistent: bool = True) -> mqtt.Client:
    """A configured (not yet connected) paho 2.x client; ``persistent``: keep the session (3.1.1)."""
    cid = client_id or opts.client_id
    cls = DrainingClient if manual_ack else mqtt.Client
    if opts.protocol == "5":
        c = cls(mqtt.CallbackAPIVersion.VERSION2, client_id=cid, protocol=mqtt.MQTTv5,
                manual_ack=manual_ack)
    else:
        c = cls(mqtt.CallbackAPIVersion.VERSION2, client_id=cid, protocol=mqtt.MQTTv311,
                clean_session=not persistent, manual_ack=manual_ack)
    if opts.username:
        c.username_pw_set(opts.username, opts.password)
    if opts.broker.tls:
        c.tls_set(ca_certs=opts.ca_file, certfile=opts.cert_file, keyfile=opts.key_file,
                  cert_reqs=ssl.CERT_REQUIRED)
    c.reconnect_delay_set(1, 30)
    c.max_queued_messages_set(0)
    return c


def ack_many(client: mqtt.Client, mids: list[int]) -> None:
    """Send the PUBACKs of QoS 1 messages ``mids``, many per socket write.

    ``client.ack()`` queues one 4-byte packet per message, and paho then makes one wake-up and one
    ``send()`` per packet, which caps a collector at a few thousand acknowledgements per second.
    PUBACK packets are independent, so a run of them concatenated is a valid byte stream (MQTT 3.1.1
    §3.4; in MQTT 5 a 2-byte PUBACK means success). Uses paho's internal ``_packet_queue`` (paho
    2.x, pinned < 3) and falls back to ``client.ack`` when it is not there.
    """
    queue_packet = getattr(client, "_packet_queue", None)
    if queue_packet is None or not getattr(client, "_manual_ack", False):
        for mid in mids:
            client.ack(mid, 1)
        return
    for k in range(0, len(mids), 1024):
        chunk = mids[k:k + 1024]
        queue_packet(mqtt.PUBACK, b"".join(_PUBACK.pack(0x40, 2, mid) for mid in chunk), 0, 0)


_PUBACK = struct.Struct("!BBH")


def connect_properties(opts: MqttOptions):
    if opts.protocol != "5":
        return None
    p = Properties(PacketTypes.CONNECT)
    p.SessionExpiryInterval = opts.session_expiry_s
    p.ReceiveMaximum = 1000
    return p


class Received(NamedTuple):
    """One message on the receive queue: what the ingestor parses, and what acknowledging it needs."""

    topic: str
    payload: bytes
    mid: int                    # MQTT packet id (acknowledged after the batch is durable)
    qos: int
    generation: int             # connection it arrived on: a packet id is only valid there
    received_at_ms: int         # arrival [ms since epoch, UTC]
    arrived_monotonic: float    # arrival on the monotonic clock [s] (batch delay, ack lag)
    dup: bool                   # the broker's DUP flag: a redelivery


class Pending(NamedTuple):
    """A parsed batch on its way from the parser thread to the commit thread."""

    messages: list              # [Received]
    parsed: object              # dcmon.collector.ingest.Parsed


MESSAGE_OVERHEAD_BYTES = 256   # what a queued message costs besides its payload (topic, tuple) [bytes]


class ByteBudgetQueue:
    """The receive queue: FIFO bounded by messages *and* payload bytes (reliability.md #15).

    A queue bounded by count alone is unbounded in bytes (1 000 messages of 1 MiB are 1 GiB).
    One message is always admitted into an empty queue, so a message larger than the budget
    still passes (the broker's ``message_size_limit`` bounds it).
    """

    def __init__(self, max_messages: int, max_bytes: int):
        self.max_messages = max_messages
        self.max_bytes = max_bytes
        self._items: deque = deque()
        self._bytes = 0
        self._cond = threading.Condition()

    def qsize(self) -> int:
        return len(self._items)

    @property
    def bytes(self) -> int:
        return self._bytes

    def _room(self, size: int) -> bool:
        return not self._items or (len(self._items) < self.max_messages and self._bytes + size <= self.max_bytes)

    def try_put(self, item, size: int) -> bool:
        """Add ``item`` if there is room now; False otherwise (nothing waits)."""
        with self._cond:
            if not self._room(size):
                return False
            self._items.append((item, size))
            self._bytes += size
            if len(self._items) == 1:   # only a reader of an empty queue waits for an item
                self._cond.notify_all()
            return True

    def put(self, item, size: int, stop: threading.Event) -> bool:
        """Add ``item``, waiting for room; False (not added) once ``stop`` is set."""
        with self._cond:
            while not self._room(size):
                if stop.is_set():
                    return False
                self._cond.wait(0.2)
            self._items.append((item, size))
            self._bytes += size
            if len(self._items) == 1:   # only a reader of an empty queue waits for an item
                self._cond.notify_all()
            return True

    def get(self, timeout: float | None = None):
        with self._cond:
            if not self._items and timeout:
                self._cond.wait_for(lambda: self._items, timeout)
            if not self._items:
                raise queue.Empty
            item, size = self._items.popleft()
            self._bytes -= size
            self._cond.notify_all()
            return item

    def drain_into(self, batch: list, size: int, max_items: int, max_bytes: int) -> int:
        """Move queued messages to ``batch`` while it holds fewer than ``max_items`` and ``size`` (their
        payload bytes) is under ``max_bytes``, under one lock; returns the new ``size``. Never waits."""
        with self._cond:
            moved = False
            while self._items and len(batch) < max_items and size < max_bytes:
                item, queued = self._items.popleft()
                self._bytes -= queued
                batch.append(item)
                size += len(item.payload)
                moved = True
            if moved:
                self._cond.notify_all()
        return size


class Collector:
    """Runs the MQTT subscription and the writer thread until :meth:`stop`.

    ingestor : :class:`dcmon.collector.ingest.Ingestor`
    batch_max_messages, batch_max_bytes, batch_max_delay_s : a batch is stored when it has this
        many messages or payload bytes, or its oldest message waited this long [s]
    queue_max, queue_max_bytes : bounds of the receive queue [messages], [bytes of payload]. When
        full, a QoS 1 message makes paho's thread wait (it stops reading, so the broker holds the
        rest); a QoS 0 message is dropped and counted (``dropped_messages`` in health): the broker
        would not keep it anyway, and waiting would only move the pile into the socket buffers
    health_interval_s : how often health is logged and written to the store [s]
    compact_interval_s : how often the collector merges small store files [s] (0: never)
    quarantine_retention_days : remove quarantine files older than this [days] (0: keep forever);
        checked at start and every ``prune_interval_s`` [s]
    """

    def __init__(self, opts: MqttOptions, ingestor, *, status_name: str | None = None, batch_max_messages: int = 5000,
                 batch_max_bytes: int = 4 << 20, batch_max_delay_s: float = 0.05, queue_max: int = 20000,
                 queue_max_bytes: int = 64 << 20, health_interval_s: float = 10.0,
                 compact_interval_s: float = 600.0, quarantine_retention_days: int = 90,
                 prune_interval_s: float = 3600.0):
        self.opts = opts
        self.ingestor = ingestor
        self.status_name = status_name or ("collector-" + "".join(ch if ch.isalnum() or ch in "-_." else "_"
                                                                   for ch in opts.client_id))
        self.batch_max_messages = batch_max_messages
        self.batch_max_bytes = batch_max_bytes
        self.batch_max_delay_s = batch_max_delay_s
        self.queue = ByteBudgetQueue(queue_max, queue_max_bytes)
        self.dropped_messages = 0          # QoS 0 messages dropped because the queue was full
        self.dropped_bytes = 0
        self.health_interval_s = health_interval_s
        self.compact_interval_s = compact_interval_s
        self.quarantine_retention_days = quarantine_retention_days
        self.prune_interval_s = prune_interval_s
        self.client = make_client(opts, manual_ack=opts.qos > 0)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_connect_fail = self._on_connect_fail
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe
        # $SYS is told apart in _on_message: a filtered callback (message_callback_add) would make paho
        # match every message's topic against its filter tree (6 % of the samples of one reading a message).
        self._sys_mid = None
        self.broker_dropped: int | None = None
        self._generation = 0
        self._connected = threading.Event()
        self._stopping = threading.Event()
        self._writer_done = threading.Event()
        self._parsed: queue.Queue = queue.Queue(maxsize=2)   # parsed batches waiting for the commit thread
        self._writer = threading.Thread(target=self._write_loop, name="dcmon-parser", daemon=True)
        self._committer = threading.Thread(target=self._commit_loop, name="dcmon-commit", daemon=True)
        self.started_at = time.time()
        self.connects = 0
        self.last_error: str | None = None
        self._last_health = (time.monotonic(), 0, 0)
        self._next_health = time.monotonic() + health_interval_s
        self.subscribed = threading.Event()

    # ------------------------------------------------------------------ topics
    def subscriptions(self) -> list[str]:
        topics = [f"{self.ingestor.prefix}/#"] + [m.subscription for m in self.ingestor.mappings]
        topics = list(dict.fromkeys(topics + list(self.opts.topics)))
        if self.opts.share_group:
            topics = [f"$share/{self.opts.share_group}/{t}" for t in topics]
        return topics

    # --------------------------------------------------------- paho callbacks
    def _on_connect(self, client, userdata, flags, reason_code, properties):
        if reason_code.is_failure:
            self.last_error = f"connection refused: {reason_code}"
            log.error("broker %s refused the connection: %s", self.opts.broker, reason_code)
            return
        self._generation += 1
        self.connects += 1
        session = getattr(flags, "session_present", False)
        log.info("connected to %s as %r (session present: %s)", self.opts.broker, self.opts.client_id, session)
        subs = [(t, self.opts.qos) for t in self.subscriptions()]
        client.subscribe(subs)
        self._sys_mid = client.subscribe(SYS_DROPPED, 0)[1]
        self._connected.set()

    def _on_sys_dropped(self, client, userdata, msg):
        """Mosquitto's count of messages it dropped (reliability #1); it must stay 0."""
        try:
            value = int(msg.payload)
        except ValueError:
            return
        if value > (self.broker_dropped or 0):
            log.error("the broker dropped messages: %s rose to %d (check max_queued_messages / "
                      "max_queued_bytes in the broker configuration)", SYS_DROPPED, value)
        self.broker_dropped = value

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties):
        if mid == self._sys_mid:
            if any(rc.is_failure for rc in reason_codes):
                log.info("cannot watch %s (not allowed or not offered by this broker)", SYS_DROPPED)
            return
        bad = [rc for rc in reason_codes if rc.is_failure]
        if bad:
            self.last_error = f"subscription refused: {bad}"
            log.error("broker refused a subscription (%s): check the ACL of user %r", bad, self.opts.username)
        else:
            self.subscribed.set()

    def _on_connect_fail(self, client, userdata):
        self.last_error = f"cannot reach the broker {self.opts.broker}"
        log.warning("cannot reach the broker %s; retrying", self.opts.broker)

    def _on_disconnect(self, client, userdata, flags, reason_code, properties):
        self._connected.clear()
        self.subscribed.clear()
        if not self._stopping.is_set():
            self.last_error = f"disconnected: {reason_code}"
            log.warning("disconnected from %s (%s); reconnecting", self.opts.broker, reason_code)

    def _on_message(self, client, userdata, msg):
        # Tiny on purpose (reliability.md #5): the writer thread does the work.
        topic = msg.topic    # decoded from bytes at each access
        if topic == SYS_DROPPED:
            self._on_sys_dropped(client, userdata, msg)
            return
        if self._stopping.is_set():
            return  # not acknowledged: the broker redelivers it to the next session
        item = Received(topic, msg.payload, msg.mid, msg.qos, self._generation, time.time_ns() // 1_000_000,
                        time.monotonic(), bool(msg.dup))
        size = len(msg.payload) + len(topic) + MESSAGE_OVERHEAD_BYTES
        if msg.qos == 0:
            if not self.queue.try_put(item, size):
                self.dropped_messages += 1      # only this thread writes it
                self.dropped_bytes += len(msg.payload)
                if self.dropped_messages in (1, 10, 100) or self.dropped_messages % 1000 == 0:
                    log.error("receive queue full (%d messages, %.1f MiB): dropped %d QoS 0 message(s) so far "
                              "(subscribe with QoS 1 to have the broker hold them instead)", self.queue.qsize(),
                              self.queue.bytes / 2**20, self.dropped_messages)
            return
        self.queue.put(item, size, self._stopping)   # waits: paho stops reading, the broker holds the rest

    # ----------------------------------------------------------------- writer
    def _take_batch(self):
        try:
            first = self.queue.get(timeout=0.2)
        except queue.Empty:
            return []
        batch = [first]
        size = len(first.payload)
        deadline = first.arrived_monotonic + self.batch_max_delay_s
        while len(batch) < self.batch_max_messages and size < self.batch_max_bytes:
            # everything already queued in one go (one lock), then wait for more until the deadline
            size = self.queue.drain_into(batch, size, self.batch_max_messages, self.batch_max_bytes)
            if len(batch) >= self.batch_max_messages or size >= self.batch_max_bytes:
                break
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                item = self.queue.get(timeout=left)
            except queue.Empty:
                break
            batch.append(item)
            size += len(item.payload)
        return batch

    def _write_loop(self):
        """Parser thread: batches from the receive queue → parsed batches for the commit thread.
        Parsing (Python) overlaps the previous batch's Parquet write and fsync (which release the GIL)."""
        try:
            while True:
                batch = self._take_batch()
                if batch:
                    self._parsed.put(Pending(batch, self.ingestor.parse_batch(_incoming(batch))))
                elif self._stopping.is_set():
                    break
                else:
                    self._parsed.put(None)   # idle tick: lets the commit thread report health
        finally:
            self._parsed.put(_DONE)

    def _health_tick(self):
        self.report_health()
        self._next_health = time.monotonic() + self.health_interval_s

    def _commit_loop(self):
        self._next_health = time.monotonic() + self.health_interval_s
        next_compact = time.monotonic() + self.compact_interval_s if self.compact_interval_s else float("inf")
        next_prune = time.monotonic() if self.quarantine_retention_days else float("inf")   # first: at start
        try:
            while True:
                item = self._parsed.get()
                if item is _DONE:
                    break
                if item is not None:
                    self._store_and_ack(item.messages, item.parsed)
                now = time.monotonic()
                if now >= self._next_health:
                    self._health_tick()
                if now >= next_compact:
                    try:
                        n = self.ingestor.store.compact()
                        log.info("compacted %d day folder(s)", n)
                    except Exception:
                        log.exception("compaction failed (readings are safe; will retry)")
                    next_compact = now + self.compact_interval_s
                if now >= next_prune:
                    self.prune_quarantine()
                    next_prune = now + self.prune_interval_s
        finally:
            self._writer_done.set()

    def _store_and_ack(self, batch: list[Received], parsed=None):
        if parsed is None:
            parsed = self.ingestor.parse_batch(_incoming(batch))
        redelivered = any(m.dup for m in batch)
        delay = 0.5
        while True:
            try:
                self.ingestor.commit(parsed, redelivered=redelivered)
                break
            except Exception as e:  # disk full, permissions...: keep the batch, never ack it unstored
                self.ingestor.stats.store_errors += 1
                self.last_error = f"store failed: {e}"
                if self._stopping.is_set():
                    log.error("could not store %d message(s) (%s); stopping without acknowledging them — the "
                              "broker delivers them again to the next session", len(batch), e)
                    return
                log.error("could not store %d message(s) (%s); retrying in %.1f s — nothing was acknowledged",
                          len(batch), e, delay)
                retry_at = time.monotonic() + delay
                while not self._stopping.is_set():   # a stop request ends the wait at once
                    now = time.monotonic()
                    if now >= retry_at:
                        break
                    if now >= self._next_health:
                        self._health_tick()   # health keeps saying what is wrong while storing fails
                    self._stopping.wait(min(retry_at, self._next_health) - time.monotonic())
                delay = min(delay * 2, 30)
        lag_ms = (time.monotonic() - batch[0].arrived_monotonic) * 1000
        s = self.ingestor.stats
        s.last_ack_lag_ms = lag_ms
        s.max_ack_lag_ms = max(s.max_ack_lag_ms, lag_ms)
        gen = self._generation
        # A message from an earlier connection is redelivered by the broker; acking its
        # packet id on the new connection could acknowledge a different message.
        ack_many(self.client, [m.mid for m in batch if m.qos == 1 and m.generation == gen])

    def prune_quarantine(self) -> list:
        """Quarantine retention: remove files older than ``quarantine_retention_days`` (never the one
        being written). Runs on the commit thread, which is also the quarantine's only writer."""
        q = self.ingestor.quarantine
        try:
            return self.ingestor.store.quarantine_prune(self.quarantine_retention_days, keep=[q.current_path])
        except Exception:
            log.exception("quarantine retention failed (nothing is lost; will retry)")
            return []

    # ----------------------------------------------------------------- health
    def health(self, *, advance: bool = True) -> dict:
        """The health document. ``advance=False`` (the metrics endpoint) leaves the window of the
        logged rates alone, so scrapes do not shorten it."""
        s = self.ingestor.stats
        now = time.monotonic()
        t0, m0, r0 = self._last_health
        dt_s = max(now - t0, 1e-9)
        with self.ingestor.lock:
            last_seen = {f: dict(v) for f, v in self.ingestor.last_seen.items()}
            doc = {
                "collector": self.opts.client_id,
                "broker": str(self.opts.broker),
                "connected": self._connected.is_set(),
                "connects": self.connects,
                "started_at_ms": int(self.started_at * 1000),
                "updated_at_ms": now_ms(),
                "messages": s.messages, "readings": s.readings, "stored": s.written, "duplicates": s.duplicates,
                "rejected": s.rejected, "rejected_messages": s.rejected_messages,
                "rejects_by_reason": dict(s.rejects_by_reason),
                "messages_per_s": round((s.messages - m0) / dt_s, 1),
                "readings_per_s": round((s.readings - r0) / dt_s, 1),
                "queue": self.queue.qsize(), "queue_bytes": self.queue.bytes,
                "queue_max_bytes": self.queue.max_bytes,
                "dropped_messages": self.dropped_messages, "dropped_bytes": self.dropped_bytes,
                "ack_lag_ms": round(s.last_ack_lag_ms, 1),
                "max_ack_lag_ms": round(s.max_ack_lag_ms, 1),
                "store_errors": s.store_errors, "last_error": self.last_error,
                # store files that could not be read, set aside under <data>/damaged/ (reliability #14)
                "damaged_files": getattr(self.ingestor.store, "damaged_total", 0),
                "damaged": list(getattr(self.ingestor.store, "damaged", []))[-10:],
                "broker_dropped": self.broker_dropped,   # $SYS/broker/publish/messages/dropped
                "last_seen": last_seen,    # facility -> source -> [meter ts ms, received ms]
                "quarantine_records": s.quarantine_records,
                "store_write_seconds": round(s.commit_seconds, 6), "store_writes": s.commits,
                # per facility (exact id from the topic): the only figures a facility's operator sees
                "by_facility": {f: {"accepted": s.accepted_by_facility.get(f, 0),
                                    "rejects_by_reason": dict(s.rejects_by_facility.get(f, {}))}
                                for f in sorted(set(s.accepted_by_facility) | set(s.rejects_by_facility))},
            }
        if advance:
            self._last_health = (now, s.messages, s.readings)
        return doc

    def report_health(self) -> dict:
        doc = self.health()
        log.info("health: %s, %.1f msg/s, %.1f readings/s, %d rejected (total), queue %d, ack lag %.0f ms",
                 "connected" if doc["connected"] else "DISCONNECTED", doc["messages_per_s"], doc["readings_per_s"],
                 doc["rejected"], doc["queue"], doc["ack_lag_ms"])
        self.ingestor.log_suppressed()
        try:
            self.ingestor.store.put_status(self.status_name, doc)
        except Exception as e:
            log.error("could not write health status %s: %s", self.status_name, e)
        return doc

    # -------------------------------------------------------------- lifecycle
    def start(self):
        self._writer.start()
        self._committer.start()
        self.client.connect_async(self.opts.broker.host, self.opts.broker.port, keepalive=self.opts.keepalive_s,
                                  clean_start=False if self.opts.protocol == "5" else mqtt.MQTT_CLEAN_START_FIRST_ONLY,
                                  properties=connect_properties(self.opts))
        self.client.loop_start()
        log.info("collecting from %s, topics %s", self.opts.broker, ", ".join(self.subscriptions()))

    def wait_subscribed(self, timeout: float) -> bool:
        return self.subscribed.wait(timeout)

    def stop(self, timeout: float = 30.0):
        """Stop taking messages, store and acknowledge what was taken, then disconnect."""
        self._stopping.set()
        self._writer_done.wait(timeout)
        try:
            self.report_health()
        except Exception:
            log.exception("final health report failed")
        self.client.disconnect()
        self.client.loop_stop()
        if self.ingestor.outbox is not None:
            self.ingestor.outbox.close()
        self.ingestor.quarantine.close()
        log.info("collector stopped: %d messages, %d readings stored, %d rejected",
                 self.ingestor.stats.messages, self.ingestor.stats.written, self.ingestor.stats.rejected)


def _incoming(batch: list[Received]) -> list[tuple]:
    """What :meth:`dcmon.collector.ingest.Ingestor.parse_batch` takes: ``(topic, payload, received_at_ms)``."""
    return [(m.topic, m.payload, m.received_at_ms) for m in batch]
