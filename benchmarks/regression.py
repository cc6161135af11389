"""Federated regression against the pooled fits of statsmodels and lifelines, side by side.

Measures (issue "Exact federated regression and survival"):

* logistic regression, 10^6 rows over 5 sites, masking, local transport: wall time ÷
  statsmodels' pooled ``GLM(...).fit()`` (target <= 3x), rounds ÷ pooled Newton iterations
  (target 1.0), bytes per round per site, max |Δcoef| against statsmodels;
* pooled Cox, 10^5 rows over 5 sites, masking: wall time ÷ lifelines' pooled
  ``CoxPHFitter`` (target <= 2x) and max |Δcoef| (skipped with a note until ``sf.cox``
  exists).

Both sides run in the same process on the same rows, one after the other, so the ratios are
measured side by side. Data: a synthetic trial modelled on the reference case (arm, age,
sex, BMI, ASA grade -> 30-day anastomotic leak; survival times for Cox), seeded.

Run::

    .venv/bin/python benchmarks/regression.py            # full profile, writes results
    .venv/bin/python benchmarks/regression.py --quick    # CI smoke profile
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import sys
import time
import warnings
from pathlib import Path

import _machine
import numpy as np
import pandas as pd

import safeflow as sf

HERE = Path(__file__).resolve().parent

# The trial is generated from a published seed, so its rows are public data: the benchmark
# measures the protocols, not disclosure control (which would refuse a 1-day Cox grid).
PUBLIC = ("public",)
SCHEMA = sf.Schema([
    sf.Column("arm", classes=PUBLIC, kind="categorical",
              categories=("extracorporeal", "intracorporeal")),
    sf.Column("age", classes=PUBLIC, bounds=(18, 100)),
    sf.Column("sex", classes=PUBLIC, kind="categorical", categories=("F", "M")),
    sf.Column("bmi", classes=PUBLIC, bounds=(12, 60)),
    sf.Column("asa", classes=PUBLIC, kind="categorical", categories=(1, 2, 3, 4)),
    sf.Column("leak", classes=PUBLIC, role="outcome", kind="binary", categories=(0, 1)),
    sf.Column("time", classes=PUBLIC, role="time", bounds=(0, 1100), resolution=1.0),
    sf.Column("event", classes=PUBLIC, role="event", kind="binary", categories=(0, 1)),
])
X = ["arm", "age", "sex", "bmi", "asa"]


def trial(n: int, seed: int) -> pd.DataFrame:
    """A seeded synthetic trial: leak ~ logit(arm, age, sex, BMI, ASA); DFS ~ exponential."""
    rng = np.random.default_rng(seed)
    arm = rng.integers(0, 2, n)
    age = np.clip(rng.normal(68, 10, n).round(), 18, 100)
    sex = rng.integers(0, 2, n)
    bmi = np.clip(rng.normal(26, 4, n), 12, 60).round(1)
    asa = rng.choice([1, 2, 3, 4], n, p=[0.15, 0.5, 0.3, 0.05])
    eta = -3.0 - 0.3 * arm + 0.02 * (age - 68) + 0.3 * sex + 0.05 * (bmi - 26) + 0.3 * (asa - 2)
    leak = (rng.random(n) < 1 / (1 + np.exp(-eta))).astype(int)
    hazard = 0.0005 * np.exp(0.5 * leak + 0.02 * (age - 68) - 0.2 * arm)
    t = rng.exponential(1 / hazard)
    time_ = np.minimum(np.ceil(t), 1095)
    event = (t <= 1095).astype(int)
    return pd.DataFrame({
        "arm": np.where(arm == 1, "intracorporeal", "extracorporeal"), "age": age,
        "sex": np.where(sex == 1, "M", "F"), "bmi": bmi, "asa": asa, "leak": leak,
        "time": time_, "event": event})


def federation(df: pd.DataFrame, k: int) -> sf.Federation:
    """``k`` sites in different jurisdictions holding consecutive slices of ``df``."""
    juris = ["CN", "NL", "DE", "FR", "BE", "IT", "ES", "SE", "DK", "SG"]
    parts = np.array_split(np.arange(len(df)), k)
    sites = [sf.Site(f"site{i}", df.iloc[idx], juris[i % len(juris)], schema=SCHEMA)
             for i, idx in enumerate(parts)]
    return sf.Federation.local(sites, destination="NL", purpose="scientific-research",
                               max_rows_per_site=2 * len(df))


def design(df: pd.DataFrame) -> pd.DataFrame:
    """The same design matrix safeflow builds (reference = first declared level)."""
    out = pd.DataFrame({"Intercept": 1.0}, index=df.index)
    out["arm[T.intracorporeal]"] = (df["arm"] == "intracorporeal").astype(float)
    out["age"] = df["age"]
    out["sex[T.M]"] = (df["sex"] == "M").astype(float)
    out["bmi"] = df["bmi"]
    for lev in (2, 3, 4):
        out[f"asa[T.{lev}]"] = (df["asa"] == lev).astype(float)
    return out


def bench_logistic(n: int, k: int, seed: int = 1) -> dict[str, object]:
    """Federated logistic (masking) vs statsmodels on the same rows."""
    import statsmodels.api as sm

    df = trial(n, seed)
    fed = federation(df, k)
    t0 = time.perf_counter()
    rel = sf.glm(fed, "leak", X, family="binomial", protocol="masking")
    t_fed = time.perf_counter() - t0
    A = design(df)
    t0 = time.perf_counter()
    ref = sm.GLM(df["leak"], A, family=sm.families.Binomial()).fit(tol=1e-10)
    t_sm = time.perf_counter() - t0
    per_round = [e.bytes_total / max(len(e.answered), 1) for e in rel.log if e.round >= 1]
    rounds_bytes = {}
    for e in rel.log:
        if e.round >= 1:
            rounds_bytes[e.round] = rounds_bytes.get(e.round, 0) + e.bytes_total
    return {
        "rows": n, "sites": k, "fed_s": t_fed, "statsmodels_s": t_sm, "ratio": t_fed / t_sm,
        "rounds": rel.rounds, "statsmodels_iterations": int(ref.fit_history["iteration"]),
        "max_dcoef": float(np.max(np.abs(rel.value.coef.to_numpy() - ref.params.to_numpy()))),
        "bytes_per_round_per_site": float(np.mean(list(rounds_bytes.values()))) / k,
        "bytes_per_message": float(np.mean(per_round)),
    }


def bench_cox(n: int, k: int, seed: int = 2) -> dict[str, object] | None:
    """Federated pooled Cox (masking) vs lifelines on the same rows (when sf.cox exists)."""
    cox = getattr(sf, "cox", None)
    if cox is None and importlib.util.find_spec("safeflow.analyses.cox"):
        from safeflow.analyses.cox import cox  # type: ignore[no-redef]
    if cox is None:
        return None
    from lifelines import CoxPHFitter

    df = trial(n, seed)
    fed = federation(df, k)
    covs = ["age", "arm", "leak"]
    t0 = time.perf_counter()
    rel = cox(fed, "time", "event", covs, protocol="masking")
    t_fed = time.perf_counter() - t0
    pooled = pd.DataFrame({"time": df["time"], "event": df["event"], "age": df["age"],
                           "arm": (df["arm"] == "intracorporeal").astype(float),
                           "leak": df["leak"].astype(float)})
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cph = CoxPHFitter().fit(pooled, "time", "event")
    t_ll = time.perf_counter() - t0
    mine = rel.value.coef.to_numpy()
    return {"rows": n, "sites": k, "fed_s": t_fed, "lifelines_s": t_ll, "ratio": t_fed / t_ll,
            "rounds": rel.rounds,
            "max_dcoef": float(np.max(np.abs(mine - cph.params_.to_numpy())))}


def machine() -> str:
    """CPU, cores, memory and versions, for the results file."""
    return "; ".join(f"{k} {v}" for k, v in _machine.machine("statsmodels", "lifelines").items())


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and write the markdown results."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small CI smoke profile")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "regression.md")
    args = ap.parse_args(argv)
    n_glm, n_cox = (20_000, 5_000) if args.quick else (1_000_000, 100_000)
    lr = bench_logistic(n_glm, 5)
    cx = bench_cox(n_cox, 5)
    cmd = "python benchmarks/regression.py" + (" --quick" if args.quick else "")
    lines = [
        "# Federated regression vs pooled fits", "",
        f"Command: `{cmd}`  ", f"Date: {dt.date.today().isoformat()}  ",
        f"Machine: {machine()}", "",
        "## Logistic regression (masking, local transport)", "",
        "| rows | sites | safeflow s | statsmodels s | ratio (target <= 3) | rounds | "
        "statsmodels IRLS iterations | max abs dcoef | bytes/round/site |",
        "|---|---|---|---|---|---|---|---|---|",
        f"| {lr['rows']:,} | {lr['sites']} | {lr['fed_s']:.2f} | {lr['statsmodels_s']:.2f} | "
        f"{lr['ratio']:.2f} | {lr['rounds']} | {lr['statsmodels_iterations']} | "
        f"{lr['max_dcoef']:.1e} | {lr['bytes_per_round_per_site']:,.0f} |", "",
        "Rounds equal the evaluations of the same Newton driver on pooled rows (asserted in "
        "tests/unit/analyses/test_glm.py), so rounds / pooled Newton iterations = 1.0. "
        "statsmodels' IRLS starts from a different point (mu = (y + 0.5) / 2), so its "
        "iteration count is shown for reference only.", "",
        "## Pooled Cox (masking, local transport)", ""]
    if cx is None:
        lines.append("Not measured: `sf.cox` is not available in this build.")
    else:
        lines += ["| rows | sites | safeflow s | lifelines s | ratio (target <= 2) | rounds | "
                  "max abs dcoef |", "|---|---|---|---|---|---|---|",
                  f"| {cx['rows']:,} | {cx['sites']} | {cx['fed_s']:.2f} | "
                  f"{cx['lifelines_s']:.2f} | {cx['ratio']:.2f} | {cx['rounds']} | "
                  f"{cx['max_dcoef']:.1e} |"]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
