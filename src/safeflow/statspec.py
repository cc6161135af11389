"""The vocabulary shared by analyses and protocols: named sufficient statistics.

An analysis says, for one round, which arrays each site will contribute (``StatSpec``: a
name, a shape, whether the values are exact counts or reals, and a public per-site bound).
A protocol sums those arrays across sites without looking at what they mean. Neither side
imports the other; both import this module.

The bound is what makes fixed-point encoding safe: a real array with per-site bound ``B``
is encoded with as many fractional bits as fit, so that the sum of ``K`` sites can never
wrap around the ring. A spec without a public bound (``bound=None``) is scaled by a
negotiation stage in which each site reveals only the power of two above its largest
absolute value (documented in every protocol spec as the ``scale`` message).

Examples
--------
>>> import numpy as np
>>> lay = StatLayout((StatSpec("n", (2,), "count", bound=1000),
...                   StatSpec("sum", (2,), "real", bound=120_000.0)))
>>> lay.size
4
>>> flat = lay.flatten({"n": np.array([3, 4]), "sum": np.array([1.5, 2.0])})
>>> lay.unflatten(flat)["sum"].tolist()
[1.5, 2.0]
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np

from safeflow.errors import InvalidParameter, ProtocolError

Kind = Literal["count", "real"]
Precision = Literal["extended", "double"]


@dataclass(frozen=True)
class StatSpec:
    """One named array a site contributes to a secure sum.

    Parameters
    ----------
    name : str
        Identifier, unique within a layout (letters, digits, ``_ . : -``).
    shape : tuple of int
        Array shape; the same at every site (it may depend only on public parameters).
    kind : {"count", "real"}
        ``count``: non-negative integers, summed exactly. ``real``: floats, summed in
        fixed point.
    bound : float or None
        Public bound on the absolute value of any element at one site (counts: the
        largest count). ``None`` means not public: a scale negotiation is needed.
    precision : {"extended", "double"}
        Reals only. ``extended`` (default): quantum ``bound * 2^-94`` in two ring elements,
        right for sums over rows whose public bound (``max_rows_per_site * max|x|``) is far
        above the actual value. ``double``: quantum ``bound * 2^-52`` in one ring element
        (float64 resolution at the scale of the bound, half the bytes), right when values
        are of the order of their bound, e.g. model updates clipped to a norm.

    Examples
    --------
    >>> StatSpec("n", (3,), "count", bound=100).size
    3
    """

    name: str
    shape: tuple[int, ...]
    kind: Kind
    bound: float | None = None
    precision: Precision = "extended"

    def __post_init__(self) -> None:
        if not self.name or not all(c.isalnum() or c in "_.:-" for c in self.name):
            raise InvalidParameter(
                f"statistic name {self.name!r} must be non-empty letters, digits or _.:-"
            )
        if self.kind not in ("count", "real"):
            raise InvalidParameter(f"kind must be 'count' or 'real'; got {self.kind!r}")
        if any((not isinstance(d, int)) or d < 0 for d in self.shape):
            raise InvalidParameter(f"shape must be non-negative ints; got {self.shape!r}")
        if self.precision not in ("extended", "double"):
            raise InvalidParameter(
                f"precision must be 'extended' or 'double'; got {self.precision!r}")
        if self.bound is not None and not (math.isfinite(self.bound) and self.bound > 0):
            raise InvalidParameter(
                f"bound of {self.name!r} must be a finite number > 0 or None; got {self.bound!r}"
            )

    @property
    def size(self) -> int:
        """Number of elements."""
        return math.prod(self.shape)


@dataclass(frozen=True)
class StatLayout:
    """An ordered set of :class:`StatSpec`; the flat vector a protocol sums.

    Examples
    --------
    >>> StatLayout((StatSpec("a", (2, 2), "real", 1.0),)).size
    4
    """

    specs: tuple[StatSpec, ...]

    def __post_init__(self) -> None:
        names = [s.name for s in self.specs]
        if len(set(names)) != len(names):
            raise InvalidParameter(f"statistic names must be unique; got {names}")

    @property
    def size(self) -> int:
        """Total number of elements across all specs."""
        return sum(s.size for s in self.specs)

    @property
    def names(self) -> tuple[str, ...]:
        """Spec names in order."""
        return tuple(s.name for s in self.specs)

    def offsets(self) -> list[tuple[StatSpec, int, int]]:
        """``(spec, start, stop)`` of each spec in the flat vector."""
        out, pos = [], 0
        for s in self.specs:
            out.append((s, pos, pos + s.size))
            pos += s.size
        return out

    def digest(self) -> str:
        """SHA-256 of the layout's canonical description (binds messages to a layout)."""
        desc = [[s.name, list(s.shape), s.kind, s.bound, s.precision] for s in self.specs]
        return hashlib.sha256(json.dumps(desc, separators=(",", ":")).encode()).hexdigest()

    def check(self, stats: Mapping[str, np.ndarray]) -> None:
        """Raise :class:`ProtocolError` unless ``stats`` has exactly this layout.

        Values must be finite; counts must be non-negative integers within their bound.
        """
        if set(stats) != set(self.names):
            raise ProtocolError(
                f"local statistics {sorted(stats)} do not match the round's layout "
                f"{sorted(self.names)}; the analysis and the protocol disagree"
            )
        for s in self.specs:
            a = np.asarray(stats[s.name])
            if a.shape != s.shape:
                raise ProtocolError(
                    f"statistic {s.name!r} has shape {a.shape}, the layout says {s.shape}"
                )
            if a.size and not np.all(np.isfinite(a)):
                raise ProtocolError(
                    f"statistic {s.name!r} is not finite (NaN or inf); check the site's data "
                    "against its schema"
                )
            if s.kind == "count" and a.size and (np.any(a < 0) or np.any(a != np.round(a))):
                raise ProtocolError(f"count {s.name!r} must hold non-negative integers")

    def flatten(self, stats: Mapping[str, np.ndarray]) -> np.ndarray:
        """Concatenate the arrays of ``stats`` in layout order as float64."""
        self.check(stats)
        if not self.specs:
            return np.zeros(0)
        return np.concatenate([np.asarray(stats[s.name], dtype=np.float64).ravel()
                               for s in self.specs])

    def unflatten(self, flat: np.ndarray) -> dict[str, np.ndarray]:
        """Split a flat vector back into named arrays (counts become int64)."""
        if flat.shape != (self.size,):
            raise ProtocolError(f"flat vector has shape {flat.shape}, expected ({self.size},)")
        out: dict[str, np.ndarray] = {}
        for s, a, b in self.offsets():
            part = flat[a:b].reshape(s.shape)
            out[s.name] = part.astype(np.int64) if s.kind == "count" else part
        return out
