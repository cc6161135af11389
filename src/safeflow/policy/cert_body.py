"""Building a certificate body: hashes of the released files, the audit entry, the body.

The documented workflow (customs, after the policy engine allowed a release):

1. :func:`value_digest` of the value files gives the release's ``output_sha256``
   (:func:`value_manifest` lists each file's SHA-256);
2. :func:`release_entry` is appended to customs' :class:`~safeflow.policy.audit.AuditLog`;
3. :func:`audit_section` records where it sits in the log, under a signed checkpoint;
4. :func:`build_body` assembles and checks the body, ready for
   :meth:`Certificate.issue <safeflow.policy.certificate.Certificate.issue>`.

Examples
--------
>>> files = {"table1.csv": b"variable,level,n\\nsex,1,138\\nsex,2,90\\n"}
>>> value_digest(files) == manifest_digest(value_manifest(files))
True
>>> body, keys = _example_body()
>>> body["output_sha256"] == value_digest(files), body["audit"]["entry"]["kind"]
(True, 'release')
"""

from __future__ import annotations

import datetime as dt
import enum
import hashlib
import json
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from safeflow.crypto.keys import SigningKey, VerifyKey
from safeflow.errors import InvalidParameter
from safeflow.policy.audit import AuditLog, SignedCheckpoint
from safeflow.policy.canonical import canonical_json, check_timestamp, utc_timestamp
from safeflow.policy.cert_schema import (
    CERTIFICATE_VERSION,
    _check_body,
    _check_decision,
    _check_file_name,
    _check_hex,
    manifest_digest,
    sha256_hex,
)

# --------------------------------------------------------------------------------------------
# Hashes of the released value
# --------------------------------------------------------------------------------------------


def value_manifest(files: Mapping[str, bytes]) -> dict[str, str]:
    """The manifest ``{file name: SHA-256 hex}`` of a release's value files.

    Parameters
    ----------
    files : Mapping[str, bytes]
        At least one file; names are plain file names (no directories), not
        ``certificate.json`` or ``SUMMARY.txt``.

    Returns
    -------
    dict

    Raises
    ------
    InvalidParameter
        On an empty mapping, a bad name or a value that is not bytes.

    Examples
    --------
    >>> value_manifest({"estimates.csv": b"coef\\n0.5\\n"})
    {'estimates.csv': '...'}
    >>> value_manifest({"../x": b""})
    Traceback (most recent call last):
    ...
    safeflow.errors.InvalidParameter: value file names must be ...
    """
    if not isinstance(files, Mapping) or not files:
        raise InvalidParameter("files must be a non-empty dict of file name -> bytes")
    manifest = {}
    for name, data in files.items():
        _check_file_name(name, InvalidParameter)
        if not isinstance(data, bytes | bytearray | memoryview):
            raise InvalidParameter(
                f"the content of {name!r} must be bytes; got "
                f"{type(data).__name__} (encode text as UTF-8)"
            )
        manifest[name] = sha256_hex(bytes(data))
    return manifest


def value_digest(files: Mapping[str, bytes]) -> str:
    """The ``output_sha256`` of a release: one hash over its value files and their names.

    SHA-256 of the canonical JSON (RFC 8785) of
    ``{"type": MANIFEST_TYPE, "files": {name: sha256 hex of the bytes}}``. Renaming, editing,
    adding or removing a file changes it; the order of ``files`` does not.

    Parameters
    ----------
    files : Mapping[str, bytes]

    Returns
    -------
    str
        64 lower-case hex digits.

    Examples
    --------
    >>> d = value_digest({"a.csv": b"1", "b.csv": b"2"})
    >>> d == value_digest({"b.csv": b"2", "a.csv": b"1"}), d == value_digest({"a.csv": b"2",
    ...                                                                        "b.csv": b"1"})
    (True, False)
    """
    return manifest_digest(value_manifest(files))


# --------------------------------------------------------------------------------------------
# Building a body
# --------------------------------------------------------------------------------------------


def _jsonable(value: Any) -> Any:
    """A deep copy normalised through canonical JSON (tuples -> lists, 1.0 -> 1)."""
    return json.loads(canonical_json(value, "the certificate body"))


def decision_dict(decision: Any) -> dict[str, Any]:
    """A decision as the certificate records it: ``{outcome, rules, obligations, exportable}``.

    Parameters
    ----------
    decision : Mapping or object
        A mapping with those keys, or an object with those attributes (the policy engine's
        ``Decision``); an enum outcome is recorded by its value.

    Returns
    -------
    dict

    Examples
    --------
    >>> decision_dict({"outcome": "ALLOW", "rules": ("EU-anon",), "obligations": [],
    ...                "exportable": True})
    {'exportable': True, 'obligations': [], 'outcome': 'ALLOW', 'rules': ['EU-anon']}
    """
    if isinstance(decision, Mapping):
        get = decision.get
    else:

        def get(name: str) -> Any:
            return getattr(decision, name, None)

    outcome = get("outcome")
    if isinstance(outcome, enum.Enum):
        outcome = outcome.value
    result = {
        "outcome": outcome,
        "rules": list(get("rules") or ()),
        "obligations": list(get("obligations") or ()),
        "exportable": get("exportable"),
    }
    result = _jsonable(result)
    _check_decision(result, InvalidParameter)
    return result


