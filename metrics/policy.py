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
from pydantic import ValidationError

from dcmon.config.errors import Problems, add_validation_errors
from dcmon.config.policy import OPERATORS, ProfileDoc, profile_unknown, profile_where
from dcmon.config.yamlfile import load_yaml, yaml_error_where
from dcmon.errors import ConfigError
from dcmon.metrics.exact import OPS, decide, to_fraction
from dcmon.terms import status_of

OP_WORDS = {"<": "below", "<=": "at most", ">": "above", ">=": "at least"}
DEFAULT_MIN_COVERAGE = 0.95
assert tuple(OPS) == OPERATORS


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


def _parse_profile(path: Path, errors: list[str]) -> Profile | None:
    """One profile file, checked by ``config.policy.ProfileDoc``; what is wrong goes to ``errors``."""
    try:
        doc = load_yaml(path)
    except yaml.YAMLError as e:
        errors.append(f"{yaml_error_where(path, e)}: not valid YAML: {getattr(e, 'problem', e)}")
        return None
    if not isinstance(doc, dict):
        errors.append(f"{path}: a policy profile must be a mapping")
        return None
    try:
        p = ProfileDoc.model_validate(doc, context={"stem": path.stem})
    except ValidationError as e:
        mine = Problems()
        add_validation_errors(e, mine, where=profile_where, unknown=profile_unknown)
        errors.append(f"invalid policy profile {path}:\n  " + "\n  ".join(mine.items))
        return None
    checks = [Check(metric=c.metric, op=c.op, threshold=c.threshold, clause=c.clause, when=c.when, flag=c.flag)
              for c in p.checks]
    # subsidy, grades and portfolio checks as written (the amounts print exactly as the policy gives them)
    return Profile(id=p.id, title=p.title or {"en": p.id, "zh": p.id}, source=p.source,
                   cities=[c.lower() for c in p.cities], kinds=p.kinds, checks=checks, when=p.when,
                   subsidy=doc.get("subsidy"), grades=doc.get("grades") or [],
                   portfolio_checks=doc.get("portfolio_checks") or [], new_site_since=p.new_site_since,
                   path=path, raw=doc)


def load_profiles(config_dir=None) -> dict[str, Profile]:
    """Built-in profiles, overridden or extended by ``<config_dir>/policies/*.yaml``."""
    paths = {p.stem: p for p in sorted(_builtin_dir().glob("*.yaml"))}
    if config_dir is not None:
        user = Path(config_dir) / "policies"
        if user.is_dir():
            paths.update({p.stem: p for p in sorted(user.glob("*.yaml"))})
    errors: list[str] = []
    profiles = {pid: _parse_profile(p, errors) for pid, p in sorted(paths.items())}
    if errors:
        raise ConfigError("\n".join(errors))
    return profiles


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
    return passed, margin, status_of(passed)


def grade(pue_value: float | None, grades: list[dict]) -> int | None:
    """Efficiency grade (1 best) for a PUE under ``grades``; None if none is met or PUE missing."""
    if pue_value is None:
        return None
    for g in sorted(grades, key=lambda g: g["grade"]):
        if decide(pue_value, g["op"], g["threshold"]):
            return int(g["grade"])
    return None
