"""Durability helpers every writer of ``<data>`` shares (store files, quarantine, InfluxDB outbox)."""
from __future__ import annotations

import os
from pathlib import Path


def fsync_dir(path: Path) -> None:
    """Make a folder's entries (a rename into it, a removal) durable: after a file's own fsync, its
    name is only safe once the folder is fsync'd too (reliability.md #8)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
