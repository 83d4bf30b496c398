"""Schema of a facility file (``<config>/facilities/<id>.yaml``) and of its racks CSV.

The YAML is checked by :class:`FacilityDoc` (meters, retrofit, applicant block and all); the
racks CSV by :class:`RackRow`, applied column by column (a per-row model would be slow for
10 000-rack sites). ``dcmon.registry`` turns a valid document into a ``Facility``.
See ``config/facilities/example.yaml`` for an annotated facility.
"""
from __future__ import annotations

import datetime as dt
import re
import typing
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints, field_validator, \
    model_validator

from dcmon.config.errors import FIELD, Problems, dotted, fail, fail_many
from dcmon.config.fields import iana_zone, iso_date, positive_number, text, whole_seconds
from dcmon.readings import RACK_FUNCTIONS, RACK_STATUSES

if typing.TYPE_CHECKING:
    import pandas as pd

FACILITY_ID = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$")
SOURCE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")  # no '/', '+', '#': used in MQTT topics
KINDS = ("cloud", "supercomputing", "intelligent", "edge", "enterprise")
METER_ROLES = ("facility", "it", "cooling", "lighting", "power_loss", "other")
IT_ENERGY_FROM = ("meters", "racks")
NARRATIVE_SECTIONS = ("background", "main_content", "key_directions", "service_fields")

# Credit code (统一社会信用代码), GB 32100-2015: 17 characters + check character.
_CC_CHARS = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_CC_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)


def credit_code_check_char(first17: str) -> str:
    """Check character of a unified social credit code (GB 32100-2015, clause 5 and annex)."""
    total = 0
    for ch, w in zip(first17, _CC_WEIGHTS):
        idx = _CC_CHARS.find(ch)
        if idx < 0:
            raise ValueError(f"character {ch!r} is not allowed in a credit code")
        total += idx * w
    return _CC_CHARS[(31 - total % 31) % 31]


def credit_code_problem(code) -> str | None:
    """None if ``code`` is a valid 18-character unified social credit code, else why not."""
    if not isinstance(code, str) or len(code) != 18:
        return f"must be 18 characters, got {len(code) if isinstance(code, str) else type(code).__name__}"
    code = code.upper()
    bad = [c for c in code if c not in _CC_CHARS]
    if bad:
        return f"has characters outside GB 32100-2015's set (no I, O, Z, S, V): {''.join(bad)!r}"
    expected = credit_code_check_char(code[:17])
    if code[17] != expected:
        return f"check character is {code[17]!r}, expected {expected!r}"
    return None


# ------------------------------------------------------------------------------ field types
def _required(value):
    if value is None or value == "":
        raise fail(f"{FIELD} is required")
    return str(value)


def _optional_text(value):
    return text(value)


def _positive(value):
    return None if value is None else positive_number(value)


def _at_least_zero(value):
    return None if value is None else positive_number(value, allow_zero=True)


RequiredText = Annotated[str, BeforeValidator(_required), Field(default=None, validate_default=True)]
OptionalText = Annotated[str | None, BeforeValidator(_optional_text)]
Date = Annotated[dt.date | None, BeforeValidator(iso_date)]
Seconds = Annotated[int, BeforeValidator(whole_seconds)]


class _Doc(BaseModel):
    """Unknown keys are errors (a typo must not silently fall back to a default)."""

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)


def _mapping_or(message: str):
    """A before-validator refusing anything but a mapping with ``message`` (the value appended)."""
    def check(cls, value):
        if not isinstance(value, dict):
            raise fail(f"{message}: {value!r}")
        return value
    return model_validator(mode="before")(check)


# ------------------------------------------------------------------------------ meters
Positive = Annotated[float, Field(gt=0, allow_inf_nan=False)]


class MeterDoc(_Doc):
    """One entry of ``meters:``. Plain types and bounds (checked natively: 5 meters × 301 sites);
    :func:`meter_message` words their errors, naming the meter by its id."""

    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)

    id: Annotated[str, StringConstraints(pattern=SOURCE_ID.pattern)] = Field(default="", validate_default=True)
    role: Literal[METER_ROLES] = Field(default=None, validate_default=True)
    rollover_kwh: Positive | None = None   # the register's modulus [kWh]
    name: str = ""
    interval_s: Positive | None = None     # accepted for older files; not used (gaps are judged by max_gap_s)
    max_gap_s: Positive = 900              # readings further apart than this leave a coverage hole [s]
    noise_kwh: Annotated[float, Field(ge=0, allow_inf_nan=False)] = 0.5   # a dip up to this is noise, not a reset [kWh]
    multiplier: Positive = 1.0             # CT/PT ratio [-]
    max_power_kw: Positive | None = None   # most power the meter can carry (primary side) [kW]


