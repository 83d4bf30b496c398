"""Power usage effectiveness (电能利用效率).

PUE = total facility energy ÷ IT equipment energy over the same period — a ratio of sums,
never an average of instantaneous ratios.

References: ISO/IEC 30134-2:2016 §6.2 (PUE) and §6.3 (categories); seed 003 annex §7.
"""
from __future__ import annotations

import math
from fractions import Fraction

PUE_CATEGORIES = {1: "UPS output", 2: "PDU output", 3: "IT equipment input"}


def pue(facility_energy_kwh: float | None, it_energy_kwh: float | None) -> float | None:
    """PUE [-] = facility_energy_kwh [kWh] / it_energy_kwh [kWh]; None when IT energy is missing or ≤ 0."""
    if facility_energy_kwh is None or it_energy_kwh is None:
        return None
    if math.isnan(facility_energy_kwh) or math.isnan(it_energy_kwh) or it_energy_kwh <= 0:
        return None
    return facility_energy_kwh / it_energy_kwh


def pue_exact(facility_energy_kwh: Fraction | None, it_energy_kwh: Fraction | None) -> Fraction | None:
    """PUE as the exact fraction of exact energies (what decisions use); None when IT energy is missing or ≤ 0."""
    if facility_energy_kwh is None or it_energy_kwh is None or it_energy_kwh <= 0:
        return None
    return Fraction(facility_energy_kwh) / Fraction(it_energy_kwh)


def portfolio_pue(facility_energies_kwh, it_energies_kwh) -> float | None:
    """Energy-weighted PUE of several sites: Σ facility energy / Σ IT energy (sites with both)."""
    f = i = 0.0
    for a, b in zip(facility_energies_kwh, it_energies_kwh):
        if a is None or b is None or b <= 0 or math.isnan(a) or math.isnan(b):
            continue
        f += a
        i += b
    return pue(f, i) if i > 0 else None


def label(is_annual: bool) -> str:
    """``annual`` for a 12-month period, otherwise ``interim`` (ISO/IEC 30134-2 §6.2)."""
    return "annual" if is_annual else "interim"


def energy_to_save_kwh(facility_energy_kwh: float, it_energy_kwh: float, target_pue: float) -> float:
    """Facility energy [kWh] above ``target_pue × IT energy``: what must be saved, at the same IT energy,
    to reach the target (positive) or the headroom left (negative)."""
    return facility_energy_kwh - target_pue * it_energy_kwh
