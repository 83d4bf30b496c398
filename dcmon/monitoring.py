"""The Prometheus ``/metrics`` endpoint of ``dcmon collect`` (``--metrics-port``).

What it publishes (names, units and labels in ``docs/monitoring.md``; the alert rules in
``deploy/prometheus/dcmon-rules.yml`` compare them):

- per facility of the collector's configuration: live 15-minute PUE and its coverage, facility
  and IT power (15-minute averages), seconds since each meter's last reading and the meter's
  ``max_gap_s``, readings stored and rejected by reason, quarter-to-date PUE and coverage, the
  PUE limit and minimum coverage of its policy profiles;
- per collector: messages, readings and rejections (``_total`` counters), queue depth (and
  bytes, when the collector reports them), acknowledgement lag, store write time, store errors,
  damaged store files, whether it is connected.

Where the numbers come from: the collector's counters through its health document (the same
document it stores every ``--health-interval``), and the facility figures from ``metrics`` over
the store, recomputed in one background thread (live figures every ``live_interval_s``,
quarter-to-date figures every ``quarter_interval_s``) so a scrape only formats what is ready and
never reads the store itself. Nothing is published about facilities outside the registry the
collector was started with; labels stay low-cardinality (facility, meter, reason class; never
racks, topics or free text).

Access: bound to 127.0.0.1 unless ``--metrics-host`` says otherwise; with a token (the file named
by ``--metrics-token-file`` or ``$DCMON_METRICS_TOKEN``) every request needs
``Authorization: Bearer <token>`` (Prometheus: ``authorization: {credentials_file: ...}``).
"""
from __future__ import annotations

import hmac
import logging
import os
import socket
import threading
import time
from pathlib import Path
from wsgiref.simple_server import make_server

import pandas as pd
from dcmon.metrics import checks
from dcmon.metrics import live as live_mod
from dcmon.metrics.policy import load_profiles
from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, SummaryMetricFamily
from prometheus_client.exposition import ThreadingWSGIServer, _SilentHandler
from dcmon.netaddr import is_loopback
from dcmon.store.base import Store

log = logging.getLogger("dcmon.monitoring")

ENV_METRICS_TOKEN = "DCMON_METRICS_TOKEN"
LIVE_WINDOW = pd.Timedelta(minutes=15)


