"""``sf.DP``: validation, exact storage, messages, budget splitting."""

from __future__ import annotations

import math
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from safeflow.dp import DP
from safeflow.dp.spec import exact
from safeflow.errors import InvalidParameter


@pytest.mark.parametrize(
    ("given_eps", "expected"),
    [
        (0.1, Fraction(1, 10)),
        ("0.1", Fraction(1, 10)),
        ("1/10", Fraction(1, 10)),
        (Decimal("0.1"), Fraction(1, 10)),
        (Fraction(1, 3), Fraction(1, 3)),
        (1, Fraction(1)),
        (10, Fraction(10)),
        ("1e-3", Fraction(1, 1000)),
        (2.5, Fraction(5, 2)),
    ],
)
def test_epsilon_is_stored_exactly(given_eps: object, expected: Fraction) -> None:
    d = DP(given_eps)
    assert d.epsilon == expected
    assert type(d.epsilon) is Fraction


def test_float_goes_through_its_decimal_repr() -> None:
    assert DP(0.1).epsilon == Fraction(1, 10) != Fraction(0.1)
    assert DP(0.1).epsilon + DP(0.2).epsilon == DP(0.3).epsilon  # 0.1 + 0.2 == 0.3, exactly


@pytest.mark.parametrize(
    "bad",
    [
        -1,
        0,
        0.0,
        "0",
        10.000001,
        11,
        float("nan"),
        float("inf"),
        -float("inf"),
        "nan",
        "inf",
        Decimal("NaN"),
        Decimal("-1"),
        "abc",
        None,
        True,
        [1],
    ],
)
def test_bad_epsilon_is_rejected_with_the_range(bad: object) -> None:
    with pytest.raises(
        InvalidParameter,
        match=r"^epsilon must be > 0 and ≤ 10; got .*\. "
        r"See sf\.DP\.$",
    ):
        DP(bad)  # type: ignore[arg-type]


def test_message_names_the_value() -> None:
    with pytest.raises(InvalidParameter) as e:
        DP(-1)
    assert str(e.value) == "epsilon must be > 0 and ≤ 10; got -1. See sf.DP."
    with pytest.raises(InvalidParameter, match="got nan"):
        DP(float("nan"))


def test_epsilon_ten_is_allowed_inclusive() -> None:
    assert DP(10).epsilon == 10
    assert DP("10").epsilon == 10


@pytest.mark.parametrize("bad", [-1e-9, 2e-5, "1/10000", float("nan"), float("inf"), True])
def test_bad_delta(bad: object) -> None:
    with pytest.raises(InvalidParameter, match=r"delta must be ≥ 0 and ≤ 1e-5"):
        DP(1, delta=bad)  # type: ignore[arg-type]


def test_delta_bound_is_inclusive_and_exact() -> None:
    assert DP(1, delta=1e-5).delta == Fraction(1, 100_000)
    assert DP(1, delta="0").delta == 0


@pytest.mark.parametrize(
    ("kw", "msg"),
    [
        ({"unit": "person"}, "unit must be 'patient' or 'row'"),
        ({"mode": "global"}, "mode must be 'central' or 'local'"),
        ({"mode": "distributed"}, "not implemented"),
        ({"mechanism": "exponential"}, "mechanism must be None"),
        ({"mechanism": "laplace", "delta": 1e-6}, "mechanism 'laplace' gives pure ε-DP"),
        ({"mechanism": "gaussian"}, "mechanism 'gaussian' needs delta > 0"),
        ({"alpha": 0}, "alpha must be"),
        ({"alpha": 1.0}, "alpha must be"),
        ({"alpha": float("nan")}, "alpha must be"),
        ({"alpha": True}, "alpha must be"),
    ],
)
def test_other_parameters_are_validated(kw: dict[str, object], msg: str) -> None:
    with pytest.raises(InvalidParameter, match=msg):
        DP(1, **kw)  # type: ignore[arg-type]


def test_mechanism_choice() -> None:
    assert DP(1).mechanism_for("count") == "laplace"
    assert DP(1, delta=1e-6).mechanism_for("real") == "gaussian"
    assert DP(1, mechanism="laplace").mechanism_for("real") == "laplace"
    with pytest.raises(InvalidParameter):
        DP(1).mechanism_for("other")


def test_frozen_and_hashable() -> None:
    d = DP(0.5)
    with pytest.raises(AttributeError):
        d.epsilon = Fraction(1)  # type: ignore[misc]
    assert d == DP("1/2") and hash(d) == hash(DP("1/2"))


def test_facts_are_exact_strings() -> None:
    f = DP("0.3", delta="1e-6", unit="row").to_facts()
    assert f["epsilon"] == "3/10" and f["delta"] == "1/1000000" and f["unit"] == "row"


def test_split_is_exact() -> None:
    parts = DP("0.3").split(3)
    assert [p.epsilon for p in parts] == [Fraction(1, 10)] * 3
    assert sum(p.epsilon for p in parts) == Fraction(3, 10)
    w = DP(1, delta=1e-6).split([1, 2, 3])
    assert sum(p.epsilon for p in w) == 1 and sum(p.delta for p in w) == Fraction(1, 10**6)
    for bad in (0, -1, [], [1, 0], True):
        with pytest.raises(InvalidParameter):
            DP(1).split(bad)  # type: ignore[arg-type]


@given(st.integers(min_value=1, max_value=10**6), st.integers(min_value=1, max_value=10**6))
def test_exact_round_trips_any_valid_fraction(num: int, den: int) -> None:
    x = Fraction(num, den)
    if 0 < x <= 10:
        assert DP(x).epsilon == x == DP(f"{num}/{den}").epsilon


@given(st.floats(min_value=1e-6, max_value=10, allow_nan=False))
def test_floats_are_read_as_their_shortest_repr(x: float) -> None:
    assert DP(x).epsilon == Fraction(repr(x))
    assert math.isclose(float(DP(x).epsilon), x)


def test_exact_rejects_non_numbers() -> None:
    for bad in (object(), b"1", complex(1, 0)):
        with pytest.raises(InvalidParameter):
            exact(bad)
