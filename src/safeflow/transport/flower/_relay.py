"""safeflow's Flower ClientApp: relays envelope bytes between the SuperNode and the site agent.

This file is copied verbatim into the Flower App Bundle (``safeflow_app/client.py``): it
imports only the standard library and Flower, so the ``flwr-clientapp`` process that
Flower starts for every message stays small and never sees patient rows, keys or the
site's sessions. It finds the agent's socket from the site's ``site.toml``, whose path is
the SuperNode's node config ``safeflow-site``. When the agent cannot be reached (not
running, or it died mid-request) the reply is a Flower ``Error`` with code 7302, which the
coordinator counts as this site dropping out.

Sites started with ``safeflow site serve`` never run this file: their SuperNode runs in
process isolation and the site's installed executor
(:mod:`safeflow.transport.flower.executor`) answers in its place, after checking the app
bundle's hash against the site's pins.
"""

from __future__ import annotations

import json
import socket
import struct
import tomllib
from pathlib import Path
from typing import Any

try:
    from flwr.app import Array, ArrayRecord, Error, Message, RecordDict
    from flwr.clientapp import ClientApp
except ImportError:  # safeflow without Flower: this module is only the bundle's template
    ClientApp = None  # type: ignore[assignment,misc]

RECORD, STYPE, ERROR_CODE, UNAVAILABLE_CODE = "safeflow", "safeflow.envelope.v1", 7301, 7302
_LEN = struct.Struct(">Q")
_MAX = 1 << 31


class _AgentError(Exception):
    def __init__(self, payload: str, *, unavailable: bool = False) -> None:
        super().__init__(payload)
        self.payload = payload
        self.code = UNAVAILABLE_CODE if unavailable else ERROR_CODE


def _error(kind: str, message: str) -> str:
    return json.dumps({"type": kind, "message": message, "rule": None, "fix": None})


def socket_path(node_config: Any) -> str:
    """The agent socket named by the site.toml in the node config ``safeflow-site``."""
    site = node_config.get("safeflow-site") if node_config else None
    if not isinstance(site, str) or not site:
        raise _AgentError(_error("TransportError", "this SuperNode has no node config "
                                 "safeflow-site; start it with --node-config "
                                 "'safeflow-site=\"/path/site.toml\"'"))
    path = Path(site)
    s = tomllib.loads(path.read_text(encoding="utf-8"))["site"]
    base = path.resolve().parent
    sock = Path(s.get("socket") or Path(s["state_dir"]) / "agent.sock").expanduser()
    return str(sock if sock.is_absolute() else base / sock)


def _recv(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(min(n - len(buf), 1 << 20))
        if not chunk:
            raise _AgentError(_error("TransportError", "the site agent closed the connection"),
                              unavailable=True)
        buf += chunk
    return bytes(buf)


def exchange(path: str, envelopes: list[bytes], timeout: float = 600.0) -> list[bytes]:
    """Envelopes to the agent, replies back (an agent error becomes :class:`_AgentError`)."""
    out = []
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        try:
            s.connect(path)
        except OSError as e:
            raise _AgentError(_error("TransportError", f"cannot reach the site agent "
                                     f"({e.strerror}); start it with python -m "
                                     "safeflow.transport.flower.agent site.toml"),
                              unavailable=True) from None
        for raw in envelopes:
            try:
                s.sendall(_LEN.pack(len(raw)) + raw)
                status = _recv(s, 1)[0]
                (n,) = _LEN.unpack(_recv(s, _LEN.size))
                if n > _MAX:
                    raise _AgentError(_error("TransportError", "oversized agent reply"))
                data = _recv(s, n)
            except OSError as e:  # the agent died mid-request (or hung past the timeout)
                raise _AgentError(_error("TransportError", "the site agent failed mid-"
                                         f"request ({type(e).__name__})"),
                                  unavailable=True) from None
            if status != 0:
                raise _AgentError(data.decode("utf-8", "replace"))
            out.append(data)
    return out


def relay(message: Any, context: Any) -> Any:
    """Answer one ``query.safeflow`` message with the agent's reply envelopes."""
    try:
        rec = message.content[RECORD]
        keys = sorted(rec.keys(), key=int)
        envs = [bytes(rec[k].data) for k in keys if rec[k].stype == STYPE]
        if len(envs) != len(keys):
            raise _AgentError(_error("MalformedEnvelope", "not a safeflow message"))
        replies = exchange(socket_path(context.node_config), envs)
        arrays = {str(i): Array(dtype="uint8", shape=(len(r),), stype=STYPE, data=r)
                  for i, r in enumerate(replies)}
        return Message(RecordDict({RECORD: ArrayRecord(arrays)}), reply_to=message)
    except _AgentError as e:
        return Message(Error(code=e.code, reason=e.payload), reply_to=message)
    except Exception as e:
        return Message(Error(code=ERROR_CODE, reason=_error(
            "TransportError", f"the site relay failed ({type(e).__name__})")),
            reply_to=message)


app = ClientApp() if ClientApp is not None else None
if app is not None:
    app.query("safeflow")(relay)