# ------------------------------------------------------------------------ facility figures
class FacilityWatch:
    """Per-facility figures from ``metrics``, refreshed in two background threads.

    live_interval_s : live PUE, power and meters' last readings are recomputed this often [s]
    quarter_interval_s : quarter-to-date figures and profile limits this often [s] (they read the
        whole quarter so far, so less often, and apart from the live figures)

    Like the dashboard's loader, a pass never runs more often than every 4 × its own duration,
    so many facilities on a small machine stretch the interval instead of keeping a core busy.
    """

    def __init__(self, registry, store, *, live_interval_s: float = 15.0, quarter_interval_s: float = 300.0,
                 clock=None):
        self.registry = registry
        self.store = store
        self.clock = clock or (lambda: pd.Timestamp.now(tz="UTC"))   # tests fix the time
        self.live_interval_s = live_interval_s
        self.quarter_interval_s = quarter_interval_s
        self.profiles = load_profiles(registry.config_dir)
        self._live: dict[str, dict] = {}
        self._quarter: dict[str, dict] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._loop, args=(self.refresh_live, live_interval_s),
                                          name="dcmon-metrics-live", daemon=True),
                         threading.Thread(target=self._loop, args=(self.refresh_quarter, quarter_interval_s),
                                          name="dcmon-metrics-quarter", daemon=True)]
        self._failing: set[tuple[str, str]] = set()

    def start(self):
        for th in self._threads:
            th.start()
        return self

    def stop(self):
        self._stop.set()
        for th in self._threads:
            if th.is_alive():
                th.join(timeout=30)

    def snapshot(self) -> dict[str, dict]:
        """``{facility: {computed_at, live, meters, quarter?, pue_limit?, min_coverage?}}`` of the
        facilities whose live figures exist."""
        with self._lock:
            return {fid: {**live, **self._quarter.get(fid, {})} for fid, live in self._live.items()}

    def refresh(self, now: pd.Timestamp | None = None) -> None:
        """Recompute every figure now (both passes)."""
        self.refresh_live(now)
        self.refresh_quarter(now)

    def refresh_live(self, now: pd.Timestamp | None = None) -> None:
        def figures(fac, t):
            return {"computed_at": t.value / 1e9, "live": live_mod.live_pue(self.store, fac, t, LIVE_WINDOW.to_pytimedelta()),
                    "meters": live_mod.meter_status(self.store, fac, t)}
        self._each("live", figures, self._live, now)

    def refresh_quarter(self, now: pd.Timestamp | None = None) -> None:
        def figures(fac, t):
            return {"quarter": live_mod.quarter_to_date(self.store, fac, t),
                    "pue_limit": checks.pue_limit(self.store, fac, self.profiles, t),
                    "min_coverage": checks.min_coverage(fac, self.profiles)}
        self._each("quarter", figures, self._quarter, now)

    def _each(self, what: str, figures, into: dict, now) -> None:
        for fid in sorted(self.registry.facilities):
            if self._stop.is_set():
                return
            try:
                fig = figures(self.registry.facilities[fid], now or self.clock())
            except Exception as e:  # noqa: BLE001 - one facility's bad data must not stop the others
                if (fid, what) not in self._failing:
                    log.warning("metrics endpoint: %s figures of %s not computed (%s: %s); the previous ones stay "
                                "published until this works again", what, fid, type(e).__name__, e)
                self._failing.add((fid, what))
                continue
            if (fid, what) in self._failing:
                log.info("metrics endpoint: %s figures of %s computed again", what, fid)
                self._failing.discard((fid, what))
            with self._lock:
                into[fid] = fig

    def _loop(self, refresh, interval_s: float):
        while not self._stop.is_set():
            started = time.monotonic()
            refresh()
            cost = time.monotonic() - started
            self._stop.wait(max(interval_s, 4 * cost) - cost)