def release_entry(
    *,
    output_sha256: str,
    protocol_spec_sha256: str,
    decision: Any,
    time: str | None = None,
) -> dict[str, Any]:
    """The ``release`` audit entry a certificate points to.

    Append it to customs' :class:`~safeflow.policy.audit.AuditLog`, then build the
    certificate's ``audit`` section with :func:`audit_section`.

    Parameters
    ----------
    output_sha256 : str
        :func:`value_digest` of the value files.
    protocol_spec_sha256 : str
    decision : Mapping or object
        See :func:`decision_dict`.
    time : str, optional
        ISO 8601 UTC; default now.

    Returns
    -------
    dict

    Examples
    --------
    >>> e = release_entry(output_sha256="ab" * 32, protocol_spec_sha256="cd" * 32,
    ...                   decision={"outcome": "EXEMPT", "rules": ["CN-academic"],
    ...                             "obligations": [], "exportable": True},
    ...                   time="2026-01-05T09:00:00Z")
    >>> e["kind"], e["outcome"], e["exportable"]
    ('release', 'EXEMPT', True)
    """
    d = decision_dict(decision)
    entry = {
        "kind": "release",
        "time": time or utc_timestamp(),
        "output_sha256": _check_hex(output_sha256, 32, "output_sha256", InvalidParameter),
        "protocol_spec_sha256": _check_hex(
            protocol_spec_sha256, 32, "protocol_spec_sha256", InvalidParameter
        ),
        "outcome": d["outcome"],
        "rules": d["rules"],
        "exportable": d["exportable"],
    }
    check_timestamp(entry["time"], "time")
    return entry


def audit_section(
    log: AuditLog,
    index: int,
    *,
    log_signer: str,
    checkpoint: SignedCheckpoint | None = None,
) -> dict[str, Any]:
    """The certificate's ``audit`` field for entry ``index`` of ``log``.

    Parameters
    ----------
    log : AuditLog
        Customs' log, holding the release entry.
    index : int
        The entry's index (as returned by ``log.append``).
    log_signer : str
        The signer (in the certificate's ``signers``) whose key signs ``log``'s checkpoints.
    checkpoint : SignedCheckpoint, optional
        A checkpoint of ``log`` covering ``index``; default: a new one (``log.checkpoint()``).

    Returns
    -------
    dict

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from safeflow.crypto.keys import SigningKey
    >>> tmp = tempfile.TemporaryDirectory()
    >>> log = AuditLog(Path(tmp.name) / "customs.sqlite",
    ...                signing_key=SigningKey.from_bytes(bytes(32)), log_id="customs")
    >>> index, _ = log.append(release_entry(output_sha256="ab" * 32,
    ...     protocol_spec_sha256="cd" * 32, decision={"outcome": "ALLOW", "rules": [],
    ...     "obligations": [], "exportable": True}))
    >>> section = audit_section(log, index, log_signer="customs")
    >>> section["size"], section["inclusion_proof"]
    (1, [])
    >>> log.close(); tmp.cleanup()
    """
    cp = log.checkpoint() if checkpoint is None else checkpoint
    if cp.log_id != log.log_id:
        raise InvalidParameter(f"checkpoint is of log {cp.log_id!r}, not {log.log_id!r}")
    if not 0 <= index < cp.size:
        raise InvalidParameter(
            f"entry {index} is not covered by the checkpoint of size {cp.size}; take a new "
            "checkpoint after appending the release entry"
        )
    return {
        "log_id": cp.log_id,
        "log_signer": log_signer,
        "index": index,
        "size": cp.size,
        "root": cp.root.hex(),
        "entry": log.entry(index),
        "inclusion_proof": [p.hex() for p in log.inclusion_proof(index, cp.size)],
        "checkpoint": {"timestamp": cp.timestamp, "signature": cp.signature.hex()},
    }


