"""Known-answer and property tests of the AES-256-CTR keystream and mask_stream."""

from __future__ import annotations

import numpy as np
import pytest
from Crypto.Cipher import AES
from hypothesis import given, settings
from hypothesis import strategies as st

from safeflow.crypto import aes_ctr_keystream, mask_stream
from safeflow.crypto.prg import MAX_MASK_WORDS
from safeflow.errors import InvalidKey, InvalidParameter

# NIST SP 800-38A, appendix F.5.5, CTR-AES256.Encrypt
NIST_KEY = bytes.fromhex("603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4")
NIST_INIT_COUNTER = bytes.fromhex("f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff")
NIST_PLAINTEXT = bytes.fromhex(
    "6bc1bee22e409f96e93d7e117393172a"
    "ae2d8a571e03ac9c9eb76fac45af8e51"
    "30c81c46a35ce411e5fbc1191a0a52ef"
    "f69f2445df4f9b17ad2b417be66c3710"
)
NIST_CIPHERTEXT = bytes.fromhex(
    "601ec313775789a5b7a7f504bbf3d228"
    "f443e3ca4d62b59aca84e990cacaf5c5"
    "2b0930daa23de94ce87017ba2d84988d"
    "dfc9c58db67aada613c2dd08457941a6"
)
# The "Output Block" lines of F.5.5: the keystream itself.
NIST_OUTPUT_BLOCK_1 = bytes.fromhex("0bdf7df1591716335e9a8b15c860c502")

KEY = bytes(range(32))
CHUNK = 1 << 20  # prg._CHUNK: lengths around it cross the internal chunk boundary


def xor(a: bytes, b: bytes) -> bytes:
    return bytes(x ^ y for x, y in zip(a, b, strict=True))


def ecb_counter_stream(key: bytes, initial_counter_block: bytes, n_blocks: int) -> bytes:
    """The CTR keystream recomputed by hand: AES-ECB of successive 128-bit counters."""
    ecb = AES.new(key, AES.MODE_ECB)
    start = int.from_bytes(initial_counter_block, "big")
    return b"".join(
        ecb.encrypt(((start + i) % 2**128).to_bytes(16, "big")) for i in range(n_blocks)
    )


# ------------------------------------------------------------------------- known answers


def test_nist_sp800_38a_f55_keystream() -> None:
    keystream = aes_ctr_keystream(NIST_KEY, NIST_INIT_COUNTER, 64)
    assert keystream == xor(NIST_CIPHERTEXT, NIST_PLAINTEXT)
    assert keystream[:16] == NIST_OUTPUT_BLOCK_1
    assert xor(keystream, NIST_PLAINTEXT) == NIST_CIPHERTEXT


def test_nist_vector_matches_hand_built_ctr() -> None:
    # F.5.5 increments f0..feff -> f0..ff00 -> ff01 -> ff02: a carry across bytes.
    assert ecb_counter_stream(NIST_KEY, NIST_INIT_COUNTER, 4) == xor(
        NIST_CIPHERTEXT, NIST_PLAINTEXT
    )


@pytest.mark.parametrize(
    "initial_counter_block",
    [
        bytes(16),
        bytes.fromhex("0123456789abcdef" + "00000000fffffffe"),  # carry out of 32 bits
        bytes.fromhex("0123456789abcdef" + "fffffffffffffffe"),  # carry out of 64 bits
        bytes.fromhex("ff" * 16),  # wraps modulo 2**128
    ],
    ids=["zero", "carry32", "carry64", "wrap128"],
)
def test_keystream_is_ecb_of_a_128_bit_big_endian_counter(initial_counter_block: bytes) -> None:
    assert aes_ctr_keystream(KEY, initial_counter_block, 5 * 16) == ecb_counter_stream(
        KEY, initial_counter_block, 5
    )


@pytest.mark.parametrize("n_bytes", [0, 1, 15, 16, 17, 1000])
def test_keystream_length_and_prefix(n_bytes: int) -> None:
    full = ecb_counter_stream(KEY, bytes(16), 63)
    stream = aes_ctr_keystream(KEY, bytes(16), n_bytes)
    assert isinstance(stream, bytes)
    assert stream == full[:n_bytes]


@pytest.mark.parametrize("nonce", [bytes(8), bytes.fromhex("0011223344556677"), b"\xff" * 8])
def test_mask_stream_counter_layout(nonce: bytes) -> None:
    """Block i is AES-256-ECB(nonce || i as 8 bytes big-endian); words are little-endian.

    600 blocks cross the counter's 0xff -> 0x100 carry.
    """
    n_blocks = 600
    expected_bytes = b"".join(
        AES.new(KEY, AES.MODE_ECB).encrypt(nonce + i.to_bytes(8, "big")) for i in range(n_blocks)
    )
    words = mask_stream(KEY, 2 * n_blocks, nonce=nonce)
    assert words.tobytes() == expected_bytes
    assert [int(w) for w in words[:2]] == [
        int.from_bytes(expected_bytes[0:8], "little"),
        int.from_bytes(expected_bytes[8:16], "little"),
    ]
    assert np.array_equal(words, np.frombuffer(expected_bytes, dtype="<u8"))


