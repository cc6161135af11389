"""Key agreement (X25519), key derivation (HKDF-SHA256) and signatures (Ed25519).

These are thin, checked wrappers around pycryptodome. Every input is validated first, and
every failure is a :class:`~safeflow.errors.CryptoError` (or an
:class:`~safeflow.errors.InvalidParameter` for a bad argument), never a bare ``ValueError``
from the library underneath.

Protocols should not use the raw :func:`x25519` output as a key: they call
:func:`derive_key` on it, which binds the key to the safeflow protocol and to a context.

Examples
--------
>>> import random
>>> from safeflow.crypto import X25519KeyPair, derive_key
>>> rng = random.Random(7).randbytes
>>> alice, bob = X25519KeyPair.generate(rng), X25519KeyPair.generate(rng)
>>> secret = alice.agree(bob.public_bytes)
>>> secret == bob.agree(alice.public_bytes)
True
>>> len(derive_key(secret, context=b"secagg/mask/alice-bob"))
32
"""

from __future__ import annotations

import hmac
import operator
from collections.abc import Callable
from typing import Final, NoReturn

from Crypto.Hash import SHA256
from Crypto.Protocol.DH import import_x25519_private_key, import_x25519_public_key, key_agreement
from Crypto.Protocol.KDF import HKDF
from Crypto.PublicKey.ECC import EccKey
from Crypto.Random import get_random_bytes
from Crypto.Signature import eddsa

from safeflow.errors import CryptoError, InvalidKey, InvalidParameter

#: Draws ``n`` random bytes; protocols inject one so tests are reproducible (STYLE.md item 7).
RandomBytes = Callable[[int], bytes]

#: The HKDF salt of :func:`derive_key`; it changes only with an incompatible protocol version.
PROTOCOL_SALT: Final = b"safeflow/v1"

X25519_KEY_SIZE: Final = 32
ED25519_SEED_SIZE: Final = 32
ED25519_PUBLIC_KEY_SIZE: Final = 32
ED25519_SIGNATURE_SIZE: Final = 64
HKDF_SHA256_MAX_LENGTH: Final = 255 * 32

_LOW_ORDER_HINT = (
    "it is a low-order point, so the shared secret would be all zero; "
    "refuse this peer key and ask the peer to send a freshly generated X25519 public key"
)