def build_body(
    *,
    outputs: Mapping[str, str],
    protocol_spec_sha256: str,
    packs: Iterable[tuple[str, str, str] | list[str]],
    facts: Mapping[str, Any],
    decision: Any,
    audit: Mapping[str, Any],
    customs: tuple[str, VerifyKey],
    sites: Mapping[str, VerifyKey],
    issued_at: str | None = None,
) -> dict[str, Any]:
    """Assemble and check a certificate body (:mod:`safeflow.policy.cert_schema` has the fields).

    Parameters
    ----------
    outputs : Mapping[str, str]
        :func:`value_manifest` of the value files; ``output_sha256`` is derived from it.
    protocol_spec_sha256 : str
    packs : iterable of (name, version, sha256)
    facts : Mapping
    decision : Mapping or object
        See :func:`decision_dict`.
    audit : Mapping
        From :func:`audit_section`.
    customs : (str, VerifyKey)
        Customs' signer name and public key.
    sites : Mapping[str, VerifyKey]
        Every origin site's public key.
    issued_at : str, optional
        ISO 8601 UTC; default now.

    Returns
    -------
    dict
        A JSON-able body, ready for :meth:`~safeflow.policy.certificate.Certificate.issue`.

    Raises
    ------
    InvalidParameter
        If a field is missing, ill-typed or inconsistent (the message names it).

    Examples
    --------
        >>> from safeflow.policy.cert_schema import BODY_FIELDS
    >>> body, _ = _example_body()
    >>> sorted(body) == sorted(BODY_FIELDS)
    True
    """
    name, key = customs
    signers = {name: {"role": "customs", "public_key": _key_hex(key, name)}}
    for site, site_key in sites.items():
        if site in signers:
            raise InvalidParameter(f"signer name {site!r} is used twice; names must be unique")
        signers[site] = {"role": "site", "public_key": _key_hex(site_key, site)}
    manifest = dict(outputs)
    body = {
        "version": CERTIFICATE_VERSION,
        "output_sha256": manifest_digest(manifest),
        "outputs": manifest,
        "protocol_spec_sha256": protocol_spec_sha256,
        "packs": [list(p) for p in packs],
        "facts": dict(facts),
        "decision": decision_dict(decision),
        "timestamps": {"issued_at": issued_at or utc_timestamp()},
        "audit": dict(audit),
        "signers": signers,
    }
    return _check_body(_jsonable(body), InvalidParameter)


def _key_hex(key: object, name: str) -> str:
    if not isinstance(key, VerifyKey):
        raise InvalidParameter(
            f"the key of signer {name!r} must be a VerifyKey; got {type(key).__name__}"
        )
    return key.to_bytes().hex()


# --------------------------------------------------------------------------------------------
# A small worked example (used by the docstrings and tests)
# --------------------------------------------------------------------------------------------


def _example_keys() -> dict[str, SigningKey]:
    """Deterministic example keys (never use such keys for real)."""
    return {
        name: SigningKey.from_bytes(hashlib.sha256(b"example/" + name.encode()).digest())
        for name in ("customs", "beijing", "amsterdam")
    }


def _example_body() -> tuple[dict[str, Any], dict[str, SigningKey]]:
    """A customs log with one release entry and a body for it (deterministic keys)."""
    keys = _example_keys()
    files = {"table1.csv": b"variable,level,n\nsex,1,138\nsex,2,90\n"}
    decision = {
        "outcome": "ALLOW",
        "rules": ["EU-anon", "CN-academic"],
        "obligations": [],
        "exportable": True,
    }
    spec = sha256_hex(b"protocols/masking.yaml")
    with (
        tempfile.TemporaryDirectory() as tmp,
        AuditLog(
            Path(tmp) / "customs.sqlite",
            signing_key=keys["customs"],
            log_id="customs",
            clock=lambda: dt.datetime(2026, 1, 5, 10, 0, tzinfo=dt.UTC),
        ) as log,
    ):
        log.append(
            {"kind": "study_registration", "time": "2026-01-05T09:00:00Z", "study": "color-iv"}
        )
        index, _ = log.append(
            release_entry(
                output_sha256=value_digest(files),
                protocol_spec_sha256=spec,
                decision=decision,
                time="2026-01-05T10:00:00Z",
            )
        )
        audit = audit_section(log, index, log_signer="customs")
    facts = {
        "output": {"kind": "freq_table", "protocol": "masking"},
        "origin": [
            {"site": "beijing", "jurisdiction": "CN"},
            {"site": "amsterdam", "jurisdiction": "NL"},
        ],
        "destination": {"jurisdiction": "NL", "recipient_type": "research"},
    }
    body = build_body(
        outputs=value_manifest(files),
        protocol_spec_sha256=spec,
        packs=[("CN", "2024.1", sha256_hex(b"cn")), ("EU", "2024.1", sha256_hex(b"eu"))],
        facts=facts,
        decision=decision,
        audit=audit,
        customs=("customs", keys["customs"].verify_key),
        sites={"beijing": keys["beijing"].verify_key, "amsterdam": keys["amsterdam"].verify_key},
        issued_at="2026-01-05T10:00:01Z",
    )
    return body, keys


__all__ = [
    "audit_section",
    "build_body",
    "decision_dict",
    "release_entry",
    "value_digest",
    "value_manifest",
]
