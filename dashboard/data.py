"""The one data loader of the dashboard: registry, store and a short-lived cache of evaluations.

Layouts never load data; callbacks ask this loader, which asks ``metrics``. Evaluations of a
period are cached for ``ttl_s`` so a 300-facility overview is not recomputed per callback;
live figures (last 15 minutes) bypass the cache.
"""
from __future__ import annotations

import threading
import time
from pathlib import Path

import pandas as pd

from dcmon.metrics import evaluate as ev
from dcmon.registry import load_registry
from dcmon.store import open_store


class Loader:
    def __init__(self, config_dir, data_dir, ttl_s: float = 30.0):
        self.config_dir = Path(config_dir)
        self.data_dir = Path(data_dir)
        self.registry = load_registry(self.config_dir)
        self.store = open_store(self.data_dir)
        self.ttl_s = ttl_s
        self._cache: dict = {}
        self._lock = threading.Lock()

    def _cached(self, key, fn):
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(key)
            if hit and now - hit[0] < self.ttl_s:
                return hit[1]
        value = fn()
        with self._lock:
            self._cache[key] = (now, value)
            if len(self._cache) > 256:
                oldest = sorted(self._cache.items(), key=lambda kv: kv[1][0])[:64]
                for k, _ in oldest:
                    self._cache.pop(k, None)
        return value

    def evaluation(self, period, facility_ids: list[str]) -> dict:
        ids = tuple(sorted(facility_ids))
        return self._cached(("eval", period, ids),
                            lambda: ev.evaluate(self.registry, self.store, period, list(ids)) if ids else
                            {"facilities": [], "portfolio": {}, "period": period.to_json()})

    def figures(self, period, facility_id: str, bins: str | None) -> dict:
        fac = self.registry.get(facility_id)
        return self._cached(("fig", period, facility_id, bins),
                            lambda: ev.facility_figures(self.store, fac, period, ev.Options(bins=bins)))

    def live(self, facility_id: str) -> dict:
        return ev.live_pue(self.store, self.registry.get(facility_id))

    def racks(self, facility_id: str) -> pd.DataFrame:
        return ev.rack_snapshot(self.store, self.registry.get(facility_id))

    def collector_health(self) -> dict[str, dict]:
        return self.store.list_status("collector")

    def rejected(self, facility_id: str, limit: int = 20) -> list[dict]:
        try:
            from dcmon.collector.quarantine import iter_records
        except ImportError:
            return []
        out = [r for r in iter_records(self.data_dir) if f"/{facility_id}/" in r.get("topic", "") + "/"]
        return out[-limit:]
