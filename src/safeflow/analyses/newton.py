"""Newton-Raphson as a resumable state machine: one objective evaluation per round.

A federated fit cannot loop over the data: each evaluation of the objective, gradient and
Hessian at ``beta`` is one secure sum. :func:`newton_step` takes the state (JSON-able, so it
travels in round requests) and one evaluation, and returns either the next point to
evaluate or the converged fit. The same function drives the pooled reference fit in the
tests, so "rounds == pooled Newton iterations" is checked, not assumed.

Rules: full Newton steps on the (penalised) log-likelihood; if the objective decreases, the
step is halved (up to 30 times) before moving on; convergence when the relative change of
the objective is below ``tol`` (as R's ``glm.fit``: ``|Δ| / (|obj| + 0.1) < tol``).

Examples
--------
>>> import numpy as np
>>> f = lambda b: (-(b[0] - 3.0) ** 2, np.array([-2 * (b[0] - 3.0)]), np.array([[-2.0]]))
>>> state = newton_start(1)
>>> while True:
...     beta = np.array(state["beta"])
...     out = newton_step(state, *f(beta), tol=1e-12, max_iter=20)
...     if out.done:
...         break
...     state = out.state
>>> round(float(out.beta[0]), 6), out.evaluations
(3.0, 3)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from safeflow.errors import ConvergenceError


@dataclass
class NewtonOutcome:
    """Result of one :func:`newton_step`: the next state, or the converged point."""

    done: bool
    state: dict[str, Any]
    beta: np.ndarray
    evaluations: int


def newton_start(p: int, beta0: np.ndarray | None = None) -> dict[str, Any]:
    """Initial state for ``p`` parameters (zeros unless ``beta0``)."""
    b = np.zeros(p) if beta0 is None else np.asarray(beta0, dtype=float)
    return {"beta": b.tolist(), "prev": None, "prev_obj": None, "evaluations": 0,
            "halvings": 0, "iterations": 0}


def information(hess: np.ndarray, names: list[str] | None = None) -> np.ndarray:
    """``-hess`` checked to be positive definite; typed error naming suspect parameters."""
    info = -np.asarray(hess, dtype=float)
    try:
        np.linalg.cholesky(info)
    except np.linalg.LinAlgError:
        diag = np.diag(info)
        bad = [(names[i] if names else str(i)) for i in range(len(diag))
               if not diag[i] > 1e-12 * max(1.0, float(np.max(np.abs(diag))))]
        hint = f" (no information on {', '.join(bad)})" if bad else ""
        raise ConvergenceError(
            f"the information matrix is singular{hint}: a covariate may be constant or a "
            "linear combination of others; drop or merge it, or add a ridge penalty via "
            "penalty=") from None
    return info


def newton_step(state: dict[str, Any], obj: float, grad: np.ndarray, hess: np.ndarray, *,
                tol: float, max_iter: int, names: list[str] | None = None) -> NewtonOutcome:
    """Consume one evaluation at ``state['beta']``; return the next point or convergence."""
    beta = np.asarray(state["beta"], dtype=float)
    evaluations = int(state["evaluations"]) + 1
    if not (math.isfinite(obj) and np.all(np.isfinite(grad)) and np.all(np.isfinite(hess))):
        raise ConvergenceError("the objective is not finite at the current estimate; the "
                               "model may be separated or the covariates badly scaled")
    prev_obj = state["prev_obj"]
    if prev_obj is not None and obj < prev_obj - 1e-12 * (abs(prev_obj) + 1.0):
        halvings = int(state["halvings"]) + 1
        if halvings > 30:
            raise ConvergenceError("step-halving failed to increase the likelihood; try "
                                   "penalty= or fewer covariates")
        prev = np.asarray(state["prev"], dtype=float)
        nxt = {**state, "beta": ((prev + beta) / 2).tolist(), "evaluations": evaluations,
               "halvings": halvings}
        return NewtonOutcome(False, nxt, beta, evaluations)
    converged = (prev_obj is not None
                 and abs(obj - prev_obj) / (abs(obj) + 0.1) < tol)
    if converged:
        return NewtonOutcome(True, {**state, "evaluations": evaluations}, beta, evaluations)
    iterations = int(state["iterations"]) + 1
    if iterations > max_iter:
        raise ConvergenceError(
            f"Newton did not converge in {max_iter} iterations; raise max_iter, drop or merge "
            "covariates, or add a ridge penalty via penalty=")
    info = information(hess, names)
    step = np.linalg.solve(info, np.asarray(grad, dtype=float))
    nxt = {"beta": (beta + step).tolist(), "prev": beta.tolist(), "prev_obj": float(obj),
           "evaluations": evaluations, "halvings": 0, "iterations": iterations}
    return NewtonOutcome(False, nxt, beta, evaluations)