# ------------------------------------------------------------------------------ exposition
class DcmonMetrics:
    """A prometheus_client collector: formats the health document and the facility figures."""

    def __init__(self, registry, health_fn, watcher: FacilityWatch | None, store: Store | None = None):
        self.registry = registry
        self.health_fn = health_fn
        self.watcher = watcher
        self.store = store

    def describe(self):
        return []   # families depend on the data; no registration-time collect

    def collect(self):
        try:
            h = self.health_fn() or {}
        except Exception:  # noqa: BLE001 - a scrape still gets the facility figures
            log.exception("metrics endpoint: no collector health for this scrape")
            h = {}
        now = self.watcher.clock() if self.watcher else pd.Timestamp.now(tz="UTC")
        yield from self._collector_families(h)
        yield from self._facility_families(h, self.watcher.snapshot() if self.watcher else {}, now)

    # --------------------------------------------------------------- collector
    def _collector_families(self, h: dict):
        if not h:
            return   # no health document: publish nothing rather than a "disconnected" that is not known
        def gauge(name, doc, value):
            g = GaugeMetricFamily(name, doc)
            g.add_metric([], float(value))
            return g

        def counter(name, doc, value):
            c = CounterMetricFamily(name, doc)
            c.add_metric([], float(value or 0))
            return c

        yield gauge("dcmon_collector_connected", "1 while the collector is connected to the MQTT broker",
                    bool(h.get("connected")))
        if h.get("started_at_ms"):
            yield gauge("dcmon_collector_start_time_seconds", "When the collector started (Unix time) [s]",
                        h["started_at_ms"] / 1000)
        yield counter("dcmon_collector_connects", "Connections made to the broker (reconnects included)",
                      h.get("connects"))
        yield counter("dcmon_collector_messages", "MQTT messages received and made durable", h.get("messages"))
        yield counter("dcmon_collector_readings", "Readings accepted and made durable (duplicates included)",
                      h.get("readings"))
        yield counter("dcmon_collector_readings_written", "Readings newly written to the store (duplicates "
                      "excluded)", h.get("stored"))
        yield counter("dcmon_collector_duplicates", "Readings already stored (QoS 1 redeliveries, repeats)",
                      h.get("duplicates"))
        rej = CounterMetricFamily("dcmon_collector_rejected", "Readings or messages rejected to the quarantine, "
                                  "by reason class (all topics, configured facilities or not)", labels=["reason"])
        for reason, n in sorted((h.get("rejects_by_reason") or {}).items()):
            rej.add_metric([reason], float(n))
        yield rej
        yield counter("dcmon_collector_rejected_messages", "Messages with at least one rejection",
                      h.get("rejected_messages"))
        yield gauge("dcmon_collector_queue_messages", "Messages received and not yet stored", h.get("queue") or 0)
        if h.get("queue_bytes") is not None:
            yield gauge("dcmon_collector_queue_bytes", "Payload bytes received and not yet stored [B]",
                        h["queue_bytes"])
        yield gauge("dcmon_collector_ack_lag_seconds", "Arrival of the oldest message of the last batch to its "
                    "acknowledgement (durable) [s]", (h.get("ack_lag_ms") or 0) / 1000)
        yield gauge("dcmon_collector_ack_lag_max_seconds", "Largest acknowledgement lag since start [s]",
                    (h.get("max_ack_lag_ms") or 0) / 1000)
        s = SummaryMetricFamily("dcmon_collector_store_write_seconds", "Time to make a batch durable (quarantine, "
                                "store, outbox, each fsync'd) [s]",
                                count_value=int(h.get("store_writes") or 0), sum_value=float(h.get("store_write_seconds") or 0))
        yield s
        yield counter("dcmon_collector_store_errors", "Failed attempts to store a batch (retried; nothing "
                      "acknowledged)", h.get("store_errors"))
        yield gauge("dcmon_store_damaged_files", "Unreadable store files detected and moved aside",
                    self._damaged_files(h))
        if h.get("broker_dropped") is not None:
            yield counter("dcmon_broker_dropped_messages", "Messages the broker dropped "
                          "($SYS/broker/publish/messages/dropped; must stay 0)", h["broker_dropped"])

    def _damaged_files(self, h: dict) -> int:
        """The health document's count when the collector reports one, else the files the store
        has set aside (0 when there are none)."""
        if h.get("damaged_files") is not None:
            return int(h["damaged_files"])
        return len(self.store.damaged_files()) if self.store is not None else 0

    # ---------------------------------------------------------------- facility
    def _facility_families(self, h: dict, figs: dict, now: pd.Timestamp):
        fams = {
            "pue": GaugeMetricFamily("dcmon_facility_pue_15m_ratio", "PUE over the last 15 minutes: facility energy "
                                     "÷ IT energy (an energy ratio) [-]", labels=["facility"]),
            "pue_cov": GaugeMetricFamily("dcmon_facility_pue_15m_coverage_ratio", "Coverage of the 15-minute PUE: "
                                         "lower of facility and IT energy coverage [-]", labels=["facility"]),
            "p_fac": GaugeMetricFamily("dcmon_facility_power_watts", "Facility power (utility input): energy "
                                       "metered in the last 15 minutes ÷ 15 minutes [W]", labels=["facility"]),
            "p_it": GaugeMetricFamily("dcmon_facility_it_power_watts", "IT power: energy metered in the last "
                                      "15 minutes ÷ 15 minutes [W]", labels=["facility"]),
            "age": GaugeMetricFamily("dcmon_meter_last_reading_age_seconds", "Seconds since the meter's latest "
                                     "reading (its time stamp); +Inf when none in the last 24 h [s]",
                                     labels=["facility", "meter", "role"]),
            "gap": GaugeMetricFamily("dcmon_meter_max_gap_seconds", "The meter's max_gap_s: readings further apart "
                                     "leave a coverage hole [s]", labels=["facility", "meter"]),
            "stored": CounterMetricFamily("dcmon_facility_readings_stored", "Readings of the facility accepted and "
                                          "made durable by this collector since it started", labels=["facility"]),
            "rejected": CounterMetricFamily("dcmon_facility_readings_rejected", "Rejections on the facility's topics "
                                            "since the collector started, by reason class",
                                            labels=["facility", "reason"]),
            "q_pue": GaugeMetricFamily("dcmon_facility_quarter_pue_ratio", "PUE of the calendar quarter so far "
                                       "(facility time zone), interim [-]", labels=["facility"]),
            "q_cov": GaugeMetricFamily("dcmon_facility_quarter_coverage_ratio", "Coverage of the quarter so far: "
                                       "covered share of the elapsed time [-]", labels=["facility"]),
            "q_el": GaugeMetricFamily("dcmon_facility_quarter_elapsed_ratio", "Share of the calendar quarter "
                                      "elapsed [-]", labels=["facility"]),
            "q_best": GaugeMetricFamily("dcmon_facility_quarter_best_coverage_ratio", "The quarter's coverage if "
                                        "the rest of it is fully covered [-]", labels=["facility"]),
            "limit": GaugeMetricFamily("dcmon_facility_pue_limit_ratio", "Strictest PUE target of the facility's "
                                       "policy profiles; op is how PUE must compare with it [-]",
                                       labels=["facility", "profile", "op"]),
            "min_cov": GaugeMetricFamily("dcmon_facility_min_coverage_ratio", "Coverage a verdict on the facility "
                                         "needs [-]", labels=["facility"]),
            "at": GaugeMetricFamily("dcmon_facility_figures_timestamp_seconds", "When the facility figures above "
                                    "were computed (Unix time) [s]", labels=["facility"]),
        }
        last_seen = h.get("last_seen") or {}
        by_fac = h.get("by_facility") or {}
        for fid in sorted(self.registry.facilities):
            fac = self.registry.facilities[fid]
            f = figs.get(fid)
            counts = by_fac.get(fid) or {}
            fams["stored"].add_metric([fid], float(counts.get("accepted", 0)))
            for reason, n in sorted((counts.get("rejects_by_reason") or {}).items()):
                fams["rejected"].add_metric([fid, reason], float(n))
            store_last = {m["meter_id"]: m["last_ts"] for m in (f or {}).get("meters", [])}
            live_last = last_seen.get(fid) or {}
            for m in fac.meters:
                ts = [t for t in (store_last.get(m.id), (live_last.get(m.id) or [None])[0]) if t is not None]
                fams["age"].add_metric([fid, m.id, m.role], live_mod.seconds_since(max(ts) if ts else None, now))
                fams["gap"].add_metric([fid, m.id], float(m.max_gap_s))
            if f is None:
                continue
            fams["at"].add_metric([fid], f["computed_at"])
            live = f["live"]
            if live.get("pue") is not None:
                fams["pue"].add_metric([fid], live["pue"])
            fams["pue_cov"].add_metric([fid], live["coverage"])
            if live["coverage"] > 0:   # without readings in the window there is no load figure (not 0 W)
                fams["p_fac"].add_metric([fid], live["facility_load_kw"] * 1000)
                fams["p_it"].add_metric([fid], live["it_load_kw"] * 1000)
            q = f.get("quarter")
            if q is None:
                continue
            if q.get("pue") is not None:
                fams["q_pue"].add_metric([fid], q["pue"])
            fams["q_cov"].add_metric([fid], q["coverage"])
            fams["q_el"].add_metric([fid], q["elapsed_ratio"])
            fams["q_best"].add_metric([fid], q["best_case_coverage"])
            if f.get("pue_limit"):
                lim = f["pue_limit"]
                fams["limit"].add_metric([fid, lim["profile"], lim["op"]], lim["threshold"])
            fams["min_cov"].add_metric([fid], f["min_coverage"])
        yield from fams.values()


