"""``safeflow``: the command line for site operators, regulators and analysts.

Exit codes (every command): ``0`` success (verified, exportable); ``1`` the check failed
(a certificate, proof or log does not verify; a decision does not allow export; a budget
is exhausted); ``2`` usage or input error (missing file, malformed JSON).

Examples
--------
>>> from typer.testing import CliRunner
>>> CliRunner().invoke(app, ["version"]).output.startswith("safeflow")
True
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from safeflow import __version__
from safeflow.bench import bench
from safeflow.errors import SafeflowError
from safeflow.study.cli import run as run_study_command
from safeflow.study.cli import study_app
from safeflow.transport.flower.cli import coordinator_app, pki_app, site_app

app = typer.Typer(help="Privacy-preserving cross-border analytics: run studies, verify, "
                       "audit, decide.",
                  no_args_is_help=True, add_completion=False)
audit_app = typer.Typer(help="Merkle audit logs.", no_args_is_help=True)
policy_app = typer.Typer(help="Policy packs and decisions.", no_args_is_help=True)
budget_app = typer.Typer(help="Differential-privacy budget ledgers.", no_args_is_help=True)
app.add_typer(audit_app, name="audit")
app.add_typer(policy_app, name="policy")
app.add_typer(budget_app, name="budget")
app.add_typer(study_app, name="study")
app.add_typer(site_app, name="site")
app.add_typer(pki_app, name="pki")
app.add_typer(coordinator_app, name="coordinator")
app.command("run")(run_study_command)
app.command("bench")(bench)
console = Console()

OK, FAILED, USAGE = 0, 1, 2


def _keys(pairs: list[str] | None) -> dict[str, object] | None:
    """``NAME=HEX`` public keys given out of band."""
    if not pairs:
        return None
    from safeflow.crypto.keys import VerifyKey

    out = {}
    for item in pairs:
        name, sep, hexkey = item.partition("=")
        if not sep:
            console.print(f"[red]--key takes NAME=HEX; got {item!r}[/red]")
            raise typer.Exit(USAGE)
        out[name] = VerifyKey.from_bytes(bytes.fromhex(hexkey))
    return out


@app.command()
def version() -> None:
    """Print the version."""
    console.print(f"safeflow {__version__}")


@app.command()
def verify(
    directory: Annotated[Path, typer.Argument(help="an export directory (certificate.json "
                                                   "and the value files)")],
    key: Annotated[list[str] | None, typer.Option(help="trusted signer key NAME=HEX "
                                                       "(repeatable)")] = None,
) -> None:
    """Verify an exported release offline: signatures, audit proof and value files."""
    from safeflow.policy.export import verify_export

    if not directory.is_dir():
        console.print(f"[red]{directory} is not a directory[/red]")
        raise typer.Exit(USAGE)
    try:
        report = verify_export(directory, trusted=_keys(key))
    except SafeflowError as e:
        console.print(f"[red]NOT VERIFIED[/red]: {e}")
        raise typer.Exit(FAILED) from None
    console.print(f"[green]verified[/green]: {report.outcome}, output sha256 "
                  f"{report.output_sha256}, signed by {', '.join(report.signers)}, "
                  f"audit entry {report.audit_index} of {report.audit_size} in {report.log_id}"
                  + ("" if report.trusted_keys else
                     " [yellow](signer keys not pinned: pass --key NAME=HEX)[/yellow]"))


@audit_app.command("verify")
def audit_verify(
    log: Annotated[Path, typer.Argument(help="the audit log (SQLite)")],
    key: Annotated[str, typer.Option(help="the log's public key (hex)")],
) -> None:
    """Recompute a Merkle audit log and check every signed checkpoint."""
    from safeflow.crypto.keys import VerifyKey
    from safeflow.policy.audit import verify_log

    if not log.is_file():
        console.print(f"[red]{log} is not a file[/red]")
        raise typer.Exit(USAGE)
    try:
        report = verify_log(log, VerifyKey.from_bytes(bytes.fromhex(key)))
    except (SafeflowError, ValueError) as e:
        console.print(f"[red]NOT VERIFIED[/red]: {e}")
        raise typer.Exit(FAILED) from None
    console.print(f"[green]verified[/green]: {report}")


@policy_app.command("check")
def policy_check(
    facts: Annotated[Path, typer.Argument(help="facts as JSON (POLICY.md schema)")],
    pack: Annotated[list[Path] | None, typer.Option(help="extra pack file (repeatable)")] = None,
    sdc_profile: Annotated[str, typer.Option(help="acro, ohdsi or datashield")] = "acro",
) -> None:
    """Decide one candidate output from its facts, as customs would."""
    from safeflow.policy import default_packs, evaluate, load_pack

    try:
        data = json.loads(facts.read_text())
    except (OSError, json.JSONDecodeError) as e:
        console.print(f"[red]cannot read facts: {e}[/red]")
        raise typer.Exit(USAGE) from None
    try:
        packs = (*default_packs(sdc_profile), *(load_pack(p) for p in pack or ()))
        d = evaluate(data, packs=packs, sdc_profile=sdc_profile)
    except SafeflowError as e:
        console.print(f"[red]{type(e).__name__}[/red]: {e}")
        raise typer.Exit(USAGE) from None
    colour = "green" if d.exportable else "red"
    console.print(f"[{colour}]{d.outcome.value}[/{colour}] by {', '.join(d.rules) or '-'}")
    for o in d.obligations:
        console.print(f"  obligation: {o}")
    for f in dict.fromkeys(d.fixes):
        console.print(f"  next step: {f}")
    raise typer.Exit(OK if d.exportable else FAILED)


@budget_app.command("show")
def budget_show(ledger: Annotated[Path, typer.Argument(
        help="a budget ledger (SQLite), or a federation state directory (all its sites)")]
) -> None:
    """Print spent and remaining ε (and δ) per site dataset."""
    from safeflow.dp import BudgetLedger

    if ledger.is_dir():
        files = sorted(ledger.glob("sites/*/budget.sqlite"))
        if not files:
            console.print(f"[red]{ledger} holds no site budget ledgers "
                          "(sites/<site>/budget.sqlite)[/red]")
            raise typer.Exit(USAGE)
    elif ledger.is_file():
        files = [ledger]
    else:
        console.print(f"[red]{ledger} is neither a ledger file nor a state directory[/red]")
        raise typer.Exit(USAGE)
    per_site = ledger.is_dir()
    table = Table(*(["site"] if per_site else []), "dataset", "ε total", "ε spent",
                  "ε remaining", "δ remaining", "queries")
    for f in files:
        with BudgetLedger(f) as led:
            rows = led.show()
        for r in rows:
            table.add_row(*([f.parent.name] if per_site else []), str(r["dataset"]),
                          str(r["total"]), str(r["spent"]), str(r["remaining"]),
                          str(r["delta_remaining"]), str(r["queries"]))
    console.print(table)


def main() -> None:  # pragma: no cover - console script
    """Console-script entry point."""
    app()
