"""Damaged store files (reliability.md #14): detected on read and on write, named in one line,
moved aside by the collector's store and by ``dcmon check --repair``; the rest carries on."""
import io
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dcmon.readings import to_table
from dcmon.store import DamagedFile, open_store

T0 = 1_782_864_000_000  # 2026-07-01T00:00:00Z
MIN = 60_000
REPO = Path(__file__).resolve().parents[1]


def rows(n, *, start=T0, value0=0.0, source="grid-a"):
    return [{"facility_id": "f1", "kind": "meter", "source_id": source, "ts": start + i * MIN,
             "energy_kwh": value0 + i, "received_at": start + i * MIN, "origin": "test"} for i in range(n)]


def _good_bytes() -> bytes:
    buf = io.BytesIO()
    pq.write_table(to_table(rows(50, start=T0 + 10_000 * MIN)), buf, write_page_checksum=True)
    return buf.getvalue()


def _flip_middle(b: bytes) -> bytes:
    mid = len(b) // 3
    return b[:mid] + bytes(x ^ 0xFF for x in b[mid:mid + 16]) + b[mid + 16:]


def _foreign_parquet() -> bytes:
    buf = io.BytesIO()
    pq.write_table(pa.table({"x": [1, 2, 3]}), buf)
    return buf.getvalue()


def _wrong_types() -> bytes:
    buf = io.BytesIO()
    pq.write_table(pa.table({"source_id": [1], "ts": ["noon"], "energy_kwh": ["a lot"]}), buf)
    return buf.getvalue()


