"""The readings a user can choose for an evaluation (rack basis, compute-share reading,
inventory, minimum coverage, bins); every output prints the ones used."""
from __future__ import annotations

from dataclasses import dataclass

from dcmon.metrics import racks as racks_mod
from dcmon.metrics.policy import DEFAULT_MIN_COVERAGE


@dataclass
class Options:
    """The readings a user can choose; every output prints the ones used."""

    rack_basis: str = "standard"              # standard | physical
    compute_share_reading: str = "design_power"
    inventory: str = "end_of_period"          # end_of_period | time_weighted
    min_coverage: float = DEFAULT_MIN_COVERAGE
    bins: str | None = None                   # None | day | month: adds a per-bin table

    def __post_init__(self):
        if self.rack_basis not in racks_mod.RACK_BASES:
            raise ValueError(f"rack basis must be standard or physical: {self.rack_basis!r}")
        if self.compute_share_reading not in racks_mod.COMPUTE_SHARE_READINGS:
            raise ValueError(f"compute-share reading must be one of "
                             f"{', '.join(racks_mod.COMPUTE_SHARE_READINGS)}: {self.compute_share_reading!r}")
        if self.inventory not in ("end_of_period", "time_weighted"):
            raise ValueError(f"inventory must be end_of_period or time_weighted: {self.inventory!r}")
        if not 0 <= self.min_coverage <= 1:
            raise ValueError(f"minimum coverage must be between 0 and 1: {self.min_coverage!r}")
        if self.bins not in (None, "day", "month"):
            raise ValueError(f"bins must be day or month: {self.bins!r}")

    def to_json(self) -> dict:
        return {"rack_basis": self.rack_basis, "rack_basis_text": racks_mod.RACK_BASES[self.rack_basis],
                "compute_share_reading": self.compute_share_reading,
                "compute_share_text": racks_mod.COMPUTE_SHARE_READINGS[self.compute_share_reading],
                "inventory": self.inventory, "min_coverage": self.min_coverage}
