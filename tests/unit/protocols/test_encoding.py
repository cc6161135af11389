"""Fixed-point ring encoding: exact sums, bounded quantisation, never a silent overflow."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from safeflow.errors import EncodingOverflow, InvalidParameter, ProtocolError
from safeflow.protocols.encoding import RingCodec, ring_size
from safeflow.statspec import StatLayout, StatSpec


@settings(max_examples=200, deadline=None)
@given(k=st.integers(1, 50), bound_exp=st.integers(-20, 60), seed=st.integers(0, 2**32 - 1),
       precision=st.sampled_from(["extended", "double"]))
def test_decoded_sum_is_within_one_quantum_per_site(k: int, bound_exp: int, seed: int,
                                                   precision: str) -> None:
    bound = math.ldexp(1.0, bound_exp) * 0.75
    rng = np.random.default_rng(seed)
    lay = StatLayout((StatSpec("x", (5,), "real", bound, precision),
                      StatSpec("n", (2,), "count", 1000)))
    codec = RingCodec(lay, (bound, 1000))
    vals = [rng.uniform(-bound, bound, 5) for _ in range(k)]
    counts = [rng.integers(0, 1001, 2) for _ in range(k)]
    total = np.zeros(ring_size(lay), dtype=np.uint64)
    for v, c in zip(vals, counts, strict=True):
        total += codec.encode({"x": v, "n": c})
    out = codec.decode(total, n_contributors=k)
    assert out["n"].tolist() == np.sum(counts, axis=0).tolist()
    exact = [sum(Fraction(float(v[i])) for v in vals) for i in range(5)]
    bits = 94 if precision == "extended" else 52
    quantum = math.ldexp(1.0, math.ceil(math.log2(bound)) - bits)
    for got, want in zip(out["x"], exact, strict=True):
        # k roundings to the quantum, then one rounding to float64
        assert abs(Fraction(float(got)) - want) <= k * quantum / 2 + abs(want) * 2**-52 + 1e-300


def test_integer_data_sums_exactly_under_a_pessimistic_bound() -> None:
    lay = StatLayout((StatSpec("s", (1,), "real", 1100.0**2 * 2**32),))
    codec = RingCodec(lay, (1100.0**2 * 2**32,))
    parts = [np.array([float(v)]) for v in (1_000_003.0, 98_765_431.0, 7.0)]
    total = sum(codec.encode({"s": p}) for p in parts)
    assert codec.decode(total, n_contributors=3)["s"][0] == 1_000_003 + 98_765_431 + 7


@pytest.mark.parametrize("precision", ["extended", "double"])
def test_value_beyond_bound_is_refused_not_wrapped(precision: str) -> None:
    lay = StatLayout((StatSpec("x", (1,), "real", 10.0, precision),))
    with pytest.raises(EncodingOverflow, match="exceeds its public bound"):
        RingCodec(lay, (10.0,)).encode({"x": np.array([10.5])})
    lay = StatLayout((StatSpec("n", (1,), "count", 10),))
    with pytest.raises(EncodingOverflow):
        RingCodec(lay, (10,)).encode({"n": np.array([11])})


def test_layout_mismatch_and_bad_values_are_typed_errors() -> None:
    lay = StatLayout((StatSpec("x", (2,), "real", 1.0),))
    codec = RingCodec(lay, (1.0,))
    with pytest.raises(ProtocolError, match="do not match"):
        codec.encode({"y": np.zeros(2)})
    with pytest.raises(ProtocolError, match="shape"):
        codec.encode({"x": np.zeros(3)})
    with pytest.raises(ProtocolError, match="not finite"):
        codec.encode({"x": np.array([np.nan, 0.0])})
    with pytest.raises(ProtocolError, match="wrong length"):
        codec.decode(np.zeros(3, dtype=np.uint64), n_contributors=1)
    with pytest.raises(InvalidParameter, match="precision"):
        StatSpec("x", (1,), "real", 1.0, "quad")  # type: ignore[arg-type]


def test_double_precision_halves_the_ring() -> None:
    ext = StatLayout((StatSpec("x", (10,), "real", 1.0),))
    dbl = StatLayout((StatSpec("x", (10,), "real", 1.0, "double"),))
    assert ring_size(ext) == 20 and ring_size(dbl) == 10
