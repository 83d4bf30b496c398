"""Telemetry store: one interface (:class:`Store`), a Parquet dataset by default.

``open_store(data_dir)`` is how every other layer gets one.
"""
from dcmon.store.base import AppendResult, DamagedFile, Store
from dcmon.store.parquet import ParquetStore


def open_store(data_dir, **kwargs) -> Store:
    return ParquetStore(data_dir, **kwargs)


__all__ = ["AppendResult", "DamagedFile", "Store", "ParquetStore", "open_store"]
