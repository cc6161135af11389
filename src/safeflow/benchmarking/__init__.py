"""Benchmarks that compare protocols on the same estimand (issue 8).

For each estimand (Table 1, logistic and linear regression, pooled Cox, Kaplan-Meier,
log-rank, a federated-learning model) and each way of computing it (the pooled fit of
pandas / statsmodels / lifelines, ``plain``, ``masking``, ``he`` BFV and CKKS, DP central
and local at ε ∈ {0.1, 0.5, 1, 2, 5}, OpenDP's single curator), the harness measures the
error against the pooled fit, bytes crossing borders, rounds, wall time, peak memory, ε
spent and what each party sees (from the protocol specs); then scaling curves of a
logistic regression against rows per site, sites and covariates with fitted log-log
slopes. One command writes ``compare.md`` and ``compare/*.png``::

    .venv/bin/python benchmarks/compare.py            # full profile
    .venv/bin/python benchmarks/compare.py --quick    # CI profile, about a minute
    safeflow bench --quick --out DIR                  # the same code, installed

The harness lives in the package (not in ``benchmarks/``) so that the installed
``safeflow bench`` command runs the same code; the peers (statsmodels, lifelines,
scikit-learn) are the test extras: ``pip install 'safeflow[test]'``.

Modules: :mod:`~safeflow.benchmarking.data` (data sets and federations),
:mod:`~safeflow.benchmarking.variants` (protocols and what each party sees),
:mod:`~safeflow.benchmarking.estimands` (pooled fits, federated calls, errors),
:mod:`~safeflow.benchmarking.peers` (OpenDP, Flower and FL hooks),
:mod:`~safeflow.benchmarking.measure` (time and peak memory),
:mod:`~safeflow.benchmarking.scaling` (curves and growth fits),
:mod:`~safeflow.benchmarking.harness` (profiles, the run, the command line),
:mod:`~safeflow.benchmarking.report` (markdown and plots),
:mod:`~safeflow.benchmarking.machine` (the machine description).

Examples
--------
>>> from safeflow.benchmarking.harness import PROFILES
>>> sorted(PROFILES)
['full', 'quick']
"""

from safeflow.benchmarking.harness import FULL, PROFILES, QUICK, Profile, main, run

__all__ = ["FULL", "PROFILES", "QUICK", "Profile", "main", "run"]
