"""Black-box testers for DP mechanisms: an empirical privacy audit and a calibration check.

``privacy_audit`` is a statistical *hypothesis test of the DP inequality* (in the spirit
of Ding et al., "Detecting Violations of Differential Privacy", CCS 2018): for two
neighbouring inputs ``x``, ``x'`` it samples the mechanism on both and looks for an event
``E`` (a threshold set ``{o ≥ t}`` or ``{o ≤ t}``) with

    P[M(x) ∈ E] > e^ε · P[M(x') ∈ E] + δ,

judged with exact one-sided Clopper-Pearson bounds and a Bonferroni correction over all
events and both directions. Its false-alarm rate is at most ``alpha`` *for every
mechanism that really is (ε, δ)-DP*, whatever ``n``; it does not depend on the
mechanism being seeded. Thresholds are chosen on an independent pilot sample, so the
events do not depend on the samples used to judge them.

``variance_ratio`` is a calibration check: the empirical noise variance divided by the
variance the mechanism must have for the claimed ε at the *true* sensitivity. A mutant with
ε doubled or sensitivity halved has a ratio near 1/4.

Both take *samplers* (``n -> n outputs``) so a whole pipeline (clamping, summing, noising)
can be audited, not only the noise step.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import stats

Sampler = Callable[[int], np.ndarray]


@dataclass(frozen=True)
class AuditResult:
    """Outcome of :func:`privacy_audit`."""

    violation: bool
    epsilon_lower_bound: float  # a (1 - alpha)-confidence lower bound on the true ε
    worst_event: str
    n: int
    alpha: float


def _cp_lower(k: np.ndarray, n: int, a: float) -> np.ndarray:
    """One-sided Clopper-Pearson lower bounds (level ``1 - a``) for ``k`` successes."""
    out = np.zeros_like(k, dtype=np.float64)
    pos = k > 0
    out[pos] = stats.beta.ppf(a, k[pos], n - k[pos] + 1)
    return out


def _cp_upper(k: np.ndarray, n: int, a: float) -> np.ndarray:
    out = np.ones_like(k, dtype=np.float64)
    lt = k < n
    out[lt] = stats.beta.ppf(1 - a, k[lt] + 1, n - k[lt])
    return out


def privacy_audit(
    sample_x: Sampler,
    sample_y: Sampler,
    epsilon: float,
    delta: float = 0.0,
    *,
    n: int = 20_000,
    alpha: float = 1e-7,
    n_thresholds: int = 24,
) -> AuditResult:
    """Test ``H0: the mechanism is (ε, δ)-DP on the pair (x, x')``; reject = violation.

    Parameters
    ----------
    sample_x, sample_y : callables
        ``sample(k)`` returns ``k`` independent scalar outputs of ``M(x)`` / ``M(x')``.
    epsilon, delta : float
        The claimed guarantee.
    n : int
        Samples per side used to judge (a pilot of ``n // 10`` per side picks thresholds).
    alpha : float
        Bound on the false-alarm probability for a mechanism that satisfies the claim.
    """
    pilot = np.concatenate([sample_x(n // 10), sample_y(n // 10)])
    qs = np.concatenate(
        [np.linspace(0.02, 0.98, n_thresholds), [0.001, 0.005, 0.01, 0.99, 0.995, 0.999]]
    )
    thresholds = np.unique(np.quantile(pilot, qs))
    a, b = np.asarray(sample_x(n), dtype=np.float64), np.asarray(sample_y(n), dtype=np.float64)
    # events: {o >= t} and {o <= t} for each threshold; both directions
    events = [(f"o >= {t:g}", lambda o, t=t: o >= t) for t in thresholds] + [
        (f"o <= {t:g}", lambda o, t=t: o <= t) for t in thresholds
    ]
    m = 2 * len(events)
    level = alpha / (2 * m)  # two bounds per test, m tests
    names = [e[0] for e in events]
    ka = np.array([np.count_nonzero(f(a)) for _, f in events])
    kb = np.array([np.count_nonzero(f(b)) for _, f in events])
    best, where, violation = -math.inf, "", False
    for k1, k2, direction in ((ka, kb, "x vs x'"), (kb, ka, "x' vs x")):
        p_lo, q_hi = _cp_lower(k1, n, level), _cp_upper(k2, n, level)
        viol = p_lo > math.exp(epsilon) * q_hi + delta
        with np.errstate(divide="ignore", invalid="ignore"):
            eps_lb = np.where(
                (p_lo - delta) > 0,
                np.log(np.maximum(p_lo - delta, 1e-300) / np.maximum(q_hi, 1e-300)),
                -np.inf,
            )
        i = int(np.argmax(eps_lb))
        if eps_lb[i] > best:
            best, where = float(eps_lb[i]), f"{direction}: {names[i]}"
        violation |= bool(np.any(viol))
    return AuditResult(violation, best, where, n, alpha)


def variance_ratio(noise: np.ndarray, required_variance: float) -> float:
    """Empirical variance of ``noise`` (known mean 0) over the variance it must have."""
    x = np.asarray(noise, dtype=np.float64)
    return float(np.mean(x * x) / required_variance)


def variance_tolerance(n: int, kurtosis: float, z: float = 6.0) -> float:
    """Half-width of an acceptance band for :func:`variance_ratio` at ``z`` sigmas.

    The mean of ``x²`` over ``n`` samples has relative standard deviation
    ``sqrt((kurtosis - 1) / n)``; ``z = 6`` gives a two-sided false-failure rate ~2e-9
    (normal approximation; n is large).
    """
    return z * math.sqrt((kurtosis - 1.0) / n)
