"""Noise mechanisms for the aggregate customs releases (central mode), built on OpenDP.

Every random number comes from one of OpenDP's vetted samplers (OpenDP 0.16, feature
``contrib``); safeflow only calibrates, checks and records them:

=====================  ============================  ====================================
statistic              δ = 0 (pure ε-DP)             δ > 0 ((ε, δ)-DP)
=====================  ============================  ====================================
counts (integers)      discrete Laplace              discrete Gaussian
                       ``make_laplace`` on ``i64``   ``make_gaussian`` on ``i64``
sums (reals)           Laplace on the float lattice  Gaussian on the float lattice
                       ``make_laplace`` on ``f64``   ``make_gaussian`` on ``f64``
=====================  ============================  ====================================

**Why OpenDP's float mechanisms for real sums.** The choice offered was to scale the
fixed-point integer encoding and add integer noise ourselves, or to use OpenDP's float
mechanisms. OpenDP's float mechanisms *are* that construction, with a proof: the input is
rounded to the lattice ``2^k`` (``k = -1074`` by default, i.e. every float is on it, so
the rounding is exact and costs no sensitivity), discrete Laplace / Gaussian noise is
sampled on the lattice with exact arithmetic, and the result is a float. This is immune to
the floating-point attacks on textbook samplers (Mironov 2012). Doing it ourselves would
duplicate that code without the proof, and tie the noise to one protocol's encoding.

**Sensitivity comes from declared bounds, never from the data.** The neighbouring relation
is *add or remove one unit of privacy* (OpenDP's symmetric distance), where the unit is a
patient with at most ``max_contributions`` rows, or a row (``max_contributions = 1``).
A count vector in which every row adds 1 to one cell (a histogram, a contingency table, a
group count) has L1 (and L2) sensitivity ``max_contributions``
(:func:`count_sensitivity`). A sum vector over a column clamped to ``[lower, upper]``, every
row adding to one cell, has L1 (and L2) sensitivity ``max_contributions * max(|lower|,
|upper|)`` (:func:`sum_sensitivity`). L2 ≤ L1 always holds; pass a smaller L2 explicitly
when contributions are spread out (e.g. at most one row per cell gives
``√max_contributions``).

**The ε of a release covers the whole vector.** ``Mechanism.release(values)`` adds
independent noise to every element, calibrated to the vector's L1 (Laplace) or L2
(Gaussian) sensitivity. Several statistics of one analysis split the budget first with
:meth:`safeflow.dp.DP.split` (basic composition, exact).

**Check, don't assume.** After calibrating a scale, the constructor asks OpenDP's privacy
map for the loss at the declared sensitivity and refuses (``ProtocolError``) unless it is
≤ the requested ε (and δ), compared exactly as fractions. The facts record both.

**Threat model of central mode.** Customs decrypts or unmasks the exact total and adds the
noise once, so the error is that of a single trusted curator (not √K times larger, as in
local mode). Customs therefore sees the noiseless total: the guarantee protects patients
against the analyst and everyone downstream of the release, not against customs. A study
with no trusted customs uses local mode (:mod:`safeflow.dp.local`). Distributed noise (each
site adds a share, e.g. Pólya / Skellam / discrete Gaussian shares, so nobody sees the
noiseless total) is not implemented: ``DP(mode="distributed")`` is refused.

**Randomness.** OpenDP's samplers draw from the operating system and cannot be seeded, so
``rng`` must be ``None``; the statistical tests use enough samples and fixed tolerances to
be stable (false-failure rate below 1e-6, see ``tests/unit/dp``).

Examples
--------
>>> import numpy as np
>>> from safeflow.dp import DP, count_mechanism
>>> m = count_mechanism(1, DP(0.5, unit="row"))
>>> m.scale, m.describe()["mechanism"]
(2.0, 'discrete_laplace')
>>> noisy = m.release(np.array([10, 20, 30]))
>>> noisy.dtype, noisy.shape
(dtype('int64'), (3,))
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Literal

import numpy as np

from safeflow.dp.spec import DP, exact, fraction_str
from safeflow.errors import InvalidParameter, ProtocolError

#: OpenDP features this module enables: only ``contrib`` (its vetted noise mechanisms,
#: composition and privacy-loss conversions).
OPENDP_FEATURES: tuple[str, ...] = ("contrib",)

Kind = Literal["count", "real"]

_MAX_ABS_COUNT = 2**62


def _opendp() -> Any:
    """OpenDP's prelude with the features safeflow needs enabled (idempotent)."""
    import opendp.prelude as dp

    dp.enable_features(*OPENDP_FEATURES)
    return dp


