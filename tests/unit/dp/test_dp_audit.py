"""The privacy tester passes the real mechanisms and catches each mutant.

Mutants (each a one-line change a reviewer could miss):

* **ε doubled**: the scale is calibrated for 2ε. The constructor's own check (OpenDP's
  privacy map) already refuses it; with that check also removed, the audit catches it.
* **sensitivity halved**: the sensitivity derivation returns half the true value. The
  mechanism is then self-consistent (OpenDP certifies ε *at the wrong sensitivity*), so
  only a black-box test on true neighbours can catch it: the audit does.
* **clamping removed**: the sum no longer clamps rows to the declared bounds; one
  out-of-bounds patient moves the sum far beyond the sensitivity.

The audit's false-alarm rate for a correct mechanism is at most ``alpha = 1e-7`` (exact
Clopper-Pearson bounds, Bonferroni over events), independently of the unseeded sampler.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from fractions import Fraction

import numpy as np
import pytest

from safeflow.dp import DP, Mechanism, count_mechanism, sum_mechanism
from safeflow.dp import mechanisms as mech_mod
from safeflow.errors import ProtocolError

from .dp_audit import privacy_audit, variance_ratio, variance_tolerance

EPS = 1.0


@contextmanager
def _mutant(monkeypatch: pytest.MonkeyPatch, which: str) -> Iterator[None]:
    with monkeypatch.context() as mp:
        if which == "epsilon_doubled":
            real = mech_mod._scale_for

            def doubled(kind: str, family: str, sens: mech_mod.Sensitivity, dp: DP) -> float:
                return real(
                    kind,
                    family,
                    sens,
                    DP(
                        dp.epsilon * 2 if dp.epsilon <= 5 else 10,
                        dp.delta,
                        unit=dp.unit,
                        mechanism=dp.mechanism,
                    ),
                )

            mp.setattr(mech_mod, "_scale_for", doubled)
            mp.setattr(mech_mod, "_certify", lambda meas, k, f, s, dp: (dp.epsilon, dp.delta))
        elif which == "sensitivity_halved":
            real_c, real_s = mech_mod.count_sensitivity, mech_mod.sum_sensitivity

            def half(s: mech_mod.Sensitivity) -> mech_mod.Sensitivity:
                return mech_mod.Sensitivity(s.l1 / 2, s.l2 / 2, s.max_contributions, s.bounds)

            mp.setattr(mech_mod, "count_sensitivity", lambda m, l2=None: half(real_c(m, l2=l2)))
            mp.setattr(mech_mod, "sum_sensitivity", lambda lo, hi, m: half(real_s(lo, hi, m)))
        elif which == "clamping_removed":
            mp.setattr(mech_mod, "_clamp", lambda x, lo, hi: x)
        yield


def _count_pipeline(
    make: Callable[[], Mechanism], m: int
) -> tuple[Callable[[int], np.ndarray], Callable[[int], np.ndarray]]:
    """Neighbouring histograms: one patient with ``m`` rows, all in the audited cell."""
    mech = make()
    x, y = 100, 100 + m
    return (lambda k: mech.release(np.full(k, x)), lambda k: mech.release(np.full(k, y)))


def _sum_pipeline(
    make: Callable[[], Mechanism], m: int
) -> tuple[Callable[[int], np.ndarray], Callable[[int], np.ndarray]]:
    """Neighbouring datasets: D, and D plus one patient with ``m`` far out-of-bounds rows."""
    mech = make()
    assert isinstance(mech, mech_mod.SumMechanism)
    d = np.full(20, 5.0)
    d2 = np.concatenate([d, np.full(m, 1000.0)])
    sx, sy = mech.aggregate(d), mech.aggregate(d2)
    return (lambda k: mech.release(np.full(k, sx)), lambda k: mech.release(np.full(k, sy)))


CASES = {
    "count": (lambda: count_mechanism(2, DP(EPS)), _count_pipeline, 2),
    "sum": (lambda: sum_mechanism(0, 10, 1, DP(EPS, unit="row")), _sum_pipeline, 1),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_real_mechanisms_pass_the_audit(case: str) -> None:
    make, pipeline, m = CASES[case]
    sx, sy = pipeline(make, m)
    res = privacy_audit(sx, sy, EPS, n=20_000)
    assert not res.violation, res
    assert res.epsilon_lower_bound <= EPS


@pytest.mark.parametrize(
    ("case", "mutant"),
    [
        ("count", "epsilon_doubled"),
        ("count", "sensitivity_halved"),
        ("sum", "epsilon_doubled"),
        ("sum", "sensitivity_halved"),
        ("sum", "clamping_removed"),
    ],
)
def test_mutants_fail_the_audit(monkeypatch: pytest.MonkeyPatch, case: str, mutant: str) -> None:
    make, pipeline, m = CASES[case]
    with _mutant(monkeypatch, mutant):
        sx, sy = pipeline(make, m)
        res = privacy_audit(sx, sy, EPS, n=20_000)
    assert res.violation, (case, mutant, res)
    assert res.epsilon_lower_bound > EPS


def test_epsilon_doubled_is_also_caught_by_the_constructor(monkeypatch: pytest.MonkeyPatch) -> None:
    real = mech_mod._scale_for
    monkeypatch.setattr(
        mech_mod, "_scale_for", lambda k, f, s, dp: real(k, f, s, DP(dp.epsilon * 2, dp.delta))
    )
    for make in (
        lambda: count_mechanism(1, DP(1)),
        lambda: sum_mechanism(0, 1, 1, DP(1)),
        lambda: count_mechanism(1, DP(1, delta=1e-6)),
    ):
        with pytest.raises(ProtocolError, match="internal check failed"):
            make()


# -- calibration check (variance): Gaussian mechanisms and the Laplace ones --------------


def _required_variance(name: str, true_sens: float, dp: DP) -> float:
    """Noise variance of the mechanism calibrated at the *true* sensitivity."""
    if name == "discrete_laplace":
        return mech_mod._dlap_variance(true_sens / float(dp.epsilon))
    if name == "laplace":
        return 2 * (true_sens / float(dp.epsilon)) ** 2
    ref = (
        count_mechanism(int(true_sens), dp)
        if name == "discrete_gaussian"
        else sum_mechanism(0, true_sens, 1, dp)
    )
    return ref.variance


VARIANCE_CASES = {
    "discrete_laplace": (lambda: count_mechanism(2, DP(1)), 2.0, 6.0),
    "laplace": (lambda: sum_mechanism(0, 10, 1, DP(1)), 10.0, 6.0),
    "discrete_gaussian": (lambda: count_mechanism(2, DP(1, delta=1e-6)), 2.0, 3.0),
    "gaussian": (lambda: sum_mechanism(0, 10, 1, DP(1, delta=1e-6)), 10.0, 3.0),
}
N_VAR = 20_000


def _ratio(name: str, required: float) -> float:
    mech = VARIANCE_CASES[name][0]()
    noise = mech.release(np.zeros(N_VAR, dtype=np.int64 if mech.kind == "count" else float))
    return variance_ratio(noise, required)


def _required(name: str) -> float:
    """Computed from the unmutated code, before any mutant is installed."""
    make, true_sens, _ = VARIANCE_CASES[name]
    return _required_variance(name, true_sens, make().dp)


@pytest.mark.parametrize("name", sorted(VARIANCE_CASES))
def test_variance_check_passes_real_mechanisms(name: str) -> None:
    tol = variance_tolerance(N_VAR, VARIANCE_CASES[name][2])
    assert abs(_ratio(name, _required(name)) - 1) < tol


@pytest.mark.parametrize("name", sorted(VARIANCE_CASES))
@pytest.mark.parametrize("mutant", ["epsilon_doubled", "sensitivity_halved"])
def test_variance_check_fails_mutants(
    monkeypatch: pytest.MonkeyPatch, name: str, mutant: str
) -> None:
    tol = variance_tolerance(N_VAR, VARIANCE_CASES[name][2])
    required = _required(name)
    with _mutant(monkeypatch, mutant):
        r = _ratio(name, required)
    assert r < 1 - tol, (name, mutant, r)  # 1/4 to 1/3.5: less noise than the claim needs


@pytest.mark.slow
@pytest.mark.parametrize("mutant", [None, "epsilon_doubled", "sensitivity_halved"])
def test_gaussian_audit(monkeypatch: pytest.MonkeyPatch, mutant: str | None) -> None:
    """(ε, δ) audit of the discrete Gaussian: needs many samples (δ-slack), so slow."""
    dp = DP(1, delta=1e-5)
    with _mutant(monkeypatch, mutant or "none"):
        sx, sy = _count_pipeline(lambda: count_mechanism(2, dp), 2)
        res = privacy_audit(sx, sy, 1.0, float(Fraction(1, 10**5)), n=1_000_000)
    assert res.violation is (mutant is not None), res
    assert math.isfinite(res.epsilon_lower_bound)
