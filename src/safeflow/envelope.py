"""Envelopes: the only form in which anything moves between parties.

Every message, also in the in-process local transport, is serialised to canonical bytes::

    b"SFE1" | header length (u32, little endian) | header | body

The header is RFC 8785 canonical JSON::

    {"arrays": [[name, dtype, shape, nbytes], ...], "blobs": [[name, nbytes], ...],
     "meta": {...}, "nonce": "<32 hex>", "protection": "masked", "receiver": "aggregator",
     "round": 0, "run": "...", "sender": "beijing", "stage": "masked_input",
     "study": "...", "v": 1}

and the body is the raw little-endian bytes of the arrays, then the blobs, in header order.
No pickle, no object graphs: only a closed set of dtypes, JSON metadata and opaque blobs
(ciphertexts, public keys). Parsing is strict: exact key set, canonical header bytes,
sizes that add up, a size limit; anything else is a :class:`~safeflow.errors.MalformedEnvelope`.

:class:`ReplayGuard` rejects replayed nonces and envelopes for another run, round, stage,
sender or receiver.

Examples
--------
>>> import numpy as np
>>> p = Payload(protection="none", meta={"k": 1}, arrays={"x": np.arange(3)})
>>> h = Header(study="s", run="r", round=0, stage="input", sender="a", receiver="b")
>>> env = Envelope(h, p)
>>> Envelope.from_bytes(env.to_bytes()).payload.arrays["x"].tolist()
[0, 1, 2]
"""

from __future__ import annotations

import json
import math
import secrets
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import rfc8785

from safeflow.errors import (
    EnvelopeTooLarge,
    MalformedEnvelope,
    ReplayedEnvelope,
    UnexpectedStage,
)

MAGIC = b"SFE1"
VERSION = 1
DEFAULT_MAX_BYTES = 1 << 30
_ALLOWED_DTYPES = {"<u8", "<i8", "<f8", "|u1", "<u4", "<i4"}
_HEADER_KEYS = {
    "arrays", "blobs", "meta", "nonce", "protection", "receiver", "round", "run",
    "sender", "stage", "study", "v",
}
_MAX_HEADER = 16 << 20


@dataclass(frozen=True)
class Payload:
    """What a message carries: JSON metadata, named arrays and opaque blobs.

    ``protection`` labels what protects the content (``none``, ``masked``,
    ``bfv-ciphertext``, ``ckks-ciphertext``, ``dp-noised``); the export gate checks it
    against the protocol spec.
    """

    protection: str = "none"
    meta: Mapping[str, Any] = field(default_factory=dict)
    arrays: Mapping[str, np.ndarray] = field(default_factory=dict)
    blobs: Mapping[str, bytes] = field(default_factory=dict)


@dataclass(frozen=True)
class Header:
    """Who sends what to whom, when; bound into every envelope."""

    study: str
    run: str
    round: int
    stage: str
    sender: str
    receiver: str
    nonce: str = field(default_factory=lambda: secrets.token_hex(16))


def _fail(why: str) -> MalformedEnvelope:
    return MalformedEnvelope(f"malformed envelope: {why}; the sender is not a conforming "
                             "safeflow party or the bytes were damaged in transit")


