"""TenSEAL contexts for the ``he`` protocol: parameters, security checks and key roles.

Customs makes the context with :func:`new_context` and keeps it: it holds the secret key.
Sites and the aggregator get :func:`public_context_bytes` (public key and parameters only:
no secret, relinearisation or Galois keys), and a site loads them with
:func:`load_public_context`, which refuses a context carrying a secret key or weaker than
128-bit security before anything is encrypted under it.

Security (HomomorphicEncryption.org standard, 128-bit classical, ternary secret)
---------------------------------------------------------------------------------
=====================  ======  ======  ======  ======
``poly_modulus_degree``  4096    8192   16384   32768
max total ``log2 q``      109     218     438     881
=====================  ======  ======  ======  ======

:func:`check_security` enforces this table on the whole coefficient modulus (including
SEAL's special prime, which only keys use); smaller degrees are refused.

Default moduli
--------------
Both schemes use the primes ``(56, 32, 21)`` bits (109 bits: the 4096 maximum). The last
prime is SEAL's special prime: keys live modulo all three, ciphertexts modulo the first two
(an 88-bit "data" modulus ``q``). Only additions happen, so the special prime needs no
size; byte-aligned data primes compress best (measured: 23.7 bytes per BFV slot at
``N = 4096``, against 24.6 for ``(60, 32, 17)`` and 27.2 for ``(46, 46, 17)``).

BFV plain modulus
-----------------
BFV decrypts correctly while the noise ``e`` of a ciphertext stays below ``q / (2 t)``. A
fresh public-key encryption (encrypted modulo ``q p``, then divided by the special prime
``p``) has, coefficient-wise and in the worst case, ``|e| <= N/2 + 1 + 40 N / p``
(``δ₁·s`` rounding ``<= N/2``; ``δ₀`` and SEAL's message rounding ``<= 1``; the key-level
noise ``u·e + e₀ + e₁·s`` clipped at ``6σ = 19.2`` gives ``<= 40 N``, divided by ``p``).
A sum of :data:`MAX_ADDITIONS` ciphertexts has at most that many times the noise, so
:func:`plain_modulus_bits` picks the largest ``b <= 60`` (SEAL's maximum) with
``2^b · 2 · 1024 · (N/2 + 1 + 40 N / p) <= q``, and :func:`batching_prime` the largest
prime ``t < 2^b`` with ``t ≡ 1 (mod 2N)`` (needed for batching). With the defaults this is
a 60-bit ``t`` with 3 bits to spare at ``N = 4096``; measured, a fresh ciphertext survives
``2^21`` doublings (the bound needs ``2^10``).

Examples
--------
>>> ctx = new_context("bfv")
>>> p = context_params(ctx)
>>> p.scheme, p.poly_modulus_degree, p.coeff_modulus_bits, p.data_modulus_bits
('bfv', 4096, 109, 88)
>>> p.plain_modulus.bit_length(), p.plain_modulus % 8192
(60, 1)
>>> pub, params = load_public_context(public_context_bytes(ctx), "bfv")
>>> pub.is_private(), params == p
(False, True)
>>> new_context("bfv", poly_modulus_degree=2048)  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
safeflow.errors.InsecureParameters: poly_modulus_degree 2048 is below 128-bit security; ...
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from functools import cache
from typing import Any, Final

import tenseal as ts  # type: ignore[import-untyped]

from safeflow.errors import InsecureParameters, InvalidParameter, ProtocolError
from safeflow.protocols.encoding import MAX_SITES

#: HomomorphicEncryption.org standard, 128-bit security: N -> max total log2(q).
SECURITY_TABLE: Final[dict[int, int]] = {4096: 109, 8192: 218, 16384: 438, 32768: 881}
SCHEMES: Final = ("bfv", "ckks")
DEFAULT_POLY_MODULUS_DEGREE: Final[dict[str, int]] = {"bfv": 4096, "ckks": 8192}
DEFAULT_COEFF_MOD_BIT_SIZES: Final[tuple[int, ...]] = (56, 32, 21)
#: SEAL's largest plain modulus.
MAX_PLAIN_MODULUS_BITS: Final = 60
#: Ciphertexts one sum may add (one per site).
MAX_ADDITIONS: Final = MAX_SITES
#: Bound on |coefficient| of the key-level noise u·e + e0 + e1·s, per unit of N (6σ clip).
_KEY_NOISE_PER_N: Final = 40
_MIN_PRIME_BITS: Final = 17
_MAX_PRIME_BITS: Final = 60
_MR_BASES: Final = (2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37)


def check_security(scheme: str, poly_modulus_degree: int, coeff_modulus_bits: int) -> None:
    """Raise :class:`~safeflow.errors.InsecureParameters` below 128-bit security.

    Parameters
    ----------
    scheme : {"bfv", "ckks"}
    poly_modulus_degree : int
        The ring degree ``N``.
    coeff_modulus_bits : int
        ``log2`` of the whole coefficient modulus (all primes, the special prime included).

    Examples
    --------
    >>> check_security("ckks", 8192, 218)
    >>> check_security("bfv", 4096, 110)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    safeflow.errors.InsecureParameters: a 110-bit ... (at most 109 bits); use ...
    """
    if scheme not in SCHEMES:
        raise InsecureParameters(
            f"unknown HE scheme {scheme!r}; use 'bfv' (exact, the default) or 'ckks' "
            "(approximate, noise-flooded)"
        )
    n = poly_modulus_degree
    if type(n) is not int or n <= 0 or n & (n - 1):
        raise InvalidParameter(f"poly_modulus_degree must be a power of two; got {n!r}")
    if n < min(SECURITY_TABLE):
        raise InsecureParameters(
            f"poly_modulus_degree {n} is below 128-bit security; use 4096, 8192, 16384 or "
            "32768 (4096 for BFV, 8192 for CKKS)"
        )
    if n not in SECURITY_TABLE:
        raise InvalidParameter(
            f"poly_modulus_degree {n} is not supported; use 4096, 8192, 16384 or 32768"
        )
    limit = SECURITY_TABLE[n]
    if coeff_modulus_bits > limit:
        bigger = [m for m, b in sorted(SECURITY_TABLE.items()) if b >= coeff_modulus_bits]
        fix = f"poly_modulus_degree {bigger[0]} or " if bigger else ""
        raise InsecureParameters(
            f"a {coeff_modulus_bits}-bit coefficient modulus with poly_modulus_degree {n} is "
            f"below 128-bit security (at most {limit} bits); use {fix}fewer/smaller primes"
        )


def is_prime(n: int) -> bool:
    """Deterministic Miller-Rabin primality test for ``0 <= n < 2^64``.

    The first twelve primes as bases are a proof of primality below 3.3·10^24.

    Examples
    --------
    >>> is_prime(1152921504606830593), is_prime(2**61 - 1), is_prime(3215031751)
    (True, True, False)
    """
    if not 0 <= n < 1 << 64:
        raise InvalidParameter(f"is_prime handles 0 <= n < 2^64; got {n}")
    if n < 2:
        return False
    for p in _MR_BASES:
        if n % p == 0:
            return n == p
    d, s = n - 1, 0
    while d % 2 == 0:
        d, s = d // 2, s + 1
    for a in _MR_BASES:
        x = pow(a, d, n)
        if x in (1, n - 1):
            continue
        for _ in range(s - 1):
            x = x * x % n
            if x == n - 1:
                break
        else:
            return False
    return True


@cache
def batching_prime(bits: int, poly_modulus_degree: int) -> int:
    """The largest ``bits``-bit prime ``t ≡ 1 (mod 2N)``: a BFV plain modulus with batching.

    Examples
    --------
    >>> batching_prime(60, 4096)
    1152921504606830593
    >>> batching_prime(20, 4096)
    1032193
    """
    m = 2 * poly_modulus_degree
    if not 1 <= bits <= MAX_PLAIN_MODULUS_BITS or m.bit_length() >= bits:
        raise InvalidParameter(
            f"no {bits}-bit batching prime for poly_modulus_degree {poly_modulus_degree}"
        )
    t = ((1 << bits) - 1) // m * m + 1
    while t >= 1 << (bits - 1):
        if is_prime(t):
            return t
        t -= m
    raise InvalidParameter(
        f"no {bits}-bit batching prime for poly_modulus_degree {poly_modulus_degree}"
    )


def fresh_noise_bound(poly_modulus_degree: int, special_bits: int) -> Fraction:
    """Worst-case ``|coefficient|`` of a fresh BFV encryption's noise (module docstring).

    Examples
    --------
    >>> float(fresh_noise_bound(4096, 21))
    2049.15625
    """
    n = poly_modulus_degree
    return Fraction(n, 2) + 1 + Fraction(_KEY_NOISE_PER_N * n, 1 << (special_bits - 1))


def plain_modulus_bits(poly_modulus_degree: int, coeff_mod_bit_sizes: Sequence[int]) -> int:
    """Bits of the largest BFV plain modulus that survives :data:`MAX_ADDITIONS` additions.

    Uses only the prime sizes: the data modulus is at least ``2^Σ(b-1)`` over the data
    primes, the special prime at least ``2^(b-1)``.

    Examples
    --------
    >>> plain_modulus_bits(4096, (56, 32, 21)), plain_modulus_bits(4096, (36, 36, 37))
    (60, 47)
    """
    *data, special = coeff_mod_bit_sizes
    q_min = 1 << sum(b - 1 for b in data)
    budget = 2 * MAX_ADDITIONS * fresh_noise_bound(poly_modulus_degree, special)
    bits = 0
    while bits < MAX_PLAIN_MODULUS_BITS and (1 << (bits + 1)) * budget <= q_min:
        bits += 1
    return bits


@dataclass(frozen=True)
class HEParams:
    """The public parameters of a context, as read back from it (see :func:`context_params`).

    ``coeff_modulus_bits`` is ``log2`` of the whole modulus (what the standard bounds);
    ``data_modulus_bits`` that of the modulus ciphertexts carry; ``plain_modulus`` is BFV's
    ``t`` (0 for CKKS).
    """

    scheme: str
    poly_modulus_degree: int
    coeff_modulus_bits: int
    data_modulus_bits: int
    plain_modulus: int

    @property
    def slots(self) -> int:
        """Values one ciphertext holds: ``N`` (BFV batching) or ``N/2`` (CKKS)."""
        n = self.poly_modulus_degree
        return n if self.scheme == "bfv" else n // 2

    @property
    def slot_bits(self) -> int:
        """BFV: every sum below ``2^slot_bits`` decrypts exactly (``2^slot_bits < t``)."""
        return self.plain_modulus.bit_length() - 1

    @property
    def special_modulus_bits(self) -> int:
        """Bits of SEAL's special prime (keys only)."""
        return self.coeff_modulus_bits - self.data_modulus_bits


