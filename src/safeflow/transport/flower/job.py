"""Jobs in, certified releases out: what passes between the analyst and the ServerApp.

A :class:`Job` is the study's shared, public configuration plus one analysis request; it
travels to the ServerApp as the run config value ``job`` (JSON). The ServerApp answers by
writing a **release bundle** into the coordinator's outbox, ``<outbox>/<job_id>.sfe``:
one safeflow envelope (the same strict, pickle-free format as every message) holding the
release's facts, decision, certificate, summary, round log, the exact value files the
certificate hashes, and the value itself (a DataFrame, or a result object whose fields
are arrays, tables and JSON scalars). A refusal is a bundle holding the typed error
instead, raised again on the analyst's side.

Examples
--------
>>> import pandas as pd
>>> meta, arrays, blobs = encode_value(pd.DataFrame({"n": [1, 2]}))
>>> decode_value(meta, arrays, blobs)["n"].tolist()
[1, 2]
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from safeflow.envelope import Envelope, Header, Payload
from safeflow.errors import (
    InvalidParameter,
    ProtocolError,
    SafeflowError,
    TransportError,
    VerificationError,
)
from safeflow.fl.features import FeatureEncoder
from safeflow.release import Release
from safeflow.transport.flower.config import StudySite
from safeflow.transport.flower.wire import error_from_json, error_to_json

JOB_VERSION = 1
_JOB_ID = re.compile(r"^[0-9a-f]{32}$")
_JOB_KEYS = {"v", "job_id", "study", "destination", "purpose", "threshold", "sites",
             "schema", "max_rows_per_site", "max_envelope_bytes", "policy", "analysis",
             "protocol", "params"}


@dataclass(frozen=True)
class Job:
    """One analysis of one study, as submitted to the ServerApp."""

    study: str
    destination: str
    purpose: str
    sites: tuple[StudySite, ...]
    schema: Mapping[str, Any]
    analysis: Mapping[str, Any]
    protocol: str
    params: Mapping[str, Any] = field(default_factory=dict)
    threshold: int | None = None
    max_rows_per_site: int = 2**32
    max_envelope_bytes: int = 1 << 30
    policy: Mapping[str, Any] = field(default_factory=dict)
    job_id: str = field(default_factory=lambda: secrets.token_hex(16))

    def to_json(self) -> str:
        """Canonical JSON (sorted keys)."""
        return json.dumps({
            "v": JOB_VERSION, "job_id": self.job_id, "study": self.study,
            "destination": self.destination, "purpose": self.purpose,
            "threshold": self.threshold, "sites": [s.to_dict() for s in self.sites],
            "schema": dict(self.schema), "max_rows_per_site": self.max_rows_per_site,
            "max_envelope_bytes": self.max_envelope_bytes, "policy": dict(self.policy),
            "analysis": dict(self.analysis), "protocol": self.protocol,
            "params": dict(self.params)}, sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: Any) -> Job:
        """Parse and validate (typed error naming what is wrong).

        Examples
        --------
        >>> j = Job("s", "NL", "research", (StudySite("a", "CN"), StudySite("b", "NL")),
        ...         {"columns": []}, {"analysis": "describe", "params": {}, "state": {}},
        ...         "masking")
        >>> Job.from_json(j.to_json()) == j
        True
        >>> Job.from_json('{"v": 1}')
        Traceback (most recent call last):
        ...
        safeflow.errors.ProtocolError: malformed job: ...
        """
        try:
            d = json.loads(text)
        except (TypeError, ValueError):
            raise ProtocolError("malformed job: not JSON; submit jobs with run_on_flower"
                                ) from None
        if not isinstance(d, dict) or set(d) != _JOB_KEYS or d["v"] != JOB_VERSION:
            raise ProtocolError("malformed job: keys or version differ from this safeflow's; "
                                "use the same safeflow version on both sides")
        if not isinstance(d["job_id"], str) or not _JOB_ID.match(d["job_id"]):
            raise ProtocolError("malformed job: job_id must be 32 lower-case hex digits")
        try:
            return cls(study=d["study"], destination=d["destination"], purpose=d["purpose"],
                       sites=tuple(StudySite.from_dict(s) for s in d["sites"]),
                       schema=d["schema"], analysis=d["analysis"], protocol=d["protocol"],
                       params=d["params"], threshold=d["threshold"],
                       max_rows_per_site=d["max_rows_per_site"],
                       max_envelope_bytes=d["max_envelope_bytes"], policy=d["policy"],
                       job_id=d["job_id"])
        except (TypeError, InvalidParameter) as e:
            raise ProtocolError(f"malformed job: {e}") from None


# ------------------------------------------------------------------------- value codec


def _result_classes() -> dict[str, type]:
    from safeflow.analyses.cox_result import CoxResult
    from safeflow.analyses.glm_result import GLMResult
    from safeflow.analyses.survival_results import KaplanMeierResult, LogRankResult
    from safeflow.fl.result import TrainedModel

    return {c.__name__: c for c in (CoxResult, GLMResult, KaplanMeierResult, LogRankResult,
                                    TrainedModel)}


def _frame_bytes(df: pd.DataFrame) -> bytes:
    buf = io.BytesIO()
    df.to_parquet(buf, index=True)
    return buf.getvalue()


def _frame(data: bytes) -> pd.DataFrame:
    return pd.read_parquet(io.BytesIO(data))


def _scalar(v: Any) -> Any:
    if isinstance(v, bool) or v is None or isinstance(v, str):
        return v
    if isinstance(v, int | np.integer):
        return {"int": str(int(v))}
    if isinstance(v, float | np.floating):
        return {"float": float(v).hex()}
    if isinstance(v, list | tuple):
        return {"list" if isinstance(v, list) else "tuple": [_scalar(x) for x in v]}
    if isinstance(v, Mapping):
        return {"dict": [[str(k), _scalar(x)] for k, x in v.items()]}
    raise InvalidParameter(f"cannot carry a {type(v).__name__} in a release bundle")


def _unscalar(v: Any) -> Any:
    if not isinstance(v, dict):
        return v
    ((kind, x),) = v.items()
    if kind == "int":
        return int(x)
    if kind == "float":
        return float.fromhex(x)
    if kind == "list":
        return [_unscalar(i) for i in x]
    if kind == "tuple":
        return tuple(_unscalar(i) for i in x)
    if kind == "dict":
        return {k: _unscalar(i) for k, i in x}
    raise ProtocolError(f"unknown value encoding {kind!r} in a release bundle")


def encode_value(value: Any) -> tuple[dict[str, Any], dict[str, np.ndarray], dict[str, bytes]]:
    """A result as (JSON meta, arrays, blobs): DataFrames as Parquet, floats exact."""
    if isinstance(value, pd.DataFrame):
        return {"class": "DataFrame"}, {}, {"value": _frame_bytes(value)}
    cls = type(value).__name__
    if cls not in _result_classes() or not dataclasses.is_dataclass(value):
        raise InvalidParameter(f"no release-bundle encoding for a {cls} result")
    fields: dict[str, Any] = {}
    arrays: dict[str, np.ndarray] = {}
    blobs: dict[str, bytes] = {}
    for f in dataclasses.fields(value):
        v = getattr(value, f.name)
        if isinstance(v, np.ndarray):
            arrays[f.name] = v
            fields[f.name] = {"array": f.name}
        elif isinstance(v, pd.DataFrame):
            blobs[f.name] = _frame_bytes(v)
            fields[f.name] = {"frame": f.name}
        elif isinstance(v, pd.Series):
            blobs[f.name] = _frame_bytes(v.to_frame())
            fields[f.name] = {"series": f.name}
        elif isinstance(v, FeatureEncoder):  # a trained model's public feature recipe
            fields[f.name] = {"encoder": _scalar(v.to_dict())}
        else:
            fields[f.name] = {"scalar": _scalar(v)}
    return {"class": cls, "fields": fields}, arrays, blobs


def decode_value(meta: Mapping[str, Any], arrays: Mapping[str, np.ndarray],
                 blobs: Mapping[str, bytes]) -> Any:
    """Inverse of :func:`encode_value` (only safeflow's own result classes)."""
    if meta.get("class") == "DataFrame":
        return _frame(blobs["value"])
    cls = _result_classes().get(str(meta.get("class")))
    if cls is None:
        raise ProtocolError("a release bundle names an unknown result class")
    obj = object.__new__(cls)
    for name, how in meta["fields"].items():
        ((kind, ref),) = how.items()
        if kind == "array":
            v: Any = np.array(arrays[ref])
        elif kind == "frame":
            v = _frame(blobs[ref])
        elif kind == "series":
            v = _frame(blobs[ref]).iloc[:, 0]
        elif kind == "encoder":
            v = FeatureEncoder.from_dict(_unscalar(ref))
        else:
            v = _unscalar(ref)
        if kind == "array" and cls.__name__ == "TrainedModel":
            v.setflags(write=False)  # as TrainedModel.build leaves its weights
        object.__setattr__(obj, name, v)
    return obj


# ------------------------------------------------------------------------- bundles


def bundle_path(outbox: Path, job_id: str) -> Path:
    """Where the ServerApp leaves the bundle of ``job_id``."""
    if not _JOB_ID.match(job_id):
        raise InvalidParameter("job_id must be 32 lower-case hex digits")
    return Path(outbox) / f"{job_id}.sfe"


def item_job_id(job_id: str, index: int) -> str:
    """The bundle id of release ``index`` of a batch job (32 hex digits, derived).

    Examples
    --------
    >>> item_job_id("0" * 32, 1) != item_job_id("0" * 32, 0), len(item_job_id("0" * 32, 0))
    (True, 32)
    """
    if not _JOB_ID.match(job_id) or not isinstance(index, int) or index < 0:
        raise InvalidParameter("job_id must be 32 lower-case hex digits and index an int >= 0")
    return hashlib.sha256(f"{job_id}/{index}".encode()).hexdigest()[:32]


def _header(job_id: str) -> Header:
    return Header(study="safeflow-release", run=job_id, round=0, stage="release",
                  sender="customs", receiver="analyst")


def write_bundle(outbox: Path, job_id: str, *, release: Release | None = None,
                 error: BaseException | None = None, batch: int | None = None) -> Path:
    """Atomically write a release (or a typed error) for the analyst, mode 0600.

    ``batch=k``: the job was a batch whose ``k`` releases (or errors) are in the bundles
    :func:`item_job_id` names, written before this one.
    """
    meta: dict[str, Any] = {}
    arrays: dict[str, np.ndarray] = {}
    blobs: dict[str, bytes] = {}
    if batch is not None:
        meta = {"batch": int(batch)}
    elif release is not None:
        vmeta, arrays, vblobs = encode_value(release.value)
        blobs.update({f"value:{k}": b for k, b in vblobs.items()})
        blobs.update({f"file:{k}": bytes(b) for k, b in release.files.items()})
        blobs["certificate"] = release.certificate.to_json()
        meta = {"release": {
            "analysis": release.analysis, "protocol": release.protocol,
            "rounds": release.rounds, "facts": dict(release.facts),
            "decision": release.decision.to_dict(), "summary": release.summary,
            "log": [dataclasses.asdict(e) for e in release.log],
            "trusted": {k: v.to_bytes().hex() for k, v in release.trusted.items()},
            "value": vmeta}}
    else:
        meta = {"error": json.loads(error_to_json(error or TransportError("unknown")))}
    raw = Envelope(_header(job_id), Payload("none", meta=meta, arrays=arrays, blobs=blobs)
                   ).to_bytes()
    outbox = Path(outbox)
    outbox.mkdir(parents=True, exist_ok=True, mode=0o700)
    final = bundle_path(outbox, job_id)
    tmp = final.with_name(f".{final.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, raw)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, final)
    return final


def _decision(d: Mapping[str, Any]) -> Any:
    from safeflow.policy.engine import Decision, Fired
    from safeflow.policy.outcome import Outcome

    fired = tuple(Fired(pack=f["pack"], rule=f["rule"], origin=f["origin"], site=f["site"],
                        jurisdiction=f["jurisdiction"], declared=Outcome(f["declared"]),
                        outcome=Outcome(f["outcome"]), satisfied=f["satisfied"],
                        obligations=tuple(f["obligations"]), fix=f["fix"], verify=f["verify"])
                  for f in d["fired"])
    return Decision(outcome=Outcome(d["outcome"]), rules=tuple(d["rules"]), fired=fired,
                    obligations=tuple(d["obligations"]), exportable=bool(d["exportable"]),
                    fixes=tuple(d["fixes"]),
                    packs=tuple((p["name"], p["version"], p["sha256"]) for p in d["packs"]),
                    derived=d["derived"])


def read_bundle(path: Path, *, trusted: Mapping[str, Any] | None = None) -> Release:
    """The release in a bundle, after verifying its certificate; or raise its typed error.

    ``trusted`` (name -> VerifyKey) pins signer keys obtained out of band; without it the
    keys the bundle names are used (integrity, not identity).
    """
    from safeflow.crypto.keys import VerifyKey
    from safeflow.policy.certificate import Certificate
    from safeflow.transport.local import RoundLog

    env = Envelope.from_bytes(Path(path).read_bytes())
    meta = env.payload.meta
    if "error" in meta:
        raise error_from_json(json.dumps(meta["error"]))
    if "batch" in meta:
        raise ProtocolError("this bundle ends a batch job; read it with read_batch")
    r = meta["release"]
    blobs = env.payload.blobs
    cert = Certificate.from_json(blobs["certificate"])
    keys = {k: VerifyKey.from_bytes(bytes.fromhex(v)) for k, v in r["trusted"].items()}
    for name, key in (trusted or {}).items():
        if keys.get(name) != key:
            raise VerificationError(f"the release names a key for {name!r} other than the "
                                    "one you trust; it was not accepted")
    if set(cert.signers) - set(keys):
        raise VerificationError("the release bundle lacks a signer's key; it was not accepted")
    cert.verify(trusted={k: keys[k] for k in cert.signers})
    decision = _decision(r["decision"])
    signed = cert.decision
    if (signed["outcome"], list(signed["rules"]), signed["exportable"]) != (
            decision.outcome.value, list(decision.rules), decision.exportable):
        raise ProtocolError("the bundle's decision differs from the signed certificate's")
    files = {k[5:]: b for k, b in blobs.items() if k.startswith("file:")}
    from safeflow.policy.cert_body import value_digest

    if value_digest(files) != cert.output_sha256:
        raise ProtocolError("the bundle's value files differ from the certified ones")
    vblobs = {k[6:]: b for k, b in blobs.items() if k.startswith("value:")}
    value = decode_value(r["value"], env.payload.arrays, vblobs)
    log = tuple(RoundLog(e["round"], e["stage"], e["messages"], e["bytes_total"],
                         e["bytes_cross_border"], tuple(e["answered"])) for e in r["log"])
    return Release(value, r["facts"], analysis=r["analysis"], protocol=r["protocol"],
                   decision=decision, certificate=cert, rounds=r["rounds"], log=log,
                   files=files, summary=r["summary"], trusted=keys)


def read_batch(outbox: Path, job_id: str, *, trusted: Mapping[str, Any] | None = None,
               remove: bool = True) -> list[Release | SafeflowError]:
    """The releases (or typed errors) of a batch job, each certificate verified.

    Raises the job's own typed error when the whole batch failed. ``remove`` deletes the
    bundles once read.
    """
    main = bundle_path(Path(outbox), job_id)
    env = Envelope.from_bytes(main.read_bytes())
    meta = env.payload.meta
    if "error" in meta:
        if remove:
            main.unlink(missing_ok=True)
        raise error_from_json(json.dumps(meta["error"]))
    k = meta.get("batch")
    if type(k) is not int or k < 1:
        raise ProtocolError("the job's bundle is not a batch's; read it with read_bundle")
    out: list[Release | SafeflowError] = []
    for i in range(k):
        path = bundle_path(Path(outbox), item_job_id(job_id, i))
        try:
            item = Envelope.from_bytes(path.read_bytes()).payload.meta
            if "error" in item:  # that analysis's own typed refusal (ExportDenied ...)
                out.append(error_from_json(json.dumps(item["error"])))
            else:  # certificate verified; a failure here is raised, not returned
                out.append(read_bundle(path, trusted=trusted))
        finally:
            if remove:
                path.unlink(missing_ok=True)
    if remove:
        main.unlink(missing_ok=True)
    return out


__all__ = ["Job", "bundle_path", "decode_value", "encode_value", "item_job_id", "read_batch",
           "read_bundle", "write_bundle"]
