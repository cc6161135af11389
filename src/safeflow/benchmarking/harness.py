"""The comparison run: every estimand under every protocol, the peers, the scaling curves.

:func:`compare_estimand` measures one estimand: the pooled peer fit, the four secure sums,
the DP releases at every ε (central and local, where DP applies) and OpenDP's single
curator on the pooled rows; :func:`compare_fl` does the same for federated learning
(``safeflow.fl.train``, when present) and bare Flower FedAvg (when the transport offers
it). :func:`run` runs a :class:`Profile` and writes the report; :func:`main` is the command
line behind ``benchmarks/compare.py`` and ``safeflow bench``.

Examples
--------
>>> QUICK.name, FULL.rows_per_site[-1]
('quick', 1000000)
>>> row = Row("Table 1", "table1", "plain", "plain", "ok", seconds=0.1)
>>> row.cells()[:3]
['plain', 'ok', '-']
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shlex
import statistics
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from safeflow.benchmarking import data as datasets
from safeflow.benchmarking.estimands import Estimand, Logistic, estimands, release_costs
from safeflow.benchmarking.measure import measure
from safeflow.benchmarking.peers import (
    OPENDP_MISSING,
    OPENDP_PEERS,
    fl_train,
    flower_fedavg,
    predict_scores,
)
from safeflow.benchmarking.scaling import Base, Point, sweep
from safeflow.benchmarking.variants import (
    EPSILONS,
    POOLED,
    SECURE_SUMS,
    Variant,
    dp_variants,
)
from safeflow.errors import ConvergenceError, SafeflowError

#: tolerances tried, in order, when CKKS noise stops Newton short of the default
CKKS_TOLS = (1e-8, 1e-6, 1e-5, 1e-4)
#: every site's privacy budget (ε, δ): large, the benchmark measures error, not governance
BUDGET = (10**6, "1/1000")
#: DP-FedAvg's δ and clipping norm, and the most trainings per ε
FL_DELTA, FL_CLIP, FL_DP_REPEATS = 1e-6, 1.0, 5
PEER_LIBRARIES = ("statsmodels", "lifelines", "sklearn", "opendp", "matplotlib")


@dataclass(frozen=True)
class Profile:
    """Sizes of one run (``quick`` for CI, ``full`` for the committed results)."""

    name: str
    dp_repeats: int
    fl_rounds: int
    rows_per_site: tuple[int, ...]
    sites: tuple[int, ...]
    covariates: tuple[int, ...]
    base: Base
    cap_s: float
    epsilons: tuple[float, ...] = EPSILONS
    #: rows-per-site points run only for the cheap protocols (pooled, plain, masking)
    cheap_rows: tuple[int, ...] = ()
    #: projected peak memory (MiB) above which a scaling point is not run
    cap_mib: float = 6144.0


QUICK = Profile("quick", dp_repeats=1, fl_rounds=3, rows_per_site=(10**3, 10**4),
                sites=(2, 6), covariates=(2, 8), base=Base(10**3, 3, 5), cap_s=20.0)
FULL = Profile("full", dp_repeats=10, fl_rounds=20,
               rows_per_site=(10**3, 10**4, 10**5, 10**6), sites=(2, 5, 10, 20, 50),
               covariates=(2, 5, 10, 20, 50), base=Base(10**4, 3, 5), cap_s=120.0,
               cheap_rows=(10**7,))
PROFILES = {"quick": QUICK, "full": FULL}


@dataclass
class Row:
    """One (estimand, variant) result, or why there is none."""

    estimand: str
    key: str
    variant: str
    family: str
    status: str
    note: str = ""
    error: float | None = None
    auc_gap: float | None = None
    bytes: int | None = None
    rounds: int | None = None
    seconds: float | None = None
    peak_mib: float | None = None
    epsilon: str | None = None
    repeats: int = 1
    errors: list[float] = field(default_factory=list)

    def cells(self) -> list[str]:
        """The markdown cells: variant, status, error, AUC gap, bytes, rounds, s, MiB, ε,
        repeats, note."""
        def num(v: float | None, fmt: str) -> str:
            return "-" if v is None or (isinstance(v, float) and np.isnan(v)) else format(v, fmt)
        return [self.variant, self.status, num(self.error, ".3g"), num(self.auc_gap, ".3g"),
                num(self.bytes, ",d"), num(self.rounds, "d"), num(self.seconds, ".3f"),
                num(self.peak_mib, ".1f"), self.epsilon or "-", str(self.repeats),
                self.note.replace("|", "/")]


def _eps(value: Any) -> str | None:
    return None if value is None else f"{float(Fraction(value)):g}"


def _fail(est: Estimand, v: Variant, e: Exception) -> Row:
    return Row(est.title, est.key, v.label, v.family, "failed", f"{type(e).__name__}: {e}")


def _run_variant(est: Estimand, fed: Any, v: Variant, ref: Any) -> Row:
    """One federated release; warnings it raises are recorded in the row's note."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        row = _run_variant_once(est, fed, v, ref)
    seen = dict.fromkeys(f"{w.category.__name__} in {Path(w.filename).name}:{w.lineno}: "
                         f"{w.message}" for w in caught)
    if seen:
        row.note = "; ".join(filter(None, [row.note, "warnings: " + "; ".join(seen)]))
    return row


