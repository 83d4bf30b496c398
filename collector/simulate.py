"""``dcmon simulate``: publish realistic telemetry for the registry's facilities over MQTT.

The shapes come from :mod:`dcmon.fixtures.generate` (load curves, weather-driven cooling,
cumulative counters, rack scans). Every topic form of the contract is used: meters as single
JSON objects or as line protocol, racks as scans of up to 500 racks or one topic per rack.

Time: the simulated clock starts at ``start`` and runs ``speed`` times faster than the wall
clock until it reaches the present, then in real time — so time stamps are never in the
future and a fast replay "catches up" to live telemetry.

Every ``publish()`` return code is checked (reliability.md #6): a full queue waits and retries,
and the number of retries and failures is reported.
"""
from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from dataclasses import dataclass, field

import numpy as np
import orjson
import paho.mqtt.client as mqtt

from dcmon.readings import now_ms

log = logging.getLogger("dcmon.simulate")

SCAN_CHUNK = 500
BAD_PAYLOADS = [
    ("meter/{meter}", b'{"ts": "2026-07-01T08:00:00+08:00", "energy_kwh": '),           # truncated JSON
    ("meter/no-such-meter", b'{"ts": {now}, "energy_kwh": 1.0}'),                       # unknown meter
    ("meter/{meter}", b'{"ts": {now}, "power_kw": -5}'),                                  # negative
    ("meter/{meter}", b'{"ts": {future}, "power_kw": 5}'),                                # future ts
    ("meter/{meter}", b'{"ts": {now}, "power_kw": "NaN"}'),                               # NaN
    ("meter/{meter}", b'{"energy_kwh": 12.5}'),                                           # missing ts
    ("rack/{rack}", b'{"ts": {now}, "status": "on fire"}'),                               # bad status
    ("lp", b'meter,meter={meter} energy_kwh=abc {now_ns}'),                               # bad line protocol
]


def _dumps(doc) -> bytes:
    return orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY)


def parse_duration(text) -> float | None:
    """``90``, ``90s``, ``5m``, ``2h`` → seconds; None for no limit. ValueError names the value."""
    if text is None:
        return None
    s = str(text).strip().lower()
    mult = {"s": 1, "m": 60, "h": 3600, "d": 86400}.get(s[-1:], None)
    num = s[:-1] if mult else s
    try:
        x = float(num) * (mult or 1)
    except ValueError:
        raise ValueError(f"--duration {text!r}: expected seconds or a number with s, m, h or d") from None
    if not x > 0:
        raise ValueError(f"--duration must be > 0: {text!r}")
    return x


@dataclass
class SimStats:
    messages: int = 0
    readings: int = 0
    bad: int = 0
    duplicates: int = 0
    queue_full_retries: int = 0
    publish_errors: int = 0
    errors: list = field(default_factory=list)


class Publisher:
    """Publishes with return-code checks; waits and retries when paho's queue is full."""

    def __init__(self, client: mqtt.Client, qos: int, stats: SimStats, stop: threading.Event):
        self.client, self.qos, self.stats, self.stop = client, qos, stats, stop

    def publish(self, topic: str, payload: bytes) -> bool:
        delay = 0.001
        while not self.stop.is_set():
            info = self.client.publish(topic, payload, qos=self.qos)
            if info.rc == mqtt.MQTT_ERR_SUCCESS:
                self.stats.messages += 1
                return True
            if info.rc == mqtt.MQTT_ERR_QUEUE_SIZE:
                self.stats.queue_full_retries += 1
                time.sleep(delay)
                delay = min(delay * 2, 0.1)
                continue
            if info.rc == mqtt.MQTT_ERR_NO_CONN:
                # paho keeps QoS>0 messages queued while it reconnects: count it, do not resend.
                if self.qos > 0:
                    self.stats.messages += 1
                    return True
                self.stats.publish_errors += 1
                return False
            self.stats.publish_errors += 1
            self.stats.errors.append(f"{topic}: {mqtt.error_string(info.rc)}")
            log.error("publish to %s failed: %s", topic, mqtt.error_string(info.rc))
            return False
        return False


def _iso(ms: int, tz) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, tz).isoformat(timespec="milliseconds")