def meter_message(doc: dict):
    """The sentence for a native error inside ``meters[i]`` of the facility ``doc`` (None: not a meter's)."""
    def message(err: dict, loc: tuple) -> str | None:
        if len(loc) < 2 or loc[0] != "meters" or not isinstance(loc[1], int):
            return None
        value = err.get("input")
        if len(loc) == 2:
            return f"must be a mapping {{id, role}}: {value!r}"
        field = loc[2]
        if field == "id":
            return f"id {str(value)!r} must be 1-64 letters, digits, '_', '.', '-'"
        mid = doc["meters"][loc[1]].get("id", "?")
        if field == "role":
            return f"meter {mid} role {value!r} is not one of {', '.join(METER_ROLES)}"
        if err["type"] in ("greater_than", "greater_than_equal", "finite_number"):
            return f"meter {mid} {field} must be {'≥' if field == 'noise_kwh' else '>'} 0: {value!r}"
        if field in MeterDoc.model_fields and field != "name":
            return f"meter {mid} {field} is not a number: {value!r}"
        return None
    return message


def _meter_list(value):
    if value is None:
        return []
    if not isinstance(value, list):
        raise fail("meters must be a list of {id, role}")
    return value


def _unique_meter_ids(meters: list[MeterDoc]) -> list[MeterDoc]:
    seen, dups = set(), []
    for i, m in enumerate(meters):
        if m.id in seen:
            dups.append(((i,), f"duplicate meter id {m.id!r}"))
        seen.add(m.id)
    if dups:
        raise fail_many(dups)
    return meters


# ------------------------------------------------------------------------------ retrofit, applicant
class RetrofitDoc(_Doc):
    completed: Date = None
    cost_cny: Annotated[float | None, BeforeValidator(_positive)] = None

    mapping_check = _mapping_or("retrofit must be a mapping {completed, cost_cny}")


class InvestmentDoc(_Doc):
    """One year of the applicant's actual investment (pack item 4), with the document it comes from."""

    year: int = Field(default=None, validate_default=True)
    amount_cny: Any = Field(default=None, validate_default=True)   # kept as written: the statement prints it
    source: OptionalText = Field(default=None, validate_default=True)

    mapping_check = _mapping_or(f"{FIELD} must be a mapping {{year, amount_cny, source}}")

    @field_validator("year", mode="before")
    @classmethod
    def _year(cls, v):
        if not isinstance(v, int) or isinstance(v, bool) or not 1990 <= v <= 2200:
            raise fail(f"{FIELD} must be a year such as 2022: {v!r}")
        return v

    @field_validator("amount_cny", mode="before")
    @classmethod
    def _amount(cls, v):
        positive_number(v, allow_zero=True)
        return v

    @field_validator("source", mode="before")
    @classmethod
    def _source(cls, v):
        if v is None:
            raise fail(f"{FIELD} is required (the document the amount is taken from)")
        return v


def _investment_list(value):
    if not isinstance(value, list):
        raise fail(f"{FIELD} must be a list of {{year, amount_cny, source}}: {value!r}")
    return value


def _unique_years(rows: list[InvestmentDoc]) -> list[InvestmentDoc]:
    seen, dups = set(), []
    for i, r in enumerate(rows):
        if r.year in seen:
            dups.append(((i, "year"), f"{FIELD} {r.year} is given twice"))
        seen.add(r.year)
    if dups:
        raise fail_many(dups)
    return rows


class GridFactorDoc(_Doc):
    t_co2_per_mwh: Any = Field(default=None, validate_default=True)   # kept as written
    source: OptionalText = Field(default=None, validate_default=True)

    @model_validator(mode="before")
    @classmethod
    def _shape(cls, v):
        if not isinstance(v, dict) or set(v) - {"t_co2_per_mwh", "source"}:
            raise fail(f"{FIELD} must be a mapping {{t_co2_per_mwh, source}}: {v!r}")
        return v

    @field_validator("t_co2_per_mwh", mode="before")
    @classmethod
    def _factor(cls, v):
        positive_number(v)
        return v

    @field_validator("source", mode="before")
    @classmethod
    def _source(cls, v):
        if v is None:
            raise fail(f"{FIELD} is required (name the published factor)")
        return v


