"""The one data loader of the dashboard: registry, store and a cache of evaluations.

The entry point loads the registry and opens the store, and hands both in (``Loader(registry, store)``).

Layouts never load data; callbacks ask this loader, which asks ``metrics``. Period evaluations
are cached ("stale while revalidate"): a value younger than its time to live is served as it
is; an older one is still served at once while one background thread recomputes it, so a
300-facility overview never makes a visitor wait for a recomputation. Each cached value
carries the time it was computed, which the pages show. Concurrent requests for the same key
share one computation. Live figures (the last 15 minutes, the rack snapshot) bypass the cache.

The time to live adapts to the cost: ``max(ttl_s, 4 × compute time)``, so an evaluation
that takes 15 s is refreshed at most once a minute and never keeps a core busy.
"""
from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
import pandas as pd
from dcmon.metrics import evaluate as ev

from dcmon.periods import Period, quarter_of
from dcmon.registry import Registry
from dcmon.store.base import Store

log = logging.getLogger("dcmon.dashboard")
CHINA = dt.timezone(dt.timedelta(hours=8))


@dataclass
class _Entry:
    value: object
    computed_at: dt.datetime  # UTC, when the computation started (the data is at least this fresh)
    monotonic: float
    cost_s: float
    last_used: float = 0.0


