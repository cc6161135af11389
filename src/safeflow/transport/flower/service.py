"""Long-running services in the foreground: a site (agent, SuperNode, executor), a SuperLink.

:func:`serve_site` is ``safeflow site serve --config site.toml``. From the site's
``[supernode]`` table it starts, each in its own process group, with logs in
``<state_dir>/logs``:

1. the **site agent** (:mod:`~safeflow.transport.flower.agent`): data, keys, audit log,
   sessions, on its 0600 Unix socket;
2. **flower-supernode** with ``--isolation process``, TLS (``--root-certificates``), node
   authentication (``--auth-supernode-private-key``), its Runtime API on 127.0.0.1
   (``clientappio_port``) guarded by a fresh SuperExec secret (0600, in the state
   directory);
3. the **site executor** (:mod:`~safeflow.transport.flower.executor`), which answers the
   SuperNode's ClientApp tasks with safeflow's installed relay after checking the app
   bundle's hash against ``pinned_app_hashes`` (no code from a bundle runs at the site).

It keeps them in the foreground and stops all of them (process group and descendants, by
PID) on SIGINT/SIGTERM, returning 0, or as soon as one of them exits, returning 1 after
printing that process's last log lines. On Linux each of them also gets SIGTERM if the
supervising process itself is killed (``PR_SET_PDEATHSIG``), so none is left orphaned. The ``production`` profile (the default) refuses
to start without TLS, node authentication or pinned app hashes, with a typed error.

:func:`serve_superlink` does the same for the coordinator's ``flower-superlink`` (TLS,
node authentication, ``SAFEFLOW_COORDINATOR`` naming ``coordinator.toml``).

Examples
--------
>>> import tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> _ = (d / "site.toml").write_text('''
... [site]
... name = "beijing"
... jurisdiction = "CN"
... state_dir = "state"
... [supernode]
... superlink = "127.0.0.1:9092"
... profile = "production"
... ''')
>>> from safeflow.transport.flower.config import load_site_config
>>> site_processes(load_site_config(d / "site.toml"))  # doctest: +IGNORE_EXCEPTION_DETAIL
Traceback (most recent call last):
...
safeflow.transport.flower.pki.InsecureTransport: refusing to start the production profile without TLS...
"""  # noqa: E501

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from safeflow.errors import InvalidParameter, TransportError
from safeflow.transport.flower._process import HOST, flower_env, free_port, stop_processes
from safeflow.transport.flower.config import (
    COORDINATOR_ENV,
    SiteConfig,
    load_coordinator_config,
)
from safeflow.transport.flower.pki import UnpinnedApp, require_secure

TAIL_LINES = 40


@dataclass(frozen=True)
class ProcessSpec:
    """One process of a service: its command line, environment and readiness signal.

    ``ready_text`` is a line fragment its log prints once it serves; ``ready_port`` a
    ``(host, port)`` it listens on once it serves (either or both).
    """

    name: str
    args: tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=dict, repr=False)
    ready_text: str | None = None
    ready_port: tuple[str, int] | None = None