def _run_variant_once(est: Estimand, fed: Any, v: Variant, ref: Any) -> Row:
    """One federated release; under CKKS a Newton fit that stops short is retried looser."""
    ckks = v.params.get("scheme") == "ckks"
    note = (f"tol={est.ckks_tol:g}: with the default tol, CKKS noise stops Newton with "
            "ConvergenceError" if ckks and est.ckks_tol is not None else "")
    try:
        m = measure(lambda: est.run(fed, v))
    except ConvergenceError as e:
        if not ckks or est.key not in ("logistic", "linear", "cox"):
            return _fail(est, v, e)
        start = est.ckks_tol or 0.0
        for tol in (t for t in CKKS_TOLS if t > start):
            est.tol = tol
            try:
                m = measure(lambda: est.run(fed, v))
                note = (f"converged at tol={tol:g} (CKKS noise stops Newton with "
                        "ConvergenceError at tighter tolerances)")
                break
            except ConvergenceError:
                continue
            finally:
                est.tol = None
        else:
            return _fail(est, v, e)
    except SafeflowError as e:
        return _fail(est, v, e)
    costs = release_costs(m.value)
    return Row(est.title, est.key, v.label, v.family, "ok", note,
               error=est.error(m.value, ref), auc_gap=est.auc_gap(m.value, ref),
               bytes=costs["bytes"], rounds=costs["rounds"], seconds=m.seconds,
               peak_mib=m.peak_mib, epsilon=_eps(costs["epsilon"]))


def _repeat(est: Estimand, fed: Any, v: Variant, ref: Any, repeats: int) -> Row:
    """``repeats`` DP releases: median error (one wild draw does not dominate it), median
    time, largest memory."""
    rows = [_run_variant(est, fed, v, ref) for _ in range(repeats)]
    ok = [r for r in rows if r.status == "ok"]
    if not ok:
        return rows[0]
    errs = [float(r.error) for r in ok if r.error is not None]
    out = ok[-1]
    out.errors = errs
    finite = [e for e in errs if np.isfinite(e)]
    out.error = float(np.median(finite)) if finite else None
    out.seconds = statistics.median(float(r.seconds or 0) for r in ok)
    out.peak_mib = max(float(r.peak_mib or 0) for r in ok)
    out.repeats = len(ok)
    if len(ok) > 1:
        extra = dict.fromkeys(r.note for r in ok if r.note)
        undefined = len(errs) - len(finite)
        head = (f"median error of {len(finite)} releases (mean "
                f"{float(np.mean(finite)) if finite else float('nan'):.3g})")
        if undefined:
            head += (f"; {undefined} of {len(errs)} releases undefined (NaN: a noisy count "
                     "too small for an SD or a percentage)")
        out.note = "; ".join([head, *extra])
    return out


