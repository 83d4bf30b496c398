"""From registry + store + period to the figures every output shares.

``dcmon evaluate``, the dashboard, the quarterly export and the evidence report all call
:func:`evaluate` (or :func:`facility_figures`), so they never disagree. This is the public
entry; the work is done along three seams:

- :mod:`.figures` (with :mod:`.streaming`): energy, PUE and racks of a facility, assembled from
  the store with their period, basis and coverage;
- :mod:`.checks`: the policy profiles against those figures — check rows, margins as data,
  flags, verdicts, subsidy, portfolio checks;
- :mod:`.live`: the dashboard's and the exporter's live queries (live PUE, meter status, rack
  snapshot, quarter to date).

Arithmetic lives in the pure modules (:mod:`.energy`, :mod:`.pue`, :mod:`.racks`,
:mod:`.policy`, :mod:`.subsidy`, :mod:`.exact`).
"""
from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
from dcmon.metrics import racks as racks_mod
from dcmon.metrics.checks import evaluate_profile, overall_verdict, portfolio
from dcmon.metrics.exact import fraction_text
from dcmon.metrics.figures import energy_figures, facility_figures, inventory_at
from dcmon.metrics.live import live_pue, meter_status, rack_snapshot
from dcmon.metrics.options import Options
from dcmon.metrics.policy import Profile, load_profiles, select_profiles
from dcmon.metrics.streaming import bin_edges, edge_readings, source_energy

from dcmon.periods import Period

# what callers import from here (the figures, checks and live queries they used before the split)
__all__ = ["Options", "evaluate", "facility_figures", "energy_figures", "inventory_at", "bin_edges",
           "edge_readings", "source_energy", "overall_verdict", "live_pue", "meter_status", "rack_snapshot"]


def evaluate(registry, store, period: Period, facility_ids: list[str] | None = None,
             profile_names: list[str] | None = None, options: Options | None = None,
             progress=None) -> dict:
    """Evaluate facilities and the portfolio for ``period``; the JSON every output shares.

    City-wide and start-area checks cover every facility of the profile's city in the
    registry, whatever subset was asked for (the others are evaluated for that purpose only).
    """
    options = options or Options()
    profiles = load_profiles(registry.config_dir)
    facilities = registry.select(facility_ids)
    out_facilities = []
    used_profiles: dict[str, Profile] = {}
    for fac in facilities:
        fig = facility_figures(store, fac, period, options)
        fig.pop("_rack_energy_kwh", None)
        bins = fig.pop("bins", None)
        if bins is not None:
            fig["bins"] = _records(bins)
        fig["profiles"] = {}
        for prof in select_profiles(profiles, profile_names, fac):
            used_profiles[prof.id] = prof
            fig["profiles"][prof.id] = evaluate_profile(fig, prof, fac, options, period)
        out_facilities.append(fig)
        if progress:
            progress(fac.id)
    figs_by_id = {f["facility_id"]: f for f in out_facilities}
    scope_options = Options(**{**options.__dict__, "bins": None})

    def city_figures(city: str) -> list[dict]:
        out = []
        for fac in registry.select(None):
            if fac.city != city:
                continue
            if fac.id not in figs_by_id:
                fig = facility_figures(store, fac, period, scope_options)
                fig.pop("_rack_energy_kwh", None)
                fig.pop("bins", None)
                figs_by_id[fac.id] = fig
            out.append(figs_by_id[fac.id])
        return out
    pf = portfolio(out_facilities, used_profiles.values(), options, city_figures)
    for f in out_facilities:
        # the exact figures checks compared, as fractions a reader can verify ("5/4")
        f["exact"] = {k: fraction_text(v) for k, v in f.pop("_exact", {}).items() if v is not None}
    return {
        "period": period.to_json(),
        "generated_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "basis": {**options.to_json(), "standard_rack_kw": racks_mod.STANDARD_RACK_KW,
                  "pue": "ratio of sums: Σ facility energy ÷ Σ IT energy over the period (ISO/IEC 30134-2)",
                  "periods": "inclusive calendar days in each facility's time zone",
                  "coverage": "share of the period spanned by readings no further apart than each meter's max_gap; "
                              "PUE coverage is the lower of facility and IT energy coverage",
                  "decisions": "exact: energies in whole milliwatt-hours, design powers and thresholds at their decimal "
                               "values, ratios compared as fractions (README: How the numbers are made)"},
        "facilities": out_facilities,
        "portfolio": pf,
    }


def _records(df: pd.DataFrame) -> list[dict]:
    return [{k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in r.items()}
            for r in df.to_dict(orient="records")]


