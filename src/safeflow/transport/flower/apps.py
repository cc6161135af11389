"""The Flower App safeflow submits: a ServerApp (aggregator + customs) and a ClientApp (relay).

:func:`write_flower_app` writes the app directory ``flwr run`` bundles into a FAB::

    pyproject.toml          [tool.flwr.app] components and the run config key ``job``
    safeflow_app/server.py  app = build_server_app()   (safeflow.transport.flower.coordinator)
    safeflow_app/client.py  the relay (a copy of safeflow.transport.flower._relay)

The bundle carries no logic of its own beyond the relay: the SuperLink's machine runs the
ServerApp with the installed safeflow, and a site's SuperNode started by hand runs the
relay, which talks to the site's agent. Sites started with ``safeflow site serve`` run
none of the bundle: their executor hashes it, checks the hash is pinned, and answers with
the installed relay (:mod:`~safeflow.transport.flower.executor`). The bundle is built
reproducibly, so its hash (``safeflow site app-hash``) identifies the safeflow version.
Start the SuperLink and SuperNodes with runtime dependency installation disabled (the
bundle declares no dependencies).

Examples
--------
>>> import tempfile
>>> d = write_flower_app(tempfile.mkdtemp())
>>> sorted(p.name for p in (d / "safeflow_app").iterdir())
['__init__.py', 'client.py', 'server.py']
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from safeflow import __version__

APP_NAME = "safeflow-app"
PUBLISHER = "safeflow"

_PYPROJECT = f"""[build-system]
requires = ["hatchling"]
build-backend = "hatchling.build"

[project]
name = "{APP_NAME}"
version = "{__version__}"
description = "safeflow: certified federated statistics over Flower"
license = "Apache-2.0"
dependencies = []

[tool.hatch.build.targets.wheel]
packages = ["."]

[tool.flwr.app]
publisher = "{PUBLISHER}"

[tool.flwr.app.components]
serverapp = "safeflow_app.server:app"
clientapp = "safeflow_app.client:app"

[tool.flwr.app.config]
job = ""
"""

_SERVER = '''"""safeflow ServerApp: aggregator and customs (safeflow.transport.flower)."""

from safeflow.transport.flower.apps import build_server_app

app = build_server_app()
'''


def build_server_app() -> Any:
    """The Flower ``ServerApp`` whose main runs one safeflow job (imports Flower)."""
    from flwr.serverapp import ServerApp

    from safeflow.transport.flower.coordinator import serve_job

    app = ServerApp()

    @app.main()
    def main(grid: Any, context: Any) -> None:
        serve_job(grid, context)

    return app


def write_flower_app(directory: str | Path) -> Path:
    """Write (or refresh) the Flower App directory; returns its path."""
    root = Path(directory)
    pkg = root / "safeflow_app"
    pkg.mkdir(parents=True, exist_ok=True)
    files = {root / "pyproject.toml": _PYPROJECT,
             pkg / "__init__.py": '"""safeflow Flower App (generated)."""\n',
             pkg / "server.py": _SERVER,
             pkg / "client.py": Path(__file__).with_name("_relay.py").read_text()}
    for path, text in files.items():
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
    return root


__all__ = ["APP_NAME", "build_server_app", "write_flower_app"]
