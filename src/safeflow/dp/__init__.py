"""Differential privacy for safeflow: parameters, OpenDP mechanisms, budgets, local mode.

* :class:`DP` (``sf.DP``): ε, δ, unit of privacy, mode and mechanism of a release; exact
  (Fractions) and validated.
* :func:`count_mechanism`, :func:`sum_mechanism` (:mod:`safeflow.dp.mechanisms`): central
  mode. Customs noises the decoded secure aggregate *once* with an OpenDP mechanism whose
  scale is calibrated to the declared sensitivity and re-checked against OpenDP's privacy
  map. ``Mechanism.noised(values)`` returns the values with their facts.
* :class:`BudgetLedger` (:mod:`safeflow.dp.budget`): each site dataset's budget, debited
  durably and exactly before any release.
* :func:`local_counts`, :func:`local_sum` (:mod:`safeflow.dp.local`): local mode through
  OpenDP's Polars API, for studies without a trusted customs.

OpenDP features enabled: only ``"contrib"`` (``dp.enable_features("contrib")``). OpenDP
gates behind it the constructors whose proofs have not yet completed its formal vetting
process, which in 0.16 includes ``make_laplace``, ``make_gaussian``, the zCDP -> (ε, δ)
conversion, ``Context.compositor`` and the Polars API: safeflow uses nothing else.
``"floating-point"`` (float mechanisms vulnerable to floating-point attacks) and
``"honest-but-curious"`` are **not** enabled, so such constructors are refused.

Examples
--------
>>> from safeflow.dp import DP, count_mechanism
>>> dp = DP(0.5, unit="row")
>>> mech = count_mechanism(1, dp)
>>> facts = mech.describe()
>>> facts["mechanism"], facts["epsilon"], facts["scale"], facts["unit"]
('discrete_laplace', '1/2', 2.0, 'row')
"""

from safeflow.dp.budget import BudgetLedger, Receipt, Remaining
from safeflow.dp.local import LocalRelease, local_counts, local_sum, polars_api_available
from safeflow.dp.mechanisms import (
    OPENDP_FEATURES,
    Mechanism,
    Noised,
    Sensitivity,
    SumMechanism,
    contributions_for,
    count_mechanism,
    count_sensitivity,
    sum_mechanism,
    sum_sensitivity,
)
from safeflow.dp.spec import DP, exact

__all__ = [
    "DP",
    "OPENDP_FEATURES",
    "BudgetLedger",
    "LocalRelease",
    "Mechanism",
    "Noised",
    "Receipt",
    "Remaining",
    "Sensitivity",
    "SumMechanism",
    "contributions_for",
    "count_mechanism",
    "count_sensitivity",
    "exact",
    "local_counts",
    "local_sum",
    "polars_api_available",
    "sum_mechanism",
    "sum_sensitivity",
]
