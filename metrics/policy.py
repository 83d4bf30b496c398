"""Policy profiles: thresholds as data (``config/policies/*.yaml``), evaluated exactly.

A check compares one figure with one threshold using the operator the policy text uses
(``<`` for 低于, ``<=`` for 不高于, ``>`` for 大于, ``>=`` for 不低于), exactly
(:func:`.exact.decide`: fractions, never floats). A check whose figure is missing, or whose
data coverage is below ``min_coverage``, is ``inconclusive`` — never passed.

A check with a ``flag`` is report-only: it raises the flag when it fails and never decides the
overall verdict. The overall verdict passes only when every applicable required check passes;
any failing required check fails it; otherwise (an inconclusive required check, or no
required check applicable) it is not a pass.

Margins are signed so that a positive margin is on the passing side: ``1.25 - PUE`` for
``PUE < 1.25``; ``racks - 1000`` for ``racks >= 1000``.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import yaml

from dcmon.errors import ConfigError
from dcmon.metrics.exact import OPS, decide, to_fraction
from dcmon.registry import load_yaml

OP_WORDS = {"<": "below", "<=": "at most", ">": "above", ">=": "at least"}
DEFAULT_MIN_COVERAGE = 0.95
# Metrics a check may name, their unit and whether their value depends on measured data.
METRICS = {
    "pue": ("-", True),
    "racks": ("racks", False),               # standard or physical, per the chosen basis
    "standard_racks": ("racks", False),
    "physical_racks": ("racks", False),
    "compute_share": ("-", False),           # True for the it_energy reading
    "occupancy_rate": ("-", False),
    "avg_design_power_per_rack_kw": ("kW", False),
    "annual_terminals_served": ("terminals", False),
}
WHEN_KEYS = {"cluster_start_area", "kind", "size_class", "new_site", "standard_racks_at_least"}


@dataclass
class Check:
    metric: str
    op: str
    threshold: float
    clause: str
    when: dict = field(default_factory=dict)
    flag: str | None = None


@dataclass
class Profile:
    id: str
    title: dict
    source: str
    cities: list[str]
    kinds: list[str]
    checks: list[Check]
    when: dict = field(default_factory=dict)
    subsidy: dict | None = None
    grades: list[dict] = field(default_factory=list)
    portfolio_checks: list[dict] = field(default_factory=list)
    new_site_since: dt.date | None = None
    path: Path | None = None
    raw: dict = field(default_factory=dict)

    def applies_to_city(self, city: str) -> bool:
        return "*" in self.cities or city in self.cities


def _builtin_dir() -> Path:
    return Path(str(resources.files("dcmon.config") / "policies"))


def _parse_profile(path: Path) -> Profile:
    try:
        doc = load_yaml(path)
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from None
    if not isinstance(doc, dict):
        raise ConfigError(f"{path}: a policy profile must be a mapping")
    errs = []
    pid = doc.get("id")
    if not pid or pid != path.stem:
        errs.append(f"id {pid!r} must be present and match the file name {path.stem!r}")
    checks = []
    for i, c in enumerate(doc.get("checks") or []):
        where = f"checks[{i}]"
        if not isinstance(c, dict):
            errs.append(f"{where}: must be a mapping")
            continue
        if c.get("metric") not in METRICS:
            errs.append(f"{where}: metric {c.get('metric')!r} is not one of {', '.join(METRICS)}")
        if c.get("op") not in OPS:
            errs.append(f"{where}: op {c.get('op')!r} is not one of < <= > >=")
        if not isinstance(c.get("threshold"), (int, float)) or isinstance(c.get("threshold"), bool):
            errs.append(f"{where}: threshold must be a number: {c.get('threshold')!r}")
        if not c.get("clause"):
            errs.append(f"{where}: clause is required (cite the source text)")
        bad_when = set(c.get("when") or {}) - WHEN_KEYS
        if bad_when:
            errs.append(f"{where}: unknown condition(s) {', '.join(sorted(bad_when))}")
        checks.append(Check(metric=c.get("metric"), op=c.get("op"), threshold=c.get("threshold"),
                            clause=c.get("clause", ""), when=c.get("when") or {}, flag=c.get("flag")))
    for i, c in enumerate(doc.get("portfolio_checks") or []):
        if c.get("scope") not in ("city", "cluster_start_area") or c.get("metric") not in ("pue", "occupancy_rate") \
                or c.get("op") not in OPS:
            errs.append(f"portfolio_checks[{i}]: needs scope city|cluster_start_area, metric pue|occupancy_rate, op")
    sub = doc.get("subsidy")
    if sub is not None:
        for k in ("per_rack_max_cny", "total_max_cny"):
            if not isinstance(sub.get(k), (int, float)) or sub.get(k) <= 0:
                errs.append(f"subsidy.{k} must be a positive number: {sub.get(k)!r}")
    if errs:
        raise ConfigError(f"invalid policy profile {path}:\n  " + "\n  ".join(errs))
    nss = doc.get("new_site_since")
    return Profile(id=pid, title=doc.get("title") or {"en": pid, "zh": pid}, source=doc.get("source", ""),
                   cities=[str(c).lower() for c in doc.get("cities") or ["*"]], kinds=doc.get("kinds") or ["*"],
                   checks=checks, when=doc.get("when") or {}, subsidy=sub, grades=doc.get("grades") or [],
                   portfolio_checks=doc.get("portfolio_checks") or [],
                   new_site_since=dt.date.fromisoformat(str(nss)) if nss else None, path=path, raw=doc)


def load_profiles(config_dir=None) -> dict[str, Profile]:
    """Built-in profiles, overridden or extended by ``<config_dir>/policies/*.yaml``."""
    paths = {p.stem: p for p in sorted(_builtin_dir().glob("*.yaml"))}
    if config_dir is not None:
        user = Path(config_dir) / "policies"
        if user.is_dir():
            paths.update({p.stem: p for p in sorted(user.glob("*.yaml"))})
    return {pid: _parse_profile(p) for pid, p in sorted(paths.items())}


def select_profiles(profiles: dict[str, Profile], names: list[str] | None, facility) -> list[Profile]:
    """The profiles named, or by default those of the facility's city and kind."""
    if names:
        unknown = [n for n in names if n not in profiles]
        if unknown:
            raise ConfigError(f"unknown profile(s) {', '.join(unknown)} (known: {', '.join(profiles)})")
        return [profiles[n] for n in names]
    return [p for p in profiles.values()
            if p.applies_to_city(facility.city) and ("*" in p.kinds or facility.kind in p.kinds)]


def condition_holds(when: dict, facts: dict) -> bool:
    """Whether a check's ``when`` conditions hold for a facility's facts."""
    for key, want in (when or {}).items():
        if key == "standard_racks_at_least":
            if not decide(facts.get("standard_racks") or 0, ">=", want):
                return False
            continue
        have = facts.get(key)
        if isinstance(want, list):
            if have not in want:
                return False
        elif have != want:
            return False
    return True


def compare(value: float | None, op: str, threshold: float, coverage: float | None,
            min_coverage: float = DEFAULT_MIN_COVERAGE) -> tuple[bool | None, float | None, str]:
    """``(passed, margin, status)``: status is pass, fail or inconclusive.

    ``value`` may be exact (a Fraction) or a float (taken at its shortest decimal); the
    decision is exact (:func:`.exact.decide`). The margin is a float for display.

    >>> compare(1.25, "<", 1.25, 1.0)
    (False, 0.0, 'fail')
    >>> compare(1000, ">=", 1000, 1.0)
    (True, 0.0, 'pass')
    """
    if op not in OPS:
        raise ValueError(f"op must be one of < <= > >=: {op!r}")
    v = to_fraction(value)
    if v is None:
        return None, None, "inconclusive"
    th = to_fraction(threshold)
    margin = float((th - v) if op in ("<", "<=") else (v - th))
    if coverage is None or coverage < min_coverage:
        return None, margin, "inconclusive"
    passed = decide(v, op, th)
    return passed, margin, "pass" if passed else "fail"


def grade(pue_value: float | None, grades: list[dict]) -> int | None:
    """Efficiency grade (1 best) for a PUE under ``grades``; None if none is met or PUE missing."""
    if pue_value is None:
        return None
    for g in sorted(grades, key=lambda g: g["grade"]):
        if decide(pue_value, g["op"], g["threshold"]):
            return int(g["grade"])
    return None
