"""The dashboard's one loader: stale-while-revalidate cache, one computation per key at a time."""
import threading
import time

from wiring import loader_for


def _wait(pred, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.01)
    return False


def test_a_stale_value_is_served_at_once_while_one_refresh_runs(tmp_path):
    ld = loader_for("fixtures", tmp_path, ttl_s=0.2)
    calls, gate = [], threading.Event()

    def compute():
        calls.append(1)
        if len(calls) > 1:
            gate.wait(10)
        return len(calls)
    first = ld.cached("k", compute)
    assert first.value == 1
    assert ld.cached("k", compute) is first            # fresh: no recomputation
    time.sleep(0.25)
    assert ld.cached("k", compute).value == 1          # stale: served, refresh started
    assert ld.cached("k", compute).value == 1          # refresh in flight: not a second one
    assert len(calls) == 2
    gate.set()
    assert _wait(lambda: ld.cached("k", compute).value == 2)
    assert ld.cached("k", compute).computed_at >= first.computed_at


def test_concurrent_requests_share_one_computation(tmp_path):
    ld = loader_for("fixtures", tmp_path)
    calls = []

    def slow():
        calls.append(1)
        time.sleep(0.3)
        return "figures"
    out = []
    threads = [threading.Thread(target=lambda: out.append(ld.cached("q", slow).value)) for _ in range(6)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert out == ["figures"] * 6 and len(calls) == 1


def test_a_failed_refresh_keeps_the_previous_value_and_logs_it(tmp_path, caplog):
    ld = loader_for("fixtures", tmp_path, ttl_s=0.05)
    assert ld.cached("k", lambda: "old").value == "old"
    time.sleep(0.1)

    def broken():
        raise OSError("store unreadable")
    assert ld.cached("k", broken).value == "old"
    assert _wait(lambda: "background refresh" in caplog.text)
    assert "store unreadable" in caplog.text and ld.cached("k", lambda: "new").value in ("old", "new")


def test_warm_computes_the_overview_then_every_facility_page(week_store):
    import datetime as dt

    from dcmon.periods import from_options
    data, _, _ = week_store
    ld = loader_for("fixtures", data)
    period = from_options(from_text="2026-07-06", to_text="2026-07-12")
    ids = sorted(ld.registry.facilities)
    ld.warm(period, ids, today=dt.date(2026, 7, 12)).join(120)
    keys = set(ld._cache)
    assert ("eval", period, tuple(ids)) in keys
    for fid in ids:
        assert ("fig", period, fid, "day") in keys, fid
        assert any(k[0] == "fig" and k[2] == fid and k[3] == "month" for k in keys), fid


def test_the_cache_drops_the_least_recently_used_entries(tmp_path):
    ld = loader_for("fixtures", tmp_path, max_entries=8)
    ld.cached("keep", lambda: "often read")
    for i in range(20):
        ld.cached(("other", i), lambda: i)
        ld.cached("keep", lambda: "recomputed")
    assert ld.cached("keep", lambda: "recomputed").value == "often read"
    assert len(ld._cache) <= 8