def test_mask_stream_first_words_are_pinned() -> None:
    """A regression pin on top of the ECB check: the first words for key 00..1f."""
    block0 = AES.new(KEY, AES.MODE_ECB).encrypt(bytes(16))
    assert block0.hex() == "f29000b62a499fd0a9f39a6add2e7780"  # nonce 0, counter 0
    words = mask_stream(KEY, 2)
    assert [hex(int(w)) for w in words] == ["0xd09f492ab60090f2", "0x80772edd6a9af3a9"]


def test_mask_stream_matches_pycryptodome_ctr_across_chunks() -> None:
    """pycryptodome's own CTR mode (8-byte nonce, 8-byte counter) over 2.25 chunks."""
    nonce = bytes.fromhex("a1a2a3a4a5a6a7a8")
    n_bytes = 2 * CHUNK + CHUNK // 4
    reference = AES.new(KEY, AES.MODE_CTR, nonce=nonce, initial_value=0).encrypt(bytes(n_bytes))
    assert mask_stream(KEY, n_bytes // 8, nonce=nonce).tobytes() == reference
    assert aes_ctr_keystream(KEY, nonce + bytes(8), n_bytes) == reference


# ---------------------------------------------------------------------------- properties


@pytest.mark.parametrize(
    "n_words", [0, 1, 2, 3, 7, 1000, CHUNK // 8 - 1, CHUNK // 8, CHUNK // 8 + 1]
)
def test_mask_stream_length_dtype_and_prefix(n_words: int) -> None:
    words = mask_stream(KEY, n_words)
    assert words.shape == (n_words,)
    assert words.dtype == np.dtype("<u8")
    assert words.flags.writeable
    assert words.flags.c_contiguous
    longer = mask_stream(KEY, n_words + 3)
    assert np.array_equal(longer[:n_words], words)


def test_mask_stream_is_deterministic() -> None:
    a = mask_stream(KEY, 4096, nonce=b"noncenon")
    b = mask_stream(bytearray(KEY), 4096, nonce=bytearray(b"noncenon"))
    assert np.array_equal(a, b)
    assert a is not b


@settings(max_examples=30, derandomize=True, deadline=None)
@given(k1=st.binary(min_size=32, max_size=32), k2=st.binary(min_size=32, max_size=32))
def test_different_keys_give_different_streams(k1: bytes, k2: bytes) -> None:
    a, b = mask_stream(k1, 4), mask_stream(k2, 4)
    assert np.array_equal(a, b) == (k1 == k2)


def test_different_nonces_give_different_streams() -> None:
    a = mask_stream(KEY, 64, nonce=bytes(8))
    b = mask_stream(KEY, 64, nonce=bytes(7) + b"\x01")
    assert not np.any(a == b)  # 64 independent 64-bit words: a collision is ~2**-58


def test_stream_looks_uniform() -> None:
    """A cheap sanity check against, e.g., returning the zero input: bit balance."""
    words = mask_stream(KEY, 1 << 15)
    ones = np.unpackbits(words.view(np.uint8)).mean()
    assert 0.495 < ones < 0.505
    assert len(np.unique(words)) == len(words)


# ---------------------------------------------------------------------------- validation


@pytest.mark.parametrize("size", [0, 16, 24, 31, 33])
def test_wrong_key_length(size: int) -> None:
    with pytest.raises(InvalidKey, match=f"AES-256 key must be 32 bytes; got {size}"):
        mask_stream(bytes(size), 1)
    with pytest.raises(InvalidKey, match=f"AES-256 key must be 32 bytes; got {size}"):
        aes_ctr_keystream(bytes(size), bytes(16), 1)


def test_key_must_be_bytes() -> None:
    with pytest.raises(InvalidKey, match="got str"):
        mask_stream("k" * 32, 1)  # type: ignore[arg-type]


@pytest.mark.parametrize("n_words", [-1, MAX_MASK_WORDS, 2**40])
def test_n_words_out_of_range(n_words: int) -> None:
    with pytest.raises(InvalidParameter, match=r"n_words must be >= 0 and < 2\*\*36"):
        mask_stream(KEY, n_words)


@pytest.mark.parametrize("n_words", [1.0, True, "3", None])
def test_n_words_must_be_an_integer(n_words: object) -> None:
    with pytest.raises(InvalidParameter, match="n_words must be an integer"):
        mask_stream(KEY, n_words)  # type: ignore[arg-type]


def test_numpy_integers_are_accepted() -> None:
    assert np.array_equal(mask_stream(KEY, np.int64(5)), mask_stream(KEY, 5))  # type: ignore[arg-type]


@pytest.mark.parametrize("size", [0, 7, 9, 12, 16])
def test_wrong_nonce_length(size: int) -> None:
    with pytest.raises(InvalidParameter, match=f"nonce must be 8 bytes.*got {size}"):
        mask_stream(KEY, 1, nonce=bytes(size))


@pytest.mark.parametrize("size", [0, 8, 12, 15, 17])
def test_wrong_counter_block_length(size: int) -> None:
    with pytest.raises(InvalidParameter, match=f"must be 16 bytes; got {size}"):
        aes_ctr_keystream(KEY, bytes(size), 16)


@pytest.mark.parametrize("n_bytes", [-1, 2**39 + 1])
def test_keystream_length_out_of_range(n_bytes: int) -> None:
    with pytest.raises(InvalidParameter, match=r"n_bytes must be between 0 and 2\*\*39"):
        aes_ctr_keystream(KEY, bytes(16), n_bytes)
