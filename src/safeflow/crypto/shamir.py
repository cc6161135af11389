"""Shamir secret sharing of byte strings over the prime field GF(2^128 - 159).

A secret of ``16·m`` bytes is split as ``m`` independent 16-byte chunks (big-endian
integers, each below ``P = 2^128 - 159``, the largest 128-bit prime), each shared with a
fresh random polynomial of degree ``threshold - 1``; share ``i`` carries the ``m``
evaluations at ``x = i``, concatenated, 16 bytes each. Any ``threshold`` shares recover the
secret (Lagrange interpolation at 0) and fewer reveal nothing about it.

Why not pycryptodome's ``Shamir`` (GF(2^128))? Its field arithmetic is pure Python, bit by
bit: reconstructing ten 32-byte seeds took 34 ms, the largest single cost of a masked sum
(benchmarks/results/secure_sum.md). Prime-field arithmetic on Python integers is the same
construction at a few microseconds per share. A 16-byte chunk at or above ``P`` (probability
``2^-120.7`` for a random secret) cannot be shared and is refused: draw a new secret.

Shares are **not** authenticated: :func:`combine_shares` with enough shares always returns
*some* 16·m bytes, and a single altered share silently changes the result. Shares must
therefore only travel inside an AEAD (:func:`safeflow.crypto.seal`) or a signed message.

Examples
--------
>>> from safeflow.crypto import combine_shares, split_secret
>>> shares = split_secret(bytes(range(32)), threshold=2, n_shares=3)
>>> combine_shares([shares[2], shares[0]], threshold=2) == bytes(range(32))
True
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Final

from safeflow.crypto.keys import _as_bytes, _as_int
from safeflow.errors import CryptoError, InvalidParameter

CHUNK_SIZE: Final = 16
#: the field: the largest prime below 2^128
PRIME: Final = 2**128 - 159
MAX_SHARES: Final = 255


@dataclass(frozen=True)
class Share:
    """One Shamir share: the evaluation point ``index`` and the value there.

    Parameters
    ----------
    index : int
        The x-coordinate, 1..255 (0 would be the secret itself).
    value : bytes
        The share value, as long as the secret (a positive multiple of 16 bytes).

    Examples
    --------
    >>> s = Share(3, bytes(16))
    >>> s
    Share(index=3)
    >>> Share.from_bytes(s.to_bytes()) == s
    True
    """

    index: int
    value: bytes = field(repr=False)

    def __post_init__(self) -> None:
        index = _as_int(self.index, "Share index")
        if not 1 <= index <= MAX_SHARES:
            raise InvalidParameter(f"Share index must be between 1 and 255; got {index}")
        value = _as_bytes(self.value, "Share value")
        if not value or len(value) % CHUNK_SIZE:
            raise InvalidParameter(
                f"Share value must be a positive multiple of 16 bytes; got {len(value)}"
            )
        object.__setattr__(self, "index", index)
        object.__setattr__(self, "value", value)

    def to_bytes(self) -> bytes:
        """Encode as one index byte followed by the value.

        Examples
        --------
        >>> Share(1, bytes(16)).to_bytes().hex()
        '0100000000000000000000000000000000'
        """
        return bytes([self.index]) + self.value

    @classmethod
    def from_bytes(cls, data: bytes) -> Share:
        """Decode :meth:`to_bytes` output.

        Parameters
        ----------
        data : bytes
            ``1 + 16·m`` bytes (``m >= 1``) whose first byte is 1..255.

        Returns
        -------
        Share

        Raises
        ------
        CryptoError
            If ``data`` is not a well-formed share encoding.

        Examples
        --------
        >>> Share.from_bytes(bytes([7]) + bytes(32)).index
        7
        >>> Share.from_bytes(bytes(17))
        Traceback (most recent call last):
        ...
        safeflow.errors.CryptoError: malformed Shamir share: index 0 is not allowed (1..255)
        """
        data = _as_bytes(data, "data")
        if len(data) < 1 + CHUNK_SIZE or (len(data) - 1) % CHUNK_SIZE:
            raise CryptoError(
                f"malformed Shamir share: expected 1 index byte plus a positive multiple of "
                f"16 value bytes; got {len(data)} bytes"
            )
        if data[0] == 0:
            raise CryptoError("malformed Shamir share: index 0 is not allowed (1..255)")
        return cls(data[0], data[1:])


def _check_threshold(threshold: object) -> int:
    t = _as_int(threshold, "threshold")
    if not 1 <= t <= MAX_SHARES:
        raise InvalidParameter(f"threshold must be between 1 and 255; got {t}")
    return t


def split_secret(secret: bytes, threshold: int, n_shares: int, *,
                 rng: Callable[[int], bytes] | None = None) -> list[Share]:
    """Split ``secret`` into ``n_shares`` shares, any ``threshold`` of which recover it.

    Parameters
    ----------
    secret : bytes
        A positive multiple of 16 bytes (32 for a key or seed).
    threshold : int
        Shares needed to recover, ``1 <= threshold <= n_shares``.
    n_shares : int
        Shares to make, ``threshold <= n_shares <= 255``. Share ``i`` has index ``i + 1``.
    rng : callable, optional
        ``rng(n) -> n random bytes`` for the polynomial coefficients (tests inject a seeded
        source); default: the operating system's CSPRNG.

    Returns
    -------
    list of Share
        Randomised with the operating system's CSPRNG; keep each share confidential and
        send it only inside an AEAD.

    Raises
    ------
    InvalidParameter
        If the secret length or the threshold / share counts are invalid.

    Examples
    --------
    >>> shares = split_secret(b"0123456789abcdef", threshold=3, n_shares=5)
    >>> [s.index for s in shares]
    [1, 2, 3, 4, 5]
    >>> combine_shares(shares[1:4], threshold=3)
    b'0123456789abcdef'
    """
    secret = _as_bytes(secret, "secret")
    if not secret or len(secret) % CHUNK_SIZE:
        raise InvalidParameter(
            f"secret must be a positive multiple of 16 bytes (32 for a key); got {len(secret)}"
        )
    t = _as_int(threshold, "threshold")
    n = _as_int(n_shares, "n_shares")
    if not 1 <= t <= n <= MAX_SHARES:
        raise InvalidParameter(
            f"need 1 <= threshold <= n_shares <= 255; got threshold={t}, n_shares={n}"
        )
    draw = rng or secrets.token_bytes
    values = [bytearray() for _ in range(n)]
    for start in range(0, len(secret), CHUNK_SIZE):
        a0 = int.from_bytes(secret[start : start + CHUNK_SIZE], "big")
        if a0 >= PRIME:
            raise InvalidParameter(
                "a 16-byte chunk of the secret is not below 2^128 - 159 and cannot be shared; "
                "draw a new random secret")
        coeffs = [a0] + [int.from_bytes(draw(24), "big") % PRIME for _ in range(t - 1)]
        for x in range(1, n + 1):
            y = 0
            for c in reversed(coeffs):  # Horner
                y = (y * x + c) % PRIME
            values[x - 1] += y.to_bytes(CHUNK_SIZE, "big")
    return [Share(i + 1, bytes(v)) for i, v in enumerate(values)]


def is_shareable(secret: bytes) -> bool:
    """True when every 16-byte chunk of ``secret`` lies in the field (see module docstring).

    Examples
    --------
    >>> is_shareable(bytes(32)), is_shareable(b"\\xff" * 16)
    (True, False)
    """
    return len(secret) % CHUNK_SIZE == 0 and all(
        int.from_bytes(secret[i : i + CHUNK_SIZE], "big") < PRIME
        for i in range(0, len(secret), CHUNK_SIZE))


def lagrange_at_zero(indices: Sequence[int]) -> list[int]:
    """Lagrange coefficients ``l_i(0)`` mod ``PRIME`` for distinct evaluation points.

    Examples
    --------
    >>> c = lagrange_at_zero([1, 2])
    >>> (c[0] * 5 + c[1] * 7) % PRIME  # the line through (1, 5), (2, 7) meets x = 0 at 3
    3
    """
    out = []
    for i, xi in enumerate(indices):
        num, den = 1, 1
        for j, xj in enumerate(indices):
            if i != j:
                num = num * xj % PRIME
                den = den * (xj - xi) % PRIME
        out.append(num * pow(den, -1, PRIME) % PRIME)
    return out


def combine_shares(shares: Sequence[Share], threshold: int) -> bytes:
    """Recover the secret from at least ``threshold`` shares with distinct indices.

    Exactly the first ``threshold`` distinct shares (in the given order) are used; a share
    repeated with the same index and value counts once.

    Parameters
    ----------
    shares : sequence of Share
    threshold : int
        The threshold the secret was split with.

    Returns
    -------
    bytes
        The secret. Shares are not authenticated, so with ``threshold`` shares this always
        returns bytes; they are the secret only if every share used is genuine.

    Raises
    ------
    CryptoError
        If fewer than ``threshold`` distinct shares are given, two shares have the same
        index but different values, or the share values differ in length.
    InvalidParameter
        If ``threshold`` is not 1..255 or an element is not a :class:`Share`.

    Examples
    --------
    >>> shares = split_secret(bytes(16), threshold=2, n_shares=2)
    >>> combine_shares(shares[:1], threshold=2)
    Traceback (most recent call last):
    ...
    safeflow.errors.CryptoError: need at least 2 shares with distinct indices ..., got 1
    """
    t = _check_threshold(threshold)
    distinct: dict[int, bytes] = {}
    for share in shares:
        if not isinstance(share, Share):
            raise InvalidParameter(
                f"shares must be Share objects; got {type(share).__name__}. "
                "Decode received bytes with Share.from_bytes."
            )
        seen = distinct.get(share.index)
        if seen is None:
            distinct[share.index] = share.value
        elif not hmac.compare_digest(seen, share.value):
            raise CryptoError(
                f"two shares have index {share.index} but different values; "
                "at least one was altered or comes from another secret"
            )
    if len(distinct) < t:
        raise CryptoError(
            f"need at least {t} shares with distinct indices to recover the secret, "
            f"got {len(distinct)}"
        )
    chosen = list(distinct.items())[:t]
    length = len(chosen[0][1])
    if any(len(value) != length for _, value in chosen):
        raise CryptoError("shares have different lengths, so they cannot belong to the same secret")
    coeffs = lagrange_at_zero([index for index, _ in chosen])
    secret = bytearray()
    for start in range(0, length, CHUNK_SIZE):
        ys = [int.from_bytes(value[start : start + CHUNK_SIZE], "big") for _, value in chosen]
        if any(y >= PRIME for y in ys):
            raise CryptoError("a share value is outside the field: it was altered or is not a "
                              "safeflow share")
        total = sum(c * y for c, y in zip(coeffs, ys, strict=True)) % PRIME
        secret += total.to_bytes(CHUNK_SIZE, "big")
    return bytes(secret)


__all__ = ["PRIME", "Share", "combine_shares", "is_shareable", "lagrange_at_zero", "split_secret"]
