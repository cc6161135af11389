"""X25519 key pairs, HKDF / derive_key and Ed25519 keys: behaviour beyond the Wycheproof files."""

from __future__ import annotations

import copy
import json
import pickle
import random
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import x25519 as pyca_x25519
from hypothesis import given, settings
from hypothesis import strategies as st

from safeflow.crypto import (
    PROTOCOL_SALT,
    SigningKey,
    VerifyKey,
    X25519KeyPair,
    derive_key,
    hkdf_sha256,
    x25519,
)
from safeflow.errors import CryptoError, InvalidKey, InvalidParameter

P = 2**255 - 19
WYCHEPROOF = Path(__file__).resolve().parents[2] / "data" / "wycheproof"

# RFC 7748 section 6.1
ALICE_PRIVATE = bytes.fromhex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")
ALICE_PUBLIC = bytes.fromhex("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a")
BOB_PRIVATE = bytes.fromhex("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb")
BOB_PUBLIC = bytes.fromhex("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f")
RFC7748_SHARED = bytes.fromhex("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742")

# RFC 8032 section 7.1, TEST 1
RFC8032_SEED = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
RFC8032_PUBLIC = bytes.fromhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
RFC8032_SIGNATURE = bytes.fromhex(
    "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
)

# Low-order u-coordinates (order 1, 2, 4, 8 on the curve and its twist), and the
# non-canonical aliases u + p that fit in 255 bits; all give an all-zero shared secret.
_X1 = 325606250916557431795983626356110631294008115727848805560023387167927233504
_X2 = 39382357235489614581723060781553021112529911719440698176882885853963445705823
LOW_ORDER_U = {"0": 0, "1": 1, "x1": _X1, "x2": _X2, "p-1": P - 1, "p": P, "p+1": P + 1}


def u_bytes(u: int, *, high_bit: bool = False) -> bytes:
    return (u + (2**255 if high_bit else 0)).to_bytes(32, "little")


keys32 = st.binary(min_size=32, max_size=32)


# ---------------------------------------------------------------------------------- X25519


def test_rfc7748_key_agreement() -> None:
    alice = X25519KeyPair.from_private_bytes(ALICE_PRIVATE)
    bob = X25519KeyPair.from_private_bytes(BOB_PRIVATE)
    assert alice.public_bytes == ALICE_PUBLIC
    assert bob.public_bytes == BOB_PUBLIC
    assert alice.agree(BOB_PUBLIC) == bob.agree(ALICE_PUBLIC) == RFC7748_SHARED
    assert x25519(ALICE_PRIVATE, BOB_PUBLIC) == RFC7748_SHARED


def test_rfc7748_vector_is_the_wycheproof_one() -> None:
    """The constants above are cross-checked against the vendored Wycheproof file."""
    data = json.loads((WYCHEPROOF / "x25519_test.json").read_text(encoding="utf-8"))
    tests = {t["tcId"]: t for g in data["testGroups"] for t in g["tests"]}
    assert bytes.fromhex(tests[102]["private"]) == ALICE_PRIVATE
    assert bytes.fromhex(tests[102]["public"]) == BOB_PUBLIC
    assert bytes.fromhex(tests[102]["shared"]) == RFC7748_SHARED


@pytest.mark.parametrize("high_bit", [False, True])
@pytest.mark.parametrize("u", LOW_ORDER_U.values(), ids=LOW_ORDER_U.keys())
def test_low_order_public_keys_are_refused(u: int, high_bit: bool) -> None:
    pair = X25519KeyPair.from_private_bytes(ALICE_PRIVATE)
    with pytest.raises(InvalidKey, match=r"low-order point.*freshly generated"):
        pair.agree(u_bytes(u, high_bit=high_bit))
    with pytest.raises(InvalidKey, match="low-order point"):
        x25519(ALICE_PRIVATE, u_bytes(u, high_bit=high_bit))


def test_non_canonical_public_key_means_u_mod_p() -> None:
    # u = p + 9 is the base point 9 in non-canonical form; with the high bit set as well.
    base = X25519KeyPair.from_private_bytes(ALICE_PRIVATE).agree(u_bytes(9))
    assert base == ALICE_PUBLIC
    assert x25519(ALICE_PRIVATE, u_bytes(P + 9)) == ALICE_PUBLIC
    assert x25519(ALICE_PRIVATE, u_bytes(9, high_bit=True)) == ALICE_PUBLIC
    assert x25519(ALICE_PRIVATE, u_bytes(P + 9, high_bit=True)) == ALICE_PUBLIC


@pytest.mark.parametrize("size", [0, 31, 33, 64])
def test_x25519_wrong_lengths(size: int) -> None:
    with pytest.raises(InvalidKey, match=f"public key must be 32 bytes; got {size}"):
        x25519(ALICE_PRIVATE, bytes(size))
    with pytest.raises(InvalidKey, match=f"private key must be 32 bytes; got {size}"):
        x25519(bytes(size), BOB_PUBLIC)
    with pytest.raises(InvalidKey, match="not a PEM, DER or hex encoding"):
        X25519KeyPair.from_private_bytes(bytes(size))
    with pytest.raises(InvalidKey, match="32 bytes"):
        X25519KeyPair.from_private_bytes(ALICE_PRIVATE).agree(bytes(size))


