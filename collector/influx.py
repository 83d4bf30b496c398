"""InfluxDB sink: a durable outbox and a sender that writes it synchronously in batches.

influxdb-client's batching ``WriteApi`` reports failures only to a callback and may drop data
after its retries (reliability.md #7). So the collector writes each batch of readings as line
protocol into ``<data>/outbox/influx/<ns>-<uuid>.lp`` (temporary name, fsync, rename) *before*
it acknowledges the messages; a sender thread posts the files, about 5 000 lines per request,
with the synchronous API, and deletes a file only after InfluxDB confirmed all of it. During an
outage the files wait and are retried with backoff; nothing is lost, and a point written twice
(after a partial failure) is the same point, which InfluxDB overwrites with the same values.
"""
from __future__ import annotations

import logging
import math
import os
import threading
import time
import uuid
from pathlib import Path

import pyarrow as pa

from dcmon.store.durable import fsync_dir

log = logging.getLogger("dcmon.collector.influx")

BATCH_LINES = 5000


def outbox_dir(data_dir) -> Path:
    return Path(data_dir) / "outbox" / "influx"


def _esc_tag(s: str) -> str:
    return s.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=").replace(" ", "\\ ")


def _esc_str(s: str) -> str:
    return s.replace("\\", "\\\\").replace('"', '\\"')


def to_line_protocol(table: pa.Table) -> list[str]:
    """Readings (SCHEMA) → line protocol with millisecond time stamps.

    ``meter,facility=<id>,meter=<id> energy_kwh=…,power_kw=… <ms>`` and the same for racks
    (with ``status`` / ``function`` string fields and ``design_power_kw``).
    """
    cols = {c: table.column(c).to_pylist() for c in ("facility_id", "kind", "source_id", "energy_kwh", "power_kw",
                                                      "status", "function", "design_power_kw")}
    ts = table.column("ts").cast(pa.int64()).to_pylist()
    out = []
    for i in range(table.num_rows):
        kind = cols["kind"][i]
        fields = []
        for f in ("energy_kwh", "power_kw", "design_power_kw"):
            v = cols[f][i]
            if v is not None and math.isfinite(v):
                fields.append(f"{f}={v!r}")
        for f in ("status", "function"):
            v = cols[f][i]
            if v is not None:
                fields.append(f'{f}="{_esc_str(v)}"')
        if not fields:
            continue
        out.append(f"{kind},facility={_esc_tag(cols['facility_id'][i])},{kind}={_esc_tag(cols['source_id'][i])} "
                   f"{','.join(fields)} {ts[i]}")
    return out


class Outbox:
    """Durable queue of line-protocol files waiting for InfluxDB."""

    def __init__(self, data_dir):
        self.dir = outbox_dir(data_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.wakeup = threading.Event()

    def put(self, table: pa.Table) -> Path | None:
        lines = to_line_protocol(table)
        if not lines:
            return None
        name = f"{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.lp"
        tmp = self.dir / f".{name}.tmp"
        with open(tmp, "wb") as fh:
            fh.write(("\n".join(lines) + "\n").encode())
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.dir / name)
        fsync_dir(self.dir)
        self.wakeup.set()
        return self.dir / name

    def pending(self) -> list[Path]:
        return sorted(p for p in self.dir.glob("*.lp"))

    def pending_lines(self) -> int:
        n = 0
        for p in self.pending():
            try:
                with open(p, "rb") as fh:
                    n += sum(1 for _ in fh)
            except FileNotFoundError:
                pass
        return n

    def done(self, paths: list[Path]):
        for p in paths:
            p.unlink(missing_ok=True)
        fsync_dir(self.dir)

    def close(self):
        self.wakeup.set()


class InfluxSender:
    """Posts outbox files to an InfluxDB v2 write endpoint until stopped.

    url, token, org, bucket : the ``/api/v2/write`` target
    batch_lines : lines per request (about 5 000)
    max_backoff_s : longest wait between retries during an outage [s]
    """

    def __init__(self, outbox: Outbox, url: str, token: str, org: str, bucket: str, *,
                 batch_lines: int = BATCH_LINES, max_backoff_s: float = 30.0, timeout_ms: int = 10_000, write=None):
        self.outbox = outbox
        self.url, self.org, self.bucket = url, org, bucket
        self.batch_lines = batch_lines
        self.max_backoff_s = max_backoff_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="dcmon-influx", daemon=True)
        self.last_error: str | None = None
        self._client = None
        if write is None:
            from influxdb_client import InfluxDBClient
            from influxdb_client.client.write_api import SYNCHRONOUS
            self._client = InfluxDBClient(url=url, token=token, org=org, timeout=timeout_ms, retries=0)
            api = self._client.write_api(write_options=SYNCHRONOUS)

            def write(text: str):
                api.write(bucket=bucket, org=org, record=text, write_precision="ms")
        self._write = write

    def start(self):
        self._thread.start()
        return self

    def stop(self, drain_timeout_s: float = 5.0):
        """Stop after trying to send what is pending for up to ``drain_timeout_s``; the rest stays
        in the outbox for the next start."""
        deadline = time.monotonic() + drain_timeout_s
        while self.outbox.pending() and time.monotonic() < deadline and self.last_error is None:
            time.sleep(0.05)
        self._stop.set()
        self.outbox.wakeup.set()
        self._thread.join(timeout=drain_timeout_s + 15)
        if self._client is not None:
            self._client.close()

    def send_once(self) -> int:
        """Send pending files; returns the lines confirmed. Raises on a failed request."""
        files = self.outbox.pending()
        sent = 0
        i = 0
        while i < len(files) and not self._stop.is_set():
            group, lines = [], []
            while i < len(files) and (not lines or len(lines) < self.batch_lines):
                try:
                    lines += files[i].read_text().splitlines()
                except FileNotFoundError:
                    pass
                group.append(files[i])
                i += 1
            for k in range(0, len(lines), self.batch_lines):
                self._write("\n".join(lines[k:k + self.batch_lines]))
            self.outbox.done(group)
            sent += len(lines)
        return sent

    def _run(self):
        backoff = 0.5
        while not self._stop.is_set():
            self.outbox.wakeup.clear()
            try:
                n = self.send_once()
                if self.last_error:
                    log.info("InfluxDB %s reachable again; outbox sent", self.url)
                self.last_error = None
                backoff = 0.5
                if n == 0:
                    self.outbox.wakeup.wait(1.0)
            except Exception as e:
                msg = f"{type(e).__name__}: {str(e)[:300]}"
                if self.last_error is None:
                    log.warning("InfluxDB write to %s failed (%s); readings stay in the outbox %s and are retried",
                                self.url, msg, self.outbox.dir)
                self.last_error = msg
                self._stop.wait(backoff)
                backoff = min(backoff * 2, self.max_backoff_s)
