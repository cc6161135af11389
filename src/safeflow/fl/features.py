"""The design matrix of federated learning: the same columns, scaled the same way, everywhere.

Every site and the analyst must turn rows into the same input vectors, using public facts
only (the declared schema), never statistics of anyone's data:

* a **numeric** feature is scaled by its declared bounds to ``[-1, 1]``:
  ``(x - (lo + hi) / 2) / ((hi - lo) / 2)``. A numeric feature without declared bounds
  is refused (a site's own min/max would differ between sites and leak its range);
* a **categorical** or **binary** feature becomes one indicator column per declared level
  (all levels: a neural network has no reference level; for the logistic model the
  redundancy with the intercept is harmless under gradient descent);
* the **target** is binary: a two-level column (the second declared level is the
  positive class) or a numeric column holding 0 and 1.

Examples
--------
>>> import pandas as pd
>>> from safeflow.data import Column, Schema
>>> s = Schema([Column("age", bounds=(20, 80)),
...             Column("arm", kind="categorical", categories=("ic", "ec")),
...             Column("leak", kind="binary", categories=(0, 1))])
>>> enc = FeatureEncoder.from_schema(s, ["age", "arm"], "leak")
>>> enc.names
('age', 'arm[ic]', 'arm[ec]')
>>> enc.encode({"age": [20.0, 50.0], "arm": [1, 0]}).tolist()
[[-1.0, 0.0, 1.0], [0.0, 1.0, 0.0]]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from safeflow.data import Schema
from safeflow.errors import DataError, InvalidParameter


@dataclass(frozen=True)
class FeatureEncoder:
    """Public recipe from rows to the model's inputs and 0/1 labels (see module docstring).

    Parameters
    ----------
    features : tuple of str
        Schema columns, in input order.
    target : str
        The binary outcome column.
    kinds : tuple of str
        Each feature's kind (``numeric``, ``categorical``, ``binary``).
    scaling : tuple
        Per feature: ``(middle, half_range)`` for numeric features, ``None`` otherwise.
    levels : tuple
        Per feature: the declared levels (as text) of a categorical feature, ``None`` for
        numeric ones.
    classes : tuple of str
        The target's two labels as text (negative, positive).
    target_numeric : bool
        True when the target is a numeric 0/1 column (labels are its values), False when
        it is a two-level column (labels are its codes).
    """

    features: tuple[str, ...]
    target: str
    kinds: tuple[str, ...]
    scaling: tuple[tuple[float, float] | None, ...]
    levels: tuple[tuple[str, ...] | None, ...]
    classes: tuple[str, str]
    target_numeric: bool

    @classmethod
    def from_schema(cls, schema: Schema, features: Sequence[str], target: str) -> FeatureEncoder:
        """Build the encoder from the public schema (typed errors that say what to declare).

        Examples
        --------
        >>> from safeflow.data import Column, Schema
        >>> s = Schema([Column("x"), Column("y", kind="binary", categories=(0, 1))])
        >>> FeatureEncoder.from_schema(s, ["x"], "y")
        Traceback (most recent call last):
        ...
        safeflow.errors.InvalidParameter: feature 'x' has no declared public bounds; ...
        """
        if isinstance(features, str) or not isinstance(features, Sequence) or not features:
            raise InvalidParameter(
                "features must be a non-empty list of column names, e.g. features=['age', 'arm']")
        if len(set(features)) != len(features):
            raise InvalidParameter(f"features must not repeat a column; got {list(features)}")
        if not isinstance(target, str) or not target:
            raise InvalidParameter("target must be the name of a binary column, e.g. "
                                   "target='leak'")
        if target in features:
            raise InvalidParameter(f"the target {target!r} cannot also be a feature; remove it "
                                   "from features")
        kinds, scaling, levels = [], [], []
        for name in features:
            col = _column(schema, name, "feature")
            kinds.append(col.kind)
            if col.kind == "numeric":
                b = schema.public_bounds(name)
                if b is None:
                    raise InvalidParameter(
                        f"feature {name!r} has no declared public bounds; federated learning "
                        "scales numeric features to [-1, 1] by their bounds (the same at every "
                        "site): declare sf.Column(..., bounds=(lo, hi))")
                lo, hi = float(b[0]), float(b[1])
                scaling.append(((lo + hi) / 2.0, max((hi - lo) / 2.0, 1e-300)))
                levels.append(None)
            else:
                scaling.append(None)
                levels.append(tuple(str(c) for c in (col.categories or ())))
        tcol = _column(schema, target, "target")
        if tcol.kind == "numeric":
            b = schema.public_bounds(target)
            if b is None or float(b[0]) < 0 or float(b[1]) > 1:
                raise InvalidParameter(
                    f"numeric target {target!r} must hold 0/1 with declared bounds inside "
                    "(0, 1); or declare it kind='binary' with categories=(negative, positive)")
            classes: tuple[str, str] = ("0", "1")
        else:
            cats = tuple(str(c) for c in (tcol.categories or ()))
            if len(cats) != 2:
                raise InvalidParameter(
                    f"target {target!r} has {len(cats)} declared levels; sf.fl trains binary "
                    "classifiers: declare exactly two levels (negative, positive)")
            classes = (cats[0], cats[1])
        return cls(tuple(features), target, tuple(kinds), tuple(scaling), tuple(levels),
                   classes, tcol.kind == "numeric")

    @property
    def names(self) -> tuple[str, ...]:
        """Names of the encoded input columns (``arm[ec]`` for the indicator of level ec)."""
        out: list[str] = []
        for name, lev in zip(self.features, self.levels, strict=True):
            out += [name] if lev is None else [f"{name}[{v}]" for v in lev]
        return tuple(out)

    @property
    def width(self) -> int:
        """Number of encoded input columns."""
        return len(self.names)

    @property
    def columns(self) -> list[str]:
        """Schema columns read at a site: the features, then the target."""
        return [*self.features, self.target]

    def encode(self, batch: Mapping[str, Any] | Any) -> np.ndarray:
        """Inputs of one batch (numeric values, categorical codes ``0..k-1``), ``(n, width)``."""
        parts = []
        for name, scale, lev in zip(self.features, self.scaling, self.levels, strict=True):
            x = np.asarray(batch[name])
            if lev is None:
                mid, half = scale  # type: ignore[misc]
                parts.append(((x.astype(np.float64) - mid) / half).reshape(-1, 1))
            else:
                codes = x.astype(np.int64).reshape(-1, 1)
                parts.append((codes == np.arange(len(lev))).astype(np.float64))
        return np.hstack(parts) if parts else np.zeros((0, 0))

    def labels(self, batch: Mapping[str, Any] | Any) -> np.ndarray:
        """0/1 labels of one batch (float64); a typed error for anything else."""
        y = np.asarray(batch[self.target]).astype(np.float64)
        if y.size and np.any((y != 0.0) & (y != 1.0)):
            raise DataError(f"target {self.target!r} must be 0/1 (or two declared levels); "
                            "recode it or declare kind='binary'")
        return y

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (what travels in round requests and model files).

        Examples
        --------
        >>> from safeflow.data import Column, Schema
        >>> s = Schema([Column("x", bounds=(0, 2)), Column("y", kind="binary",
        ...                                               categories=(0, 1))])
        >>> e = FeatureEncoder.from_schema(s, ["x"], "y")
        >>> FeatureEncoder.from_dict(e.to_dict()) == e
        True
        """
        return {"features": list(self.features), "target": self.target,
                "kinds": list(self.kinds),
                "scaling": [None if s is None else list(s) for s in self.scaling],
                "levels": [None if v is None else list(v) for v in self.levels],
                "classes": list(self.classes), "target_numeric": self.target_numeric}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> FeatureEncoder:
        """Inverse of :meth:`to_dict`."""
        return cls(tuple(d["features"]), str(d["target"]), tuple(d["kinds"]),
                   tuple(None if s is None else (float(s[0]), float(s[1]))
                         for s in d["scaling"]),
                   tuple(None if v is None else tuple(v) for v in d["levels"]),
                   (str(d["classes"][0]), str(d["classes"][1])), bool(d["target_numeric"]))


def _column(schema: Schema, name: str, what: str) -> Any:
    if not isinstance(name, str):
        raise InvalidParameter(f"{what} names must be strings; got {name!r}")
    if name not in schema:
        raise InvalidParameter(
            f"{what} {name!r} is not in the federation's schema; its columns are "
            f"{', '.join(map(repr, schema.names))}")
    col = schema.column(name)
    if col.role == "identifier":
        raise InvalidParameter(f"{what} {name!r} is an identifier; identifiers never enter a "
                               "model")
    return col


__all__ = ["FeatureEncoder"]
