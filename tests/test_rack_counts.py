"""Rack figures from counts (``metrics.racks.RackCounts``) against values worked out by hand."""
from fractions import Fraction

import numpy as np
import pandas as pd

from dcmon.metrics import racks as R


def inv(rows):
    return pd.DataFrame(rows, columns=["rack_id", "design_power_kw", "function", "status"])


# 7.7 and 0.1 are not exact binary floats: the sums must be those of the decimals
INV = inv([
    ("A", 7.7, "compute", "in_service"),
    ("B", 7.7, "compute", "in_service"),
    ("C", 0.1, "storage", "in_service"),
    ("D", 2.5, "network", "in_service"),
    ("E", 6.0, "compute", "vacant"),
    ("F", 9.0, "compute", "decommissioned"),
    ("G", np.nan, "other", "reserved"),      # a missing power counts as a rack without design power
])


def test_exact_figures_by_hand():
    x = R.exact_summary(R.rack_counts(INV))
    design = Fraction(77, 10) * 2 + Fraction(1, 10) + Fraction(5, 2) + 6      # existing: A-E and G
    ins = Fraction(77, 10) * 2 + Fraction(1, 10) + Fraction(5, 2)             # 18 kW
    assert design == 24 and ins == 18
    assert x["physical_racks"] == 6 and x["in_service_racks"] == 4
    assert x["design_it_power_kw"] == 24 and x["in_service_design_power_kw"] == 18
    assert x["standard_racks"] == Fraction(24 * 2, 5) and x["in_service_standard_racks"] == Fraction(36, 5)
    assert x["compute_design_power_kw"] == Fraction(154, 10)
    assert x["avg_design_power_per_rack_kw"] == 4 and x["occupancy_rate"] == Fraction(3, 4)
    assert R.compute_share_exact(INV) == Fraction(154, 180)                   # 15.4 / 18
    assert R.compute_share_exact(INV, "rack_count") == Fraction(2, 4)
    assert R.compute_share_exact(INV, "compute_storage") == Fraction(154, 155)  # 15.4 / 15.5


def test_summary_by_hand():
    s = R.rack_summary(INV)
    assert s["physical_racks"] == 6 and s["decommissioned_racks"] == 1
    assert s["standard_racks"] == 9.6 and s["occupancy_rate"] == 0.75 and s["size_class"] == "micro"
    assert s["racks_by_status"] == {"decommissioned": 1, "in_service": 4, "reserved": 1, "vacant": 1}
    assert s["racks_by_function"] == {"compute": 2, "network": 1, "storage": 1}


def test_it_energy_reading_by_hand():
    e = pd.Series({"A": 1.0, "B": 2.0, "C": 0.5, "F": 0.5})   # D, E, G without energy: 0
    assert R.compute_share_exact(R.rack_counts(INV), "it_energy", e) == Fraction(3_500_000, 4_000_000)


def test_empty_and_no_in_service():
    empty = inv([])
    assert R.rack_summary(empty)["physical_racks"] == 0 and R.exact_summary(empty)["occupancy_rate"] is None
    none_in_service = inv([("A", 5.0, "compute", "vacant")])
    assert R.compute_share_exact(none_in_service) is None and R.exact_summary(none_in_service)["occupancy_rate"] == 0
