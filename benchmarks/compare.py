"""Compare protocols on the same estimands: error, bytes across borders, rounds, time, memory.

For Table 1, logistic and linear regression, pooled Cox, Kaplan-Meier, log-rank and a
federated-learning model, under the pooled peer fit (pandas / statsmodels / lifelines),
``plain``, ``masking``, ``he`` BFV and CKKS, DP (central and local, ε ∈ {0.1, 0.5, 1, 2,
5}) and OpenDP's single curator; then scaling curves (rows per site, sites, covariates)
with fitted growth laws. The code is :mod:`safeflow.benchmarking` (shared with
``safeflow bench``); this script is its entry point.

Run from the repository root::

    .venv/bin/python benchmarks/compare.py              # full profile (~20 minutes)
    .venv/bin/python benchmarks/compare.py --quick      # CI profile (about a minute)
    .venv/bin/python benchmarks/compare.py --quick --out /tmp/compare

Writes ``DIR/compare.md`` and ``DIR/compare/*.png`` (default ``benchmarks/results``).
"""

from __future__ import annotations

import sys

from safeflow.benchmarking.harness import main

if __name__ == "__main__":
    sys.exit(main(prog="benchmarks/compare.py"))
