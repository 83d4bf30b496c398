"""The rack-inventory index: the rack rows that state a status, function or design power, kept by
the store under kind :data:`~dcmon.store.base.INVENTORY_KIND` as rack readings are appended.

"Inventory as of a date" (metrics) then reads a few thousand rows a month instead of scanning
every rack power reading. The index rows are copies of rack rows already counted under
``kind=rack``: appending them never adds to the written or duplicate counts.
"""
from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from dcmon.readings import SCHEMA
from dcmon.store.base import INVENTORY_KIND

# Kinds with thousands of rows a day, partitioned by UTC month rather than by day.
MONTHLY_KINDS = {"meter", INVENTORY_KIND}


def inventory_rows(table: pa.Table) -> pa.Table | None:
    """Rack rows that change status, function or design power, relabelled for the inventory index."""
    kind = table.column("kind")
    if not pc.any(pc.equal(kind, "rack")).as_py():
        return None
    has = pc.or_(pc.or_(pc.is_valid(table.column("status")), pc.is_valid(table.column("function"))),
                 pc.is_valid(table.column("design_power_kw")))
    mask = pc.and_(pc.equal(kind, "rack"), has)
    if not pc.any(mask).as_py():
        return None
    inv = table.filter(mask)
    arrays = [pa.array([INVENTORY_KIND] * inv.num_rows, pa.string()) if f.name == "kind" else inv.column(f.name)
              for f in SCHEMA]
    return pa.Table.from_arrays(arrays, schema=SCHEMA)