# ---------------------------------------------------------------------------------- server
def load_token(token_file: str | None) -> str | None:
    """The bearer token from ``token_file`` (first line) or ``$DCMON_METRICS_TOKEN``; None for none.

    Raises ``ValueError`` naming the file when it is missing, empty, or readable by others.
    """
    if token_file:
        p = Path(token_file)
        if not p.is_file():
            raise ValueError(f"--metrics-token-file {p}: no such file")
        if p.stat().st_mode & 0o077:
            raise ValueError(f"--metrics-token-file {p}: readable by group or others "
                             f"(mode {p.stat().st_mode & 0o777:o}); chmod 600 it")
        lines = p.read_text(encoding="utf-8").strip().splitlines()
        token = lines[0].strip() if lines else ""
        if not token:
            raise ValueError(f"--metrics-token-file {p}: empty")
        return token
    return os.environ.get(ENV_METRICS_TOKEN) or None


def metrics_wsgi_app(prom_registry, token: str | None):
    """``/metrics`` only; with a token, ``Authorization: Bearer <token>`` is required (compared in
    constant time) and a missing or wrong one gets 401 with no data."""
    inner = make_wsgi_app(prom_registry)
    expected = f"Bearer {token}".encode() if token else None

    def app(environ, start_response):
        if environ.get("PATH_INFO") != "/metrics":
            start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8")])
            return [b"not found: the metrics are at /metrics\n"]
        if expected is not None:
            given = environ.get("HTTP_AUTHORIZATION", "").encode()
            if not hmac.compare_digest(given, expected):
                start_response("401 Unauthorized", [("Content-Type", "text/plain; charset=utf-8"),
                                                    ("WWW-Authenticate", 'Bearer realm="dcmon"')])
                return [b"unauthorized: send Authorization: Bearer <token>\n"]
        return inner(environ, start_response)
    return app


