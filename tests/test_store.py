"""Parquet store: durability, idempotence, partition pruning, concurrent reads, killed writers."""
import os
import signal
import subprocess
import sys
import textwrap
import time

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as hyp

from dcmon.readings import SCHEMA, to_table
from dcmon.store import open_store
from dcmon.store.parquet import sort_dedupe

T0 = 1_782_864_000_000  # 2026-07-01T00:00:00Z
MIN = 60_000


def rows(n, *, source="grid-a", start=T0, step=MIN, value0=0.0, facility="f1", kind="meter"):
    return [{"facility_id": facility, "kind": kind, "source_id": source, "ts": start + i * step,
             "energy_kwh": value0 + i, "received_at": start + i * step, "origin": "test"} for i in range(n)]


def test_append_then_read_sorted_and_deduplicated(tmp_path):
    st = open_store(tmp_path)
    r1 = st.append(to_table(rows(10)))
    assert (r1.written, r1.duplicates) == (10, 0)
    # the same rows again, in another order, plus two new ones
    again = rows(12)[::-1]
    r2 = st.append(to_table(again))
    assert (r2.written, r2.duplicates, r2.conflicts) == (2, 10, 0)
    t = st.read("f1", "meter")
    assert t.num_rows == 12
    assert t.column("energy_kwh").to_pylist() == [float(i) for i in range(12)]


def test_conflicting_duplicate_keeps_first_value(tmp_path):
    st = open_store(tmp_path)
    st.append(to_table(rows(3)))
    changed = rows(3)
    changed[1]["energy_kwh"] = 999.0
    res = st.append(to_table(changed))
    assert (res.written, res.duplicates, res.conflicts) == (0, 3, 1)
    assert st.read("f1", "meter").column("energy_kwh").to_pylist() == [0.0, 1.0, 2.0]


def test_duplicates_without_check_are_invisible_to_readers_and_compacted(tmp_path):
    st = open_store(tmp_path)
    st.append(to_table(rows(5)), check_existing=False)
    st.append(to_table(rows(5)), check_existing=False)       # QoS 1 redelivery
    assert st.read("f1", "meter").num_rows == 5
    batches = list(st.iter_sorted("f1", "meter", None, None, ["energy_kwh"]))
    assert sum(b.num_rows for b in batches) == 5
    assert st.compact() == 1
    files = st.files("f1", "meter")
    assert len(files) == 1 and pq.read_metadata(files[0]).num_rows == 5


def test_partitioned_by_facility_kind_and_time(tmp_path):
    """Racks by UTC day (high volume), meters by UTC month (few files for small sites)."""
    st = open_store(tmp_path)
    st.append(to_table(rows(3 * 24, step=3_600_000, kind="rack") + rows(5, facility="other")
                       + rows(40, step=86_400_000, start=T0 - 5 * 86_400_000)))
    base = tmp_path / "readings" / "facility=f1"
    days = sorted(p.name for p in (base / "kind=rack").iterdir() if not p.name.startswith("."))
    assert days == ["date=2026-07-01", "date=2026-07-02", "date=2026-07-03"]
    months = sorted(p.name for p in (base / "kind=meter").iterdir() if not p.name.startswith("."))
    assert months == ["month=2026-06", "month=2026-07", "month=2026-08"]
    one_day = st.files("f1", "rack", pd.Timestamp("2026-07-02T00:00Z"), pd.Timestamp("2026-07-03T00:00Z"))
    assert len(one_day) == 1 and "date=2026-07-02" in str(one_day[0])
    july = st.files("f1", "meter", pd.Timestamp("2026-07-02T00:00Z"), pd.Timestamp("2026-07-03T00:00Z"))
    assert len(july) == 1 and "month=2026-07" in str(july[0])
    assert st.read("f1", "rack", pd.Timestamp("2026-07-02T00:00Z"), pd.Timestamp("2026-07-02T01:00Z")).num_rows == 1
    assert st.read("f1", "meter", pd.Timestamp("2026-06-30T00:00Z"), pd.Timestamp("2026-07-02T00:00Z")).num_rows == 2
    assert st.files("other", "meter") and not st.files("other", "rack")


