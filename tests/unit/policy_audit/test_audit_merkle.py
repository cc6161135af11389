"""RFC 6962 / RFC 9162 Merkle trees: roots against an independent recursive MTH, proofs that
verify, and every mutation of a valid proof rejected (tree sizes 1..256)."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from safeflow.crypto.keys import SigningKey
from safeflow.errors import InvalidParameter, VerificationError
from safeflow.policy.audit import AuditLog
from safeflow.policy.merkle import (
    EMPTY_ROOT,
    consistency_path,
    inclusion_path,
    leaf_hash,
    merkle_root,
    verify_consistency,
    verify_inclusion,
)

MAX = 256


# ------------------------------------------------------------------ independent reference


def ref_mth(entries: list[bytes]) -> bytes:
    """RFC 6962 section 2.1, transcribed literally (hashes entries, not leaf hashes)."""
    n = len(entries)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return hashlib.sha256(b"\x00" + entries[0]).digest()
    k = 1
    while k * 2 < n:
        k *= 2
    return hashlib.sha256(b"\x01" + ref_mth(entries[:k]) + ref_mth(entries[k:])).digest()


ENTRIES = [f"entry {i}".encode() for i in range(MAX)]
LEAVES = [leaf_hash(e) for e in ENTRIES]
REF_ROOTS = [ref_mth(ENTRIES[:n]) for n in range(MAX + 1)]


def test_known_answer_rfc6962() -> None:
    """Certificate Transparency's reference roots (certificate-transparency-go merkle tests)."""
    leaves = [
        bytes.fromhex(h)
        for h in (
            "",
            "00",
            "10",
            "2021",
            "3031",
            "40414243",
            "5051525354555657",
            "606162636465666768696a6b6c6d6e6f",
        )
    ]
    hashes = [leaf_hash(x) for x in leaves]
    assert merkle_root(hashes[:1]).hex() == (
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
    )
    assert merkle_root(hashes).hex() == (
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"
    )
    assert merkle_root(hashes[:3]).hex() == (
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77"
    )


def test_roots_match_reference_for_sizes_0_to_256() -> None:
    assert merkle_root([]) == EMPTY_ROOT == REF_ROOTS[0]
    for n in range(1, MAX + 1):
        assert merkle_root(LEAVES[:n]) == REF_ROOTS[n], n


@pytest.fixture(scope="module")
def log256(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuditLog]:
    path = Path(tmp_path_factory.mktemp("merkle")) / "log.sqlite"
    with AuditLog(path, signing_key=SigningKey.from_bytes(bytes(32)), log_id="t") as log:
        for i in range(MAX):
            log.append(
                {"kind": "decision", "time": "2026-01-05T09:00:00Z", "outcome": "ALLOW", "i": i}
            )
        yield log


def test_log_roots_and_proofs_match_reference_at_every_size(log256: AuditLog) -> None:
    entries = [log256.entry_bytes(i) for i in range(MAX)]
    leaves = [leaf_hash(e) for e in entries]
    rng = random.Random(1)
    for n in range(1, MAX + 1):
        root = log256.root(n)
        assert root == ref_mth(entries[:n]) == merkle_root(leaves[:n]), n
        for i in {0, n - 1, rng.randrange(n)}:
            proof = log256.inclusion_proof(i, n)
            assert proof == inclusion_path(leaves[:n], i)
            assert verify_inclusion(leaves[i], i, n, proof, root)
        m = rng.randrange(n + 1)
        proof = log256.consistency_proof(m, n)
        assert proof == consistency_path(leaves[:n], m)
        assert verify_consistency(m, n, log256.root(m), root, proof)


# ------------------------------------------------------------------ mutations


def flip_one_bit(h: bytes, rng: random.Random) -> bytes:
    bit = rng.randrange(256)
    out = bytearray(h)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


