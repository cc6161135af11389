"""safeflow: privacy-preserving cross-border analytics.

``import safeflow as sf`` gives the whole public API; everything else is internal.

Examples
--------
>>> import safeflow as sf
>>> sorted(sf.__all__)[:3]
['Column', 'Federation', 'Release']
"""

from safeflow import errors, fl
from safeflow.api import cox, crosstab, describe, glm, histogram, kaplan_meier, logrank
from safeflow.data import SQL, Column, Schema
from safeflow.dp import DP
from safeflow.federation import Federation, Site
from safeflow.policy.customs import PolicySettings
from safeflow.release import Release

__version__ = "0.1.0"

__all__ = [
    "DP",
    "SQL",
    "Column",
    "Federation",
    "PolicySettings",
    "Release",
    "Schema",
    "Site",
    "__version__",
    "cox",
    "crosstab",
    "describe",
    "errors",
    "fl",
    "glm",
    "histogram",
    "kaplan_meier",
    "logrank",
]
