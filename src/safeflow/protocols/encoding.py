"""Fixed-point encoding of named statistics into the ring of integers mod 2^64.

Every exact protocol (plain, masking, BFV) sums the *same* encoded integers, so their
results are bit-identical to each other: the sum is exact, and decoding rounds once.

Per spec, with ``B`` its public per-site bound:

* ``count``: the value itself, one ring element of width ``w = bit_length(B)`` bits.
* ``real`` with ``precision="extended"`` (default): ``q = round(v * 2^f)`` with
  ``f = 94 - ceil(log2 B)``, split into two ring elements, a low limb ``q mod 2^48`` and a
  high limb ``floor(q / 2^48) + 2^47``, both non-negative and below ``2^48``. A sum of
  ``K <= 1024`` sites never wraps; decoding recombines the limbs exactly and rounds once.
  The quantisation step is ``B * 2^-94``, so even a pessimistic public bound
  (``max_rows_per_site * max|x|^2``) leaves far more precision than float64 carries:
  integer-valued data is summed exactly.
* ``real`` with ``precision="double"``: one ring element ``round(v * 2^f) + 2^53`` with
  ``f = 52 - ceil(log2 B)`` (width 54 bits): quantum ``B * 2^-52``, float64 resolution at
  the scale of the bound, at the cost of one ring element (8 bytes) per value.

The ring vector therefore has :attr:`RingCodec.ring_size` elements (counts and double
reals once, extended reals twice). A value beyond its bound raises
:class:`~safeflow.errors.EncodingOverflow` at the site, before anything is sent: overflow
is never silent.

Examples
--------
>>> import numpy as np
>>> from safeflow.statspec import StatLayout, StatSpec, StatSpec
>>> lay = StatLayout((StatSpec("n", (1,), "count", 10), StatSpec("s", (1,), "real", 100.0)))
>>> codec = RingCodec(lay, bounds=(10, 100.0))
>>> a = codec.encode({"n": np.array([3]), "s": np.array([-1.25])})
>>> b = codec.encode({"n": np.array([4]), "s": np.array([2.5])})
>>> out = codec.decode(a + b, n_contributors=2)
>>> int(out["n"][0]), float(out["s"][0])
(7, 1.25)
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from safeflow.errors import EncodingOverflow, InvalidParameter, ProtocolError
from safeflow.statspec import StatLayout, StatSpec

MAX_SITES = 1024
LIMB_BITS = 48
REAL_BITS = 94
_LIMB = float(1 << LIMB_BITS)
_HI_OFFSET = 1 << (LIMB_BITS - 1)


DOUBLE_WIDTH = 54
_DOUBLE_OFFSET = 1 << (DOUBLE_WIDTH - 1)


def real_frac_bits(bound: float, precision: str = "extended") -> int:
    """Fractional bits for a real statistic with per-site bound ``bound``.

    Examples
    --------
    >>> real_frac_bits(100.0), real_frac_bits(100.0, "double")
    (87, 45)
    """
    bits = REAL_BITS if precision == "extended" else DOUBLE_WIDTH - 2
    return bits - math.ceil(math.log2(bound))


def _elements(spec: StatSpec) -> int:
    return 2 if spec.kind == "real" and spec.precision == "extended" else 1


def bound_exponent(values: np.ndarray) -> int:
    """Smallest ``e`` with ``max|values| <= 2^e`` (the only thing a scale message reveals).

    Examples
    --------
    >>> bound_exponent(np.array([3.0, -5.0]))
    3
    """
    m = float(np.max(np.abs(values))) if values.size else 0.0
    if m == 0.0:
        return -60
    return max(-60, math.ceil(math.log2(m)))


def ring_size(layout: StatLayout) -> int:
    """Length of a layout's encoded ring vector: counts take one element, reals two.

    Examples
    --------
    >>> from safeflow.statspec import StatLayout, StatSpec, StatSpec
    >>> ring_size(StatLayout((StatSpec("n", (3,), "count", 9), StatSpec("s", (2,), "real", 1.0))))
    7
    """
    return sum(s.size * _elements(s) for s in layout.specs)


@dataclass(frozen=True)
class RingCodec:
    """Encode/decode a :class:`StatLayout` with effective per-spec bounds."""

    layout: StatLayout
    bounds: Sequence[float]

    def __post_init__(self) -> None:
        if len(self.bounds) != len(self.layout.specs):
            raise InvalidParameter("one bound per statistic is needed")
        for s, b in zip(self.layout.specs, self.bounds, strict=True):
            if not (math.isfinite(b) and b > 0):
                raise InvalidParameter(f"bound of {s.name!r} must be finite and > 0; got {b}")
            if s.kind == "count" and b >= 2**53:
                raise InvalidParameter(f"count bound of {s.name!r} must be below 2^53")

    @property
    def ring_size(self) -> int:
        """Length of the encoded vector (counts take one element, reals two)."""
        return ring_size(self.layout)

    def segments(self) -> list[tuple[int, int, int, int]]:
        """``(spec index, start, stop, width_bits)`` of each ring segment.

        Every encoded value of one site in a segment is ``< 2^width_bits``; a real spec
        has two segments (low limbs, then high limbs).
        """
        out, pos = [], 0
        for i, (s, bound) in enumerate(zip(self.layout.specs, self.bounds, strict=True)):
            if s.kind == "count":
                out.append((i, pos, pos + s.size, max(int(bound).bit_length(), 1)))
                pos += s.size
            elif s.precision == "double":
                out.append((i, pos, pos + s.size, DOUBLE_WIDTH))
                pos += s.size
            else:
                out.append((i, pos, pos + s.size, LIMB_BITS))
                out.append((i, pos + s.size, pos + 2 * s.size, LIMB_BITS))
                pos += 2 * s.size
        return out

    def widths(self) -> list[tuple[int, int, int]]:
        """``(start, stop, width_bits)`` per ring segment (see :meth:`segments`)."""
        return [(a, b, w) for _, a, b, w in self.segments()]

    def encode(self, stats: Mapping[str, np.ndarray]) -> np.ndarray:
        """Encode one site's statistics into a ``uint64`` vector (checks the bounds)."""
        self.layout.check(stats)
        out = np.empty(self.ring_size, dtype=np.uint64)
        pos = 0
        for s, bound in zip(self.layout.specs, self.bounds, strict=True):
            v = np.asarray(stats[s.name], dtype=np.float64).ravel()
            if v.size and float(np.max(np.abs(v))) > bound:
                raise EncodingOverflow(
                    f"statistic {s.name!r} exceeds its public bound; declare wider bounds in "
                    "the schema (or a larger max_rows_per_site) so it fits the ring"
                )
            if s.kind == "count":
                out[pos : pos + s.size] = v.astype(np.uint64)
                pos += s.size
                continue
            if s.precision == "double":
                q1 = np.rint(np.ldexp(v, real_frac_bits(bound, "double"))).astype(np.int64)
                out[pos : pos + s.size] = (q1 + _DOUBLE_OFFSET).astype(np.uint64)
                pos += s.size
                continue
            q = np.rint(np.ldexp(v, real_frac_bits(bound)))  # integer-valued, |q| <= 2^94
            hi = np.floor(q / _LIMB)
            lo = q - hi * _LIMB  # exact: 0 <= lo < 2^48
            out[pos : pos + s.size] = lo.astype(np.uint64)
            out[pos + s.size : pos + 2 * s.size] = (hi.astype(np.int64) + _HI_OFFSET).astype(
                np.uint64)
            pos += 2 * s.size
        return out

    def decode(self, total: np.ndarray, *, n_contributors: int) -> dict[str, np.ndarray]:
        """Decode the ring sum of ``n_contributors`` encoded vectors (one rounding)."""
        if not 1 <= n_contributors <= MAX_SITES:
            raise ProtocolError(f"contributors must be 1..{MAX_SITES}; got {n_contributors}")
        total = np.asarray(total, dtype=np.uint64)
        if total.shape != (self.ring_size,):
            raise ProtocolError("aggregate has the wrong length for this layout")
        out: dict[str, np.ndarray] = {}
        pos = 0
        for s, bound in zip(self.layout.specs, self.bounds, strict=True):
            if s.kind == "count":
                out[s.name] = total[pos : pos + s.size].astype(np.int64).reshape(s.shape)
                pos += s.size
                continue
            if s.precision == "double":
                signed = (total[pos : pos + s.size]
                          - np.uint64(n_contributors * _DOUBLE_OFFSET)).view(np.int64)
                out[s.name] = np.ldexp(signed.astype(np.float64),
                                       -real_frac_bits(bound, "double")).reshape(s.shape)
                pos += s.size
                continue
            lo = total[pos : pos + s.size]
            hi = (total[pos + s.size : pos + 2 * s.size]
                  - np.uint64(n_contributors * _HI_OFFSET)).view(np.int64)
            f = real_frac_bits(bound)
            if hi.size == 0 or int(np.max(np.abs(hi))) < 2**52:
                # hi * 2^48 and lo are exact doubles: the addition rounds exactly once
                vals = np.ldexp(np.ldexp(hi.astype(np.float64), LIMB_BITS)
                                + lo.astype(np.float64), -f)
            else:
                vals = np.array([math.ldexp(float((h << LIMB_BITS) + low), -f)
                                 for h, low in zip(hi.tolist(), lo.tolist(), strict=True)])
            out[s.name] = vals.reshape(s.shape)
            pos += 2 * s.size
        return out