class NarrativeDoc(_Doc):
    """Pack item (5): the project report's sections (inline, or a side YAML file)."""

    background: OptionalText = None
    main_content: OptionalText = None
    key_directions: OptionalText = None
    service_fields: OptionalText = None

    mapping_check = _mapping_or(f"applicant.narrative must be a mapping of {', '.join(NARRATIVE_SECTIONS)}")


assert tuple(NarrativeDoc.model_fields) == NARRATIVE_SECTIONS


class ApplicantDoc(_Doc):
    """The ``applicant:`` block: what the pack's items (1), (4) and (5) take from config.

    Every figure carries the document it comes from (``source``); ``narrative`` is inline text
    or a side YAML file relative to the facility file (checked by :class:`NarrativeDoc`).
    """

    project_name: OptionalText = None
    legal_representative: OptionalText = None
    contact_person: OptionalText = None
    contact_phone: OptionalText = None
    actual_investment: Annotated[list[InvestmentDoc] | None, BeforeValidator(_investment_list)] = None
    grid_emission_factor: GridFactorDoc | None = None
    narrative: str | dict | None = None   # a side file (relative to the facility file) or inline: NarrativeDoc
    compare_months: int | None = None

    mapping_check = _mapping_or("must be a mapping (project_name, actual_investment, ...)")

    @field_validator("actual_investment", mode="after")
    @classmethod
    def _years(cls, v):
        return None if v is None else _unique_years(v)

    @field_validator("narrative", mode="before")
    @classmethod
    def _narrative(cls, v):
        if v is not None and not isinstance(v, (str, dict)):
            raise fail(f"applicant.narrative must be a mapping of {', '.join(NARRATIVE_SECTIONS)}: {v!r}")
        return v

    @field_validator("compare_months", mode="before")
    @classmethod
    def _months(cls, v):
        if v is not None and (not isinstance(v, int) or isinstance(v, bool) or not 1 <= v <= 36):
            raise fail(f"{FIELD} must be a whole number of months from 1 to 36: {v!r}")
        return v

    def as_dict(self) -> dict:
        """The validated block as the pack reads it (fields not given are absent)."""
        out = {k: getattr(self, k) for k in ("project_name", "legal_representative", "contact_person",
                                              "contact_phone", "compare_months") if getattr(self, k) is not None}
        if self.actual_investment is not None:
            out["actual_investment"] = [r.model_dump() for r in self.actual_investment]
        if self.grid_emission_factor is not None:
            out["grid_emission_factor"] = self.grid_emission_factor.model_dump()
        return out


def narrative_unknown(loc: tuple, keys: list[str]) -> str:
    return f"applicant.narrative: unknown section(s) {', '.join(keys)} (known: {', '.join(NARRATIVE_SECTIONS)})"


def narrative_name(loc: tuple) -> str:
    return dotted(("applicant", "narrative", *loc))