def _listening(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex((host, port)) == 0


def _term_with_parent() -> None:
    """(In the child, Linux) SIGTERM this process when its supervisor dies, even by SIGKILL."""
    if sys.platform.startswith("linux"):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG


class Supervisor:
    """Starts processes in their own sessions, watches them, stops them all by PID.

    Parameters
    ----------
    log_dir : Path
        Each process ``name`` writes to ``log_dir/name.log`` (truncated at start).
    out : text stream
        Where status lines and, when a process dies, its log tail are printed.
    """

    def __init__(self, log_dir: str | Path, out: IO[str] | None = None) -> None:
        self.log_dir = Path(log_dir)
        self.log_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.out = out or sys.stdout
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self._logs: dict[str, IO[bytes]] = {}

    def log_path(self, name: str) -> Path:
        """The log file of process ``name``."""
        return self.log_dir / f"{name}.log"

    def tail(self, name: str, lines: int = TAIL_LINES) -> str:
        """The last ``lines`` lines process ``name`` wrote."""
        path = self.log_path(name)
        text = path.read_text(errors="replace") if path.exists() else ""
        return "\n".join(text.rstrip().splitlines()[-lines:])

    def say(self, text: str) -> None:
        """One status line on ``out``."""
        print(text, file=self.out, flush=True)

    def start(self, spec: ProcessSpec, *, timeout: float = 60.0,
              cwd: str | Path | None = None) -> subprocess.Popen[bytes]:
        """Start ``spec`` and wait until it is ready (TransportError with its log tail if not)."""
        log = open(self.log_path(spec.name), "wb")  # noqa: SIM115 - closed in stop()
        self._logs[spec.name] = log
        proc = subprocess.Popen(list(spec.args), stdout=log, stderr=subprocess.STDOUT,
                                env=dict(spec.env) or None, cwd=cwd, start_new_session=True,
                                preexec_fn=_term_with_parent)
        self.procs[spec.name] = proc
        deadline = time.monotonic() + timeout
        while True:
            text_ok = spec.ready_text is None or spec.ready_text in self.tail(spec.name, 10**6)
            port_ok = spec.ready_port is None or _listening(*spec.ready_port)
            if text_ok and port_ok:
                self.say(f"started {spec.name} (pid {proc.pid}, log {self.log_path(spec.name)})")
                return proc
            if proc.poll() is not None:
                raise TransportError(f"{spec.name} exited with code {proc.returncode} while "
                                     f"starting; its log ends:\n{self.tail(spec.name)}")
            if time.monotonic() > deadline:
                raise TransportError(f"{spec.name} was not ready after {timeout:.0f} s; its "
                                     f"log ends:\n{self.tail(spec.name)}")
            time.sleep(0.1)

    def watch(self, stop: threading.Event, *, poll: float = 0.2,
              on_tick: Callable[[], None] | None = None) -> int:
        """Until ``stop`` is set (0) or a process exits (1, after printing its log tail)."""
        while not stop.wait(poll):
            for name, proc in self.procs.items():
                code = proc.poll()
                if code is not None:
                    self.say(f"{name} (pid {proc.pid}) exited with code {code}; stopping "
                             f"{', '.join(n for n in self.procs if n != name) or 'nothing'}."
                             f"\n--- last lines of {self.log_path(name)} ---\n"
                             f"{self.tail(name)}\n---")
                    return 1
            if on_tick is not None:
                on_tick()
        return 0

    def stop(self, timeout: float = 10.0) -> None:
        """Stop every process started here (process groups and descendants, by PID)."""
        stop_processes(self.procs.values(), timeout=timeout)
        for log in self._logs.values():
            log.close()
        self._logs.clear()


def _require_file(path: Path | None, what: str, where: str) -> None:
    if path is not None and not path.is_file():
        raise InvalidParameter(f"{where}: {what} {path} does not exist; fix the path in "
                               "[supernode] (relative paths are relative to site.toml)")


def site_processes(config: SiteConfig, *, runtime_port: int | None = None
                   ) -> list[ProcessSpec]:
    """The agent, SuperNode and executor of a site, after the profile's checks (typed).

    Raises
    ------
    InvalidParameter
        No ``[supernode]`` table, or a configured file is missing.
    InsecureTransport
        The production profile without TLS (``root_certificates``) or node authentication
        (``auth_private_key``).
    UnpinnedApp
        The production profile without ``pinned_app_hashes``.
    """
    sn = config.supernode
    where = str(config.path or "site.toml")
    if sn is None:
        raise InvalidParameter(
            f"{where} has no [supernode] table; add superlink = \"host:port\", "
            "root_certificates = \"ca.pem\", auth_private_key = \"node.key\" and "
            "pinned_app_hashes = [...] to serve this site over Flower")
    require_secure(sn.profile, tls=sn.root_certificates is not None,
                   node_auth=sn.auth_private_key is not None)
    if sn.profile == "production" and not sn.pinned_app_hashes:
        from safeflow.transport.flower.executor import _NO_PINS

        raise UnpinnedApp(_NO_PINS)
    _require_file(sn.root_certificates, "root_certificates", where)
    _require_file(sn.auth_private_key, "auth_private_key", where)
    if config.path is None:
        raise InvalidParameter("load the site configuration with load_site_config(path)")
    toml = str(config.path)
    port = runtime_port or sn.clientappio_port or free_port()
    secret = config.state_dir / "supernode" / "superexec.secret"
    py = sys.executable
    supernode = ["flower-supernode", "--superlink", sn.superlink, "--isolation", "process",
                 "--host", HOST, "--port", str(port),
                 "--superexec-auth-secret-file", str(secret)]
    supernode += (["--root-certificates", str(sn.root_certificates)]
                  if sn.root_certificates is not None else ["--insecure"])
    if sn.auth_private_key is not None:
        supernode += ["--auth-supernode-private-key", str(sn.auth_private_key)]
    return [
        ProcessSpec("agent", (py, "-m", "safeflow.transport.flower.agent", toml),
                    flower_env(), ready_text="ready on"),
        ProcessSpec("supernode", tuple(supernode),
                    flower_env(FLWR_HOME=str(config.state_dir / "flwr")),
                    ready_port=(HOST, port)),
        ProcessSpec("executor", (py, "-m", "safeflow.transport.flower.executor", toml,
                                 "--runtime", f"{HOST}:{port}", "--secret-file", str(secret)),
                    flower_env(), ready_text="ready on"),
    ]


def _write_secret(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, secrets.token_hex(32).encode())
    finally:
        os.close(fd)


def _stop_on_signals(stop: threading.Event) -> None:
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        signal.signal(signal.SIGINT, lambda *_: stop.set())


def serve_site(config: SiteConfig, *, out: IO[str] | None = None,
               stop: threading.Event | None = None, timeout: float = 60.0) -> int:
    """Run a site in the foreground until SIGINT/SIGTERM (0) or until a process dies (1).

    See the module docstring; typed errors (before anything starts) as in
    :func:`site_processes`, and TransportError when a process does not start.
    """
    specs = site_processes(config)
    config.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    _write_secret(config.state_dir / "supernode" / "superexec.secret")
    sup = Supervisor(config.state_dir / "logs", out)
    stop = stop or threading.Event()
    _stop_on_signals(stop)
    connected = {"done": False}

    def on_tick() -> None:
        if not connected["done"] and "SuperNode ID" in sup.tail("supernode", 10**6):
            connected["done"] = True
            sup.say(f"safeflow site {config.name}: connected to the SuperLink "
                    f"{config.supernode.superlink if config.supernode else ''}")

    try:
        for spec in specs:
            if stop.is_set():
                return 0
            sup.start(spec, timeout=timeout, cwd=config.state_dir)
        sup.say(f"safeflow site {config.name} serving (agent, supernode, executor); "
                "Ctrl-C stops all three")
        return sup.watch(stop, on_tick=on_tick)
    finally:
        sup.stop()
        sup.say(f"safeflow site {config.name} stopped")


def superlink_process(coordinator_toml: str | Path, *, port: int, host: str = HOST,
                      ssl_certfile: Path | None = None, ssl_keyfile: Path | None = None,
                      ssl_ca_certfile: Path | None = None, node_auth: bool = True,
                      profile: str = "production", flwr_home: Path | None = None
                      ) -> ProcessSpec:
    """The coordinator's ``flower-superlink`` (TLS and node authentication unless ``test``).

    Examples
    --------
    >>> superlink_process(  # doctest: +IGNORE_EXCEPTION_DETAIL
    ...     "c.toml", port=9092, node_auth=False, profile="production")
    Traceback (most recent call last):
    ...
    safeflow.transport.flower.pki.InsecureTransport: refusing to start the production ...
    """
    tls = None not in (ssl_certfile, ssl_keyfile, ssl_ca_certfile)
    require_secure(profile, tls=tls, node_auth=node_auth)
    if not tls and any(p is not None for p in (ssl_certfile, ssl_keyfile, ssl_ca_certfile)):
        raise InvalidParameter("TLS needs all three of the server certificate, its key and "
                               "the CA certificate")
    args = ["flower-superlink", "--host", host, "--port", str(port),
            "--disable-runtime-dependency-installation", "--isolation", "subprocess"]
    if tls:
        args += ["--ssl-certfile", str(ssl_certfile), "--ssl-keyfile", str(ssl_keyfile),
                 "--ssl-ca-certfile", str(ssl_ca_certfile)]
    else:
        args.append("--insecure")
    if node_auth:
        args.append("--enable-supernode-auth")
    coordinator = Path(coordinator_toml).resolve()
    load_coordinator_config(coordinator)  # typed error now rather than in every job
    env = flower_env(**{COORDINATOR_ENV: str(coordinator)},
                      **({"FLWR_HOME": str(flwr_home)} if flwr_home else {}))
    return ProcessSpec("superlink", tuple(args), env, ready_text="Uvicorn running",
                       ready_port=(HOST if host in ("0.0.0.0", "::") else host, port))


def serve_superlink(spec: ProcessSpec, log_dir: str | Path, *, out: IO[str] | None = None,
                    stop: threading.Event | None = None, timeout: float = 60.0) -> int:
    """Run the SuperLink in the foreground until SIGINT/SIGTERM (0) or it dies (1)."""
    sup = Supervisor(log_dir, out)
    stop = stop or threading.Event()
    _stop_on_signals(stop)
    try:
        sup.start(spec, timeout=timeout)
        sup.say(f"safeflow coordinator: SuperLink serving on port "
                f"{spec.ready_port[1] if spec.ready_port else '?'}; Ctrl-C stops it")
        return sup.watch(stop)
    finally:
        sup.stop()


__all__ = ["ProcessSpec", "Supervisor", "serve_site", "serve_superlink", "site_processes",
           "superlink_process"]

