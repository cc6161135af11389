"""The analysis contract: ``local`` at each site, ``combine`` at customs. Pure numpy.

An analysis is fully described by its name and JSON-able parameters, which travel to the
sites in each round's request. ``layout`` says which statistics a round sums (computed from
the public schema and public context only, so every party derives the same layout);
``local`` computes them from a site's data; ``combine`` turns the secure totals into the
next round's state or a final value with its disclosure facts. Analyses never import
crypto, protocols or transports.

The public context (``ctx``) holds ``sites`` (the ordered site names), ``site`` (the site
computing, only at sites) and ``max_rows_per_site`` (the public bound on counts).

Examples
--------
>>> from safeflow.analyses import ANALYSES
>>> {"describe", "glm"} <= set(ANALYSES)
True
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from safeflow.data import Column, Schema, SiteData
from safeflow.errors import InvalidParameter
from safeflow.statspec import StatLayout, StatSpec


@dataclass
class Done:
    """The final value of an analysis and its disclosure facts (``output.sdc`` etc.)."""

    value: Any
    facts: dict[str, Any] = field(default_factory=dict)


@dataclass
class Next:
    """Another round is needed, with this JSON-able state."""

    state: dict[str, Any]


class Analysis(ABC):
    """Base class: subclasses set ``name`` and ``kind`` and implement the three steps."""

    name: ClassVar[str]
    kind: ClassVar[str]

    def __init__(self, params: Mapping[str, Any], state: Mapping[str, Any] | None = None):
        self.params = dict(params)
        self.state = dict(state or {})

    def initial_state(self, schema: Schema) -> dict[str, Any]:
        """State of the first round (default: none)."""
        return {}

    def request(self) -> dict[str, Any]:
        """The JSON-able request sent to sites for the current round."""
        return {"analysis": self.name, "params": self.params, "state": self.state}

    @abstractmethod
    def columns(self) -> list[str]:
        """Columns the analysis reads."""

    @abstractmethod
    def layout(self, schema: Schema, ctx: Mapping[str, Any]) -> StatLayout:
        """The statistics of the current round (public)."""

    @abstractmethod
    def local(self, data: SiteData, ctx: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """This site's statistics for the current round."""

    @abstractmethod
    def combine(self, totals: Mapping[str, np.ndarray], schema: Schema,
                ctx: Mapping[str, Any]) -> Done | Next:
        """Secure totals -> next state or final value."""


#: every analysis class, by name (filled by :func:`register` when its module is imported)
ANALYSES: dict[str, type[Analysis]] = {}


def register(cls: type[Analysis]) -> type[Analysis]:
    """Class decorator: make an analysis reachable from round requests at the sites."""
    if cls.name in ANALYSES and ANALYSES[cls.name] is not cls:
        raise InvalidParameter(f"two analyses are named {cls.name!r}")
    ANALYSES[cls.name] = cls
    return cls


def check_columns(schema: Schema, names: list[str], *, kinds: tuple[str, ...] | None = None,
                  what: str = "column") -> list[Column]:
    """Resolve columns in the public schema (typed errors for unknown or wrong-kind ones)."""
    out = []
    for n in names:
        if not isinstance(n, str):
            raise InvalidParameter(f"{what} names must be strings; got {n!r}")
        col = schema.column(n)
        if kinds is not None and col.kind not in kinds:
            raise InvalidParameter(
                f"{what} {n!r} is {col.kind}; this analysis needs {' or '.join(kinds)} "
                "(declare its kind in sf.Schema)")
        if col.role == "identifier":
            raise InvalidParameter(f"{what} {n!r} is an identifier; identifiers never enter "
                                   "a statistic")
        out.append(col)
    return out


def levels(col: Column) -> list[str]:
    """Category labels of a categorical column, as strings."""
    return [str(c) for c in (col.categories or ())]


def count_spec(name: str, shape: tuple[int, ...], ctx: Mapping[str, Any]) -> StatSpec:
    """A count statistic bounded by the public ``max_rows_per_site``."""
    return StatSpec(name, shape, "count", bound=float(ctx["max_rows_per_site"]))


def magnitude_bound(col: Column, schema: Schema, ctx: Mapping[str, Any],
                    power: int = 1) -> float | None:
    """Public per-site bound of ``sum(|x|^power)`` over a column, or ``None`` if unknown."""
    b = schema.public_bounds(col.name)
    if b is None:
        return None
    m = max(abs(float(b[0])), abs(float(b[1])))
    return max(m**power, 1.0) * float(ctx["max_rows_per_site"])


def group_codes(batch: Any, by: str | None, n_rows: int) -> np.ndarray:
    """Group code per row (zeros when there is no grouping column)."""
    if by is None:
        return np.zeros(n_rows, dtype=np.int64)
    return np.asarray(batch[by], dtype=np.int64)


def with_dp(params: dict[str, Any], dp: Any) -> dict[str, Any]:
    """Add a differential-privacy request (``sf.DP``) to an analysis's parameters.

    Examples
    --------
    >>> from safeflow.dp import DP
    >>> with_dp({"column": "age"}, DP(0.5))["dp"]["epsilon"]
    '1/2'
    >>> with_dp({}, None)
    {}
    """
    if dp is None:
        return params
    from safeflow.dp.spec import DP

    if not isinstance(dp, DP):
        raise InvalidParameter(
            f"dp must be an sf.DP object, e.g. dp=sf.DP(epsilon=0.5); got {type(dp).__name__}")
    return {**params, "dp": dp.to_facts()}


def site_slot(ctx: Mapping[str, Any]) -> int:
    """This site's index in the public site order (for by-site tables)."""
    return list(ctx["sites"]).index(ctx["site"])