def test_x25519_rejects_non_bytes() -> None:
    with pytest.raises(InvalidKey, match="got str"):
        x25519(ALICE_PRIVATE, BOB_PUBLIC.hex())  # type: ignore[arg-type]
    assert x25519(bytearray(ALICE_PRIVATE), memoryview(BOB_PUBLIC)) == RFC7748_SHARED


@settings(max_examples=25, derandomize=True, deadline=None)
@given(a=keys32, b=keys32)
def test_agreement_is_symmetric(a: bytes, b: bytes) -> None:
    alice = X25519KeyPair.from_private_bytes(a)
    bob = X25519KeyPair.from_private_bytes(b)
    assert alice.agree(bob.public_bytes) == bob.agree(alice.public_bytes)


@settings(max_examples=25, derandomize=True, deadline=None)
@given(private=keys32, public=keys32)
def test_x25519_matches_pyca(private: bytes, public: bytes) -> None:
    """An independent implementation (OpenSSL via pyca) gives the same shared secret."""
    reference = pyca_x25519.X25519PrivateKey.from_private_bytes(private)
    try:
        expected = reference.exchange(pyca_x25519.X25519PublicKey.from_public_bytes(public))
    except ValueError:  # pyca refuses an all-zero result, as we do
        with pytest.raises(InvalidKey):
            x25519(private, public)
        return
    assert x25519(private, public) == expected
    assert X25519KeyPair.from_private_bytes(private).public_bytes == (
        reference.public_key().public_bytes_raw()
    )


def test_generate_uses_injected_rng() -> None:
    a = X25519KeyPair.generate(random.Random(42).randbytes)
    b = X25519KeyPair.generate(random.Random(42).randbytes)
    c = X25519KeyPair.generate(random.Random(43).randbytes)
    assert a == b
    assert a.public_bytes == b.public_bytes
    assert a != c
    assert a.to_private_bytes() == random.Random(42).randbytes(32)
    requested: list[int] = []

    def rng(n: int) -> bytes:
        requested.append(n)
        return bytes(n)

    assert X25519KeyPair.generate(rng).to_private_bytes() == bytes(32)
    assert requested == [32]


def test_generate_defaults_to_os_randomness() -> None:
    pairs = {X25519KeyPair.generate().public_bytes for _ in range(8)}
    assert len(pairs) == 8


@pytest.mark.parametrize("bad", [b"short", b"x" * 33])
def test_generate_checks_rng_output(bad: bytes) -> None:
    with pytest.raises(InvalidParameter, match=r"rng\(32\) must return exactly 32 bytes"):
        X25519KeyPair.generate(lambda n: bad)
    with pytest.raises(InvalidParameter, match=r"rng\(32\) must return exactly 32 bytes"):
        SigningKey.generate(lambda n: bad)


def test_key_pair_repr_hides_private_key() -> None:
    pair = X25519KeyPair.from_private_bytes(ALICE_PRIVATE)
    text = repr(pair) + str(pair)
    assert ALICE_PRIVATE.hex() not in text
    assert ALICE_PRIVATE.hex()[:8] not in text
    assert text.startswith("X25519KeyPair(public=8520f009")


def test_key_pair_is_immutable_hashable_and_copyable() -> None:
    pair = X25519KeyPair.from_private_bytes(ALICE_PRIVATE)
    with pytest.raises(AttributeError, match="immutable"):
        pair._private = bytes(32)  # type: ignore[misc]
    with pytest.raises(AttributeError):
        pair.public_bytes = bytes(32)  # type: ignore[misc]
    assert {pair, X25519KeyPair.from_private_bytes(ALICE_PRIVATE)} == {pair}
    with pytest.raises(CryptoError, match="never pickled"):
        copy.deepcopy(pair)
    with pytest.raises(CryptoError, match="never pickled"):
        pickle.dumps(pair)
    assert pair != ALICE_PRIVATE


# ------------------------------------------------------------------------------------ HKDF


def test_hkdf_rfc5869_case_3_empty_salt_and_info() -> None:
    okm = hkdf_sha256(bytes([0x0B] * 22), salt=b"", info=b"", length=42)
    assert okm.hex() == (
        "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8"
    )


@pytest.mark.parametrize("length", [1, 32, 8160])
def test_hkdf_length_bounds_accepted(length: int) -> None:
    assert len(hkdf_sha256(b"ikm", salt=b"s", info=b"i", length=length)) == length


@pytest.mark.parametrize("length", [0, -1, 8161, 10**6])
def test_hkdf_length_bounds_refused(length: int) -> None:
    with pytest.raises(InvalidParameter, match=f"between 1 and 8160 bytes.*got {length}"):
        hkdf_sha256(b"ikm", salt=b"s", info=b"i", length=length)


@pytest.mark.parametrize("length", [32.0, True, "32"])
def test_hkdf_length_must_be_an_integer(length: object) -> None:
    with pytest.raises(InvalidParameter, match="length must be an integer"):
        hkdf_sha256(b"ikm", salt=b"s", info=b"i", length=length)  # type: ignore[arg-type]


