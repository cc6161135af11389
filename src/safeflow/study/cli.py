"""Command-line functions for study files (registered by :mod:`safeflow.cli`).

* ``safeflow run STUDY.yaml [--out DIR] [--state-dir DIR] [--no-progress]``: :func:`run`
* ``safeflow study validate STUDY.yaml``: is the file valid, and would the runtime run it?
* ``safeflow study hash STUDY.yaml``: the study hash the sites approve
* ``safeflow study approve STUDY.yaml --site NAME [--state-dir DIR]``: record the site's
  approval of that hash in its audit log (the pre-assessment filing)

Defaults: ``--state-dir`` is ``out/state`` and ``--out`` is ``out/results`` next to the
study file (``out/`` is git-ignored), so ``approve`` and ``run`` find each other's state.

Exit codes, as for every ``safeflow`` command: ``0`` success; ``1`` refused or denied (an
expired study, a variable or protocol the study does not allow, a missing approval, an
analysis customs denied, a certificate that does not verify); ``2`` usage or input error
(an invalid study file, naming the line; a missing data file).

Examples
--------
>>> import typer
>>> from typer.testing import CliRunner
>>> app = typer.Typer()
>>> _ = app.command("run")(run)
>>> app.add_typer(study_app, name="study")
>>> CliRunner().invoke(app, ["study", "hash", "missing.yaml"]).exit_code
2
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from safeflow.errors import DataError, InvalidParameter, SafeflowError

study_app = typer.Typer(help="Study files: validate, hash and approve them before a run.",
                        no_args_is_help=True)
console = Console()

OK, FAILED, USAGE = 0, 1, 2

StudyArg = Annotated[Path, typer.Argument(help="the study file (YAML)")]
StateOpt = Annotated[Path | None, typer.Option(
    "--state-dir", help="state directory: keys, audit logs, approvals, ledgers "
                        "(default: out/state next to the study file)")]


def default_state_dir(study: Path) -> Path:
    """``out/state`` next to the study file.

    Examples
    --------
    >>> default_state_dir(Path("examples/x/study.yaml")).as_posix()
    'examples/x/out/state'
    """
    return study.parent / "out" / "state"


def default_out_dir(study: Path) -> Path:
    """``out/results`` next to the study file.

    Examples
    --------
    >>> default_out_dir(Path("examples/x/study.yaml")).as_posix()
    'examples/x/out/results'
    """
    return study.parent / "out" / "results"


def _fail(e: Exception, code: int) -> typer.Exit:
    label = "REFUSED" if code == FAILED else type(e).__name__
    console.print(f"[red]{label}[/red]: {escape(str(e))}", soft_wrap=True)
    fix = getattr(e, "fix", None)
    if fix:
        console.print(f"  next step: {escape(str(fix))}", soft_wrap=True)
    for note in getattr(e, "__notes__", ()):
        console.print(f"  {escape(note)}", soft_wrap=True)
    return typer.Exit(code)


def _exit_code(e: SafeflowError) -> int:
    return USAGE if isinstance(e, InvalidParameter | DataError) else FAILED


def _load(study: Path):  # type: ignore[no-untyped-def]
    from safeflow.study.load import load_study

    try:
        return load_study(study)
    except SafeflowError as e:
        raise _fail(e, USAGE) from None


@study_app.command("validate")
def validate(study: StudyArg) -> None:
    """Validate a study file; check what the runtime would refuse (exit 1) before a run."""
    from safeflow.study.enforce import check_study

    s = _load(study)
    console.print(f"[green]valid[/green]: {escape(repr(s))}", soft_wrap=True)
    for a in s.analyses:
        dp = "" if a.dp is None else f", DP ε={a.dp.epsilon}"
        console.print(f"  {a.id}: {a.type} via {a.protocol}{dp} on "
                      f"{escape(', '.join(a.variables()))}", soft_wrap=True)
    try:
        check_study(s)
    except SafeflowError as e:
        raise _fail(e, _exit_code(e)) from None
    console.print(f"study hash (sha256): {s.sha256}", soft_wrap=True)


@study_app.command("hash")
def hash_(study: StudyArg) -> None:
    """Print the study hash (SHA-256 of the canonical validated content)."""
    s = _load(study)
    typer.echo(s.sha256)


@study_app.command("approve")
def approve(
    study: StudyArg,
    site: Annotated[str, typer.Option("--site", help="the approving site (its name in the "
                                                     "study file)")],
    state_dir: StateOpt = None,
) -> None:
    """Record a site's approval of the study hash in its audit log (pre-assessment filing)."""
    from safeflow.study.approve import approve_study

    s = _load(study)
    state = state_dir if state_dir is not None else default_state_dir(study)
    try:
        a = approve_study(s, site, state_dir=state)
    except SafeflowError as e:
        raise _fail(e, _exit_code(e)) from None
    console.print(f"[green]approved[/green]: site {escape(a.site)} approved study "
                  f"{escape(s.id)} (sha256 {a.study_sha256}); audit entry {a.index} of "
                  f"{escape(str(state / 'sites' / a.site / 'audit.sqlite'))}, covered by a "
                  f"signed checkpoint of size {a.checkpoint_size}", soft_wrap=True)


def run(
    study: StudyArg,
    out: Annotated[Path | None, typer.Option(
        "--out", help="output directory (default: out/results next to the study file)")] = None,
    state_dir: StateOpt = None,
    no_progress: Annotated[bool, typer.Option("--no-progress",
                                              help="no progress bar")] = False,
) -> None:
    """Run a study file: every analysis, certified exports, audit checkpoint, report."""
    from safeflow.study.run import run_study

    s = _load(study)
    state = state_dir if state_dir is not None else default_state_dir(study)
    target = out if out is not None else default_out_dir(study)
    try:
        result = run_study(s, target, state_dir=state, progress=not no_progress,
                           console=console)
    except SafeflowError as e:
        raise _fail(e, _exit_code(e)) from None
    for o in result.denied:
        console.print(f"[red]denied[/red] {o.id}: {escape(o.rule or '-')}; next step: "
                      f"{escape(o.fix or '-')}", soft_wrap=True)
    console.print(f"report: {escape(str(result.report))}")
    raise typer.Exit(OK if result.ok else FAILED)


__all__ = ["default_out_dir", "default_state_dir", "run", "study_app"]
