"""The certificate body's schema: its fields, and strict checks of each and of their rules.

A certificate body (:mod:`safeflow.policy.certificate`) is a JSON object with exactly these
fields:

``version``
    :data:`CERTIFICATE_VERSION`.
``output_sha256``
    :func:`~safeflow.policy.cert_body.value_digest` of the released files: SHA-256 of a
    canonical manifest of file names and their SHA-256 (``outputs``).
``outputs``
    ``{file name: sha256 hex}``, the manifest itself, so a verifier names the file that
    does not match.
``protocol_spec_sha256``
    Hash of the protocol spec the run followed.
``packs``
    ``[[name, version, sha256], ...]``: the policy packs that decided.
``facts``
    The facts customs derived from the run (POLICY.md). When ``facts["origin"]`` lists the
    origin sites, the site signers must be exactly those sites.
``decision``
    ``{outcome, rules, obligations, exportable}``; ``exportable`` is true exactly for
    :data:`EXPORTABLE_OUTCOMES`.
``timestamps``
    ``{"issued_at": ISO 8601 UTC, ...}`` (further keys end in ``_at``).
``audit``
    Where the release sits in customs' audit log: ``log_id``, ``log_signer`` (the signer
    whose key signs the log's checkpoints), ``index``, ``size``, ``root``, the logged
    ``entry`` itself (kind ``release``, with this certificate's ``output_sha256``,
    ``protocol_spec_sha256`` and ``outcome``), its ``inclusion_proof`` (hex) and the signed
    ``checkpoint`` (``timestamp``, ``signature``) of that tree.
``signers``
    ``{name: {"role": "customs" | "site", "public_key": hex}}``: one customs and every
    origin site. Each must sign.

:func:`_check_body` accepts exactly such a body (no unknown or missing fields, no ill-typed
values, lower-case hex of the right length, ``output_sha256`` equal to
:func:`manifest_digest` of ``outputs``, the audit entry matching the body, one customs
signer and every origin site as a co-signer) and raises the error class it is given,
naming the field: :class:`~safeflow.errors.InvalidParameter` while a body is being built,
:class:`~safeflow.errors.VerificationError` when a certificate is read.
Certificate JSON is parsed just as strictly (no duplicate keys, no ``NaN``).

Examples
--------
>>> from safeflow.errors import InvalidParameter
>>> from safeflow.policy.cert_body import _example_body
>>> body, _ = _example_body()
>>> _check_body(body, InvalidParameter) is body
True
>>> _check_body({**body, "packs": [["EU", "2024.1", "AB" * 32]]}, InvalidParameter)
Traceback (most recent call last):
...
safeflow.errors.InvalidParameter: certificate field packs[0][2] must be 64 lower-case hex ...
>>> body["output_sha256"] == manifest_digest(body["outputs"])
True
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from typing import Any, Final, NoReturn

from safeflow.crypto.keys import SigningKey
from safeflow.errors import InvalidParameter, VerificationError
from safeflow.policy.canonical import canonical_json, check_timestamp

#: The ``version`` of certificates safeflow writes and reads.
CERTIFICATE_VERSION: Final = "safeflow/certificate/v1"

#: The ``type`` of the canonical value manifest hashed by :func:`manifest_digest`.
MANIFEST_TYPE: Final = "safeflow/value-manifest/v1"

#: Policy outcomes, most restrictive first (POLICY.md).
OUTCOMES: Final = (
    "PROHIBITED",
    "NEEDS_APPROVAL",
    "SECURITY_ASSESSMENT",
    "SCC_OR_CERT",
    "REVIEW",
    "DENY_SDC",
    "ALLOW_WITH_OBLIGATIONS",
    "ALLOW",
    "EXEMPT",
)

#: Outcomes that allow export.
EXPORTABLE_OUTCOMES: Final = frozenset({"ALLOW_WITH_OBLIGATIONS", "ALLOW", "EXEMPT"})

#: File names an export writes next to the value files; values may not use them.
RESERVED_NAMES: Final = frozenset({"certificate.json", "SUMMARY.txt"})

BODY_FIELDS: Final = frozenset(
    {
        "version",
        "output_sha256",
        "outputs",
        "protocol_spec_sha256",
        "packs",
        "facts",
        "decision",
        "timestamps",
        "audit",
        "signers",
    }
)
_AUDIT_FIELDS: Final = frozenset(
    {
        "log_id",
        "log_signer",
        "index",
        "size",
        "root",
        "entry",
        "inclusion_proof",
        "checkpoint",
    }
)
_DECISION_FIELDS: Final = frozenset({"outcome", "rules", "obligations", "exportable"})
_ROLES: Final = frozenset({"customs", "site"})
_MAX_JSON_BYTES: Final = 16 * 1024 * 1024
_MAX_PROOF: Final = 64

_HEX = re.compile(r"(?:[0-9a-f]{2})*")
_FILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_SIGNER = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_TIMESTAMP_KEY = re.compile(r"[a-z][a-z0-9_]{0,30}_at")

_Error = type[InvalidParameter] | type[VerificationError]


# --------------------------------------------------------------------------------------------
# The digest of the released value
# --------------------------------------------------------------------------------------------


def sha256_hex(data: bytes) -> str:
    """SHA-256 of ``data`` as lower-case hex.

    Examples
    --------
    >>> sha256_hex(b"abc")[:16]
    'ba7816bf8f01cfea'
    """
    return hashlib.sha256(data).hexdigest()


def manifest_digest(manifest: Mapping[str, str]) -> str:
    """SHA-256 (hex) of the canonical JSON of a value manifest.

    This is a certificate's ``output_sha256``: :func:`~safeflow.policy.cert_body.value_digest`
    of the value files is the digest of their :func:`~safeflow.policy.cert_body.value_manifest`.

    Examples
    --------
    >>> from safeflow.policy.cert_body import value_digest, value_manifest
    >>> files = {"a.csv": b"1"}
    >>> manifest_digest(value_manifest(files)) == value_digest(files)
    True
    """
    return sha256_hex(canonical_json({"type": MANIFEST_TYPE, "files": dict(manifest)}))


# --------------------------------------------------------------------------------------------
# Strict checks of a body
# --------------------------------------------------------------------------------------------


def _fail(error: _Error, where: str, what: str) -> NoReturn:
    raise error(f"certificate field {where} {what}")


def _check_hex(value: object, size: int, where: str, error: _Error) -> str:
    if not isinstance(value, str) or len(value) != 2 * size or _HEX.fullmatch(value) is None:
        _fail(error, where, f"must be {2 * size} lower-case hex digits ({size} bytes)")
    return value


def _check_file_name(name: object, error: _Error) -> str:
    if not isinstance(name, str) or _FILE_NAME.fullmatch(name) is None:
        raise error(
            f"value file names must be 1-128 letters, digits and ._- starting with a letter or "
            f"digit (no directories); got {name!r:.60}"
        )
    if name in RESERVED_NAMES:
        raise error(f"{name!r} is reserved for the export's own files; rename the value file")
    return name


def _check_fields(value: object, fields: frozenset[str], where: str, error: _Error) -> dict:
    if not isinstance(value, dict):
        _fail(error, where, "must be a JSON object")
    if set(value) != fields:
        unknown, missing = sorted(set(value) - fields), sorted(fields - set(value))
        _fail(
            error,
            where,
            f"must have exactly the fields {sorted(fields)} (unknown: "
            f"{unknown}, missing: {missing})",
        )
    return value


def _check_str_list(value: object, where: str, error: _Error) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        _fail(error, where, "must be a list of non-empty strings")
    return value


def _check_int(value: object, low: int, where: str, error: _Error) -> int:
    if type(value) is not int or value < low:
        _fail(error, where, f"must be an integer >= {low}")
    return value


def _check_decision(d: object, error: _Error) -> None:
    d = _check_fields(d, _DECISION_FIELDS, "decision", error)
    if d["outcome"] not in OUTCOMES:
        _fail(error, "decision.outcome", f"must be one of {', '.join(OUTCOMES)}")
    _check_str_list(d["rules"], "decision.rules", error)
    if not isinstance(d["obligations"], list) or not all(
        isinstance(o, str | dict) for o in d["obligations"]
    ):
        _fail(error, "decision.obligations", "must be a list of strings or objects")
    if type(d["exportable"]) is not bool:
        _fail(error, "decision.exportable", "must be true or false")
    if d["exportable"] != (d["outcome"] in EXPORTABLE_OUTCOMES):
        _fail(
            error,
            "decision.exportable",
            f"must be true exactly for the outcomes {sorted(EXPORTABLE_OUTCOMES)}",
        )


def _check_signers(signers: object, facts: dict, error: _Error) -> dict:
    if not isinstance(signers, dict) or not signers:
        _fail(error, "signers", "must be a non-empty JSON object")
    for name, info in signers.items():
        if _SIGNER.fullmatch(name) is None:
            _fail(error, f"signers.{name[:40]!r}", "is not a valid signer name")
        info = _check_fields(info, frozenset({"role", "public_key"}), f"signers.{name}", error)
        if info["role"] not in _ROLES:
            _fail(error, f"signers.{name}.role", "must be 'customs' or 'site'")
        _check_hex(info["public_key"], 32, f"signers.{name}.public_key", error)
    customs = [n for n, i in signers.items() if i["role"] == "customs"]
    if len(customs) != 1:
        _fail(error, "signers", f"must name exactly one customs signer; got {len(customs)}")
    origin = facts.get("origin")
    if origin is not None:
        if not isinstance(origin, list) or not all(
            isinstance(o, dict) and isinstance(o.get("site"), str) for o in origin
        ):
            _fail(error, "facts.origin", "must be a list of objects each naming its 'site'")
        sites = {n for n, i in signers.items() if i["role"] == "site"}
        origins = {o["site"] for o in origin}
        if sites != origins:
            _fail(
                error,
                "signers",
                f"must list every origin site as a co-signer and no other site "
                f"(origin sites {sorted(origins)}, site signers {sorted(sites)})",
            )
    return signers


def _check_audit(audit: object, body: dict, error: _Error) -> None:
    audit = _check_fields(audit, _AUDIT_FIELDS, "audit", error)
    if not isinstance(audit["log_id"], str) or not audit["log_id"]:
        _fail(error, "audit.log_id", "must be a non-empty string")
    if audit["log_signer"] not in body["signers"]:
        _fail(error, "audit.log_signer", "must name one of the signers")
    size = _check_int(audit["size"], 1, "audit.size", error)
    index = _check_int(audit["index"], 0, "audit.index", error)
    if index >= size:
        _fail(error, "audit.index", "must be below audit.size")
    _check_hex(audit["root"], 32, "audit.root", error)
    proof = audit["inclusion_proof"]
    if not isinstance(proof, list) or len(proof) > _MAX_PROOF:
        _fail(error, "audit.inclusion_proof", f"must be a list of at most {_MAX_PROOF} hashes")
    for i, p in enumerate(proof):
        _check_hex(p, 32, f"audit.inclusion_proof[{i}]", error)
    cp = _check_fields(
        audit["checkpoint"], frozenset({"timestamp", "signature"}), "audit.checkpoint", error
    )
    _check_time(cp["timestamp"], "audit.checkpoint.timestamp", error)
    _check_hex(cp["signature"], 64, "audit.checkpoint.signature", error)
    entry = audit["entry"]
    if not isinstance(entry, dict) or entry.get("kind") != "release":
        _fail(error, "audit.entry", "must be the logged 'release' entry (a JSON object)")
    for field, expected in (
        ("output_sha256", body["output_sha256"]),
        ("protocol_spec_sha256", body["protocol_spec_sha256"]),
        ("outcome", body["decision"]["outcome"]),
    ):
        if entry.get(field) != expected:
            _fail(error, f"audit.entry.{field}", "does not match the certificate's")


def _check_time(value: object, where: str, error: _Error) -> None:
    try:
        check_timestamp(value, where)
    except InvalidParameter:
        _fail(error, where, "must be an ISO 8601 UTC timestamp like '2026-01-05T09:00:00Z'")


def _check_body(body: object, error: _Error) -> dict[str, Any]:
    """Check every field's type and the cross-field rules; return the body."""
    body = _check_fields(body, BODY_FIELDS, "body", error)
    if body["version"] != CERTIFICATE_VERSION:
        _fail(
            error,
            "version",
            f"must be {CERTIFICATE_VERSION!r} (this safeflow reads only that version)",
        )
    _check_hex(body["output_sha256"], 32, "output_sha256", error)
    outputs = body["outputs"]
    if not isinstance(outputs, dict) or not outputs:
        _fail(error, "outputs", "must be a non-empty object of file name -> sha256")
    for name, digest in outputs.items():
        _check_file_name(name, error)
        _check_hex(digest, 32, f"outputs.{name}", error)
    if manifest_digest(outputs) != body["output_sha256"]:
        _fail(error, "output_sha256", "is not the digest of the outputs manifest")
    _check_hex(body["protocol_spec_sha256"], 32, "protocol_spec_sha256", error)
    packs = body["packs"]
    if not isinstance(packs, list):
        _fail(error, "packs", "must be a list of [name, version, sha256]")
    for i, pack in enumerate(packs):
        if not (
            isinstance(pack, list)
            and len(pack) == 3
            and all(isinstance(x, str) and x for x in pack[:2])
        ):
            _fail(error, f"packs[{i}]", "must be [name, version, sha256] (non-empty strings)")
        _check_hex(pack[2], 32, f"packs[{i}][2]", error)
    if len({p[0] for p in packs}) != len(packs):
        _fail(error, "packs", "names a pack twice")
    if not isinstance(body["facts"], dict):
        _fail(error, "facts", "must be a JSON object")
    _check_decision(body["decision"], error)
    stamps = body["timestamps"]
    if not isinstance(stamps, dict) or "issued_at" not in stamps:
        _fail(error, "timestamps", "must be an object with at least 'issued_at'")
    for key, value in stamps.items():
        if _TIMESTAMP_KEY.fullmatch(key) is None:
            _fail(error, f"timestamps.{key[:40]}", "is not a valid name (lower case, ends _at)")
        _check_time(value, f"timestamps.{key}", error)
    _check_signers(body["signers"], body["facts"], error)
    _check_audit(body["audit"], body, error)
    return body


