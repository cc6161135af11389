"""DP-FedAvg accounting: one Gaussian noise scale for a whole training run, from OpenDP.

DP-FedAvg (McMahan, Ramage, Talwar & Zhang 2018, "Learning Differentially Private
Recurrent Language Models") in central mode: every site clips its model update to L2 norm
``C`` (public), the secure sum adds the clipped updates, and customs adds Gaussian noise
*once per round* to that sum before anything else happens to it. Everything after the noise
(division by the public number of sites, the server optimiser, the next round) is
post-processing, including the intermediate global models sent to the sites in every
round's request: they are covered by the same guarantee.

**Unit of privacy and sensitivity.** Neighbouring datasets differ by one unit of privacy
(a patient with all their rows, or a row: ``sf.DP(unit=...)``, which must match the
schema). A patient's rows are at one site (the hospitals' patients are disjoint; a patient
treated at ``k`` sites would need ``k`` times the noise). Adding or removing them changes
that one site's clipped update to another point of the ball of radius ``C``, so the sum of
clipped updates moves by at most ``2C`` in L2 norm, whatever the number of rows the patient
has and whatever the other sites send: the L2 sensitivity of one round is ``2C``. (Adding or
removing a whole *site* would move it by ``C``; safeflow protects patients.) Sites clip to
``C·(1 - 2^-30)`` so that the fixed-point encoding's rounding cannot push an update past
``C``.

**Composition.** Round ``r`` releases ``S_r + N(0, σ²I)`` through OpenDP's Gaussian
mechanism on float vectors (``make_gaussian`` on ``vector_domain(atom_domain(f64))`` with
``l2_distance``, OpenDP's float-lattice sampler), which satisfies ``ρ = (2C)²/(2σ²)``-zCDP
(OpenDP's privacy map). ``R`` rounds compose adaptively to ``Rρ``-zCDP (Bun & Steinke 2016,
Lemma 2.3); OpenDP's ``make_composition`` of the ``R`` per-round measurements gives the
same map. ``make_zCDP_to_approxDP`` (Canonne, Kamath & Steinke 2020) then ``make_fix_delta``
turn it into ``(ε, δ)``. The per-round scale ``σ`` is the smallest scale for which that
composed map certifies the run's ``(ε, δ)`` (OpenDP's ``binary_search_param``, then a
check of the composed map at ``d_in = 2C``, compared exactly as fractions, nudging ``σ`` up
until it passes): the whole run, all ``R`` rounds, spends the ``ε`` and ``δ`` debited
from every site's ledger once, before training starts.

OpenDP's samplers draw from the operating system; they cannot be seeded.

Examples
--------
>>> from safeflow.dp import DP
>>> sigma = noise_scale(DP(1, delta=1e-6), rounds=10, clip=1.0)
>>> round(sigma, 2)
28.66
>>> eps, delta = run_privacy_loss(sigma, rounds=10, clip=1.0, delta=DP(1, delta=1e-6).delta)
>>> float(eps) <= 1, float(delta)
(True, 1e-06)
"""

from __future__ import annotations

import functools
import math
from fractions import Fraction
from typing import Any

import numpy as np

from safeflow.dp.mechanisms import _float_down, _float_up, _opendp
from safeflow.dp.spec import DP
from safeflow.errors import InvalidParameter, ProtocolError

#: sites clip to ``C * CLIP_MARGIN`` so that fixed-point rounding keeps updates inside ``C``
CLIP_MARGIN = 1.0 - 2.0**-30


def l2_sensitivity(clip: float) -> float:
    """L2 sensitivity of one round's sum of clipped updates: ``2·clip`` (rounded up).

    Examples
    --------
    >>> l2_sensitivity(0.5)
    1.0
    """
    return _float_up(2 * Fraction(clip))


@functools.lru_cache(maxsize=64)
def _round_measurement(scale: float) -> Any:
    """One round: Gaussian noise on a float vector, L2 sensitivity, zCDP (OpenDP)."""
    dp = _opendp()
    space = dp.vector_domain(dp.atom_domain(T=float, nan=False)), dp.l2_distance(T=float)
    return space >> dp.m.then_gaussian(scale=scale)


def _run_measurement(scale: float, rounds: int, delta: float) -> Any:
    dp = _opendp()
    composed = dp.c.make_composition([_round_measurement(scale)] * rounds)
    return dp.c.make_fix_delta(dp.c.make_zCDP_to_approxDP(composed), delta)


