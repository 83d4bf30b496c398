"""Schema of a policy profile (``config/policies/*.yaml``, or ``<config>/policies/*.yaml``).

Thresholds are data: each check names a metric, the operator the policy text uses and the
threshold, and cites its clause. ``metrics.policy`` evaluates a valid profile.
"""
from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from dcmon.config.errors import FIELD, dotted, fail, fail_many
from dcmon.config.facility import KINDS
from dcmon.config.fields import iso_date, positive_number, text

OPERATORS = ("<", "<=", ">", ">=")
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
PORTFOLIO_SCOPES = ("city", "cluster_start_area")
PORTFOLIO_METRICS = ("pue", "occupancy_rate")


def _op(value):
    if value not in OPERATORS:
        raise fail(f"op {value!r} is not one of < <= > >=")
    return value


def _threshold(value):
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise fail(f"threshold must be a number: {value!r}")
    return value


def _when(value):
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise fail(f"when must be a mapping of conditions ({', '.join(sorted(WHEN_KEYS))}): {value!r}")
    bad = set(value) - WHEN_KEYS
    if bad:
        raise fail(f"unknown condition(s) {', '.join(sorted(bad))}")
    return value


Op = Annotated[str, BeforeValidator(_op), Field(default=None, validate_default=True)]
Threshold = Annotated[float, BeforeValidator(_threshold), Field(default=None, validate_default=True)]
When = Annotated[dict, BeforeValidator(_when)]
Date = Annotated[dt.date | None, BeforeValidator(iso_date)]


