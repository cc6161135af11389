"""The FL design matrix: declared bounds scale, declared levels one-hot, typed refusals."""

from __future__ import annotations

import numpy as np
import pytest

import safeflow as sf
from safeflow.errors import DataError, InvalidParameter
from safeflow.fl.features import FeatureEncoder

SCHEMA = sf.Schema([
    sf.Column("id", role="identifier", kind="categorical", categories=("p1", "p2")),
    sf.Column("age", bounds=(20, 80)),
    sf.Column("bmi"),
    sf.Column("arm", kind="categorical", categories=("ic", "ec", "open")),
    sf.Column("leak", kind="binary", categories=("no", "yes")),
    sf.Column("grade", kind="categorical", categories=(1, 2, 3)),
    sf.Column("p", bounds=(0, 1)),
])


def test_scaling_and_one_hot() -> None:
    enc = FeatureEncoder.from_schema(SCHEMA, ["age", "arm"], "leak")
    assert enc.names == ("age", "arm[ic]", "arm[ec]", "arm[open]")
    X = enc.encode({"age": np.array([20.0, 50.0, 80.0]), "arm": np.array([2, 0, 1])})
    np.testing.assert_array_equal(X, [[-1, 0, 0, 1], [0, 1, 0, 0], [1, 0, 1, 0]])
    assert enc.classes == ("no", "yes")
    assert enc.labels({"leak": np.array([0, 1])}).tolist() == [0.0, 1.0]


def test_numeric_zero_one_target() -> None:
    enc = FeatureEncoder.from_schema(SCHEMA, ["age"], "p")
    assert enc.target_numeric and enc.classes == ("0", "1")
    with pytest.raises(DataError, match="must be 0/1"):
        enc.labels({"p": np.array([0.5])})


@pytest.mark.parametrize(("features", "target", "message"), [
    (["bmi"], "leak", "feature 'bmi' has no declared public bounds"),
    (["age"], "grade", "target 'grade' has 3 declared levels"),
    (["age"], "age", "cannot also be a feature"),
    (["id"], "leak", "'id' is an identifier"),
    (["nope"], "leak", "feature 'nope' is not in the federation's schema"),
    ([], "leak", "features must be a non-empty list"),
    (["age", "age"], "leak", "must not repeat"),
    (["age"], None, "target must be the name of a binary column"),
    (["age"], "bmi", "numeric target 'bmi' must hold 0/1"),
])
def test_typed_refusals(features: list[str], target: str, message: str) -> None:
    with pytest.raises(InvalidParameter, match=message):
        FeatureEncoder.from_schema(SCHEMA, features, target)


def test_dict_round_trip() -> None:
    enc = FeatureEncoder.from_schema(SCHEMA, ["arm", "age", "grade"], "leak")
    assert FeatureEncoder.from_dict(enc.to_dict()) == enc
    assert enc.width == 3 + 1 + 3
