"""The one data loader of the dashboard: registry, store and a cache of evaluations.

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
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from dcmon.metrics import evaluate as ev
from dcmon.store import open_store

from dcmon.registry import load_registry

log = logging.getLogger("dcmon.dashboard")


@dataclass
class _Entry:
    value: object
    computed_at: dt.datetime  # UTC, when the computation started (the data is at least this fresh)
    monotonic: float
    cost_s: float


class Loader:
    def __init__(self, config_dir, data_dir, ttl_s: float = 30.0, max_entries: int = 256):
        self.config_dir = Path(config_dir)
        self.data_dir = Path(data_dir)
        self.registry = load_registry(self.config_dir)
        self.store = open_store(self.data_dir)
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
            entry = _Entry(value, started, t0, time.monotonic() - t0)
            with self._lock:
                self._cache[key] = entry
                if len(self._cache) > self.max_entries:
                    for k, _ in sorted(self._cache.items(), key=lambda kv: kv[1].monotonic)[: self.max_entries // 4]:
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

    def warm(self, period, facility_ids: list[str]) -> threading.Thread:
        """Evaluate in the background now, so the first visitor finds it cached."""
        th = threading.Thread(target=lambda: self.evaluation(period, facility_ids), name="dcmon-dashboard-warm",
                              daemon=True)
        th.start()
        return th

    def live(self, facility_id: str) -> dict:
        return ev.live_pue(self.store, self.registry.get(facility_id))

    def racks(self, facility_id: str) -> pd.DataFrame:
        return ev.rack_snapshot(self.store, self.registry.get(facility_id))

    def meters(self, facility_id: str) -> list[dict]:
        return ev.meter_status(self.store, self.registry.get(facility_id))

    def collector_health(self) -> dict[str, dict]:
        return self.store.list_status("collector")

    def rejected(self, facility_id: str, limit: int = 20, days: int = 7) -> list[dict]:
        """The latest quarantined payloads of the last ``days`` whose topic names this facility."""
        from dcmon.collector.quarantine import iter_records
        since = (dt.datetime.now(dt.UTC).date() - dt.timedelta(days=days)).isoformat()
        out = [r for r in iter_records(self.data_dir, since=since, topic=f"/{facility_id}/")]
        return out[-limit:]
