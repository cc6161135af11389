"""Breast cancer Wisconsin (diagnostic) data as a 3-site federation, for the FL tests.

The data ship with scikit-learn (``load_breast_cancer``) and are published, de-identified
open data, so their columns are classed ``public``. Bounds are the dataset's *published*
ranges (the "Summary Statistics" table of its description, rounded to 3 decimals there),
widened outward by 1% of the range so that rounding cannot put a value outside; they are
public facts about the data set, not statistics a site computes.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
from sklearn.datasets import load_breast_cancer

import safeflow as sf

TARGET = "benign"
JURISDICTIONS = ("NL", "DE", "FR")


def published_bounds() -> dict[str, tuple[float, float]]:
    """``{feature: (lo, hi)}`` from the data set's published Summary Statistics table."""
    bunch = load_breast_cancer()
    table = {}
    for line in bunch.DESCR.splitlines():
        m = re.match(r"^(.+?) \((mean|standard error|worst)\):\s+([\d.]+)\s+([\d.]+)", line)
        if m:
            base, part, lo, hi = m.group(1), m.group(2), float(m.group(3)), float(m.group(4))
            name = {"mean": f"mean {base}", "standard error": f"{base} error",
                    "worst": f"worst {base}"}[part]
            pad = 0.01 * (hi - lo)
            table[name] = (max(0.0, lo - pad), hi + pad)
    assert set(table) == set(bunch.feature_names), "the published table changed"
    return table


FEATURES = [str(f) for f in load_breast_cancer().feature_names]


def schema() -> sf.Schema:
    """Public schema: 30 bounded numeric features and the binary target (1 = benign)."""
    b = published_bounds()
    cols = [sf.Column(f, classes=("public",), bounds=b[f]) for f in FEATURES]
    cols.append(sf.Column(TARGET, classes=("public",), role="outcome", kind="binary",
                          categories=(0, 1)))
    return sf.Schema(cols)


def frame() -> pd.DataFrame:
    """All 569 rows, features and target (1 = benign)."""
    bunch = load_breast_cancer(as_frame=True)
    df = bunch.frame.rename(columns={"target": TARGET})
    return df[[*FEATURES, TARGET]]


def split(seed: int = 0, test_fraction: float = 0.25) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Stratified train/test split (fixed seed)."""
    df = frame()
    rng = np.random.default_rng(seed)
    test = np.zeros(len(df), dtype=bool)
    for label in (0, 1):
        idx = np.flatnonzero(df[TARGET].to_numpy() == label)
        take = rng.choice(idx, size=round(test_fraction * len(idx)), replace=False)
        test[take] = True
    return df[~test].reset_index(drop=True), df[test].reset_index(drop=True)


def federation(train: pd.DataFrame, n_sites: int = 3, seed: int = 0,
               **options: object) -> sf.Federation:
    """Rows shuffled and dealt to ``n_sites`` sites in different EU jurisdictions."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(train))
    parts = np.array_split(order, n_sites)
    s = schema()
    sites = [sf.Site(f"h{i}", train.iloc[np.sort(p)].reset_index(drop=True),
                     JURISDICTIONS[i % len(JURISDICTIONS)], schema=s, **options)  # type: ignore[arg-type]
             for i, p in enumerate(parts)]
    return sf.Federation.local(sites, destination="NL", purpose="scientific-research")


def scaled(df: pd.DataFrame) -> np.ndarray:
    """Features scaled to [-1, 1] by the published bounds (the pooled reference's inputs)."""
    b = published_bounds()
    lo = np.array([b[f][0] for f in FEATURES])
    hi = np.array([b[f][1] for f in FEATURES])
    return (df[FEATURES].to_numpy() - (lo + hi) / 2) / ((hi - lo) / 2)
