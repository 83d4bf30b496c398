"""Device payload mappings: the schema of a mapping file and its validation at start-up.

A mapping says how to read payloads a device already sends in another shape (see
docs/collector.md); :mod:`dcmon.collector.parsers.mapped` reads messages with it.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from dcmon.readings import METER_FIELDS, RACK_FIELDS

ENERGY_UNITS = {"wh": 0.001, "kwh": 1.0, "mwh": 1000.0}
POWER_UNITS = {"w": 0.001, "kw": 1.0, "mw": 1000.0}
TS_FORMATS = ("auto", "iso", "epoch_s", "epoch_ms", "epoch_us", "epoch_ns")


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


def load_mappings(doc, where: str = "mapping") -> list[Mapping]:
    """Validate a mapping document (``{"mappings": [...]}``, parsed YAML) once, at start-up.

    Raises ``ValueError`` naming the entry, the option and the bad value.
    """
    if doc is None:
        return []
    if not isinstance(doc, dict) or not isinstance(doc.get("mappings"), list):
        raise ValueError(f"{where}: expected a mapping with a 'mappings:' list")
    out = []
    known = {"name", "topic", "kind", "fields", "ts", "records", "facility_id", "source_id"}
    for i, m in enumerate(doc["mappings"]):
        w = f"{where} mappings[{i}]"
        if not isinstance(m, dict):
            raise ValueError(f"{w}: must be a mapping, got {m!r}")
        unknown = sorted(set(m) - known)
        if unknown:
            raise ValueError(f"{w}: unknown option(s) {', '.join(unknown)} (known: {', '.join(sorted(known))})")
        name = str(m.get("name", f"mapping-{i}"))
        w = f"{where} mapping {name!r}"
        topic = m.get("topic")
        if not isinstance(topic, str) or not topic or "#" in topic or "+" in topic:
            raise ValueError(f"{w}: topic must be a topic template with {{facility_id}} / {{source_id}} "
                             f"placeholders and no wildcards: {topic!r}")
        kind = m.get("kind")
        if kind not in ("meter", "rack"):
            raise ValueError(f"{w}: kind must be meter or rack: {kind!r}")
        fac, fac_path = _fixed_or_path(m.get("facility_id"), "facility_id", w)
        src, src_path = _fixed_or_path(m.get("source_id"), "source_id", w)
        if fac is None and fac_path is None and "{facility_id}" not in topic:
            raise ValueError(f"{w}: facility_id is neither in the topic ({{facility_id}}) nor given")
        if src is None and src_path is None and "{source_id}" not in topic:
            raise ValueError(f"{w}: source_id is neither in the topic ({{source_id}}) nor given")
        ts = m.get("ts", {"path": "ts"})
        if isinstance(ts, str):
            ts = {"path": ts}
        if not isinstance(ts, dict) or not isinstance(ts.get("path"), str):
            raise ValueError(f"{w}: ts must be {{path, format, timezone}}: {ts!r}")
        fmt = str(ts.get("format", "auto"))
        if fmt not in TS_FORMATS and not fmt.startswith("strptime:"):
            raise ValueError(f"{w}: ts.format {fmt!r} is not one of {', '.join(TS_FORMATS)} or strptime:<pattern>")
        tzname = ts.get("timezone")
        if tzname is not None:
            from dcmon.periods import zone
            try:
                zone(tzname)
            except Exception:
                raise ValueError(f"{w}: ts.timezone {tzname!r} is not a known IANA time zone") from None
        if fmt.startswith("strptime:") and tzname is None:
            raise ValueError(f"{w}: ts.format {fmt!r} needs ts.timezone (for example Asia/Shanghai)")
        fields_in = m.get("fields")
        if not isinstance(fields_in, dict) or not fields_in:
            raise ValueError(f"{w}: fields must map canonical names to {{path, unit}}: {fields_in!r}")
        allowed = METER_FIELDS[1:] if kind == "meter" else RACK_FIELDS[1:]
        fields = {}
        for fname, spec in fields_in.items():
            if fname not in allowed:
                raise ValueError(f"{w}: field {fname!r} is not one of {', '.join(allowed)}")
            if isinstance(spec, str):
                spec = {"path": spec}
            if not isinstance(spec, dict) or not isinstance(spec.get("path"), str):
                raise ValueError(f"{w}: fields.{fname} must be {{path, unit}}: {spec!r}")
            unit = spec.get("unit")
            factor = 1.0
            if fname == "energy_kwh":
                unit = unit or "kWh"
                factor = ENERGY_UNITS.get(str(unit).lower())
                if factor is None:
                    raise ValueError(f"{w}: fields.energy_kwh unit {unit!r} is not one of Wh, kWh, MWh")
            elif fname in ("power_kw", "design_power_kw"):
                unit = unit or "kW"
                factor = POWER_UNITS.get(str(unit).lower())
                if factor is None:
                    raise ValueError(f"{w}: fields.{fname} unit {unit!r} is not one of W, kW, MW")
            elif unit is not None:
                raise ValueError(f"{w}: fields.{fname} takes no unit: {unit!r}")
            fields[fname] = (spec["path"], factor)
        records = m.get("records")
        if records is not None and not isinstance(records, str):
            raise ValueError(f"{w}: records must be a dotted path: {records!r}")
        out.append(Mapping(name=name, topic=topic, kind=kind, fields=fields, ts_path=ts["path"], ts_format=fmt,
                           ts_timezone=tzname, records=records, facility_id=fac, facility_path=fac_path,
                           source_id=src, source_path=src_path))
    return out


def _fixed_or_path(value, name, where):
    if value is None:
        return None, None
    if isinstance(value, str):
        return value, None
    if isinstance(value, dict) and isinstance(value.get("path"), str):
        return None, value["path"]
    raise ValueError(f"{where}: {name} must be a fixed id or {{path: ...}}: {value!r}")
