"""Command line of a Flower deployment: ``safeflow site ...``, ``safeflow pki ...``,
``safeflow coordinator ...``.

``safeflow`` registers these sub-applications (``app.add_typer(site_app, name="site")``
...); until then, or without the main CLI, run them as
``python -m safeflow.transport.flower.cli site serve --config site.toml``.

* ``site serve --config site.toml``: the site's agent, ``flower-supernode`` and executor
  in the foreground (see :mod:`~safeflow.transport.flower.service`);
* ``site app-hash``: the hash of the Flower App this safeflow submits, to pin in
  ``site.toml``;
* ``pki init DIR --node NAME ...``: a test CA, the SuperLink's TLS certificate and one
  node-authentication key pair per site (:func:`~safeflow.transport.flower.pki.write_deployment_pki`);
* ``coordinator serve --config coordinator.toml --pki DIR``: the SuperLink with TLS and
  node authentication, customs' configuration handed to its ServerApps.

Exit codes as for every safeflow command: 0 success (or stopped by SIGINT/SIGTERM), 1 a
process died or failed to start, 2 a usage or configuration error (including the
production profile's refusals).

Examples
--------
>>> from typer.testing import CliRunner
>>> r = CliRunner().invoke(app, ["site", "--help"])
>>> r.exit_code, "serve" in r.output
(0, True)
"""  # noqa: E501

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from safeflow.errors import SafeflowError

OK, FAILED, USAGE = 0, 1, 2

site_app = typer.Typer(help="Run a site of a Flower deployment (agent, SuperNode, executor).",
                       no_args_is_help=True)
pki_app = typer.Typer(help="Test and demo certificates and node keys for a Flower "
                           "deployment.", no_args_is_help=True)
coordinator_app = typer.Typer(help="Run the coordinator's SuperLink (aggregator and customs).",
                              no_args_is_help=True)


def _fail(e: BaseException, code: int | None = None) -> typer.Exit:
    """Print ``e``; the exit code: 1 when a process failed, 2 for a configuration error."""
    from safeflow.errors import TransportError
    from safeflow.transport.flower.pki import InsecureTransport

    if code is None:
        code = FAILED if isinstance(e, TransportError) and not isinstance(
            e, InsecureTransport) else USAGE
    typer.echo(f"{type(e).__name__}: {e}", err=True)
    return typer.Exit(code)


@site_app.command("serve")
def site_serve(
    config: Annotated[Path, typer.Option("--config", "-c", help="the site's site.toml "
                                                               "(with a [supernode] table)")],
) -> None:
    """Start the site's agent, flower-supernode and executor; stop all on Ctrl-C."""
    from safeflow.transport.flower.config import load_site_config
    from safeflow.transport.flower.service import serve_site

    try:
        code = serve_site(load_site_config(config))
    except SafeflowError as e:
        raise _fail(e) from None
    raise typer.Exit(code)


@site_app.command("app-hash")
def site_app_hash() -> None:
    """Print the SHA-256 of the Flower App this safeflow submits (pin it in site.toml)."""
    from safeflow import __version__
    from safeflow.transport.flower.executor import app_hash

    digest = app_hash()
    typer.echo(digest)
    typer.echo(f"# safeflow {__version__}: add to site.toml [supernode] "
               f'pinned_app_hashes = ["{digest}"]', err=True)


@pki_app.command("init")
def pki_init(
    directory: Annotated[Path, typer.Argument(help="a new, empty directory")],
    node: Annotated[list[str], typer.Option("--node", "-n", help="a site's node name "
                                                                 "(repeatable)")],
    host: Annotated[list[str] | None, typer.Option(
        help="a name or IP the SuperNodes dial (repeatable; default 127.0.0.1, "
             "localhost)")] = None,
    days: Annotated[int, typer.Option(help="validity in days (1-825)")] = 30,
) -> None:
    """Write a test CA, the SuperLink's TLS certificate and one node key pair per site."""
    from safeflow.transport.flower.pki import write_deployment_pki

    try:
        pki = write_deployment_pki(directory, node, hosts=host or ("127.0.0.1", "localhost"),
                                   days=days)
    except SafeflowError as e:
        raise _fail(e) from None
    typer.echo(f"CA certificate      {pki.ca_cert}  (every SuperNode's root_certificates)")
    typer.echo(f"SuperLink TLS       {pki.server_cert}, {pki.server_key}")
    for name in node:
        typer.echo(f"node {name:<14} {pki.node_keys[name]} (auth_private_key; keep at the "
                   f"site), {pki.node_public_keys[name]}")
    typer.echo("register each node at the SuperLink: flwr supernode register "
               "<DIR>/nodes/<name>.pub <connection> --name <name>")
    typer.echo("these files are for tests and demonstrations; a production CA is the "
               "hospital's own", err=True)


@coordinator_app.command("serve")
def coordinator_serve(
    config: Annotated[Path, typer.Option("--config", "-c", help="coordinator.toml")],
    pki: Annotated[Path | None, typer.Option(help="directory written by `safeflow pki "
                                                   "init` (ca.pem, server.pem, server.key)")]
    = None,
    port: Annotated[int, typer.Option(help="the SuperLink's port")] = 9093,
    host: Annotated[str, typer.Option(help="the address to listen on")] = "127.0.0.1",
    profile: Annotated[str, typer.Option(help="production or test")] = "production",
    node_auth: Annotated[bool, typer.Option(help="require registered SuperNode keys")]
    = True,
) -> None:
    """Start flower-superlink (TLS, node authentication) for safeflow's ServerApps."""
    from safeflow.transport.flower.config import load_coordinator_config
    from safeflow.transport.flower.service import serve_superlink, superlink_process

    try:
        state = load_coordinator_config(config).state_dir
        files = ((pki / "server.pem", pki / "server.key", pki / "ca.pem") if pki is not None
                 else (None, None, None))
        for f in files:
            if f is not None and not f.is_file():
                raise _fail(FileNotFoundError(f"{f} does not exist; write it with "
                                              "`safeflow pki init`"), USAGE)
        spec = superlink_process(config, port=port, host=host, ssl_certfile=files[0],
                                 ssl_keyfile=files[1], ssl_ca_certfile=files[2],
                                 node_auth=node_auth, profile=profile,
                                 flwr_home=state / "flwr")
        code = serve_superlink(spec, state / "logs")
    except SafeflowError as e:
        raise _fail(e) from None
    raise typer.Exit(code)


app = typer.Typer(help="safeflow's Flower deployment commands.", no_args_is_help=True,
                  add_completion=False)
app.add_typer(site_app, name="site")
app.add_typer(pki_app, name="pki")
app.add_typer(coordinator_app, name="coordinator")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())


__all__ = ["app", "coordinator_app", "pki_app", "site_app"]
