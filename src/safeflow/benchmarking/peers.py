"""Peers run in the same process: OpenDP on the pooled rows, bare Flower FedAvg, safeflow.fl.

* **OpenDP single curator** (:func:`opendp_table1`, :func:`opendp_km`,
  :func:`opendp_logrank`): the same DP release computed by OpenDP's own constructors
  directly on the pooled rows, as one trusted curator would, with the same ε split the same
  way as safeflow splits it (evenly over the noise groups, basic composition):

  - Table 1: ``then_count`` (rows), per numeric column ``then_clamp >> then_sum`` of the
    values centred on the middle of their bounds and of their squares, per categorical
    column ``then_count_by_categories``; each ``>> then_laplace`` at ε / groups. OpenDP's
    float sum charges ``upper - lower`` per added or removed row when the bounds straddle 0
    (twice safeflow's half-range), so its sums carry twice the noise.
  - Kaplan-Meier and log-rank: one ``then_count_by_categories`` over the (group, grid time,
    event or censoring) cells, one ``then_laplace`` at ε (every row falls in one cell), then
    the curve or test from the noisy table (negative counts set to 0, as customs does).

* **Bare Flower FedAvg** (:func:`flower_fedavg`): run when ``safeflow.transport.flower``
  provides a bare-FedAvg benchmark function (see :data:`FLOWER_HOOKS`), else "not
  available".
* **safeflow.fl** (:func:`fl_train`): federated training when ``safeflow.fl.train`` exists,
  else "not available".

Examples
--------
>>> from safeflow.benchmarking.data import lung
>>> from safeflow.benchmarking.estimands import KaplanMeier
>>> km = KaplanMeier(lung())
>>> 0 <= opendp_km(km, 5.0) <= 1
True
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable, Mapping, Sequence
from functools import cache
from typing import Any

import numpy as np
import pandas as pd

from safeflow.benchmarking.estimands import Estimand, KaplanMeier, LogRank, Table1, sup_norm
from safeflow.release import Release

#: where the bare-FedAvg hook is looked for: (module, function name)
FLOWER_HOOKS: tuple[tuple[str, str], ...] = (
    ("safeflow.transport.flower.bench", "bare_fedavg"),
    ("safeflow.transport.flower", "bare_fedavg"),
)


def _dp() -> Any:
    import opendp.prelude as dp

    dp.enable_features("contrib")
    return dp


@cache
def _measurement(kind: str, epsilon: float, lower: float = 0.0, upper: float = 0.0,
                 categories: tuple[int, ...] = ()) -> Any:
    """An OpenDP measurement on a vector of pooled rows, calibrated to ``epsilon``."""
    dp = _dp()
    if kind == "count":
        space = dp.vector_domain(dp.atom_domain(T=dp.i64)), dp.symmetric_distance()
        trans = space >> dp.t.then_count()
    elif kind == "categories":
        space = dp.vector_domain(dp.atom_domain(T=dp.i64)), dp.symmetric_distance()
        trans = space >> dp.t.then_count_by_categories(categories=list(categories),
                                                        null_category=False)
    else:
        space = dp.vector_domain(dp.atom_domain(T=float, nan=False)), dp.symmetric_distance()
        trans = space >> dp.t.then_clamp((lower, upper)) >> dp.t.then_sum()
    scale = dp.binary_search_param(lambda s: trans >> dp.m.then_laplace(scale=s), d_in=1,
                                   d_out=epsilon)
    return trans >> dp.m.then_laplace(scale=scale)


def opendp_table1(est: Table1, epsilon: float) -> float:
    """Error of one OpenDP single-curator Table 1 at ``epsilon`` (same metric as safeflow).

    Examples
    --------
    >>> from safeflow.benchmarking.data import lung
    >>> opendp_table1(Table1(lung()), 5.0) >= 0
    True
    """
    df, schema = est.data.pooled, est.data.schema
    groups = 1 + 2 * len(est.numeric) + len(est.categorical)
    share = epsilon / groups
    n = float(_measurement("count", share)([0] * len(df)))
    out: dict[tuple[str, str, str], float] = {}
    n_pos = max(n, 2.0)
    for c in est.numeric:
        lo, hi = schema.public_bounds(c) or (0.0, 0.0)
        mid, half = (lo + hi) / 2, (hi - lo) / 2
        x = df[c].to_numpy(float) - mid
        s = float(_measurement("sum", share, -half, half)(x.tolist()))
        ss = float(_measurement("sum", share, 0.0, half * half)((x * x).tolist()))
        out[(c, "", "mean")] = s / n_pos + mid
        var = (ss - s * s / n_pos) / (n_pos - 1)
        out[(c, "", "sd")] = math.sqrt(max(var, 0.0))
    for c in est.categorical:
        levels = [str(v) for v in (schema.column(c).categories or ())]
        codes = df[c].astype(str).map({v: i for i, v in enumerate(levels)}).astype(int)
        counts = _measurement("categories", share, categories=tuple(range(len(levels))))(
            codes.tolist())
        for level, k in zip(levels, counts, strict=True):
            out[(c, level, "percent")] = 100.0 * max(float(k), 0.0) / n_pos
    return est.error(out, est.pooled_fit())


def _noisy_cells(cells: np.ndarray, n_cells: int, epsilon: float) -> np.ndarray:
    meas = _measurement("categories", epsilon, categories=tuple(range(n_cells)))
    return np.maximum(np.rint(np.asarray(meas(cells.tolist()), dtype=float)), 0.0)


def _grid_tables(est: Estimand, groups: np.ndarray, n_groups: int,
                 epsilon: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Noisy (events, removals) tables of shape (groups, grid) and the grid's times."""
    df, schema = est.data.pooled, est.data.schema
    col = schema.column("time")
    lo, hi = col.bounds or (0.0, 0.0)
    step = col.resolution or 1.0
    times = np.arange(lo, hi + step / 2, step)
    j = np.clip(np.searchsorted(times, df["time"].to_numpy(float), side="right") - 1, 0, None)
    event = df["status"].to_numpy(int)
    k = times.size
    cells = (groups * k + j) * 2 + event
    noisy = _noisy_cells(cells, 2 * n_groups * k, epsilon).reshape(n_groups, k, 2)
    events, censored = noisy[..., 1], noisy[..., 0]
    return events, events + censored, times


