"""The analyst's front door: one function per analysis, each returning a Release.

Examples
--------
>>> import pandas as pd, safeflow as sf
>>> s = sf.Schema([sf.Column("arm", classes=("public",), kind="categorical", categories=("a", "b")),
...                sf.Column("leak", classes=("public",), kind="binary", categories=(0, 1))])
>>> df = pd.DataFrame({"arm": ["a", "b", "a"], "leak": [0, 1, 1]})
>>> fed = sf.Federation.local([sf.Site("x", df, "CN", schema=s), sf.Site("y", df, "NL", schema=s)],
...                          destination="NL", purpose="scientific-research")
>>> sf.crosstab(fed, "arm", "leak", protocol="masking").value.to_numpy().tolist()
[[2, 2], [0, 2]]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from safeflow.analyses._base import with_dp
from safeflow.analyses.cox import cox
from safeflow.analyses.crosstab import Crosstab
from safeflow.analyses.describe import Describe
from safeflow.analyses.glm import FAMILIES, GLM
from safeflow.analyses.histogram import Histogram, check_edges
from safeflow.analyses.survival import kaplan_meier, logrank
from safeflow.dp.spec import DP
from safeflow.errors import InvalidParameter
from safeflow.federation import Federation
from safeflow.release import Release

__all__ = ["cox", "crosstab", "describe", "glm", "histogram", "kaplan_meier", "logrank"]


def _check_fed(fed: Any) -> Federation:
    if not isinstance(fed, Federation):
        raise InvalidParameter(
            f"the first argument must be an sf.Federation (e.g. sf.Federation.local([...])); "
            f"got {type(fed).__name__}")
    return fed


def describe(fed: Federation, columns: Sequence[str], *, by: str | None = None,
             by_site: bool = False, protocol: str = "masking", dp: DP | None = None,
             **options: Any) -> Release:
    """Table 1: n, mean, SD of numeric columns; counts and % of categorical ones.

    Parameters
    ----------
    fed : sf.Federation
    columns : list of str
        Columns of the public schema (not identifiers).
    by : str, optional
        A categorical column to stratify by (e.g. the trial arm).
    by_site : bool
        Also break the table down by site (each site's column is still computed by the
        secure sum; only customs sees per-site totals before disclosure control).
    protocol : {"masking", "he", "plain"}
    dp : sf.DP, optional
        Release under differential privacy (counts, sums and sums of squares noised;
        numeric columns need declared bounds). Every site debits its budget first.

    Returns
    -------
    Release
        ``.value`` is a DataFrame with columns variable, level, [site], [group], n, mean,
        sd, count, percent.

    Examples
    --------
    >>> import pandas as pd, safeflow as sf
    >>> s = sf.Schema([sf.Column("age", classes=("public",), bounds=(0, 120))])
    >>> fed = sf.Federation.local(
    ...     [sf.Site("a", pd.DataFrame({"age": [60.0, 70]}), "CN", schema=s),
    ...      sf.Site("b", pd.DataFrame({"age": [80.0]}), "NL", schema=s)],
    ...     destination="NL", purpose="scientific-research")
    >>> float(sf.describe(fed, ["age"], protocol="masking").value["mean"][0])
    70.0
    """
    if isinstance(columns, str) or not isinstance(columns, Sequence) or not columns:
        raise InvalidParameter("columns must be a non-empty list of column names, e.g. ['age']")
    params = with_dp({"columns": list(columns), "by": by, "by_site": bool(by_site)}, dp)
    return _check_fed(fed).run(Describe(params), protocol=protocol, **options)


def histogram(fed: Federation, column: str, bins: Sequence[float], *, by: str | None = None,
              protocol: str = "masking", dp: DP | None = None, **options: Any) -> Release:
    """Counts of a numeric column in public bins (numpy.histogram semantics).

    Examples
    --------
    >>> import pandas as pd, safeflow as sf
    >>> s = sf.Schema([sf.Column("age", classes=("public",), bounds=(0, 120))])
    >>> fed = sf.Federation.local(
    ...     [sf.Site("a", pd.DataFrame({"age": [25.0, 35]}), "CN", schema=s),
    ...      sf.Site("b", pd.DataFrame({"age": [36.0]}), "NL", schema=s)],
    ...     destination="NL", purpose="scientific-research")
    >>> sf.histogram(fed, "age", bins=[20, 30, 40], protocol="plain").value["count"].tolist()
    [0, 1, 2, 0]
    """
    params = with_dp({"column": column, "bins": check_edges(bins), "by": by}, dp)
    return _check_fed(fed).run(Histogram(params), protocol=protocol, **options)


def crosstab(fed: Federation, rows: str, cols: str, *, protocol: str = "masking",
             dp: DP | None = None, **options: Any) -> Release:
    """Counts of two categorical columns against each other (like pandas.crosstab).

    Examples
    --------
    >>> crosstab.__name__
    'crosstab'
    """
    return _check_fed(fed).run(Crosstab(with_dp({"rows": rows, "cols": cols}, dp)),
                               protocol=protocol, **options)


def glm(fed: Federation, y: str, X: Sequence[str], *, family: str = "gaussian",
        offset: str | None = None, penalty: float = 0.0, protocol: str = "masking",
        max_iter: int = 50, tol: float = 1e-10, dp: DP | None = None,
        **options: Any) -> Release:
    """Fit a GLM exactly as if all rows were pooled (Newton/IRLS over secure sums).

    Parameters
    ----------
    fed : sf.Federation
    y : str
        Outcome column (binomial: 0/1 or a two-level column; poisson: counts).
    X : list of str
        Covariates; categorical ones expand against their first declared level.
    family : {"gaussian", "binomial", "poisson"}
    offset : str, optional
        A numeric column added to the linear predictor (e.g. log exposure).
    penalty : float
        Ridge penalty ``λ/2 ||β||²`` on all coefficients but the intercept.
    protocol : {"masking", "he", "plain"}
    dp : sf.DP, optional
        Gaussian family only: noisy sufficient statistics (XᵀX, Xᵀy, yᵀy, n) from declared
        bounds; standard errors do not include the noise.

    Returns
    -------
    Release
        ``.value`` is a :class:`~safeflow.analyses.glm_result.GLMResult` (``coef``,
        ``summary``, ``deviance``, ``aic``, ``iterations``, ``plot()``).

    Examples
    --------
    >>> import pandas as pd, safeflow as sf
    >>> s = sf.Schema([sf.Column("x", classes=("public",), bounds=(0, 10)),
    ...                sf.Column("y", classes=("public",), bounds=(0, 30))])
    >>> df = pd.DataFrame({"x": [1.0, 2, 3, 4], "y": [2.0, 4.1, 5.9, 8.0]})
    >>> fed = sf.Federation.local([sf.Site("a", df[:2], "CN", schema=s),
    ...                           sf.Site("b", df[2:], "NL", schema=s)],
    ...                          destination="NL", purpose="scientific-research")
    >>> round(float(sf.glm(fed, "y", ["x"], protocol="plain").value.coef["x"]), 2)
    1.98
    """
    if family not in FAMILIES:
        raise InvalidParameter(f"family must be one of {list(FAMILIES)}; got {family!r}")
    if isinstance(X, str) or not isinstance(X, Sequence):
        raise InvalidParameter("X must be a list of covariate names, e.g. ['arm', 'age']")
    if not (isinstance(penalty, int | float) and penalty >= 0):
        raise InvalidParameter(f"penalty must be a number >= 0; got {penalty!r}")
    params = {"y": y, "X": list(X), "family": family, "offset": offset,
              "penalty": float(penalty), "max_iter": int(max_iter), "tol": float(tol)}
    params = with_dp(params, dp)
    return _check_fed(fed).run(GLM(params), protocol=protocol, **options)