def compare_estimand(est: Estimand, fed: Any, profile: Profile,
                     log: Callable[[str], None] = lambda s: None) -> list[Row]:
    """Every variant of one estimand, the pooled peer first.

    Examples
    --------
    >>> from safeflow.benchmarking.data import lung
    >>> from safeflow.benchmarking.estimands import LogRank
    >>> d = lung()
    >>> tiny = Profile("t", 1, 1, (), (), (), Base(1, 1, 1), 1.0, epsilons=())
    >>> rows = compare_estimand(LogRank(d), datasets.federation(d.parts, d.schema), tiny)
    >>> [(r.variant, r.status) for r in rows][:2]
    [('pooled', 'ok'), ('plain', 'ok')]
    """
    ref = est.pooled_fit()
    m = measure(est.pooled_fit)
    rows = [Row(est.title, est.key, POOLED.label, POOLED.family, "ok",
                f"{est.peer} on the pooled rows; bytes = exporting the rows (float64)",
                error=est.error(m.value, ref), auc_gap=est.auc_gap(m.value, ref),
                bytes=est.export_bytes(), rounds=1, seconds=m.seconds, peak_mib=m.peak_mib)]
    for v in SECURE_SUMS:
        rows.append(_run_variant(est, fed, v, ref))
        log(f"  {est.key:9s} {v.label:10s} {rows[-1].status} {rows[-1].seconds or 0:.2f} s")
    if est.dp_skip is not None:
        for fam in ("dp-central", "dp-local"):
            rows.append(Row(est.title, est.key, fam, fam, "skipped", est.dp_skip))
        return rows
    for v in dp_variants(profile.epsilons):
        rows.append(_repeat(est, fed, v, ref, profile.dp_repeats))
    peer = OPENDP_PEERS.get(est.key)
    for eps in profile.epsilons:
        label = f"opendp ε={eps:g}"
        if peer is None:
            rows.append(Row(est.title, est.key, label, "opendp", "not available",
                            OPENDP_MISSING.get(est.key, "no OpenDP peer")))
            continue
        runs = [measure(lambda e=eps: peer(est, e)) for _ in range(profile.dp_repeats)]
        errs = [float(r.value) for r in runs]
        rows.append(Row(est.title, est.key, label, "opendp", "ok",
                        "OpenDP single curator on the pooled rows" + (
                            f"; median error of {len(errs)} releases" if len(errs) > 1
                            else ""),
                        error=float(np.nanmedian(errs)), bytes=est.export_bytes(), rounds=1,
                        seconds=statistics.median(r.seconds for r in runs),
                        peak_mib=max(r.peak_mib for r in runs), epsilon=f"{eps:g}",
                        repeats=len(errs), errors=errs))
    log(f"  {est.key:9s} DP and OpenDP rows done")
    return rows


# --------------------------------------------------------------------------- FL


FL_TITLE = "FL model (logistic, FedAvg)"