@dataclass(frozen=True)
class Sensitivity:
    """How far one unit of privacy can move a statistic vector (exact, from declared facts).

    Parameters
    ----------
    l1, l2 : Fraction
        Upper bounds on the L1 and L2 norms of the change of the whole vector when one
        unit (patient or row) is added or removed. ``l2 ≤ l1``.
    max_contributions : int
        Rows one unit may contribute (1 for ``unit="row"``).
    bounds : (Fraction, Fraction) or None
        The clamping bounds of a sum; None for counts.

    Examples
    --------
    >>> count_sensitivity(3)
    Sensitivity(l1=3, l2=3, max_contributions=3, bounds=None)
    """

    l1: Fraction
    l2: Fraction
    max_contributions: int
    bounds: tuple[Fraction, Fraction] | None = None

    def __repr__(self) -> str:
        b = None if self.bounds is None else f"({self.bounds[0]}, {self.bounds[1]})"
        return (
            f"Sensitivity(l1={self.l1}, l2={self.l2}, "
            f"max_contributions={self.max_contributions}, bounds={b})"
        )

    def to_facts(self) -> dict[str, Any]:
        """JSON-able facts (exact values as ``"num/den"`` strings)."""
        return {
            "l1": fraction_str(self.l1),
            "l2": fraction_str(self.l2),
            "max_contributions": self.max_contributions,
            "bounds": None if self.bounds is None else [float(b) for b in self.bounds],
        }


def _check_contributions(max_contributions: Any) -> int:
    if (
        isinstance(max_contributions, bool)
        or not isinstance(max_contributions, int | np.integer)
        or max_contributions < 1
    ):
        raise InvalidParameter(
            f"max_contributions must be an int ≥ 1 (the most rows one patient may "
            f"contribute; 1 for unit='row'); got {max_contributions!r}"
        )
    return int(max_contributions)


def count_sensitivity(max_contributions: int, *, l2: Any = None) -> Sensitivity:
    """Sensitivity of a count vector where each row adds 1 to one cell.

    Parameters
    ----------
    max_contributions : int
        Rows one unit of privacy may contribute (declared, public).
    l2 : number, optional
        A smaller L2 bound when it is known (e.g. ``sqrt(m)`` when a unit has at most one
        row per cell); it must not exceed the L1 bound. Default: the L1 bound.

    Examples
    --------
    >>> count_sensitivity(2).l1
    Fraction(2, 1)
    """
    m = _check_contributions(max_contributions)
    l1 = Fraction(m)
    l2v = l1 if l2 is None else exact(l2, "l2 sensitivity")
    if not (0 < l2v <= l1):
        raise InvalidParameter(f"l2 sensitivity must be > 0 and ≤ the L1 bound {l1}; got {l2}")
    return Sensitivity(l1, l2v, m)


def sum_sensitivity(lower: Any, upper: Any, max_contributions: int) -> Sensitivity:
    """Sensitivity of a sum vector over a column clamped to ``[lower, upper]``.

    Under add/remove-one-unit neighbours, each of the unit's at most ``max_contributions``
    rows moves one cell by at most ``max(|lower|, |upper|)``.

    Examples
    --------
    >>> sum_sensitivity(-30, 70, 2).l1
    Fraction(140, 1)
    """
    m = _check_contributions(max_contributions)
    lo, hi = exact(lower, "lower"), exact(upper, "upper")
    if not lo < hi:
        raise InvalidParameter(f"bounds must satisfy lower < upper; got ({lower}, {upper})")
    l1 = m * max(abs(lo), abs(hi))
    if l1 == 0:  # pragma: no cover - lo < hi excludes it
        raise InvalidParameter("bounds (0, 0) give a sum that is always 0")
    return Sensitivity(l1, l1, m, (lo, hi))


