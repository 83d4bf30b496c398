"""Live queries for watching a facility now: what the dashboard's live cards, the Prometheus
exporter and the shipped alert rules (``deploy/prometheus/dcmon-rules.yml``,
``docs/monitoring.md``) show.

- the live PUE: a short-window energy ratio (the last 15 minutes), not an instantaneous power ratio;
- each rack's latest power and each meter's latest reading (silent meters);
- the quarter-to-date PUE and its coverage over the *elapsed* part of the quarter (calendar
  quarter in the facility's time zone, up to now), and the share of the quarter elapsed.

The PUE limit and the minimum coverage alerts compare come from the profiles
(:func:`.checks.pue_limit`, :func:`.checks.min_coverage`). Alerts are operational signals; the
verdict on a period stays with ``dcmon evaluate`` (exact comparisons, coverage rules) — an
alert says "look now", not "failed".
"""
from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from dcmon.metrics import pue as pue_mod
from dcmon.metrics.figures import inventory_at, rack_coverage, rack_coverage_weights
from dcmon.metrics.streaming import meters_params, rack_params, source_energy

from dcmon.periods import quarter_of, zone


def live_pue(store, facility, now: pd.Timestamp | None = None, window: dt.timedelta = dt.timedelta(minutes=15)) -> dict:
    """PUE over the last ``window`` (an energy ratio, not an instantaneous power ratio)."""
    now = now or pd.Timestamp.now(tz="UTC")
    end_ms = now.value // 10**6
    edges = np.array([end_ms - int(window.total_seconds() * 1000), end_ms], dtype=np.int64)
    meters = facility.meters
    # a live window is short and read every few seconds: a silent meter is no energy, not a search
    ms = source_energy(store, facility.id, "meter", [m.id for m in meters], meters_params(facility),
                       np.arange(len(meters)), len(meters), edges, search_edges=False)
    roles = np.array([m.role for m in meters])
    f = float(ms.energy_kwh[roles == "facility"].sum())
    cov_f = float(ms.coverage[roles == "facility"].min()) if (roles == "facility").any() else 0.0
    if facility.it_energy_from == "racks":
        ids = list(facility.racks["rack_id"])
        inv, _ = inventory_at(store, facility, now)
        w = rack_coverage_weights(inv, ids)
        rs = source_energy(store, facility.id, "rack", ids, rack_params(facility),
                           np.zeros(len(ids), dtype=np.int64), 1, edges, coverage_weights=w)
        i, cov_i = float(rs.energy_kwh.sum()), rack_coverage(rs.coverage, w)
    else:
        i = float(ms.energy_kwh[roles == "it"].sum())
        cov_i = float(ms.coverage[roles == "it"].min()) if (roles == "it").any() else 0.0
    hours = window.total_seconds() / 3600
    return {"pue": pue_mod.pue(f, i), "window_minutes": window.total_seconds() / 60, "to": now.isoformat(),
            "facility_energy_kwh": f, "it_energy_kwh": i, "facility_load_kw": f / hours, "it_load_kw": i / hours,
            "coverage": min(cov_f, cov_i)}


def rack_snapshot(store, facility, now: pd.Timestamp | None = None,
                  window: dt.timedelta = dt.timedelta(minutes=30)) -> pd.DataFrame:
    """Latest power of each rack within ``window`` before ``now`` and its share of design power.

    Columns: rack_id, room, row, position, design_power_kw [kW], function, status, power_kw [kW]
    (NaN when the rack reported nothing in the window), share [-] = power_kw / design_power_kw,
    last_ts (UTC).
    """
    now = now or pd.Timestamp.now(tz="UTC")
    inv, _ = inventory_at(store, facility, now)
    t = store.read(facility.id, "rack", now - pd.Timedelta(window), now, columns=["source_id", "ts", "power_kw"])
    out = inv.copy()
    if t.num_rows:
        df = t.to_pandas().dropna(subset=["power_kw"]).sort_values(["source_id", "ts"])
        last = df.groupby("source_id").last()
        out["power_kw"] = out["rack_id"].map(last["power_kw"]).astype("float64")
        out["last_ts"] = out["rack_id"].map(last["ts"])
    else:
        out["power_kw"] = np.nan
        out["last_ts"] = pd.NaT
    out["share"] = out["power_kw"] / out["design_power_kw"]
    return out


