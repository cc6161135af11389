"""Public numerics of the ``he`` protocol: BFV slot packing and CKKS noise budgets.

Both sides of :mod:`safeflow.protocols.he` recompute these from public parameters, so the
packing and the flooding noise are part of the protocol's contract (see that module's
docstring for the rules and the accuracy bound).

Examples
--------
>>> ckks_scale_bits(88, 10)
81
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np

from safeflow.crypto.he_context import HEParams
from safeflow.errors import EncodingOverflow, InvalidParameter, ProtocolError
from safeflow.protocols.encoding import MAX_SITES

#: CKKS: bits kept free above the largest possible sum.
CKKS_HEADROOM_BITS: Final = 3
#: Noise flooding: statistical security bits ``s`` and decryptions ``D`` per key.
FLOOD_SECURITY_BITS: Final = 40
MAX_CKKS_DECRYPTIONS: Final = 2**14
FLOOD_FACTOR: Final = 2.0 ** (FLOOD_SECURITY_BITS / 2) * math.sqrt(64 * MAX_CKKS_DECRYPTIONS)
_FLOOD_FLOOR: Final = 2.0**-40


def _ceil_log2(n: int) -> int:
    return (n - 1).bit_length()


@dataclass(frozen=True)
class PackedColumn:
    """One limb of one statistic, packed ``per_slot`` fields to a slot (see SlotPacking)."""

    start: int  #: slice of the encoded vector
    stop: int
    width: int  #: every encoded value of the slice is below 2^width
    shift: int  #: limb = (value >> shift) & (2^bits - 1)
    bits: int
    field_bits: int  #: limb bits + carry bits
    per_slot: int
    offset: int  #: first slot
    slots: int


@dataclass(frozen=True)
class SlotPacking:
    """The public layout of encoded ``uint64`` values in BFV slots (module docstring).

    Value ``v`` of a column sits in slot ``offset + v % slots`` at bit ``(v // slots) *
    field_bits``. Sums of up to ``n_members`` packed vectors unpack exactly.

    Examples
    --------
    >>> p = SlotPacking.plan([(0, 4, 21)], n_members=10, slot_bits=59)
    >>> p.n_slots, p.columns[0].field_bits, p.columns[0].per_slot
    (2, 25, 2)
    >>> a = np.array([1, 2, 3, 2**21 - 1], dtype=np.uint64)
    >>> p.unpack(p.pack(a) + p.pack(a), n_contributors=2).tolist()
    [2, 4, 6, 4194302]
    >>> [(c.bits, c.per_slot) for c in SlotPacking.plan(
    ...     [(0, 3, 54)], n_members=1024, slot_bits=59).columns]
    [(49, 1), (5, 3)]
    """

    columns: tuple[PackedColumn, ...]
    size: int
    n_slots: int
    slot_bits: int
    n_members: int

    @classmethod
    def plan(
        cls, widths: Sequence[tuple[int, int, int]], *, n_members: int, slot_bits: int
    ) -> SlotPacking:
        """Pack ``(start, stop, width_bits)`` ranges for sums over ``n_members`` sites."""
        if not 1 <= n_members <= MAX_SITES:
            raise InvalidParameter(f"members must be 1..{MAX_SITES}; got {n_members}")
        carry = _ceil_log2(n_members)
        room = min(slot_bits, 63) - carry
        if room < 1:
            raise InvalidParameter(
                f"{slot_bits}-bit slots cannot hold sums of {n_members} sites; use a larger "
                "plain modulus (the default parameters)"
            )
        cols, offset, size = [], 0, 0
        for start, stop, width in widths:
            if not (0 <= start <= stop and 1 <= width <= 64 and start == size):
                raise InvalidParameter(f"bad width entry {(start, stop, width)}")
            size = stop
            shift = 0
            while stop > start and shift < width:
                bits = min(room, width - shift)
                field = bits + carry
                per = min(slot_bits, 63) // field
                slots = -(-(stop - start) // per)
                cols.append(
                    PackedColumn(start, stop, width, shift, bits, field, per, offset, slots)
                )
                offset, shift = offset + slots, shift + bits
        return cls(tuple(cols), size, offset, slot_bits, n_members)

    def pack(self, encoded: np.ndarray) -> np.ndarray:
        """One site's encoded vector -> ``n_slots`` slot values (``uint64``, below 2^C)."""
        enc = np.asarray(encoded)
        if enc.dtype != np.uint64 or enc.shape != (self.size,):
            raise ProtocolError(f"encoded vector must be uint64 of length {self.size}")
        out = np.zeros(self.n_slots, dtype=np.uint64)
        for c in self.columns:
            part = enc[c.start : c.stop]
            if c.shift == 0 and c.width < 64 and np.any(part >> np.uint64(c.width)):
                raise EncodingOverflow("an encoded value is wider than its declared width")
            limbs = np.zeros(c.per_slot * c.slots, dtype=np.uint64)
            limbs[: part.size] = (part >> np.uint64(c.shift)) & np.uint64((1 << c.bits) - 1)
            grid = limbs.reshape(c.per_slot, c.slots)
            acc = out[c.offset : c.offset + c.slots]
            for i in range(c.per_slot):
                acc |= grid[i] << np.uint64(i * c.field_bits)
        return out

    def unpack(self, slots: np.ndarray, *, n_contributors: int) -> np.ndarray:
        """Slot sums -> the exact ``uint64`` ring total; refuses out-of-range fields."""
        s_all = np.asarray(slots)
        if s_all.dtype != np.uint64 or s_all.shape != (self.n_slots,):
            raise ProtocolError(f"slot totals must be uint64 of length {self.n_slots}")
        if not 1 <= n_contributors <= self.n_members:
            raise ProtocolError(f"contributors must be 1..{self.n_members}; got {n_contributors}")
        total = np.zeros(self.size, dtype=np.uint64)
        for c in self.columns:
            s = s_all[c.offset : c.offset + c.slots]
            mask = np.uint64((1 << c.field_bits) - 1)
            fields = np.concatenate(
                [(s >> np.uint64(i * c.field_bits)) & mask for i in range(c.per_slot)]
            )
            n = c.stop - c.start
            limit = np.uint64(n_contributors * ((1 << c.bits) - 1))
            if (
                np.any(s >> np.uint64(c.per_slot * c.field_bits))
                or np.any(fields[:n] > limit)
                or np.any(fields[n:])
            ):
                raise ProtocolError(
                    "the decrypted BFV total is outside what the packing allows: a site sent "
                    "an invalid or damaged ciphertext. Nothing was released; drop the site "
                    "and rerun the round"
                )
            total[c.start : c.stop] += fields[:n] << np.uint64(c.shift)
        return total


def ckks_scale_bits(data_modulus_bits: int, n_members: int) -> int:
    """``log2 Δ``: the largest scale at which a sum of ``n_members`` values in [-1, 1] fits.

    Examples
    --------
    >>> ckks_scale_bits(88, 10)
    81
    """
    return data_modulus_bits - CKKS_HEADROOM_BITS - _ceil_log2(n_members)


def ckks_fresh_noise(poly_modulus_degree: int, special_modulus_bits: int) -> float:
    """Bound ``E`` on one fresh CKKS encryption's error in a slot, in units of ``1/Δ``.

    Examples
    --------
    >>> round(ckks_fresh_noise(8192, 21))
    98306
    """
    n = poly_modulus_degree
    return 12.0 * n + 260.0 * n / 2.0 ** (special_modulus_bits - 1)


def ckks_flood_sd(params: HEParams, n_members: int) -> float:
    """Standard deviation of the flooding noise, in units of each statistic's ``2^e``.

    Examples
    --------
    >>> p = HEParams("ckks", 8192, 109, 88, 0)
    >>> f"{ckks_flood_sd(p, 10):.2e}", f"{ckks_flood_sd(p, 10) * 2**20:.1e}"
    ('4.37e-10', '4.6e-04')
    """
    err = (
        n_members
        * ckks_fresh_noise(params.poly_modulus_degree, params.special_modulus_bits)
        * 2.0 ** -ckks_scale_bits(params.data_modulus_bits, n_members)
    )
    return max(FLOOD_FACTOR * err, n_members * _FLOOD_FLOOR)


__all__ = [
    "CKKS_HEADROOM_BITS",
    "FLOOD_FACTOR",
    "FLOOD_SECURITY_BITS",
    "MAX_CKKS_DECRYPTIONS",
    "PackedColumn",
    "SlotPacking",
    "ckks_flood_sd",
    "ckks_fresh_noise",
    "ckks_scale_bits",
]