def _float_up(x: Fraction) -> float:
    """The smallest float ≥ ``x``."""
    f = float(x)
    return f if Fraction(f) >= x else math.nextafter(f, math.inf)


def _float_down(x: Fraction) -> float:
    """The largest float ≤ ``x``."""
    f = float(x)
    return f if Fraction(f) <= x else math.nextafter(f, -math.inf)


def _space(kind: Kind, family: str) -> tuple[Any, Any]:
    dp = _opendp()
    atom = dp.atom_domain(T=dp.i64) if kind == "count" else dp.atom_domain(T=float, nan=False)
    T = dp.i64 if kind == "count" else float
    metric = dp.l1_distance(T=T) if family == "laplace" else dp.l2_distance(T=T)
    return dp.vector_domain(atom), metric


def _d_in(kind: Kind, family: str, sens: Sensitivity) -> int | float:
    d = sens.l1 if family == "laplace" else sens.l2
    if kind == "count":
        return math.ceil(d)
    return _float_up(d)


@functools.lru_cache(maxsize=256)
def _build(kind: Kind, family: str, scale: float, delta: Fraction) -> Any:
    """The OpenDP measurement: vector -> noised vector, with an ε (or (ε, δ)) privacy map.

    Cached per parameters (an OpenDP measurement is immutable and can be invoked many
    times); every mechanism built from it still re-checks its privacy map."""
    dp = _opendp()
    space = _space(kind, family)
    if family == "laplace":
        return space >> dp.m.then_laplace(scale=scale)
    zcdp = space >> dp.m.then_gaussian(scale=scale)
    return dp.c.make_fix_delta(dp.c.make_zCDP_to_approxDP(zcdp), _float_down(delta))


def _loss(meas: Any, d_in: int | float, family: str) -> tuple[Fraction, Fraction]:
    """OpenDP's privacy map at ``d_in``, as exact fractions of the floats it returns."""
    out = meas.map(d_in)
    if family == "laplace":
        return Fraction(out), Fraction(0)
    eps, delta = out
    return Fraction(eps), Fraction(delta)


def _scale_for(kind: Kind, family: str, sens: Sensitivity, dp_params: DP) -> float:
    """Calibrate the noise scale to (ε, δ) at the declared sensitivity."""
    d_in = _d_in(kind, family, sens)
    if family == "laplace":
        return _float_up(Fraction(d_in) / dp_params.epsilon)
    return _gaussian_scale(kind, d_in, dp_params.epsilon, dp_params.delta)


@functools.lru_cache(maxsize=256)
def _gaussian_scale(kind: Kind, d_in: int | float, epsilon: Fraction, delta: Fraction) -> float:
    """OpenDP's binary search for the Gaussian scale (~0.1 s, so cached per parameters;
    every mechanism built from it is still checked by :func:`_certify`)."""
    dp = _opendp()
    target = (_float_down(epsilon), _float_down(delta))
    return float(
        dp.binary_search_param(
            lambda s: _build(kind, "gaussian", s, delta), d_in=d_in, d_out=target, T=float
        )
    )


def _certify(
    meas: Any, kind: Kind, family: str, sens: Sensitivity, dp_params: DP
) -> tuple[Fraction, Fraction]:
    """Refuse unless OpenDP certifies a loss ≤ the requested (ε, δ) at the sensitivity."""
    eps, delta = _loss(meas, _d_in(kind, family, sens), family)
    if eps > dp_params.epsilon or delta > dp_params.delta:
        raise ProtocolError(
            f"internal check failed: OpenDP's privacy map gives (ε={float(eps):.6g}, "
            f"δ={float(delta):.3g}) at the declared sensitivity, above the requested "
            f"(ε={dp_params.epsilon}, δ={dp_params.delta}); nothing was released"
        )
    return eps, delta


