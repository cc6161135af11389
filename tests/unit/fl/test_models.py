"""Numpy models: gradients against finite differences, deterministic init, named shapes."""

from __future__ import annotations

import numpy as np
import pytest

from safeflow.errors import InvalidParameter
from safeflow.fl.models import MLP, LogisticRegression, model_from_spec

MODELS = [LogisticRegression(), MLP(hidden=(5,), activation="tanh"),
          MLP(hidden=(4, 3), activation="relu")]


def _numeric_grad(model, w, X, y, h=1e-6):  # type: ignore[no-untyped-def]
    g = np.zeros_like(w)
    for i in range(w.size):
        e = np.zeros_like(w)
        e[i] = h
        g[i] = (model.loss_grad(w + e, X, y)[0] - model.loss_grad(w - e, X, y)[0]) / (2 * h)
    return g


@pytest.mark.parametrize("model", MODELS, ids=repr)
def test_gradient_matches_finite_differences(model) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(0)
    X = rng.uniform(-1, 1, size=(7, 3))
    y = (rng.uniform(size=7) < 0.5).astype(float)
    w = model.init(3, seed=5) + rng.normal(scale=0.3, size=model.size(3))
    loss, grad = model.loss_grad(w, X, y)
    np.testing.assert_allclose(grad, _numeric_grad(model, w, X, y), rtol=1e-5, atol=1e-7)
    z = model.logits(w, X)
    assert loss == pytest.approx(float(np.sum(np.logaddexp(0, z) - y * z)))


@pytest.mark.parametrize("model", MODELS, ids=repr)
def test_init_is_deterministic_in_the_seed(model) -> None:  # type: ignore[no-untyped-def]
    a, b, c = model.init(4, 1), model.init(4, 1), model.init(4, 2)
    assert a.dtype == np.float64 and a.shape == (model.size(4),)
    assert np.array_equal(a, b)
    assert isinstance(model, LogisticRegression) or not np.array_equal(a, c)


def test_named_shapes_and_unflatten() -> None:
    m = MLP(hidden=(4, 2))
    shapes = dict(m.shapes(3))
    assert shapes == {"layer1.weight": (3, 4), "layer1.bias": (4,), "layer2.weight": (4, 2),
                      "layer2.bias": (2,), "out.weight": (2,), "out.bias": (1,)}
    w = np.arange(m.size(3), dtype=float)
    parts = m.unflatten(w, 3)
    assert np.array_equal(np.concatenate([p.ravel() for p in parts.values()]), w)
    assert m.decay_mask(3).sum() == 3 * 4 + 4 * 2 + 2
    with pytest.raises(InvalidParameter, match="has 29 parameters"):
        m.unflatten(np.zeros(3), 3)


def test_logit_is_stable_for_large_margins() -> None:
    m = LogisticRegression()
    loss, grad = m.loss_grad(np.array([1000.0, 0.0]), np.array([[1.0], [-1.0]]),
                             np.array([1.0, 1.0]))
    assert np.isfinite(loss) and np.all(np.isfinite(grad))
    assert loss == pytest.approx(1000.0)


def test_spec_round_trip_and_errors() -> None:
    for m in MODELS:
        again = model_from_spec(m.spec())
        assert again.spec() == m.spec() and type(again) is type(m)
    with pytest.raises(InvalidParameter, match="unknown model type 'cnn'"):
        model_from_spec({"type": "cnn"})
    with pytest.raises(InvalidParameter, match="activation must be one of"):
        MLP(activation="gelu")
    with pytest.raises(InvalidParameter, match="features must be a non-empty list"):
        LogisticRegression("age")
