"""Shared fixtures: the sample facilities and a store filled with generated telemetry."""
import datetime as dt
from pathlib import Path

import pytest

from dcmon.registry import load_registry

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "fixtures"
WEEK = (dt.date(2026, 7, 6), dt.date(2026, 7, 12))


@pytest.fixture(scope="session", autouse=True)
def signing_key_dir(tmp_path_factory):
    """dcmon evidence signs PDFs and creates a key on first use: every test, and every dcmon it starts,
    uses a key folder of the session, never the real ~/.config/dcmon/keys."""
    d = tmp_path_factory.mktemp("signing") / "keys"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DCMON_KEY_DIR", str(d))
        yield d


@pytest.fixture(scope="session", autouse=True)
def cache_dir(tmp_path_factory):
    """Registry snapshots of every test, and of every dcmon it starts, go to a folder of the session,
    never the real ~/.cache/dcmon."""
    d = tmp_path_factory.mktemp("cache") / "dcmon"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DCMON_CACHE", str(d))
        yield d


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