def _calibrate(
    kind: Kind, family: str, sens: Sensitivity, dp_params: DP
) -> tuple[float, Any, tuple[Fraction, Fraction]]:
    """Scale, measurement and certified loss; nudges the scale up until OpenDP agrees."""
    scale = _scale_for(kind, family, sens, dp_params)
    if not (math.isfinite(scale) and scale > 0):
        raise InvalidParameter(f"the noise scale must be finite and > 0; got {scale}")
    for _ in range(64):
        meas = _build(kind, family, scale, dp_params.delta)
        eps, delta = _loss(meas, _d_in(kind, family, sens), family)
        if eps <= dp_params.epsilon and delta <= dp_params.delta:
            break
        scale = math.nextafter(scale * (1 + 2.0**-40), math.inf)
    return scale, meas, _certify(meas, kind, family, sens, dp_params)


def _dlap_variance(scale: float) -> float:
    q = math.exp(-1.0 / scale)
    return 2.0 * q / (1.0 - q) ** 2


def _dgauss_variance(sigma: float) -> float:
    kmax = math.ceil(12 * sigma) + 2
    k = np.arange(-kmax, kmax + 1, dtype=np.float64)
    w = np.exp(-(k * k) / (2 * sigma * sigma))
    return float(np.sum(k * k * w) / np.sum(w))


_NAMES = {
    ("count", "laplace"): "discrete_laplace",
    ("count", "gaussian"): "discrete_gaussian",
    ("real", "laplace"): "laplace",
    ("real", "gaussian"): "gaussian",
}


@dataclass(frozen=True)
class Noised:
    """A noised vector with the guarantee it was released under (STYLE.md item 1).

    Attributes
    ----------
    value : numpy.ndarray
        The noised values (read-only), the shape of the input.
    facts : dict
        :meth:`Mechanism.describe` of the mechanism that produced it.
    """

    value: np.ndarray
    facts: dict[str, Any] = field(repr=False)

    def __repr__(self) -> str:
        return (
            f"<Noised {self.value.shape} {self.facts['mechanism']} "
            f"ε={self.facts['epsilon']} δ={self.facts['delta']} unit={self.facts['unit']}>"
        )