def build_schedule(registry, facility_ids, start_ms: int, end_ms: int, *, faults: bool, seed: int = 0):
    """Generated readings for ``[start_ms, end_ms]`` of each facility: {facility_id: (pandas frame, zone)}."""
    from dcmon.fixtures.generate import Faults, generate
    from dcmon.periods import zone
    out = {}
    for fid in facility_ids:
        fac = registry.get(fid)
        tz = zone(fac.timezone)
        first = dt.datetime.fromtimestamp(start_ms / 1000, tz).date()
        last = dt.datetime.fromtimestamp(end_ms / 1000, tz).date()
        f = None
        if faults:
            f = Faults(counter_reset=True, noise_dip=True, gap_hours=0.5, duplicates=10,
                       rollover=any(m.rollover_kwh for m in fac.meters))
        g = generate(fac, first, last, meter_interval_s=60, rack_interval_s=300, include_racks=True, faults=f,
                     seed=seed)
        t = g.table
        ts = t.column("ts").cast("int64").to_numpy()
        keep = (ts >= start_ms) & (ts <= end_ms)
        df = t.filter(keep).drop_columns(["received_at", "origin"]).to_pandas()
        df["ts"] = ts[keep]
        out[fid] = (df, tz)
    return out


def continue_counters(registry, old: dict, new: dict) -> None:
    """Shift each source's energy counter in the ``new`` window so it continues from where the
    ``old`` window ended (each window is generated separately; without this every window
    boundary would look like a counter reset). Counters with ``rollover_kwh`` wrap."""
    for fid, (df, _) in new.items():
        prev = old.get(fid, (None,))[0]
        if prev is None or df.empty or prev.empty:
            continue
        fac = registry.get(fid)
        rollover = {m.id: m.rollover_kwh for m in fac.meters if m.rollover_kwh}
        last = prev.dropna(subset=["energy_kwh"]).groupby("source_id")["energy_kwh"].last()
        has = df["energy_kwh"].notna()
        if not has.any():
            continue
        g = df[has].groupby("source_id")["energy_kwh"]
        first, second = g.nth(0), g.nth(1)
        first = df.loc[first.index, ["source_id", "energy_kwh"]].set_index("source_id")["energy_kwh"]
        second = df.loc[second.index, ["source_id", "energy_kwh"]].set_index("source_id")["energy_kwh"]
        step = (second - first).reindex(first.index).fillna(0).clip(lower=0)
        offset = (last.reindex(first.index) + step - first).dropna()
        shift = df["source_id"].map(offset).where(has).fillna(0.0)
        df["energy_kwh"] = df["energy_kwh"] + shift
        for mid, r in rollover.items():
            sel = has & (df["source_id"] == mid) & (df["kind"] == "meter")
            df.loc[sel, "energy_kwh"] = df.loc[sel, "energy_kwh"] % r