class MetricsServer:
    """Serves ``/metrics`` in a thread: ``start()`` binds (and returns the bound port), ``stop()``."""

    def __init__(self, registry, store, health_fn, *, host: str = "127.0.0.1", port: int = 0,
                 token: str | None = None, live_interval_s: float = 15.0,
                 quarter_interval_s: float = 300.0, clock=None):
        self.host, self.port, self.token = host, port, token
        self.watcher = FacilityWatch(registry, store, live_interval_s=live_interval_s,
                                     quarter_interval_s=quarter_interval_s, clock=clock)
        self.prom = CollectorRegistry(auto_describe=False)
        self.prom.register(DcmonMetrics(registry, health_fn, self.watcher, store))
        self._httpd = None
        self._thread = None

    def start(self) -> int:
        if not is_loopback(self.host) and not self.token:
            log.warning("the metrics endpoint listens on %s without a token: anyone who can reach it reads the "
                        "facility figures (set %s or --metrics-token-file)", self.host, ENV_METRICS_TOKEN)
        family = socket.getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0][0]
        server_class = type("MetricsHTTPServer", (ThreadingWSGIServer,), {"address_family": family})
        self._httpd = make_server(self.host, self.port, metrics_wsgi_app(self.prom, self.token),
                                  server_class, handler_class=_SilentHandler)
        self.port = self._httpd.server_port
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="dcmon-metrics-http", daemon=True)
        self._thread.start()
        self.watcher.start()
        log.info("metrics endpoint on http://%s:%d/metrics (%s)", self.host, self.port,
                 "bearer token required" if self.token else "no token")
        return self.port

    def stop(self):
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        self.watcher.stop()
