"""The readings a user can choose for an evaluation (rack basis, compute-share reading,
inventory, minimum coverage, bins); every output prints the ones used."""
from __future__ import annotations

from pydantic import field_validator

from dcmon.config.errors import Settings, fail
from dcmon.metrics import racks as racks_mod
from dcmon.metrics.policy import DEFAULT_MIN_COVERAGE

INVENTORIES = ("end_of_period", "time_weighted")
BINS = (None, "day", "month")


class Options(Settings):
    """The readings a user can choose; every output prints the ones used.

    A bad value raises ``ValueError`` naming the reading and the value (see ``Settings``).
    """

    rack_basis: str = "standard"              # standard | physical
    compute_share_reading: str = "design_power"
    inventory: str = "end_of_period"          # end_of_period | time_weighted
    min_coverage: float = DEFAULT_MIN_COVERAGE
    bins: str | None = None                   # None | day | month: adds a per-bin table

    # "plain" validators: a value they accept is kept exactly as given
    @field_validator("rack_basis", mode="plain")
    @classmethod
    def _rack_basis(cls, v):
        if not isinstance(v, str) or v not in racks_mod.RACK_BASES:
            raise fail(f"rack basis must be standard or physical: {v!r}")
        return v

    @field_validator("compute_share_reading", mode="plain")
    @classmethod
    def _compute_share_reading(cls, v):
        if not isinstance(v, str) or v not in racks_mod.COMPUTE_SHARE_READINGS:
            raise fail(f"compute-share reading must be one of {', '.join(racks_mod.COMPUTE_SHARE_READINGS)}: {v!r}")
        return v

    @field_validator("inventory", mode="plain")
    @classmethod
    def _inventory(cls, v):
        if v not in INVENTORIES:
            raise fail(f"inventory must be end_of_period or time_weighted: {v!r}")
        return v

    @field_validator("min_coverage", mode="plain")
    @classmethod
    def _min_coverage(cls, v):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v <= 1:
            raise fail(f"minimum coverage must be between 0 and 1: {v!r}")
        return v

    @field_validator("bins", mode="plain")
    @classmethod
    def _bins(cls, v):
        if v not in BINS:
            raise fail(f"bins must be day or month: {v!r}")
        return v

    def to_json(self) -> dict:
        return {"rack_basis": self.rack_basis, "rack_basis_text": racks_mod.RACK_BASES[self.rack_basis],
                "compute_share_reading": self.compute_share_reading,
                "compute_share_text": racks_mod.COMPUTE_SHARE_READINGS[self.compute_share_reading],
                "inventory": self.inventory, "min_coverage": self.min_coverage}