def _as_bytes(value: object, name: str) -> bytes:
    """Return ``value`` as ``bytes``, or raise InvalidParameter if it is not bytes-like."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, bytearray | memoryview):
        return bytes(value)
    raise InvalidParameter(f"{name} must be bytes; got {type(value).__name__}")


def _as_int(value: object, name: str) -> int:
    """Return ``value`` as an ``int`` (not a bool), or raise InvalidParameter."""
    if isinstance(value, bool):
        raise InvalidParameter(f"{name} must be an integer; got a bool")
    try:
        return operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        raise InvalidParameter(f"{name} must be an integer; got {type(value).__name__}") from None


def _key_bytes(value: object, name: str, size: int, hint: str) -> bytes:
    """Return ``value`` as bytes of exactly ``size`` bytes, or raise InvalidKey."""
    if not isinstance(value, bytes | bytearray | memoryview):
        raise InvalidKey(f"{name} must be {size} bytes; got {type(value).__name__}. {hint}")
    data = bytes(value)
    if len(data) != size:
        raise InvalidKey(f"{name} must be {size} bytes; got {len(data)}. {hint}")
    return data


def _draw(rng: RandomBytes | None, n: int) -> bytes:
    """Draw ``n`` bytes from ``rng`` (OS randomness when None) and check what came back."""
    data = get_random_bytes(n) if rng is None else rng(n)
    if not isinstance(data, bytes | bytearray) or len(data) != n:
        got = len(data) if isinstance(data, bytes | bytearray) else type(data).__name__
        raise InvalidParameter(f"rng({n}) must return exactly {n} bytes; got {got}")
    return bytes(data)


# --------------------------------------------------------------------------------------------
# X25519
# --------------------------------------------------------------------------------------------

_X25519_HINT = "Pass the raw 32-byte key of RFC 7748, not a PEM, DER or hex encoding."


def _raise_low_order(name: str) -> NoReturn:
    raise InvalidKey(f"X25519 {name} rejected: {_LOW_ORDER_HINT}")


def x25519(private_key: bytes, public_key: bytes) -> bytes:
    """Compute the raw X25519 function of RFC 7748, refusing low-order public keys.

    Parameters
    ----------
    private_key : bytes
        Our 32-byte private scalar. It is clamped as RFC 7748 section 5 requires, so every
        32-byte string is a valid private key.
    public_key : bytes
        The peer's 32-byte u-coordinate.

    Returns
    -------
    bytes
        The 32-byte shared secret. Use :func:`derive_key` on it; never use it as a key.

    Raises
    ------
    InvalidKey
        If either key is not exactly 32 bytes, or the public key is a low-order point
        (the shared secret would be all zero).

    Notes
    -----
    Public key policy, checked against every vector of Wycheproof ``x25519_test.json``:

    * **Non-canonical encodings are accepted as RFC 7748 section 5 defines them**: the high
      bit of the last byte is ignored and a u-coordinate ``>= p = 2**255 - 19`` is reduced
      modulo ``p`` (section 7 recommends accepting them).
    * **Points on the twist are accepted**; X25519 is defined for them and its result is
      computed exactly.
    * **Low-order points are rejected** (contributory behaviour, RFC 7748 section 6.1): the
      points 0, 1, -1 and the two points of order 8, in any encoding, whose shared secret
      is all zero. As a second line of defence an all-zero result is also rejected.

    Examples
    --------
    >>> alice = bytes.fromhex(
    ...     "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")
    >>> bob_public = bytes.fromhex(
    ...     "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f")
    >>> x25519(alice, bob_public).hex()
    '4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742'
    >>> x25519(alice, bytes(32))
    Traceback (most recent call last):
    ...
    safeflow.errors.InvalidKey: X25519 public key rejected: it is a low-order point, ...
    """
    private = _key_bytes(private_key, "X25519 private key", X25519_KEY_SIZE, _X25519_HINT)
    public = _key_bytes(public_key, "X25519 public key", X25519_KEY_SIZE, _X25519_HINT)
    return _x25519(import_x25519_private_key(private), public)


def _x25519(private: EccKey, public: bytes) -> bytes:
    """X25519 with an imported private key (validated 32-byte ``public``)."""
    try:
        peer = import_x25519_public_key(public)
        shared = key_agreement(static_priv=private, static_pub=peer, kdf=bytes)
    except ValueError:
        # pycryptodome refuses the low-order points (in any encoding) and a point at
        # infinity: the only reasons a 32-byte public key can fail here.
        _raise_low_order("public key")
    if hmac.compare_digest(shared, bytes(X25519_KEY_SIZE)):
        _raise_low_order("public key")
    return shared


class X25519KeyPair:
    """An X25519 key pair; immutable, and its ``repr`` never shows the private key.

    Build one with :meth:`generate` or :meth:`from_private_bytes`.

    Examples
    --------
    >>> import random
    >>> pair = X25519KeyPair.generate(random.Random(0).randbytes)
    >>> pair
    X25519KeyPair(public=85b32baf...)
    >>> len(pair.public_bytes)
    32
    """

    __slots__ = ("_key", "_private", "_public")

    _key: EccKey
    _private: bytes
    _public: bytes

    def __init__(self, private_key: bytes) -> None:
        private = _key_bytes(private_key, "X25519 private key", X25519_KEY_SIZE, _X25519_HINT)
        key = import_x25519_private_key(private)
        object.__setattr__(self, "_private", private)
        object.__setattr__(self, "_key", key)
        object.__setattr__(self, "_public", key.public_key().export_key(format="raw"))

    @classmethod
    def generate(cls, rng: RandomBytes | None = None) -> X25519KeyPair:
        """Generate a key pair from 32 random bytes.

        Parameters
        ----------
        rng : callable, optional
            ``rng(n)`` returns ``n`` random bytes. Default: the operating system's CSPRNG.
            Pass a seeded one only in tests.

        Returns
        -------
        X25519KeyPair

        Examples
        --------
        >>> import random
        >>> a = X25519KeyPair.generate(random.Random(1).randbytes)
        >>> b = X25519KeyPair.generate(random.Random(1).randbytes)
        >>> a == b
        True
        >>> X25519KeyPair.generate() == a
        False
        """
        return cls(_draw(rng, X25519_KEY_SIZE))

    @classmethod
    def from_private_bytes(cls, private_key: bytes) -> X25519KeyPair:
        """Load a key pair from its 32-byte private key.

        Parameters
        ----------
        private_key : bytes
            32 bytes, as returned by :meth:`to_private_bytes`.

        Returns
        -------
        X25519KeyPair

        Raises
        ------
        InvalidKey
            If ``private_key`` is not 32 bytes.

        Examples
        --------
        >>> pair = X25519KeyPair.from_private_bytes(bytes.fromhex(
        ...     "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a"))
        >>> pair.public_bytes.hex()
        '8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a'
        """
        return cls(private_key)

    @property
    def public_bytes(self) -> bytes:
        """The 32-byte public key, safe to send to peers.

        Examples
        --------
        >>> X25519KeyPair.from_private_bytes(bytes(32)).public_bytes.hex()[:16]
        '2fe57da347cd6243'
        """
        return self._public

    def to_private_bytes(self) -> bytes:
        """Return the 32-byte private key, for storage in site configuration only.

        Examples
        --------
        >>> X25519KeyPair.from_private_bytes(bytes(32)).to_private_bytes() == bytes(32)
        True
        """
        return self._private

    def agree(self, peer_public: bytes) -> bytes:
        """Compute the X25519 shared secret with a peer's public key.

        Parameters
        ----------
        peer_public : bytes
            The peer's 32-byte public key.

        Returns
        -------
        bytes
            32 bytes; pass them to :func:`derive_key`.

        Raises
        ------
        InvalidKey
            If ``peer_public`` is not 32 bytes or is a low-order point (see :func:`x25519`).

        Examples
        --------
        >>> import random
        >>> rng = random.Random(3).randbytes
        >>> a, b = X25519KeyPair.generate(rng), X25519KeyPair.generate(rng)
        >>> a.agree(b.public_bytes) == b.agree(a.public_bytes)
        True
        """
        public = _key_bytes(peer_public, "X25519 public key", X25519_KEY_SIZE, _X25519_HINT)
        return _x25519(self._key, public)

    def __setattr__(self, name: str, value: object) -> NoReturn:
        raise AttributeError(f"{type(self).__name__} is immutable")

    def __delattr__(self, name: str) -> NoReturn:
        raise AttributeError(f"{type(self).__name__} is immutable")

    def __reduce__(self) -> NoReturn:
        raise CryptoError("private keys are never pickled or copied; keep them in a site's "
                          "state directory (safeflow.policy.keystore)")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, X25519KeyPair):
            return NotImplemented
        return hmac.compare_digest(self._private, other._private)

    def __hash__(self) -> int:
        return hash((X25519KeyPair, self._public))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(public={self._public.hex()[:8]}...)"


# --------------------------------------------------------------------------------------------
# HKDF
# --------------------------------------------------------------------------------------------


def hkdf_sha256(ikm: bytes, *, salt: bytes, info: bytes, length: int) -> bytes:
    """HKDF with SHA-256 (RFC 5869): extract with ``salt``, expand with ``info``.

    Parameters
    ----------
    ikm : bytes
        Input keying material.
    salt : bytes
        Extraction salt; empty means 32 zero bytes, as RFC 5869 specifies.
    info : bytes
        Context and application specific information.
    length : int
        Output length in bytes, from 1 to 8160 (255 × 32).

    Returns
    -------
    bytes
        ``length`` bytes of output keying material.

    Raises
    ------
    InvalidParameter
        If ``length`` is outside 1..8160 or an argument is not bytes.

    Examples
    --------
    RFC 5869, test case 1:

    >>> hkdf_sha256(bytes.fromhex("0b" * 22), salt=bytes.fromhex("000102030405060708090a0b0c"),
    ...             info=bytes.fromhex("f0f1f2f3f4f5f6f7f8f9"), length=42).hex()[:32]
    '3cb25f25faacd57a90434f64d0362f2a'
    >>> hkdf_sha256(b"k", salt=b"", info=b"", length=8161)
    Traceback (most recent call last):
    ...
    safeflow.errors.InvalidParameter: length must be between 1 and 8160 bytes ...
    """
    ikm = _as_bytes(ikm, "ikm")
    salt = _as_bytes(salt, "salt")
    info = _as_bytes(info, "info")
    length = _as_int(length, "length")
    if not 1 <= length <= HKDF_SHA256_MAX_LENGTH:
        raise InvalidParameter(
            f"length must be between 1 and {HKDF_SHA256_MAX_LENGTH} bytes "
            f"(255 × 32, the HKDF-SHA256 limit); got {length}. "
            "Derive several keys with distinct info strings instead."
        )
    return HKDF(ikm, length, salt, SHA256, context=info)


def derive_key(shared_secret: bytes, *, context: bytes, length: int = 32) -> bytes:
    """Derive a protocol key from a shared secret: HKDF-SHA256 with the safeflow salt.

    The salt is :data:`PROTOCOL_SALT` (``b"safeflow/v1"``) and ``info`` is ``context``, so
    keys for different purposes (mask seeds, envelope keys, ...) are independent.

    Parameters
    ----------
    shared_secret : bytes
        At least 16 bytes of secret keying material, e.g. an :func:`x25519` result.
    context : bytes
        Non-empty label naming what the key is for and between whom, e.g.
        ``b"secagg/mask/run-7/site-a/site-b"``.
    length : int, default 32
        Key length in bytes, 1..8160.

    Returns
    -------
    bytes

    Raises
    ------
    InvalidParameter
        If ``shared_secret`` is shorter than 16 bytes, ``context`` is empty or ``length``
        is out of range.

    Examples
    --------
    >>> k1 = derive_key(bytes(range(32)), context=b"secagg/mask")
    >>> k2 = derive_key(bytes(range(32)), context=b"envelope")
    >>> len(k1), k1 == k2
    (32, False)
    """
    shared_secret = _as_bytes(shared_secret, "shared_secret")
    context = _as_bytes(context, "context")
    if len(shared_secret) < 16:
        raise InvalidParameter(
            f"shared_secret must be at least 16 bytes of secret key material; "
            f"got {len(shared_secret)}. Pass the output of x25519 / X25519KeyPair.agree."
        )
    if not context:
        raise InvalidParameter(
            "context must not be empty: name what the key is for, e.g. b'secagg/mask/<run>'"
        )
    return hkdf_sha256(shared_secret, salt=PROTOCOL_SALT, info=context, length=length)


# --------------------------------------------------------------------------------------------
# Ed25519
# --------------------------------------------------------------------------------------------

_ED25519_HINT = "Pass the raw 32-byte key of RFC 8032, not a PEM, DER or hex encoding."
_BAD_SIGNATURE = (
    "signature does not verify: it was not made by this key over this message, "
    "or it was altered in transit; discard the message"
)


_P25519: Final = 2**255 - 19


def _canonical_point(encoded: bytes) -> bool:
    """RFC 8032 5.1.3 canonical encoding: ``y < p``, and no sign bit on ``x = 0``.

    Checked here so that signatures stay non-malleable whatever the pycryptodome release
    (3.x accepts a non-canonical ``R``: Wycheproof ed25519 tcId 151).

    Examples
    --------
    >>> _canonical_point(bytes(32)), _canonical_point(bytes([255] * 31 + [127]))
    (True, False)
    """
    y = int.from_bytes(encoded, "little") & ((1 << 255) - 1)
    sign = encoded[31] >> 7
    if y >= _P25519:
        return False
    # x = 0 only for y = 1 and y = p - 1; a set sign bit there encodes "-0"
    return not (sign and y in (1, _P25519 - 1))


class VerifyKey:
    """An Ed25519 public key (RFC 8032) that checks signatures.

    Examples
    --------
    >>> vk = VerifyKey.from_bytes(bytes.fromhex(
    ...     "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"))
    >>> vk
    VerifyKey(d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a)
    """

    __slots__ = ("_encoded", "_verifier")

    _encoded: bytes
    _verifier: eddsa.EdDSASigScheme

    def __init__(self, public_key: bytes) -> None:
        encoded = _key_bytes(
            public_key, "Ed25519 public key", ED25519_PUBLIC_KEY_SIZE, _ED25519_HINT
        )
        try:
            if not _canonical_point(encoded):
                raise ValueError("non-canonical encoding")
            key = eddsa.import_public_key(encoded)
        except ValueError:
            raise InvalidKey(
                "Ed25519 public key is not the encoding of a curve point; "
                "check that the key was copied intact and is an Ed25519 (not X25519) key"
            ) from None
        object.__setattr__(self, "_encoded", encoded)
        object.__setattr__(self, "_verifier", eddsa.new(key, "rfc8032"))

    @classmethod
    def from_bytes(cls, public_key: bytes) -> VerifyKey:
        """Load a verify key from its 32-byte RFC 8032 encoding.

        Parameters
        ----------
        public_key : bytes
            32 bytes.

        Returns
        -------
        VerifyKey

        Raises
        ------
        InvalidKey
            If ``public_key`` is not 32 bytes or does not encode a curve point.

        Examples
        --------
        >>> VerifyKey.from_bytes(bytes(31))
        Traceback (most recent call last):
        ...
        safeflow.errors.InvalidKey: Ed25519 public key must be 32 bytes; got 31. ...
        """
        return cls(public_key)

    def to_bytes(self) -> bytes:
        """Return the 32-byte encoding.

        Examples
        --------
        >>> sk = SigningKey.from_bytes(bytes(32))
        >>> VerifyKey.from_bytes(sk.verify_key.to_bytes()) == sk.verify_key
        True
        """
        return self._encoded

    def verify(self, message: bytes, signature: bytes) -> None:
        """Check an Ed25519 signature; return None if it is valid, raise otherwise.

        Verification follows RFC 8032 section 5.1.7: ``S`` must be below the group order,
        ``R`` must be a canonical point encoding and the signature exactly 64 bytes
        (signatures are not malleable).

        Parameters
        ----------
        message : bytes
        signature : bytes
            64 bytes.

        Raises
        ------
        CryptoError
            If the signature does not verify for this key and message.

        Examples
        --------
        >>> sk = SigningKey.from_bytes(bytes(32))
        >>> sig = sk.sign(b"hello")
        >>> sk.verify_key.verify(b"hello", sig)
        >>> sk.verify_key.verify(b"hellO", sig)
        Traceback (most recent call last):
        ...
        safeflow.errors.CryptoError: signature does not verify: ...
        """
        message = _as_bytes(message, "message")
        signature = _as_bytes(signature, "signature")
        if len(signature) != ED25519_SIGNATURE_SIZE or not _canonical_point(signature[:32]):
            raise CryptoError(_BAD_SIGNATURE)
        try:
            self._verifier.verify(message, signature)
        except ValueError:
            raise CryptoError(_BAD_SIGNATURE) from None

    def __setattr__(self, name: str, value: object) -> NoReturn:
        raise AttributeError(f"{type(self).__name__} is immutable")

    def __delattr__(self, name: str) -> NoReturn:
        raise AttributeError(f"{type(self).__name__} is immutable")

    def __reduce__(self) -> tuple[type[VerifyKey], tuple[bytes]]:
        return (type(self), (self._encoded,))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, VerifyKey):
            return NotImplemented
        return self._encoded == other._encoded

    def __hash__(self) -> int:
        return hash((VerifyKey, self._encoded))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._encoded.hex()})"


class SigningKey:
    """An Ed25519 private key (RFC 8032); its ``repr`` shows only the public half.

    Examples
    --------
    >>> import random
    >>> sk = SigningKey.generate(random.Random(0).randbytes)
    >>> sk
    SigningKey(verify_key=f8d1c598...)
    >>> len(sk.sign(b"message"))
    64
    """

    __slots__ = ("_seed", "_signer", "_verify_key")

    _seed: bytes
    _signer: eddsa.EdDSASigScheme
    _verify_key: VerifyKey

    def __init__(self, seed: bytes) -> None:
        seed = _key_bytes(seed, "Ed25519 private key seed", ED25519_SEED_SIZE, _ED25519_HINT)
        key = eddsa.import_private_key(seed)
        object.__setattr__(self, "_seed", seed)
        object.__setattr__(self, "_signer", eddsa.new(key, "rfc8032"))
        object.__setattr__(
            self, "_verify_key", VerifyKey(key.public_key().export_key(format="raw"))
        )

    @classmethod
    def generate(cls, rng: RandomBytes | None = None) -> SigningKey:
        """Generate a signing key from a 32-byte random seed.

        Parameters
        ----------
        rng : callable, optional
            ``rng(n)`` returns ``n`` random bytes. Default: the operating system's CSPRNG.

        Returns
        -------
        SigningKey

        Examples
        --------
        >>> import random
        >>> SigningKey.generate(random.Random(5).randbytes) == SigningKey.generate(
        ...     random.Random(5).randbytes)
        True
        """
        return cls(_draw(rng, ED25519_SEED_SIZE))

    @classmethod
    def from_bytes(cls, seed: bytes) -> SigningKey:
        """Load a signing key from its 32-byte RFC 8032 seed.

        Parameters
        ----------
        seed : bytes
            32 bytes, as returned by :meth:`to_bytes`.

        Returns
        -------
        SigningKey

        Raises
        ------
        InvalidKey
            If ``seed`` is not 32 bytes.

        Examples
        --------
        RFC 8032 section 7.1, test 1:

        >>> sk = SigningKey.from_bytes(bytes.fromhex(
        ...     "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"))
        >>> sk.verify_key.to_bytes().hex()
        'd75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a'
        """
        return cls(seed)

    @property
    def verify_key(self) -> VerifyKey:
        """The matching public :class:`VerifyKey`.

        Examples
        --------
        >>> SigningKey.from_bytes(bytes(32)).verify_key.to_bytes().hex()[:16]
        '3b6a27bcceb6a42d'
        """
        return self._verify_key

    def to_bytes(self) -> bytes:
        """Return the 32-byte seed, for storage in site configuration only.

        Examples
        --------
        >>> SigningKey.from_bytes(bytes(32)).to_bytes() == bytes(32)
        True
        """
        return self._seed

    def sign(self, message: bytes) -> bytes:
        """Sign ``message`` (pure Ed25519, deterministic).

        Parameters
        ----------
        message : bytes

        Returns
        -------
        bytes
            The 64-byte signature ``R || S``.

        Examples
        --------
        RFC 8032 section 7.1, test 1 (empty message):

        >>> sk = SigningKey.from_bytes(bytes.fromhex(
        ...     "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"))
        >>> sk.sign(b"").hex()[:32]
        'e5564300c360ac729086e2cc806e828a'
        """
        message = _as_bytes(message, "message")
        return self._signer.sign(message)

    def __setattr__(self, name: str, value: object) -> NoReturn:
        raise AttributeError(f"{type(self).__name__} is immutable")

    def __delattr__(self, name: str) -> NoReturn:
        raise AttributeError(f"{type(self).__name__} is immutable")

    def __reduce__(self) -> NoReturn:
        raise CryptoError("private keys are never pickled or copied; keep them in a site's "
                          "state directory (safeflow.policy.keystore)")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SigningKey):
            return NotImplemented
        return hmac.compare_digest(self._seed, other._seed)

    def __hash__(self) -> int:
        return hash((SigningKey, self._verify_key))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(verify_key={self._verify_key.to_bytes().hex()[:8]}...)"


__all__ = [
    "PROTOCOL_SALT",
    "RandomBytes",
    "SigningKey",
    "VerifyKey",
    "X25519KeyPair",
    "derive_key",
    "hkdf_sha256",
    "x25519",
]
