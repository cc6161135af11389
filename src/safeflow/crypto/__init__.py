"""Cryptographic building blocks of safeflow's protocols.

Key agreement and signatures (:mod:`.keys`), the mask generator (:mod:`.prg`), Shamir
secret sharing (:mod:`.shamir`) and authenticated encryption (:mod:`.aead`). All failures
are :class:`~safeflow.errors.CryptoError` subclasses or
:class:`~safeflow.errors.InvalidParameter`.

Examples
--------
>>> import random
>>> from safeflow import crypto
>>> rng = random.Random(0).randbytes
>>> a, b = crypto.X25519KeyPair.generate(rng), crypto.X25519KeyPair.generate(rng)
>>> key = crypto.derive_key(a.agree(b.public_bytes), context=b"doc/example")
>>> crypto.open_sealed(key, crypto.seal(key, b"hi", aad=b"a->b"), aad=b"a->b")
b'hi'
"""

from safeflow.crypto.aead import open_sealed, seal
from safeflow.crypto.keys import (
    PROTOCOL_SALT,
    SigningKey,
    VerifyKey,
    X25519KeyPair,
    derive_key,
    hkdf_sha256,
    x25519,
)
from safeflow.crypto.prg import aes_ctr_keystream, mask_stream
from safeflow.crypto.shamir import Share, combine_shares, split_secret

__all__ = [
    "PROTOCOL_SALT",
    "Share",
    "SigningKey",
    "VerifyKey",
    "X25519KeyPair",
    "aes_ctr_keystream",
    "combine_shares",
    "derive_key",
    "hkdf_sha256",
    "mask_stream",
    "open_sealed",
    "seal",
    "split_secret",
    "x25519",
]