def proof_mutations(proof: list[bytes], rng: random.Random) -> Iterator[tuple[str, list[bytes]]]:
    """Element-wise mutations: one bit flipped per element, each element removed, an
    element inserted at the start, middle and end, and the empty proof."""
    for j in range(len(proof)):
        yield f"flip[{j}]", [*proof[:j], flip_one_bit(proof[j], rng), *proof[j + 1 :]]
        yield f"remove[{j}]", proof[:j] + proof[j + 1 :]
    extra = hashlib.sha256(rng.randbytes(8)).digest()
    for j in sorted({0, len(proof) // 2, len(proof)}):
        yield f"insert[{j}]", [*proof[:j], extra, *proof[j:]]
    yield "insert[dup]", [*proof, proof[-1]] if proof else [LEAVES[0]]
    yield "empty", []


def rejected(check: Callable[..., object], *args: object) -> bool:
    try:
        check(*args)
    except VerificationError:
        return True
    return False


def inclusion_cases() -> Iterator[tuple[int, int]]:
    rng = random.Random(7)
    for n in range(1, MAX + 1):
        for i in sorted({0, n - 1, n // 2, rng.randrange(n)}):
            yield i, n


def test_every_inclusion_mutation_fails_sizes_1_to_256() -> None:
    rng = random.Random(11)
    checked = 0
    for i, n in inclusion_cases():
        root = REF_ROOTS[n]
        proof = inclusion_path(LEAVES[:n], i)
        assert verify_inclusion(LEAVES[i], i, n, proof, root)
        wrong_leaf = LEAVES[(i + 1) % MAX] if n > 1 else leaf_hash(b"other")
        claims = [
            ("index+1", LEAVES[i], i + 1, n, proof),
            ("index-1", LEAVES[i], i - 1, n, proof),
            ("size*2", LEAVES[i], i, 2 * n, proof),
            ("size/2", LEAVES[i], i, n // 2, proof),
            ("wrong leaf", wrong_leaf, i, n, proof),
            ("flipped leaf", flip_one_bit(LEAVES[i], rng), i, n, proof),
            ("flipped root", LEAVES[i], i, n, proof),
        ]
        claims += [(name, LEAVES[i], i, n, p) for name, p in proof_mutations(proof, rng)]
        for name, leaf, index, size, p in claims:
            r = flip_one_bit(root, rng) if name == "flipped root" else root
            if (leaf, index, size, p, r) == (LEAVES[i], i, n, proof, root):
                continue  # e.g. the empty proof of a one-leaf tree is the valid proof
            assert rejected(verify_inclusion, leaf, index, size, p, r), (name, i, n)
            checked += 1
    assert checked > 20_000


def consistency_cases() -> list[tuple[int, int]]:
    """All (m, n) with n <= 40, edges for every n <= 256, and random pairs; 0 < m <= n (a
    proof from the empty tree proves nothing, so no mutation can make it false)."""
    rng = random.Random(5)
    pairs = {(m, n) for n in range(1, 41) for m in range(1, n + 1)}
    for n in range(1, MAX + 1):
        pairs |= {(1, n), (n - 1, n), (n, n), (n // 2, n)}
        pairs |= {(1 << k, n) for k in range(9) if 1 << k <= n}
    pairs |= {
        tuple(sorted((rng.randrange(1, MAX + 1), rng.randrange(1, MAX + 1)))) for _ in range(400)
    }
    return sorted(p for p in pairs if p[0] > 0)


def test_every_consistency_mutation_fails() -> None:
    rng = random.Random(13)
    checked = 0
    for m, n in consistency_cases():
        old, new = REF_ROOTS[m], REF_ROOTS[n]
        proof = consistency_path(LEAVES[:n], m)
        assert verify_consistency(m, n, old, new, proof), (m, n)
        # A root of m leaves that differ from the real ones only in one leaf.
        other = merkle_root([leaf_hash(b"x"), *LEAVES[1:m]])
        claims = [
            ("old+1", m + 1, n, old, new, proof),
            ("old-1", m - 1, n, old, new, proof),
            ("new*2", m, 2 * n, old, new, proof),
            ("new/2", m, n // 2, old, new, proof),
            ("wrong old root", m, n, other, new, proof),
            ("flipped old root", m, n, flip_one_bit(old, rng), new, proof),
            ("flipped new root", m, n, old, flip_one_bit(new, rng), proof),
            ("swapped roots", m, n, new, old, proof),
        ]
        claims += [(name, m, n, old, new, p) for name, p in proof_mutations(proof, rng)]
        for name, mm, nn, o, w, p in claims:
            if (mm, nn, o, w, p) == (m, n, old, new, proof):
                continue
            assert rejected(verify_consistency, mm, nn, o, w, p), (name, m, n)
            checked += 1
    assert checked > 10_000


@settings(max_examples=60, deadline=None)
@given(st.integers(1, MAX), st.data())
def test_random_proofs_round_trip(n: int, data: st.DataObject) -> None:
    i = data.draw(st.integers(0, n - 1))
    m = data.draw(st.integers(0, n))
    assert verify_inclusion(LEAVES[i], i, n, inclusion_path(LEAVES[:n], i), REF_ROOTS[n])
    assert verify_consistency(m, n, REF_ROOTS[m], REF_ROOTS[n], consistency_path(LEAVES[:n], m))


def test_malformed_arguments_are_typed_errors() -> None:
    root = REF_ROOTS[4]
    proof = inclusion_path(LEAVES[:4], 1)
    with pytest.raises(VerificationError, match="32-byte"):
        verify_inclusion(LEAVES[1].hex(), 1, 4, proof, root)  # type: ignore[arg-type]
    with pytest.raises(VerificationError, match="32-byte"):
        verify_inclusion(LEAVES[1], 1, 4, [p[:31] for p in proof], root)
    with pytest.raises(VerificationError, match="list of 32-byte hashes"):
        verify_inclusion(LEAVES[1], 1, 4, b"".join(proof), root)  # type: ignore[arg-type]
    with pytest.raises(InvalidParameter, match="integer"):
        verify_inclusion(LEAVES[1], 1.0, 4, proof, root)  # type: ignore[arg-type]
    with pytest.raises(VerificationError, match="not in a tree of size 0"):
        verify_inclusion(LEAVES[0], 0, 0, [], EMPTY_ROOT)
    with pytest.raises(VerificationError, match="0 <= old <= new"):
        verify_consistency(5, 4, REF_ROOTS[5], REF_ROOTS[4], [])
    assert verify_consistency(0, 9, EMPTY_ROOT, REF_ROOTS[9], [])
    assert verify_consistency(9, 9, REF_ROOTS[9], REF_ROOTS[9], [])