class Loader:
    def __init__(self, registry: Registry, store: Store, ttl_s: float = 30.0, max_entries: int = 4096,
                 prometheus_url: str | None = None):
        self.prometheus_url = prometheus_url
        self._alerts: tuple[float, dict] | None = None
        self.registry = registry
        self.store = store
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._cache: dict[tuple, _Entry] = {}
        self._inflight: dict[tuple, threading.Event] = {}
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ cache
    def _compute(self, key, fn) -> _Entry:
        started, t0 = dt.datetime.now(dt.UTC), time.monotonic()
        try:
            value = fn()
            entry = _Entry(value, started, t0, time.monotonic() - t0, time.monotonic())
            with self._lock:
                self._cache[key] = entry
                if len(self._cache) > self.max_entries:  # drop the least recently used quarter
                    for k, _ in sorted(self._cache.items(), key=lambda kv: kv[1].last_used)[: self.max_entries // 4]:
                        self._cache.pop(k, None)
            return entry
        finally:
            with self._lock:
                self._inflight.pop(key).set()

    def _refresh_in_background(self, key, fn):
        def run():
            try:
                self._compute(key, fn)
            except Exception:
                log.exception("dashboard: background refresh of %s failed; serving the previous value", key[:2])
        threading.Thread(target=run, name="dcmon-dashboard-refresh", daemon=True).start()

    def cached(self, key, fn) -> _Entry:
        """The cache entry for ``key``: fresh, stale (refresh started) or computed now."""
        while True:
            now = time.monotonic()
            with self._lock:
                hit = self._cache.get(key)
                busy = self._inflight.get(key)
                if hit is not None:
                    hit.last_used = now
                    if now - hit.monotonic >= max(self.ttl_s, 4 * hit.cost_s) and busy is None:
                        self._inflight[key] = threading.Event()
                        refresh = True
                    else:
                        refresh = False
                    if not refresh:
                        return hit
                elif busy is None:
                    self._inflight[key] = threading.Event()
            if hit is not None:
                self._refresh_in_background(key, fn)
                return hit
            if busy is None:
                return self._compute(key, fn)
            busy.wait()  # another request computes this key: share its result

    # ------------------------------------------------------------------ figures
    def evaluation(self, period, facility_ids: list[str]) -> dict:
        """``metrics.evaluate`` of these facilities over ``period`` plus ``computed_at`` (UTC)."""
        return self.evaluation_entry(period, facility_ids).value

    def evaluation_entry(self, period, facility_ids: list[str]) -> _Entry:
        ids = tuple(sorted(facility_ids))
        if not ids:
            return _Entry({"facilities": [], "portfolio": {}, "period": period.to_json()}, dt.datetime.now(dt.UTC),
                          time.monotonic(), 0.0)
        return self.cached(("eval", period, ids), lambda: ev.evaluate(self.registry, self.store, period, list(ids)))

    def figures(self, period, facility_id: str, bins: str | None) -> dict:
        fac = self.registry.get(facility_id)
        return self.cached(("fig", period, facility_id, bins),
                           lambda: ev.facility_figures(self.store, fac, period, ev.Options(bins=bins))).value

    def figures_many(self, facility_id: str, requests: list[tuple]) -> list[dict]:
        """``figures`` for several (period, bins) of one facility, computed side by side (threads)."""
        if len(requests) == 1:
            return [self.figures(facility_id=facility_id, period=requests[0][0], bins=requests[0][1])]
        with ThreadPoolExecutor(max_workers=min(4, len(requests)), thread_name_prefix="dcmon-figures") as pool:
            return list(pool.map(lambda r: self.figures(r[0], facility_id, r[1]), requests))

    def facility_page_figures(self, facility_id: str, period, today: dt.date) -> list[dict]:
        """What a facility page shows: the period by day, today, this quarter, the trailing 12 months by month."""
        first_month = (today.replace(day=1) - dt.timedelta(days=1)).replace(day=1)
        for _ in range(10):
            first_month = (first_month - dt.timedelta(days=1)).replace(day=1)
        return self.figures_many(facility_id, [(period, "day"), (Period(today, today), None), (quarter_of(today), None),
                                               (Period(first_month, today), "month")])

    def warm(self, period, facility_ids: list[str], today: dt.date | None = None,
             facility_pages: bool = True) -> threading.Thread:
        """Compute in the background now what the first visitors will ask for: the evaluation of
        ``period`` (the overview), then each facility page's figures, largest facility first."""
        def run():
            try:
                self.evaluation(period, facility_ids)
                if facility_pages:
                    by_size = sorted(facility_ids, key=lambda f: -len(self.registry.get(f).racks))
                    for fid in by_size:
                        self.facility_page_figures(fid, period, today or dt.datetime.now(CHINA).date())
            except Exception:  # noqa: BLE001 - warming is an optimisation: say why it stopped, serve on demand
                log.exception("dashboard: pre-warm stopped; figures will be computed on demand")
        th = threading.Thread(target=run, name="dcmon-dashboard-warm", daemon=True)
        th.start()
        return th

    def live(self, facility_id: str) -> dict:
        return ev.live_pue(self.store, self.registry.get(facility_id))

    def racks(self, facility_id: str) -> pd.DataFrame:
        return ev.rack_snapshot(self.store, self.registry.get(facility_id))

    def meters(self, facility_id: str) -> list[dict]:
        return ev.meter_status(self.store, self.registry.get(facility_id))

    def alerts(self, max_age_s: float = 10.0) -> dict | None:
        """The dcmon alerts Prometheus holds, ``{"alerts": [...], "error": str | None}``, asked at most
        once per ``max_age_s`` whoever is looking; None when no Prometheus URL is configured.
        Not filtered: ``dashboard.alerts.for_user`` filters for each user."""
        if not self.prometheus_url:
            return None
        from dcmon.dashboard.alerts import AlertsUnavailable, fetch_alerts
        with self._lock:
            hit = self._alerts
        if hit is not None and time.monotonic() - hit[0] < max_age_s:
            return hit[1]
        try:
            value = {"alerts": fetch_alerts(self.prometheus_url), "error": None}
        except AlertsUnavailable as e:
            log.warning("dashboard: no alerts from Prometheus (%s)", e)
            value = {"alerts": [], "error": str(e)}
        with self._lock:
            self._alerts = (time.monotonic(), value)
        return value

    def collector_health(self) -> dict[str, dict]:
        return self.store.list_status("collector")

    def rejected(self, facility_id: str, limit: int = 20, days: int = 7) -> list[dict]:
        """The latest quarantined records of the last ``days`` of this facility (exact id), read from the
        quarantine's index (a few KB), never by rescanning the quarantine files."""
        return self.rejected_summary(facility_id, limit, days)["latest"]

    def rejected_summary(self, facility_id: str, limit: int = 20, days: int = 7) -> dict:
        """``{"records", "rejected", "latest"}`` of this facility over the last ``days`` (quarantine index)."""
        return self.store.quarantine_summary(facility_id, days=days, limit=limit)
