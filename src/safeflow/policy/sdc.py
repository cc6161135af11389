"""Statistical disclosure control: the three profiles, the output check, cell suppression.

**Profiles** (POLICY.md) are data: :data:`PROFILES` maps ``acro`` (the default), ``ohdsi``
and ``datashield`` to a :class:`Profile`. The shipped SDC packs (``sdc-acro.yaml`` ...) carry
the same thresholds in their ``profile:`` section, so a certificate's pack hash covers them.

=========================  =========================  ==============  ================
rule                       ACRO                       OHDSI           DataSHIELD
=========================  =========================  ==============  ================
min cell count             n < 10 fails (0 too)       0 < n < 5 fails 0 < n < 3 fails
zero cells                 disclosive                 allowed         allowed
n-k dominance              top-2 share >= 0.90 fails  --              --
p-ratio                    p < 0.10 fails             --              --
regression                 residual dof < 10 fails    --              n_params > 0.33 n
survival event / at-risk   < 10 fails                 0 < c < 5 fails 0 < c < 3 fails
=========================  =========================  ==============  ================

:func:`check` compares an output's ``output.sdc`` facts with a profile and names each
failed rule; every comparison is exact (ratios as fractions of their decimal reprs, so a
top-two share of exactly ``0.9`` fails and ``0.33 * n`` is not rounded). A field that is
null was not measured and its rule is not applied, except that an aggregate must carry the
measurements its profile needs (tables: ``min_cell``, and ``has_zero`` where zeros are
disclosive; survival: event and at-risk cells; regression: what the profile's regression
rule reads); otherwise it fails as ``unmeasured``. DP releases are not checked here: the
privacy budget protects them (the engine's ``budget_ok``).

:func:`suppress_table` applies the profile's cell rules to a table of counts: primary
suppression of failing cells, then secondary suppression so that the row and column totals
cannot give any suppressed cell back.

Examples
--------
>>> check({"min_cell": 9, "has_zero": False}, "acro").failures
('min_cell',)
>>> check({"min_cell": 9, "has_zero": False}, "ohdsi").passed
True
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import numpy as np
import pandas as pd

from safeflow.errors import InvalidParameter
from safeflow.policy._exact import exact, is_int
from safeflow.policy._suppress import protect

#: The names of the checks :func:`check` can fail, in reporting order.
CHECKS = (
    "unmeasured",
    "min_cell",
    "zeros",
    "dominance",
    "p_ratio",
    "residual_dof",
    "params_ratio",
    "survival_event",
    "survival_at_risk",
)
_TABLES = frozenset({"freq_table", "magnitude_table", "histogram"})
_PROFILE_KEYS = (
    "name",
    "min_cell",
    "zeros_disclosive",
    "nk_top2_max",
    "p_ratio_min",
    "residual_dof_min",
    "params_per_n_max",
    "survival_min_cell",
)


@dataclass(frozen=True)
class Profile:
    """Thresholds of one disclosure-control profile (``None``: the rule is not applied).

    Parameters
    ----------
    name : str
        Profile name, e.g. ``"acro"``.
    min_cell : int
        Smallest allowed cell count.
    zeros_disclosive : bool
        Zero cells fail, and so does a smallest cell of 0.
    nk_top2_max : Fraction or None
        A top-two contributors' share ``>=`` this fails (n-k dominance, n=2).
    p_ratio_min : Fraction or None
        A p-ratio ``(total - top1 - top2) / top1`` ``<`` this fails.
    residual_dof_min : int or None
        A regression with fewer residual degrees of freedom fails.
    params_per_n_max : Fraction or None
        A regression with ``n_params > params_per_n_max * n`` fails.
    survival_min_cell : int
        Smallest allowed event or at-risk count in a survival table.
    """

    name: str
    min_cell: int
    zeros_disclosive: bool
    nk_top2_max: Fraction | None = None
    p_ratio_min: Fraction | None = None
    residual_dof_min: int | None = None
    params_per_n_max: Fraction | None = None
    survival_min_cell: int = 0

    @classmethod
    def from_mapping(cls, m: Mapping[str, Any]) -> Profile:
        """Build a profile from a pack's ``profile:`` section (ValueError if malformed).

        Examples
        --------
        >>> Profile.from_mapping({"name": "x", "min_cell": 4, "zeros_disclosive": False,
        ...                       "survival_min_cell": 4}).min_cell
        4
        """
        unknown = sorted(set(m) - set(_PROFILE_KEYS))
        if unknown:
            raise ValueError(
                f"unknown profile key {unknown[0]!r}; known keys are {', '.join(_PROFILE_KEYS)}"
            )
        for key in ("name", "min_cell", "zeros_disclosive", "survival_min_cell"):
            if key not in m:
                raise ValueError(f"profile.{key} is required")
        if not isinstance(m["name"], str) or not isinstance(m["zeros_disclosive"], bool):
            raise ValueError("profile.name must be a string and profile.zeros_disclosive a bool")

        def count(key: str, required: bool) -> int | None:
            v = m.get(key)
            if v is None and not required:
                return None
            if not is_int(v) or v < 0:
                raise ValueError(f"profile.{key} must be an int >= 0; got {v!r}")
            return int(v)

        def ratio(key: str) -> Fraction | None:
            v = m.get(key)
            if v is None:
                return None
            try:
                r = exact(v)
            except ValueError:
                raise ValueError(f"profile.{key} must be a number; got {v!r}") from None
            if r < 0:
                raise ValueError(f"profile.{key} must be >= 0; got {v!r}")
            return r

        return cls(
            name=m["name"],
            min_cell=int(count("min_cell", True) or 0),
            zeros_disclosive=m["zeros_disclosive"],
            nk_top2_max=ratio("nk_top2_max"),
            p_ratio_min=ratio("p_ratio_min"),
            residual_dof_min=count("residual_dof_min", False),
            params_per_n_max=ratio("params_per_n_max"),
            survival_min_cell=int(count("survival_min_cell", True) or 0),
        )

    def cell_fails(self, count: int, threshold: int | None = None) -> bool:
        """Whether a (smallest) cell count fails: ``count < t``, zero only if disclosive.

        Examples
        --------
        >>> PROFILES["acro"].cell_fails(9), PROFILES["acro"].cell_fails(10)
        (True, False)
        >>> PROFILES["ohdsi"].cell_fails(0), PROFILES["ohdsi"].cell_fails(4)
        (False, True)
        """
        t = self.min_cell if threshold is None else threshold
        return count < t and (count > 0 or self.zeros_disclosive)


#: The three POLICY.md profiles.
PROFILES: dict[str, Profile] = {
    "acro": Profile(
        "acro",
        min_cell=10,
        zeros_disclosive=True,
        nk_top2_max=Fraction(9, 10),
        p_ratio_min=Fraction(1, 10),
        residual_dof_min=10,
        survival_min_cell=10,
    ),
    "ohdsi": Profile("ohdsi", min_cell=5, zeros_disclosive=False, survival_min_cell=5),
    "datashield": Profile(
        "datashield",
        min_cell=3,
        zeros_disclosive=False,
        params_per_n_max=Fraction(33, 100),
        survival_min_cell=3,
    ),
}


@dataclass(frozen=True)
class SDCCheck:
    """The outcome of :func:`check`: the profile and the names of the failed rules."""

    profile: str
    failures: tuple[str, ...]

    @property
    def passed(self) -> bool:
        """True when no rule failed."""
        return not self.failures

    def as_map(self) -> dict[str, bool]:
        """Every check name mapped to whether it failed (the engine's ``sdc_fail``).

        Examples
        --------
        >>> check({"min_cell": 3, "has_zero": True}, "acro").as_map()["zeros"]
        True
        """
        return {name: name in self.failures for name in CHECKS}


def _profile(profile: str | Profile) -> Profile:
    if isinstance(profile, Profile):
        return profile
    if profile not in PROFILES:
        raise InvalidParameter(
            f"unknown SDC profile {profile!r}; choose one of {', '.join(PROFILES)}"
        )
    return PROFILES[profile]


def _missing(sdc: Mapping[str, Any], kind: str | None, p: Profile) -> bool:
    def absent(*keys: str) -> bool:
        return any(sdc.get(k) is None for k in keys)

    if kind in _TABLES:
        return absent("min_cell") or (p.zeros_disclosive and absent("has_zero"))
    if kind == "survival":
        return absent("min_event_cell", "min_at_risk_cell") and absent("min_cell")
    if kind == "regression":
        needs_dof = p.residual_dof_min is not None and absent("residual_dof")
        needs_ratio = (
            p.params_per_n_max is not None and absent("n_params", "n") and absent("params_per_n")
        )
        return needs_dof or needs_ratio
    return False


def check(
    sdc: Mapping[str, Any], profile: str | Profile = "acro", *, kind: str | None = None
) -> SDCCheck:
    """Check ``output.sdc`` facts against a disclosure-control profile.

    Parameters
    ----------
    sdc : Mapping
        The ``output.sdc`` facts (see :mod:`safeflow.policy.facts`); null fields are not
        measured.
    profile : str or Profile
        ``"acro"`` (default), ``"ohdsi"``, ``"datashield"`` or a custom :class:`Profile`.
    kind : str, optional
        ``output.kind``; when given, an aggregate lacking the measurements its profile
        needs fails as ``unmeasured``.

    Returns
    -------
    SDCCheck
        ``failures`` names the failed rules (see :data:`CHECKS`), ``passed`` is their absence.

    Examples
    --------
    >>> check({"nk_top2_share": 0.9, "min_cell": 12, "has_zero": False}, "acro").failures
    ('dominance',)
    >>> check({"n_params": 34, "n": 100}, "datashield").failures
    ('params_ratio',)
    >>> check({}, "acro", kind="freq_table").failures
    ('unmeasured',)
    """
    p = _profile(profile)
    s = sdc
    failed: set[str] = set()
    if _missing(s, kind, p):
        failed.add("unmeasured")
    if s.get("min_cell") is not None and p.cell_fails(s["min_cell"]):
        failed.add("min_cell")
    if p.zeros_disclosive and s.get("has_zero"):
        failed.add("zeros")
    if (
        p.nk_top2_max is not None
        and s.get("nk_top2_share") is not None
        and exact(s["nk_top2_share"]) >= p.nk_top2_max
    ):
        failed.add("dominance")
    if (
        p.p_ratio_min is not None
        and s.get("p_ratio") is not None
        and exact(s["p_ratio"]) < p.p_ratio_min
    ):
        failed.add("p_ratio")
    if (
        p.residual_dof_min is not None
        and s.get("residual_dof") is not None
        and (s["residual_dof"] < p.residual_dof_min)
    ):
        failed.add("residual_dof")
    if p.params_per_n_max is not None:
        if s.get("n_params") is not None and s.get("n") is not None:
            if Fraction(s["n_params"]) > p.params_per_n_max * s["n"]:
                failed.add("params_ratio")
        elif s.get("params_per_n") is not None and exact(s["params_per_n"]) > p.params_per_n_max:
            failed.add("params_ratio")
    for key, name in (
        ("min_event_cell", "survival_event"),
        ("min_at_risk_cell", "survival_at_risk"),
    ):
        if s.get(key) is not None and p.cell_fails(s[key], p.survival_min_cell):
            failed.add(name)
    return SDCCheck(p.name, tuple(c for c in CHECKS if c in failed))


@dataclass(frozen=True)
class SuppressionResult:
    """A suppressed table and the cells suppressed, as ``(row label, column label)`` pairs.

    ``table`` has the input's shape and labels, dtype ``Int64``, with ``<NA>`` in every
    suppressed cell; ``primary`` lists the cells that failed the profile's cell rule,
    ``secondary`` those suppressed so that the margins cannot give a primary cell back.
    """

    table: pd.DataFrame
    primary: list[tuple[Any, Any]] = field(default_factory=list)
    secondary: list[tuple[Any, Any]] = field(default_factory=list)

    @property
    def suppressed(self) -> list[tuple[Any, Any]]:
        """All suppressed cells, in table order."""
        return sorted(set(self.primary) | set(self.secondary), key=self._order)

    def _order(self, cell: tuple[Any, Any]) -> tuple[int, int]:
        return (self.table.index.get_loc(cell[0]), self.table.columns.get_loc(cell[1]))


def suppress_table(counts: pd.DataFrame, profile: str | Profile = "acro") -> SuppressionResult:
    """Suppress the disclosive cells of a table of counts, and enough others to protect them.

    **Primary** suppression removes every cell that fails the profile's cell rule (ACRO: any
    count below 10, zeros included; OHDSI / DataSHIELD: ``0 < count < 5`` / ``< 3``).
    **Secondary** suppression follows the classic heuristic, not an optimal (LP / network
    flow) solution: every row and column that contains a suppressed cell must contain at
    least two, so the suppressed cell with the smallest other count in that line is added,
    and this repeats to a fixed point. The heuristic alone can leave a cell that the
    margins determine (a "bridge" between two blocks of suppressed cells), so each fixed
    point is audited by linear algebra on the margin equations; a determined cell gets a
    further partner (the smallest unsuppressed cell in its row, else its column) and the
    loop repeats. Ties are broken by position, so the result is deterministic.

    What is protected: exact recovery of a suppressed cell from the published row and
    column totals. Not considered: the bounds that non-negativity puts on suppressed cells
    (protection intervals), nor other published tables (see the release ledger).

    Parameters
    ----------
    counts : DataFrame
        Non-negative integer counts; index and columns are the labels.
    profile : str or Profile
        The disclosure-control profile (default ``"acro"``).

    Returns
    -------
    SuppressionResult

    Examples
    --------
    >>> t = pd.DataFrame({"a": [3, 20, 30], "b": [25, 22, 40]}, index=["x", "y", "z"])
    >>> r = suppress_table(t, "acro")
    >>> r.primary, r.secondary
    ([('x', 'a')], [('x', 'b'), ('y', 'a'), ('y', 'b')])
    >>> r.table.loc["z"].tolist()
    [30, 40]
    """
    p = _profile(profile)
    if not isinstance(counts, pd.DataFrame):
        raise InvalidParameter("counts must be a pandas DataFrame of non-negative integer counts")
    if counts.size == 0:
        return SuppressionResult(counts.astype("Int64"), [], [])
    try:
        values = counts.to_numpy(dtype="float64")
    except (TypeError, ValueError):
        raise InvalidParameter("counts must hold non-negative integer counts only") from None
    if not np.all(np.isfinite(values)) or np.any(values < 0) or np.any(values != np.round(values)):
        raise InvalidParameter("counts must hold non-negative integer counts only (no NaN)")
    v = values.astype(np.int64)
    primary = np.vectorize(p.cell_fails, otypes=[bool])(v)
    mask = protect(v, primary)
    nr, nc = mask.shape
    table = counts.astype("Int64").mask(mask)
    label = [(counts.index[i], counts.columns[j]) for i in range(nr) for j in range(nc)]
    flat_p, flat_m = primary.ravel(), mask.ravel()
    return SuppressionResult(
        table,
        [label[k] for k in range(len(label)) if flat_p[k]],
        [label[k] for k in range(len(label)) if flat_m[k] and not flat_p[k]],
    )


__all__ = [
    "CHECKS",
    "PROFILES",
    "Profile",
    "SDCCheck",
    "SuppressionResult",
    "check",
    "suppress_table",
]
