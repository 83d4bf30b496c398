import datetime as dt

import pandas as pd
import pytest

from dcmon.errors import InputError
from dcmon.periods import Period, from_options, month_periods, quarter, year


def test_quarter_in_shanghai_starts_at_1600_utc_the_day_before():
    p = quarter("2026Q3")
    assert (p.first_day, p.last_day, p.days) == (dt.date(2026, 7, 1), dt.date(2026, 9, 30), 92)
    start, end = p.utc_bounds("Asia/Shanghai")
    assert start == pd.Timestamp("2026-06-30T16:00Z") and end == pd.Timestamp("2026-09-30T16:00Z")


@pytest.mark.parametrize("text, first, last", [("2026Q1", "2026-01-01", "2026-03-31"), ("2024q1", "2024-01-01", "2024-03-31"),
                                               ("2026-Q4", "2026-10-01", "2026-12-31")])
def test_quarters(text, first, last):
    p = quarter(text)
    assert (p.first_day.isoformat(), p.last_day.isoformat()) == (first, last)


def test_annual_label():
    assert year(2026).is_annual and Period(dt.date(2025, 7, 1), dt.date(2026, 6, 30)).is_annual
    assert not quarter("2026Q3").is_annual
    assert not Period(dt.date(2026, 1, 1), dt.date(2026, 12, 30)).is_annual


@pytest.mark.parametrize("kwargs, message", [
    ({}, "give exactly one period"),
    ({"quarter_text": "2026Q5"}, "--quarter must look like 2026Q3: '2026Q5'"),
    ({"year_text": "20x6"}, "--year must be a year"),
    ({"from_text": "2026-07-01"}, "--from and --to go together"),
    ({"from_text": "2026-07-01", "to_text": "2026-06-01"}, "period ends before it starts"),
    ({"from_text": "2026-07-32", "to_text": "2026-08-01"}, "--from is not a calendar date YYYY-MM-DD: '2026-07-32'"),
    ({"quarter_text": "2026Q3", "year_text": "2026"}, "got --quarter, --year"),
])
def test_bad_period_options_are_named(kwargs, message):
    with pytest.raises(InputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        from_options(**kwargs)


def test_month_periods_clip():
    ms = month_periods(Period(dt.date(2026, 7, 15), dt.date(2026, 9, 10)))
    assert [(m.first_day.day, m.last_day.day) for m in ms] == [(15, 31), (1, 31), (1, 10)]
