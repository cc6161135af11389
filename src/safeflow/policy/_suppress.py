"""Secondary cell suppression: the classic heuristic plus an exact-recovery audit.

See :func:`safeflow.policy.sdc.suppress_table` for what is protected and what is not.

Examples
--------
>>> v = np.array([[3, 25], [20, 22], [30, 40]])
>>> protect(v, v < 10).astype(int).tolist()
[[1, 1], [1, 1], [0, 0]]
"""

from __future__ import annotations

import numpy as np


def _determined(mask: np.ndarray) -> list[tuple[int, int]]:
    """Suppressed cells that the published margins determine (linear algebra, exact rank).

    Margins are published for every row and column with at least two cells (a line with one
    cell has its cell as total, so no separate margin is assumed). A suppressed cell is
    determined when its unit vector lies in the row space of the margin equations restricted
    to the suppressed cells, i.e. when the null space has no component on it.
    """
    cells = [tuple(c) for c in np.argwhere(mask)]
    if not cells:
        return []
    r, c = mask.shape
    rows = []
    if c >= 2:
        rows += [[1.0 if cell[0] == i else 0.0 for cell in cells] for i in range(r)]
    if r >= 2:
        rows += [[1.0 if cell[1] == j else 0.0 for cell in cells] for j in range(c)]
    if not rows:
        return []
    a = np.asarray(rows)
    _, sv, vt = np.linalg.svd(a)
    rank = int((sv > 1e-9 * max(1.0, sv.max(initial=0.0))).sum())
    null = vt[rank:]
    return [
        cell
        for k, cell in enumerate(cells)
        if null.shape[0] == 0 or np.abs(null[:, k]).max() < 1e-9
    ]


def _partner(line: np.ndarray, free: np.ndarray) -> int | None:
    """The free cell with the smallest count (then the first), or None."""
    choices = [k for k in range(line.size) if free[k]]
    return min(choices, key=lambda k: (line[k], k)) if choices else None


def protect(v: np.ndarray, primary: np.ndarray) -> np.ndarray:
    """The suppression mask: ``primary`` plus the secondary cells that protect it.

    1. Classic heuristic, to a fixed point: a row or column (of two or more cells) with
       exactly one suppressed cell gets its smallest other cell suppressed too.
    2. Audit: if the margins still determine a suppressed cell (:func:`_determined`), its
       row (else its column) gets the smallest unsuppressed cell suppressed; back to 1.
    """
    mask = primary.copy()
    nr, nc = mask.shape
    while True:
        changed = True
        while changed:  # the classic heuristic: >= 2 suppressed cells per touched line
            changed = False
            for i in range(nr):
                if nc >= 2 and mask[i].sum() == 1:
                    k = _partner(v[i], ~mask[i])
                    if k is not None:
                        mask[i, k], changed = True, True
            for j in range(nc):
                if nr >= 2 and mask[:, j].sum() == 1:
                    k = _partner(v[:, j], ~mask[:, j])
                    if k is not None:
                        mask[k, j], changed = True, True
        exposed = _determined(mask)
        if not exposed:
            break
        i, j = exposed[0]
        k = _partner(v[i], ~mask[i]) if nc >= 2 else None
        if k is not None:
            mask[i, k] = True
            continue
        k = _partner(v[:, j], ~mask[:, j]) if nr >= 2 else None
        if k is None:  # every cell is suppressed and still determined: nothing more to do
            break
        mask[k, j] = True
    return mask


__all__ = ["protect"]
