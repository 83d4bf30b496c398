"""The dcmon command end to end on the fixtures: import, evaluate, bad input."""
import csv
import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.compute as pc
import pytest

REPO = Path(__file__).resolve().parents[1]
FIX = str(REPO / "fixtures")
DAYS = (dt.date(2026, 7, 6), dt.date(2026, 7, 8))


def dcmon(*args, check=True):
    env = dict(os.environ, PYTHONIOENCODING="utf-8")
    p = subprocess.run([sys.executable, "-m", "dcmon.cli", *args], capture_output=True, text=True, env=env, timeout=300)
    if check and p.returncode != 0:
        raise AssertionError(f"dcmon {' '.join(args)} exited {p.returncode}\n{p.stdout}\n{p.stderr}")
    return p


@pytest.fixture(scope="module")
def csv_file(registry, tmp_path_factory):
    """Three days of cd-east-01 meter readings as a building-management export, plus bad rows."""
    from dcmon.fixtures.generate import generate
    g = generate(registry.get("cd-east-01"), *DAYS, include_racks=False, seed=5)
    t = g.table
    path = tmp_path_factory.mktemp("imp") / "bms-export.csv"
    ts = pc.cast(t.column("ts"), "int64").to_pylist()
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["ts", "facility_id", "kind", "id", "energy_kwh", "power_kw"])
        for i, (f, k, s, e, p) in enumerate(zip(t.column("facility_id").to_pylist(), t.column("kind").to_pylist(),
                                                   t.column("source_id").to_pylist(), t.column("energy_kwh").to_pylist(),
                                                   t.column("power_kw").to_pylist())):
            # half the rows as ISO 8601 with +08:00, half as epoch milliseconds
            stamp = ts[i] if i % 2 else dt.datetime.fromtimestamp(ts[i] / 1000, dt.timezone(dt.timedelta(hours=8))).isoformat()
            w.writerow([stamp, f, k, s, "" if e is None else repr(e), "" if p is None else repr(p)])
        bad = [
            ["2026-07-07T08:00:00", "cd-east-01", "meter", "grid-a", "1", ""],           # no offset
            ["2026-07-07T08:00:00+08:00", "nowhere", "meter", "grid-a", "1", ""],        # unknown facility
            ["2026-07-07T08:00:00+08:00", "cd-east-01", "meter", "grid-z", "1", ""],     # unknown meter
            ["2026-07-07T08:00:00+08:00", "cd-east-01", "meter", "grid-a", "abc", ""],   # not a number
            ["2026-07-07T08:00:00+08:00", "cd-east-01", "meter", "grid-a", "-5", ""],    # negative
            ["2026-07-07T08:00:00+08:00", "cd-east-01", "meter", "grid-a", "nan", ""],   # NaN
            ["2099-07-07T08:00:00+08:00", "cd-east-01", "meter", "grid-a", "1", ""],     # future
            ["1783000000", "cd-east-01", "meter", "grid-a", "1", ""],                    # epoch seconds
            ["2026-07-07T08:00:00+08:00", "cd-east-01", "pdu", "grid-a", "1", ""],       # unknown kind
            ["2026-07-07T08:00:00+08:00", "cd-east-01", "meter", "grid-a", "", ""],      # no value
        ]
        w.writerows(bad)
    return path, g.truth, t.num_rows, len(bad)


def test_import_evaluate_and_reimport(csv_file, tmp_path):
    path, truth, n_good, n_bad = csv_file
    data = tmp_path / "data"
    p = dcmon("import", str(path), "--config", FIX, "--data", str(data), check=False)
    assert p.returncode == 3, p.stderr
    assert f"{n_good} stored" in p.stdout and f"{n_bad} rejected" in p.stdout
    rejects = list(csv.DictReader(open(str(path) + ".rejects.csv", encoding="utf-8")))
    assert len(rejects) == n_bad
    first_bad_line = n_good + 2
    assert [int(r["line"]) for r in rejects] == list(range(first_bad_line, first_bad_line + n_bad))
    reasons = [r["reason"] for r in rejects]
    for expected in ("without a UTC offset", "unknown facility 'nowhere'", "unknown meter 'grid-z'",
                     "energy_kwh is not a number: 'abc'", "energy_kwh is negative: '-5'", "energy_kwh is not finite",
                     "in the future", "outside 2000..2200", "unknown kind 'pdu'", "no value"):
        assert any(expected in r for r in reasons), (expected, reasons)

    out = dcmon("evaluate", "--config", FIX, "--data", str(data), "--facility", "cd-east-01",
                "--from", DAYS[0].isoformat(), "--to", DAYS[1].isoformat(), "--format", "json")
    res = json.loads(out.stdout)
    f = res["facilities"][0]
    assert f["facility_energy_kwh"] == pytest.approx(truth.facility_energy_kwh, rel=1e-12)
    assert f["it_energy_kwh"] == pytest.approx(truth.it_energy_kwh, rel=1e-12)

    files_before = sorted(p.name for p in data.rglob("*.parquet"))
    again = dcmon("import", str(path), "--config", FIX, "--data", str(data), check=False)
    assert f"0 stored, {n_good} already stored" in again.stdout
    assert sorted(p.name for p in data.rglob("*.parquet")) == files_before
    res2 = json.loads(dcmon("evaluate", "--config", FIX, "--data", str(data), "--facility", "cd-east-01",
                            "--from", DAYS[0].isoformat(), "--to", DAYS[1].isoformat(), "--format", "json").stdout)
    assert res2["facilities"][0]["facility_energy_kwh"] == f["facility_energy_kwh"]