def opendp_km(est: KaplanMeier, epsilon: float) -> float:
    """Error (sup-norm) of one OpenDP single-curator Kaplan-Meier curve at ``epsilon``."""
    d, r, times = _grid_tables(est, np.zeros(len(est.data.pooled), dtype=int), 1, epsilon)
    d, r = d[0], r[0]
    at_risk = r.sum() - np.cumsum(r) + r
    keep = np.flatnonzero((r > 0) & (at_risk > 0))
    surv = np.cumprod(1.0 - d[keep] / at_risk[keep])
    curve = pd.Series(np.r_[1.0, surv], index=np.r_[times[0] - 1.0, times[keep]])
    return sup_norm(curve, est.pooled_fit())


def opendp_logrank(est: LogRank, epsilon: float) -> float:
    """Error |Δχ²| of one OpenDP single-curator log-rank test (by sex) at ``epsilon``."""
    from safeflow.analyses.survival_results import logrank_stat

    levels = [str(v) for v in (est.data.schema.column("sex").categories or ())]
    g = est.data.pooled["sex"].astype(str).map({v: i for i, v in enumerate(levels)})
    d, r, _ = _grid_tables(est, g.to_numpy(int), len(levels), epsilon)
    keep = np.flatnonzero(r.sum(0) > 0)
    if (r.sum(1) == 0).any() or keep.size == 0:
        return float("nan")
    stat, _ = logrank_stat(r[:, keep], d[:, keep])
    return abs(stat - est.pooled_fit())


#: estimand key -> its OpenDP single-curator peer
OPENDP_PEERS: dict[str, Callable[[Any, float], float]] = {
    "table1": opendp_table1, "km": opendp_km, "logrank": opendp_logrank}
#: estimands with DP rows but no OpenDP peer, and why
OPENDP_MISSING: dict[str, str] = {
    "linear": "OpenDP offers no constructor for regression sufficient statistics "
              "(XᵀX, Xᵀy); no single-curator peer is built"}


# --------------------------------------------------------------------------- hooks


def find_hook(candidates: Sequence[tuple[str, str]]) -> Callable[..., Any] | None:
    """The first ``module.function`` of ``candidates`` that imports, else ``None``.

    Examples
    --------
    >>> find_hook([("safeflow.no_such_module", "f")]) is None
    True
    >>> find_hook([("math", "sqrt")])(4.0)
    2.0
    """
    for module, name in candidates:
        try:
            fn = getattr(importlib.import_module(module), name, None)
        except ImportError:
            continue
        if callable(fn):
            return fn
    return None


def flower_fedavg(parts: Sequence[tuple[np.ndarray, np.ndarray]],
                  rounds: int) -> Mapping[str, Any] | str:
    """Run bare Flower FedAvg through the transport's hook, or say why it cannot run.

    The hook (:data:`FLOWER_HOOKS`) is called as ``bare_fedavg(parts, rounds=rounds)``
    with one ``(X, y)`` pair of numpy arrays per site, and returns a mapping with at least
    ``seconds``; ``bytes``, ``rounds``, ``peak_mib`` and ``weights`` (logistic weights,
    intercept last) are used when present.

    Examples
    --------
    >>> isinstance(flower_fedavg([], rounds=1), (str, dict))
    True
    """
    fn = find_hook(FLOWER_HOOKS)
    if fn is None:
        return ("not available: safeflow.transport.flower provides no bare-FedAvg benchmark "
                "function (looked for " + ", ".join(f"{m}.{n}" for m, n in FLOWER_HOOKS) + ")")
    try:
        out = fn(list(parts), rounds=rounds)
    except Exception as e:  # a peer that fails is reported, not fatal
        return f"failed: {type(e).__name__}: {e}"
    return dict(out)


def fl_train() -> Callable[..., Release] | str:
    """``safeflow.fl.train`` when it exists, else the reason it is not used.

    Examples
    --------
    >>> fn = fl_train()
    >>> callable(fn) or fn.startswith("not available")
    True
    """
    fn = find_hook([("safeflow.fl", "train")])
    if fn is None:
        return "not available: safeflow.fl.train does not exist in this build"
    return fn


def predict_scores(value: Any, frame: pd.DataFrame) -> np.ndarray | None:
    """Scores of a trained model's value on ``frame`` (``predict_proba`` or ``predict``).

    Examples
    --------
    >>> predict_scores(object(), pd.DataFrame()) is None
    True
    """
    for name in ("predict_proba", "predict", "decision_function"):
        fn = getattr(value, name, None)
        if callable(fn):
            scores = np.asarray(fn(frame), dtype=float)
            return scores[:, -1] if scores.ndim == 2 else scores
    return None


__all__ = ["FLOWER_HOOKS", "OPENDP_MISSING", "OPENDP_PEERS", "find_hook", "fl_train",
           "flower_fedavg", "opendp_km", "opendp_logrank", "opendp_table1", "predict_scores"]
