"""Shared fixtures: the sample facilities and a store filled with generated telemetry."""
import datetime as dt
from pathlib import Path

import pytest

from dcmon.registry import load_registry

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "fixtures"
WEEK = (dt.date(2026, 7, 6), dt.date(2026, 7, 12))


@pytest.fixture(scope="session")
def registry():
    return load_registry(FIXTURES)


@pytest.fixture(scope="session")
def week_store(registry, tmp_path_factory):
    """One week of 1-minute meter data for every fixture facility (racks for rack-metered sites)."""
    from dcmon.fixtures.generate import generate
    from dcmon.store import open_store
    data = tmp_path_factory.mktemp("week-data")
    store = open_store(data)
    truths = {}
    for fac in registry.select(None):
        g = generate(fac, *WEEK, include_racks=fac.it_energy_from == "racks", seed=1)
        store.append(g.table, check_existing=False)
        truths[fac.id] = g.truth
    return data, store, truths