# --------------------------------------------------------------------------------------------
# Strict parsing of certificate JSON; a signer's own key
# --------------------------------------------------------------------------------------------


def _parse_certificate_json(data: bytes) -> tuple[object, dict[str, bytes]]:
    """The (still unchecked) body and the signatures of certificate JSON, parsed strictly."""
    if len(data) > _MAX_JSON_BYTES:
        raise VerificationError(f"certificate is larger than {_MAX_JSON_BYTES} bytes")
    try:
        parsed = json.loads(
            data.decode("utf-8"), object_pairs_hook=_no_duplicates, parse_constant=_no_constant
        )
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise VerificationError(f"certificate is not valid UTF-8 JSON: {e}") from None
    top = _check_fields(parsed, frozenset({"body", "signatures"}), "(top level)", VerificationError)
    sigs = top["signatures"]
    if not isinstance(sigs, dict):
        raise VerificationError("certificate field signatures must be a JSON object")
    signatures = {
        n: bytes.fromhex(_check_hex(s, 64, f"signatures.{n[:40]}", VerificationError))
        for n, s in sigs.items()
    }
    return top["body"], signatures


def _check_own_key(body: Mapping[str, Any], name: str, key: object, what: str) -> None:
    """``key`` must be the private half of the public key listed for signer ``name``."""
    if not isinstance(key, SigningKey):
        raise InvalidParameter(f"{what} must be a SigningKey; got {type(key).__name__}")
    listed = bytes.fromhex(body["signers"][name]["public_key"])
    if not hmac.compare_digest(key.verify_key.to_bytes(), listed):
        raise InvalidParameter(
            f"{what} is not the public key listed for {name!r} in the certificate's signers; "
            "sign with that signer's own key (safeflow.policy.keystore)"
        )


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise ValueError("duplicate key in a JSON object")
    return result


def _no_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not valid JSON")


__all__ = [
    "BODY_FIELDS",
    "CERTIFICATE_VERSION",
    "EXPORTABLE_OUTCOMES",
    "MANIFEST_TYPE",
    "OUTCOMES",
    "RESERVED_NAMES",
    "manifest_digest",
    "sha256_hex",
]