# ------------------------------------------------------------------------------ the facility file
class FacilityDoc(_Doc):
    """A facility file. Validate with ``context={"stem": <file name without suffix>}``."""

    id: RequiredText
    name: RequiredText
    name_en: str = ""
    operator: RequiredText
    credit_code: RequiredText
    city: RequiredText
    district: RequiredText
    kind: RequiredText
    timezone: Annotated[str, BeforeValidator(iana_zone)] = "Asia/Shanghai"
    cluster_start_area: bool = False
    commissioned: Date = None
    pue_category: int = 2
    it_energy_from: str = "meters"
    meters: Annotated[list[MeterDoc], BeforeValidator(_meter_list)] = Field(default_factory=list)
    racks: str = Field(default=None, validate_default=True)   # the racks CSV, relative to this file
    retrofit: RetrofitDoc | None = None
    annual_terminals_served: Annotated[float | None, BeforeValidator(_at_least_zero)] = None
    reading_interval_s: Seconds = 300     # racks' expected reporting interval [s]
    max_gap_s: Seconds = 1800             # rack readings further apart leave a coverage hole [s]
    address: Any = None
    contact: Any = None
    notes: Any = None
    applicant: ApplicantDoc | None = None

    @field_validator("id", mode="after")
    @classmethod
    def _id(cls, fid, info):
        problems = []
        if not FACILITY_ID.match(fid):
            problems.append(((), f"id {fid!r} must be lowercase letters, digits and '-' (it is used in MQTT topics)"))
        stem = (info.context or {}).get("stem")
        if stem is not None and fid != stem:
            problems.append(((), f"id {fid!r} must match the file name ({stem!r})"))
        if problems:
            raise fail_many(problems)
        return fid

    @field_validator("city", mode="after")
    @classmethod
    def _city(cls, v):
        return v.lower()

    @field_validator("name_en", mode="before")
    @classmethod
    def _name_en(cls, v):
        return str(v)

    @field_validator("credit_code", mode="after")
    @classmethod
    def _credit_code(cls, cc):
        problem = credit_code_problem(cc)
        if problem:
            raise fail(f"credit_code {cc!r} {problem}")
        return cc.upper()

    @field_validator("kind", mode="after")
    @classmethod
    def _kind(cls, v):
        if v not in KINDS:
            raise fail(f"kind {v!r} is not one of {', '.join(KINDS)}")
        return v

    @field_validator("cluster_start_area", mode="before")
    @classmethod
    def _csa(cls, v):
        if not isinstance(v, bool):
            raise fail(f"cluster_start_area must be true or false: {v!r}")
        return v

    @field_validator("pue_category", mode="before")
    @classmethod
    def _category(cls, v):
        if v not in (1, 2, 3):
            raise fail(f"pue_category {v!r} must be 1 (UPS output), 2 (PDU output) or 3 (IT equipment input)")
        return int(v)

    @field_validator("it_energy_from", mode="before")
    @classmethod
    def _it_from(cls, v):
        if v not in IT_ENERGY_FROM:
            raise fail(f"it_energy_from {v!r} must be 'meters' or 'racks'")
        return v

    @field_validator("meters", mode="after")
    @classmethod
    def _meters(cls, v):
        return _unique_meter_ids(v)

    @field_validator("racks", mode="before")
    @classmethod
    def _racks(cls, v):
        if not v:
            raise fail("racks is required (a CSV relative to this file)")
        return str(v)

    @field_validator("retrofit", mode="before")
    @classmethod
    def _retrofit(cls, v):
        return v or None

    @field_validator("annual_terminals_served", mode="after")
    @classmethod
    def _terminals(cls, v):
        return None if v is None else int(v)

    @model_validator(mode="after")
    def _energy_sources(self):
        roles = {m.role for m in self.meters}
        problems = []
        if "facility" not in roles:
            problems.append(((), "no meter with role 'facility': total facility energy (the PUE numerator) needs one"))
        if self.it_energy_from == "meters" and "it" not in roles:
            problems.append(((), "no IT energy source: add a meter with role 'it' or set it_energy_from: racks"))
        if problems:
            raise fail_many(problems)
        return self


FACILITY_KEYS = tuple(FacilityDoc.model_fields)


def facility_where(path: Path):
    """Where an error at a field location is: the file, ``file meters[i]`` or ``file applicant``."""
    def where(loc: tuple):
        if len(loc) >= 2 and loc[0] == "meters" and isinstance(loc[1], int):
            return f"{path} meters[{loc[1]}]"
        if loc and loc[0] == "applicant":
            return f"{path} applicant"
        return path
    return where


def facility_unknown(loc: tuple, keys: list[str]) -> str:
    """The sentence for unknown keys of the mapping at ``loc`` in a facility file."""
    keys_text = ", ".join(keys)
    if loc == ():
        return f"unknown key(s) {keys_text} (typo? known keys: {', '.join(sorted(FACILITY_KEYS))})"
    if loc == ("applicant",):
        return f"unknown key(s) {keys_text} (known: {', '.join(sorted(ApplicantDoc.model_fields))})"
    if len(loc) == 3 and loc[:2] == ("applicant", "actual_investment"):
        return f"applicant.actual_investment[{loc[2]}]: unknown key(s) {keys_text}"
    if loc[0] == "meters":     # the location prefix names the meter already
        return f"unknown key(s) {keys_text}"
    return f"{dotted(loc)}: unknown key(s) {keys_text}"


