"""Facility registry: ``<config>/facilities/<facility_id>.yaml`` plus a racks CSV.

Validated once, at load. Every error names the file, the line or field and the bad value;
all errors of a load are collected and reported together so a user fixes them in one pass.
See ``config/facilities/example.yaml`` for an annotated facility.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from dcmon.errors import ConfigError
from dcmon.periods import zone
from dcmon.readings import RACK_FUNCTIONS, RACK_STATUSES

FACILITY_ID = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$")
SOURCE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")  # no '/', '+', '#': used in MQTT topics
KINDS = ("cloud", "supercomputing", "intelligent", "edge", "enterprise")
METER_ROLES = ("facility", "it", "cooling", "lighting", "power_loss", "other")
IT_ENERGY_FROM = ("meters", "racks")
RACK_COLUMNS = ("rack_id", "room", "row", "position", "design_power_kw", "function", "status")
KNOWN_KEYS = {
    "id", "name", "name_en", "operator", "credit_code", "city", "district", "kind", "timezone",
    "cluster_start_area", "commissioned", "pue_category", "it_energy_from", "meters", "racks",
    "retrofit", "annual_terminals_served", "address", "contact", "reading_interval_s", "max_gap_s",
    "notes", "applicant",
}
# The applicant's pack (seed 001 二(二)3): item (1) fields, item (4) investment, item (5) narrative.
APPLICANT_KEYS = {"project_name", "legal_representative", "contact_person", "contact_phone", "actual_investment",
                  "grid_emission_factor", "narrative", "compare_months"}
NARRATIVE_SECTIONS = ("background", "main_content", "key_directions", "service_fields")
METER_KEYS = {"id", "role", "rollover_kwh", "name", "interval_s", "max_gap_s", "noise_kwh", "multiplier",
              "max_power_kw"}
# Default ceiling of a meter: this many times the design power of the racks in service (or reserved,
# vacant: anything not decommissioned), and at least MIN_METER_MAX_POWER_KW [kW].
METER_MAX_POWER_FACTOR = 3.0
MIN_METER_MAX_POWER_KW = 100.0
# Ceiling of a rack: this many times its design power [kW] (a counter step beyond it is implausible).
RACK_MAX_POWER_FACTOR = 3.0

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


@dataclass(frozen=True)
class Meter:
    id: str
    role: str
    rollover_kwh: float | None = None
    name: str = ""
    interval_s: int = 60          # expected reporting interval [s]
    max_gap_s: int = 900          # readings further apart than this leave a coverage hole [s]
    noise_kwh: float = 0.5        # a counter dip up to this is meter noise, not a reset [kWh]
    multiplier: float = 1.0       # CT/PT ratio applied to raw energy and power on ingestion (live and import) [-]
    max_power_kw: float | None = None  # most power the meter can carry (primary side) [kW]; None: the default


@dataclass
class Facility:
    id: str
    name: str
    operator: str
    credit_code: str
    city: str
    district: str
    kind: str
    timezone: str
    cluster_start_area: bool
    commissioned: dt.date | None
    pue_category: int
    it_energy_from: str
    meters: list[Meter]
    racks: pd.DataFrame            # columns RACK_COLUMNS, indexed 0..n-1, rack_id unique; None: read on first use
    path: Path
    racks_path: Path
    name_en: str = ""
    retrofit_completed: dt.date | None = None
    retrofit_cost_cny: float | None = None
    annual_terminals_served: int | None = None
    rack_interval_s: int = 300
    rack_max_gap_s: int = 1800
    extra: dict = field(default_factory=dict)
    applicant: dict = field(default_factory=dict)   # validated ``applicant:`` block (see _applicant)
    side_files: tuple = ()                          # files the config reads besides the YAML and racks CSV

    @property
    def meter_ids(self) -> set[str]:
        return {m.id for m in self.meters}

    @property
    def rack_ids(self) -> set[str]:
        ids = self.__dict__.get("_rack_ids")
        if ids is None:
            # tolist() first: iterating an Arrow-backed column boxes one scalar at a time (10× slower)
            ids = self._rack_ids = set(self.racks["rack_id"].tolist())
        return ids

    def __post_init__(self):
        if self.racks is None:     # load_registry(..., racks_on_demand=True): __getattr__ reads it when asked
            del self.racks

    def __getattr__(self, name):
        if name != "racks":
            raise AttributeError(name)
        errors = _Errors()
        racks = load_racks(self.racks_path, errors)
        _rack_meter_clash(racks, self.meters, self.path, errors)
        errors.raise_if_any(f"invalid facility file {self.path}")
        self.racks = racks
        return racks

    def meters_with_role(self, role: str) -> list[Meter]:
        return [m for m in self.meters if m.role == role]

    def meter(self, meter_id: str) -> Meter:
        for m in self.meters:
            if m.id == meter_id:
                return m
        raise KeyError(meter_id)

    @property
    def default_meter_max_power_kw(self) -> float:
        """Ceiling of a meter without ``max_power_kw`` [kW]: ``METER_MAX_POWER_FACTOR`` × the design
        power of the racks not decommissioned, at least ``MIN_METER_MAX_POWER_KW``.

        A facility meter carries the IT load plus cooling and losses (PUE rarely above 2), so three
        times the racks' design power is more than any meter of the site can carry.
        """
        racks = self.racks
        live = float(racks.loc[racks["status"] != "decommissioned", "design_power_kw"].sum()) if len(racks) else 0.0
        return max(MIN_METER_MAX_POWER_KW, METER_MAX_POWER_FACTOR * live)

    def meter_max_power_kw(self, meter_id: str) -> float:
        """Most power meter ``meter_id`` can carry [kW]: its ``max_power_kw`` or the facility default.
        A counter step implying more is implausible (rejected on ingestion, not counted as energy)."""
        m = self.meter(meter_id)
        return m.max_power_kw if m.max_power_kw is not None else self.default_meter_max_power_kw


@dataclass
class Registry:
    config_dir: Path
    facilities: dict[str, Facility]

    def get(self, facility_id: str) -> Facility:
        try:
            return self.facilities[facility_id]
        except KeyError:
            known = ", ".join(sorted(self.facilities)) or "none"
            raise ConfigError(f"unknown facility {facility_id!r} (known: {known})") from None

    def select(self, ids: list[str] | None) -> list[Facility]:
        if not ids:
            return [self.facilities[k] for k in sorted(self.facilities)]
        return [self.get(i) for i in ids]

    def fingerprint(self) -> str:
        """SHA-256 over every facility file and racks CSV: the config a figure was computed from."""
        h = hashlib.sha256()
        for fid in sorted(self.facilities):
            f = self.facilities[fid]
            for p in (f.path, f.racks_path, *f.side_files):
                h.update(p.name.encode())
                h.update(p.read_bytes())
        return h.hexdigest()


class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
    """Safe YAML without implicit dates: dates stay strings and are validated with a named error."""


_Loader.yaml_implicit_resolvers = {
    k: [(tag, rx) for tag, rx in v if tag != "tag:yaml.org,2002:timestamp"]
    for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def load_yaml(path: Path):
    return yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader)


class _Errors:
    def __init__(self):
        self.items: list[str] = []

    def add(self, where, msg):
        self.items.append(f"{where}: {msg}")

    def raise_if_any(self, header: str):
        if self.items:
            raise ConfigError(header + "\n  " + "\n  ".join(self.items))


def _as_date(value, where, errors, field_name):
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError:
        errors.add(where, f"{field_name} is not a date YYYY-MM-DD: {value!r}")
        return None


def _positive_number(value, where, errors, name, *, allow_zero=False):
    try:
        x = float(value)
    except (TypeError, ValueError):
        errors.add(where, f"{name} is not a number: {value!r}")
        return None
    if x != x or x in (float("inf"), float("-inf")) or x < 0 or (x == 0 and not allow_zero):
        errors.add(where, f"{name} must be {'≥' if allow_zero else '>'} 0: {value!r}")
        return None
    return x


def load_racks(path: Path, errors: _Errors) -> pd.DataFrame:
    """Read and validate a racks CSV; errors name the file, the line and the value.

    Checks run on whole columns; only rows that fail are looked at one by one for messages.
    """
    if not path.is_file():
        errors.add(path, "racks file not found")
        return pd.DataFrame(columns=list(RACK_COLUMNS))
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
        return pd.DataFrame(columns=list(RACK_COLUMNS))
    missing = [c for c in RACK_COLUMNS if c not in names]
    if missing:
        errors.add(path, f"missing column(s) {', '.join(missing)} (header is: {','.join(names)})")
        return pd.DataFrame(columns=list(RACK_COLUMNS))
    df = pd.DataFrame({c: pc.utf8_trim_whitespace(table.column(c)).to_pandas() for c in RACK_COLUMNS})
    line = pd.Series(range(2, len(df) + 2), index=df.index)
    rid = df["rack_id"]
    ok_id = rid.str.fullmatch(SOURCE_ID.pattern.strip("^$"))
    dp = pd.to_numeric(df["design_power_kw"], errors="coerce")
    ok_dp = dp.notna() & (dp > 0) & np.isfinite(dp)
    ok_fn = df["function"].isin(RACK_FUNCTIONS)
    ok_st = df["status"].isin(RACK_STATUSES)
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
                errors.add(where, f"rack {r} function {df['function'].iloc[i]!r} is not one of {', '.join(RACK_FUNCTIONS)}")
            if not ok_st.iloc[i]:
                errors.add(where, f"rack {r} status {df['status'].iloc[i]!r} is not one of {', '.join(RACK_STATUSES)}")
        df, dp = df[~bad], dp[~bad]
    out = df.assign(design_power_kw=dp.astype("float64")).reset_index(drop=True)
    return out


def load_facility(path: Path) -> Facility:
    errors = _Errors()
    fac = _load_facility(Path(path), errors)
    errors.raise_if_any(f"invalid facility file {path}")
    return fac


def _rack_meter_clash(racks: pd.DataFrame, meters: list[Meter], path: Path, errors: _Errors) -> None:
    clash = sorted(set(racks["rack_id"].tolist()) & {m.id for m in meters})
    if clash:
        errors.add(path, f"rack and meter ids must differ: {', '.join(clash)}")


def _load_facility(path: Path, errors: _Errors, *, racks_on_demand: bool = False) -> Facility | None:
    try:
        doc = load_yaml(path)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        errors.add(where, f"not valid YAML: {getattr(e, 'problem', e)}")
        return None
    if not isinstance(doc, dict):
        errors.add(path, "must be a mapping of keys (id, name, meters, racks, ...)")
        return None
    unknown = sorted(set(doc) - KNOWN_KEYS)
    if unknown:
        errors.add(path, f"unknown key(s) {', '.join(unknown)} (typo? known keys: {', '.join(sorted(KNOWN_KEYS))})")

    def req(key):
        if key not in doc or doc[key] in (None, ""):
            errors.add(path, f"{key} is required")
            return None
        return doc[key]

    fid = req("id")
    if fid is not None and not FACILITY_ID.match(str(fid)):
        errors.add(path, f"id {fid!r} must be lowercase letters, digits and '-' (it is used in MQTT topics)")
    if fid is not None and path.stem != str(fid):
        errors.add(path, f"id {fid!r} must match the file name ({path.stem!r})")
    for key in ("name", "operator", "city", "district"):
        req(key)
    cc = req("credit_code")
    if cc is not None:
        problem = credit_code_problem(str(cc))
        if problem:
            errors.add(path, f"credit_code {cc!r} {problem}")
    kind = req("kind")
    if kind is not None and kind not in KINDS:
        errors.add(path, f"kind {kind!r} is not one of {', '.join(KINDS)}")
    tzname = doc.get("timezone", "Asia/Shanghai")
    try:
        zone(tzname)
    except Exception:
        errors.add(path, f"timezone {tzname!r} is not a known IANA time zone (for example Asia/Shanghai)")
    cat = doc.get("pue_category", 2)
    if cat not in (1, 2, 3):
        errors.add(path, f"pue_category {cat!r} must be 1 (UPS output), 2 (PDU output) or 3 (IT equipment input)")
    it_from = doc.get("it_energy_from", "meters")
    if it_from not in IT_ENERGY_FROM:
        errors.add(path, f"it_energy_from {it_from!r} must be 'meters' or 'racks'")
    csa = doc.get("cluster_start_area", False)
    if not isinstance(csa, bool):
        errors.add(path, f"cluster_start_area must be true or false: {csa!r}")
    commissioned = _as_date(doc.get("commissioned"), path, errors, "commissioned")

    meters: list[Meter] = []
    raw_meters = doc.get("meters") or []
    if not isinstance(raw_meters, list):
        errors.add(path, "meters must be a list of {id, role}")
        raw_meters = []
    seen = set()
    for i, m in enumerate(raw_meters):
        where = f"{path} meters[{i}]"
        if not isinstance(m, dict):
            errors.add(where, f"must be a mapping {{id, role}}: {m!r}")
            continue
        unknown = sorted(set(m) - METER_KEYS)
        if unknown:
            errors.add(where, f"unknown key(s) {', '.join(unknown)}")
        mid = str(m.get("id", ""))
        if not SOURCE_ID.match(mid):
            errors.add(where, f"id {mid!r} must be 1-64 letters, digits, '_', '.', '-'")
            continue
        if mid in seen:
            errors.add(where, f"duplicate meter id {mid!r}")
            continue
        seen.add(mid)
        role = m.get("role")
        if role not in METER_ROLES:
            errors.add(where, f"meter {mid} role {role!r} is not one of {', '.join(METER_ROLES)}")
            continue
        rollover = m.get("rollover_kwh")
        if rollover is not None:
            rollover = _positive_number(rollover, where, errors, f"meter {mid} rollover_kwh")
        kw = {}
        for key, conv in (("interval_s", int), ("max_gap_s", int), ("noise_kwh", float), ("multiplier", float),
                          ("max_power_kw", float)):
            if key in m:
                v = _positive_number(m[key], where, errors, f"meter {mid} {key}", allow_zero=key == "noise_kwh")
                if v is not None:
                    kw[key] = conv(v)
        meters.append(Meter(id=mid, role=role, rollover_kwh=rollover, name=str(m.get("name", "")), **kw))

    if not any(m.role == "facility" for m in meters):
        errors.add(path, "no meter with role 'facility': total facility energy (the PUE numerator) needs one")
    if it_from == "meters" and not any(m.role == "it" for m in meters):
        errors.add(path, "no IT energy source: add a meter with role 'it' or set it_energy_from: racks")

    racks_rel = doc.get("racks")
    if not racks_rel:
        errors.add(path, "racks is required (a CSV relative to this file)")
        racks_path = path.with_suffix(".csv")
        racks = pd.DataFrame(columns=list(RACK_COLUMNS))
    else:
        racks_path = (path.parent / str(racks_rel)).resolve()
        if racks_path.is_file():
            racks = None if racks_on_demand else load_racks(racks_path, errors)
        else:
            errors.add(path, f"racks file not found: {racks_rel!r} (looked for {racks_path})")
            racks = pd.DataFrame(columns=list(RACK_COLUMNS))
    if racks is not None:
        _rack_meter_clash(racks, meters, path, errors)

    retrofit = doc.get("retrofit") or {}
    if not isinstance(retrofit, dict):
        errors.add(path, f"retrofit must be a mapping {{completed, cost_cny}}: {retrofit!r}")
        retrofit = {}
    r_completed = _as_date(retrofit.get("completed"), path, errors, "retrofit.completed")
    r_cost = retrofit.get("cost_cny")
    if r_cost is not None:
        r_cost = _positive_number(r_cost, path, errors, "retrofit.cost_cny")
    terminals = doc.get("annual_terminals_served")
    if terminals is not None:
        t = _positive_number(terminals, path, errors, "annual_terminals_served", allow_zero=True)
        terminals = None if t is None else int(t)
    applicant, side_files = _applicant(doc.get("applicant"), path, errors)
    rack_interval = doc.get("reading_interval_s", 300)
    rack_gap = doc.get("max_gap_s", 1800)
    if errors.items:
        return None
    return Facility(
        id=str(fid), name=str(doc["name"]), name_en=str(doc.get("name_en", "")), operator=str(doc["operator"]),
        credit_code=str(cc).upper(), city=str(doc["city"]).lower(), district=str(doc["district"]), kind=kind,
        timezone=tzname, cluster_start_area=bool(csa), commissioned=commissioned, pue_category=int(cat),
        it_energy_from=it_from, meters=meters, racks=racks, path=path, racks_path=racks_path,
        retrofit_completed=r_completed, retrofit_cost_cny=r_cost, annual_terminals_served=terminals,
        rack_interval_s=int(rack_interval), rack_max_gap_s=int(rack_gap),
        extra={k: doc[k] for k in ("address", "contact", "notes") if k in doc},
        applicant=applicant, side_files=side_files,
    )


def _text_field(value, where, errors, name) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        errors.add(where, f"{name} must be non-empty text: {value!r}")
        return None
    return value.strip()


def _applicant(block, path: Path, errors: _Errors) -> tuple[dict, tuple]:
    """The ``applicant:`` block: what the pack's items (1), (4) and (5) take from config.

    Every figure carries the document it comes from (``source``); narrative sections are
    inline text or a side YAML file (``narrative: <file>``, relative to the facility file).
    """
    if block is None:
        return {}, ()
    where = f"{path} applicant"
    if not isinstance(block, dict):
        errors.add(where, f"must be a mapping (project_name, actual_investment, ...): {block!r}")
        return {}, ()
    unknown = sorted(set(block) - APPLICANT_KEYS)
    if unknown:
        errors.add(where, f"unknown key(s) {', '.join(unknown)} (known: {', '.join(sorted(APPLICANT_KEYS))})")
    out: dict = {}
    for key in ("project_name", "legal_representative", "contact_person", "contact_phone"):
        v = _text_field(block.get(key), where, errors, f"applicant.{key}")
        if v is not None:
            out[key] = v
    inv = block.get("actual_investment")
    if inv is not None:
        if not isinstance(inv, list):
            errors.add(where, f"applicant.actual_investment must be a list of {{year, amount_cny, source}}: {inv!r}")
            inv = []
        rows, years = [], set()
        for i, r in enumerate(inv):
            name = f"applicant.actual_investment[{i}]"
            if not isinstance(r, dict):
                errors.add(where, f"{name} must be a mapping {{year, amount_cny, source}}: {r!r}")
                continue
            bad = sorted(set(r) - {"year", "amount_cny", "source"})
            if bad:
                errors.add(where, f"{name}: unknown key(s) {', '.join(bad)}")
            y = r.get("year")
            if not isinstance(y, int) or isinstance(y, bool) or not 1990 <= y <= 2200:
                errors.add(where, f"{name}.year must be a year such as 2022: {y!r}")
                continue
            if y in years:
                errors.add(where, f"{name}.year {y} is given twice")
                continue
            years.add(y)
            amount = _positive_number(r.get("amount_cny"), where, errors, f"{name}.amount_cny", allow_zero=True)
            source = _text_field(r.get("source"), where, errors, f"{name}.source")
            if source is None and r.get("source") is None:
                errors.add(where, f"{name}.source is required (the document the amount is taken from)")
            if amount is not None and source is not None:
                # keep the amount as written: the statement prints it exactly
                rows.append({"year": y, "amount_cny": r["amount_cny"], "source": source})
        out["actual_investment"] = rows
    months = block.get("compare_months")
    if months is not None:
        if not isinstance(months, int) or isinstance(months, bool) or not 1 <= months <= 36:
            errors.add(where, f"applicant.compare_months must be a whole number of months from 1 to 36: {months!r}")
        else:
            out["compare_months"] = months
    gef = block.get("grid_emission_factor")
    if gef is not None:
        name = "applicant.grid_emission_factor"
        if not isinstance(gef, dict) or set(gef) - {"t_co2_per_mwh", "source"}:
            errors.add(where, f"{name} must be a mapping {{t_co2_per_mwh, source}}: {gef!r}")
        else:
            f = _positive_number(gef.get("t_co2_per_mwh"), where, errors, f"{name}.t_co2_per_mwh")
            src = _text_field(gef.get("source"), where, errors, f"{name}.source")
            if src is None and gef.get("source") is None:
                errors.add(where, f"{name}.source is required (name the published factor)")
            if f is not None and src is not None:
                out["grid_emission_factor"] = {"t_co2_per_mwh": gef["t_co2_per_mwh"], "source": src}
    side: tuple = ()
    nar = block.get("narrative")
    if nar is not None:
        nwhere = where
        if isinstance(nar, str):
            npath = (path.parent / nar).resolve()
            if not npath.is_file():
                errors.add(where, f"applicant.narrative file not found: {nar!r} (looked for {npath})")
                nar = None
            else:
                try:
                    nar = load_yaml(npath)
                except yaml.YAMLError as e:
                    errors.add(npath, f"not valid YAML: {getattr(e, 'problem', e)}")
                    nar = None
                side = (npath,)
                nwhere = str(npath)
        if nar is not None and not isinstance(nar, dict):
            errors.add(nwhere, f"applicant.narrative must be a mapping of {', '.join(NARRATIVE_SECTIONS)}: {nar!r}")
        elif nar is not None:
            bad = sorted(set(nar) - set(NARRATIVE_SECTIONS))
            if bad:
                errors.add(nwhere, f"applicant.narrative: unknown section(s) {', '.join(bad)} "
                                   f"(known: {', '.join(NARRATIVE_SECTIONS)})")
            out["narrative"] = {}
            for k in NARRATIVE_SECTIONS:
                v = _text_field(nar.get(k), nwhere, errors, f"applicant.narrative.{k}")
                if v is not None:
                    out["narrative"][k] = v
    return out, side


def load_registry(config_dir, *, racks_on_demand: bool = False) -> Registry:
    """Load and validate every facility under ``<config_dir>/facilities``.

    With ``racks_on_demand`` a facility's rack CSV is read and validated when its ``racks`` are
    first used (an invalid one then raises ``ConfigError``), so a command about one facility
    does not read all of them; every facility file is still read and validated now.
    """
    config_dir = Path(config_dir)
    fdir = config_dir / "facilities"
    if not fdir.is_dir():
        raise ConfigError(f"{config_dir}: no facilities/ folder (expected {fdir}/<facility_id>.yaml)")
    errors = _Errors()
    facilities: dict[str, Facility] = {}
    for path in sorted(fdir.glob("*.yaml")) + sorted(fdir.glob("*.yml")):
        fac = _load_facility(path, errors, racks_on_demand=racks_on_demand)
        if fac is not None:
            if fac.id in facilities:
                errors.add(path, f"facility id {fac.id!r} also defined in {facilities[fac.id].path}")
            facilities[fac.id] = fac
    errors.raise_if_any(f"invalid configuration in {config_dir}")
    if not facilities:
        raise ConfigError(f"{fdir}: no facility files (*.yaml)")
    return Registry(config_dir=config_dir, facilities=facilities)