class Mechanism:
    """A calibrated, OpenDP-certified noise mechanism for one statistic vector.

    Build it with :func:`count_mechanism` or :func:`sum_mechanism`, not directly.

    Attributes
    ----------
    kind : {"count", "real"}
    name : str
        ``discrete_laplace``, ``discrete_gaussian``, ``laplace`` or ``gaussian``.
    dp : DP
        The parameters it was built for; ``epsilon`` and ``delta`` are theirs (exact).
    sensitivity : Sensitivity
        L1 / L2 sensitivity of the whole vector under one unit's change.
    scale : float
        OpenDP's noise scale: Laplace ``b`` (std = b·√2), Gaussian ``σ`` (std = σ).
    certified : (Fraction, Fraction)
        The (ε, δ) OpenDP's privacy map gives at the sensitivity (≤ the requested ones).

    Examples
    --------
    >>> from safeflow.dp import DP, sum_mechanism
    >>> m = sum_mechanism(0, 100, 1, DP(1, unit="row"))
    >>> m.scale, m.name, str(m.epsilon)
    (100.0, 'laplace', '1')
    >>> round(m.accuracy(0.05), 1)
    299.6
    """

    def __init__(self, kind: Kind, sens: Sensitivity, dp_params: DP) -> None:
        if not isinstance(dp_params, DP):
            raise InvalidParameter(f"dp must be an sf.DP object; got {type(dp_params).__name__}")
        if dp_params.mode == "local":
            raise InvalidParameter(
                "DP(mode='local') statistics are noised by each site with "
                "safeflow.dp.local (local_counts, local_sum); customs adds no noise. Use "
                "mode='central' for noise added once to the secure aggregate"
            )
        self.kind: Kind = kind
        self.family = dp_params.mechanism_for(kind)
        self.name = _NAMES[(kind, self.family)]
        self.dp = dp_params
        self.sensitivity = sens
        self.scale, self._meas, self.certified = _calibrate(kind, self.family, sens, dp_params)

    @property
    def epsilon(self) -> Fraction:
        """The ε this mechanism spends (exact; the ledger debits this)."""
        return self.dp.epsilon

    @property
    def delta(self) -> Fraction:
        """The δ this mechanism spends (exact)."""
        return self.dp.delta

    @property
    def unit(self) -> str:
        """The unit of privacy: ``"patient"`` or ``"row"``."""
        return self.dp.unit

    @property
    def variance(self) -> float:
        """Variance of the noise added to each element (the error floor of a release).

        Examples
        --------
        >>> from safeflow.dp import DP
        >>> round(count_mechanism(1, DP(1, unit="row")).variance, 4)
        1.8413
        """
        if self.name == "discrete_laplace":
            return _dlap_variance(self.scale)
        if self.name == "discrete_gaussian":
            return _dgauss_variance(self.scale)
        if self.name == "laplace":
            return 2.0 * self.scale**2
        return self.scale**2

    def accuracy(self, alpha: float | None = None) -> float:
        """Half-width of the ``(1 - alpha)`` confidence interval of each element.

        From OpenDP's accuracy functions (``discrete_laplacian_scale_to_accuracy`` etc.):
        with probability ``1 - alpha`` one noised element is within this distance of the
        exact value. It is per element, not simultaneous over the vector.

        Parameters
        ----------
        alpha : float, optional
            Default: the ``alpha`` of the ``DP`` object.

        Examples
        --------
        >>> from safeflow.dp import DP
        >>> round(count_mechanism(1, DP(1, unit="row")).accuracy(0.05), 3)
        3.376
        """
        a = self.dp.alpha if alpha is None else alpha
        if isinstance(a, bool) or not isinstance(a, float | int) or not 0 < a < 1:
            raise InvalidParameter(f"alpha must be strictly between 0 and 1; got {alpha!r}")
        dp = _opendp()
        fn = {
            "discrete_laplace": dp.discrete_laplacian_scale_to_accuracy,
            "discrete_gaussian": dp.discrete_gaussian_scale_to_accuracy,
            "laplace": dp.laplacian_scale_to_accuracy,
            "gaussian": dp.gaussian_scale_to_accuracy,
        }[self.name]
        return float(fn(self.scale, float(a)))

    def _check_values(self, values: Any) -> np.ndarray:
        try:
            arr = np.asarray(values, dtype=np.float64)
        except (TypeError, ValueError) as e:
            raise InvalidParameter("values must be an array of numbers") from e
        if arr.size and not np.all(np.isfinite(arr)):
            raise InvalidParameter("values must be finite (no NaN or infinity)")
        if (
            self.kind == "count"
            and arr.size
            and (np.any(arr != np.round(arr)) or np.any(np.abs(arr) >= _MAX_ABS_COUNT))
        ):
            raise InvalidParameter(
                "a count mechanism releases integers (|x| < 2^62); got non-integer values. "
                "Use sum_mechanism for real-valued statistics"
            )
        return arr

    def release(self, values: Any, rng: None = None) -> np.ndarray:
        """Noise the whole vector ``values`` once; the ε covers the whole vector.

        Parameters
        ----------
        values : array-like
            The exact aggregate (any shape): integers for a count mechanism, finite reals
            for a sum mechanism.
        rng : None
            Must be None: OpenDP's samplers draw from the OS and cannot be seeded.

        Returns
        -------
        numpy.ndarray
            Same shape; ``int64`` for counts (may be negative: noise is not clamped, so
            the release is unbiased), ``float64`` for sums.

        Examples
        --------
        >>> from safeflow.dp import DP
        >>> m = count_mechanism(1, DP(1, unit="row"))
        >>> m.release([[1, 2], [3, 4]]).shape
        (2, 2)
        """
        if rng is not None:
            raise InvalidParameter(
                "rng must be None: DP noise comes from OpenDP's vetted samplers, which draw "
                "from the operating system and cannot be seeded"
            )
        arr = self._check_values(values)
        flat = arr.ravel()
        if flat.size == 0:
            return arr.astype(np.int64 if self.kind == "count" else np.float64)
        if self.kind == "count":
            out = np.asarray(self._meas(flat.astype(np.int64).tolist()), dtype=np.int64)
        else:
            out = np.asarray(self._meas(flat.tolist()), dtype=np.float64)
        return out.reshape(arr.shape)

    def noised(self, values: Any) -> Noised:
        """:meth:`release` with the facts attached (what customs records).

        Examples
        --------
        >>> from safeflow.dp import DP
        >>> r = count_mechanism(1, DP(1, unit="row")).noised([5, 6])
        >>> r.facts["epsilon"], r.value.flags.writeable
        ('1/1', False)
        """
        out = self.release(values)
        out.setflags(write=False)
        return Noised(out, self.describe())

    def describe(self) -> dict[str, Any]:
        """The facts of this mechanism, JSON-able (exact ε/δ as ``"num/den"`` strings).

        Keys: ``mechanism``, ``sampler``, ``kind``, ``scale``, ``std``, ``epsilon``,
        ``delta``, ``epsilon_certified``, ``delta_certified`` (OpenDP's map at the
        sensitivity, floats), ``sensitivity`` (l1, l2, max_contributions, bounds),
        ``unit``, ``unit_description``, ``neighbouring``, ``mode``, ``alpha``,
        ``accuracy`` (half-width of the per-element ``1 - alpha`` interval).

        Examples
        --------
        >>> from safeflow.dp import DP
        >>> d = count_mechanism(2, DP(1)).describe()
        >>> d["unit_description"], d["sensitivity"]["l1"]
        ('one patient (all their rows, at most 2)', '2/1')
        """
        m = self.sensitivity.max_contributions
        unit_desc = (
            f"one patient (all their rows, at most {m})" if self.unit == "patient" else "one row"
        )
        return {
            "mechanism": self.name,
            "sampler": f"opendp make_{self.family} on "
            f"{'i64' if self.kind == 'count' else 'f64'} vectors",
            "kind": self.kind,
            "scale": self.scale,
            "std": math.sqrt(self.variance),
            "epsilon": fraction_str(self.epsilon),
            "delta": fraction_str(self.delta),
            "epsilon_certified": float(self.certified[0]),
            "delta_certified": float(self.certified[1]),
            "sensitivity": self.sensitivity.to_facts(),
            "unit": self.unit,
            "unit_description": unit_desc,
            "neighbouring": "add or remove one unit of privacy",
            "mode": self.dp.mode,
            "alpha": self.dp.alpha,
            "accuracy": self.accuracy(),
        }

    def __repr__(self) -> str:
        return (
            f"<Mechanism {self.name} scale={self.scale:.6g} ε={self.epsilon} "
            f"δ={self.delta} unit={self.unit}>"
        )


