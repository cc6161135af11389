"""The ``DP`` parameter object: how much privacy a release may spend, and for whom.

``sf.DP(epsilon=0.5)`` is what an analyst passes to an analysis. It is frozen and
validated when built, and it stores ε and δ **exactly**, as :class:`fractions.Fraction`
(STYLE.md item 3), so that budgets add up without rounding: 0.1 + 0.2 fits a 0.3 budget.

How numbers become fractions (:func:`exact`):

* ``int``, ``Fraction``: as they are.
* ``str``: parsed by :class:`~fractions.Fraction`, so ``"0.1"``, ``"1/10"`` and ``"1e-5"``
  are all exact.
* ``Decimal``: exactly (``Decimal("0.1")`` is 1/10).
* ``float``: through its shortest decimal representation, ``Fraction(repr(x))``, so the
  float ``0.1`` means 1/10 (what the user typed), not the binary value
  0.1000000000000000055511151231257827... This is the one place where a float is
  interpreted; pass a ``str``, ``Decimal`` or ``Fraction`` to be explicit.

``bool``, NaN, infinities and anything else are refused with
:class:`~safeflow.errors.InvalidParameter`, whose message names the valid range.

Examples
--------
>>> from safeflow.dp import DP
>>> d = DP(0.1)
>>> d.epsilon
Fraction(1, 10)
>>> d.epsilon + DP("0.2").epsilon == DP(0.3).epsilon
True
>>> DP(1, delta=1e-6).mechanism_for("count")
'gaussian'
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction
from typing import Any, Literal, get_args

from safeflow.errors import InvalidParameter

Unit = Literal["patient", "row"]
Mode = Literal["central", "local"]
MechanismName = Literal["laplace", "gaussian"]

UNITS: tuple[str, ...] = get_args(Unit)
MODES: tuple[str, ...] = get_args(Mode)
MECHANISMS: tuple[str, ...] = get_args(MechanismName)

#: largest ε one ``DP`` object may ask for (a sanity limit, not a recommendation)
MAX_EPSILON = Fraction(10)
#: largest δ one ``DP`` object may ask for
MAX_DELTA = Fraction(1, 100_000)


def exact(value: Any, name: str = "value") -> Fraction:
    """Convert ``value`` to an exact :class:`~fractions.Fraction` (see the module docstring).

    Parameters
    ----------
    value : int, float, str, Decimal or Fraction
        The number. Floats go through their decimal representation (``0.1`` -> 1/10).
    name : str
        The parameter's name, for the error message.

    Returns
    -------
    Fraction
        The exact value; it is finite.

    Raises
    ------
    InvalidParameter
        For booleans, NaN, infinities, and values that are not numbers.

    Examples
    --------
    >>> exact(0.1), exact("1/3"), exact(2)
    (Fraction(1, 10), Fraction(1, 3), Fraction(2, 1))
    >>> from decimal import Decimal
    >>> exact(Decimal("0.25"))
    Fraction(1, 4)
    >>> exact(float("nan"), "epsilon")
    Traceback (most recent call last):
    ...
    safeflow.errors.InvalidParameter: epsilon must be a finite number; got nan
    """
    if isinstance(value, bool):
        raise InvalidParameter(f"{name} must be a number, not a bool; got {value!r}")
    try:
        if isinstance(value, Fraction):
            return value
        if isinstance(value, int | numbers.Integral):
            return Fraction(int(value))
        if isinstance(value, float | numbers.Real) and not isinstance(value, Decimal):
            f = float(value)
            if not math.isfinite(f):
                raise InvalidParameter(f"{name} must be a finite number; got {value!r}")
            return Fraction(repr(f))
        if isinstance(value, Decimal):
            if not value.is_finite():
                raise InvalidParameter(f"{name} must be a finite number; got {value!r}")
            return Fraction(value)
        if isinstance(value, str):
            return Fraction(value.strip())
    except (ValueError, ZeroDivisionError, OverflowError, TypeError) as e:
        raise InvalidParameter(f"{name} must be a finite number; got {value!r}") from e
    raise InvalidParameter(
        f"{name} must be an int, float, str, Decimal or Fraction; got {type(value).__name__}"
    )


def fraction_str(x: Fraction) -> str:
    """Canonical ``"num/den"`` text of a fraction (what the ledger and the facts store).

    Examples
    --------
    >>> fraction_str(Fraction(1, 10)), fraction_str(Fraction(2))
    ('1/10', '2/1')
    """
    return f"{x.numerator}/{x.denominator}"


def _fmt(value: Any) -> str:
    """How a rejected value is shown in a message: ``-1``, not ``Fraction(-1, 1)``."""
    if isinstance(value, Fraction):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


@dataclass(frozen=True)
class DP:
    """Differential-privacy parameters of one release: ``sf.DP(epsilon=0.5)``.

    Parameters
    ----------
    epsilon : int, float, str, Decimal or Fraction
        Privacy-loss budget of the release, ``0 < ε ≤ 10``; stored exactly as a Fraction
        (a float goes through its decimal repr: ``0.1`` is 1/10).
    delta : same types, default 0
        ``0 ≤ δ ≤ 1e-5``. ``0`` means pure ε-DP.
    unit : {"patient", "row"}
        The unit of privacy the guarantee is about: one patient (all their rows), or one
        row. It must match the dataset's schema (``sf.Schema(unit=...)``); with
        ``"patient"`` the sensitivity uses the public bound on rows per patient.
    mode : {"central", "local"}
        ``central``: customs adds the noise once to the secure aggregate (the error of a
        single curator; customs sees the noiseless total). ``local``: every site releases
        its own noised statistics through OpenDP's Polars API (no trusted customs; the
        pooled error grows like √K for K sites). Distributed noise (every site adds a
        share before the secure sum, so nobody sees the noiseless total) is not
        implemented: ``mode="distributed"`` is refused.
    mechanism : {None, "laplace", "gaussian"}
        ``None`` chooses: the (discrete) Laplace mechanism when ``delta == 0``, the
        (discrete) Gaussian mechanism when ``delta > 0``. ``"laplace"`` needs ``delta == 0``
        and ``"gaussian"`` needs ``delta > 0``.
    alpha : float
        ``0 < alpha < 1``: accuracy statements are half-widths of ``(1 - alpha)``
        confidence intervals (default 0.05, i.e. 95 %).

    Raises
    ------
    InvalidParameter
        When a value is out of range; the message names the range, e.g.
        ``epsilon must be > 0 and ≤ 10; got -1. See sf.DP.``

    Examples
    --------
    >>> from safeflow.dp import DP
    >>> DP(0.5)
    DP(epsilon=1/2, delta=0, unit='patient', mode='central', mechanism=auto, alpha=0.05)
    >>> DP(-1)
    Traceback (most recent call last):
    ...
    safeflow.errors.InvalidParameter: epsilon must be > 0 and ≤ 10; got -1. See sf.DP.
    >>> [str(s.epsilon) for s in DP("0.5").split(3)]
    ['1/6', '1/6', '1/6']
    """

    epsilon: Fraction
    delta: Fraction = field(default=Fraction(0))
    unit: str = "patient"
    mode: str = "central"
    mechanism: str | None = None
    alpha: float = 0.05

    def __post_init__(self) -> None:
        try:
            eps: Fraction | None = exact(self.epsilon, "epsilon")
        except InvalidParameter:
            eps = None
        if eps is None or not (0 < eps <= MAX_EPSILON):
            raise InvalidParameter(
                f"epsilon must be > 0 and ≤ 10; got {_fmt(self.epsilon)}. See sf.DP."
            )
        try:
            delta: Fraction | None = exact(self.delta, "delta")
        except InvalidParameter:
            delta = None
        if delta is None or not (0 <= delta <= MAX_DELTA):
            raise InvalidParameter(
                f"delta must be ≥ 0 and ≤ 1e-5; got {_fmt(self.delta)}. See sf.DP."
            )
        if self.unit not in UNITS:
            raise InvalidParameter(
                f"unit must be 'patient' or 'row'; got {self.unit!r}. See sf.DP."
            )
        if self.mode not in MODES:
            extra = (
                " (distributed noise shares added by the sites are not implemented)"
                if self.mode == "distributed"
                else ""
            )
            raise InvalidParameter(
                f"mode must be 'central' or 'local'; got {self.mode!r}{extra}. See sf.DP."
            )
        if self.mechanism is not None and self.mechanism not in MECHANISMS:
            raise InvalidParameter(
                f"mechanism must be None (automatic), 'laplace' or 'gaussian'; got "
                f"{self.mechanism!r}. See sf.DP."
            )
        if self.mechanism == "laplace" and delta > 0:
            raise InvalidParameter(
                "mechanism 'laplace' gives pure ε-DP: set delta=0, or use mechanism="
                "'gaussian' (or None) to spend a delta. See sf.DP."
            )
        if self.mechanism == "gaussian" and delta == 0:
            raise InvalidParameter(
                "mechanism 'gaussian' needs delta > 0 (e.g. delta=1e-6); use mechanism="
                "'laplace' (or None) for pure ε-DP. See sf.DP."
            )
        alpha = self.alpha
        if (
            isinstance(alpha, bool)
            or not isinstance(alpha, numbers.Real)
            or not (math.isfinite(float(alpha)) and 0 < float(alpha) < 1)
        ):
            raise InvalidParameter(
                f"alpha must be a number strictly between 0 and 1, e.g. 0.05 for 95% "
                f"intervals; got {alpha!r}. See sf.DP."
            )
        object.__setattr__(self, "epsilon", eps)
        object.__setattr__(self, "delta", delta)
        object.__setattr__(self, "alpha", float(alpha))

    @property
    def pure(self) -> bool:
        """True for pure ε-DP (``delta == 0``)."""
        return self.delta == 0

    def mechanism_for(self, kind: str = "count") -> str:
        """The mechanism family used for a statistic: ``"laplace"`` or ``"gaussian"``.

        ``kind`` ("count" or "real") does not change the family, only the sampler: counts
        use OpenDP's integer (discrete) samplers, reals its floating-point-safe ones.

        Examples
        --------
        >>> DP(1).mechanism_for("real")
        'laplace'
        """
        if kind not in ("count", "real"):
            raise InvalidParameter(f"kind must be 'count' or 'real'; got {kind!r}")
        if self.mechanism is not None:
            return self.mechanism
        return "laplace" if self.pure else "gaussian"

    def split(self, parts: int | list[Any] | tuple[Any, ...]) -> tuple[DP, ...]:
        """Split this budget exactly into sub-budgets that add up to it (basic composition).

        Parameters
        ----------
        parts : int or sequence of positive numbers
            ``k``: ``k`` equal shares. A sequence: shares proportional to the weights
            (exact: the weights go through :func:`exact`).

        Returns
        -------
        tuple of DP
            Shares with the same unit, mode, mechanism and alpha. Their ε (and δ) add up
            exactly to this object's ε (and δ).

        Examples
        --------
        >>> shares = DP("0.3", delta="1e-6").split([1, 2])
        >>> [str(s.epsilon) for s in shares], sum(s.epsilon for s in shares)
        (['1/10', '1/5'], Fraction(3, 10))
        """
        if isinstance(parts, bool):
            raise InvalidParameter(f"parts must be a positive int or weights; got {parts!r}")
        if isinstance(parts, int):
            if parts < 1:
                raise InvalidParameter(f"parts must be ≥ 1; got {parts}")
            weights = [Fraction(1)] * parts
        else:
            weights = [exact(w, "weight") for w in parts]
            if not weights or any(w <= 0 for w in weights):
                raise InvalidParameter(f"weights must be positive numbers; got {parts!r}")
        total = sum(weights, Fraction(0))
        return tuple(
            DP(
                self.epsilon * w / total,
                self.delta * w / total,
                unit=self.unit,
                mode=self.mode,
                mechanism=self.mechanism,
                alpha=self.alpha,
            )
            for w in weights
        )

    def to_facts(self) -> dict[str, Any]:
        """The JSON-able facts of these parameters (exact values as ``"num/den"`` strings).

        Examples
        --------
        >>> DP(0.5).to_facts()["epsilon"]
        '1/2'
        """
        return {
            "epsilon": fraction_str(self.epsilon),
            "delta": fraction_str(self.delta),
            "epsilon_float": float(self.epsilon),
            "delta_float": float(self.delta),
            "unit": self.unit,
            "mode": self.mode,
            "mechanism": self.mechanism or "auto",
            "alpha": self.alpha,
        }

    def __repr__(self) -> str:
        return (
            f"DP(epsilon={self.epsilon}, delta={self.delta}, unit={self.unit!r}, "
            f"mode={self.mode!r}, mechanism={self.mechanism or 'auto'}, "
            f"alpha={self.alpha:g})"
        )


__all__ = [
    "DP",
    "MAX_DELTA",
    "MAX_EPSILON",
    "MECHANISMS",
    "MODES",
    "UNITS",
    "exact",
    "fraction_str",
]
