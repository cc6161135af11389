"""Site data: sources, the public schema, and validated streaming batches.

Examples
--------
>>> import pandas as pd
>>> from safeflow.data import Column, Schema, SiteData
>>> sd = SiteData(pd.DataFrame({"age": [40.0, 52.5]}), schema=Schema([Column("age")]))
>>> float(sum(b["age"].sum() for b in sd.batches(["age"])))
92.5
"""

from safeflow.data.schema import (
    DATA_CLASSES,
    KINDS,
    ROLES,
    UNITS,
    Column,
    InferredSchemaWarning,
    Schema,
)
from safeflow.data.site_data import Batch, SiteData
from safeflow.data.sources import SQL

__all__ = [
    "DATA_CLASSES",
    "KINDS",
    "ROLES",
    "SQL",
    "UNITS",
    "Batch",
    "Column",
    "InferredSchemaWarning",
    "Schema",
    "SiteData",
]