def test_reads_accept_either_partition_granularity(tmp_path):
    """A store written with day folders for meters (earlier layout) reads the same."""
    st = open_store(tmp_path)
    st.append(to_table(rows(3, start=T0)))
    month = tmp_path / "readings" / "facility=f1" / "kind=meter" / "month=2026-07"
    month.rename(month.with_name("date=2026-07-01"))
    assert st.read("f1", "meter").column("energy_kwh").to_pylist() == [0.0, 1.0, 2.0]


def test_rack_inventory_changes_are_indexed(tmp_path):
    st = open_store(tmp_path)
    st.append(to_table([
        {"facility_id": "f1", "kind": "rack", "source_id": "A1", "ts": T0, "power_kw": 3.0},
        {"facility_id": "f1", "kind": "rack", "source_id": "A1", "ts": T0 + MIN, "status": "vacant"},
    ]))
    inv = st.read("f1", "rack-inventory")
    assert inv.column("status").to_pylist() == ["vacant"]
    assert st.read("f1", "rack").num_rows == 2


def test_files_are_written_atomically(tmp_path):
    """A file appears complete or not at all: no reader ever sees a partial Parquet file."""
    st = open_store(tmp_path)
    res = st.append(to_table(rows(100)))
    for f in res.files:
        assert not f.name.startswith(".")
        assert pq.read_metadata(f).num_rows == 100
    assert not list(tmp_path.rglob("*.tmp"))


WRITER = textwrap.dedent("""
    import sys, time
    from dcmon.readings import to_table
    from dcmon.store import open_store
    st = open_store(sys.argv[1])
    T0 = 1_782_864_000_000
    i = 0
    while True:
        batch = [{"facility_id": "f1", "kind": "meter", "source_id": "m", "ts": T0 + (i * 1440 + k) * 60_000,
                  "energy_kwh": float(i * 1440 + k)} for k in range(1440)]
        st.append(to_table(batch), check_existing=False)
        print(i, flush=True)
        i += 1
""")


def test_read_while_writer_runs_and_after_it_is_killed(tmp_path):
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    data = tmp_path / "data"
    proc = subprocess.Popen([sys.executable, str(script), str(data)], stdout=subprocess.PIPE, text=True)
    st = open_store(data)
    try:
        seen = []
        acknowledged = -1
        deadline = time.monotonic() + 60
        while len(seen) < 20 and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if line:
                acknowledged = int(line)
            t = st.read("f1", "meter", columns=["energy_kwh"])
            vals = t.column("energy_kwh").to_pylist()
            # every visible batch (one day, one file) is whole: values contiguous
            assert len(vals) % 1440 == 0
            assert vals == [float(x) for x in range(len(vals))]
            seen.append(len(vals))
        assert seen[-1] > 0
    finally:
        proc.send_signal(signal.SIGKILL)  # killed mid-write, at an arbitrary point
        proc.wait()
    t = st.read("f1", "meter", columns=["energy_kwh"])
    vals = t.column("energy_kwh").to_pylist()
    assert len(vals) >= (acknowledged + 1) * 1440      # nothing acknowledged is lost
    assert len(vals) % 1440 == 0 and vals == [float(x) for x in range(len(vals))]
    # leftovers of the interrupted write are dot-files that readers ignore and compaction removes
    for tmp in data.rglob(".*.tmp"):
        os.utime(tmp, (0, 0))
    st.compact()
    assert not list(data.rglob(".*.tmp"))
    assert st.read("f1", "meter").num_rows == len(vals)


