"""Exact numbers for the policy layer: ε values and SDC ratios as :class:`~fractions.Fraction`.

A float is read through its shortest ``repr`` (``0.1`` is exactly one tenth, not the binary
double nearest to it), a string as a decimal literal or an exact ``"num/den"`` fraction
(ε shares such as ``"1/3"``), an int as itself. Budget sums and
threshold comparisons are then exact (STYLE.md item 3): ``0.8 + 0.2 <= 1.0`` holds, and
``0.1 + 0.2`` does not overspend a ``0.3`` budget.

Examples
--------
>>> exact(0.1) + exact(0.2) == exact("0.3")
True
>>> canonical(exact("1.50"))
'1.5'
>>> canonical(exact("2/6"))
'1/3'
"""

from __future__ import annotations

import math
import numbers
import re
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from typing import Any

import numpy as np

_FRACTION = re.compile(r"^-?\d+/[1-9]\d*$")


def is_int(value: Any) -> bool:
    """True for ints (numpy ints too), False for bools and everything else."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool | np.bool_)


def is_number(value: Any) -> bool:
    """True for finite ints and floats (numpy too), False for bools, NaN and infinities."""
    if isinstance(value, bool | np.bool_):
        return False
    if is_int(value):
        return True
    return isinstance(value, numbers.Real) and math.isfinite(float(value))


def exact(value: Any) -> Fraction:
    """The exact rational value of an int, a float (via its repr) or a decimal string.

    Raises
    ------
    ValueError
        For anything else (bools, NaN, infinities, non-numeric strings).
    """
    if is_int(value):
        return Fraction(int(value))
    if is_number(value):
        return Fraction(Decimal(repr(float(value))))
    if isinstance(value, str) and _FRACTION.match(value.strip()):
        return Fraction(value.strip())
    if isinstance(value, str):
        try:
            d = Decimal(value.strip())
        except InvalidOperation:
            raise ValueError(f"not a decimal number: {value!r}") from None
        if d.is_finite():
            return Fraction(d)
    raise ValueError(f"not a finite number: {value!r}")


def canonical(value: Fraction) -> str:
    """Shortest decimal string of a fraction whose decimal expansion terminates.

    A fraction without a finite decimal expansion (an ε share such as 1/3) is written
    exactly as ``"num/den"``.
    """
    den, k = value.denominator, 0
    while den % 10 == 0:
        den, k = den // 10, k + 1
    while den % 2 == 0 or den % 5 == 0:
        den, k = (den // 2 if den % 2 == 0 else den // 5), k + 1
    if den != 1:
        return f"{value.numerator}/{value.denominator}"
    scaled = value.numerator * 10**k // value.denominator
    text = format(Decimal(scaled).scaleb(-k), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


__all__ = ["canonical", "exact", "is_int", "is_number"]
