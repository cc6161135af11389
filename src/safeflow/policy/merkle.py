"""RFC 6962 / RFC 9162 Merkle trees: hashes, roots and proofs, computed and checked in memory.

The audit log (:mod:`safeflow.policy.audit`) is the Merkle tree of RFC 6962 over its
entries; these are the pure functions behind it, usable without a log:

* leaf hash ``SHA-256(0x00 || entry)`` (:func:`leaf_hash`), node hash
  ``SHA-256(0x01 || left || right)`` (:func:`node_hash`);
* the root of ``n`` leaves is the RFC's MTH (:func:`merkle_root`; left subtree = the largest
  power of two smaller than ``n``), :data:`EMPTY_ROOT` for none;
* inclusion and consistency proofs as in RFC 9162 section 2.1 (:func:`inclusion_path`,
  :func:`consistency_path`) and their verification (:func:`verify_inclusion`,
  :func:`verify_consistency`), which raise :class:`~safeflow.errors.VerificationError` on
  any proof that does not verify.

Examples
--------
>>> leaves = [leaf_hash(f"entry {i}".encode()) for i in range(5)]
>>> root = merkle_root(leaves)
>>> verify_inclusion(leaves[3], 3, 5, inclusion_path(leaves, 3), root)
True
>>> verify_consistency(2, 5, merkle_root(leaves[:2]), root, consistency_path(leaves, 2))
True
"""

from __future__ import annotations

import hashlib
import hmac
import operator
from collections.abc import Callable, Iterable, Sequence
from typing import Final

from safeflow.errors import InvalidParameter, VerificationError

#: Size in bytes of every hash in the tree (SHA-256).
HASH_SIZE: Final = 32

#: Root of the empty tree: ``SHA-256("")`` (RFC 6962 section 2.1).
EMPTY_ROOT: Final = hashlib.sha256(b"").digest()


#: ``get(level, index)`` returns the hash of the complete subtree of ``2**level`` leaves that
#: starts at leaf ``index * 2**level`` (level 0: the leaf hashes).
SubtreeGetter = Callable[[int, int], bytes]