class _Doc(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CheckDoc(_Doc):
    metric: str = Field(default=None, validate_default=True)
    op: Op
    threshold: Threshold
    clause: str = Field(default=None, validate_default=True)   # the source text the threshold cites
    when: When = Field(default_factory=dict)
    flag: str | None = None        # report-only: raises this flag when the check fails

    @model_validator(mode="before")
    @classmethod
    def _shape(cls, v):
        if not isinstance(v, dict):
            raise fail("must be a mapping")
        return v

    @field_validator("metric", mode="before")
    @classmethod
    def _metric(cls, v):
        if v not in METRICS:
            raise fail(f"metric {v!r} is not one of {', '.join(METRICS)}")
        return v

    @field_validator("clause", mode="before")
    @classmethod
    def _clause(cls, v):
        if not v:
            raise fail("clause is required (cite the source text)")
        return str(v)


class PortfolioCheckDoc(CheckDoc):
    """A check on a city's or the cluster start area's aggregate (energy-weighted PUE, occupancy)."""

    scope: str = Field(default=None, validate_default=True)

    @field_validator("scope", mode="before")
    @classmethod
    def _scope(cls, v):
        if v not in PORTFOLIO_SCOPES:
            raise fail(f"scope {v!r} is not one of {', '.join(PORTFOLIO_SCOPES)}")
        return v

    @field_validator("metric", mode="before")
    @classmethod
    def _metric(cls, v):
        if v not in PORTFOLIO_METRICS:
            raise fail(f"metric {v!r} is not one of {', '.join(PORTFOLIO_METRICS)}")
        return v


class GradeDoc(_Doc):
    """An efficiency grade (1 best): met when ``PUE op threshold``."""

    grade: int = Field(default=None, validate_default=True)
    op: Op
    threshold: Threshold

    @field_validator("grade", mode="before")
    @classmethod
    def _grade(cls, v):
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise fail(f"grade must be a whole number ≥ 1: {v!r}")
        return v


def _unique_grades(grades: list[GradeDoc]) -> list[GradeDoc]:
    seen, dups = set(), []
    for i, g in enumerate(grades):
        if g.grade in seen:
            dups.append(((i,), f"grade {g.grade} is given twice"))
        seen.add(g.grade)
    if dups:
        raise fail_many(dups)
    return grades


class InForceDoc(BaseModel):
    """The days the measure is in force, both included."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    from_: Date = Field(default=None, alias="from", validate_default=True)
    to: Date = Field(default=None, validate_default=True)

    @field_validator("from_", "to", mode="before")
    @classmethod
    def _required(cls, v, info):
        if v is None:   # a default is validated under the field's own name: say the key as written
            raise fail(f"in_force.{info.field_name.rstrip('_')} is required (a date YYYY-MM-DD)")
        return v

    @model_validator(mode="after")
    def _order(self):
        if self.to < self.from_:
            raise fail(f"in_force ends before it starts: from {self.from_} to {self.to}")
        return self


class ApplicationWindowDoc(_Doc):
    """The project-completion dates an application may have (both included), with the clause."""

    completion_from: Date = Field(default=None, validate_default=True)
    completion_to: Date = Field(default=None, validate_default=True)
    clause: str = ""

    @field_validator("completion_from", "completion_to", mode="before")
    @classmethod
    def _required(cls, v):
        if v is None:
            raise fail(f"{FIELD} is required (a date YYYY-MM-DD)")
        return v

    @model_validator(mode="after")
    def _order(self):
        if self.completion_to < self.completion_from:
            raise fail(f"application_window ends before it starts: completion_from {self.completion_from} "
                       f"to completion_to {self.completion_to}")
        return self


class SubsidyDoc(_Doc):
    basis: str = "in_use_physical_racks"
    cost_share: float | None = None          # share of the retrofit cost per rack [-]
    per_rack_max_cny: Any = Field(default=None, validate_default=True)
    total_max_cny: Any = Field(default=None, validate_default=True)
    always_upper_bound: bool = False
    clause: str = ""

    @field_validator("basis", mode="before")
    @classmethod
    def _basis(cls, v):
        if v != "in_use_physical_racks":
            raise fail(f"subsidy.basis {v!r} is not in_use_physical_racks")
        return v

    @field_validator("per_rack_max_cny", "total_max_cny", mode="before")
    @classmethod
    def _cap(cls, v, info):
        if not isinstance(v, (int, float)) or isinstance(v, bool) or not v > 0:
            raise fail(f"subsidy.{info.field_name} must be a positive number: {v!r}")
        return v

    @field_validator("cost_share", mode="before")
    @classmethod
    def _share(cls, v):
        if v is not None and (isinstance(v, bool) or positive_number(v, "subsidy.cost_share") > 1):
            raise fail(f"subsidy.cost_share must be a fraction in (0, 1]: {v!r}")
        return v

    @field_validator("always_upper_bound", mode="before")
    @classmethod
    def _flag(cls, v):
        if not isinstance(v, bool):
            raise fail(f"subsidy.always_upper_bound must be true or false: {v!r}")
        return v


def _list(value):
    if value is None:
        return []
    if not isinstance(value, list):
        raise fail(f"{FIELD} must be a list: {value!r}")
    return value


def _names(value):
    value = _list(value) or ["*"]
    return [str(x) for x in value]


class ProfileDoc(_Doc):
    """A policy profile. Validate with ``context={"stem": <file name without suffix>}``."""

    id: str = Field(default=None, validate_default=True)
    title: dict[str, str] | None = None           # {zh, en}
    source: str = ""                              # the documents the profile rests on
    cities: Annotated[list[str], BeforeValidator(_names)] = Field(default_factory=lambda: ["*"])
    kinds: Annotated[list[str], BeforeValidator(_names)] = Field(default_factory=lambda: ["*"])
    when: When = Field(default_factory=dict)      # conditions for the whole profile
    checks: Annotated[list[CheckDoc], BeforeValidator(_list)] = Field(default_factory=list)
    portfolio_checks: Annotated[list[PortfolioCheckDoc], BeforeValidator(_list)] = Field(default_factory=list)
    subsidy: SubsidyDoc | None = None
    grades: Annotated[list[GradeDoc], BeforeValidator(_list)] = Field(default_factory=list)
    in_force: InForceDoc | None = None
    application_window: ApplicationWindowDoc | None = None
    new_site_since: Date = None                   # "new" sites: commissioned on or after this date
    min_coverage: float | None = None             # data coverage a check needs to decide [-]

    @field_validator("id", mode="before")
    @classmethod
    def _id(cls, v, info):
        stem = (info.context or {}).get("stem")
        if not v or (stem is not None and v != stem):
            raise fail(f"id {v!r} must be present and match the file name {stem!r}")
        return v

    @field_validator("kinds", mode="after")
    @classmethod
    def _kinds(cls, v):
        bad = [k for k in v if k != "*" and k not in KINDS]
        if bad:
            raise fail(f"kinds: {', '.join(map(repr, bad))} not one of {', '.join(KINDS)} or '*'")
        return v

    @field_validator("grades", mode="after")
    @classmethod
    def _grades(cls, v):
        return _unique_grades(v)

    @field_validator("min_coverage", mode="before")
    @classmethod
    def _coverage(cls, v):
        if v is not None and (not isinstance(v, (int, float)) or isinstance(v, bool) or not 0 <= v <= 1):
            raise fail(f"min_coverage must be a fraction from 0 to 1: {v!r}")
        return v

    @field_validator("source", mode="before")
    @classmethod
    def _source(cls, v):
        return "" if v is None else text(v, "source")


def profile_where(loc: tuple) -> str | None:
    """Where an error is inside a profile: a list entry (``checks[0]``, ``grades[1]``), else the top."""
    return dotted(loc[:2]) if len(loc) >= 2 and isinstance(loc[1], int) else None


def profile_unknown(loc: tuple, keys: list[str]) -> str:
    prefix = f"{dotted(loc)}: " if loc and profile_where(loc) is None else ""
    return f"{prefix}unknown key(s) {', '.join(keys)}"
