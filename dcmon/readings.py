"""The one reading model shared by the collector, the importer, the store and metrics.

A *reading* is one observation of one source (a meter or a rack) at one meter time:

============== ================== =====================================================
column         type               meaning
============== ================== =====================================================
facility_id    string             facility id from the registry
kind           string             ``meter`` or ``rack``
source_id      string             meter id or rack id
ts             timestamp[ms, UTC] the meter's own time stamp (not the arrival time)
energy_kwh     float64            cumulative energy counter [kWh]
power_kw       float64            instantaneous power [kW]
status         string             rack status change (``in_service`` ...), else null
function       string             rack function change (``compute`` ...), else null
design_power_kw float64           rack design power change [kW], else null
received_at    timestamp[ms, UTC] when dcmon received it (late-arrival detection, audit)
origin         string             where it came from (``mqtt``, ``import:<file>``, ``sim``)
============== ================== =====================================================

The key is ``(facility_id, kind, source_id, ts)``; the store keeps the first reading
written for a key and ignores later copies (QoS 1 redelivery, re-imports).
"""
from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

KINDS = ("meter", "rack")
RACK_STATUSES = ("in_service", "vacant", "reserved", "decommissioned")
RACK_FUNCTIONS = ("compute", "storage", "network", "other")
VALUE_COLUMNS = ("energy_kwh", "power_kw", "status", "function", "design_power_kw")
# Fields a reading payload may carry, per kind (``ts`` and the value columns that apply).
METER_FIELDS = ("ts", "energy_kwh", "power_kw")
RACK_FIELDS = ("ts", "energy_kwh", "power_kw", "status", "function", "design_power_kw")

TS_TYPE = pa.timestamp("ms", tz="UTC")
SCHEMA = pa.schema(
    [
        pa.field("facility_id", pa.string(), nullable=False),
        pa.field("kind", pa.string(), nullable=False),
        pa.field("source_id", pa.string(), nullable=False),
        pa.field("ts", TS_TYPE, nullable=False),
        pa.field("energy_kwh", pa.float64()),
        pa.field("power_kw", pa.float64()),
        pa.field("status", pa.string()),
        pa.field("function", pa.string()),
        pa.field("design_power_kw", pa.float64()),
        pa.field("received_at", TS_TYPE),
        pa.field("origin", pa.string()),
    ]
)

# Readings whose time stamp is further ahead of the receiving clock than this are rejected
# (reliability.md #10: clock skew).
DEFAULT_MAX_FUTURE = dt.timedelta(minutes=5)
# Energy counters above this are implausible for any data-centre meter [kWh].
MAX_COUNTER_KWH = 1e13
# Instantaneous power above this is implausible for one source [kW].
MAX_POWER_KW = 1e7


@dataclass
class Rejection:
    """One rejected input, with a reason a person understands and where it came from."""

    where: str  # "file.csv line 12", "dcmon/v1/cd-east-01/meter/grid-a"
    reason: str
    raw: str = ""

    def to_json(self) -> dict:
        return {"where": self.where, "reason": self.reason, "raw": self.raw}


def empty_table() -> pa.Table:
    return SCHEMA.empty_table()


def to_table(rows: list[dict]) -> pa.Table:
    """Rows (dicts with SCHEMA keys; ``ts`` as epoch ms or tz-aware datetime) to an Arrow table."""
    if not rows:
        return empty_table()
    return pa.Table.from_pylist(rows, schema=SCHEMA)


def conform(table: pa.Table) -> pa.Table:
    """Cast/extend a table to exactly SCHEMA (missing optional columns become null)."""
    n = table.num_rows
    arrays = []
    for f in SCHEMA:
        if f.name in table.column_names:
            col = table.column(f.name)
            if col.type != f.type:
                col = col.cast(f.type)
            arrays.append(col)
        else:
            arrays.append(pa.nulls(n, f.type))
    return pa.Table.from_arrays(arrays, schema=SCHEMA)


def parse_ts(value, *, where: str = "ts") -> int:
    """Meter time stamp to epoch milliseconds (UTC).

    Accepts ISO 8601 *with* a UTC offset (``2026-07-01T08:00:00+08:00``, ``...Z``) or epoch
    milliseconds (int, or a string of digits). A naive ISO time is refused: its zone is unknown.
    Raises ``ValueError`` with a message naming ``where`` and the value.
    """
    if isinstance(value, bool) or value is None:
        raise ValueError(f"{where}: missing or not a time stamp: {value!r}")
    if isinstance(value, (int, np.integer)):
        ms = int(value)
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{where}: time stamp is not finite: {value!r}")
        ms = int(value)
    elif isinstance(value, str):
        s = value.strip()
        if s.lstrip("-").isdigit():
            ms = int(s)
        else:
            try:
                t = dt.datetime.fromisoformat(s.replace("Z", "+00:00") if s.endswith("Z") else s)
            except ValueError:
                raise ValueError(f"{where}: not ISO 8601 or epoch milliseconds: {value!r}") from None
            if t.tzinfo is None:
                raise ValueError(f"{where}: ISO time without a UTC offset (add +08:00 or Z): {value!r}")
            ms = int(round(t.timestamp() * 1000))
    else:
        raise ValueError(f"{where}: not a time stamp: {value!r}")
    # Epoch seconds would land in 1970; epoch micro/nanoseconds far in the future.
    if not 946_684_800_000 <= ms <= 7_258_118_400_000:  # 2000-01-01 .. 2200-01-01
        raise ValueError(f"{where}: time stamp {value!r} is outside 2000..2200 "
                         "(epoch milliseconds expected, not seconds or nanoseconds)")
    return ms


