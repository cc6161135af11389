"""Central-mode mechanisms: calibration, checks, facts, and noise that matches theory.

OpenDP's samplers draw from the OS and cannot be seeded, so the statistical tests here
are *stable* instead of seeded: every acceptance threshold is a p-value of 1e-7 (or a
6-sigma band), so a correct mechanism fails one of them with probability below 1e-6
over the whole file, while the mutants (scale off by a factor 2) fail with certainty.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from scipy import stats

from safeflow.dp import (
    DP,
    Noised,
    contributions_for,
    count_mechanism,
    count_sensitivity,
    sum_mechanism,
    sum_sensitivity,
)
from safeflow.dp import mechanisms as mech_mod
from safeflow.errors import InvalidParameter, ProtocolError

P_MIN = 1e-7  # smallest p-value a correct sampler may produce before a test fails


def _dlap_pmf(k: np.ndarray, scale: float) -> np.ndarray:
    q = math.exp(-1.0 / scale)
    return (1 - q) / (1 + q) * q ** np.abs(k)


def _dgauss_pmf(k: np.ndarray, sigma: float) -> np.ndarray:
    kmax = int(20 * sigma) + 5
    norm = np.sum(np.exp(-(np.arange(-kmax, kmax + 1) ** 2) / (2 * sigma**2)))
    return np.exp(-(k.astype(float) ** 2) / (2 * sigma**2)) / norm


def _chi_square_pvalue(samples: np.ndarray, pmf: np.ndarray, support: np.ndarray) -> float:
    """Chi-square GOF over ``support`` (bins with expected count ≥ 20) plus a tail bin."""
    n = samples.size
    expected = n * pmf
    keep = expected >= 20
    ks = support[keep]
    obs = np.array([np.count_nonzero(samples == k) for k in ks], dtype=float)
    exp = expected[keep]
    tail_obs, tail_exp = n - obs.sum(), n - exp.sum()
    obs, exp = np.append(obs, tail_obs), np.append(exp, tail_exp)
    return float(stats.chisquare(obs, exp).pvalue)


# -- calibration -------------------------------------------------------------------------


def test_discrete_laplace_scale_is_sensitivity_over_epsilon() -> None:
    m = count_mechanism(3, DP("0.5"))
    assert m.name == "discrete_laplace" and m.scale == 6.0
    assert m.certified == (Fraction(1, 2), 0)
    assert m.epsilon == Fraction(1, 2) and m.delta == 0


def test_laplace_scale_is_rounded_up_so_opendp_certifies_at_most_epsilon() -> None:
    m = count_mechanism(1, DP("1/3", unit="row"))
    assert m.certified[0] <= Fraction(1, 3)
    assert Fraction(m.scale) >= 3


@pytest.mark.parametrize("kind", ["count", "real"])
def test_gaussian_is_calibrated_tightly(kind: str) -> None:
    d = DP(1, delta=1e-6)
    m = count_mechanism(2, d) if kind == "count" else sum_mechanism(0, 5, 1, d)
    assert m.name == ("discrete_gaussian" if kind == "count" else "gaussian")
    eps, delta = m.certified
    assert eps <= 1 and delta <= Fraction(1, 10**6)
    # 1% less noise would break the guarantee: the calibration is tight
    smaller = mech_mod._build(m.kind, "gaussian", m.scale * 0.99, d.delta)
    e2, _ = mech_mod._loss(smaller, mech_mod._d_in(m.kind, "gaussian", m.sensitivity), "gaussian")
    assert e2 > 1


def test_sum_sensitivity_uses_the_larger_absolute_bound() -> None:
    assert sum_sensitivity(-30, 70, 1).l1 == 70
    assert sum_sensitivity(-100, 5, 3).l1 == 300
    m = sum_mechanism(18, 100, 2, DP(0.5))
    assert m.scale == 400.0 and m.lower == 18 and m.upper == 100


def test_count_sensitivity_l2() -> None:
    s = count_sensitivity(4, l2=2)
    assert (s.l1, s.l2) == (4, 2)
    with pytest.raises(InvalidParameter, match="l2 sensitivity"):
        count_sensitivity(4, l2=5)
    m = count_mechanism(4, DP(1, delta=1e-6), l2_sensitivity=2)
    assert m.scale < count_mechanism(4, DP(1, delta=1e-6)).scale


def test_self_check_refuses_a_miscalibrated_scale(monkeypatch: pytest.MonkeyPatch) -> None:
    real = mech_mod._scale_for
    monkeypatch.setattr(mech_mod, "_scale_for", lambda *a: real(*a) / 2)
    with pytest.raises(ProtocolError, match="internal check failed"):
        count_mechanism(1, DP(1))


# -- release -----------------------------------------------------------------------------


def test_release_keeps_shape_and_type() -> None:
    m = count_mechanism(1, DP(1, unit="row"))
    out = m.release(np.arange(12).reshape(3, 4))
    assert out.shape == (3, 4) and out.dtype == np.int64
    s = sum_mechanism(0, 1, 1, DP(1, unit="row")).release([0.5, 0.25])
    assert s.shape == (2,) and s.dtype == np.float64
    assert m.release(np.zeros(0)).shape == (0,)


def test_noised_carries_its_facts_and_is_read_only() -> None:
    r = count_mechanism(2, DP("0.5")).noised([1, 2, 3])
    assert isinstance(r, Noised)
    assert not r.value.flags.writeable
    f = r.facts
    assert f["epsilon"] == "1/2" and f["delta"] == "0/1" and f["unit"] == "patient"
    assert f["sensitivity"]["l1"] == "2/1" and f["scale"] == 4.0
    assert f["unit_description"] == "one patient (all their rows, at most 2)"
    assert f["accuracy"] > 0 and f["alpha"] == 0.05
    assert "ε=1/2" in repr(r)


def test_describe_has_every_documented_key() -> None:
    d = sum_mechanism(0, 10, 1, DP(1, delta=1e-6, unit="row")).describe()
    for key in (
        "mechanism",
        "sampler",
        "kind",
        "scale",
        "std",
        "epsilon",
        "delta",
        "epsilon_certified",
        "delta_certified",
        "sensitivity",
        "unit",
        "unit_description",
        "neighbouring",
        "mode",
        "alpha",
        "accuracy",
    ):
        assert key in d, key
    assert d["sensitivity"]["bounds"] == [0.0, 10.0]


@pytest.mark.parametrize("bad", [[1.5], [float("nan")], [2.0**63]])
def test_count_mechanism_refuses_non_integers(bad: list[float]) -> None:
    with pytest.raises(InvalidParameter):
        count_mechanism(1, DP(1)).release(bad)


def test_sum_mechanism_refuses_non_finite() -> None:
    with pytest.raises(InvalidParameter, match="finite"):
        sum_mechanism(0, 1, 1, DP(1)).release([np.inf])
    with pytest.raises(InvalidParameter, match="array of numbers"):
        sum_mechanism(0, 1, 1, DP(1)).release(["a"])


def test_rng_cannot_be_injected() -> None:
    with pytest.raises(InvalidParameter, match="cannot be seeded"):
        count_mechanism(1, DP(1)).release([1], rng=np.random.default_rng(0))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("args", "msg"),
    [
        ((0, DP(1)), "max_contributions must be an int ≥ 1"),
        ((1.5, DP(1)), "max_contributions"),
        ((True, DP(1)), "max_contributions"),
        ((1, "dp"), "sf.DP object"),
        ((1, DP(1, mode="local")), "safeflow.dp.local"),
    ],
)
def test_count_mechanism_arguments(args: tuple[object, object], msg: str) -> None:
    with pytest.raises(InvalidParameter, match=msg):
        count_mechanism(*args)  # type: ignore[arg-type]


def test_sum_mechanism_bounds() -> None:
    with pytest.raises(InvalidParameter, match="lower < upper"):
        sum_mechanism(5, 5, 1, DP(1))
    with pytest.raises(InvalidParameter):
        sum_mechanism(0, float("inf"), 1, DP(1))


def test_clamping_reference() -> None:
    m = sum_mechanism(-1, 2, 1, DP(1))
    assert m.aggregate([-5.0, 0.5, 7.0]) == -1 + 0.5 + 2


def test_accuracy_matches_opendp_and_validates_alpha() -> None:
    import opendp.prelude as dp

    m = count_mechanism(1, DP(1))
    assert m.accuracy(0.05) == dp.discrete_laplacian_scale_to_accuracy(1.0, 0.05)
    assert m.accuracy() == m.accuracy(0.05)
    with pytest.raises(InvalidParameter):
        m.accuracy(1.5)


def test_contributions_for() -> None:
    assert contributions_for(DP(1, unit="row"), "row", None) == 1
    assert contributions_for(DP(1), "patient", 3) == 3
    with pytest.raises(InvalidParameter, match="differs from the schema"):
        contributions_for(DP(1), "row", None)
    with pytest.raises(InvalidParameter, match="needs a public bound"):
        contributions_for(DP(1), "patient", None)
    with pytest.raises(InvalidParameter):
        contributions_for(DP(1), "household", 1)


# -- the noise matches theory (stable statistical tests) ---------------------------------


@pytest.mark.parametrize(("m", "eps"), [(1, 1), (3, "0.5")])
def test_discrete_laplace_noise_matches_the_pmf(m: int, eps: object) -> None:
    mech = count_mechanism(m, DP(eps))
    n = 40_000
    x0 = 1000
    noise = mech.release(np.full(n, x0)) - x0
    support = np.arange(-60 * m, 60 * m + 1)
    p = _chi_square_pvalue(noise, _dlap_pmf(support, mech.scale), support)
    assert p > P_MIN, (p, mech)
    var_ratio = float(np.mean(noise.astype(float) ** 2)) / mech.variance
    assert abs(var_ratio - 1) < 6 * math.sqrt(5 / n), var_ratio  # Laplace kurtosis 6


def test_discrete_gaussian_noise_matches_the_pmf() -> None:
    mech = count_mechanism(1, DP(1, delta=1e-6))
    n = 40_000
    noise = mech.release(np.zeros(n, dtype=np.int64))
    support = np.arange(-int(8 * mech.scale), int(8 * mech.scale) + 1)
    p = _chi_square_pvalue(noise, _dgauss_pmf(support, mech.scale), support)
    assert p > P_MIN, p
    var_ratio = float(np.mean(noise.astype(float) ** 2)) / mech.variance
    assert abs(var_ratio - 1) < 6 * math.sqrt(2 / n), var_ratio  # Gaussian kurtosis 3


def test_float_laplace_noise_matches_the_cdf() -> None:
    mech = sum_mechanism(0, 10, 1, DP(1, unit="row"))
    n = 20_000
    noise = mech.release(np.full(n, 123.25)) - 123.25
    assert stats.kstest(noise, "laplace", args=(0, mech.scale)).pvalue > P_MIN
    assert abs(float(np.mean(noise**2)) / mech.variance - 1) < 6 * math.sqrt(5 / n)


def test_float_gaussian_noise_matches_the_cdf() -> None:
    mech = sum_mechanism(-3, 3, 2, DP(1, delta=1e-5))
    n = 20_000
    noise = mech.release(np.zeros(n))
    assert stats.kstest(noise, "norm", args=(0, mech.scale)).pvalue > P_MIN
    assert abs(float(np.mean(noise**2)) / mech.variance - 1) < 6 * math.sqrt(2 / n)


def test_vector_elements_get_independent_noise() -> None:
    mech = count_mechanism(1, DP(1))
    out = mech.release(np.zeros((20_000, 2), dtype=np.int64)).astype(float)
    r = np.corrcoef(out[:, 0], out[:, 1])[0, 1]
    assert abs(r) < 6 / math.sqrt(20_000)
