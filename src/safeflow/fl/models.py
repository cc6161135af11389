"""Small numpy models for federated learning: logistic regression and a multilayer perceptron.

A model's parameters are one flat ``float64`` vector (what a site's update and the secure
sum carry), with named shapes to read it back (:meth:`Model.shapes`). Both models are binary
classifiers trained on the binary cross-entropy of their logit ``z``,
``log(1 + e^z) - y z`` per row, computed stably with ``logaddexp``; :meth:`Model.loss_grad`
returns the loss and the gradient *summed* over the rows it is given (the caller averages
over a mini-batch). Initial weights depend only on the architecture and a public seed, so
every party derives the same starting point.

* :class:`LogisticRegression`: ``z = x·w + b``, started at zero.
* :class:`MLP`: hidden layers with ``relu`` (He-uniform init) or ``tanh`` (Glorot-uniform
  init), zero biases, then one logit (Glorot-uniform).

Examples
--------
>>> import numpy as np
>>> m = MLP(hidden=(4,))
>>> [(n, s) for n, s in m.shapes(3)]
[('layer1.weight', (3, 4)), ('layer1.bias', (4,)), ('out.weight', (4,)), ('out.bias', (1,))]
>>> w = m.init(3, seed=0)
>>> w.shape, bool(np.all(m.init(3, seed=0) == w))
((21,), True)
>>> loss, grad = m.loss_grad(w, np.zeros((2, 3)), np.array([0.0, 1.0]))
>>> round(loss, 4), grad.shape
(1.3863, (21,))
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
from scipy import special

from safeflow.errors import InvalidParameter

Shapes = list[tuple[str, tuple[int, ...]]]

#: activations an :class:`MLP` offers
ACTIVATIONS = ("relu", "tanh")


def _features(features: Sequence[str] | None) -> tuple[str, ...] | None:
    if features is None:
        return None
    if isinstance(features, str) or not isinstance(features, Sequence) or not features or \
            not all(isinstance(f, str) and f for f in features):
        raise InvalidParameter(
            "features must be a non-empty list of column names, e.g. ['age', 'arm']; got "
            f"{features!r}")
    return tuple(features)


class Model(ABC):
    """A binary classifier whose parameters are one flat vector (see module docstring)."""

    kind: ClassVar[str]

    def __init__(self, features: Sequence[str] | None = None) -> None:
        self.features = _features(features)

    @abstractmethod
    def shapes(self, d: int) -> Shapes:
        """Named parameter shapes for ``d`` encoded inputs, in flat-vector order."""

    @abstractmethod
    def init(self, d: int, seed: int) -> np.ndarray:
        """Initial flat parameter vector (deterministic in ``seed``)."""

    @abstractmethod
    def logits(self, w: np.ndarray, X: np.ndarray) -> np.ndarray:
        """The logit of every row of ``X`` (shape ``(n,)``)."""

    @abstractmethod
    def loss_grad(self, w: np.ndarray, X: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
        """Cross-entropy summed over the rows, and its gradient (flat, summed)."""

    @abstractmethod
    def spec(self) -> dict[str, Any]:
        """JSON-able architecture (without features), inverse of :func:`model_from_spec`."""

    def size(self, d: int) -> int:
        """Number of parameters for ``d`` encoded inputs.

        Examples
        --------
        >>> LogisticRegression().size(30)
        31
        """
        return sum(math.prod(s) for _, s in self.shapes(d))

    def decay_mask(self, d: int) -> np.ndarray:
        """1.0 for the weights an L2 penalty (weight decay) applies to, 0.0 for biases.

        Examples
        --------
        >>> LogisticRegression().decay_mask(2).tolist()
        [1.0, 1.0, 0.0]
        """
        return np.concatenate([np.full(math.prod(s), 0.0 if n.endswith("bias") else 1.0)
                               for n, s in self.shapes(d)])

    def unflatten(self, w: np.ndarray, d: int) -> dict[str, np.ndarray]:
        """Split a flat vector into named arrays (views).

        Examples
        --------
        >>> import numpy as np
        >>> sorted(LogisticRegression().unflatten(np.arange(3.0), 2))
        ['bias', 'weight']
        """
        w = np.asarray(w, dtype=np.float64)
        if w.shape != (self.size(d),):
            raise InvalidParameter(
                f"the parameter vector has shape {w.shape}; this {self.kind} model with {d} "
                f"inputs has {self.size(d)} parameters")
        out, pos = {}, 0
        for name, shape in self.shapes(d):
            k = math.prod(shape)
            out[name] = w[pos:pos + k].reshape(shape)
            pos += k
        return out

    def __repr__(self) -> str:
        extra = "" if self.features is None else f", features={list(self.features)!r}"
        return f"{type(self).__name__}({self._args()}{extra})".replace("(, ", "(")

    def _args(self) -> str:
        return ""


def _bce(z: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    """Summed binary cross-entropy of logits ``z`` and d(loss)/dz per row."""
    loss = float(np.sum(np.logaddexp(0.0, z) - y * z))
    return loss, special.expit(z) - y


class LogisticRegression(Model):
    """Logistic regression ``P(y=1) = σ(x·w + b)`` trained by federated SGD.

    Parameters
    ----------
    features : list of str, optional
        The schema columns it reads (or pass ``features=`` to :func:`safeflow.fl.train`).

    Examples
    --------
    >>> import numpy as np
    >>> m = LogisticRegression(["age"])
    >>> m
    LogisticRegression(features=['age'])
    >>> m.logits(np.array([2.0, -1.0]), np.array([[1.0], [0.5]])).tolist()
    [1.0, 0.0]
    """

    kind = "logistic"

    def shapes(self, d: int) -> Shapes:
        return [("weight", (d,)), ("bias", (1,))]

    def init(self, d: int, seed: int) -> np.ndarray:
        return np.zeros(d + 1)

    def logits(self, w: np.ndarray, X: np.ndarray) -> np.ndarray:
        d = X.shape[1]
        return X @ w[:d] + w[d]

    def loss_grad(self, w: np.ndarray, X: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
        loss, r = _bce(self.logits(w, X), y)
        return loss, np.concatenate([X.T @ r, [r.sum()]])

    def spec(self) -> dict[str, Any]:
        return {"type": "logistic"}


class MLP(Model):
    """A multilayer perceptron with one logit output, in numpy.

    Parameters
    ----------
    features : list of str, optional
        The schema columns it reads (or pass ``features=`` to :func:`safeflow.fl.train`).
    hidden : tuple of int
        Units per hidden layer (1 to 8 layers of 1 to 4096 units).
    activation : {"relu", "tanh"}

    Examples
    --------
    >>> MLP(hidden=(16, 8), activation="tanh")
    MLP(hidden=(16, 8), activation='tanh')
    >>> MLP(hidden=(0,))
    Traceback (most recent call last):
    ...
    safeflow.errors.InvalidParameter: hidden must be 1 to 8 layer sizes, each an int from 1 to 4096, e.g. hidden=(16,); got (0,)
    """  # noqa: E501

    kind = "mlp"

    def __init__(self, features: Sequence[str] | None = None, hidden: Sequence[int] = (16,),
                 activation: str = "relu") -> None:
        super().__init__(features)
        h = tuple(hidden) if isinstance(hidden, Sequence) else None
        if (h is None or not 1 <= len(h) <= 8
                or not all(isinstance(u, int) and not isinstance(u, bool) and 1 <= u <= 4096
                           for u in h)):
            raise InvalidParameter(
                "hidden must be 1 to 8 layer sizes, each an int from 1 to 4096, e.g. "
                f"hidden=(16,); got {hidden!r}")
        if activation not in ACTIVATIONS:
            raise InvalidParameter(
                f"activation must be one of {ACTIVATIONS}; got {activation!r}")
        self.hidden, self.activation = h, activation

    def _args(self) -> str:
        return f"hidden={self.hidden!r}, activation={self.activation!r}"

    def shapes(self, d: int) -> Shapes:
        out: Shapes = []
        fan_in = d
        for k, h in enumerate(self.hidden, start=1):
            out += [(f"layer{k}.weight", (fan_in, h)), (f"layer{k}.bias", (h,))]
            fan_in = h
        return [*out, ("out.weight", (fan_in,)), ("out.bias", (1,))]

    def init(self, d: int, seed: int) -> np.ndarray:
        rng = np.random.default_rng([int(seed), d, *self.hidden])
        parts = []
        for name, shape in self.shapes(d):
            if name.endswith("bias"):
                parts.append(np.zeros(shape))
                continue
            fan_in = shape[0]
            fan_out = shape[1] if len(shape) == 2 else 1
            if name.startswith("layer") and self.activation == "relu":
                limit = math.sqrt(6.0 / fan_in)  # He et al. 2015 (uniform)
            else:
                limit = math.sqrt(6.0 / (fan_in + fan_out))  # Glorot & Bengio 2010
            parts.append(rng.uniform(-limit, limit, size=shape))
        return np.concatenate([p.ravel() for p in parts])

    def _act(self, z: np.ndarray) -> np.ndarray:
        return np.maximum(z, 0.0) if self.activation == "relu" else np.tanh(z)

    def _forward(self, w: np.ndarray, X: np.ndarray) -> tuple[list[np.ndarray],
                                                               list[np.ndarray], np.ndarray]:
        p = self.unflatten(w, X.shape[1])
        acts, pre = [X], []
        for k in range(1, len(self.hidden) + 1):
            z = acts[-1] @ p[f"layer{k}.weight"] + p[f"layer{k}.bias"]
            pre.append(z)
            acts.append(self._act(z))
        return acts, pre, acts[-1] @ p["out.weight"] + p["out.bias"][0]

    def logits(self, w: np.ndarray, X: np.ndarray) -> np.ndarray:
        return self._forward(w, X)[2]

    def loss_grad(self, w: np.ndarray, X: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
        p = self.unflatten(w, X.shape[1])
        acts, pre, z = self._forward(w, X)
        loss, dz = _bce(z, y)
        grads: dict[str, np.ndarray] = {"out.weight": acts[-1].T @ dz,
                                        "out.bias": np.array([dz.sum()])}
        da = np.outer(dz, p["out.weight"])
        for k in range(len(self.hidden), 0, -1):
            zk = pre[k - 1]
            dzk = da * ((zk > 0.0) if self.activation == "relu" else 1.0 - np.tanh(zk) ** 2)
            grads[f"layer{k}.weight"] = acts[k - 1].T @ dzk
            grads[f"layer{k}.bias"] = dzk.sum(axis=0)
            da = dzk @ p[f"layer{k}.weight"].T
        return loss, np.concatenate([grads[n].ravel() for n, _ in self.shapes(X.shape[1])])

    def spec(self) -> dict[str, Any]:
        return {"type": "mlp", "hidden": list(self.hidden), "activation": self.activation}


def model_from_spec(spec: Mapping[str, Any], features: Sequence[str] | None = None) -> Model:
    """Rebuild a model from :meth:`Model.spec` (typed error for unknown types).

    Examples
    --------
    >>> model_from_spec({"type": "mlp", "hidden": [8], "activation": "tanh"})
    MLP(hidden=(8,), activation='tanh')
    """
    kind = spec.get("type") if isinstance(spec, Mapping) else None
    if kind == "logistic":
        return LogisticRegression(features)
    if kind == "mlp":
        return MLP(features, hidden=tuple(int(h) for h in spec["hidden"]),
                   activation=str(spec["activation"]))
    raise InvalidParameter(f"unknown model type {kind!r}; use sf.fl.LogisticRegression or "
                           "sf.fl.MLP")


__all__ = ["ACTIVATIONS", "MLP", "LogisticRegression", "Model", "model_from_spec"]
