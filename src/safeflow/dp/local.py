"""Local mode: each site releases its own DP statistics through OpenDP's Polars API.

For studies with no trusted customs (``sf.DP(..., mode="local")``). Every site runs its
query through ``dp.Context.compositor`` (OpenDP's accountant over a Polars ``LazyFrame``,
privacy unit ``dp.unit_of(contributions=max_contributions)``, privacy loss
``dp.loss_of(epsilon=...)`` or, for the Gaussian mechanism, the ρ whose (ε, δ) conversion
fits the request), so the noise is added *before* anything leaves the site and no party
ever sees a noiseless statistic. The price: pooling ``K`` sites adds ``K`` independent
noises, so the error of a pooled count is about ``√K`` times that of central mode
(``benchmarks/dp.py`` measures it).

Group keys are never taken from the data: grouped releases join the private aggregate to
the *public* levels (``levels``, the schema's categories) with OpenDP's ``with_keys``, so
an empty group is released (noised) like any other and the key set reveals nothing.

When a ``BudgetLedger`` is given, the site's budget is debited (``spend``) after the query
is planned and before anything is released.

**Version requirement.** OpenDP 0.16's Polars plugin deserialises the query plan with the
Polars it was built with, which must be the installed one: ``polars==1.36.1`` (the pin of
``opendp[polars]``). With another Polars the functions here raise
:class:`~safeflow.errors.ProtocolError` saying so; :func:`polars_api_available` tells.

OpenDP features enabled: ``contrib`` (see :data:`safeflow.dp.mechanisms.OPENDP_FEATURES`).

Examples
--------
>>> required_polars_version()
'1.36.1'
>>> import pandas as pd
>>> from safeflow.dp import DP
>>> df = pd.DataFrame({"sex": [1, 2, 1, 1], "age": [50.0, 60.0, 70.0, 80.0]})
>>> if polars_api_available():
...     r = local_counts(df, "sex", DP(1, unit="row", mode="local"), levels={"sex": [1, 2]})
...     print(r.value["sex"].tolist(), r.facts["mechanism"])
... else:
...     print([1, 2], "discrete_laplace")
[1, 2] discrete_laplace
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from importlib import metadata
from typing import Any

import numpy as np
import pandas as pd

from safeflow.dp.budget import BudgetLedger, Receipt
from safeflow.dp.mechanisms import OPENDP_FEATURES
from safeflow.dp.spec import DP, exact, fraction_str
from safeflow.errors import InvalidParameter, ProtocolError

#: default public bound on the rows of one site's frame (float sums need one)
DEFAULT_MAX_ROWS = 1_000_000
_MAX_U32 = 2**32 - 1


def required_polars_version() -> str | None:
    """The Polars version the installed OpenDP's Polars API was built for, or None.

    Read from the pin of the ``opendp[polars]`` extra in OpenDP's package metadata.

    Examples
    --------
    >>> required_polars_version()
    '1.36.1'
    """
    try:
        reqs = metadata.requires("opendp") or []
    except metadata.PackageNotFoundError:  # pragma: no cover - opendp is a dependency
        return None
    for r in reqs:
        head = r.split(";")[0].replace(" ", "")
        if head.startswith("polars==") and 'extra=="polars"' in r.replace(" ", ""):
            return head.split("==", 1)[1]
    return None  # pragma: no cover


def polars_api_available() -> bool:
    """True when the installed Polars is the one OpenDP's Polars API needs.

    Examples
    --------
    >>> isinstance(polars_api_available(), bool)
    True
    """
    try:
        import polars as pl
    except ImportError:  # pragma: no cover - polars is a dependency
        return False
    need = required_polars_version()
    return need is None or pl.__version__ == need


def _require_polars_api() -> Any:
    import polars as pl

    if not polars_api_available():
        raise ProtocolError(
            f"local-mode DP uses OpenDP's Polars API, which needs polars=="
            f"{required_polars_version()} (the version OpenDP was built with); polars "
            f"{pl.__version__} is installed. Install the pinned one with "
            f"`pip install 'opendp[polars]'`, or use mode='central'"
        )
    import opendp.prelude as dp

    dp.enable_features(*OPENDP_FEATURES)
    return dp


@dataclass(frozen=True)
class LocalRelease:
    """A site's locally noised statistics, with the guarantee they were released under.

    Attributes
    ----------
    value : pandas.DataFrame
        One row per public group (or a single row): the group columns and the noised
        statistic (``count`` or the summed column's name).
    facts : dict
        ``mechanism``, ``scale``, ``accuracy`` (half-width of the per-value ``1 - alpha``
        interval, from OpenDP's ``summarize``), ``alpha``, ``epsilon``, ``delta`` (exact,
        ``"num/den"``), ``rho`` (Gaussian only), ``unit``, ``max_contributions``,
        ``mode`` (``"local"``), ``receipt`` (the ledger debit, when one was made).
    """

    value: pd.DataFrame
    facts: dict[str, Any] = field(repr=False)

    @property
    def scale(self) -> float:
        """Noise scale OpenDP used (Laplace b, or Gaussian σ)."""
        return float(self.facts["scale"])

    @property
    def accuracy(self) -> float:
        """Half-width of the ``1 - alpha`` interval of each released value."""
        return float(self.facts["accuracy"])

    def __repr__(self) -> str:
        return (
            f"<LocalRelease {len(self.value)} row(s) {self.facts['mechanism']} "
            f"ε={self.facts['epsilon']} δ={self.facts['delta']} unit={self.facts['unit']}>"
        )


def _lazy(frame: Any) -> Any:
    import polars as pl

    if isinstance(frame, pl.LazyFrame):
        return frame
    if isinstance(frame, pl.DataFrame):
        return frame.lazy()
    if isinstance(frame, pd.DataFrame):
        return pl.from_pandas(frame).lazy()
    raise InvalidParameter(
        f"frame must be a pandas or polars DataFrame or a polars LazyFrame; got "
        f"{type(frame).__name__}"
    )


def _check_dp(dp_params: Any) -> DP:
    if not isinstance(dp_params, DP):
        raise InvalidParameter(f"dp must be an sf.DP object; got {type(dp_params).__name__}")
    if dp_params.mode != "local":
        raise InvalidParameter(
            f"safeflow.dp.local releases statistics at a site: it needs DP(..., "
            f"mode='local'); got mode={dp_params.mode!r}"
        )
    return dp_params


def _contributions(max_contributions: Any) -> int:
    if (
        isinstance(max_contributions, bool)
        or not isinstance(max_contributions, int)
        or not 1 <= max_contributions <= _MAX_U32
    ):
        raise InvalidParameter(
            f"max_contributions must be an int ≥ 1 (rows one patient may contribute; 1 for "
            f"unit='row'); got {max_contributions!r}"
        )
    return max_contributions


def _rho_for(dp: Any, epsilon: Fraction, delta: Fraction) -> float:
    """Largest ρ whose zCDP -> (ε, δ) conversion (OpenDP's) stays within (ε, δ)."""
    space = dp.atom_domain(T=float, nan=False), dp.absolute_distance(T=float)
    d = math.nextafter(float(delta), 0.0) if Fraction(float(delta)) > delta else float(delta)
    e = float(epsilon)
    e = e if Fraction(e) <= epsilon else math.nextafter(e, 0.0)

    def build(scale: float) -> Any:
        return dp.c.make_fix_delta(
            dp.c.make_zCDP_to_approxDP(space >> dp.m.then_gaussian(scale=scale)), d
        )

    scale = dp.binary_search_param(build, d_in=1.0, d_out=(e, d), T=float)
    rho = float((space >> dp.m.then_gaussian(scale=scale)).map(1.0))
    eps_c, delta_c = build(scale).map(1.0)
    if Fraction(eps_c) > epsilon or Fraction(delta_c) > delta:  # pragma: no cover
        raise ProtocolError("internal check failed: the zCDP conversion exceeds (ε, δ)")
    return rho


def _context(
    dp: Any, lf: Any, params: DP, max_contributions: int, max_rows: int
) -> tuple[Any, dict[str, Any]]:
    family = params.mechanism_for("count")
    extra: dict[str, Any] = {}
    if family == "laplace":
        e = float(params.epsilon)
        e = e if Fraction(e) <= params.epsilon else math.nextafter(e, 0.0)
        loss = dp.loss_of(epsilon=e)
    else:
        rho = _rho_for(dp, params.epsilon, params.delta)
        loss = dp.loss_of(rho=rho)
        extra["rho"] = rho
    ctx = dp.Context.compositor(
        data=lf,
        privacy_unit=dp.unit_of(contributions=max_contributions),
        privacy_loss=loss,
        split_evenly_over=1,
        margins=[dp.polars.Margin(by=[], max_length=max_rows)],
    )
    return ctx, extra


def _keys(lf: Any, by: list[str], levels: Mapping[str, Sequence[Any]] | None) -> Any:
    import polars as pl

    if levels is None or any(c not in levels for c in by):
        missing = [c for c in by if levels is None or c not in levels]
        raise InvalidParameter(
            f"group keys must be public: pass levels={{column: [...]}} for {missing} (the "
            "schema's categories); keys are never read from the data"
        )
    schema = lf.collect_schema()
    for c in by:
        if c not in schema:
            raise InvalidParameter(f"unknown group column {c!r}; the frame has {schema.names()}")
        if len(levels[c]) == 0 or len(set(levels[c])) != len(levels[c]):
            raise InvalidParameter(f"levels of {c!r} must be non-empty and distinct")
    combos = list(itertools.product(*(list(levels[c]) for c in by)))
    data = {c: [k[i] for k in combos] for i, c in enumerate(by)}
    return pl.LazyFrame(data).cast({c: schema[c] for c in by}), combos


def _run(
    dp: Any,
    ctx: Any,
    query: Any,
    params: DP,
    extra: dict[str, Any],
    max_contributions: int,
    ledger: BudgetLedger | None,
    dataset: str | None,
    query_id: str | None,
) -> tuple[Any, dict[str, Any]]:
    meas = query.resolve()  # OpenDP's scale search, once for the summary and the release
    summary = dp.summarize_polars_measurement(meas, alpha=params.alpha)
    if summary.height != 1:  # pragma: no cover - one statistic per query here
        raise ProtocolError("a local query must release exactly one statistic")
    receipt: Receipt | None = None
    if ledger is not None:
        if dataset is None or query_id is None:
            raise InvalidParameter("with a ledger, pass dataset= and query_id= as well")
        receipt = ledger.spend(dataset, query_id, params.epsilon, params.delta)  # debit first
    elif dataset is not None or query_id is not None:
        raise InvalidParameter("dataset= and query_id= need ledger= (a BudgetLedger)")
    out = ctx(meas).collect()  # the compositor checks the loss against its budget
    dist = str(summary["distribution"][0])
    name = {
        "Integer Laplace": "discrete_laplace",
        "Float Laplace": "laplace",
        "Integer Gaussian": "discrete_gaussian",
        "Float Gaussian": "gaussian",
    }.get(dist, dist)
    facts = {
        "mechanism": name,
        "opendp_distribution": dist,
        "scale": float(summary["scale"][0]),
        "accuracy": float(summary["accuracy"][0]),
        "alpha": params.alpha,
        "epsilon": fraction_str(params.epsilon),
        "delta": fraction_str(params.delta),
        **extra,
        "unit": params.unit,
        "max_contributions": max_contributions,
        "mode": "local",
        "sampler": "opendp Polars API (Context.compositor)",
        "receipt": None if receipt is None else receipt.to_facts(),
    }
    return out, facts


def local_counts(
    frame: Any,
    group_by: str | Sequence[str] | None,
    dp: DP,
    *,
    levels: Mapping[str, Sequence[Any]] | None = None,
    max_contributions: int = 1,
    max_rows: int = DEFAULT_MAX_ROWS,
    ledger: BudgetLedger | None = None,
    dataset: str | None = None,
    query_id: str | None = None,
) -> LocalRelease:
    """Noised row counts of a site's frame, in total or per public group.

    Parameters
    ----------
    frame : pandas or polars DataFrame, or polars LazyFrame
        The site's rows (they never leave the site).
    group_by : str, list of str or None
        Group columns; ``None`` for the total count.
    dp : DP
        Must have ``mode="local"``. The whole ε (and δ) is spent on this one release;
        every group's count is noised (the groups partition the rows, so the
        ``max_contributions`` rows of one unit move the vector by at most that much).
    levels : mapping of column -> sequence, required with ``group_by``
        The public levels of each group column (the schema's categories). Every
        combination is released, including empty ones.
    max_contributions : int
        Rows one unit of privacy may contribute (1 for ``unit="row"``).
    max_rows : int
        Public bound on the frame's rows (part of OpenDP's domain); a larger frame is
        refused.
    ledger, dataset, query_id : optional
        Debit ``dp``'s ε and δ on ``ledger`` for ``dataset`` before releasing.

    Returns
    -------
    LocalRelease
        ``value``: the group columns and ``count`` (int64, signed: not clamped at 0).

    Examples
    --------
    >>> import pandas as pd
    >>> from safeflow.dp import DP
    >>> df = pd.DataFrame({"arm": ["a", "b", "a"]})
    >>> if polars_api_available():
    ...     r = local_counts(df, None, DP(2, unit="row", mode="local"))
    ...     print(list(r.value.columns), r.scale)
    ... else:
    ...     print(["count"], 0.5)
    ['count'] 0.5
    """
    params = _check_dp(dp)
    m = _contributions(max_contributions)
    rows = _max_rows(max_rows)
    dpx = _require_polars_api()
    import polars as pl

    lf = _lazy(frame)
    _check_length(lf, rows)
    ctx, extra = _context(dpx, lf, params, m, rows)
    if group_by is None:
        query = ctx.query().select(dpx.len(signed=True).alias("count"))
        out, facts = _run(dpx, ctx, query, params, extra, m, ledger, dataset, query_id)
        value = pd.DataFrame({"count": np.asarray(out["count"].to_list(), dtype=np.int64)})
        return LocalRelease(value, facts)
    by = [group_by] if isinstance(group_by, str) else list(group_by)
    keys, combos = _keys(lf, by, levels)
    query = ctx.query().group_by(by).agg(dpx.len(signed=True).alias("count")).with_keys(keys)
    out, facts = _run(dpx, ctx, query, params, extra, m, ledger, dataset, query_id)
    value = _ordered(out, by, combos, "count", pl).astype({"count": np.int64})
    return LocalRelease(value, facts)


def local_sum(
    frame: Any,
    column: str,
    bounds: tuple[Any, Any],
    dp: DP,
    *,
    by: str | Sequence[str] | None = None,
    levels: Mapping[str, Sequence[Any]] | None = None,
    max_contributions: int = 1,
    max_rows: int = DEFAULT_MAX_ROWS,
    ledger: BudgetLedger | None = None,
    dataset: str | None = None,
    query_id: str | None = None,
) -> LocalRelease:
    """Noised sum of ``column`` clamped to public ``bounds``, in total or per public group.

    Integer columns with integer bounds are summed exactly and noised with the discrete
    mechanism; other columns are summed as floats (OpenDP accounts for float rounding with
    the public ``max_rows``). Missing values (null, NaN) count as 0: apply the schema's
    missing-value policy before.

    Parameters
    ----------
    frame : pandas or polars DataFrame, or polars LazyFrame
    column : str
    bounds : (lower, upper)
        The column's declared public bounds; values are clamped to them.
    dp : DP
        Must have ``mode="local"``.
    by, levels : optional
        Public grouping, as in :func:`local_counts`.
    max_contributions, max_rows, ledger, dataset, query_id
        As in :func:`local_counts`.

    Returns
    -------
    LocalRelease
        ``value``: the group columns and the noised sum under the column's name.

    Examples
    --------
    >>> import pandas as pd
    >>> from safeflow.dp import DP
    >>> df = pd.DataFrame({"age": [50.0, 60.0, 70.0]})
    >>> if polars_api_available():
    ...     r = local_sum(df, "age", (0, 100), DP(1, unit="row", mode="local"))
    ...     print(r.facts["mechanism"], round(r.scale))
    ... else:
    ...     print("laplace", 100)
    laplace 100
    """
    params = _check_dp(dp)
    m = _contributions(max_contributions)
    rows = _max_rows(max_rows)
    lo, hi = exact(bounds[0], "lower bound"), exact(bounds[1], "upper bound")
    if not lo < hi:
        raise InvalidParameter(f"bounds must satisfy lower < upper; got {bounds!r}")
    dpx = _require_polars_api()
    import polars as pl

    lf = _lazy(frame)
    schema = lf.collect_schema()
    if column not in schema:
        raise InvalidParameter(f"unknown column {column!r}; the frame has {schema.names()}")
    integer = schema[column].is_integer() and lo.denominator == 1 and hi.denominator == 1
    if integer:
        expr = pl.col(column).fill_null(0).dp.sum((int(lo), int(hi)))
    else:
        if not schema[column].is_float():
            lf = lf.with_columns(pl.col(column).cast(pl.Float64))
        expr = pl.col(column).fill_nan(0.0).fill_null(0.0).dp.sum((float(lo), float(hi)))
        if Fraction(float(lo)) != lo or Fraction(float(hi)) != hi:
            raise InvalidParameter(f"bounds {bounds!r} must be exactly representable as floats")
    _check_length(lf, rows)
    ctx, extra = _context(dpx, lf, params, m, rows)
    if by is None:
        out, facts = _run(
            dpx, ctx, ctx.query().select(expr), params, extra, m, ledger, dataset, query_id
        )
        value = pd.DataFrame({column: out[column].to_list()})
    else:
        cols = [by] if isinstance(by, str) else list(by)
        keys, combos = _keys(lf, cols, levels)
        query = ctx.query().group_by(cols).agg(expr).with_keys(keys)
        out, facts = _run(dpx, ctx, query, params, extra, m, ledger, dataset, query_id)
        value = _ordered(out, cols, combos, column, pl)
    facts["bounds"] = [float(lo), float(hi)]
    return LocalRelease(value, facts)


def _max_rows(max_rows: Any) -> int:
    if (
        isinstance(max_rows, bool)
        or not isinstance(max_rows, int)
        or not (1 <= max_rows <= _MAX_U32)
    ):
        raise InvalidParameter(f"max_rows must be an int between 1 and 2^32-1; got {max_rows!r}")
    return max_rows


def _check_length(lf: Any, max_rows: int) -> None:
    import polars as pl

    n = lf.select(pl.len()).collect().item()
    if n > max_rows:
        raise InvalidParameter(
            f"the frame has more rows than the public bound max_rows={max_rows}; declare a "
            "larger bound (nothing was released or spent)"
        )


def _ordered(
    out: Any, by: list[str], combos: list[tuple[Any, ...]], stat: str, pl: Any
) -> pd.DataFrame:
    """The released frame in the order of the public key combinations."""
    rows = {tuple(r[c] for c in by): r[stat] for r in out.iter_rows(named=True)}
    recs = []
    for k in combos:
        key = tuple(k)
        if key not in rows:  # pragma: no cover - with_keys releases every key
            raise ProtocolError(f"OpenDP released no value for the public key {key!r}")
        recs.append({**dict(zip(by, key, strict=True)), stat: rows[key]})
    return pd.DataFrame.from_records(recs, columns=[*by, stat])


__all__ = [
    "DEFAULT_MAX_ROWS",
    "LocalRelease",
    "local_counts",
    "local_sum",
    "polars_api_available",
    "required_polars_version",
]