CORRUPTIONS = {
    "random-2k": lambda: os.urandom(2048),
    "empty": lambda: b"",
    "truncated": lambda: _good_bytes()[: len(_good_bytes()) // 2],
    "no-footer-magic": lambda: _good_bytes()[:-4] + b"XXXX",
    "only-magic": lambda: b"PAR1PAR1",
    "csv-text": lambda: b"ts,energy_kwh\n1,2\n",
    "flipped-bytes": lambda: _flip_middle(_good_bytes()),
    "zeroed-tail": lambda: _good_bytes()[:-64] + b"\0" * 64,
    "foreign-schema": _foreign_parquet,
    "wrong-types": _wrong_types,
}


def _store_with_damage(tmp_path, kind_of_damage, **kw):
    st = open_store(tmp_path, **kw)
    st.append(to_table(rows(10)))
    part = st.files("f1", "meter")[0].parent
    bad = part / "part-00000000000000000001-damaged00000.parquet"
    bad.write_bytes(CORRUPTIONS[kind_of_damage]())
    return st, bad


@pytest.mark.parametrize("kind_of_damage", sorted(CORRUPTIONS))
def test_every_kind_of_damage_is_named_on_read_and_on_write(tmp_path, kind_of_damage):
    st, bad = _store_with_damage(tmp_path, kind_of_damage)
    with pytest.raises(DamagedFile) as e:
        st.read("f1", "meter")
    assert str(bad) in str(e.value) and "\n" not in str(e.value)
    if kind_of_damage != "flipped-bytes":  # (a write reads the value columns only; the bits may be elsewhere)
        with pytest.raises(DamagedFile):   # a write that compares with what is stored
            st.append(to_table(rows(3, start=T0 + 5 * MIN)), check_existing=True)
    with pytest.raises(DamagedFile):
        st.compact()
    if kind_of_damage != "flipped-bytes":
        with pytest.raises(DamagedFile):
            list(st.iter_sorted("f1", "meter", None, None, ["energy_kwh"]))
    assert bad.exists()                     # a command never moves anything by itself
    assert st.check_file(bad) is not None


@pytest.mark.parametrize("kind_of_damage", ["random-2k", "truncated", "foreign-schema"])
def test_the_collectors_store_moves_the_file_aside_and_carries_on(tmp_path, kind_of_damage):
    st, bad = _store_with_damage(tmp_path, kind_of_damage, on_damaged="move_aside")
    res = st.append(to_table(rows(12)), check_existing=True)     # merge-on-write finds it
    assert (res.written, res.duplicates) == (2, 10)
    assert not bad.exists()
    moved = tmp_path / "damaged" / bad.relative_to(tmp_path)
    assert moved.exists()
    reason = moved.with_name(moved.name + ".reason.txt").read_text()
    assert "reason: " in reason and "from: readings/facility=f1" in reason
    assert st.damaged_total == 1 and st.damaged[0]["path"].endswith(bad.name)
    assert st.read("f1", "meter").num_rows == 12
    assert st.compact() == 1
    assert open_store(tmp_path).damaged_files() == [moved]


def test_flipped_bits_are_caught_by_page_checksums_when_compacting(tmp_path):
    st, bad = _store_with_damage(tmp_path, "flipped-bytes", on_damaged="move_aside")
    st.append(to_table(rows(12)), check_existing=False)
    assert st.compact() == 1 and not bad.exists() and st.damaged_total == 1
    assert st.read("f1", "meter").column("energy_kwh").to_pylist() == [float(i) for i in range(12)]


def test_check_file_accepts_good_files(tmp_path):
    st = open_store(tmp_path)
    st.append(to_table(rows(10)))
    assert [st.check_file(f) for f in st.files()] == [None]


def _dcmon(*args, cwd=REPO):
    return subprocess.run([sys.executable, "-m", "dcmon.cli", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=120)


def test_dcmon_check_lists_then_repairs(tmp_path):
    st, bad = _store_with_damage(tmp_path, "random-2k")
    r = _dcmon("check", "--data", str(tmp_path))
    assert r.returncode == 3, r.stderr
    assert str(bad) in r.stdout and "1 damaged" in r.stdout
    r = _dcmon("check", "--data", str(tmp_path), "--repair")
    assert r.returncode == 0, r.stderr
    assert "moved aside" in r.stdout and not bad.exists()
    r = _dcmon("check", "--data", str(tmp_path))
    assert r.returncode == 0 and "0 damaged" in r.stdout and "1 file(s) set aside earlier" in r.stdout


def test_dcmon_compact_names_the_file_in_one_line(tmp_path):
    _, bad = _store_with_damage(tmp_path, "truncated")
    r = _dcmon("compact", "--data", str(tmp_path), "--config", str(REPO / "fixtures"))
    assert r.returncode == 2
    assert "Traceback" not in r.stderr and str(bad) in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr


@pytest.fixture(scope="module")
def damaged_fixture_store(registry, tmp_path_factory):
    """A week of one fixture facility with a damaged file in one day's meter partition."""
    import datetime as dt

    from dcmon.fixtures.generate import generate
    data = tmp_path_factory.mktemp("damaged-store")
    fac = registry.facilities["cd-east-01"]
    st = open_store(data)
    st.append(generate(fac, dt.date(2026, 7, 6), dt.date(2026, 7, 12), include_racks=False, seed=1).table,
              check_existing=False)
    part = st.files(fac.id, "meter")[0].parent
    bad = part / "part-00000000000000000001-000000000bad.parquet"
    bad.write_bytes(os.urandom(2048))
    return data, bad


@pytest.mark.parametrize("command", [
    ["evaluate", "--from", "2026-07-06", "--to", "2026-07-12", "--facility", "cd-east-01"],
    ["export", "--quarter", "2026Q3", "--format", "json", "--all", "--out", "{out}/list.json"],
    ["evidence", "--facility", "cd-east-01", "--from", "2026-07-06", "--to", "2026-07-12", "--lang", "en",
     "--out", "{out}/report.html"],
    ["compact"],
])
def test_commands_name_the_damaged_file_in_one_line(damaged_fixture_store, tmp_path, command):
    data, bad = damaged_fixture_store
    args = [a.replace("{out}", str(tmp_path)) for a in command]
    r = _dcmon(*args, "--config", str(REPO / "fixtures"), "--data", str(data))
    assert r.returncode == 2, r.stderr[-2000:]
    lines = [line for line in r.stderr.splitlines() if "error" in line]
    assert "Traceback" not in r.stderr and len(lines) == 1, r.stderr[-2000:]
    assert f"dcmon {command[0]}: error: damaged store file {bad}" in lines[0] and "dcmon check --repair" in lines[0]
    assert bad.exists()


def test_dcmon_check_checks_rollups_and_compares_them_with_the_raw_scan(tmp_path):
    """A damaged daily rollup file is named, then moved aside and made again; with a period the
    rollups' figures are compared with a scan of every reading."""
    from dcmon.fixtures.generate import generate
    from dcmon.registry import load_registry
    reg = load_registry(REPO / "fixtures")
    fac = reg.get("cd-east-01")
    st = open_store(tmp_path)
    import datetime as dt
    st.append(generate(fac, dt.date(2026, 7, 6), dt.date(2026, 7, 8), seed=3).table, check_existing=False)
    r = _dcmon("check", "--data", str(tmp_path), "--config", str(REPO / "fixtures"), "--facility", fac.id,
               "--from", "2026-07-06", "--to", "2026-07-08")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "1 facilities: identical" in r.stdout
    r = _dcmon("check", "--data", str(tmp_path), "--facility", fac.id)   # the comparison made them
    assert r.returncode == 0 and "checked 1 daily rollup file(s): 0 damaged" in r.stdout
    (rollup,) = st.rollup_files(fac.id)
    rollup.write_bytes(rollup.read_bytes()[:-40] + b"x" * 40)
    r = _dcmon("check", "--data", str(tmp_path), "--facility", fac.id)
    assert r.returncode == 3 and f"{rollup}: " in r.stdout and "1 damaged" in r.stdout
    r = _dcmon("check", "--data", str(tmp_path), "--facility", fac.id, "--repair")
    assert r.returncode == 0 and "made again from the readings" in r.stdout
    assert st.check_rollup_file(rollup) is None
