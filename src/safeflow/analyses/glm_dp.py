"""Differentially private linear regression: noisy sufficient statistics, well scaled.

A gaussian GLM is a function of ``XᵀX``, ``Xᵀy``, ``yᵀy`` and ``n``. Under DP those are
noised once (central mode) with sensitivities from the declared bounds. Noising them as
they are would scale the noise with ``(Σ max|x_j|)²`` (a covariate in days up to 1,100
makes it a million). Instead every site moves its exact sums to the *scaled* design
``x̃_j = (x_j − m_j) / h_j`` and ``ỹ = (y − m_y) / h_y``, where ``m`` and ``h`` are the
middle and half-range of the declared bounds (indicators: 0.5 and 0.5), so that every
entry lies in ``[−1, 1]``: one row then moves ``X̃ᵀX̃`` by at most ``p²`` in L1 norm,
``X̃ᵀỹ`` by ``p`` and ``ỹᵀỹ`` by 1. The transform is affine (``X̃ = X A``), so the
scaled sums follow exactly from the site's own sums; customs noises them, makes ``X̃ᵀX̃``
symmetric positive definite with every eigenvalue at least ``2σ√p`` (about the spectral
norm of the noise matrix: a ridge that acts only where the noise dominates, so small
studies get shrunken coefficients instead of exploding ones), and maps everything back
(post-processing). The fit is then the ordinary one on the noised statistics.

Examples
--------
>>> from safeflow.data import Column, Schema
>>> s = Schema([Column("age", bounds=(18, 100)), Column("y", bounds=(0, 10))])
>>> st = gaussian_dp_statistics(s, ["age"], "y")
>>> [(g.names, str(g.row_l1)) for g in st.groups]
[(('n', 'dropped'), '1'), (('xtx',), '4'), (('xty',), '2'), (('yty',), '1')]
"""

from __future__ import annotations

from collections.abc import Mapping
from fractions import Fraction

import numpy as np

from safeflow.analyses._base import check_columns
from safeflow.data import Schema
from safeflow.errors import InvalidParameter
from safeflow.protocols.dp import DPStatistics, NoiseGroup, half_range


def _scaling(schema: Schema, X: list[str], y: str) -> tuple[np.ndarray, np.ndarray, float,
                                                             float]:
    """Middles and half-ranges of the design columns (intercept: 0, 1) and of ``y``."""
    mid, half = [0.0], [1.0]
    for c in check_columns(schema, X, what="covariate"):
        if c.kind == "numeric":
            if schema.public_bounds(c.name) is None:
                raise InvalidParameter(
                    f"covariate {c.name!r} needs declared bounds under differential privacy: "
                    "declare sf.Column(..., bounds=(lo, hi))")
            h, m = half_range(schema, c.name)
            mid.append(float(m))
            half.append(float(h))
        else:
            k = len(c.categories or ()) - 1
            mid += [0.5] * k
            half += [0.5] * k
    hy, my = half_range(schema, y)
    return np.array(mid), np.array(half), float(my), float(hy)


def _affine(mid: np.ndarray, half: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``A`` with ``X̃ = X A`` and its inverse."""
    p = mid.size
    a, inv = np.eye(p), np.eye(p)
    for j in range(1, p):
        a[0, j], a[j, j] = -mid[j] / half[j], 1.0 / half[j]
        inv[0, j], inv[j, j] = mid[j], half[j]
    return a, inv


def gaussian_dp_statistics(schema: Schema, X: list[str], y: str) -> DPStatistics:
    """The DP declaration of a gaussian GLM's round (see the module docstring)."""
    mid, half, my, hy = _scaling(schema, X, y)
    a, inv = _affine(mid, half)
    p = mid.size

    def encode(st: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        xtx, xty, yty = st["xtx"], st["xty"], float(st["yty"][0])
        n, sy = xtx[0, 0], xty[0]
        s = a.T @ xtx @ a
        sxy = a.T @ xty
        st["xtx"] = s
        st["xty"] = (sxy - my * s[:, 0]) / hy
        st["yty"] = np.array([(yty - 2 * my * sy + n * my * my) / (hy * hy)])
        return st

    def decode(st: dict[str, np.ndarray], noise: Mapping[str, float]) -> dict[str, np.ndarray]:
        # the spectral norm of a p x p matrix of iid noise is about 2 sigma sqrt(p): lift
        # eigenvalues to at least that (a ridge that only acts where the noise dominates)
        s = psd(st["xtx"], floor=2.0 * noise["xtx"] * np.sqrt(p))
        sxy = st["xty"] * hy + my * s[:, 0]
        xtx = inv.T @ s @ inv
        xty = inv.T @ sxy
        n, sy = xtx[0, 0], xty[0]
        st["xtx"], st["xty"] = xtx, xty
        st["yty"] = np.array([float(st["yty"][0]) * hy * hy + 2 * my * sy - n * my * my])
        return st

    fp = Fraction(p)
    return DPStatistics(
        (NoiseGroup(("n", "dropped"), "count", Fraction(1)),
         NoiseGroup(("xtx",), "real", fp * fp),
         NoiseGroup(("xty",), "real", fp),
         NoiseGroup(("yty",), "real", Fraction(1))),
        encode=encode, decode_noisy=decode)


def psd(a: np.ndarray, floor: float = 0.0) -> np.ndarray:
    """Symmetric with eigenvalues ≥ ``floor`` (and ≥ a small positive one): post-processing.

    Examples
    --------
    >>> bool(np.linalg.eigvalsh(psd(np.array([[1.0, 2.0], [2.0, 1.0]]))).min() > 0)
    True
    """
    a = (np.asarray(a, dtype=float) + np.asarray(a, dtype=float).T) / 2.0
    w, v = np.linalg.eigh(a)
    floor = max(floor, 1e-6 * max(float(np.max(np.abs(w))), 1.0))
    if float(w.min()) < floor:
        a = (v * np.maximum(w, floor)) @ v.T
    return a


__all__ = ["gaussian_dp_statistics", "psd"]
