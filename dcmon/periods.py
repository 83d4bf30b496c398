"""The one period parser: calendar periods in a facility's time zone.

A period is a range of whole calendar days, inclusive at both ends, as users say it
("2026-07-01 to 2026-09-30", "2026Q3", "2026"). It becomes a half-open UTC interval
``[start, end)`` only for a given time zone, because a quarter in Asia/Shanghai starts
at 16:00 UTC on the previous day.
"""
from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dcmon.errors import InputError

if TYPE_CHECKING:
    import pandas as pd

_QUARTER = re.compile(r"^(\d{4})\s*-?\s*Q([1-4])$", re.IGNORECASE)


@dataclass(frozen=True)
class Period:
    """Inclusive calendar-day range ``first_day .. last_day``."""

    first_day: dt.date
    last_day: dt.date
    label: str = ""

    def __post_init__(self):
        if self.last_day < self.first_day:
            raise InputError(f"period ends before it starts: {self.first_day} to {self.last_day}")

    @property
    def days(self) -> int:
        return (self.last_day - self.first_day).days + 1

    @property
    def is_annual(self) -> bool:
        """True when the period covers exactly 12 calendar months (ISO/IEC 30134-2 annual PUE)."""
        fd = self.first_day
        try:
            same_day_next_year = fd.replace(year=fd.year + 1)
        except ValueError:  # 29 February
            same_day_next_year = dt.date(fd.year + 1, 3, 1)
        return self.last_day == same_day_next_year - dt.timedelta(days=1)

    def utc_bounds(self, timezone: str) -> tuple[pd.Timestamp, pd.Timestamp]:
        """Half-open ``[start, end)`` in UTC for the facility time zone ``timezone``."""
        import pandas as pd   # here, not at import: every command parses a period, few need pandas before
        tz = zone(timezone)
        start = pd.Timestamp(dt.datetime.combine(self.first_day, dt.time(), tz)).tz_convert("UTC")
        end = pd.Timestamp(
            dt.datetime.combine(self.last_day + dt.timedelta(days=1), dt.time(), tz)
        ).tz_convert("UTC")
        return start, end

    def to_json(self) -> dict:
        return {"from": self.first_day.isoformat(), "to": self.last_day.isoformat(), "days": self.days,
                "label": self.label or f"{self.first_day.isoformat()}..{self.last_day.isoformat()}"}

    def previous_year_end(self) -> dt.date:
        """31 December of the year before the period starts (seed 001 asks for the share then)."""
        return dt.date(self.first_day.year - 1, 12, 31)


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise InputError(f"unknown time zone: {name!r} (use an IANA name such as Asia/Shanghai)") from None


def parse_date(text: str, what: str = "date") -> dt.date:
    try:
        return dt.date.fromisoformat(str(text).strip())
    except ValueError:
        raise InputError(f"{what} is not a calendar date YYYY-MM-DD: {text!r}") from None


def quarter(text: str) -> Period:
    m = _QUARTER.match(str(text).strip())
    if not m:
        raise InputError(f"--quarter must look like 2026Q3: {text!r}")
    year, q = int(m.group(1)), int(m.group(2))
    first = dt.date(year, 3 * q - 2, 1)
    last = (dt.date(year + (q == 4), (3 * q) % 12 + 1, 1)) - dt.timedelta(days=1)
    return Period(first, last, f"{year}Q{q}")


def quarter_of(day: dt.date) -> Period:
    """The calendar quarter holding ``day`` (label ``2026Q3``)."""
    return quarter(f"{day.year}Q{(day.month - 1) // 3 + 1}")


def year(text: str | int) -> Period:
    try:
        y = int(str(text).strip())
        if not 1970 <= y <= 2200:
            raise ValueError
    except ValueError:
        raise InputError(f"--year must be a year such as 2026: {text!r}") from None
    return Period(dt.date(y, 1, 1), dt.date(y, 12, 31), str(y))


def month(text: str) -> Period:
    try:
        first = dt.date.fromisoformat(str(text).strip() + "-01")
    except ValueError:
        raise InputError(f"month must look like 2026-07: {text!r}") from None
    nxt = dt.date(first.year + (first.month == 12), first.month % 12 + 1, 1)
    return Period(first, nxt - dt.timedelta(days=1), first.strftime("%Y-%m"))


def from_options(*, quarter_text=None, year_text=None, from_text=None, to_text=None) -> Period:
    """Build the period from the CLI's mutually exclusive options, naming what is wrong."""
    given = [n for n, v in (("--quarter", quarter_text), ("--year", year_text), ("--from/--to", from_text or to_text)) if v]
    if len(given) != 1:
        raise InputError("give exactly one period: --quarter 2026Q3, --year 2026, or --from YYYY-MM-DD --to YYYY-MM-DD"
                         + (f" (got {', '.join(given)})" if given else ""))
    if quarter_text:
        return quarter(quarter_text)
    if year_text:
        return year(year_text)
    if not (from_text and to_text):
        raise InputError("--from and --to go together")
    return Period(parse_date(from_text, "--from"), parse_date(to_text, "--to"))


def month_periods(period: Period) -> list[Period]:
    """The calendar months (clipped to ``period``) that make up ``period``."""
    out, d = [], period.first_day
    while d <= period.last_day:
        m = month(d.strftime("%Y-%m"))
        out.append(Period(max(m.first_day, period.first_day), min(m.last_day, period.last_day), m.label))
        d = m.last_day + dt.timedelta(days=1)
    return out


def local_midnights_ms(timezone: str, lo_ms: int, hi_ms: int) -> list[int]:
    """UTC times [ms] of the local midnights of ``timezone`` strictly inside ``(lo_ms, hi_ms)``."""
    tz = zone(timezone)
    d = dt.datetime.fromtimestamp(lo_ms / 1000, tz).date()
    out = []
    while True:
        d += dt.timedelta(days=1)
        m = int(dt.datetime.combine(d, dt.time(), tz).timestamp() * 1000)
        if m >= hi_ms:
            return out
        if m > lo_ms:
            out.append(m)


def is_local_midnight(timezone: str, ms: int) -> bool:
    """True when UTC time ``ms`` [ms] is a midnight of ``timezone`` (a boundary of its local days)."""
    t = dt.datetime.fromtimestamp(ms / 1000, zone(timezone))
    return ms % 1000 == 0 and (t.hour, t.minute, t.second) == (0, 0, 0)