def _no_dupes(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        raise _fail("duplicate JSON key")
    return dict(pairs)


def _no_constants(name: str) -> Any:
    raise _fail(f"non-finite number {name} in header")


@dataclass(frozen=True)
class Envelope:
    """A header and a payload, convertible to and from canonical bytes."""

    header: Header
    payload: Payload

    def to_bytes(self) -> bytes:
        """Serialise to canonical bytes (see the module docstring)."""
        h, p = self.header, self.payload
        arrays, body = [], []
        for name, a in p.arrays.items():
            arr = np.ascontiguousarray(a)
            dt = arr.dtype.newbyteorder("<") if arr.dtype.byteorder == ">" else arr.dtype
            arr = arr.astype(dt, copy=False)
            if arr.dtype.str not in _ALLOWED_DTYPES:
                raise _fail(f"array {name!r} has unsupported dtype {arr.dtype}")
            raw = memoryview(arr).cast("B") if arr.size else b""
            arrays.append([name, arr.dtype.str, list(arr.shape), arr.nbytes])
            body.append(raw)
        blobs = []
        for name, b in p.blobs.items():
            blobs.append([name, len(b)])
            body.append(bytes(b))
        header = {
            "arrays": arrays, "blobs": blobs, "meta": dict(p.meta), "nonce": h.nonce,
            "protection": p.protection, "receiver": h.receiver, "round": h.round,
            "run": h.run, "sender": h.sender, "stage": h.stage, "study": h.study, "v": VERSION,
        }
        try:
            hb = rfc8785.dumps(header)
            roundtrip = rfc8785.dumps(json.loads(hb))
        except Exception as e:  # rfc8785 raises its own types for unrepresentable values
            raise _fail(f"metadata cannot be represented exactly in JSON ({e})") from e
        if roundtrip != hb:
            raise _fail("metadata does not survive a JSON round trip (large or odd numbers?)")
        return b"".join([MAGIC, struct.pack("<I", len(hb)), hb, *body])

    @classmethod
    def from_bytes(cls, data: bytes, *, max_bytes: int = DEFAULT_MAX_BYTES) -> Envelope:
        """Parse and validate bytes; raise a typed error for anything non-conforming."""
        if not isinstance(data, bytes | bytearray | memoryview):
            raise _fail(f"expected bytes, got {type(data).__name__}")
        if not isinstance(data, bytes):
            data = bytes(data)
        if len(data) > max_bytes:
            raise EnvelopeTooLarge(
                f"envelope of {len(data)} bytes exceeds the transport limit of {max_bytes}; "
                "split the analysis or raise max_envelope_bytes on every party"
            )
        if len(data) < 8 or data[:4] != MAGIC:
            raise _fail("missing magic bytes")
        (hlen,) = struct.unpack("<I", data[4:8])
        if hlen > _MAX_HEADER or 8 + hlen > len(data):
            raise _fail("header length out of range (truncated?)")
        hb = data[8 : 8 + hlen]
        try:
            hdr = json.loads(hb.decode("utf-8"), object_pairs_hook=_no_dupes,
                             parse_constant=_no_constants)
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
            raise _fail("header is not JSON") from e
        if not isinstance(hdr, dict) or set(hdr) != _HEADER_KEYS:
            raise _fail("header keys differ from the envelope format")
        try:
            canonical = rfc8785.dumps(hdr)
        except Exception as e:  # rfc8785 raises its own error types on odd numbers
            raise _fail("header is not canonicalisable") from e
        if canonical != hb:
            raise _fail("header is not in canonical form")
        if hdr["v"] != VERSION:
            raise _fail(f"unsupported version {hdr['v']!r}")
        for k in ("study", "run", "stage", "sender", "receiver", "protection", "nonce"):
            if not isinstance(hdr[k], str):
                raise _fail(f"{k} must be a string")
        if type(hdr["round"]) is not int or hdr["round"] < 0:
            raise _fail("round must be a non-negative integer")
        if len(hdr["nonce"]) != 32 or any(c not in "0123456789abcdef" for c in hdr["nonce"]):
            raise _fail("nonce must be 32 lowercase hex characters")
        if not isinstance(hdr["meta"], dict):
            raise _fail("meta must be an object")
        arrays, blobs, pos, body = {}, {}, 0, memoryview(data)[8 + hlen :]
        if not isinstance(hdr["arrays"], list) or not isinstance(hdr["blobs"], list):
            raise _fail("arrays and blobs must be lists")
        for item in hdr["arrays"]:
            name, dt, shape, nbytes = _array_entry(item)
            if name in arrays:
                raise _fail(f"duplicate array {name!r}")
            if pos + nbytes > len(body):
                raise _fail("body shorter than declared (truncated?)")
            arrays[name] = np.frombuffer(body[pos : pos + nbytes], dtype=dt).reshape(shape)
            pos += nbytes
        for item in hdr["blobs"]:
            if (not isinstance(item, list) or len(item) != 2 or not isinstance(item[0], str)
                    or type(item[1]) is not int or item[1] < 0):
                raise _fail("bad blob entry")
            if item[0] in blobs or item[0] in arrays:
                raise _fail(f"duplicate field {item[0]!r}")
            if pos + item[1] > len(body):
                raise _fail("body shorter than declared (truncated?)")
            blobs[item[0]] = bytes(body[pos : pos + item[1]])
            pos += item[1]
        if pos != len(body):
            raise _fail("body length differs from the header's declared sizes")
        header = Header(study=hdr["study"], run=hdr["run"], round=hdr["round"],
                        stage=hdr["stage"], sender=hdr["sender"], receiver=hdr["receiver"],
                        nonce=hdr["nonce"])
        payload = Payload(protection=hdr["protection"], meta=hdr["meta"], arrays=arrays,
                          blobs=blobs)
        return cls(header, payload)


def _array_entry(item: Any) -> tuple[str, np.dtype, tuple[int, ...], int]:
    if not isinstance(item, list) or len(item) != 4:
        raise _fail("bad array entry")
    name, dt, shape, nbytes = item
    if not isinstance(name, str) or dt not in _ALLOWED_DTYPES:
        raise _fail(f"array entry with unsupported dtype {dt!r}")
    if (not isinstance(shape, list) or len(shape) > 8
            or any(type(d) is not int or d < 0 for d in shape)):
        raise _fail("array shape must be a list of non-negative integers")
    if type(nbytes) is not int or nbytes != math.prod(shape) * np.dtype(dt).itemsize:
        raise _fail(f"array {name!r}: byte count does not match dtype and shape")
    return name, np.dtype(dt), tuple(shape), nbytes


class ReplayGuard:
    """Accepts each nonce once per run and only the (round, stage) a party expects.

    Examples
    --------
    >>> g = ReplayGuard("study", "run", me="aggregator")
    >>> h = Header("study", "run", 0, "input", "a", "aggregator")
    >>> g.accept(h, round=0, stage="input", sender="a")
    >>> g.accept(h, round=0, stage="input", sender="a")
    Traceback (most recent call last):
    ...
    safeflow.errors.ReplayedEnvelope: envelope nonce already accepted in this run (replay); ...
    """

    def __init__(self, study: str, run: str, *, me: str) -> None:
        self.study, self.run, self.me = study, run, me
        self._seen: set[str] = set()
        self._last: tuple[int, int] | None = None

    def accept(self, h: Header, *, round: int, stage: str, sender: str | None = None) -> None:
        """Raise unless ``h`` is fresh and addressed to this party for this round and stage."""
        if h.nonce in self._seen:
            raise ReplayedEnvelope("envelope nonce already accepted in this run (replay); "
                                   "it was dropped and nothing was counted twice")
        if (h.study, h.run) != (self.study, self.run):
            raise UnexpectedStage("envelope belongs to another study or run; dropped")
        if h.receiver != self.me:
            raise UnexpectedStage(f"envelope addressed to {h.receiver!r}, not {self.me!r}")
        if sender is not None and h.sender != sender:
            raise UnexpectedStage(f"envelope from {h.sender!r} where {sender!r} was expected")
        if (h.round, h.stage) != (round, stage):
            raise UnexpectedStage(
                f"envelope for round {h.round} stage {h.stage!r} arrived during round {round} "
                f"stage {stage!r}; out-of-stage messages are dropped"
            )
        self._seen.add(h.nonce)

    def accept_in_order(self, h: Header, *, order: tuple[str, ...], sender: str) -> None:
        """Like :meth:`accept` for a party that does not know the next stage in advance.

        ``(round, stage)`` must come strictly after the last accepted one, with stages in
        ``order`` (set-up stages first, in round 0).
        """
        if h.nonce in self._seen:
            raise ReplayedEnvelope("envelope nonce already accepted in this run (replay); "
                                   "it was dropped and nothing was counted twice")
        if h.stage not in order:
            raise UnexpectedStage(f"stage {h.stage!r} is not part of this protocol; dropped")
        key = (h.round, order.index(h.stage))
        if self._last is not None and key <= self._last:
            raise UnexpectedStage(
                f"envelope for round {h.round} stage {h.stage!r} arrived after a later one; "
                "out-of-order messages are dropped")
        self.accept(h, round=h.round, stage=h.stage, sender=sender)
        self._last = key
