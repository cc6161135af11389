"""GLM conformance: the federated fit equals statsmodels' pooled fit on real data."""

from __future__ import annotations

import importlib.util

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from sklearn.datasets import load_breast_cancer

import safeflow as sf
from safeflow.analyses.glm import GLM
from safeflow.analyses.newton import newton_start, newton_step
from safeflow.errors import ConvergenceError
from tests.conftest import JURISDICTIONS, LUNG_SCHEMA, lung, split_by_inst

PROTOCOLS = ["plain", "masking"] + (
    ["he"] if importlib.util.find_spec("safeflow.protocols.he") else []
)
RTOL = 1e-8

LOGT = sf.Column("log_time", classes=("public",), bounds=(0.0, 7.1))
ECOG = sf.Column(
    "ph.ecog", classes=("public",), kind="categorical", categories=(0, 1, 2), on_missing="drop"
)
SCHEMA = sf.Schema([*(c if c.name != "ph.ecog" else ECOG for c in LUNG_SCHEMA.columns), LOGT])


def _lung() -> pd.DataFrame:
    df = lung().copy()
    df["log_time"] = np.log(df["time"])
    df["ph.ecog"] = df["ph.ecog"].clip(upper=2)  # one patient has ecog 3: merge into 2
    return df


def _fed(df: pd.DataFrame, n_sites: int, schema: sf.Schema = SCHEMA) -> sf.Federation:
    parts = (
        split_by_inst(df, n_sites)
        if "inst" in df
        else [df.iloc[i::n_sites] for i in range(n_sites)]
    )
    sites = [sf.Site(f"s{i}", p, JURISDICTIONS[i % 10], schema=schema) for i, p in enumerate(parts)]
    return sf.Federation.local(sites, destination="NL", purpose="scientific-research")


def _design(df: pd.DataFrame, X: list[str], cats: dict[str, list]) -> pd.DataFrame:
    out = pd.DataFrame({"Intercept": 1.0}, index=df.index)
    for c in X:
        if c in cats:
            for lev in cats[c][1:]:
                out[f"{c}[T.{lev}]"] = (df[c] == lev).astype(float)
        else:
            out[c] = df[c].astype(float)
    return out


def _compare(rel: sf.Release, ref: object) -> None:
    """Coefficients and SEs within 1e-8 relative of statsmodels' pooled fit.

    statsmodels' IRLS reports SEs from the weights of its previous iteration; the pooled
    reference SE here is statsmodels' own observed information at its final estimate
    (``model.hessian``), which is what the federated fit reports at its estimate.
    """
    v = rel.value
    np.testing.assert_allclose(v.coef.to_numpy(), ref.params.to_numpy(), rtol=RTOL, atol=1e-10)
    if v.family == "gaussian":
        se_ref = ref.bse.to_numpy()
    else:
        se_ref = np.sqrt(np.diag(np.linalg.inv(-ref.model.hessian(ref.params.to_numpy()))))
    np.testing.assert_allclose(v.se.to_numpy(), se_ref, rtol=RTOL)
    np.testing.assert_allclose(v.loglik, ref.llf, rtol=1e-10)
    np.testing.assert_allclose(v.deviance, ref.deviance, rtol=1e-9)
    np.testing.assert_allclose(v.aic, ref.aic, rtol=1e-10)


def _pooled_newton_evaluations(
    df: pd.DataFrame, X: pd.DataFrame, y: str, family: str, offset: str | None = None
) -> int:
    """Run the same Newton driver on pooled rows: the federated fit must match its count."""
    A, yy = X.to_numpy(), df[y].to_numpy(float)
    off = df[offset].to_numpy(float) if offset else 0.0
    state = newton_start(A.shape[1])
    while True:
        b = np.asarray(state["beta"])
        eta = A @ b + off
        if family == "binomial":
            mu = 1 / (1 + np.exp(-eta))
            ll, w = np.sum(yy * eta - np.logaddexp(0, eta)), mu * (1 - mu)
        else:
            mu = np.exp(eta)
            ll, w = np.sum(yy * eta - mu), mu
        out = newton_step(
            state, ll, A.T @ (yy - mu), -(A * w[:, None]).T @ A, tol=1e-10, max_iter=50
        )
        if out.done:
            return out.evaluations
        state = out.state


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("n_sites", [2, 5, 18])
def test_logistic_matches_statsmodels_on_lung(protocol: str, n_sites: int) -> None:
    df = _lung().dropna(subset=["ph.ecog"])
    X = ["age", "sex", "ph.ecog"]
    cats = {"sex": [1, 2], "ph.ecog": [0, 1, 2]}
    rel = sf.glm(_fed(_lung(), n_sites), "status", X, family="binomial", protocol=protocol)
    A = _design(df, X, cats)
    ref = sm.GLM(df["status"], A, family=sm.families.Binomial()).fit(tol=1e-13)
    _compare(rel, ref)
    assert list(rel.value.coef.index) == list(A.columns)
    assert rel.rounds == _pooled_newton_evaluations(df, A, "status", "binomial")
    assert rel.facts["output"]["sdc"]["residual_dof"] == len(df) - A.shape[1]


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_poisson_with_offset_matches_statsmodels(protocol: str) -> None:
    """Exponential survival as a Poisson GLM of the event with offset log(time)."""
    df = _lung()
    X = ["age", "sex"]
    rel = sf.glm(
        _fed(_lung(), 3), "status", X, family="poisson", offset="log_time", protocol=protocol
    )
    A = _design(df, X, {"sex": [1, 2]})
    ref = sm.GLM(df["status"], A, family=sm.families.Poisson(), offset=df["log_time"]).fit(
        tol=1e-13
    )
    _compare(rel, ref)
    assert rel.rounds == _pooled_newton_evaluations(df, A, "status", "poisson", "log_time")


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_gaussian_is_one_round_and_matches_statsmodels(protocol: str) -> None:
    df = _lung().dropna(subset=["wt.loss"])
    X = ["age", "sex", "wt.loss"]
    rel = sf.glm(_fed(_lung(), 4), "time", X, family="gaussian", protocol=protocol)
    A = _design(df, X, {"sex": [1, 2]})
    ref = sm.GLM(df["time"], A).fit()
    assert rel.rounds == 1
    _compare(rel, ref)