def test_evaluate_table_is_for_people(week_store):
    data, _, _ = week_store
    out = dcmon("evaluate", "--config", FIX, "--data", str(data), "--from", "2026-07-06", "--to", "2026-07-12").stdout
    assert "Period 2026-07-06 .. 2026-07-12 (7 days" in out
    assert "Readings: racks standard" in out and "compute share design_power" in out
    assert "cd-east-01" in out and "✔" in out and "✘" in out
    lines = [l for l in out.splitlines() if l.startswith("cd-boundary ")]
    assert lines and "1.250" in lines[0]


@pytest.mark.parametrize("args, message", [
    (["evaluate", "--quarter", "2026Q9"], "--quarter must look like 2026Q3"),
    (["evaluate", "--year", "2026", "--facility", "nope"], "unknown facility 'nope'"),
    (["evaluate", "--year", "2026", "--profile", "nope"], "unknown profile(s) nope"),
    (["evaluate", "--year", "2026", "--min-coverage", "2"], "minimum coverage must be between 0 and 1"),
    (["evaluate"], "give exactly one period"),
])
def test_bad_options_exit_nonzero_with_a_named_reason(week_store, args, message):
    data, _, _ = week_store
    p = dcmon(*args, "--config", FIX, "--data", str(data), check=False)
    assert p.returncode == 2
    assert message in p.stderr


def test_missing_store_and_config_are_named(tmp_path):
    p = dcmon("evaluate", "--year", "2026", "--config", FIX, "--data", str(tmp_path / "nothing"), check=False)
    assert p.returncode == 2 and "no store there" in p.stderr
    p = dcmon("evaluate", "--year", "2026", "--config", str(tmp_path), "--data", str(tmp_path), check=False)
    assert p.returncode == 2 and "no facilities/ folder" in p.stderr


def test_bad_import_header_changes_nothing(tmp_path, week_store):
    bad = tmp_path / "bad.csv"
    bad.write_text("time,facility,kind,id,energy_kwh\n1,2,3,4,5\n")
    data = tmp_path / "d"
    p = dcmon("import", str(bad), "--config", FIX, "--data", str(data), check=False)
    assert p.returncode == 2
    assert "bad.csv:1: header" in p.stderr and "missing column(s) ts, facility_id" in p.stderr
    assert not list(data.rglob("*.parquet"))


def test_every_subcommand_has_help():
    from dcmon.cli import build_parser
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for name in sub.choices:
        p = dcmon(name, "--help")
        assert "usage: dcmon" in p.stdout


def test_every_option_has_a_description():
    """--help explains every subcommand and option; no "(default )" with an empty default."""
    import argparse

    from dcmon.cli import build_parser
    missing = []

    def walk(parser, path):
        for a in parser._actions:
            if isinstance(a, argparse._SubParsersAction):
                helps = {c.dest: c.help for c in a._choices_actions}
                for name, sp in a.choices.items():
                    if not helps.get(name) or not sp.description:
                        missing.append(" ".join(path + [name]))
                    walk(sp, path + [name])
            elif not isinstance(a, argparse._HelpAction) and (not a.help or "(default )" in a.help):
                missing.append(" ".join(path + [a.option_strings[0] if a.option_strings else a.dest]))
    walk(build_parser(), ["dcmon"])
    assert not missing, missing


