"""Field checks shared by the config schemas, each failing with the sentence the user reads.

Each returns the value to keep or raises :func:`dcmon.config.errors.fail`; ``name`` is how the
sentence names the field (``FIELD`` for the dotted name of where it sits).
"""
from __future__ import annotations

import datetime as dt
import math

from dcmon.config.errors import FIELD, fail


def positive_number(value, name: str = FIELD, *, allow_zero: bool = False) -> float:
    """A finite number > 0 (≥ 0 with ``allow_zero``), as float; text such as '5' is read too."""
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise fail(f"{name} is not a number: {value!r}") from None
    if not math.isfinite(x) or x < 0 or (x == 0 and not allow_zero):
        raise fail(f"{name} must be {'≥' if allow_zero else '>'} 0: {value!r}")
    return x


def whole_seconds(value, name: str = FIELD) -> int:
    """A whole number of seconds > 0 (``300``; not ``300.5``, ``'5m'`` or ``true``)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value) or value <= 0:
        raise fail(f"{name} must be a whole number of seconds > 0: {value!r}")
    return int(value)


def iso_date(value, name: str = FIELD) -> dt.date | None:
    """``YYYY-MM-DD`` (dates stay text in our YAML loader, so they are checked here)."""
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError:
        raise fail(f"{name} is not a date YYYY-MM-DD: {value!r}") from None


def text(value, name: str = FIELD) -> str | None:
    """Non-empty text, stripped; None stays None (an optional field not given)."""
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise fail(f"{name} must be non-empty text: {value!r}")
    return value.strip()


def iana_zone(value, name: str = FIELD) -> str:
    from dcmon.periods import zone
    try:
        zone(value)
    except Exception:
        raise fail(f"{name} {value!r} is not a known IANA time zone (for example Asia/Shanghai)") from None
    return value
