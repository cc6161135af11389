"""Fixed-point encoding of named statistics into the ring of integers mod 2^64.

Every exact protocol (plain, masking, BFV) sums the *same* encoded integers, so their
results are bit-identical to each other: the sum is exact, and decoding rounds once.

Per spec, with ``B`` its per-site bound:

* ``count``: the value itself, width ``w = bit_length(B)`` bits.
* ``real``: ``round(v * 2^f) + 2^53`` with ``f = 52 - ceil(log2 B)``, width 54 bits. The
  offset makes every encoded value non-negative, so a sum of ``K`` sites is
  ``< K * 2^54`` and never wraps for ``K <= 1024``. The quantisation step is ``2^-f``,
  i.e. ``B * 2^-52``: double precision relative to the bound. Integer-valued data whose
  sums stay below ``2^53 / 2^f`` is therefore summed exactly.

A value beyond its bound raises :class:`~safeflow.errors.EncodingOverflow` at the site,
before anything is sent: overflow is never silent.

Examples
--------
>>> import numpy as np
>>> from safeflow.statspec import StatLayout, StatSpec
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
from safeflow.statspec import StatLayout

MAX_SITES = 1024
REAL_WIDTH = 54
_REAL_OFFSET = np.uint64(1 << (REAL_WIDTH - 1))


def real_frac_bits(bound: float) -> int:
    """Fractional bits for a real statistic with per-site bound ``bound``.

    Examples
    --------
    >>> real_frac_bits(100.0)
    45
    """
    return 52 - math.ceil(math.log2(bound))


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

    def widths(self) -> list[tuple[int, int, int]]:
        """``(start, stop, width_bits)`` per spec: every encoded value is ``< 2^width``."""
        out = []
        for (s, a, b), bound in zip(self.layout.offsets(), self.bounds, strict=True):
            w = int(bound).bit_length() if s.kind == "count" else REAL_WIDTH
            out.append((a, b, max(w, 1)))
        return out

    def encode(self, stats: Mapping[str, np.ndarray]) -> np.ndarray:
        """Encode one site's statistics into a ``uint64`` vector (checks the bounds)."""
        self.layout.check(stats)
        out = np.empty(self.layout.size, dtype=np.uint64)
        for (s, a, b), bound in zip(self.layout.offsets(), self.bounds, strict=True):
            v = np.asarray(stats[s.name], dtype=np.float64).ravel()
            if v.size and float(np.max(np.abs(v))) > bound:
                raise EncodingOverflow(
                    f"statistic {s.name!r} exceeds its public bound; declare wider bounds in "
                    "the schema (or a larger max_rows_per_site) so it fits the ring"
                )
            if s.kind == "count":
                out[a:b] = v.astype(np.uint64)
            else:
                f = real_frac_bits(bound)
                q = np.rint(np.ldexp(v, f)).astype(np.int64)
                out[a:b] = q.view(np.uint64) + _REAL_OFFSET
        return out

    def decode(self, total: np.ndarray, *, n_contributors: int) -> dict[str, np.ndarray]:
        """Decode the ring sum of ``n_contributors`` encoded vectors."""
        if not 1 <= n_contributors <= MAX_SITES:
            raise ProtocolError(f"contributors must be 1..{MAX_SITES}; got {n_contributors}")
        total = np.asarray(total, dtype=np.uint64)
        if total.shape != (self.layout.size,):
            raise ProtocolError("aggregate has the wrong length for this layout")
        out: dict[str, np.ndarray] = {}
        for (s, a, b), bound in zip(self.layout.offsets(), self.bounds, strict=True):
            part = total[a:b]
            if s.kind == "count":
                out[s.name] = part.astype(np.int64).reshape(s.shape)
            else:
                off = np.uint64(n_contributors) * _REAL_OFFSET
                signed = (part - off).view(np.int64)
                out[s.name] = np.ldexp(signed.astype(np.float64), -real_frac_bits(bound)
                                       ).reshape(s.shape)
        return out
