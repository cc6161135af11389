"""Shamir secret sharing: recovery from any t of n shares, refusals, and the share encoding."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from safeflow.crypto import Share, combine_shares, split_secret
from safeflow.crypto.shamir import PRIME
from safeflow.errors import CryptoError, InvalidParameter

secrets = st.integers(1, 4).flatmap(
    lambda m: st.lists(st.integers(0, PRIME - 1), min_size=m, max_size=m)
).map(lambda xs: b"".join(x.to_bytes(16, "big") for x in xs))


@st.composite
def split_setup(draw: st.DrawFn) -> tuple[bytes, int, int, list[int]]:
    """A secret, (t, n), and a random choice of t share positions in random order."""
    secret = draw(secrets)
    n = draw(st.integers(1, 12))
    t = draw(st.integers(1, n))
    chosen = draw(st.permutations(range(n)))[:t]
    return secret, t, n, list(chosen)


@settings(max_examples=60, derandomize=True, deadline=None)
@given(split_setup())
def test_any_t_of_n_shares_recover_the_secret(setup: tuple[bytes, int, int, list[int]]) -> None:
    secret, t, n, chosen = setup
    shares = split_secret(secret, t, n)
    assert [s.index for s in shares] == list(range(1, n + 1))
    assert all(len(s.value) == len(secret) for s in shares)
    assert combine_shares([shares[i] for i in chosen], t) == secret


@settings(max_examples=60, derandomize=True, deadline=None)
@given(split_setup())
def test_t_minus_1_shares_raise(setup: tuple[bytes, int, int, list[int]]) -> None:
    secret, t, n, chosen = setup
    shares = split_secret(secret, t, n)
    fewer = [shares[i] for i in chosen[: t - 1]]
    with pytest.raises(CryptoError, match=f"need at least {t} shares.*got {t - 1}"):
        combine_shares(fewer, t)
    # Repeating a share does not make it count twice.
    with pytest.raises(CryptoError, match=f"need at least {t} shares.*got {t - 1}"):
        combine_shares(fewer + fewer, t)


def test_every_subset_of_a_3_of_5_split() -> None:
    secret = bytes(range(32))
    shares = split_secret(secret, 3, 5)
    for subset in itertools.combinations(shares, 3):
        assert combine_shares(subset, 3) == secret
    for subset in itertools.combinations(shares, 4):
        assert combine_shares(subset, 3) == secret
    for subset in itertools.combinations(shares, 2):
        with pytest.raises(CryptoError, match="need at least 3 shares"):
            combine_shares(subset, 3)


def test_splits_are_randomised() -> None:
    a, b = split_secret(bytes(32), 2, 3), split_secret(bytes(32), 2, 3)
    assert [s.value for s in a] != [s.value for s in b]


def test_t_minus_1_shares_do_not_determine_the_secret() -> None:
    """With t = 2 a single share is consistent with every secret: pairing it with a
    share of another split gives a different (wrong) result, not an error."""
    s1 = split_secret(b"A" * 16, 2, 2)
    s2 = split_secret(b"B" * 16, 2, 2)
    assert combine_shares([s1[0], s2[1]], 2) not in {b"A" * 16, b"B" * 16}


def test_only_the_first_t_distinct_shares_are_used() -> None:
    secret = bytes(range(16))
    shares = split_secret(secret, 2, 4)
    garbage = Share(4, bytes(16))  # an altered share beyond the first t is ignored
    assert combine_shares([shares[0], shares[0], shares[1], garbage], 2) == secret
    # ...but an altered share among the first t silently changes the result: shares must
    # be authenticated (they travel inside seal()).
    assert combine_shares([shares[0], garbage], 2) != secret


def test_threshold_one_and_maximum_share_count() -> None:
    secret = bytes(range(32))
    shares = split_secret(secret, 1, 255)
    assert shares[-1].index == 255
    assert all(combine_shares([s], 1) == secret for s in shares[::50])
    shares = split_secret(secret, 255, 255)
    assert combine_shares(shares[::-1], 255) == secret
    with pytest.raises(CryptoError, match=r"need at least 255 shares.*got 254"):
        combine_shares(shares[1:], 255)


def test_matches_hand_computed_polynomial() -> None:
    """Known answer: f(x) = s + 3x + 5x^2 over GF(2^128 - 159), coefficients injected."""
    secret = (123456789).to_bytes(16, "big")
    stream = iter([(3).to_bytes(24, "big"), (5).to_bytes(24, "big")])
    shares = split_secret(secret, 3, 4, rng=lambda n: next(stream))
    for s in shares:
        x = s.index
        assert int.from_bytes(s.value, "big") == (123456789 + 3 * x + 5 * x * x) % PRIME
    assert combine_shares(shares[1:], 3) == secret


def test_chunks_outside_the_field_are_refused() -> None:
    with pytest.raises(InvalidParameter, match="cannot be shared"):
        split_secret(b"\xff" * 16, 2, 3)
    forged = Share(2, b"\xff" * 16)
    good = split_secret(bytes(16), 2, 3)
    with pytest.raises(CryptoError, match="outside the field"):
        combine_shares([good[0], forged], 2)


def test_conflicting_duplicate_index_raises() -> None:
    shares = split_secret(bytes(16), 2, 3)
    forged = Share(shares[0].index, bytes(16) if shares[0].value != bytes(16) else b"\1" * 16)
    with pytest.raises(CryptoError, match="two shares have index 1 but different values"):
        combine_shares([shares[0], forged, shares[1]], 2)


def test_shares_of_different_lengths_raise() -> None:
    short = split_secret(bytes(16), 2, 2)
    long = split_secret(bytes(32), 2, 2)
    with pytest.raises(CryptoError, match="different lengths"):
        combine_shares([short[0], long[1]], 2)


@pytest.mark.parametrize(("t", "n"), [(0, 3), (4, 3), (1, 0), (2, 256), (256, 256), (-1, 5)])
def test_split_refuses_bad_threshold_and_count(t: int, n: int) -> None:
    with pytest.raises(InvalidParameter, match=r"need 1 <= threshold <= n_shares <= 255"):
        split_secret(bytes(32), t, n)


@pytest.mark.parametrize("size", [0, 1, 15, 17, 31, 33])
def test_split_refuses_bad_secret_length(size: int) -> None:
    with pytest.raises(InvalidParameter, match=f"positive multiple of 16 bytes.*got {size}"):
        split_secret(bytes(size), 1, 1)


def test_split_refuses_bad_types() -> None:
    with pytest.raises(InvalidParameter, match="secret must be bytes; got str"):
        split_secret("x" * 16, 1, 1)  # type: ignore[arg-type]
    with pytest.raises(InvalidParameter, match="threshold must be an integer"):
        split_secret(bytes(16), 1.0, 1)  # type: ignore[arg-type]


@pytest.mark.parametrize("t", [0, 256, -3])
def test_combine_refuses_bad_threshold(t: int) -> None:
    with pytest.raises(InvalidParameter, match="threshold must be between 1 and 255"):
        combine_shares(split_secret(bytes(16), 1, 1), t)


def test_combine_refuses_non_shares() -> None:
    with pytest.raises(InvalidParameter, match=r"Share\.from_bytes"):
        combine_shares([b"\x01" + bytes(16)], 1)  # type: ignore[list-item]


# ------------------------------------------------------------------------------ encoding


@settings(max_examples=40, derandomize=True, deadline=None)
@given(index=st.integers(1, 255), value=secrets)
def test_share_encoding_round_trip(index: int, value: bytes) -> None:
    share = Share(index, value)
    encoded = share.to_bytes()
    assert encoded[0] == index
    assert len(encoded) == 1 + len(value)
    assert Share.from_bytes(encoded) == share


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "got 0 bytes"),
        (b"\x01", "got 1 bytes"),
        (b"\x01" + bytes(15), "got 16 bytes"),
        (b"\x01" + bytes(17), "got 18 bytes"),
        (bytes(17), "index 0 is not allowed"),
    ],
)
def test_malformed_share_encodings(data: bytes, reason: str) -> None:
    with pytest.raises(CryptoError, match=f"malformed Shamir share: .*{reason}"):
        Share.from_bytes(data)


@pytest.mark.parametrize(
    ("index", "value", "message"),
    [
        (0, bytes(16), "between 1 and 255; got 0"),
        (256, bytes(16), "between 1 and 255; got 256"),
        (1, bytes(15), "positive multiple of 16 bytes; got 15"),
        (1, b"", "positive multiple of 16 bytes; got 0"),
        (True, bytes(16), "must be an integer"),
    ],
)
def test_share_validates_its_fields(index: int, value: bytes, message: str) -> None:
    with pytest.raises(InvalidParameter, match=message):
        Share(index, value)


def test_share_repr_hides_the_value_and_is_frozen() -> None:
    share = Share(7, b"\xab" * 16)
    assert repr(share) == "Share(index=7)"
    with pytest.raises(AttributeError):
        share.index = 8  # type: ignore[misc]
    assert Share(7, bytearray(b"\xab" * 16)).value == b"\xab" * 16