def _stored(data, registry):
    """Every stored reading, without the import's receive time and origin, in a fixed order."""
    import pyarrow as pa

    from dcmon.store import open_store
    store = open_store(data)
    parts = [store.read(fid) for fid in sorted(registry.facilities)]
    t = pa.concat_tables([p for p in parts if p.num_rows]).drop_columns(["received_at", "origin"])
    return t.sort_by([("facility_id", "ascending"), ("kind", "ascending"), ("source_id", "ascending"),
                      ("ts", "ascending")])


def test_parquet_import_equals_csv_import(csv_file, registry, tmp_path):
    """The same rows as CSV and as Parquet (text columns, as a BMS export would hold them) store the
    same readings and reject the same rows for the same reasons."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    path, _, n_good, n_bad = csv_file
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    header, body = rows[0], rows[1:]
    pq_path = tmp_path / "bms-export.parquet"
    pq.write_table(pa.table({h: [r[i] if r[i] != "" else None for r in body] for i, h in enumerate(header)}), pq_path)
    a, b = tmp_path / "a", tmp_path / "b"
    pc_ = dcmon("import", str(path), "--config", FIX, "--data", str(a), "--rejects", str(tmp_path / "a.rej"), check=False)
    pp = dcmon("import", str(pq_path), "--config", FIX, "--data", str(b), check=False)
    assert pc_.returncode == pp.returncode == 3, pp.stderr
    assert f"{n_good + n_bad} rows; {n_good} stored, 0 already stored, {n_bad} rejected" in pp.stdout
    assert _stored(a, registry).equals(_stored(b, registry))
    rej_csv = list(csv.DictReader(open(tmp_path / "a.rej", encoding="utf-8")))
    rej_pq = list(csv.DictReader(open(str(pq_path) + ".rejects.csv", encoding="utf-8")))
    import re
    ahead = re.compile(r"is \d+ s in the future")   # seconds ahead of the import's own clock
    assert [ahead.sub("…", r["reason"]) for r in rej_pq] == [ahead.sub("…", r["reason"]) for r in rej_csv]
    assert [int(r["row"]) for r in rej_pq] == [int(r["line"]) - 1 for r in rej_csv]   # the CSV's line 1 is its header
    again = dcmon("import", str(pq_path), "--config", FIX, "--data", str(b), check=False)
    assert f"0 stored, {n_good} already stored" in again.stdout


def test_generated_files_import_like_generating_into_the_store(registry, tmp_path):
    """dcmon generate --out FILE.csv / FILE.parquet, imported, equals dcmon generate --data (meters, and
    rack readings with status, function and design power for a rack-metered site)."""
    span = ["--from", "2026-07-06", "--to", "2026-07-07", "--facility", "cd-boundary", "--facility", "cd-racks-it"]
    direct = tmp_path / "direct"
    out = dcmon("generate", "--config", FIX, "--data", str(direct), *span).stdout
    assert "cd-boundary: " in out and "(target PUE 1.25)" in out
    stores = []
    for name in ("g.csv", "g.parquet"):
        f = tmp_path / name
        dcmon("generate", "--config", FIX, "--out", str(f), *span)
        d = tmp_path / (name + ".data")
        p = dcmon("import", str(f), "--config", FIX, "--data", str(d))
        assert " 0 rejected" in p.stdout
        stores.append(_stored(d, registry))
    want = _stored(direct, registry)
    assert stores[0].equals(stores[1])
    assert stores[1].equals(want)


@pytest.mark.parametrize("content, message", [
    (None, "not a readable Parquet file"),
    ("naive", "column ts is a timestamp without a time zone"),
    ("columns", "missing column(s) facility_id"),
])
def test_bad_parquet_is_named_and_changes_nothing(tmp_path, content, message):
    import pyarrow as pa
    import pyarrow.parquet as pq
    f = tmp_path / "x.parquet"
    if content is None:
        f.write_bytes(b"PAR1 not really")
    elif content == "naive":
        pq.write_table(pa.table({"ts": pa.array([0], pa.timestamp("ms")), "facility_id": ["cd-east-01"],
                                 "kind": ["meter"], "id": ["grid-a"], "energy_kwh": [1.0]}), f)
    else:
        pq.write_table(pa.table({"ts": [1], "kind": ["meter"], "id": ["grid-a"]}), f)
    data = tmp_path / "d"
    p = dcmon("import", str(f), "--config", FIX, "--data", str(data), check=False)
    assert p.returncode == 2 and message in p.stderr and "Traceback" not in p.stderr
    assert not list(data.rglob("*.parquet"))