def compare_fl(data: datasets.Dataset, fed: Any, profile: Profile) -> list[Row]:
    """``safeflow.fl.train`` under each protocol and DP-FedAvg; bare Flower FedAvg.

    The error is the AUC gap on the pooled rows against the pooled maximum-likelihood
    logistic fit (statsmodels), which is also the pooled row; training AUC (no held-out
    rows: every estimand here is compared on the rows it was computed from).
    """
    from sklearn.metrics import roc_auc_score

    est = Logistic(data)
    key = "fl"
    ref = est.pooled_fit()
    df = data.pooled
    y = df[est.y].to_numpy()
    m = measure(est.pooled_fit)
    rows = [Row(FL_TITLE, key, POOLED.label, POOLED.family, "ok",
                "statsmodels logistic MLE on the pooled rows (AUC reference); bytes = "
                "exporting the rows", error=0.0, auc_gap=0.0, bytes=est.export_bytes(),
                rounds=1, seconds=m.seconds, peak_mib=m.peak_mib)]
    train = fl_train()
    base_auc = float(roc_auc_score(y, est.design(df).to_numpy() @ ref.to_numpy()))
    variants: list[Variant] = [*SECURE_SUMS, *(v for v in dp_variants(profile.epsilons)
                                                if v.mode == "central")]
    for v in variants:
        if isinstance(train, str):
            rows.append(Row(FL_TITLE, key, v.label, v.family, "not available", train))
            continue
        kwargs: dict[str, Any] = {
            "features": list(est.X), "target": est.y, "seed": 0,
            "secure_aggregation": None if v.protocol == "plain" else v.protocol,
            **dict(v.params)}
        if v.is_dp:
            import safeflow as sf

            kwargs.update(dp=sf.DP(v.epsilon, delta=FL_DELTA), clip=FL_CLIP)
        runs, gaps = [], []
        try:
            for _ in range(min(profile.dp_repeats, FL_DP_REPEATS) if v.is_dp else 1):
                mm = measure(lambda kw=kwargs: train(fed, "logistic", profile.fl_rounds, **kw))
                scores = predict_scores(mm.value.value, df)
                if scores is not None:
                    gaps.append(abs(float(roc_auc_score(y, scores)) - base_auc))
                runs.append(mm)
        except SafeflowError as e:
            rows.append(Row(FL_TITLE, key, v.label, v.family, "failed",
                            f"{type(e).__name__}: {e}"))
            continue
        gap = float(np.median(gaps)) if gaps else None
        costs = release_costs(runs[-1].value)
        note = f"{profile.fl_rounds} FedAvg rounds (+1 evaluation round without DP)"
        if v.is_dp:
            note = (f"DP-FedAvg, δ={FL_DELTA:g}, clip {FL_CLIP:g}, {profile.fl_rounds} "
                    f"rounds; median AUC gap of {len(runs)} trainings")
        rows.append(Row(FL_TITLE, key, v.label, v.family, "ok", note, error=gap,
                        auc_gap=gap, bytes=costs["bytes"], rounds=costs["rounds"],
                        seconds=statistics.median(r.seconds for r in runs),
                        peak_mib=max(r.peak_mib for r in runs),
                        epsilon=_eps(costs["epsilon"]), repeats=len(runs), errors=gaps))
    rows.append(Row(FL_TITLE, key, "dp-local", "dp-local", "skipped",
                    "DP-FedAvg in safeflow.fl is central only (customs noises each round's "
                    "secure sum)"))
    parts = [(p[list(est.X)].to_numpy(float), p[est.y].to_numpy(float)) for p in data.parts]
    fw = flower_fedavg(parts, rounds=profile.fl_rounds)
    if isinstance(fw, str):
        status, _, why = fw.partition(": ")
        rows.append(Row(FL_TITLE, key, "bare Flower FedAvg", "flower", status, why))
    else:
        gap = None
        if "weights" in fw:
            w = np.asarray(fw["weights"], float)
            X = df[list(est.X)].to_numpy(float)
            gap = abs(float(roc_auc_score(y, X @ w[:-1] + w[-1])) - base_auc)
        rows.append(Row(FL_TITLE, key, "bare Flower FedAvg", "flower", "ok",
                        "safeflow.transport.flower bare-FedAvg hook", error=gap, auc_gap=gap,
                        bytes=fw.get("bytes"), rounds=fw.get("rounds"),
                        seconds=fw.get("seconds"), peak_mib=fw.get("peak_mib")))
    return rows


# --------------------------------------------------------------------------- run


def _load() -> str:
    try:
        return "/".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


