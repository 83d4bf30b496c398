"""Device mappings (``dcmon collect --mapping FILE``): how to read payloads devices already send.

:class:`MappingDoc` is the schema of one entry of the file's ``mappings:`` list;
:func:`load_mappings` checks a parsed file once, at start-up, and gives the :class:`Mapping`
objects the collector's mapped-device parser uses (see docs/collector.md).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from dcmon.config.errors import Problems, add_validation_errors, fail
from dcmon.readings import METER_FIELDS, RACK_FIELDS

ENERGY_UNITS = {"wh": 0.001, "kwh": 1.0, "mwh": 1000.0}
POWER_UNITS = {"w": 0.001, "kw": 1.0, "mw": 1000.0}
TS_FORMATS = ("auto", "iso", "epoch_s", "epoch_ms", "epoch_us", "epoch_ns")
# The canonical fields a mapping may fill, per kind (the reading's value columns).
MAPPED_FIELDS = {"meter": METER_FIELDS[1:], "rack": RACK_FIELDS[1:]}


@dataclass
class Mapping:
    """How to read payloads a device already sends in another shape (see docs/collector.md).

    topic : MQTT topic template; ``{facility_id}`` and ``{source_id}`` each match one level
    kind : ``meter`` or ``rack``
    fields : canonical name → (dotted path in the payload, unit factor to kWh / kW)
    ts_path, ts_format, ts_timezone : where the time stamp is, how it is written, and the zone
        of a time without offset (``strptime:%Y-%m-%d %H:%M:%S`` + ``Asia/Shanghai``)
    records : dotted path to an array of records (each one reading); None: the payload is one
    facility_id, source_id : fixed values, or ``{"path": …}`` read per record
    """

    name: str
    topic: str
    kind: str
    fields: dict
    ts_path: str = "ts"
    ts_format: str = "auto"
    ts_timezone: str | None = None
    records: str | None = None
    facility_id: str | None = None
    facility_path: str | None = None
    source_id: str | None = None
    source_path: str | None = None
    _regex: re.Pattern | None = None

    @property
    def subscription(self) -> str:
        return re.sub(r"\{(facility_id|source_id)\}", "+", self.topic)

    def match(self, topic: str) -> dict | None:
        if self._regex is None:
            pattern = ""
            for part in re.split(r"(\{facility_id\}|\{source_id\})", self.topic):
                if part == "{facility_id}":
                    pattern += r"(?P<facility_id>[^/]+)"
                elif part == "{source_id}":
                    pattern += r"(?P<source_id>[^/]+)"
                else:
                    pattern += re.escape(part)
            self._regex = re.compile(pattern + r"\Z")
        m = self._regex.match(topic)
        return None if m is None else m.groupdict()


def _fixed_or_path(value, name):
    """``(fixed id, None)``, ``(None, dotted path)`` or ``(None, None)`` when not given."""
    if value is None:
        return None, None
    if isinstance(value, str):
        return value, None
    if isinstance(value, dict) and isinstance(value.get("path"), str):
        return None, value["path"]
    raise fail(f"{name} must be a fixed id or {{path: ...}}: {value!r}")


class TsDoc(BaseModel):
    """Where the time stamp is and how it is written (a bare string is its path)."""

    model_config = ConfigDict(extra="ignore")
    path: str
    format: str = "auto"
    timezone: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _shape(cls, v):
        if isinstance(v, str):
            v = {"path": v}
        if not isinstance(v, dict) or not isinstance(v.get("path"), str):
            raise fail(f"ts must be {{path, format, timezone}}: {v!r}")
        return v

    @field_validator("format", mode="before")
    @classmethod
    def _format(cls, v):
        fmt = str(v)
        if fmt not in TS_FORMATS and not fmt.startswith("strptime:"):
            raise fail(f"ts.format {fmt!r} is not one of {', '.join(TS_FORMATS)} or strptime:<pattern>")
        return fmt

    @field_validator("timezone", mode="before")
    @classmethod
    def _timezone(cls, v):
        from dcmon.periods import zone
        if v is not None:
            try:
                zone(v)
            except Exception:
                raise fail(f"ts.timezone {v!r} is not a known IANA time zone") from None
        return v

    @model_validator(mode="after")
    def _zone_for_strptime(self):
        if self.format.startswith("strptime:") and self.timezone is None:
            raise fail(f"ts.format {self.format!r} needs ts.timezone (for example Asia/Shanghai)")
        return self


class MappingDoc(BaseModel):
    """One entry of ``mappings:``."""

    model_config = ConfigDict(extra="forbid")
    name: str | None = None
    topic: str = Field(default=None, validate_default=True)
    kind: str = Field(default=None, validate_default=True)
    facility_id: tuple[str | None, str | None] = Field(default=None, validate_default=True)
    source_id: tuple[str | None, str | None] = Field(default=None, validate_default=True)
    ts: TsDoc = Field(default="ts", validate_default=True)
    fields: dict[str, tuple[str, float]] = Field(default=None, validate_default=True)
    records: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _shape(cls, v):
        if not isinstance(v, dict):
            raise fail(f"must be a mapping, got {v!r}")
        return v

    @field_validator("name", mode="before")
    @classmethod
    def _name(cls, v):
        return None if v is None else str(v)

    @field_validator("topic", mode="before")
    @classmethod
    def _topic(cls, v):
        if not isinstance(v, str) or not v or "#" in v or "+" in v:
            raise fail(f"topic must be a topic template with {{facility_id}} / {{source_id}} "
                       f"placeholders and no wildcards: {v!r}")
        return v

    @field_validator("kind", mode="before")
    @classmethod
    def _kind(cls, v):
        if v not in MAPPED_FIELDS:
            raise fail(f"kind must be meter or rack: {v!r}")
        return v

    @field_validator("facility_id", "source_id", mode="before")
    @classmethod
    def _id(cls, v, info):
        fixed, path = _fixed_or_path(v, info.field_name)
        topic = info.data.get("topic")
        if fixed is None and path is None and topic is not None and f"{{{info.field_name}}}" not in topic:
            raise fail(f"{info.field_name} is neither in the topic ({{{info.field_name}}}) nor given")
        return fixed, path

    @field_validator("fields", mode="before")
    @classmethod
    def _fields(cls, v, info):
        if not isinstance(v, dict) or not v:
            raise fail(f"fields must map canonical names to {{path, unit}}: {v!r}")
        allowed = MAPPED_FIELDS.get(info.data.get("kind"))
        if allowed is None:
            return {}            # the kind is wrong (reported): which fields it allows is unknown
        out = {}
        for fname, spec in v.items():
            if fname not in allowed:
                raise fail(f"field {fname!r} is not one of {', '.join(allowed)}")
            if isinstance(spec, str):
                spec = {"path": spec}
            if not isinstance(spec, dict) or not isinstance(spec.get("path"), str):
                raise fail(f"fields.{fname} must be {{path, unit}}: {spec!r}")
            unit = spec.get("unit")
            factor = 1.0
            if fname == "energy_kwh":
                unit = unit or "kWh"
                factor = ENERGY_UNITS.get(str(unit).lower())
                if factor is None:
                    raise fail(f"fields.energy_kwh unit {unit!r} is not one of Wh, kWh, MWh")
            elif fname in ("power_kw", "design_power_kw"):
                unit = unit or "kW"
                factor = POWER_UNITS.get(str(unit).lower())
                if factor is None:
                    raise fail(f"fields.{fname} unit {unit!r} is not one of W, kW, MW")
            elif unit is not None:
                raise fail(f"fields.{fname} takes no unit: {unit!r}")
            out[fname] = (spec["path"], factor)
        return out

    @field_validator("records", mode="before")
    @classmethod
    def _records(cls, v):
        if v is not None and not isinstance(v, str):
            raise fail(f"records must be a dotted path: {v!r}")
        return v


def load_mappings(doc, where: str = "mapping") -> list[Mapping]:
    """Validate a mapping document (``{"mappings": [...]}``, parsed YAML) once, at start-up.

    Raises ``ValueError`` naming, for every problem, the entry, the option and the bad value.
    """
    if doc is None:
        return []
    if not isinstance(doc, dict) or not isinstance(doc.get("mappings"), list):
        raise ValueError(f"{where}: expected a mapping with a 'mappings:' list")
    entries = doc["mappings"]

    def entry_where(i: int) -> str:
        m = entries[i]
        if isinstance(m, dict):
            return f"{where} mapping {str(m.get('name', f'mapping-{i}'))!r}"
        return f"{where} mappings[{i}]"

    known = ", ".join(sorted(MappingDoc.model_fields))
    problems, out = Problems(), []
    for i, m in enumerate(entries):
        try:
            d = MappingDoc.model_validate(m)
        except ValidationError as e:
            add_validation_errors(e, problems, where=lambda loc, i=i: entry_where(i),
                                  unknown=lambda loc, keys: f"unknown option(s) {', '.join(keys)} (known: {known})")
            continue
        (fac, fac_path), (src, src_path) = d.facility_id, d.source_id
        out.append(Mapping(name=d.name or f"mapping-{i}", topic=d.topic, kind=d.kind, fields=d.fields,
                           ts_path=d.ts.path, ts_format=d.ts.format, ts_timezone=d.ts.timezone, records=d.records,
                           facility_id=fac, facility_path=fac_path, source_id=src, source_path=src_path))
    if problems.items:
        raise ValueError("\n".join(problems.items))
    return out