# ------------------------------------------------------------------------------ racks CSV
class RackRow(BaseModel):
    """One row of a racks CSV (the header names these columns, in any order; extra columns are ignored).

    :func:`load_racks` applies it to whole columns: the pattern, bound and choices below are the
    only place they are written down.
    """

    rack_id: Annotated[str, StringConstraints(pattern=SOURCE_ID.pattern)]
    room: str
    row: str
    position: str
    design_power_kw: Annotated[float, Field(gt=0, allow_inf_nan=False)]   # [kW]
    function: Literal[RACK_FUNCTIONS]
    status: Literal[RACK_STATUSES]


RACK_COLUMNS = tuple(RackRow.model_fields)


def _rack_rule(name: str, kind: type):
    return next(m for m in RackRow.model_fields[name].metadata if isinstance(m, kind))


_RACK_ID_PATTERN = _rack_rule("rack_id", StringConstraints).pattern
_FUNCTIONS = typing.get_args(RackRow.model_fields["function"].annotation)
_STATUSES = typing.get_args(RackRow.model_fields["status"].annotation)


def empty_racks() -> pd.DataFrame:
    import pandas as pd   # not at import: the schemas are used by commands that never read a racks CSV
    return pd.DataFrame(columns=list(RACK_COLUMNS))


def load_racks(path: Path, errors: Problems) -> pd.DataFrame:
    """Read and validate a racks CSV against :class:`RackRow`; errors name the file, the line and the value.

    Checks run on whole columns; only rows that fail are looked at one by one for messages.
    """
    if not path.is_file():
        errors.add(path, "racks file not found")
        return empty_racks()
    import numpy as np
    import pandas as pd
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pacsv
    try:
        head = path.read_bytes().lstrip(b"\xef\xbb\xbf").split(b"\n", 1)[0].decode("utf-8").strip().split(",")
        names = [h.strip() for h in head]
        table = pacsv.read_csv(path, read_options=pacsv.ReadOptions(column_names=names, skip_rows=1),
                               convert_options=pacsv.ConvertOptions(column_types={n: pa.string() for n in names},
                                                                    strings_can_be_null=False))
    except (pa.ArrowInvalid, UnicodeDecodeError) as e:
        errors.add(path, f"not a readable CSV: {str(e).strip()}")
        return empty_racks()
    missing = [c for c in RACK_COLUMNS if c not in names]
    if missing:
        errors.add(path, f"missing column(s) {', '.join(missing)} (header is: {','.join(names)})")
        return empty_racks()
    df = pd.DataFrame({c: pc.utf8_trim_whitespace(table.column(c)).to_pandas() for c in RACK_COLUMNS})
    line = pd.Series(range(2, len(df) + 2), index=df.index)
    rid = df["rack_id"]
    ok_id = rid.str.fullmatch(_RACK_ID_PATTERN.strip("^$"))
    dp = pd.to_numeric(df["design_power_kw"], errors="coerce")
    ok_dp = dp.notna() & (dp > 0) & np.isfinite(dp)
    ok_fn = df["function"].isin(_FUNCTIONS)
    ok_st = df["status"].isin(_STATUSES)
    dup = rid.duplicated(keep="first") & ok_id
    bad = ~(ok_id & ok_dp & ok_fn & ok_st) | dup
    if bad.any():
        first_line = dict(zip(rid[~dup & ok_id], line[~dup & ok_id]))
        for i in np.flatnonzero(bad.to_numpy()):
            where = f"{path}:{line.iloc[i]}"
            r = rid.iloc[i]
            if not ok_id.iloc[i]:
                errors.add(where, f"rack_id {r!r} must be 1-64 letters, digits, '_', '.', '-'")
                continue
            if dup.iloc[i]:
                errors.add(where, f"duplicate rack_id {r!r} (first on line {first_line[r]})")
                continue
            v = df["design_power_kw"].iloc[i]
            if not ok_dp.iloc[i]:
                x = dp.iloc[i]
                errors.add(where, f"rack {r} design_power_kw is not a number: {v!r}" if pd.isna(x)
                           else f"rack {r} design_power_kw must be > 0: {v!r}")
            if not ok_fn.iloc[i]:
                errors.add(where, f"rack {r} function {df['function'].iloc[i]!r} is not one of {', '.join(_FUNCTIONS)}")
            if not ok_st.iloc[i]:
                errors.add(where, f"rack {r} status {df['status'].iloc[i]!r} is not one of {', '.join(_STATUSES)}")
        df, dp = df[~bad], dp[~bad]
    return df.assign(design_power_kw=dp.astype("float64")).reset_index(drop=True)