class SumMechanism(Mechanism):
    """A :class:`Mechanism` for sums of a column clamped to public bounds.

    :meth:`aggregate` is the reference of what a site (or a single curator) computes:
    clamp every row to ``[lower, upper]``, then sum. The sensitivity is valid only for
    sums of clamped values; in a federation the schema's bounds and
    ``on_out_of_bounds`` enforce the clamping at each site.

    Examples
    --------
    >>> from safeflow.dp import DP
    >>> m = sum_mechanism(0, 10, 1, DP(1, unit="row"))
    >>> m.aggregate([1.0, 5.0, 250.0])
    16.0
    """

    @property
    def lower(self) -> float:
        """Lower clamping bound."""
        assert self.sensitivity.bounds is not None
        return float(self.sensitivity.bounds[0])

    @property
    def upper(self) -> float:
        """Upper clamping bound."""
        assert self.sensitivity.bounds is not None
        return float(self.sensitivity.bounds[1])

    def aggregate(self, rows: Any) -> float:
        """Clamp ``rows`` to the bounds and sum them (exact reference for one cell)."""
        x = self._check_values(rows).ravel()
        return float(np.sum(_clamp(x, self.lower, self.upper)))


def _clamp(x: np.ndarray, lower: float, upper: float) -> np.ndarray:
    return np.clip(x, lower, upper)


