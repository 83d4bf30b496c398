"""The import rules of docs/architecture.md, read from the code's own imports.

Every ``import``/``from … import`` in the product's modules counts, including those inside
functions: a lazy import is still a dependency. The folders install as ``dcmon.<folder>``, so the
module names are built from ``pyproject.toml``'s package-dir map, the same way setuptools does.
"""
from __future__ import annotations

import ast
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Layers from the bottom up; a module belongs to the first layer whose prefix it starts with.
ENTRY = ("dcmon.cli",)
PRESENTATION = ("dcmon.reports", "dcmon.dashboard", "dcmon.monitoring")
METRICS = ("dcmon.metrics",)
COLLECTOR = ("dcmon.collector",)
STORE = ("dcmon.store",)
# What metrics may take from the store: the interface, never a backend.
STORE_INTERFACE = ("dcmon.store.base",)


def _package_dirs() -> dict[str, Path]:
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    return {pkg: ROOT / d for pkg, d in cfg["tool"]["setuptools"]["package-dir"].items()}


def _modules() -> dict[str, Path]:
    """Module name → file, for every .py file of every installed package (sub-packages included)."""
    mods: dict[str, Path] = {}
    for pkg, d in _package_dirs().items():
        for f in sorted(d.rglob("*.py")):
            rel = f.relative_to(d).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            name = ".".join([pkg, *parts])
            # a top-level folder listed on its own wins over the same file seen from dcmon/
            mods.setdefault(name, f)
    return mods


def _resolve(name: str, mods: dict[str, Path]) -> str | None:
    """The product module an imported name lands in (longest known prefix), or None."""
    while name:
        if name in mods:
            return name
        name = name.rpartition(".")[0]
    return None


def _imports(module: str, path: Path, mods: dict[str, Path]) -> dict[str, int]:
    """Product modules imported by ``module`` → the first line that imports each."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_pkg = path.name == "__init__.py"
    out: dict[str, int] = {}

    def add(target: str | None, line: int):
        if target and target != module:
            out.setdefault(target, line)

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                add(_resolve(a.name, mods), node.lineno)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".") if is_pkg else module.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                src = ".".join(base + ([node.module] if node.module else []))
            else:
                src = node.module or ""
            if not src.startswith("dcmon"):
                continue
            # "from pkg import sub" imports the sub-module when it is one
            for a in node.names:
                sub = f"{src}.{a.name}"
                add(sub if sub in mods else _resolve(src, mods), node.lineno)
    return out


def _layer(module: str) -> str:
    for name, prefixes in (("entry", ENTRY), ("presentation", PRESENTATION), ("metrics", METRICS),
                           ("collector", COLLECTOR), ("store", STORE)):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return name
    return "foundation"


MODS = _modules()
GRAPH = {m: _imports(m, p, MODS) for m, p in MODS.items()}

FORBIDDEN = {
    # layer → layers it must not import
    "foundation": {"store", "collector", "metrics", "presentation", "entry"},
    "store": {"collector", "metrics", "presentation", "entry"},
    "collector": {"metrics", "presentation", "entry"},
    "metrics": {"collector", "presentation", "entry"},
    "presentation": {"collector", "entry"},
    "entry": set(),
}


def _where(m: str, target: str) -> str:
    return f"{MODS[m].relative_to(ROOT)}:{GRAPH[m][target]} imports {target}"


def test_the_modules_are_found():
    # guards the test itself: a wrong package map would make every rule pass vacuously
    for m in ("dcmon.cli", "dcmon.store.base", "dcmon.collector.ingest", "dcmon.metrics.energy",
              "dcmon.dashboard.app", "dcmon.reports.evidence", "dcmon.registry"):
        assert m in MODS, m
    assert any(GRAPH[m] for m in MODS)


def test_each_layer_imports_only_what_is_below_it():
    bad = [_where(m, t) for m, deps in GRAPH.items() for t in deps
           if _layer(t) in FORBIDDEN[_layer(m)]]
    assert not bad, "imports against the layer rules:\n" + "\n".join(sorted(bad))


def test_metrics_uses_the_store_interface_only():
    bad = [_where(m, t) for m, deps in GRAPH.items() if _layer(m) == "metrics"
           for t in deps if _layer(t) == "store" and t not in STORE_INTERFACE]
    assert not bad, "metrics must use only the Store interface:\n" + "\n".join(sorted(bad))


def test_no_import_cycles():
    # Tarjan's strongly connected components; any component of two or more modules is a cycle.
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    counter = [0]

    def visit(v: str):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in GRAPH[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in sorted(GRAPH):
        if v not in index:
            visit(v)
    assert not cycles, "import cycles:\n" + "\n".join(" ↔ ".join(c) for c in cycles)


@pytest.mark.parametrize("rule", sorted(FORBIDDEN))
def test_rules_are_checked_on_real_modules(rule):
    # every layer the rules speak of exists, so a rename cannot empty a rule
    assert any(_layer(m) == rule for m in MODS), rule