def leaf_hash(entry: bytes) -> bytes:
    """RFC 6962 leaf hash: ``SHA-256(0x00 || entry)``.

    Examples
    --------
    >>> leaf_hash(b"").hex()[:16]
    '6e340b9cffb37a98'
    """
    return hashlib.sha256(b"\x00" + entry).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """RFC 6962 interior node hash: ``SHA-256(0x01 || left || right)``.

    Examples
    --------
    >>> node_hash(leaf_hash(b"a"), leaf_hash(b"b")).hex()[:16]
    'b137985ff484fb60'
    """
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two strictly smaller than ``n`` (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def _range_root(get: SubtreeGetter, start: int, end: int) -> bytes:
    """MTH of leaves ``[start, end)``; every range the RFC recursion visits starts at a
    multiple of its left part, so each left part is one stored complete subtree."""
    n = end - start
    if n & (n - 1) == 0:
        level = n.bit_length() - 1
        return get(level, start >> level)
    k = _split(n)
    return node_hash(_range_root(get, start, start + k), _range_root(get, start + k, end))


def _path(get: SubtreeGetter, m: int, start: int, end: int) -> list[bytes]:
    """RFC 9162 PATH(m, D[start:end]) (m relative to start)."""
    n = end - start
    if n == 1:
        return []
    k = _split(n)
    if m < k:
        return [*_path(get, m, start, start + k), _range_root(get, start + k, end)]
    return [*_path(get, m - k, start + k, end), _range_root(get, start, start + k)]


def _subproof(get: SubtreeGetter, m: int, start: int, end: int, complete: bool) -> list[bytes]:
    """RFC 9162 SUBPROOF(m, D[start:end], b)."""
    n = end - start
    if m == n:
        return [] if complete else [_range_root(get, start, end)]
    k = _split(n)
    if m <= k:
        return [*_subproof(get, m, start, start + k, complete), _range_root(get, start + k, end)]
    return [*_subproof(get, m - k, start + k, end, False), _range_root(get, start, start + k)]


def _complete_subtrees(leaves: Sequence[bytes]) -> list[list[bytes]]:
    """levels[k][j]: hash of the complete subtree of 2**k leaves starting at j * 2**k."""
    levels = [list(leaves)]
    while len(levels[-1]) > 1:
        below = levels[-1]
        levels.append([node_hash(below[i], below[i + 1]) for i in range(0, len(below) - 1, 2)])
    return levels


def merkle_root(leaves: Sequence[bytes]) -> bytes:
    """RFC 6962 Merkle tree hash (MTH) of a list of leaf hashes.

    Parameters
    ----------
    leaves : sequence of bytes
        Leaf hashes (already ``SHA-256(0x00 || entry)``).

    Returns
    -------
    bytes
        The 32-byte root; :data:`EMPTY_ROOT` for no leaves.

    Examples
    --------
    >>> a, b, c = (leaf_hash(x) for x in (b"a", b"b", b"c"))
    >>> merkle_root([a, b, c]) == node_hash(node_hash(a, b), c)
    True
    >>> merkle_root([]) == EMPTY_ROOT
    True
    """
    if not leaves:
        return EMPTY_ROOT
    levels = _complete_subtrees(leaves)
    return _range_root(lambda lv, j: levels[lv][j], 0, len(leaves))


def inclusion_path(leaves: Sequence[bytes], index: int) -> list[bytes]:
    """RFC 9162 inclusion proof of leaf ``index`` in the tree of ``leaves`` (in memory).

    Examples
    --------
    >>> leaves = [leaf_hash(bytes([i])) for i in range(5)]
    >>> proof = inclusion_path(leaves, 2)
    >>> verify_inclusion(leaves[2], 2, 5, proof, merkle_root(leaves))
    True
    """
    index = _as_size(index, "index")
    if not 0 <= index < len(leaves):
        raise InvalidParameter(f"index must be in 0..{len(leaves) - 1}; got {index}")
    levels = _complete_subtrees(leaves)
    return _path(lambda lv, j: levels[lv][j], index, 0, len(leaves))


def consistency_path(leaves: Sequence[bytes], old_size: int) -> list[bytes]:
    """RFC 9162 consistency proof from the first ``old_size`` leaves to all of ``leaves``.

    Examples
    --------
    >>> leaves = [leaf_hash(bytes([i])) for i in range(7)]
    >>> proof = consistency_path(leaves, 3)
    >>> verify_consistency(3, 7, merkle_root(leaves[:3]), merkle_root(leaves), proof)
    True
    """
    old_size = _as_size(old_size, "old_size")
    if not 0 <= old_size <= len(leaves):
        raise InvalidParameter(f"old_size must be in 0..{len(leaves)}; got {old_size}")
    if old_size in (0, len(leaves)):
        return []
    levels = _complete_subtrees(leaves)
    return _subproof(lambda lv, j: levels[lv][j], old_size, 0, len(leaves), True)


def _as_size(value: object, name: str) -> int:
    if isinstance(value, bool):
        raise InvalidParameter(f"{name} must be an integer; got a bool")
    try:
        return operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        raise InvalidParameter(f"{name} must be an integer; got {type(value).__name__}") from None


def _as_hash(value: object, name: str) -> bytes:
    if not isinstance(value, bytes | bytearray | memoryview) or len(value) != HASH_SIZE:
        got = (
            f"{len(value)} bytes"
            if isinstance(value, bytes | bytearray | memoryview)
            else type(value).__name__
        )
        raise VerificationError(
            f"{name} must be a {HASH_SIZE}-byte SHA-256 hash; got {got} "
            "(decode hex with bytes.fromhex first)"
        )
    return bytes(value)


def _as_proof(proof: object, what: str) -> list[bytes]:
    if isinstance(proof, str | bytes) or not isinstance(proof, Iterable):
        raise VerificationError(f"{what} must be a list of 32-byte hashes")
    return [_as_hash(p, f"every element of the {what}") for p in proof]


def verify_inclusion(
    leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> bool:
    """Check an RFC 9162 inclusion proof (section 2.1.3.2): leaf ``index`` is in the tree.

    Parameters
    ----------
    leaf_hash : bytes
        ``SHA-256(0x00 || entry)`` of the entry, 32 bytes.
    index : int
        The entry's position, ``0 <= index < size``.
    size : int
        Size of the tree the proof is for.
    proof : sequence of bytes
        The audit path, as returned by :meth:`~safeflow.policy.audit.AuditLog.inclusion_proof`.
    root : bytes
        The trusted root of the tree of ``size`` leaves (from a signed checkpoint).

    Returns
    -------
    bool
        ``True``; a proof that does not verify raises.

    Raises
    ------
    VerificationError
        If the proof is malformed, of the wrong length, or does not lead to ``root``.

    Examples
    --------
    >>> leaves = [leaf_hash(bytes([i])) for i in range(3)]
    >>> root = merkle_root(leaves)
    >>> verify_inclusion(leaves[0], 0, 3, [leaves[1], leaves[2]], root)
    True
    >>> verify_inclusion(leaves[0], 1, 3, [leaves[1], leaves[2]], root)
    Traceback (most recent call last):
    ...
    safeflow.errors.VerificationError: inclusion proof rejected: ...
    """
    leaf = _as_hash(leaf_hash, "leaf_hash")
    root = _as_hash(root, "root")
    index = _as_size(index, "index")
    size = _as_size(size, "size")
    path = _as_proof(proof, "inclusion proof")
    if not 0 <= index < size:
        raise VerificationError(
            f"inclusion proof rejected: index {index} is not in a tree of size {size}"
        )
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if sn == 0:
            raise VerificationError(
                f"inclusion proof rejected: longer than the path of leaf {index} in a tree "
                f"of size {size}"
            )
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise VerificationError(
            f"inclusion proof rejected: shorter than the path of leaf {index} in a tree of "
            f"size {size}"
        )
    if not hmac.compare_digest(r, root):
        raise VerificationError(
            f"inclusion proof rejected: leaf {index} and the proof do not lead to the root of "
            f"the tree of size {size} (wrong entry, proof or root)"
        )
    return True


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> bool:
    """Check an RFC 9162 consistency proof (section 2.1.4.2): the old tree is a prefix.

    Parameters
    ----------
    old_size, new_size : int
        ``0 <= old_size <= new_size``. Equal sizes need an empty proof and equal roots; any
        tree extends the empty tree (old size 0, root :data:`EMPTY_ROOT`, empty proof).
    old_root, new_root : bytes
        Trusted roots of the two trees (32 bytes each).
    proof : sequence of bytes
        As returned by :meth:`~safeflow.policy.audit.AuditLog.consistency_proof`.

    Returns
    -------
    bool
        ``True``; a proof that does not verify raises.

    Raises
    ------
    VerificationError
        If the proof is malformed or does not show that the old tree is a prefix of the new.

    Examples
    --------
    >>> leaves = [leaf_hash(bytes([i])) for i in range(4)]
    >>> old, new = merkle_root(leaves[:2]), merkle_root(leaves)
    >>> verify_consistency(2, 4, old, new, [node_hash(leaves[2], leaves[3])])
    True
    >>> verify_consistency(2, 4, new, old, [node_hash(leaves[2], leaves[3])])
    Traceback (most recent call last):
    ...
    safeflow.errors.VerificationError: consistency proof rejected: ...
    """
    old_size = _as_size(old_size, "old_size")
    new_size = _as_size(new_size, "new_size")
    old_root = _as_hash(old_root, "old_root")
    new_root = _as_hash(new_root, "new_root")
    path = _as_proof(proof, "consistency proof")
    where = f"from size {old_size} to size {new_size}"
    if not 0 <= old_size <= new_size:
        raise VerificationError(
            f"consistency proof rejected: sizes must satisfy 0 <= old <= new; got {where}"
        )
    if old_size in (0, new_size):
        expected = EMPTY_ROOT if old_size == 0 else new_root
        if path:
            raise VerificationError(f"consistency proof rejected: the proof {where} must be empty")
        if not hmac.compare_digest(old_root, expected):
            raise VerificationError(
                f"consistency proof rejected: the old root does not match {where}"
            )
        return True
    if not path:
        raise VerificationError(f"consistency proof rejected: empty proof {where}")
    if old_size & (old_size - 1) == 0:
        path = [old_root, *path]
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise VerificationError(f"consistency proof rejected: too long for a proof {where}")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise VerificationError(f"consistency proof rejected: too short for a proof {where}")
    if not (hmac.compare_digest(fr, old_root) and hmac.compare_digest(sr, new_root)):
        raise VerificationError(
            f"consistency proof rejected: the proof {where} does not lead to both roots "
            "(the old tree is not a prefix of the new one, or a root or proof is wrong)"
        )
    return True


__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "consistency_path",
    "inclusion_path",
    "leaf_hash",
    "merkle_root",
    "node_hash",
    "verify_consistency",
    "verify_inclusion",
]
