"""AES-256-GCM seal / open_sealed: known answers, round trips and tamper detection."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import given, settings
from hypothesis import strategies as st

from safeflow.crypto import open_sealed, seal
from safeflow.errors import DecryptionError, InvalidKey, InvalidParameter

KEY = bytes(range(32))
MESSAGE = "could not authenticate the message: it was altered or sealed for another recipient"


def test_nist_gcm_test_case_14() -> None:
    """McGrew & Viega GCM spec, test case 14: AES-256, zero key / IV, one zero block."""
    sealed = seal(bytes(32), bytes(16), aad=b"", nonce=bytes(12))
    assert sealed.hex() == (
        "000000000000000000000000cea7403d4d606b6e074ec5d3baf39d18d0d1c8a799996bf0265b98b5d48ab919"
    )
    assert open_sealed(bytes(32), sealed, aad=b"") == bytes(16)


@settings(max_examples=25, derandomize=True, deadline=None)
@given(
    plaintext=st.binary(max_size=300),
    aad=st.binary(max_size=64),
    nonce=st.binary(min_size=12, max_size=12),
)
def test_matches_pyca_aesgcm(plaintext: bytes, aad: bytes, nonce: bytes) -> None:
    sealed = seal(KEY, plaintext, aad=aad, nonce=nonce)
    assert sealed == nonce + AESGCM(KEY).encrypt(nonce, plaintext, aad)


@settings(max_examples=15, derandomize=True, deadline=None)
@given(plaintext=st.binary(max_size=48), aad=st.binary(max_size=16))
def test_round_trip_and_every_single_bit_flip_is_detected(plaintext: bytes, aad: bytes) -> None:
    sealed = seal(KEY, plaintext, aad=aad)
    assert len(sealed) == len(plaintext) + 28
    assert open_sealed(KEY, sealed, aad=aad) == plaintext
    for bit in range(8 * len(sealed)):
        tampered = bytearray(sealed)
        tampered[bit // 8] ^= 1 << (bit % 8)
        with pytest.raises(DecryptionError) as excinfo:
            open_sealed(KEY, bytes(tampered), aad=aad)
        assert str(excinfo.value) == MESSAGE


def test_wrong_key_or_aad_is_refused_with_one_message() -> None:
    sealed = seal(KEY, b"secret", aad=b"run-1/a->b")
    with pytest.raises(DecryptionError, match=MESSAGE):
        open_sealed(bytes(32), sealed, aad=b"run-1/a->b")
    with pytest.raises(DecryptionError, match=MESSAGE):
        open_sealed(KEY, sealed, aad=b"run-1/a->c")
    with pytest.raises(DecryptionError, match=MESSAGE):
        open_sealed(KEY, sealed + b"\0", aad=b"run-1/a->b")


@pytest.mark.parametrize("size", [0, 1, 12, 27])
def test_short_input_is_a_decryption_error(size: int) -> None:
    with pytest.raises(DecryptionError, match=MESSAGE):
        open_sealed(KEY, bytes(size), aad=b"")


def test_empty_plaintext_round_trips() -> None:
    sealed = seal(KEY, b"", aad=b"ctx")
    assert len(sealed) == 28
    assert open_sealed(KEY, sealed, aad=b"ctx") == b""


def test_default_nonces_are_fresh() -> None:
    nonces = {seal(KEY, b"x", aad=b"")[:12] for _ in range(16)}
    assert len(nonces) == 16


def test_explicit_nonce_is_deterministic() -> None:
    a = seal(KEY, b"x", aad=b"a", nonce=b"n" * 12)
    assert a == seal(KEY, b"x", aad=b"a", nonce=b"n" * 12)
    assert a[:12] == b"n" * 12


@pytest.mark.parametrize("size", [0, 16, 31, 33])
def test_wrong_key_length(size: int) -> None:
    with pytest.raises(InvalidKey, match=f"must be 32 bytes; got {size}"):
        seal(bytes(size), b"x", aad=b"")
    with pytest.raises(InvalidKey, match=f"must be 32 bytes; got {size}"):
        open_sealed(bytes(size), bytes(40), aad=b"")


@pytest.mark.parametrize("size", [0, 8, 11, 13, 16])
def test_wrong_nonce_length(size: int) -> None:
    with pytest.raises(InvalidParameter, match=f"nonce must be 12 bytes; got {size}"):
        seal(KEY, b"x", aad=b"", nonce=bytes(size))


def test_text_is_refused() -> None:
    with pytest.raises(InvalidParameter, match="plaintext must be bytes; got str"):
        seal(KEY, "hello", aad=b"")  # type: ignore[arg-type]
    with pytest.raises(InvalidParameter, match="aad must be bytes; got str"):
        open_sealed(KEY, bytes(40), aad="ctx")  # type: ignore[arg-type]
