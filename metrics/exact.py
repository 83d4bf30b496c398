"""The one decision rule: figures compared with thresholds exactly, as fractions.

Every threshold decision (``<``, ``<=``, ``>``, ``>=``) of every profile, on every figure,
goes through :func:`decide`. A figure is a ratio or sum of decimal inputs:

* energies in whole milliwatt-hours (see :mod:`.energy`: counters read to 0.000001 kWh,
  differenced as integers; pairs split at a period edge add an exact fraction; power
  integration rounded to the milliwatt-hour per source);
* design powers [kW] and other registry numbers at their decimal value (the shortest decimal
  that reads back as the stored number, so ``7.7`` is 77/10, not 7.70000000000000017…);
* thresholds at the decimal value written in the profile (``1.25`` is 5/4).

A ratio (PUE, occupancy, compute share, kW per rack) is kept as the fraction of those exact
sums, so ``12 000 / 9 600`` *is* 1.25 and fails ``PUE < 1.25``; no float rounding can flip a
decision. :func:`figure_text` prints a figure so that the text agrees with the decision: when
the usual digits would show the threshold itself for a figure that is not equal to it, more
digits are printed (``1.2499`` passes ``< 1.25``; ``1.250`` never does).
"""
from __future__ import annotations

import math
import operator
from decimal import ROUND_HALF_EVEN, Decimal
from fractions import Fraction

import numpy as np

OPS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}
MAX_DIGITS = 12  # figure_text never prints more decimals than this


def to_fraction(x) -> Fraction | None:
    """Exact value of ``x``: a Fraction or int as is, a str as written ("1.25", "5/4"), a float at its shortest decimal."""
    if x is None:
        return None
    if isinstance(x, Fraction):
        return x
    if isinstance(x, (bool, np.bool_)):
        raise TypeError(f"not a number: {x!r}")
    if isinstance(x, (int, np.integer)):
        return Fraction(int(x))
    if isinstance(x, (Decimal, str)):
        return Fraction(x)  # "1.25", "5/4"
    f = float(x)
    if math.isnan(f) or math.isinf(f):
        return None
    return Fraction(repr(f))


def exact_sum(values) -> Fraction:
    """Σ of decimal inputs (floats at their shortest decimal), exact; NaN is skipped.

    Summed by distinct value × count, so a long column of a few distinct design powers costs
    little.
    """
    a = np.asarray(values, dtype=np.float64)
    a = a[~np.isnan(a)]
    if a.size == 0:
        return Fraction(0)
    u, n = np.unique(a, return_counts=True)
    return sum((Fraction(repr(float(x))) * int(k) for x, k in zip(u, n)), Fraction(0))


def ratio(num, den) -> Fraction | None:
    """``num / den`` exactly; None when the denominator is missing or not positive."""
    n, d = to_fraction(num), to_fraction(den)
    if n is None or d is None or d <= 0:
        return None
    return n / d


def decide(value, op: str, threshold) -> bool:
    """Whether ``value op threshold`` holds, on exact values."""
    if op not in OPS:
        raise ValueError(f"op must be one of < <= > >=: {op!r}")
    return bool(OPS[op](to_fraction(value), to_fraction(threshold)))


def figure_text(value, digits: int, threshold=None, percent: bool = False) -> str:
    """``value`` with ``digits`` decimals (as a percentage with ``percent``), agreeing with the decision.

    Rounding is half-even on the exact value. If the text would equal the threshold while the
    value does not, decimals are added until it differs (at most :data:`MAX_DIGITS`, then the
    text carries ``+``/``−`` to show the side).
    """
    v = to_fraction(value)
    if v is None:
        return "—"
    scale = 100 if percent else 1
    th = to_fraction(threshold)
    for d in range(digits, MAX_DIGITS + 1):
        text = _round_text(v * scale, d)
        if th is None or v == th or Fraction(Decimal(text)) != th * scale:
            return text + ("%" if percent else "")
    side = "+" if v > th else "−"
    return _round_text(v * scale, MAX_DIGITS) + side + ("%" if percent else "")


def _round_text(v: Fraction, digits: int) -> str:
    q = Decimal(1).scaleb(-digits)
    d = (Decimal(v.numerator) / Decimal(v.denominator)) if v.denominator != 1 else Decimal(v.numerator)
    # the division above is at 28 significant digits; exact enough to round to ≤ 12 decimals
    return str(d.quantize(q, rounding=ROUND_HALF_EVEN)) if digits > 0 else str(d.quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


def fraction_text(value) -> str | None:
    """An exact figure as ``numerator/denominator`` (or an integer), for the JSON and the evidence."""
    v = to_fraction(value)
    if v is None:
        return None
    return str(v.numerator) if v.denominator == 1 else f"{v.numerator}/{v.denominator}"
