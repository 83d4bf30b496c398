"""Telemetry store: one interface (:class:`Store`), a Parquet dataset by default.

``open_store(data_dir)`` opens the Parquet store; entry points (and tests) call it and hand the
``Store`` on. Other layers use only the interface (:mod:`dcmon.store.base`): readings, the
rack-inventory index, status documents, reading digests and the quarantine.
"""
from dcmon.store.base import INVENTORY_KIND, AppendResult, DamagedFile, Store
from dcmon.store.parquet import ParquetStore


def open_store(data_dir, **kwargs) -> Store:
    return ParquetStore(data_dir, **kwargs)


__all__ = ["INVENTORY_KIND", "AppendResult", "DamagedFile", "Store", "ParquetStore", "open_store"]
