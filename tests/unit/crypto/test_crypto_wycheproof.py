"""Every Project Wycheproof vector for X25519, HKDF-SHA256 and Ed25519 (tests/data/wycheproof)."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from safeflow.crypto import VerifyKey, X25519KeyPair, hkdf_sha256, x25519
from safeflow.errors import CryptoError, InvalidKey, InvalidParameter

WYCHEPROOF = Path(__file__).resolve().parents[2] / "data" / "wycheproof"


@cache
def load(name: str) -> dict[str, Any]:
    with (WYCHEPROOF / name).open(encoding="utf-8") as f:
        data: dict[str, Any] = json.load(f)
    return data


def cases(name: str) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """All (group, test) pairs of a Wycheproof file, in file order."""
    return [(group, test) for group in load(name)["testGroups"] for test in group["tests"]]


def params(name: str) -> list[Any]:
    return [pytest.param(g, t, id=f"tcId{t['tcId']}") for g, t in cases(name)]


X25519_FILE = "x25519_test.json"
HKDF_FILE = "hkdf_sha256_test.json"
ED25519_FILE = "ed25519_test.json"


@pytest.mark.parametrize(
    ("name", "algorithm", "expected"),
    [(X25519_FILE, "XDH", 518), (HKDF_FILE, "HKDF-SHA-256", 86), (ED25519_FILE, "EDDSA", 151)],
)
def test_every_vector_is_collected(name: str, algorithm: str, expected: int) -> None:
    data = load(name)
    ids = [t["tcId"] for _, t in cases(name)]
    assert data["algorithm"] == algorithm
    assert data["numberOfTests"] == expected
    assert len(ids) == data["numberOfTests"]
    assert len(set(ids)) == len(ids)
    assert len(params(name)) == data["numberOfTests"]


# ---------------------------------------------------------------------------------- X25519


@pytest.mark.parametrize(("group", "test"), params(X25519_FILE))
def test_x25519_wycheproof(group: dict[str, Any], test: dict[str, Any]) -> None:
    assert group["curve"] == "curve25519"
    private = bytes.fromhex(test["private"])
    public = bytes.fromhex(test["public"])
    shared = bytes.fromhex(test["shared"])
    if test["result"] == "invalid" or shared == bytes(32):
        # Invalid inputs, and the acceptable low-order / zero-shared-secret cases: refused.
        assert test["result"] in {"invalid", "acceptable"}
        with pytest.raises(InvalidKey, match="low-order point"):
            x25519(private, public)
        with pytest.raises(InvalidKey, match="low-order point"):
            X25519KeyPair.from_private_bytes(private).agree(public)
    else:
        # Valid and acceptable (twist, non-canonical) cases: the exact RFC 7748 result.
        assert test["result"] in {"valid", "acceptable"}
        assert x25519(private, public) == shared
        assert X25519KeyPair.from_private_bytes(private).agree(public) == shared


def test_x25519_policy_covers_the_flags_we_claim() -> None:
    """The file exercises what the docstring promises: non-canonical and twist keys
    accepted with the exact result, every zero-shared-secret case refused."""
    flags: dict[str, set[bool]] = {}
    for _, test in cases(X25519_FILE):
        for flag in test["flags"]:
            flags.setdefault(flag, set()).add(bytes.fromhex(test["shared"]) == bytes(32))
    assert flags["NonCanonicalPublic"] == {True, False}
    assert False in flags["Twist"]  # twist points with a non-zero result exist (accepted)
    assert flags["ZeroSharedSecret"] == {True}
    assert flags["LowOrderPublic"] == {True}


# ------------------------------------------------------------------------------------ HKDF


@pytest.mark.parametrize(("group", "test"), params(HKDF_FILE))
def test_hkdf_sha256_wycheproof(group: dict[str, Any], test: dict[str, Any]) -> None:
    args = {
        "salt": bytes.fromhex(test["salt"]),
        "info": bytes.fromhex(test["info"]),
        "length": test["size"],
    }
    ikm = bytes.fromhex(test["ikm"])
    assert group["keySize"] == 8 * len(ikm)
    if test["result"] == "valid":
        assert hkdf_sha256(ikm, **args) == bytes.fromhex(test["okm"])
    else:
        assert test["result"] == "invalid"
        with pytest.raises(InvalidParameter, match="HKDF-SHA256 limit"):
            hkdf_sha256(ikm, **args)


# --------------------------------------------------------------------------------- Ed25519


@pytest.mark.parametrize(("group", "test"), params(ED25519_FILE))
def test_ed25519_wycheproof(group: dict[str, Any], test: dict[str, Any]) -> None:
    assert group["publicKey"]["curve"] == "edwards25519"
    public = bytes.fromhex(group["publicKey"]["pk"])
    message = bytes.fromhex(test["msg"])
    signature = bytes.fromhex(test["sig"])
    if test["result"] == "valid":
        assert VerifyKey.from_bytes(public).verify(message, signature) is None
    else:
        assert test["result"] == "invalid"
        # A malformed key would raise InvalidKey, itself a CryptoError; nothing else may leak.
        with pytest.raises(CryptoError):
            VerifyKey.from_bytes(public).verify(message, signature)