def context_params(ctx: Any) -> HEParams:
    """Read the public parameters of a TenSEAL context (public or secret).

    Examples
    --------
    >>> context_params(new_context("ckks")).slots
    4096
    """
    sc = ctx.seal_context().data
    key, first = sc.key_context_data(), sc.first_context_data()
    kind = key.parms().scheme()
    scheme = next(
        (s.name.lower() for s in (ts.SCHEME_TYPE.BFV, ts.SCHEME_TYPE.CKKS) if kind == s.value),
        "unknown",
    )
    t = 2 * first.plain_upper_half_threshold() - 1 if scheme == "bfv" else 0
    return HEParams(
        scheme,
        key.parms().poly_modulus_degree(),
        key.total_coeff_modulus_bit_count(),
        first.total_coeff_modulus_bit_count(),
        t,
    )


def new_context(
    scheme: str = "bfv",
    *,
    poly_modulus_degree: int | None = None,
    coeff_mod_bit_sizes: Sequence[int] | None = None,
) -> Any:
    """Make a secret-key TenSEAL context (customs only) after the security checks.

    Parameters
    ----------
    scheme : {"bfv", "ckks"}
    poly_modulus_degree : int, optional
        Defaults to 4096 (BFV) or 8192 (CKKS).
    coeff_mod_bit_sizes : sequence of int, optional
        Prime sizes, the last being SEAL's special prime; default ``(56, 32, 21)``.

    Raises
    ------
    InsecureParameters
        Unknown scheme, ``N < 4096`` or a modulus above the 128-bit table.
    InvalidParameter
        Malformed sizes, or a modulus too small for a BFV plain modulus.

    Examples
    --------
    >>> new_context("ckks").is_private()
    True
    """
    n = (
        DEFAULT_POLY_MODULUS_DEGREE.get(scheme, 4096)
        if poly_modulus_degree is None
        else poly_modulus_degree
    )
    bits = tuple(
        DEFAULT_COEFF_MOD_BIT_SIZES if coeff_mod_bit_sizes is None else coeff_mod_bit_sizes
    )
    ok = len(bits) >= 2 and all(
        type(b) is int and _MIN_PRIME_BITS <= b <= _MAX_PRIME_BITS for b in bits
    )
    check_security(scheme, n, sum(bits) if ok else 0)
    if not ok:
        raise InvalidParameter(
            f"coeff_mod_bit_sizes must be at least two prime sizes of {_MIN_PRIME_BITS}.."
            f"{_MAX_PRIME_BITS} bits (the last is the special prime); got {list(bits)}. "
            f"The default is {list(DEFAULT_COEFF_MOD_BIT_SIZES)}"
        )
    try:
        if scheme == "bfv":
            t_bits = plain_modulus_bits(n, bits)
            if t_bits < 20:
                raise InvalidParameter(
                    f"coeff_mod_bit_sizes {list(bits)} leave room for a {t_bits}-bit plain "
                    "modulus only; use larger data primes, e.g. the default "
                    f"{list(DEFAULT_COEFF_MOD_BIT_SIZES)}"
                )
            ctx = ts.context(
                ts.SCHEME_TYPE.BFV,
                n,
                plain_modulus=batching_prime(t_bits, n),
                coeff_mod_bit_sizes=list(bits),
            )
        else:
            ctx = ts.context(ts.SCHEME_TYPE.CKKS, n, coeff_mod_bit_sizes=list(bits))
            ctx.global_scale = 2.0**40
    except (ValueError, RuntimeError) as e:
        raise InvalidParameter(
            f"TenSEAL refused poly_modulus_degree {n} with coeff_mod_bit_sizes {list(bits)} "
            f"({e}); use the defaults"
        ) from e
    return ctx


