"""The benchmark's data: two real public data sets and a seeded synthetic trial.

* **NCCTG lung** (:func:`lung`, from ``lifelines.datasets.load_lung``; 228 patients of 18
  institutions, R's ``survival::lung``): the two patients without an ECOG grade or a
  Karnofsky score are left out (226 remain), ECOG 3 (one patient) is merged into ``"2+"``
  and ``sex`` is recoded ``"M"``/``"F"``. Split by institution over three sites (largest
  institution first, to the site with the fewest rows so far). Used for Table 1, pooled
  Cox, Kaplan-Meier, log-rank and a linear regression (Karnofsky score on age, sex, ECOG).
* **Wisconsin breast cancer** (:func:`breast_cancer`, ``sklearn.datasets``; 569 tumours):
  malignancy on four cell-nucleus measurements; a seeded random split over three sites.
  Used for logistic regression and the federated-learning hook.
* **Synthetic logistic trial** (:func:`synthetic`): seeded rows for the scaling curves,
  ``p`` covariates ``N(0, 1)`` clipped to ``[-4, 4]`` and a binary outcome.

Every column is declared with **public** bounds and levels and with
``classes=("public",)``: both real data sets are published open data, and the synthetic
rows come from a published seed. That class is what lets the ``plain`` protocol (no
protection) cross a border under the default policy (rule ``GATE-public-data``) and what
keeps disclosure control from refusing the one-day survival grid: the benchmark measures
the protocols, not the policy. With ``classes=("health",)`` the default policy refuses
``plain`` across borders.

Every site is in a different jurisdiction from the destination (``NL``, where the
aggregator and customs are), so every byte between a site and the aggregator crosses a
border.

Examples
--------
>>> parts, schema = synthetic(rows_per_site=50, sites=2, covariates=3, seed=1)
>>> [len(p) for p in parts], schema.names[:2]
([50, 50], ('x1', 'x2'))
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

import safeflow as sf

#: where customs and the aggregator are
DESTINATION = "NL"
#: site jurisdictions, cycled: China and the EU members other than the destination (the
#: jurisdictions the shipped policy packs cover)
JURISDICTIONS = ("CN", "DE", "FR", "BE", "IT", "ES", "SE", "DK", "AT", "BG", "HR", "CY", "CZ",
                 "EE", "FI", "GR", "HU", "IE", "LV", "LT", "LU", "MT", "PL", "PT", "RO", "SK",
                 "SI")
PUBLIC = ("public",)


@dataclass(frozen=True)
class Dataset:
    """Rows split over sites, with their public schema.

    Attributes
    ----------
    name : str
        Short label used in the report.
    parts : list of DataFrame
        One frame per site.
    schema : sf.Schema
        The declared public schema (every column of class ``public``).
    source : str
        Where the rows come from.
    """

    name: str
    parts: list[pd.DataFrame]
    schema: sf.Schema
    source: str

    @property
    def pooled(self) -> pd.DataFrame:
        """All sites' rows in one frame (what the pooled peers fit)."""
        return pd.concat(self.parts, ignore_index=True)


def federation(parts: Sequence[pd.DataFrame], schema: sf.Schema, *,
               budget: int | None = None) -> sf.Federation:
    """A local federation of ``len(parts)`` sites, none in the destination's jurisdiction.

    Parameters
    ----------
    parts : list of DataFrame
        Each site's rows.
    schema : sf.Schema
        The public schema every site declares.
    budget : int, optional
        Each site's total privacy budget (ε), for the DP rows.

    Examples
    --------
    >>> parts, schema = synthetic(rows_per_site=10, sites=2, covariates=2, seed=0)
    >>> federation(parts, schema)
    <Federation local: site00 (CN), site01 (DE) -> NL for scientific-research>
    """
    total = sum(len(p) for p in parts)
    sites = [sf.Site(f"site{i:02d}", p, JURISDICTIONS[i % len(JURISDICTIONS)], schema=schema,
                     budget=budget)
             for i, p in enumerate(parts)]
    return sf.Federation.local(sites, destination=DESTINATION, purpose="scientific-research",
                               max_rows_per_site=max(2 * total, 16))


