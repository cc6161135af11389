"""Protocol specs (``protocols/*.yaml``) and the site export gate that enforces them.

A spec is an executable contract: it lists the protocol's roles, parameters with their
secure ranges, phases (the order of stages) and every message with its sender, receiver,
protection, fields, size formula and what it reveals to whom. The code loads it; the
:class:`ExportGate` at each site refuses any outgoing message the spec does not declare,
with another protection, with undeclared fields, or with a statistics vector whose length
is not the round's public layout (so a raw row can never leave). Certificates name a spec
by :attr:`ProtocolSpec.sha256`.

Specs ship inside the wheel as ``safeflow/_specs/*.yaml`` (built from the repository's
top-level ``protocols/`` folder); an editable checkout reads that folder directly.

Examples
--------
>>> spec = load_spec("masking")
>>> spec.phases["round"]
('scale', 'masked_input', 'unmask')
>>> len(spec.sha256)
64
"""

from __future__ import annotations

import fnmatch
import hashlib
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from safeflow.envelope import Payload
from safeflow.errors import ExportRefused, SpecError

PROTECTIONS = frozenset(
    {"none", "masked", "aead-encrypted", "bfv-ciphertext", "ckks-ciphertext", "dp-noised"}
)
ROLES = frozenset({"site", "aggregator", "customs"})
#: what a message carries, for the jurisdiction's export-gate rules (policy packs)
CONTENTS = frozenset({"statistics", "keys", "shares", "control"})
_FIELD_KINDS = frozenset({"meta", "blob", "array"})


@dataclass(frozen=True)
class FieldSpec:
    """One declared field of a message (a name or ``fnmatch`` pattern)."""

    pattern: str
    kind: str
    dtype: str | None = None
    length: str | None = None


@dataclass(frozen=True)
class MessageSpec:
    """One declared message: who sends it to whom, how it is protected, what it reveals."""

    stage: str
    sender: str
    receiver: str
    content: str
    crosses_border: bool
    protections: tuple[str, ...]
    fields: tuple[FieldSpec, ...]
    size: str
    reveals: dict[str, str]


@dataclass(frozen=True)
class ProtocolSpec:
    """A loaded, validated protocol spec."""

    name: str
    version: int
    title: str
    parameters: dict[str, Any]
    phases: dict[str, tuple[str, ...]]
    messages: tuple[MessageSpec, ...]
    sha256: str
    source: str

    def message(self, stage: str, sender: str) -> MessageSpec | None:
        """The declared message of ``stage`` sent by role ``sender``, or ``None``."""
        for m in self.messages:
            if m.stage == stage and m.sender == sender:
                return m
        return None

    @property
    def stage_order(self) -> tuple[str, ...]:
        """Setup stages, then round stages: the order a site accepts them in."""
        return self.phases["setup"] + self.phases["round"]


def _specs_dir() -> Path:
    packaged = resources.files("safeflow") / "_specs"
    if packaged.is_dir():
        return Path(str(packaged))
    repo = Path(__file__).resolve().parents[3] / "protocols"
    if repo.is_dir():
        return repo
    raise SpecError("protocol specs not found: reinstall safeflow (the wheel ships them)")


def _err(src: str, why: str) -> SpecError:
    return SpecError(f"protocol spec {src}: {why}")


