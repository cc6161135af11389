"""What travels inside Flower: safeflow envelopes as opaque bytes, and typed errors.

One Flower message of type ``query.safeflow`` carries one or more envelope byte strings
in an ``ArrayRecord`` (each an ``Array`` of ``uint8`` with ``stype`` :data:`STYPE`: the
raw bytes, chunked by Flower for transport, never parsed by numpy or pickle). The reply
carries the same number of reply envelopes, or a Flower ``Error`` whose reason is the
JSON of a safeflow error (:func:`error_to_json` / :func:`error_from_json`), so a site's
refusal comes back to the analyst as the same typed exception as in the local transport.
An ``Error`` with code :data:`UNAVAILABLE_CODE` says the site's relay could not reach its
agent (it is down): the channel counts that site as dropped out, as if it had not
answered, instead of aborting the run.

Replay protection is the envelopes' own (study, run, round, stage, sender, receiver,
nonce), checked by :class:`~safeflow.envelope.ReplayGuard` at both ends; Flower's message
ids and timestamps are not relied on.

Control stages (not protocol stages; handled by the site agent around its runtime):

* :data:`OPEN`: round 0, opens a protocol session at a site (the study's public facts:
  sites, schema, protocol, threshold, destination); the reply names the site, its
  jurisdiction and its signing key.
* :data:`COSIGN`: after customs certified a release, the site checks the certificate
  names the spec it ran and exactly the messages it sent, and returns its signature.
* :data:`CLOSE`: the session is over (denied, failed or done); the site forgets it.

Between the ClientApp (a Flower process started per message) and the long-lived site
agent, frames on a Unix socket are ``u64 length | bytes`` requests and
``status byte | u64 length | bytes`` replies (status 0: envelope, 1: error JSON).

Examples
--------
>>> from safeflow.errors import ExportRefused
>>> e = error_from_json(error_to_json(ExportRefused("no", rule="GATE-x", fix="use masking")))
>>> type(e).__name__, e.rule
('ExportRefused', 'GATE-x')
"""

from __future__ import annotations

import json
import socket
import struct
from typing import Any

from safeflow import errors as _errors
from safeflow.errors import SafeflowError, TransportError

MESSAGE_TYPE = "query.safeflow"
ACTION = "safeflow"
RECORD = "safeflow"
STYPE = "safeflow.envelope.v1"
ERROR_CODE = 7301  # Flower Error.code of a typed safeflow error (reason: JSON)
UNAVAILABLE_CODE = 7302  # the site's relay could not reach its agent: the site dropped out
OPEN, COSIGN, CLOSE = "open", "cosign", "close"
CONTROL_STAGES = (OPEN, COSIGN, CLOSE)
STATUS_OK, STATUS_ERROR = 0, 1
_LEN = struct.Struct(">Q")


def error_to_json(err: BaseException) -> str:
    """A typed error as JSON (class name, message, rule and fix; never a traceback)."""
    if isinstance(err, SafeflowError):
        name = type(err).__name__
        msg = str(err)
    else:
        name, msg = "TransportError", (f"the remote party failed with {type(err).__name__}; "
                                       "see its log")
    return json.dumps({"type": name, "message": msg, "rule": getattr(err, "rule", None),
                       "fix": getattr(err, "fix", None)}, sort_keys=True)


def _error_classes() -> dict[str, type[SafeflowError]]:
    from safeflow.transport.flower.pki import InsecureTransport, UnpinnedApp

    out: dict[str, type[SafeflowError]] = {"InsecureTransport": InsecureTransport,
                                           "UnpinnedApp": UnpinnedApp}
    for name in _errors.__all__:
        cls = getattr(_errors, name)
        if isinstance(cls, type) and issubclass(cls, SafeflowError):
            out[name] = cls
    return out


