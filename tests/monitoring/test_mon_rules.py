"""The shipped alert rules: valid for promtool, unit-tested (deploy/prometheus/dcmon-rules.test.yml),
and each alert documented in Chinese and English with a runbook line."""
from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest
import yaml

from mon_helpers import PROMTOOL, REPO, RULES_DIR, needs_promtool

RULES = RULES_DIR / "dcmon-rules.yml"
ANNOTATIONS = {"summary", "summary_zh", "summary_en", "description_zh", "description_en", "runbook"}
# what the issue asks for, by alert name
EXPECTED = {"DcmonMeterSilent", "DcmonPueAboveLimit", "DcmonQuarterCoverageProjectedLow",
            "DcmonQuarterCoverageUnreachable", "DcmonCollectorDown", "DcmonCollectorDisconnected",
            "DcmonCollectorLagging", "DcmonStoreWriteFailing", "DcmonQuarantineSpike", "DcmonStoreDamagedFiles"}


def _rules():
    return [r for g in yaml.safe_load(RULES.read_text(encoding="utf-8"))["groups"] for r in g["rules"]]


def _run(*args):
    return subprocess.run([PROMTOOL, *args], capture_output=True, text=True, timeout=120, cwd=RULES_DIR)


@needs_promtool
def test_promtool_check_rules():
    p = _run("check", "rules", str(RULES))
    assert p.returncode == 0, p.stdout + p.stderr
    assert f"SUCCESS: {len(_rules())} rules found" in p.stdout


@needs_promtool
def test_promtool_check_example_config():
    p = _run("check", "config", str(RULES_DIR / "prometheus.yml"))
    assert p.returncode == 0, p.stdout + p.stderr


@needs_promtool
def test_promtool_unit_tests_pass():
    p = _run("test", "rules", "dcmon-rules.test.yml")
    assert p.returncode == 0, p.stdout + p.stderr
    assert "SUCCESS" in p.stdout


@pytest.mark.skipif(shutil.which("amtool") is None, reason="amtool is not installed (Debian prometheus-alertmanager)")
def test_alertmanager_example_is_valid():
    p = subprocess.run(["amtool", "check-config", "alertmanager.example.yml"], capture_output=True, text=True,
                       timeout=60, cwd=RULES_DIR)
    assert p.returncode == 0, p.stdout + p.stderr


def test_every_alert_is_tested_firing_and_not_firing():
    tests = yaml.safe_load((RULES_DIR / "dcmon-rules.test.yml").read_text(encoding="utf-8"))["tests"]
    fires, quiet = set(), set()
    for t in tests:
        for case in t.get("alert_rule_test", []):
            (fires if case.get("exp_alerts") else quiet).add(case["alertname"])
    names = {r["alert"] for r in _rules()}
    assert names == EXPECTED
    assert fires == names and quiet == names


def test_every_alert_has_severity_and_bilingual_annotations():
    for r in _rules():
        assert r["labels"]["severity"] in ("critical", "warning"), r["alert"]
        assert set(r["annotations"]) == ANNOTATIONS, r["alert"]
        assert any("\u4e00" <= ch <= "\u9fff" for ch in r["annotations"]["summary_zh"]), r["alert"]
        assert any("\u4e00" <= ch <= "\u9fff" for ch in r["annotations"]["description_zh"]), r["alert"]


def grafana_exprs() -> list[str]:
    dash = json.loads((REPO / "deploy" / "grafana" / "dcmon.json").read_text(encoding="utf-8"))
    return [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]


def _published() -> set[str]:
    src = (REPO / "dcmon" / "monitoring.py").read_text(encoding="utf-8")
    names = set(re.findall(r'"(dcmon_[a-z0-9_]+)"', src))
    return names | {n + "_total" for n in names} | {n + s for n in names for s in ("_sum", "_count")}


def test_rules_and_grafana_query_only_published_metrics():
    """Every dcmon_* name the rules and the Grafana dashboard query is one the endpoint publishes
    (counters with _total, summaries with _sum/_count), so neither drifts from the exporter."""
    for exprs in ([r["expr"] for r in _rules()], grafana_exprs()):
        used = {m for e in exprs for m in re.findall(r"\b(dcmon_[a-z0-9_]+)", e)}
        assert used and used <= _published(), used - _published()