def parse_spec(text: bytes, source: str) -> ProtocolSpec:
    """Parse and validate a spec from YAML bytes.

    Raises :class:`~safeflow.errors.SpecError` naming the file and the problem.
    """
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise _err(source, f"not valid YAML ({e})") from e
    if not isinstance(raw, dict):
        raise _err(source, "top level must be a mapping")
    for key in ("protocol", "version", "title", "parameters", "phases", "messages"):
        if key not in raw:
            raise _err(source, f"missing key {key!r}")
    phases = raw["phases"]
    if not isinstance(phases, dict) or set(phases) != {"setup", "round"}:
        raise _err(source, "phases must list 'setup' and 'round' stages")
    messages = []
    for i, m in enumerate(raw["messages"] or []):
        where = f"message {i + 1}"
        if not isinstance(m, dict):
            raise _err(source, f"{where} must be a mapping")
        for key in ("stage", "sender", "receiver", "crosses_border", "protection", "fields",
                    "size", "reveals"):
            if key not in m:
                raise _err(source, f"{where} lacks {key!r}")
        if m.get("content") not in CONTENTS:
            raise _err(source, f"{where}: content must be one of {sorted(CONTENTS)}")
        if m["sender"] not in ROLES or m["receiver"] not in ROLES:
            raise _err(source, f"{where}: sender and receiver must be one of {sorted(ROLES)}")
        prot = m["protection"] if isinstance(m["protection"], list) else [m["protection"]]
        if not prot or any(p not in PROTECTIONS for p in prot):
            raise _err(source, f"{where}: protection must be among {sorted(PROTECTIONS)}")
        fields = []
        for name, f in (m["fields"] or {}).items():
            f = {"kind": f} if isinstance(f, str) else f
            if not isinstance(f, dict) or f.get("kind") not in _FIELD_KINDS:
                raise _err(source, f"{where}: field {name!r} needs kind meta, blob or array")
            fields.append(FieldSpec(str(name), f["kind"], f.get("dtype"), f.get("length")))
        if m["stage"] not in phases["setup"] + phases["round"]:
            raise _err(source, f"{where}: stage {m['stage']!r} is in no phase")
        messages.append(MessageSpec(
            stage=m["stage"], sender=m["sender"], receiver=m["receiver"], content=m["content"],
            crosses_border=bool(m["crosses_border"]), protections=tuple(prot),
            fields=tuple(fields), size=str(m["size"]), reveals=dict(m["reveals"]),
        ))
    return ProtocolSpec(
        name=str(raw["protocol"]), version=int(raw["version"]), title=str(raw["title"]),
        parameters=dict(raw["parameters"]),
        phases={k: tuple(v or ()) for k, v in phases.items()},
        messages=tuple(messages), sha256=hashlib.sha256(text).hexdigest(), source=source,
    )


@cache
def load_spec(name: str) -> ProtocolSpec:
    """Load the packaged spec of protocol ``name`` (``plain``, ``masking``, ``he``)."""
    path = _specs_dir() / f"{name}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in _specs_dir().glob("*.yaml"))
        raise SpecError(f"no protocol spec named {name!r}; known: {known}")
    spec = parse_spec(path.read_bytes(), path.name)
    if spec.name != name:
        raise _err(path.name, f"declares protocol {spec.name!r}, expected {name!r}")
    return spec


class ExportGate:
    """A site's last check before a message leaves: is it exactly what the spec declares?

    Examples
    --------
    >>> import numpy as np
    >>> gate = ExportGate(load_spec("plain"), site="beijing")
    >>> gate.check("plain_input", Payload("none", arrays={"row": np.zeros(3, "<u8")}),
    ...            layout_size=3)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    safeflow.errors.ExportRefused: export gate at 'beijing' refused a 'plain_input' message: ...
    """

    def __init__(self, spec: ProtocolSpec, *, site: str) -> None:
        self.spec, self.site = spec, site

    def _refuse(self, stage: str, why: str) -> ExportRefused:
        return ExportRefused(
            f"export gate at {self.site!r} refused a {stage!r} message: {why}; nothing was sent"
        )

    def check(self, stage: str, payload: Payload, *, layout_size: int | None) -> None:
        """Raise :class:`~safeflow.errors.ExportRefused` unless the message is declared."""
        msg = self.spec.message(stage, "site")
        if msg is None:
            raise self._refuse(stage, f"the {self.spec.name} spec declares no such site message")
        if payload.protection not in msg.protections:
            raise self._refuse(
                stage, f"protection {payload.protection!r} differs from the declared "
                f"{'/'.join(msg.protections)}")
        parts = ([(k, "meta", None) for k in payload.meta]
                 + [(k, "array", v) for k, v in payload.arrays.items()]
                 + [(k, "blob", None) for k in payload.blobs])
        for name, kind, value in parts:
            fs = next((f for f in msg.fields
                       if f.kind == kind and fnmatch.fnmatchcase(name, f.pattern)), None)
            if fs is None:
                raise self._refuse(
                    stage, f"field {name!r} ({kind}) is not declared by the {self.spec.name} spec")
            if kind == "array" and value is not None:
                if fs.dtype is not None and value.dtype.str != fs.dtype:
                    raise self._refuse(stage, f"array {name!r} must have dtype {fs.dtype}")
                if fs.length == "layout" and value.shape != (layout_size,):
                    raise self._refuse(
                        stage, f"array {name!r} is not a statistics vector of the round's public "
                        "layout (raw rows never leave a site)")