def error_from_json(text: str | None) -> SafeflowError:
    """Rebuild the typed error (only classes of :mod:`safeflow.errors`; else TransportError).

    Examples
    --------
    >>> error_from_json('{"type": "os.system", "message": "x"}')
    TransportError('x')
    """
    try:
        d = json.loads(text or "")
        name, msg = str(d["type"]), str(d["message"])
    except (ValueError, KeyError, TypeError):
        return TransportError("a remote party sent a malformed error reply; see its log")
    cls = _error_classes().get(name, TransportError)
    rule, fix = d.get("rule"), d.get("fix")
    if rule is not None or fix is not None:
        try:
            return cls(msg, rule=rule, fix=fix)  # type: ignore[call-arg]
        except TypeError:
            pass
    return cls(msg)


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(min(n - len(buf), 1 << 20))
        if not chunk:
            raise TransportError("the site agent closed the connection mid-frame; is it "
                                 "running (`safeflow site serve --config site.toml` starts "
                                 "it)?")
        buf += chunk
    return bytes(buf)


def send_frame(sock: socket.socket, data: bytes, status: int | None = None) -> None:
    """Write one frame (with a status byte when ``status`` is given)."""
    head = b"" if status is None else bytes([status])
    sock.sendall(head + _LEN.pack(len(data)))
    sock.sendall(data)


def recv_frame(sock: socket.socket, *, max_bytes: int, with_status: bool = False
               ) -> tuple[int, bytes]:
    """Read one frame; ``(status, bytes)`` (status 0 when frames carry none)."""
    status = _recv_exact(sock, 1)[0] if with_status else STATUS_OK
    (n,) = _LEN.unpack(_recv_exact(sock, _LEN.size))
    if n > max_bytes:
        raise TransportError(f"frame of {n} bytes exceeds the limit of {max_bytes}")
    return status, _recv_exact(sock, n)


class AgentUnavailable(TransportError):
    """The site agent cannot be reached, or it died mid-request (the site dropped out)."""


def agent_exchange(path: str, envelopes: list[bytes], *, max_bytes: int,
                   timeout: float = 600.0) -> list[bytes]:
    """Send envelopes to the site agent at ``path``; its replies, or raise its typed error.

    Raises :class:`AgentUnavailable` when the agent is not running or dies mid-request.
    """
    out = []
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        try:
            s.connect(path)
        except OSError as e:
            raise AgentUnavailable(
                f"cannot reach the site agent at {path} ({e.strerror}); start it with "
                "`safeflow site serve --config site.toml`") from None
        for raw in envelopes:
            try:
                send_frame(s, raw)
                status, data = recv_frame(s, max_bytes=max_bytes, with_status=True)
            except (OSError, TransportError) as e:
                raise AgentUnavailable(f"the site agent failed mid-request ({e})") from None
            if status != STATUS_OK:
                raise error_from_json(data.decode("utf-8", "replace"))
            out.append(data)
    return out


def to_record(envelopes: list[bytes]) -> Any:
    """Envelope bytes as a Flower ``RecordDict`` (imports Flower)."""
    from flwr.app import Array, ArrayRecord, RecordDict

    arrays = {str(i): Array(dtype="uint8", shape=(len(raw),), stype=STYPE, data=bytes(raw))
              for i, raw in enumerate(envelopes)}
    return RecordDict({RECORD: ArrayRecord(arrays)})


def from_record(content: Any) -> list[bytes]:
    """Envelope bytes from a Flower ``RecordDict`` (strict: our record, our stype)."""
    try:
        rec = content[RECORD]
        keys = sorted(rec.keys(), key=int)
        if keys != [str(i) for i in range(len(keys))]:
            raise ValueError
        out = []
        for k in keys:
            arr = rec[k]
            if arr.stype != STYPE or arr.dtype != "uint8":
                raise ValueError
            out.append(bytes(arr.data))
        return out
    except (KeyError, ValueError, TypeError, AttributeError):
        raise TransportError("a Flower message without safeflow envelopes arrived; only "
                             "safeflow parties may join this run") from None


__all__ = [
    "ACTION",
    "CLOSE",
    "CONTROL_STAGES",
    "COSIGN",
    "ERROR_CODE",
    "MESSAGE_TYPE",
    "OPEN",
    "STYPE",
    "UNAVAILABLE_CODE",
    "AgentUnavailable",
    "agent_exchange",
    "error_from_json",
    "error_to_json",
    "from_record",
    "recv_frame",
    "send_frame",
    "to_record",
]