class Simulator:
    """Publishes the schedule in simulated time; see the module docstring."""

    def __init__(self, client: mqtt.Client, registry, facility_ids, *, prefix="dcmon/v1", speed=1.0,
                 start_ms: int | None = None, duration_s: float | None = None, faults=False, qos=1, seed=0,
                 horizon_s: float = 86400.0):
        if not speed > 0:
            raise ValueError(f"--speed must be > 0: {speed!r}")
        self.client = client
        self.registry = registry
        self.ids = list(facility_ids)
        self.prefix = prefix.rstrip("/")
        self.speed = float(speed)
        now = now_ms()
        self.start_ms = start_ms if start_ms is not None else now
        if self.start_ms > now:
            raise ValueError("--start is in the future")
        self.duration_s = duration_s
        self.faults = faults
        self.stop_event = threading.Event()
        self.stats = SimStats()
        self.pub = Publisher(client, qos, self.stats, self.stop_event)
        self.seed = seed
        self.horizon_ms = int(horizon_s * 1000)
        self._rng = np.random.default_rng(seed)

    def sim_now(self, wall0: float, sim0: int) -> int:
        t = sim0 + int((time.monotonic() - wall0) * 1000 * self.speed)
        return min(t, now_ms())

    def run(self) -> SimStats:
        wall0 = time.monotonic()
        sim0 = self.start_ms
        window_start = sim0
        sched = {}
        while not self.stop_event.is_set():
            window_end = window_start + self.horizon_ms
            new = build_schedule(self.registry, self.ids, window_start, window_end - 1, faults=self.faults,
                                 seed=self.seed)
            if window_start != sim0:
                continue_counters(self.registry, sched, new)
            sched = new
            cursors = {fid: 0 for fid in sched}
            first_rack = {fid: True for fid in sched}
            while not self.stop_event.is_set():
                if self.duration_s is not None and time.monotonic() - wall0 >= self.duration_s:
                    self.stop_event.set()
                    break
                t = self.sim_now(wall0, sim0)
                for fid, (df, tz) in sched.items():
                    cursors[fid] = self._publish_until(fid, df, tz, cursors[fid], t, first_rack)
                if t >= window_end - 1:
                    break
                self.stop_event.wait(0.05)
            window_start = window_end
        return self.stats

    def _publish_until(self, fid, df, tz, i, t, first_rack) -> int:
        tsv = df["ts"].to_numpy()
        j = int(np.searchsorted(tsv, t, side="right"))
        if j <= i:
            return i
        chunk = df.iloc[i:j]
        fac_index = self.ids.index(fid)
        base = f"{self.prefix}/{fid}"
        for ts, group in chunk.groupby("ts", sort=True):
            meters = group[group["kind"] == "meter"]
            racks = group[group["kind"] == "rack"]
            if len(meters):
                if fac_index % 3 == 1:   # line protocol, as Telegraf's MQTT output writes it
                    lines = []
                    for r in meters.itertuples(index=False):
                        fields = ",".join(f"{k}={v!r}" for k, v in (("energy_kwh", r.energy_kwh), ("power_kw", r.power_kw))
                                          if v == v)
                        lines.append(f"meter,meter={r.source_id} {fields} {int(ts) * 1_000_000}")
                    self.pub.publish(f"{base}/lp", "\n".join(lines).encode())
                else:
                    for r in meters.itertuples(index=False):
                        doc = {"ts": _iso(int(ts), tz)}
                        if r.energy_kwh == r.energy_kwh:
                            doc["energy_kwh"] = r.energy_kwh
                        if r.power_kw == r.power_kw:
                            doc["power_kw"] = r.power_kw
                        self.pub.publish(f"{base}/meter/{r.source_id}", _dumps(doc))
                self.stats.readings += len(meters)
            if len(racks):
                items = []
                for r in racks.itertuples(index=False):
                    d = {"rack_id": r.source_id}
                    for k in ("power_kw", "energy_kwh", "design_power_kw"):
                        v = getattr(r, k)
                        if v == v and v is not None:
                            d[k] = v
                    for k in ("status", "function"):
                        v = getattr(r, k)
                        if isinstance(v, str):
                            d[k] = v
                    if len(d) > 1:
                        items.append(d)
                if len(racks) <= 100:   # small sites: one topic per rack
                    for d in items:
                        rid = d.pop("rack_id")
                        self.pub.publish(f"{base}/rack/{rid}", _dumps({"ts": int(ts), **d}))
                else:
                    for k in range(0, len(items), SCAN_CHUNK):
                        self.pub.publish(f"{base}/racks", _dumps({"ts": int(ts), "readings": items[k:k + SCAN_CHUNK]}))
                self.stats.readings += len(items)
            if self.faults:
                self._maybe_fault(fid, base, int(ts), meters)
        return j

    def _maybe_fault(self, fid, base, ts, meters):
        fac = self.registry.get(fid)
        if self._rng.random() < 0.05:
            topic_t, body = BAD_PAYLOADS[int(self._rng.integers(len(BAD_PAYLOADS)))]
            meter = fac.meters[0].id
            rack = next(iter(sorted(fac.rack_ids)), "none")
            topic = f"{base}/" + topic_t.format(meter=meter, rack=rack)
            body = (body.replace(b"{now}", str(ts).encode()).replace(b"{future}", str(ts + 86_400_000).encode())
                    .replace(b"{now_ns}", str(ts * 1_000_000).encode()).replace(b"{meter}", meter.encode()))
            self.pub.publish(topic, body)
            self.stats.bad += 1
        if len(meters) and self._rng.random() < 0.02:   # a verbatim duplicate (QoS 1 redelivery)
            r = meters.iloc[0]
            doc = {"ts": ts}
            if r.energy_kwh == r.energy_kwh:
                doc["energy_kwh"] = float(r.energy_kwh)
            if r.power_kw == r.power_kw:
                doc["power_kw"] = float(r.power_kw)
            self.pub.publish(f"{base}/meter/{r.source_id}", _dumps(doc))
            self.stats.duplicates += 1


class ContinuingSimulator(Simulator):
    """The simulator, with each facility's counters continued from the history's last readings
    (without this the first live reading of every meter would look like a counter reset): the
    live stream of ``dcmon demo`` after its backfilled history."""

    def __init__(self, *args, last_counters: dict, **kwargs):
        super().__init__(*args, **kwargs)
        self._pending = dict(last_counters)

    def _publish_until(self, fid, df, tz, i, t, first_rack):
        prev = self._pending.pop(fid, None)
        if prev is not None and i == 0:
            # the later windows are continued from this one by Simulator.run itself
            continue_counters(self.registry, {fid: (prev, tz)}, {fid: (df, tz)})
        return super()._publish_until(fid, df, tz, i, t, first_rack)