@dataclass
class Results:
    """Everything one run measured, for the report."""

    profile: Profile
    command: str
    rows: list[Row]
    points: list[Point]
    started: float
    load_start: str
    load_end: str = ""
    finished: float = 0.0
    date: str = ""
    machine: dict[str, str] = field(default_factory=dict)


def _check_peers() -> None:
    import importlib.util

    missing = [p for p in PEER_LIBRARIES if importlib.util.find_spec(p) is None]
    if missing:
        raise ImportError(
            f"the comparison benchmark needs the peer libraries {missing}; install the test "
            "extras: pip install 'safeflow[test]'")


def measure_all(profile: Profile, command: str,
                log: Callable[[str], None] = lambda s: None) -> Results:
    """Run every comparison and scaling curve of ``profile`` (no files written)."""
    from safeflow.benchmarking.machine import machine

    _check_peers()
    res = Results(profile, command, [], [], time.time(), _load(),
                  machine=machine("tenseal", "opendp", "statsmodels", "lifelines",
                                  "scikit-learn", "matplotlib", "flwr"))
    lung, breast = datasets.lung(), datasets.breast_cancer()
    feds = {id(d): datasets.federation(d.parts, d.schema, budget=BUDGET)  # type: ignore[arg-type]
            for d in (lung, breast)}
    for est in estimands(lung, breast):
        log(f"{est.title}")
        res.rows += compare_estimand(est, feds[id(est.data)], profile, log)
    log(FL_TITLE)
    res.rows += compare_fl(breast, feds[id(breast)], profile)
    for axis, values in (("rows", profile.rows_per_site), ("sites", profile.sites),
                         ("covariates", profile.covariates)):
        log(f"scaling: {axis}")
        extra = profile.cheap_rows if axis == "rows" else ()
        res.points += sweep(axis, values, profile.base, profile.cap_s, log=log,
                            cheap_only=extra, cap_mib=profile.cap_mib)
    res.load_end, res.finished = _load(), time.time()
    res.date = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return res


def run(profile: Profile, out: Path, command: str,
        log: Callable[[str], None] = lambda s: None) -> Path:
    """Measure ``profile`` and write ``out/compare.md`` and ``out/compare/*.png``."""
    from safeflow.benchmarking.report import write

    return write(measure_all(profile, command, log), out)


def default_out() -> Path:
    """``benchmarks/results`` of the checkout this module runs from, else of the cwd.

    Examples
    --------
    >>> default_out().name
    'results'
    """
    repo = Path(__file__).resolve().parents[3]
    if (repo / "benchmarks").is_dir():
        return repo / "benchmarks" / "results"
    return Path.cwd() / "benchmarks" / "results"


def main(argv: Sequence[str] | None = None, prog: str = "benchmarks/compare.py") -> int:
    """The command line: ``[--quick] [--out DIR]``; prints progress on stderr."""
    ap = argparse.ArgumentParser(
        prog=prog, description="Compare protocols on the same estimands (issue 8).")
    ap.add_argument("--quick", action="store_true", help="small CI profile (< ~60 s)")
    ap.add_argument("--out", type=Path, default=None,
                    help="directory for compare.md and compare/*.png "
                         "(default benchmarks/results)")
    args = ap.parse_args(list(sys.argv[1:] if argv is None else argv))
    given = list(sys.argv[1:] if argv is None else argv)
    launcher = ".venv/bin/python " + prog if prog.endswith(".py") else prog
    command = " ".join([launcher, shlex.join(given)]).strip()
    profile = QUICK if args.quick else FULL

    t0 = time.perf_counter()

    def log(msg: str) -> None:
        print(f"[{time.perf_counter() - t0:6.1f} s] {msg}", file=sys.stderr, flush=True)

    path = run(profile, args.out or default_out(), command, log)
    log(f"wrote {path}")
    return 0


__all__ = ["BUDGET", "CKKS_TOLS", "FULL", "PROFILES", "QUICK", "Profile", "Results", "Row",
           "compare_estimand", "compare_fl", "default_out", "main", "measure_all", "run"]