def parse_number(value, name: str, *, allow_negative: bool = False, maximum: float | None = None) -> float | None:
    """A numeric field, or None when absent; ValueError naming the field for junk."""
    if value is None or (isinstance(value, str) and value.strip() == ""):
        return None
    if isinstance(value, bool):
        raise ValueError(f"{name} is not a number: {value!r}")
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} is not a number: {value!r}") from None
    if not math.isfinite(x):
        raise ValueError(f"{name} is not finite: {value!r}")
    if x < 0 and not allow_negative:
        raise ValueError(f"{name} is negative: {value!r}")
    if maximum is not None and x > maximum:
        raise ValueError(f"{name} is implausibly large: {value!r} (limit {maximum:g})")
    return x


def now_ms() -> int:
    return int(dt.datetime.now(dt.UTC).timestamp() * 1000)


def make_reading(registry, facility_id, kind, source_id, raw: dict, *, received_at_ms: int,
                 origin: str, max_future: dt.timedelta = DEFAULT_MAX_FUTURE) -> dict:
    """Validate one raw reading against the registry and return a row for SCHEMA.

    ``raw`` holds ``ts`` and any of the value fields (already in canonical units).
    Raises ``ValueError`` with a reason a person understands. This is the single
    validation used by live ingestion and by ``dcmon import``.
    """
    fac = registry.facilities.get(facility_id)
    if fac is None:
        raise ValueError(f"unknown facility {facility_id!r}")
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r} (meter or rack)")
    if kind == "meter" and source_id not in fac.meter_ids:
        raise ValueError(f"unknown meter {source_id!r} for facility {facility_id!r}")
    if kind == "rack" and source_id not in fac.rack_ids:
        raise ValueError(f"unknown rack {source_id!r} for facility {facility_id!r}")
    ts = parse_ts(raw.get("ts"))
    if ts > received_at_ms + max_future.total_seconds() * 1000:
        ahead = (ts - received_at_ms) / 1000
        raise ValueError(f"ts {raw.get('ts')!r} is {ahead:.0f} s in the future (limit {max_future.total_seconds():.0f} s; check the device clock)")
    row = {"facility_id": facility_id, "kind": kind, "source_id": source_id, "ts": ts,
           "received_at": received_at_ms, "origin": origin}
    row["energy_kwh"] = parse_number(raw.get("energy_kwh"), "energy_kwh", maximum=MAX_COUNTER_KWH)
    row["power_kw"] = parse_number(raw.get("power_kw"), "power_kw", maximum=MAX_POWER_KW)
    if kind == "meter":
        mult = fac.meter(source_id).multiplier  # CT/PT ratio: stored values are primary-side kWh / kW
        if mult != 1.0:
            for k in ("energy_kwh", "power_kw"):
                if row[k] is not None:
                    row[k] *= mult
    if kind == "rack":
        status = raw.get("status")
        if status not in (None, "") and status not in RACK_STATUSES:
            raise ValueError(f"status {status!r} is not one of {', '.join(RACK_STATUSES)}")
        function = raw.get("function")
        if function not in (None, "") and function not in RACK_FUNCTIONS:
            raise ValueError(f"function {function!r} is not one of {', '.join(RACK_FUNCTIONS)}")
        row["status"] = status or None
        row["function"] = function or None
        dp = parse_number(raw.get("design_power_kw"), "design_power_kw", maximum=1000)
        if dp is not None and dp <= 0:
            raise ValueError(f"design_power_kw must be > 0: {raw.get('design_power_kw')!r}")
        row["design_power_kw"] = dp
    else:
        for k in ("status", "function", "design_power_kw"):
            if raw.get(k) not in (None, ""):
                raise ValueError(f"{k} applies to racks, not to meter {source_id!r}")
    if all(row.get(k) is None for k in VALUE_COLUMNS):
        raise ValueError("no value: give at least one of energy_kwh, power_kw"
                         + (", status, function, design_power_kw" if kind == "rack" else ""))
    return row