def run_privacy_loss(scale: float, *, rounds: int, clip: float,
                     delta: Fraction) -> tuple[Fraction, Fraction]:
    """OpenDP's ``(ε, δ)`` for ``rounds`` noised sums at ``scale`` (exact fractions).

    Examples
    --------
    >>> from fractions import Fraction
    >>> eps, _ = run_privacy_loss(10.0, rounds=4, clip=1.0, delta=Fraction(1, 10**6))
    >>> round(float(eps), 3)
    1.897
    """
    meas = _run_measurement(scale, rounds, _float_down(delta))
    eps, d = meas.map(l2_sensitivity(clip))
    return Fraction(eps), Fraction(d)


def round_rho(scale: float, clip: float) -> float:
    """zCDP ρ of one round at ``scale`` (OpenDP's map at ``d_in = 2·clip``).

    Examples
    --------
    >>> round_rho(2.0, 0.5)
    0.125
    """
    return float(_round_measurement(scale).map(l2_sensitivity(clip)))


@functools.lru_cache(maxsize=64)
def _calibrate(epsilon: Fraction, delta: Fraction, rounds: int, clip: float) -> float:
    dp = _opendp()
    d_in = l2_sensitivity(clip)
    target = (_float_down(epsilon), _float_down(delta))
    # R rounds at scale σ have the zCDP of one round at σ/√R: search the cheap one ...
    one = float(dp.binary_search_param(
        lambda s: dp.c.make_fix_delta(dp.c.make_zCDP_to_approxDP(_round_measurement(s)),
                                      target[1]),
        d_in=d_in, d_out=target, T=float))
    scale = one * math.sqrt(rounds)
    # ... then check the composed run itself, nudging up until OpenDP certifies it
    for _ in range(256):
        eps, d = run_privacy_loss(scale, rounds=rounds, clip=clip, delta=delta)
        if eps <= epsilon and d <= delta:
            return scale
        scale = math.nextafter(scale * (1 + 2.0**-40), math.inf)
    raise ProtocolError("internal check failed: no Gaussian scale found that OpenDP certifies "
                        "for this run; report this")  # pragma: no cover


def noise_scale(dp: DP, *, rounds: int, clip: float) -> float:
    """Per-round Gaussian σ so that ``rounds`` rounds meet ``dp``'s ``(ε, δ)`` in total.

    Parameters
    ----------
    dp : sf.DP
        The run's budget; ``delta`` must be > 0 (Gaussian mechanism).
    rounds : int
        Training rounds (noised sums).
    clip : float
        L2 norm each site's update is clipped to.

    Examples
    --------
    >>> from safeflow.dp import DP
    >>> noise_scale(DP(1), rounds=5, clip=1.0)
    Traceback (most recent call last):
    ...
    safeflow.errors.InvalidParameter: DP-FedAvg uses the Gaussian mechanism, which needs delta > 0: pass e.g. sf.DP(1, delta=1e-6)
    """  # noqa: E501
    if not isinstance(dp, DP):
        raise InvalidParameter(
            f"dp must be an sf.DP object, e.g. dp=sf.DP(1, delta=1e-6); got {type(dp).__name__}")
    if dp.delta == 0:
        raise InvalidParameter("DP-FedAvg uses the Gaussian mechanism, which needs delta > 0: "
                               f"pass e.g. sf.DP({dp.epsilon}, delta=1e-6)")
    return _calibrate(dp.epsilon, dp.delta, int(rounds), float(clip))


def add_noise(total: np.ndarray, scale: float) -> np.ndarray:
    """One round's noise at customs: OpenDP's Gaussian sampler on the exact secure sum.

    Examples
    --------
    >>> add_noise(np.zeros(3), 1.0).shape
    (3,)
    """
    flat = np.asarray(total, dtype=np.float64).ravel()
    if not np.all(np.isfinite(flat)):
        raise ProtocolError("the sum of clipped updates is not finite; nothing was released")
    out = np.asarray(_round_measurement(scale)(flat.tolist()), dtype=np.float64)
    return out.reshape(np.shape(total))


def accuracy(scale: float, alpha: float) -> float:
    """Half-width of the ``1 - alpha`` interval of one noised coordinate (OpenDP).

    Examples
    --------
    >>> round(accuracy(1.0, 0.05), 3)
    1.96
    """
    return float(_opendp().gaussian_scale_to_accuracy(scale, alpha))


__all__ = ["CLIP_MARGIN", "accuracy", "add_noise", "l2_sensitivity", "noise_scale",
           "round_rho", "run_privacy_loss"]