def public_context_bytes(ctx: Any) -> bytes:
    """Serialise the public part of a context: parameters and public key, no other key.

    Examples
    --------
    >>> import tenseal as ts
    >>> ts.context_from(public_context_bytes(new_context("bfv"))).is_private()
    False
    """
    return bytes(
        ctx.serialize(
            save_public_key=True,
            save_secret_key=False,
            save_galois_keys=False,
            save_relin_keys=False,
        )
    )


def load_public_context(blob: bytes | None, scheme: str) -> tuple[Any, HEParams]:
    """Load and check a context received from customs (the site's side).

    Refuses, before anything is encrypted: bytes that are not a context; a context with
    its secret key (:class:`~safeflow.errors.ProtocolError`); another scheme than
    announced; parameters below 128-bit security
    (:class:`~safeflow.errors.InsecureParameters`); a missing or transparent public key;
    a BFV plain modulus that is not a batching prime of at most 60 bits.

    Examples
    --------
    >>> secret = new_context("bfv")
    >>> load_public_context(secret.serialize(save_secret_key=True), "bfv")
    Traceback (most recent call last):
    ...
    safeflow.errors.ProtocolError: customs sent a context with its secret key; refusing
    """
    if not isinstance(blob, bytes | bytearray):
        raise ProtocolError("customs sent no context bytes; refusing")
    try:
        ctx = ts.context_from(bytes(blob))
        private = ctx.is_private()
    except Exception as e:  # TenSEAL raises ValueError, RuntimeError, ... on bad bytes
        raise ProtocolError(
            "customs sent bytes that are not a TenSEAL context; refusing. Check that every "
            "party runs the same safeflow and TenSEAL versions"
        ) from e
    if private:
        raise ProtocolError("customs sent a context with its secret key; refusing")
    params = context_params(ctx)
    if params.scheme != scheme:
        raise ProtocolError(
            f"customs announced scheme {scheme!r} but sent a {params.scheme!r} context; refusing"
        )
    check_security(params.scheme, params.poly_modulus_degree, params.coeff_modulus_bits)
    if not ctx.has_public_key() or ctx.public_key().data.data().is_transparent():
        raise ProtocolError("customs sent a context without a usable public key; refusing")
    if scheme == "bfv":
        t, n = params.plain_modulus, params.poly_modulus_degree
        if t.bit_length() > MAX_PLAIN_MODULUS_BITS or t % (2 * n) != 1 or not is_prime(t):
            raise ProtocolError(
                "customs sent a BFV context whose plain modulus is not a batching prime; refusing"
            )
    return ctx, params