def count_mechanism(sensitivity: int, dp: DP, *, l2_sensitivity: Any = None) -> Mechanism:
    """Mechanism for a vector of counts (histogram, contingency table, group counts).

    Parameters
    ----------
    sensitivity : int
        L1 sensitivity of the whole count vector under one unit's change: for a vector in
        which every row adds 1 to one cell, the most rows one unit contributes
        (``max_contributions``; 1 for ``unit="row"``). Derive it from declared facts, never
        from the data.
    dp : DP
        ε, δ, unit and mechanism choice (``mode`` must be ``"central"``).
    l2_sensitivity : number, optional
        L2 sensitivity for the Gaussian mechanism; default the L1 bound (always valid).

    Returns
    -------
    Mechanism
        Discrete Laplace (δ = 0) or discrete Gaussian (δ > 0) on int64, from OpenDP.

    Examples
    --------
    >>> from safeflow.dp import DP
    >>> count_mechanism(3, DP(1, delta=1e-6)).name
    'discrete_gaussian'
    """
    return Mechanism("count", count_sensitivity(sensitivity, l2=l2_sensitivity), dp)


def sum_mechanism(lower: Any, upper: Any, max_contributions: int, dp: DP) -> SumMechanism:
    """Mechanism for a vector of sums of a column clamped to the declared ``[lower, upper]``.

    Parameters
    ----------
    lower, upper : number
        The column's public bounds (``sf.Schema`` bounds). For a sum of squares pass the
        bounds of ``x²``: ``(0, max(lower², upper²))`` (or ``(min x², ...)`` if ``0`` is
        outside the bounds).
    max_contributions : int
        Rows one unit of privacy may contribute (1 for ``unit="row"``).
    dp : DP
        ε, δ, unit and mechanism choice (``mode`` must be ``"central"``).

    Returns
    -------
    SumMechanism
        Laplace (δ = 0) or Gaussian (δ > 0) on float64 from OpenDP, L1 (= L2) sensitivity
        ``max_contributions * max(|lower|, |upper|)``.

    Examples
    --------
    >>> from safeflow.dp import DP
    >>> m = sum_mechanism(18, 100, 2, DP(0.5))
    >>> m.sensitivity.l1, m.scale
    (Fraction(200, 1), 400.0)
    """
    return SumMechanism("real", sum_sensitivity(lower, upper, max_contributions), dp)


def contributions_for(dp: DP, schema_unit: str, rows_per_patient: int | None) -> int:
    """``max_contributions`` for a release: 1 per row, or the declared rows per patient.

    Parameters
    ----------
    dp : DP
        Its ``unit`` is the unit the guarantee is about.
    schema_unit : {"patient", "row"}
        The dataset's declared unit (``sf.Schema.unit``).
    rows_per_patient : int or None
        Public bound on rows per patient; needed when the unit is a patient and the data
        may hold several rows per patient.

    Raises
    ------
    InvalidParameter
        When the DP unit and the schema unit disagree, or a patient-level guarantee is asked
        for data with several rows per patient and no declared bound.

    Examples
    --------
    >>> from safeflow.dp import DP
    >>> contributions_for(DP(1, unit="row"), "row", None)
    1
    >>> contributions_for(DP(1), "patient", 4)
    4
    """
    if schema_unit not in ("patient", "row"):
        raise InvalidParameter(f"schema unit must be 'patient' or 'row'; got {schema_unit!r}")
    if dp.unit != schema_unit:
        raise InvalidParameter(
            f"the DP unit of privacy ({dp.unit!r}) differs from the schema's ({schema_unit!r}); "
            f"use sf.DP(..., unit={schema_unit!r}) or declare the schema with "
            f"unit={dp.unit!r}"
        )
    if dp.unit == "row":
        return 1
    if rows_per_patient is None:
        raise InvalidParameter(
            "unit 'patient' needs a public bound on the rows one patient may contribute "
            "(rows_per_patient / max_contributions); declare it, or use unit='row' when "
            "every row is a different patient"
        )
    return _check_contributions(rows_per_patient)


__all__ = [
    "OPENDP_FEATURES",
    "Mechanism",
    "Noised",
    "Sensitivity",
    "SumMechanism",
    "contributions_for",
    "count_mechanism",
    "count_sensitivity",
    "sum_mechanism",
    "sum_sensitivity",
]
