"""``safeflow bench``: compare protocols on the same estimands (the code of
:mod:`safeflow.benchmarking`, the same as ``benchmarks/compare.py``).

Registered in :mod:`safeflow.cli` as ``app.command("bench")(bench)``. Needs the test
extras (statsmodels, lifelines, scikit-learn): ``pip install 'safeflow[test]'``.

Examples
--------
>>> import typer
>>> app = typer.Typer()
>>> _ = app.command("bench")(bench)
>>> from typer.testing import CliRunner
>>> "--quick" in CliRunner().invoke(app, ["--help"]).output
True
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def bench(
    quick: Annotated[bool, typer.Option(
        "--quick", help="Small profile (about a minute), as CI runs it.")] = False,
    out: Annotated[Path | None, typer.Option(
        "--out", help="Directory for compare.md and compare/*.png "
                      "(default: benchmarks/results).")] = None,
) -> None:
    """Compare protocols on the same estimands: error, bytes, rounds, time, memory, ε."""
    from safeflow.benchmarking.harness import main

    args = ["--quick"] if quick else []
    if out is not None:
        args += ["--out", str(out)]
    raise typer.Exit(main(args, prog="safeflow bench"))


__all__ = ["bench"]
