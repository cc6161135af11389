"""Authenticated encryption: AES-256-GCM with the nonce carried in the sealed bytes.

Sealed format: ``nonce (12 bytes) || ciphertext (len(plaintext) bytes) || tag (16 bytes)``.
Every way :func:`open_sealed` can fail on the sealed bytes (altered, truncated, wrong key,
wrong ``aad``) raises the same :class:`~safeflow.errors.DecryptionError` with the same
message, so a failure tells an attacker nothing about which check failed (STYLE.md item 11).

Examples
--------
>>> from safeflow.crypto import open_sealed, seal
>>> key = bytes(32)
>>> sealed = seal(key, b"share for site b", aad=b"run-1/round-2/a->b")
>>> open_sealed(key, sealed, aad=b"run-1/round-2/a->b")
b'share for site b'
"""

from __future__ import annotations

from typing import Final

from Crypto.Cipher import AES
from Crypto.Random import get_random_bytes

from safeflow.crypto.keys import _as_bytes
from safeflow.errors import DecryptionError, InvalidKey, InvalidParameter

KEY_SIZE: Final = 32
NONCE_SIZE: Final = 12
TAG_SIZE: Final = 16
#: The sealed bytes are always this much longer than the plaintext.
OVERHEAD: Final = NONCE_SIZE + TAG_SIZE

_NOT_AUTHENTIC: Final = (
    "could not authenticate the message: it was altered or sealed for another recipient"
)


def _check_key(key: object) -> bytes:
    if not isinstance(key, bytes | bytearray | memoryview):
        raise InvalidKey(
            f"AES-256-GCM key must be 32 bytes; got {type(key).__name__}. "
            "Derive it with safeflow.crypto.derive_key(..., length=32)."
        )
    data = bytes(key)
    if len(data) != KEY_SIZE:
        raise InvalidKey(
            f"AES-256-GCM key must be 32 bytes; got {len(data)}. "
            "Derive it with safeflow.crypto.derive_key(..., length=32)."
        )
    return data


def seal(key: bytes, plaintext: bytes, *, aad: bytes, nonce: bytes | None = None) -> bytes:
    """Encrypt and authenticate ``plaintext``, binding it to ``aad``.

    Parameters
    ----------
    key : bytes
        32-byte AES-256 key, e.g. from :func:`~safeflow.crypto.derive_key`.
    plaintext : bytes
    aad : bytes
        Associated data: authenticated, not encrypted, not included in the output. Put the
        message's context (run, round, sender, receiver) here so it cannot be replayed
        elsewhere.
    nonce : bytes, optional
        12 bytes. Default: 12 random bytes from the operating system. Pass one only for
        known-answer tests: a nonce must never be reused with the same key.

    Returns
    -------
    bytes
        ``nonce || ciphertext || tag``, ``len(plaintext) + 28`` bytes.

    Raises
    ------
    InvalidKey
        If ``key`` is not 32 bytes.
    InvalidParameter
        If ``nonce`` is not 12 bytes or an argument is not bytes.

    Examples
    --------
    >>> sealed = seal(bytes(32), b"", aad=b"", nonce=bytes(12))
    >>> sealed.hex()  # NIST GCM test case 13 (AES-256, empty plaintext)
    '000000000000000000000000530f8afbc74536b9a963b4f1c4cb738b'
    """
    key = _check_key(key)
    plaintext = _as_bytes(plaintext, "plaintext")
    aad = _as_bytes(aad, "aad")
    if nonce is None:
        nonce = get_random_bytes(NONCE_SIZE)
    else:
        nonce = _as_bytes(nonce, "nonce")
        if len(nonce) != NONCE_SIZE:
            raise InvalidParameter(f"nonce must be {NONCE_SIZE} bytes; got {len(nonce)}")
    cipher = AES.new(key, AES.MODE_GCM, nonce=nonce, mac_len=TAG_SIZE)
    cipher.update(aad)
    ciphertext, tag = cipher.encrypt_and_digest(plaintext)
    return nonce + ciphertext + tag


def open_sealed(key: bytes, sealed: bytes, *, aad: bytes) -> bytes:
    """Check and decrypt the output of :func:`seal`.

    Parameters
    ----------
    key : bytes
        The 32-byte key it was sealed with.
    sealed : bytes
        ``nonce || ciphertext || tag``.
    aad : bytes
        The same associated data as given to :func:`seal`.

    Returns
    -------
    bytes
        The plaintext.

    Raises
    ------
    DecryptionError
        If ``sealed`` is shorter than 28 bytes, was altered, or the key or ``aad`` differ.
    InvalidKey
        If ``key`` is not 32 bytes (a local mistake, not a property of the message).

    Examples
    --------
    >>> sealed = seal(bytes(32), b"hi", aad=b"ctx")
    >>> open_sealed(bytes(32), sealed, aad=b"other ctx")
    Traceback (most recent call last):
    ...
    safeflow.errors.DecryptionError: could not authenticate the message: it was altered or ...
    """
    key = _check_key(key)
    sealed = _as_bytes(sealed, "sealed")
    aad = _as_bytes(aad, "aad")
    if len(sealed) < OVERHEAD:
        raise DecryptionError(_NOT_AUTHENTIC)
    nonce = sealed[:NONCE_SIZE]
    ciphertext = sealed[NONCE_SIZE:-TAG_SIZE]
    tag = sealed[-TAG_SIZE:]
    cipher = AES.new(key, AES.MODE_GCM, nonce=nonce, mac_len=TAG_SIZE)
    cipher.update(aad)
    try:
        return cipher.decrypt_and_verify(ciphertext, tag)
    except ValueError:
        raise DecryptionError(_NOT_AUTHENTIC) from None


__all__ = ["open_sealed", "seal"]
