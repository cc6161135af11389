"""Starting and stopping the processes of a deployment: by process group and by PID.

Every process safeflow starts for Flower (SuperLink, SuperNodes, site agents, executors)
runs in its own session (``start_new_session=True``), so it and everything it spawns
(Flower's SuperExec, ServerApps, ClientApps) share one process group. :func:`stop_processes`
ends them all: SIGTERM to each group and to every descendant found in ``/proc`` (a
descendant may have left the group), a grace period, then SIGKILL for whatever is left.
Nothing is ever stopped by name.

Examples
--------
>>> import subprocess, sys
>>> p = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"],
...                      start_new_session=True)
>>> stop_processes([p], timeout=5)
>>> p.poll() is not None
True
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

HOST = "127.0.0.1"


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (the OS picks it).

    Examples
    --------
    >>> 1024 < free_port() < 65536
    True
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def flower_env(base: Mapping[str, str] | None = None, **extra: str) -> dict[str, str]:
    """Environment for Flower processes: this venv first on PATH, no telemetry.

    Examples
    --------
    >>> flower_env({"PATH": "/usr/bin"})["FLWR_TELEMETRY_ENABLED"]
    '0'
    """
    env = dict(os.environ if base is None else base)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.update({"FLWR_TELEMETRY_ENABLED": "0", "FLWR_DISABLE_UPDATE_CHECK": "1",
                "FLWR_SUPEREXEC_TASK_POLL_INTERVAL": "0.1", "PYTHONUNBUFFERED": "1"})
    env.update(extra)
    return env


def children(pid: int) -> list[int]:
    """Every descendant of ``pid`` (from /proc), parents before their children.

    Examples
    --------
    >>> children(os.getpid()) == [] or all(isinstance(p, int) for p in children(os.getpid()))
    True
    """
    parents: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        parents.setdefault(ppid, []).append(int(d.name))
    out, todo = [], [pid]
    while todo:
        for c in parents.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def _signal(pids: Iterable[int], groups: Iterable[int], sig: int) -> None:
    for pgid in groups:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, sig)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


def stop_processes(procs: Iterable[subprocess.Popen[bytes]], timeout: float = 10.0) -> None:
    """Stop ``procs`` and everything they started: SIGTERM, grace period, then SIGKILL.

    Each process must have been started with ``start_new_session=True`` (its PID is its
    process group id). In order: SIGTERM to each process group (a supervisor such as
    ``safeflow site serve`` then stops its own children gracefully, each signalled once),
    a wait of up to half of ``timeout``; SIGTERM to every descendant still alive (by PID,
    as found in /proc before anything was signalled, so orphans are not missed), a wait
    until ``timeout``; SIGKILL to whatever is left. Exited processes are reaped.
    """
    procs = list(procs)
    family = {pid for p in procs for pid in (p.pid, *children(p.pid))}
    groups = [p.pid for p in procs]
    _signal([], groups, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    _wait(procs, family, time.monotonic() + timeout / 2)
    family |= {pid for p in procs if p.poll() is None for pid in children(p.pid)}
    _signal([pid for pid in family if _alive(pid)], [], signal.SIGTERM)
    _wait(procs, family, deadline)
    _signal([pid for pid in family if _alive(pid)], groups, signal.SIGKILL)
    for proc in procs:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)


def _wait(procs: list[subprocess.Popen[bytes]], pids: set[int], until: float) -> None:
    """Until every process has exited (reaping ours) or ``until`` passes."""
    while time.monotonic() < until:
        running = [p for p in procs if p.poll() is None]
        if not running and not any(_alive(pid) for pid in pids):
            return
        time.sleep(0.05)


def _alive(pid: int) -> bool:
    """``pid`` runs and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


__all__ = ["HOST", "children", "flower_env", "free_port", "stop_processes"]