def meter_status(store, facility, now: pd.Timestamp | None = None,
                 lookback: dt.timedelta = dt.timedelta(hours=24)) -> list[dict]:
    """Each meter's latest reading before ``now`` and whether it has gone silent.

    A meter is ``silent`` when its latest reading is older than its ``max_gap_s`` (the gap after
    which coverage is lost) or when it sent nothing in the ``lookback`` window.
    Returns, per meter in registry order: meter_id, role, last_ts (UTC ms or None),
    age_s [s] (None when nothing in the lookback), max_gap_s [s], silent [bool].
    """
    now = now or pd.Timestamp.now(tz="UTC")
    now_ms = now.value // 10**6
    t = store.read(facility.id, "meter", now - pd.Timedelta(lookback), now, columns=["source_id", "ts"])
    last: dict[str, int] = {}
    if t.num_rows:
        g = t.group_by("source_id").aggregate([("ts", "max")])
        ts_ms = pc.cast(g.column("ts_max"), pa.timestamp("ms", tz="UTC")).cast(pa.int64())
        last = dict(zip(g.column("source_id").to_pylist(), ts_ms.to_pylist()))
    out = []
    for m in facility.meters:
        ts = last.get(m.id)
        age = None if ts is None else (now_ms - int(ts)) / 1000
        out.append({"meter_id": m.id, "role": m.role, "last_ts": ts, "age_s": age, "max_gap_s": m.max_gap_s,
                    "silent": age is None or age > m.max_gap_s})
    return out


def quarter_bounds(now: pd.Timestamp, timezone: str) -> tuple[pd.Timestamp, pd.Timestamp, str]:
    """``(start, end, label)`` of the calendar quarter holding ``now`` in ``timezone`` (UTC, half-open)."""
    q = quarter_of(now.tz_convert(zone(timezone)).date())
    start, end = q.utc_bounds(timezone)
    return start, end, q.label


def best_case_coverage(coverage: float, elapsed_ratio: float) -> float:
    """The quarter's coverage if every remaining moment is covered [-].

    ``coverage`` [-] is the covered share of the elapsed part, ``elapsed_ratio`` [-] the elapsed
    share of the quarter: best = coverage × elapsed + (1 − elapsed). Below the minimum, the
    quarter can no longer reach it.
    """
    return coverage * elapsed_ratio + (1.0 - elapsed_ratio)


def quarter_to_date(store, facility, now: pd.Timestamp | None = None) -> dict:
    """PUE and coverage of the quarter so far (its first moment to ``now``).

    Returns quarter (label), pue [-] (None without IT energy), facility_energy_kwh, it_energy_kwh
    [kWh], coverage [-] (lower of facility and IT coverage over the elapsed time, as
    :func:`live_pue` measures it), elapsed_ratio [-], best_case_coverage [-].
    """
    now = now or pd.Timestamp.now(tz="UTC")
    start, end, label = quarter_bounds(now, facility.timezone)
    elapsed = now - start
    live = live_pue(store, facility, now, window=elapsed.to_pytimedelta()) if elapsed > pd.Timedelta(0) else \
        {"pue": None, "facility_energy_kwh": 0.0, "it_energy_kwh": 0.0, "coverage": 0.0}
    elapsed_ratio = elapsed / (end - start)
    return {"quarter": label, "pue": live["pue"], "facility_energy_kwh": live["facility_energy_kwh"],
            "it_energy_kwh": live["it_energy_kwh"], "coverage": live["coverage"], "elapsed_ratio": elapsed_ratio,
            "best_case_coverage": best_case_coverage(live["coverage"], elapsed_ratio)}


def seconds_since(ts_ms: int | None, now: dt.datetime | pd.Timestamp) -> float:
    """Seconds from a reading's time stamp [ms] to ``now``; +inf when there is none."""
    if ts_ms is None:
        return float("inf")
    return (pd.Timestamp(now).value // 10**6 - int(ts_ms)) / 1000.0
