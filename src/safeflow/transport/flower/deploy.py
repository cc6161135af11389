"""A whole Flower deployment on one machine (loopback only), for tests, demos and benchmarks.

:class:`LocalDeployment` starts a real ``flower-superlink`` (TLS, node authentication),
and per site either a safeflow site agent and a ``flower-supernode`` running the bundled
relay (:meth:`~LocalDeployment.start_agent`, :meth:`~LocalDeployment.start_supernode`) or
the whole site as its operator would, with ``safeflow site serve``
(:meth:`~LocalDeployment.start_site`: agent, SuperNode in process isolation, executor with
pinned app hashes). It registers each node's key with ``flwr supernode register``, and
stops every process it started, by process group and by PID (descendants included), also
when a test fails. Flower's telemetry and update check are switched off (no traffic leaves
the machine).

Examples
--------
>>> free_port() > 1024
True
>>> flower_env({"PATH": "/usr/bin"})["FLWR_TELEMETRY_ENABLED"]
'0'
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from safeflow.errors import TransportError
from safeflow.transport.flower._process import (
    HOST,
    children,
    flower_env,
    free_port,
    stop_processes,
)
from safeflow.transport.flower.config import SITE_NODE_CONFIG
from safeflow.transport.flower.pki import DeploymentPKI, write_deployment_pki
from safeflow.transport.flower.submit import FlowerCLI, FlowerConnection


class LocalDeployment:
    """SuperLink, site agents and SuperNodes on 127.0.0.1; stop() ends them all.

    Parameters
    ----------
    root : Path
        An empty working directory (PKI, Flower homes, logs).
    coordinator_toml : Path
        The coordinator's configuration, handed to the SuperLink's ServerApps.
    tls, node_auth : bool
        Secure by default; turning either off is for the refusal tests.
    """

    def __init__(self, root: str | Path, coordinator_toml: str | Path, *,
                 sites: Sequence[str] = (), tls: bool = True, node_auth: bool = True) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "logs").mkdir(exist_ok=True)
        self.coordinator_toml = Path(coordinator_toml)
        self.tls, self.node_auth = tls, node_auth
        self.pki: DeploymentPKI = write_deployment_pki(self.root / "pki",
                                                       [*sites, "unregistered"])
        self.port = free_port()
        self.address = f"{HOST}:{self.port}"
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self._logs: dict[str, IO[bytes]] = {}
        self.connection = FlowerConnection(
            self.address, root_certificates=self.pki.ca_cert if tls else None,
            insecure=not tls, node_auth=node_auth, profile="production" if tls and node_auth
            else "test")
        self.cli = FlowerCLI(self.connection, self.root / "flwr-cli")

    def log(self, name: str) -> str:
        """The output of process ``name`` so far."""
        path = self.root / "logs" / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def _start(self, name: str, args: Sequence[str], env: Mapping[str, str]) -> None:
        if name in self.procs:
            self.stop_process(name)
        log = open(self.root / "logs" / f"{name}.log", "wb")  # noqa: SIM115 - kept open
        self._logs[name] = log
        self.procs[name] = subprocess.Popen(list(args), stdout=log, stderr=subprocess.STDOUT,
                                            env=dict(env), cwd=self.root,
                                            start_new_session=True)

    def _wait(self, name: str, ready: Any, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if ready():
                return
            proc = self.procs.get(name)
            if proc is not None and proc.poll() is not None:
                raise TransportError(f"{what} exited ({proc.returncode}): "
                                     f"{self.log(name)[-1500:]}")
            time.sleep(0.1)
        raise TransportError(f"{what} not ready after {timeout:.0f} s: {self.log(name)[-1500:]}")

    def start_superlink(self, timeout: float = 60.0,
                        extra_env: Mapping[str, str] | None = None) -> None:
        """Start the SuperLink (TLS and node authentication unless turned off)."""
        from safeflow.transport.flower.service import superlink_process

        spec = superlink_process(
            self.coordinator_toml, port=self.port,
            ssl_certfile=self.pki.server_cert if self.tls else None,
            ssl_keyfile=self.pki.server_key if self.tls else None,
            ssl_ca_certfile=self.pki.ca_cert if self.tls else None, node_auth=self.node_auth,
            profile="production" if self.tls and self.node_auth else "test",
            flwr_home=self.root / "flwr-superlink")

        def up() -> bool:
            with socket.socket() as s:
                s.settimeout(0.2)
                return s.connect_ex((HOST, self.port)) == 0 and "Uvicorn running" in \
                    self.log("superlink")

        self._start("superlink", spec.args, {**spec.env, **dict(extra_env or {})})
        self._wait("superlink", up, timeout, "flower-superlink")

    def start_agent(self, name: str, site_toml: str | Path, socket_path: Path | None = None,
                    timeout: float = 60.0, env: Mapping[str, str] | None = None) -> None:
        """Start the site agent of ``name`` and wait for its socket."""
        self._start(f"agent-{name}", [sys.executable, "-m", "safeflow.transport.flower.agent",
                                      str(site_toml)], flower_env(**dict(env or {})))
        self._wait(f"agent-{name}", lambda: "ready on" in self.log(f"agent-{name}"),
                   timeout, f"the site agent of {name}")

    def supernode_table(self, name: str, *, pins: Sequence[str] = (),
                        profile: str | None = None) -> str:
        """The ``[supernode]`` table of ``site.toml`` for site ``name`` in this deployment.

        TLS and node authentication as the deployment runs them; ``profile`` defaults to
        ``production`` when both are on.
        """
        profile = profile or ("production" if self.tls and self.node_auth else "test")
        lines = ["[supernode]", f'superlink = "{self.address}"', f'profile = "{profile}"',
                 "pinned_app_hashes = [" + ", ".join(f'"{p}"' for p in pins) + "]"]
        if self.tls:
            lines.append(f'root_certificates = "{self.pki.ca_cert}"')
        if self.node_auth:
            lines.append(f'auth_private_key = "{self.pki.node_keys[name]}"')
        return "\n".join(lines) + "\n"

    def start_site(self, name: str, site_toml: str | Path, *,
                   env: Mapping[str, str] | None = None, wait: bool = True,
                   timeout: float = 90.0) -> None:
        """``safeflow site serve --config site_toml`` as process ``site-<name>``.

        Waits until its SuperNode is connected to the SuperLink (unless ``wait`` is false).
        """
        self._start(f"site-{name}", [sys.executable, "-m", "safeflow.transport.flower.cli",
                                     "site", "serve", "--config", str(site_toml)],
                    flower_env(**dict(env or {})))
        if wait:
            self.wait_site(name, timeout)

    def wait_site(self, name: str, timeout: float = 90.0) -> None:
        """Wait until ``safeflow site serve`` of ``name`` reports its SuperNode connected."""
        self._wait(f"site-{name}", lambda: "connected to the SuperLink" in
                   self.log(f"site-{name}"), timeout, f"`safeflow site serve` of {name}")

    def register(self, name: str) -> int:
        """Register the node key of ``name`` at the SuperLink under that name."""
        return self.cli.register_node(self.pki.node_public_keys[name], name)

    def start_supernode(self, name: str, site_toml: str | Path | None, *,
                        key: str | None = None, wait: bool = True, timeout: float = 60.0,
                        extra: Sequence[str] = ()) -> None:
        """Start a SuperNode for site ``name`` (with that site's key, or ``key``'s)."""
        args = ["flower-supernode", "--superlink", self.address, "--host", HOST,
                "--port", str(free_port())]
        args += (["--root-certificates", str(self.pki.ca_cert)] if self.tls
                 else ["--insecure"])
        if self.node_auth:
            args += ["--auth-supernode-private-key", str(self.pki.node_keys[key or name])]
        if site_toml is not None:
            args += ["--node-config", f'{SITE_NODE_CONFIG}="{Path(site_toml).resolve()}"']
        args += list(extra)
        self._start(f"supernode-{name}", args,
                    flower_env(FLWR_HOME=str(self.root / f"flwr-{name}")))
        if wait:
            self._wait(f"supernode-{name}", lambda: "SuperNode ID" in
                       self.log(f"supernode-{name}"), timeout, f"the SuperNode of {name}")

    def stop_process(self, name: str, timeout: float = 10.0) -> None:
        """Stop process ``name`` (its group and descendants, by PID) and close its log."""
        proc = self.procs.pop(name, None)
        if proc is not None:
            stop_processes([proc], timeout=timeout)
        log = self._logs.pop(name, None)
        if log is not None:
            log.close()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop every process started here: process groups, then descendants, by PID."""
        stop_processes(self.procs.values(), timeout=timeout)
        for log in self._logs.values():
            log.close()
        self._logs.clear()

    def pids(self) -> set[int]:
        """PIDs of every live process started here and of their descendants."""
        out: set[int] = set()
        for proc in self.procs.values():
            if proc.poll() is None:
                out.add(proc.pid)
            out.update(children(proc.pid))
        return out

    def __enter__(self) -> LocalDeployment:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


__all__ = ["LocalDeployment", "flower_env", "free_port"]
