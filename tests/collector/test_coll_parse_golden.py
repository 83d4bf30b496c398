"""Golden parser cases: every folder under fixtures/payloads is one case (see its README.md)."""
import csv
from pathlib import Path

import pandas as pd
import pytest

from dcmon.collector.jumpguard import JumpGuard
from dcmon.collector.parsers import parse
from dcmon.config.mappings import load_mappings
from dcmon.config.yamlfile import load_yaml

CASES = Path(__file__).resolve().parents[2] / "fixtures" / "payloads"
RECEIVED_MS = int(pd.Timestamp("2026-07-01T00:10:00Z").value // 10**6)
COLUMNS = ["facility_id", "kind", "source_id", "ts", "energy_kwh", "power_kw", "status", "function", "design_power_kw"]


def _cases():
    return sorted(p.name for p in CASES.iterdir() if (p / "topic.txt").is_file())


def _norm(v):
    if v is None or v == "" or (isinstance(v, float) and v != v):
        return None
    return v


def _expected_rows(path):
    out = []
    with open(path, newline="") as fh:
        for r in csv.DictReader(fh):
            row = {k: _norm(r[k]) for k in COLUMNS}
            row["ts"] = int(pd.Timestamp(row["ts"]).value // 10**6)
            for k in ("energy_kwh", "power_kw", "design_power_kw"):
                if row[k] is not None:
                    row[k] = float(row[k])
            out.append(row)
    return out


def test_there_are_golden_cases():
    assert len(_cases()) >= 20


@pytest.mark.parametrize("case", _cases())
def test_golden_case(case, registry):
    d = CASES / case
    topic = (d / "topic.txt").read_text().strip()
    payload = (d / "payload").read_bytes()
    mappings = []
    if (d / "mapping.yaml").is_file():
        mappings = load_mappings(load_yaml(d / "mapping.yaml"), where=case)
    rows, rejections = parse(topic, payload, registry, received_at_ms=RECEIVED_MS, mappings=mappings,
                             guard=JumpGuard())
    got = [{k: _norm(r.get(k)) for k in COLUMNS} for r in rows]
    assert got == _expected_rows(d / "expected.csv")
    for r in rows:
        assert r["received_at"] == RECEIVED_MS and r["origin"] == "mqtt"
    expected_rej = []
    if (d / "rejected.csv").is_file():
        with open(d / "rejected.csv", newline="") as fh:
            expected_rej = list(csv.DictReader(fh))
    assert len(rejections) == len(expected_rej), [(x.where, x.reason) for x in rejections]
    for got_rej, exp in zip(rejections, expected_rej):
        assert got_rej.where == exp["where"]
        assert exp["reason_contains"] in got_rej.reason, got_rej.reason
        assert got_rej.raw, "a rejection keeps the raw reading or payload"
