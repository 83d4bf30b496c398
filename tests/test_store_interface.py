"""The ``Store`` interface is complete: other layers call only what it declares, and a backend that
implements only its abstract methods serves the metrics, the reports and the quarantine readers."""
import ast
import datetime as dt
from pathlib import Path

import pytest

from dcmon.metrics.evaluate import evaluate
from dcmon.periods import Period
from dcmon.readings import Rejection
from dcmon.reports.common import reading_digests
from dcmon.reports.evidence import render_html
from dcmon.store import open_store
from dcmon.store.base import Store

REPO = Path(__file__).resolve().parents[1]
# Every layer that holds a store; store/ itself is the one place that knows a backend.
LAYERS = ("collector", "metrics", "reports", "dashboard", "dcmon")
WEEK_PERIOD = Period(dt.date(2026, 7, 6), dt.date(2026, 7, 12))   # as in conftest.week_store


def _store_expr(node) -> bool:
    """``store``, ``self.store``, ``ld.store``, ``self.ingestor.store`` … (not the module ``dcmon.store``)."""
    if isinstance(node, ast.Name):
        return node.id == "store"
    if isinstance(node, ast.Attribute) and node.attr == "store":
        base = node.value
        while isinstance(base, ast.Attribute):
            base = base.value
        return not (isinstance(base, ast.Name) and base.id == "dcmon")
    return False


def _store_uses() -> dict[str, list[str]]:
    """Attribute name → places where code outside store/ reads it from a store."""
    uses: dict[str, list[str]] = {}
    for layer in LAYERS:
        for path in sorted((REPO / layer).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            for node in ast.walk(tree):
                name = None
                if isinstance(node, ast.Attribute) and _store_expr(node.value):
                    name = node.attr
                elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("getattr", "hasattr")
                      and len(node.args) >= 2 and _store_expr(node.args[0]) and isinstance(node.args[1], ast.Constant)):
                    name = node.args[1].value
                if name is not None:
                    uses.setdefault(name, []).append(f"{path.relative_to(REPO)}:{node.lineno}")
    return uses


def test_every_store_attribute_used_outside_the_store_is_declared_on_the_interface():
    uses = _store_uses()
    assert {"append", "read", "iter_sorted", "inventory_changes", "reading_digests", "rejected_counts",
            "quarantine_summary", "list_status"} <= set(uses)   # the scan sees the known calls
    undeclared = {name: where for name, where in uses.items() if not hasattr(Store, name)}
    assert undeclared == {}


def test_metrics_reports_and_dashboard_import_no_store_backend():
    """They hold a ``Store``; the quarantine, the inventory index and the Parquet files are the store's business."""
    bad = []
    for layer in ("metrics", "reports", "dashboard"):
        for path in sorted((REPO / layer).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                names = ([node.module or ""] if isinstance(node, ast.ImportFrom)
                         else [a.name for a in node.names] if isinstance(node, ast.Import) else [])
                for mod in names:
                    if mod.startswith(("dcmon.collector", "dcmon.store.")) and mod != "dcmon.store.base":
                        bad.append(f"{path.relative_to(REPO)}:{node.lineno} imports {mod}")
    assert bad == []


def _interface_only(readings: Store, quarantine: Store) -> Store:
    """A backend made of exactly the abstract methods of ``Store``: readings and status from one store,
    the quarantine from another. Anything else a caller reaches for is missing (AttributeError)."""
    def delegate(name):
        target = quarantine if name.startswith("quarantine_") else readings

        def method(self, *args, **kwargs):
            return getattr(target, name)(*args, **kwargs)
        method.__name__ = name
        return method
    cls = type("InterfaceOnlyStore", (Store,), {n: delegate(n) for n in Store.__abstractmethods__})
    assert not cls.__abstractmethods__
    return cls()


def test_a_backend_with_only_the_abstract_methods_evaluates_like_the_parquet_store(registry, week_store):
    _, parquet, _ = week_store
    store = _interface_only(parquet, parquet)
    ids = [f.id for f in registry.select(None)]
    assert evaluate(registry, store, WEEK_PERIOD, ids)["facilities"] == \
        evaluate(registry, parquet, WEEK_PERIOD, ids)["facilities"]
    # the interface's default digest (one read) equals the Parquet store's streaming one
    digests = reading_digests(store, registry, ids, WEEK_PERIOD)
    assert digests and digests == reading_digests(parquet, registry, ids, WEEK_PERIOD)
    assert {d["kind"] for d in digests} == {"meter", "rack", "rack-inventory"}


def test_quarantine_reads_through_the_interface(registry, week_store, tmp_path):
    _, parquet, _ = week_store
    store = _interface_only(parquet, open_store(tmp_path))
    in_week = int(dt.datetime(2026, 7, 7, 12, tzinfo=dt.timezone(dt.timedelta(hours=8))).timestamp() * 1000)
    writer = store.quarantine_writer("t")
    writer.write([("dcmon/v1/cd-east-01/meter/M1", in_week, Rejection("M1", "power_kw is negative: -4.0", "{}")),
                  ("dcmon/v1/cd-east-01/meter/M1", in_week + 1, Rejection("M1", "power_kw is negative: -1.0", "{}")),
                  ("dcmon/v1/cd-east-01/meter/M2", in_week + 2, Rejection("M2", "unknown meter 'M2'", "{}")),
                  ("dcmon/v1/cd-east-01/meter/M1", in_week - 7 * 86_400_000, Rejection("M1", "too early: x", "{}")),
                  ("dcmon/v1/cd-west-02/meter/M1", in_week, Rejection("M1", "malformed JSON: x", "{}"))])
    writer.close()
    assert [r["reason"] for r in store.quarantine_records(facility=None, topic="cd-west-02")] == ["malformed JSON: x"]
    first = next(iter(store.quarantine_records()))
    assert store.quarantine_record(first["id"])["reason"] == first["reason"]
    _, summary, _ = render_html(registry, store, "cd-east-01", WEEK_PERIOD, lang="en")
    assert summary["rejected"] == {"power_kw is negative": 2, "unknown meter 'M2'": 1}
    assert store.quarantine_prune(30, dry_run=True) == []
    with pytest.raises(AttributeError):
        store.root   # noqa: B018 - no layer may reach for the backend's folder