def lung(sites: int = 3) -> Dataset:
    """NCCTG lung cancer data (lifelines), split by institution (see module docstring).

    Examples
    --------
    >>> d = lung()
    >>> [len(p) for p in d.parts], sum(len(p) for p in d.parts)
    ([76, 75, 75], 226)
    """
    from lifelines.datasets import load_lung

    raw = load_lung()
    df = raw[raw["ph.ecog"].notna() & raw["ph.karno"].notna()].copy()
    df["sex"] = df["sex"].map({1: "M", 2: "F"})
    df["ph_ecog"] = df["ph.ecog"].map({0.0: "0", 1.0: "1", 2.0: "2+", 3.0: "2+"})
    df["ph_karno"] = df["ph.karno"].astype(float)
    df["time"] = df["time"].astype(float)
    df["age"] = df["age"].astype(float)
    df["status"] = df["status"].astype(int)
    sizes = df["inst"].fillna(0).value_counts()
    rows = [0] * sites
    owner: dict[float, int] = {}
    for inst, n in sorted(sizes.items(), key=lambda kv: (-kv[1], kv[0])):
        i = min(range(sites), key=lambda s: (rows[s], s))
        owner[float(inst)] = i
        rows[i] += int(n)
    site = df["inst"].fillna(0).astype(float).map(owner)
    cols = ["time", "status", "age", "sex", "ph_ecog", "ph_karno"]
    parts = [df.loc[site == i, cols].reset_index(drop=True) for i in range(sites)]
    schema = sf.Schema([
        sf.Column("time", role="time", classes=PUBLIC, bounds=(0, 1100), resolution=1.0),
        sf.Column("status", role="event", classes=PUBLIC, categories=(0, 1)),
        sf.Column("age", classes=PUBLIC, bounds=(18, 100)),
        sf.Column("sex", kind="categorical", classes=PUBLIC, categories=("M", "F")),
        sf.Column("ph_ecog", kind="categorical", classes=PUBLIC, categories=("0", "1", "2+")),
        sf.Column("ph_karno", role="outcome", classes=PUBLIC, bounds=(0, 100)),
    ])
    return Dataset("NCCTG lung (lifelines.datasets.load_lung)", parts, schema,
                   "R survival::lung via lifelines; 226 of 228 patients, 3 sites by institution")


#: the breast-cancer covariates (sklearn names -> column names) and their public bounds
BREAST_FEATURES = {"mean radius": ("radius", (0.0, 30.0)),
                   "mean texture": ("texture", (0.0, 40.0)),
                   "mean smoothness": ("smoothness", (0.0, 0.2)),
                   "mean symmetry": ("symmetry", (0.0, 0.4))}


def breast_cancer(sites: int = 3, seed: int = 7) -> Dataset:
    """Wisconsin diagnostic breast cancer (scikit-learn), a seeded split over sites.

    ``malignant`` is 1 for a malignant tumour (scikit-learn's target 0).

    Examples
    --------
    >>> d = breast_cancer()
    >>> sum(len(p) for p in d.parts), list(d.parts[0].columns)[:2]
    (569, ['radius', 'texture'])
    """
    from sklearn.datasets import load_breast_cancer

    raw = load_breast_cancer(as_frame=True).frame
    df = pd.DataFrame({new: raw[old].astype(float)
                       for old, (new, _) in BREAST_FEATURES.items()})
    df["malignant"] = (raw["target"] == 0).astype(int)
    order = np.random.default_rng(seed).permutation(len(df))
    parts = [df.iloc[np.sort(idx)].reset_index(drop=True)
             for idx in np.array_split(order, sites)]
    schema = sf.Schema([
        *(sf.Column(new, classes=PUBLIC, bounds=b) for new, b in BREAST_FEATURES.values()),
        sf.Column("malignant", role="outcome", kind="binary", classes=PUBLIC,
                  categories=(0, 1)),
    ])
    return Dataset("Wisconsin breast cancer (sklearn.datasets.load_breast_cancer)", parts,
                   schema, f"569 tumours, seeded random split over {sites} sites")


def synthetic(rows_per_site: int, sites: int, covariates: int,
              seed: int = 2024) -> tuple[list[pd.DataFrame], sf.Schema]:
    """Seeded logistic data: ``x_j ~ N(0, 1)`` clipped to [-4, 4], ``y ~ logit(Xβ)``.

    ``β_j = ±0.8 / sqrt(p)`` (alternating signs) and intercept -0.5, so the linear predictor
    has a standard deviation below 1 whatever ``p`` is and the fit does not separate.

    Examples
    --------
    >>> parts, schema = synthetic(rows_per_site=4, sites=3, covariates=2, seed=0)
    >>> len(parts), list(parts[0].columns)
    (3, ['x1', 'x2', 'y'])
    """
    rng = np.random.default_rng(seed)
    names = [f"x{j + 1}" for j in range(covariates)]
    beta = 0.8 / np.sqrt(covariates) * np.where(np.arange(covariates) % 2 == 0, 1.0, -1.0)
    parts = []
    for _ in range(sites):
        x = np.clip(rng.standard_normal((rows_per_site, covariates)), -4.0, 4.0).round(3)
        eta = -0.5 + x @ beta
        y = (rng.random(rows_per_site) < 1.0 / (1.0 + np.exp(-eta))).astype(np.int64)
        frame = pd.DataFrame(x, columns=names)
        frame["y"] = y
        parts.append(frame)
    schema = sf.Schema([
        *(sf.Column(n, classes=PUBLIC, bounds=(-4.0, 4.0)) for n in names),
        sf.Column("y", role="outcome", kind="binary", classes=PUBLIC, categories=(0, 1)),
    ])
    return parts, schema


__all__ = ["DESTINATION", "JURISDICTIONS", "Dataset", "breast_cancer", "federation", "lung",
           "synthetic"]