def test_hkdf_rejects_text() -> None:
    with pytest.raises(InvalidParameter, match="info must be bytes; got str"):
        hkdf_sha256(b"ikm", salt=b"", info="ctx", length=32)  # type: ignore[arg-type]


def test_derive_key_is_hkdf_with_the_protocol_salt() -> None:
    secret = bytes(range(32))
    assert PROTOCOL_SALT == b"safeflow/v1"
    expected = hkdf_sha256(secret, salt=b"safeflow/v1", info=b"ctx", length=32)
    assert derive_key(secret, context=b"ctx") == expected
    assert derive_key(secret, context=b"ctx", length=16) == expected[:16]
    assert derive_key(secret, context=b"ctx2") != expected
    assert derive_key(bytes(32), context=b"ctx") != expected


def test_derive_key_refuses_weak_inputs() -> None:
    with pytest.raises(InvalidParameter, match="context must not be empty"):
        derive_key(bytes(32), context=b"")
    with pytest.raises(InvalidParameter, match=r"at least 16 bytes.*got 15"):
        derive_key(bytes(15), context=b"ctx")
    with pytest.raises(InvalidParameter, match="between 1 and 8160"):
        derive_key(bytes(32), context=b"ctx", length=0)


# --------------------------------------------------------------------------------- Ed25519


def test_rfc8032_test_1() -> None:
    sk = SigningKey.from_bytes(RFC8032_SEED)
    assert sk.verify_key.to_bytes() == RFC8032_PUBLIC
    assert sk.sign(b"") == RFC8032_SIGNATURE
    assert sk.to_bytes() == RFC8032_SEED
    VerifyKey.from_bytes(RFC8032_PUBLIC).verify(b"", RFC8032_SIGNATURE)


def test_rfc8032_vector_is_the_wycheproof_one() -> None:
    data = json.loads((WYCHEPROOF / "ed25519_test.json").read_text(encoding="utf-8"))
    found = [
        t
        for g in data["testGroups"]
        for t in g["tests"]
        if g["publicKey"]["pk"] == RFC8032_PUBLIC.hex() and t["sig"] == RFC8032_SIGNATURE.hex()
    ]
    assert [(t["msg"], t["result"]) for t in found] == [("", "valid")]


@settings(max_examples=20, derandomize=True, deadline=None)
@given(seed=keys32, message=st.binary(max_size=200), flip=st.integers(0, 64 * 8 - 1))
def test_sign_verify_round_trip_and_tamper(seed: bytes, message: bytes, flip: int) -> None:
    sk = SigningKey.from_bytes(seed)
    signature = sk.sign(message)
    assert len(signature) == 64
    sk.verify_key.verify(message, signature)
    tampered = bytearray(signature)
    tampered[flip // 8] ^= 1 << (flip % 8)
    with pytest.raises(CryptoError, match="signature does not verify"):
        sk.verify_key.verify(message, bytes(tampered))
    with pytest.raises(CryptoError, match="signature does not verify"):
        sk.verify_key.verify(message + b"!", signature)


@pytest.mark.parametrize("size", [0, 63, 65, 128])
def test_verify_refuses_wrong_signature_length(size: int) -> None:
    vk = VerifyKey.from_bytes(RFC8032_PUBLIC)
    with pytest.raises(CryptoError, match="signature does not verify"):
        vk.verify(b"", (RFC8032_SIGNATURE * 2)[:size])


def test_verify_key_from_bad_bytes() -> None:
    with pytest.raises(InvalidKey, match="must be 32 bytes; got 31"):
        VerifyKey.from_bytes(bytes(31))
    # y = 2 is not the y-coordinate of any point of edwards25519.
    with pytest.raises(InvalidKey, match="not the encoding of a curve point"):
        VerifyKey.from_bytes((2).to_bytes(32, "little"))
    with pytest.raises(InvalidKey, match="32 bytes"):
        SigningKey.from_bytes(bytes(16))


def test_signing_key_injected_rng_repr_and_equality() -> None:
    a = SigningKey.generate(random.Random(9).randbytes)
    b = SigningKey.generate(random.Random(9).randbytes)
    assert a == b
    assert a != SigningKey.generate(random.Random(10).randbytes)
    assert a.verify_key == b.verify_key
    assert hash(a.verify_key) == hash(b.verify_key)
    assert a.to_bytes().hex() not in repr(a)
    assert a.to_bytes().hex()[:8] not in repr(a)
    assert repr(a).startswith("SigningKey(verify_key=")
    assert repr(a.verify_key) == f"VerifyKey({a.verify_key.to_bytes().hex()})"
    with pytest.raises(CryptoError, match="never pickled"):
        pickle.dumps(a)
    assert pickle.loads(pickle.dumps(a.verify_key)) == a.verify_key
    assert copy.copy(a.verify_key) == a.verify_key
    with pytest.raises(AttributeError, match="immutable"):
        a._seed = bytes(32)  # type: ignore[misc]