def test_compaction_while_reading_loses_nothing(tmp_path):
    st = open_store(tmp_path)
    for k in range(6):
        st.append(to_table(rows(100, start=T0 + k * 100 * MIN, value0=k * 100)), check_existing=False)
    before = st.read("f1", "meter").column("energy_kwh").to_pylist()
    st.compact()
    after = st.read("f1", "meter").column("energy_kwh").to_pylist()
    assert before == after == [float(i) for i in range(600)]


def test_status_documents(tmp_path):
    st = open_store(tmp_path)
    st.put_status("collector-a", {"messages": 3})
    assert st.get_status("collector-a") == {"messages": 3}
    assert st.list_status("collector") == {"collector-a": {"messages": 3}}
    with pytest.raises(ValueError, match="plain file name"):
        st.put_status("../escape", {})


def test_source_range_reads_only_its_sources_across_row_groups(tmp_path, monkeypatch):
    import dcmon.store.parquet as sp
    monkeypatch.setattr(sp, "ROW_GROUP", 7)  # many small row groups, sorted by source
    st = open_store(tmp_path)
    data = []
    for s in ("a", "b", "c", "d", "e"):
        data += rows(10, source=s)
    st.append(to_table(data))
    seen = {}
    for rng in ((None, "c"), ("c", None), ("b", "d")):
        got = [r for b in st.iter_sorted("f1", "meter", None, None, ["energy_kwh"], source_range=rng)
               for r in b.column("source_id").to_pylist()]
        seen[rng] = sorted(set(got)), len(got)
    assert seen[(None, "c")] == (["a", "b"], 20)
    assert seen[("c", None)] == (["c", "d", "e"], 30)
    assert seen[("b", "d")] == (["b", "c"], 20)


@settings(max_examples=200, deadline=None)
@given(st_rows=hyp.lists(hyp.tuples(hyp.sampled_from(["A1-02", "A1-10", "A1-1", "B", "a", "é-1"]),
                                     hyp.sampled_from([0, 1, 5, 60_000, -86_400_000, 2**61]),
                                     hyp.floats(0, 10)), min_size=1, max_size=40),
       chunks=hyp.integers(1, 3), dictionary=hyp.booleans())
def test_sort_dedupe_matches_a_plain_stable_sort(st_rows, chunks, dictionary):
    """Any order, duplicate keys, time spans too wide for one integer key, chunked or dictionary
    columns: rows sorted by (source_id, ts), the first row of each key kept, the later ones dropped."""
    facility = "f1"
    table = pa.table({"facility_id": [facility] * len(st_rows), "kind": ["rack"] * len(st_rows),
                      "source_id": [s for s, _, _ in st_rows],
                      "ts": pa.array([T0 + t for _, t, _ in st_rows], pa.timestamp("ms", tz="UTC")),
                      "power_kw": [p for _, _, p in st_rows], "status": pa.nulls(len(st_rows), pa.string())})
    if dictionary:
        table = table.set_column(2, "source_id", table.column("source_id").dictionary_encode())
    cut = len(st_rows) // chunks or 1
    table = pa.concat_tables([table.slice(i, cut) for i in range(0, len(st_rows), cut)])
    kept, dropped = sort_dedupe(table, constant=("facility_id", "kind"))

    # by hand: Python's sort is stable, so the first of equal keys is the earliest row
    order = sorted(range(len(st_rows)), key=lambda i: (st_rows[i][0].encode(), st_rows[i][1]))
    seen, want_kept, want_dropped = set(), [], []
    for i in order:
        key = st_rows[i][:2]
        (want_dropped if key in seen else want_kept).append((st_rows[i][0], T0 + st_rows[i][1], st_rows[i][2]))
        seen.add(key)

    def triples(t):
        src = t.column("source_id").cast(pa.string()).to_pylist()
        ts = t.column("ts").cast(pa.int64()).to_pylist()
        return list(zip(src, ts, t.column("power_kw").to_pylist()))
    assert triples(kept) == want_kept
    assert triples(dropped) == want_dropped
    assert kept.column("facility_id").to_pylist() == [facility] * len(want_kept)
    assert kept.column("status").null_count == len(want_kept)