@pytest.mark.parametrize("n_sites", [2, 3, 5])
def test_logistic_on_breast_cancer_random_sites(n_sites: int) -> None:
    data = load_breast_cancer(as_frame=True).frame
    cols = ["mean radius", "mean texture", "mean smoothness"]
    df = data[[*cols, "target"]].sample(frac=1.0, random_state=n_sites).reset_index(drop=True)
    schema = sf.Schema(
        [
            sf.Column("mean radius", classes=("public",), bounds=(0, 40)),
            sf.Column("mean texture", classes=("public",), bounds=(0, 50)),
            sf.Column("mean smoothness", classes=("public",), bounds=(0, 1)),
            sf.Column(
                "target", classes=("public",), role="outcome", kind="binary", categories=(0, 1)
            ),
        ]
    )
    rel = sf.glm(_fed(df, n_sites, schema), "target", cols, family="binomial", protocol="masking")
    A = _design(df, cols, {})
    ref = sm.GLM(df["target"], A, family=sm.families.Binomial()).fit(tol=1e-13)
    _compare(rel, ref)


def test_protocols_give_bit_identical_coefficients() -> None:
    fed = _fed(_lung(), 3)
    coefs = [
        sf.glm(fed, "status", ["age", "sex"], family="binomial", protocol=p).value.coef
        for p in PROTOCOLS
    ]
    for c in coefs[1:]:
        pd.testing.assert_series_equal(coefs[0], c, check_exact=True)


def test_perfect_separation_is_a_typed_error() -> None:
    df = _lung()
    df["status"] = (df["age"] > 62).astype(int)
    with pytest.raises(ConvergenceError, match="separation"):
        sf.glm(_fed(df, 2), "status", ["age"], family="binomial", protocol="plain")


def test_empty_category_is_a_typed_error() -> None:
    df = _lung()
    df = df[df["ph.ecog"] != 1]
    with pytest.raises(ConvergenceError, match=r"ph.ecog\[T.1\]"):
        sf.glm(_fed(df, 2), "status", ["ph.ecog"], family="binomial", protocol="plain")


def test_ridge_penalty_rescues_separation() -> None:
    df = _lung()
    df["status"] = (df["age"] > 62).astype(int)
    rel = sf.glm(_fed(df, 2), "status", ["age"], family="binomial", penalty=1.0, protocol="plain")
    assert np.isfinite(rel.value.coef["age"])


def test_degenerate_sites() -> None:
    """A site with one row and a site with no events still give the pooled fit."""
    df = _lung().dropna(subset=["ph.ecog"]).reset_index(drop=True)
    one = df.iloc[:1]
    noevent = df[df["status"] == 0].iloc[:20]
    rest = df.drop(index=list(one.index) + list(noevent.index))
    sites = [
        sf.Site(n, p, j, schema=SCHEMA)
        for n, p, j in [("one", one, "CN"), ("none", noevent, "NL"), ("rest", rest, "DE")]
    ]
    fed = sf.Federation.local(sites, destination="NL", purpose="scientific-research")
    rel = sf.glm(fed, "status", ["age", "sex"], family="binomial", protocol="masking")
    A = _design(df, ["age", "sex"], {"sex": [1, 2]})
    ref = sm.GLM(df["status"], A, family=sm.families.Binomial()).fit(tol=1e-13)
    _compare(rel, ref)


def test_summary_and_plot() -> None:
    import matplotlib

    matplotlib.use("Agg")
    rel = sf.glm(_fed(_lung(), 2), "status", ["age", "sex"], family="binomial", protocol="plain")
    s = rel.value.summary
    assert list(s.columns) == ["coef", "se", "z", "p", "ci_low", "ci_high"]
    ax = rel.value.plot()
    assert ax.get_xlabel().startswith("odds ratio")
    assert "binomial" in repr(rel.value)


def test_glm_analysis_name() -> None:
    assert GLM.name == "glm"


def test_multi_round_fit_exchanges_keys_once_and_logs_every_round() -> None:
    rel = sf.glm(_fed(_lung(), 3), "status", ["age", "sex"], family="binomial", protocol="masking")
    stages = [(e.round, e.stage) for e in rel.log]
    assert stages.count((0, "advertise")) == 1 and stages.count((0, "share_keys")) == 1
    assert sum(1 for r, st in stages if st == "masked_input") == rel.rounds
    per_round = rel.facts["run"]["bytes_per_round"]
    assert set(per_round) == {str(r) for r in range(rel.rounds + 1)}
    assert all(v > 0 for v in per_round.values())
