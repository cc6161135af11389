"""Shared fixtures: the real NCCTG lung data (lifelines) split by institution."""

from __future__ import annotations

import pandas as pd
import pytest
from lifelines.datasets import load_lung

import safeflow as sf

#: The NCCTG lung data are published, de-identified open data (R's survival package): their
#: columns are classed "public", so conformance tests exercise the math under every
#: protocol; the policy tests use health-classed data to exercise disclosure control.
LUNG_SCHEMA = sf.Schema(
    [
        sf.Column(
            "inst",
            classes=("public",),
            role="group",
            kind="categorical",
            categories=tuple(range(1, 34)),
            on_missing="drop",
        ),
        sf.Column("time", classes=("public",), role="time", bounds=(0, 1100), resolution=1.0),
        sf.Column("status", classes=("public",), role="event", kind="binary", categories=(0, 1)),
        sf.Column("age", classes=("public",), bounds=(18, 100)),
        sf.Column("sex", classes=("public",), kind="categorical", categories=(1, 2)),
        sf.Column(
            "ph.ecog",
            classes=("public",),
            kind="categorical",
            categories=(0, 1, 2, 3),
            on_missing="drop",
        ),
        sf.Column("wt.loss", classes=("public",), bounds=(-30, 70), on_missing="drop"),
    ]
)


def lung() -> pd.DataFrame:
    """NCCTG lung data, columns of LUNG_SCHEMA only."""
    return load_lung()[list(LUNG_SCHEMA.names)]


def split_by_inst(df: pd.DataFrame, n_sites: int) -> list[pd.DataFrame]:
    """Assign institutions round-robin to ``n_sites`` sites (rows without inst: site 0)."""
    insts = sorted(df["inst"].dropna().unique())
    owner = {inst: i % n_sites for i, inst in enumerate(insts)}
    key = df["inst"].map(owner).fillna(0).astype(int)
    return [df[key == i] for i in range(n_sites)]


JURISDICTIONS = ["CN", "NL", "DE", "FR", "AT", "BE", "IT", "ES", "SE", "DK"]


def lung_federation(n_sites: int = 2, **options: object) -> sf.Federation:
    """The lung data as a federation of ``n_sites`` hospitals in different jurisdictions."""
    parts = split_by_inst(lung(), n_sites)
    sites = [
        sf.Site(f"site{i}", part, JURISDICTIONS[i % len(JURISDICTIONS)], schema=LUNG_SCHEMA)
        for i, part in enumerate(parts)
    ]
    return sf.Federation.local(sites, destination="NL", purpose="scientific-research", **options)


@pytest.fixture(scope="session")
def lung_df() -> pd.DataFrame:
    return lung()
