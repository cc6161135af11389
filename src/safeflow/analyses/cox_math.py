"""The numerics of the Cox model: risk-set sums, Efron/Breslow terms and the Newton driver.

Pure numpy, no federation: :mod:`safeflow.analyses.cox` uses these functions at the sites
(per-bin sums, exact within-stratum terms) and at customs (terms from summed per-bin sums,
the Newton decision), and the tests use the same Newton driver on the pooled rows, so a
federated fit and a pooled fit take exactly the same iterations.

Covariates are handled on a standardised scale ``z = (x - c) / h`` with public centres
``c`` and half-ranges ``h``; :func:`bin_sums` and :func:`exact_terms` work on ``z`` and the
coefficients ``beta_z = beta * h``. The partial likelihood is invariant to the centring, and
``grad_beta = h * grad_z``, ``hess_beta = diag(h) hess_z diag(h)``.

Per time bin ``j`` with ``d_j`` events, risk-set sums ``S0, S1, S2`` (of ``w = exp(z·beta_z)``,
``z w``, ``z zᵀ w`` over rows with time ``>= t_j``) and event sums ``E0, E1, E2`` (the same
over the ``d_j`` events), Efron's log partial likelihood is::

    Σ_events z·beta_z - Σ_j Σ_{l<d_j} log(S0_j - (l/d_j) E0_j)

with gradient ``Σ_events z - Σ_j Σ_l m1/m0`` and Hessian
``-Σ_j Σ_l (m2/m0 - m1 m1ᵀ/m0²)`` where ``mk = Sk_j - (l/d_j) Ek_j``. Breslow's is the same
with ``l/d_j`` replaced by 0.

Examples
--------
>>> import numpy as np
>>> t = np.array([1.0, 2.0, 2.0, 3.0]); e = np.array([1.0, 1.0, 0.0, 1.0])
>>> z = np.array([[0.5], [-1.0], [0.2], [1.0]])
>>> ll, g, h = exact_terms(t, e, z, np.zeros(1), "efron")
>>> round(float(ll), 6)
-2.484907
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from safeflow.analyses.newton import information, newton_start, newton_step
from safeflow.errors import ConvergenceError

_HINT = "drop or merge covariate {names}, or add a ridge penalty via penalty="


def tri(p: int) -> tuple[np.ndarray, np.ndarray]:
    """Row and column indices of the packed upper triangle of a ``p x p`` matrix.

    Examples
    --------
    >>> [a.tolist() for a in tri(2)]
    [[0, 0, 1], [0, 1, 1]]
    """
    return np.triu_indices(p)


def unpack(packed: np.ndarray, p: int) -> np.ndarray:
    """Symmetric ``(..., p, p)`` matrices from packed upper triangles ``(..., p(p+1)/2)``.

    Examples
    --------
    >>> unpack(np.array([1.0, 2.0, 3.0]), 2).tolist()
    [[1.0, 2.0], [2.0, 3.0]]
    """
    i, j = tri(p)
    out = np.zeros((*packed.shape[:-1], p, p))
    out[..., i, j] = packed
    out[..., j, i] = packed
    return out


def bin_sums(
    key: np.ndarray, size: int, event: np.ndarray, z: np.ndarray, w: np.ndarray, efron: bool
) -> dict[str, np.ndarray]:
    """Per-bin sums over the rows *leaving* the risk set at each bin (events and censored).

    ``cnt`` rows, ``d`` events, ``r0, r1, r2``: sums of ``w, z w, z zᵀ w`` (packed) over all
    rows of the bin; ``e0, e1, e2`` the same over its events (only when ``efron``). The risk
    set of bin ``j`` is every row in bins ``>= j`` (:func:`suffix`).

    Examples
    --------
    >>> s = bin_sums(np.array([0, 1, 1]), 2, np.array([1.0, 0.0, 1.0]),
    ...              np.ones((3, 1)), np.ones(3), efron=False)
    >>> s["cnt"].tolist(), s["d"].tolist(), s["r0"].tolist()
    ([1, 2], [1, 1], [1.0, 2.0])
    """
    p = z.shape[1]
    i, j = tri(p)
    zz = z[:, i] * z[:, j]
    key = np.asarray(key, dtype=np.int64)
    out = {
        "cnt": np.bincount(key, minlength=size).astype(np.int64),
        "d": np.bincount(key, weights=event, minlength=size).round().astype(np.int64),
    }
    out["r0"] = np.bincount(key, weights=w, minlength=size)
    out["r1"] = _cols(key, size, z * w[:, None])
    out["r2"] = _cols(key, size, zz * w[:, None])
    if efron:
        we = w * event
        out["e0"] = np.bincount(key, weights=we, minlength=size)
        out["e1"] = _cols(key, size, z * we[:, None])
        out["e2"] = _cols(key, size, zz * we[:, None])
    return out


def _cols(key: np.ndarray, size: int, vals: np.ndarray) -> np.ndarray:
    out = np.empty((size, vals.shape[1]))
    for k in range(vals.shape[1]):
        out[:, k] = np.bincount(key, weights=vals[:, k], minlength=size)
    return out


def suffix(a: np.ndarray) -> np.ndarray:
    """Reverse cumulative sum along the first axis (risk sets from per-bin sums).

    Examples
    --------
    >>> suffix(np.array([1.0, 2.0, 3.0])).tolist()
    [6.0, 5.0, 3.0]
    """
    return np.flip(np.cumsum(np.flip(a, axis=0), axis=0), axis=0)


def risk_terms(
    sums: Mapping[str, np.ndarray], beta_z: np.ndarray, ties: str
) -> tuple[float, np.ndarray, np.ndarray]:
    """Log partial likelihood, gradient and Hessian (z scale) of one stratum's bin sums.

    ``sums`` holds the per-bin arrays of :func:`bin_sums` (summed over sites) and ``ex``,
    the sum of ``z`` over all events of the stratum (a ``p`` vector).
    """
    p = beta_z.size
    d = np.asarray(sums["d"], dtype=np.int64)
    ex = np.asarray(sums["ex"], dtype=np.float64)
    ll, grad, hess = float(ex @ beta_z), ex.copy(), np.zeros((p, p))
    idx = np.flatnonzero(d > 0)
    if idx.size == 0:
        return ll, grad, hess
    dj = d[idx]
    s0, s1 = suffix(sums["r0"])[idx], suffix(sums["r1"])[idx]
    s2 = suffix(sums["r2"])[idx]
    if ties == "breslow":
        parts = [(dj.astype(np.float64), s0, s1, s2)]
    else:
        e0, e1, e2 = sums["e0"][idx], sums["e1"][idx], sums["e2"][idx]
        parts = []
        for tie in range(int(dj.max())):  # Efron: the tie-th of the d_j events at t_j
            sel = dj > tie
            f = tie / dj[sel]
            parts.append(
                (
                    np.ones(int(sel.sum())),
                    s0[sel] - f * e0[sel],
                    s1[sel] - f[:, None] * e1[sel],
                    s2[sel] - f[:, None] * e2[sel],
                )
            )
    a2 = np.zeros(s2.shape[1])
    for wt, m0, m1, m2 in parts:
        if np.any(m0 <= 0):
            raise ConvergenceError(
                "a risk set has no weight left (exp(x·beta) underflowed); the coefficients "
                "diverge. " + _HINT.format(names="with the largest |coef|")
            )
        ll -= float(wt @ np.log(m0))
        q1 = m1 / m0[:, None]
        grad -= wt @ q1
        a2 += wt @ (m2 / m0[:, None])
        hess += np.einsum("n,ni,nj->ij", wt, q1, q1)
    hess -= unpack(a2, p)
    return ll, grad, hess


def exact_terms(
    t: np.ndarray, event: np.ndarray, z: np.ndarray, beta_z: np.ndarray, ties: str
) -> tuple[float, np.ndarray, np.ndarray]:
    """Exact log partial likelihood, gradient and Hessian (z scale) of one stratum's rows.

    The bins are the distinct times, so ties are handled exactly as pooled software does.
    """
    if t.size == 0:
        p = beta_z.size
        return 0.0, np.zeros(p), np.zeros((p, p))
    times, inv = np.unique(t, return_inverse=True)
    w = safe_exp(z @ beta_z)
    sums: dict[str, Any] = bin_sums(inv, times.size, event, z, w, ties == "efron")
    sums["ex"] = event @ z
    return risk_terms(sums, beta_z, ties)


def safe_exp(eta: np.ndarray) -> np.ndarray:
    """``exp(eta)``, refusing (typed error) when it would overflow."""
    if eta.size and not float(np.max(eta)) < 700.0:
        raise ConvergenceError(
            "exp(x·beta) overflows: the coefficients diverge or a covariate without "
            "declared bounds takes very large values; declare bounds for the covariates "
            "(so they are centred and scaled), or " + _HINT.format(names="the offending one")
        )
    return np.exp(eta)


# --------------------------------------------------------------------------------------
# Newton decisions (the shared driver of safeflow.analyses.newton, plus Cox's checks)


def cox_decision(
    state: Mapping[str, Any],
    ll: float,
    grad: np.ndarray,
    hess: np.ndarray,
    *,
    names: Sequence[str],
    penalty: np.ndarray,
    scale: np.ndarray,
    tol: float,
    max_iter: int,
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """One Newton decision at ``state["beta"]``: the next state, or the fit.

    Applies the ridge penalty ``½ Σ penalty_k beta_k²`` and hands over to the shared
    :func:`~safeflow.analyses.newton.newton_step` (full steps, halving when the objective
    decreases, convergence on its relative change). When it has converged, the Newton step
    ``delta`` from the current point decides, on each covariate's ``scale`` (how far a unit
    of its coefficient moves the linear predictor, e.g. its range):

    * still large (``> sqrt(tol)``): the likelihood keeps rising along that coefficient
      (monotone likelihood), :class:`ConvergenceError`;
    * above ``tol``: not converged yet, one more step (so that the standard errors, taken
      from the Hessian of the last round, are exact to about ``tol``);
    * otherwise the fit: coefficients ``beta + delta`` (one free Newton step, exact to
      second order), log-likelihood and Hessian at ``beta``.

    A singular information matrix raises :class:`ConvergenceError` naming the covariates.

    Examples
    --------
    >>> f = lambda b: (float(-(b[0] - 1.0) ** 2), np.array([-2 * (b[0] - 1.0)]),
    ...                np.array([[-2.0]]))
    >>> fit = newton_fit(f, ["x"])
    >>> fit["beta"].tolist(), fit["iterations"]
    ([1.0], 3)
    """
    beta = np.asarray(state["beta"], dtype=np.float64)
    obj = ll - 0.5 * float(penalty @ (beta * beta))
    g = np.asarray(grad, dtype=np.float64) - penalty * beta
    h = np.asarray(hess, dtype=np.float64) - np.diag(penalty)
    try:
        out = newton_step(dict(state), obj, g, h, tol=tol, max_iter=max_iter, names=list(names))
        if not out.done:
            return out.state, None
        step = np.linalg.solve(information(h, list(names)), g)
    except ConvergenceError:
        if np.all(np.isfinite(h)):
            check_information(h, names)  # a more specific message, naming covariates
        raise
    size = np.abs(step) * scale
    moving = size > np.sqrt(tol) * np.maximum(1.0, np.abs(beta) * scale)
    if np.any(moving):
        bad = ", ".join(repr(names[k]) for k in np.flatnonzero(moving))
        raise ConvergenceError(
            f"monotone likelihood: the log partial likelihood keeps increasing as the "
            f"coefficient of {bad} grows without bound (it separates the events from the "
            f"rest of their risk sets); " + _HINT.format(names=bad)
        )
    if np.max(size, initial=0.0) > tol:  # flat objective, but not at the maximum yet
        out = newton_step(
            {**state, "prev_obj": None}, obj, g, h, tol=tol, max_iter=max_iter, names=list(names)
        )
        return out.state, None
    fit = {
        "beta": beta + step,
        "beta_eval": beta,
        "ll": ll,
        "ll_penalized": obj,
        "hess": h,
        "iterations": out.evaluations,
    }
    return out.state, fit


def check_information(hess: np.ndarray, names: Sequence[str]) -> None:
    """Raise :class:`ConvergenceError` naming covariates when ``-hess`` is singular.

    Examples
    --------
    >>> check_information(-np.array([[1.0, 2.0], [2.0, 4.0]]), ["a", "b"])
    Traceback (most recent call last):
    ...
    safeflow.errors.ConvergenceError: the information matrix is singular: covariates 'a', 'b' are collinear (or a level never occurs in a stratum); drop or merge covariate 'a', 'b', or add a ridge penalty via penalty=
    """  # noqa: E501
    info = -np.asarray(hess, dtype=np.float64)
    d = np.diag(info)
    flat = [names[k] for k in range(d.size) if not d[k] > 1e-12 * max(1.0, float(d.max()))]
    if flat:
        bad = ", ".join(map(repr, flat))
        raise ConvergenceError(
            f"the information matrix is singular: covariate {bad} has no variation within "
            f"the risk sets (constant overall, or within every stratum); " + _HINT.format(names=bad)
        )
    s = 1.0 / np.sqrt(d)
    vals, vecs = np.linalg.eigh(info * np.outer(s, s))
    if vals[0] <= 1e-10 * max(float(vals[-1]), 1.0):
        v = np.abs(vecs[:, 0])
        bad = ", ".join(repr(names[k]) for k in np.flatnonzero(v > 0.1 * v.max()))
        raise ConvergenceError(
            f"the information matrix is singular: covariates {bad} are collinear (or a "
            f"level never occurs in a stratum); " + _HINT.format(names=bad)
        )


def newton_fit(
    evaluate: Callable[[np.ndarray], tuple[float, np.ndarray, np.ndarray]],
    names: Sequence[str],
    *,
    penalty: np.ndarray | None = None,
    scale: np.ndarray | None = None,
    tol: float = 1e-9,
    max_iter: int = 50,
) -> dict[str, Any]:
    """Run :func:`cox_decision` to the end against a local ``evaluate(beta)`` callback.

    This is the pooled reference: the federated :class:`~safeflow.analyses.cox.Cox`
    analysis makes the same decisions, one secure-sum round per evaluation.

    Examples
    --------
    >>> f = lambda b: (float(-b @ b), -2 * b, -2 * np.eye(2))
    >>> newton_fit(f, ["a", "b"])["iterations"]
    2
    """
    p = len(names)
    pen = np.zeros(p) if penalty is None else np.asarray(penalty, dtype=np.float64)
    scl = np.ones(p) if scale is None else np.asarray(scale, dtype=np.float64)
    state = newton_start(p)
    while True:
        beta = np.asarray(state["beta"], dtype=np.float64)
        state, fit = cox_decision(
            state, *evaluate(beta), names=names, penalty=pen, scale=scl, tol=tol, max_iter=max_iter
        )
        if fit is not None:
            return fit


__all__ = [
    "bin_sums",
    "check_information",
    "cox_decision",
    "exact_terms",
    "newton_fit",
    "risk_terms",
    "suffix",
    "tri",
    "unpack",
]