def load_vector(
    ctx: Any,
    blob: bytes,
    *,
    scheme: str,
    size: int,
    scale: float | None = None,
    source: str = "ciphertext",
) -> Any:
    """Parse untrusted ciphertext bytes into a TenSEAL vector, or raise ``ProtocolError``.

    Accepts only what a conforming site sends: one fresh two-polynomial, non-transparent
    ciphertext of this context's data level holding ``size`` values (and, for CKKS,
    exactly ``scale``). TenSEAL's own exceptions are wrapped.

    Examples
    --------
    >>> import tenseal as ts
    >>> ctx = new_context("bfv")
    >>> blob = ts.bfv_vector(ctx, [1, 2, 3]).serialize()
    >>> load_vector(ctx, blob, scheme="bfv", size=3).decrypt()
    [1, 2, 3]
    >>> load_vector(ctx, blob[:100], scheme="bfv", size=3, source="site 'a' ct:0")
    ... # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    safeflow.errors.ProtocolError: site 'a' ct:0 is not a valid BFV ciphertext ...
    """

    def bad(why: str) -> ProtocolError:
        return ProtocolError(
            f"{source} is not a valid {scheme.upper()} ciphertext of this session ({why}); "
            "the sender is not a conforming safeflow party or the bytes were damaged. "
            "Nothing was summed; drop the site or rerun the round"
        )

    if not isinstance(blob, bytes | bytearray):
        raise bad("not bytes")
    load = ts.bfv_vector_from if scheme == "bfv" else ts.ckks_vector_from
    try:
        vec = load(ctx, bytes(blob))
        cts, n = vec.ciphertext(), vec.size()
    except Exception as e:  # TenSEAL raises ValueError, RuntimeError, ... on bad bytes
        raise bad("does not parse") from e
    if n != size:
        raise bad(f"holds {n} values, the packing needs {size}")
    if len(cts) != 1:
        raise bad("not a single ciphertext")
    ct = cts[0]
    if ct.size() != 2 or ct.is_transparent():
        raise bad("not a fresh encryption")
    if ct.parms_id() != ctx.seal_context().data.first_parms_id():
        raise bad("wrong modulus level")
    if scale is not None and ct.scale != scale:
        raise bad("wrong CKKS scale")
    return vec


__all__ = [
    "DEFAULT_COEFF_MOD_BIT_SIZES",
    "DEFAULT_POLY_MODULUS_DEGREE",
    "MAX_ADDITIONS",
    "MAX_PLAIN_MODULUS_BITS",
    "SCHEMES",
    "SECURITY_TABLE",
    "HEParams",
    "batching_prime",
    "check_security",
    "context_params",
    "fresh_noise_bound",
    "is_prime",
    "load_public_context",
    "load_vector",
    "new_context",
    "plain_modulus_bits",
    "public_context_bytes",
]
