"""Release certificates: what was released, why, and where it is in the audit log, signed.

A certificate has a **body** and **signatures**. The body is a JSON object, signed in its
canonical form (RFC 8785), with exactly the fields :mod:`safeflow.policy.cert_schema`
describes and checks (``version``, ``output_sha256``, ``outputs``,
``protocol_spec_sha256``, ``packs``, ``facts``, ``decision``, ``timestamps``, ``audit``,
``signers``); :mod:`safeflow.policy.cert_body` builds one (:func:`build_body`).

``signatures`` maps each signer's name to its Ed25519 signature (hex) over the canonical body
bytes. Customs signs first (:meth:`Certificate.issue`); each origin site co-signs
(:meth:`Certificate.cosign`). :meth:`Certificate.verify` checks everything offline: every
expected signature present and valid, the keys against a trusted set when one is given, the
checkpoint signature and the inclusion proof of the logged entry. Parsing is strict: the
JSON must be exactly the canonical encoding, with no unknown or missing fields and no
ill-typed values, so any change to a certificate's bytes makes it fail.

Examples
--------
>>> from safeflow.policy.certificate import _example
>>> cert = _example()
>>> cert.pending
('amsterdam', 'beijing')
>>> cert.verify()
Traceback (most recent call last):
...
safeflow.errors.VerificationError: certificate does not verify: missing co-signature of ...
>>> cert = _example(cosigned=True)
>>> cert.verify()
True
>>> Certificate.from_json(cert.to_json()) == cert
True
"""

from __future__ import annotations

import copy
import hmac
import json
from collections.abc import Iterable, Mapping
from typing import Any, NoReturn

from safeflow.crypto.keys import SigningKey, VerifyKey
from safeflow.errors import CryptoError, InvalidParameter, VerificationError
from safeflow.policy.audit import SignedCheckpoint
from safeflow.policy.canonical import canonical_json
from safeflow.policy.cert_body import (
    _example_body,
    audit_section,
    build_body,
    decision_dict,
    release_entry,
    value_digest,
    value_manifest,
)
from safeflow.policy.cert_schema import (
    BODY_FIELDS,
    CERTIFICATE_VERSION,
    EXPORTABLE_OUTCOMES,
    MANIFEST_TYPE,
    OUTCOMES,
    RESERVED_NAMES,
    _check_body,
    _check_own_key,
    _parse_certificate_json,
    manifest_digest,
    sha256_hex,
)
from safeflow.policy.merkle import leaf_hash, verify_inclusion

# --------------------------------------------------------------------------------------------
# Signatures
# --------------------------------------------------------------------------------------------


def verify_signature(public_key: bytes | VerifyKey, message: bytes, signature: bytes) -> bool:
    """Check an Ed25519 signature the way certificates do: True, or VerificationError.

    Every signature on a certificate and on an audit checkpoint goes through this function
    (RFC 8032 verification by :class:`~safeflow.crypto.keys.VerifyKey`: canonical ``S``
    and ``R``, exact length, no malleability).

    Parameters
    ----------
    public_key : bytes or VerifyKey
        32-byte RFC 8032 public key.
    message : bytes
    signature : bytes
        64 bytes.

    Returns
    -------
    bool

    Raises
    ------
    VerificationError
        If the key is not a valid Ed25519 public key or the signature does not verify.

    Examples
    --------
    >>> from safeflow.crypto.keys import SigningKey
    >>> sk = SigningKey.from_bytes(bytes(32))
    >>> verify_signature(sk.verify_key, b"body", sk.sign(b"body"))
    True
    >>> verify_signature(sk.verify_key.to_bytes(), b"bodY", sk.sign(b"body"))
    Traceback (most recent call last):
    ...
    safeflow.errors.VerificationError: Ed25519 signature does not verify ...
    """
    try:
        key = public_key if isinstance(public_key, VerifyKey) else VerifyKey(public_key)
        key.verify(message, signature)
    except CryptoError:
        raise VerificationError(
            "Ed25519 signature does not verify for this key and message (wrong key, altered "
            "message or altered signature)"
        ) from None
    return True


# --------------------------------------------------------------------------------------------
# The audit proof a body carries
# --------------------------------------------------------------------------------------------


def _audit_problems(body: Mapping[str, Any]) -> list[str]:
    """The checkpoint signature and the inclusion proof of the logged entry."""
    audit = body["audit"]
    problems = []
    signer_key = bytes.fromhex(body["signers"][audit["log_signer"]]["public_key"])
    root = bytes.fromhex(audit["root"])
    statement = SignedCheckpoint.statement(
        audit["log_id"], audit["size"], root, audit["checkpoint"]["timestamp"]
    )
    try:
        verify_signature(signer_key, statement, bytes.fromhex(audit["checkpoint"]["signature"]))
    except VerificationError:
        problems.append(
            f"the audit checkpoint is not signed by the log signer "
            f"{audit['log_signer']!r} (checkpoint or root altered)"
        )
    try:
        verify_inclusion(
            leaf_hash(canonical_json(audit["entry"])),
            audit["index"],
            audit["size"],
            [bytes.fromhex(p) for p in audit["inclusion_proof"]],
            root,
        )
    except VerificationError as e:
        problems.append(f"the release entry is not in the audit log at the recorded position: {e}")
    return problems


# --------------------------------------------------------------------------------------------
# The certificate
# --------------------------------------------------------------------------------------------


class Certificate:
    """A signed release certificate (immutable; :meth:`cosign` returns a new one).

    Build one with :meth:`issue` (customs) and :meth:`cosign` (each origin site), or read
    one with :meth:`from_json`; check it with :meth:`verify`.

    Examples
    --------
    >>> from safeflow.policy.certificate import _example
    >>> cert = _example(cosigned=True)
    >>> cert
    <Certificate output=... outcome=ALLOW signed by customs, amsterdam, beijing>
    >>> cert.signers
    {'amsterdam': 'site', 'beijing': 'site', 'customs': 'customs'}
    """

    __slots__ = ("_body", "_body_bytes", "_signatures")

    _body: dict[str, Any]
    _body_bytes: bytes
    _signatures: dict[str, bytes]

    def __init__(self, body: Mapping[str, Any], signatures: Mapping[str, bytes]) -> None:
        try:
            body_bytes = canonical_json(body, "the certificate body")
        except InvalidParameter as e:
            raise VerificationError(str(e)) from None
        checked = _check_body(json.loads(body_bytes), VerificationError)
        for name, sig in signatures.items():
            if name not in checked["signers"]:
                raise VerificationError(
                    f"a signature from {name[:40]!r}, who is not among the certificate's "
                    "signers, was attached; the certificate was altered"
                )
            if not isinstance(sig, bytes) or len(sig) != 64:
                raise VerificationError(f"the signature of {name!r} must be 64 bytes")
        self._set(checked, body_bytes, signatures)

    def _set(
        self, body: dict[str, Any], body_bytes: bytes, signatures: Mapping[str, bytes]
    ) -> None:
        object.__setattr__(self, "_body", body)
        object.__setattr__(self, "_body_bytes", body_bytes)
        object.__setattr__(self, "_signatures", dict(sorted(signatures.items())))

    @classmethod
    def _checked(
        cls, body: dict[str, Any], body_bytes: bytes, signatures: Mapping[str, bytes]
    ) -> Certificate:
        """A certificate from a body already checked and its canonical bytes."""
        cert = cls.__new__(cls)
        cert._set(body, body_bytes, signatures)
        return cert

    # ---------------------------------------------------------------- creation

    @classmethod
    def issue(
        cls, body: Mapping[str, Any], customs_name: str, customs_key: SigningKey
    ) -> Certificate:
        """Customs checks a body (see :func:`build_body`) and signs it first.

        Parameters
        ----------
        body : Mapping
        customs_name : str
            The customs signer's name in ``body["signers"]``.
        customs_key : SigningKey
            Must match the public key listed for ``customs_name``.

        Returns
        -------
        Certificate
            Signed by customs; the origin sites' co-signatures are :attr:`pending`.

        Raises
        ------
        InvalidParameter
            If the body is malformed or the key is not the listed customs key.
        VerificationError
            If the body's audit checkpoint or inclusion proof does not verify.

        Examples
        --------
        >>> from safeflow.crypto.keys import SigningKey
        >>> from safeflow.policy.cert_body import _example_body
        >>> body, keys = _example_body()
        >>> Certificate.issue(body, "customs", keys["customs"]).pending
        ('amsterdam', 'beijing')
        >>> Certificate.issue(body, "customs", keys["beijing"])
        Traceback (most recent call last):
        ...
        safeflow.errors.InvalidParameter: customs_key is not the public key listed ...
        """
        body_bytes = canonical_json(body, "the certificate body")
        body = _check_body(json.loads(body_bytes), InvalidParameter)
        role = body["signers"].get(customs_name, {}).get("role")
        if role != "customs":
            raise InvalidParameter(
                f"{customs_name!r} is not the customs signer of this body; customs is "
                f"{[n for n, i in body['signers'].items() if i['role'] == 'customs']}"
            )
        _check_own_key(body, customs_name, customs_key, "customs_key")
        problems = _audit_problems(body)
        if problems:
            raise VerificationError("refusing to issue: " + "; ".join(problems))
        return cls._checked(body, body_bytes, {customs_name: customs_key.sign(body_bytes)})

    def cosign(self, site_name: str, site_key: SigningKey) -> Certificate:
        """An origin site co-signs; returns a new certificate with its signature added.

        The site first checks customs' signature and the audit proof; it should also have
        checked the body's content (facts, decision) against its own records.

        Parameters
        ----------
        site_name : str
            The site's name in the signers.
        site_key : SigningKey
            Must match the public key listed for ``site_name``.

        Returns
        -------
        Certificate

        Raises
        ------
        InvalidParameter
            If ``site_name`` is not a site signer or the key does not match.
        VerificationError
            If customs' signature or the audit proof does not verify.

        Examples
        --------
        >>> from safeflow.policy.certificate import _example
        >>> from safeflow.policy.cert_body import _example_keys
        >>> cert = _example()
        >>> cert.cosign("beijing", _example_keys()["beijing"]).pending
        ('amsterdam',)
        >>> cert.cosign("customs", _example_keys()["customs"])
        Traceback (most recent call last):
        ...
        safeflow.errors.InvalidParameter: 'customs' is not an origin site ...
        """
        if self._body["signers"].get(site_name, {}).get("role") != "site":
            raise InvalidParameter(
                f"{site_name!r} is not an origin site of this certificate; its sites are "
                f"{[n for n, r in self.signers.items() if r == 'site']}"
            )
        _check_own_key(self._body, site_name, site_key, "site_key")
        customs = self._customs_name()
        problems = self._signature_problems([customs]) + _audit_problems(self._body)
        if problems:
            raise VerificationError("refusing to co-sign: " + "; ".join(problems))
        return self.add_signature(site_name, site_key.sign(self._body_bytes))

    def add_signature(self, signer_name: str, signature: bytes) -> Certificate:
        """Attach a signature made elsewhere (e.g. returned by a remote site), checking it.

        Parameters
        ----------
        signer_name : str
        signature : bytes
            64-byte Ed25519 signature over :attr:`body_bytes`.

        Returns
        -------
        Certificate

        Raises
        ------
        VerificationError
            If ``signer_name`` is not a signer or the signature does not verify.

        Examples
        --------
        >>> from safeflow.policy.certificate import _example
        >>> from safeflow.policy.cert_body import _example_keys
        >>> cert = _example()
        >>> sig = _example_keys()["amsterdam"].sign(cert.body_bytes)
        >>> cert.add_signature("amsterdam", sig).pending
        ('beijing',)
        >>> cert.add_signature("beijing", sig)
        Traceback (most recent call last):
        ...
        safeflow.errors.VerificationError: the signature of 'beijing' does not verify ...
        """
        if signer_name not in self._body["signers"]:
            raise VerificationError(f"{signer_name!r} is not among the certificate's signers")
        signature = bytes(signature)
        try:
            verify_signature(self._signer_key(signer_name), self._body_bytes, signature)
        except VerificationError:
            raise VerificationError(
                f"the signature of {signer_name!r} does not verify over this certificate's "
                "body; ask the signer to sign the canonical body bytes again"
            ) from None
        return self._checked(
            self._body, self._body_bytes, {**self._signatures, signer_name: signature}
        )

    # ---------------------------------------------------------------- verification

    def verify(self, *, trusted: Mapping[str, VerifyKey] | None = None) -> bool:
        """Check the certificate offline: True, or VerificationError naming what failed.

        Checks that every expected signer (customs and every origin site) signed, that each
        signature verifies over the canonical body, that each signer's key is the trusted
        one (when ``trusted`` is given), that the audit checkpoint is signed by the log
        signer and that the logged release entry is included at the recorded position.

        Parameters
        ----------
        trusted : Mapping[str, VerifyKey], optional
            Public keys the verifier trusts, by signer name, obtained out of band. Every
            signer must be present and match. Without it, only the keys embedded in the
            certificate are used: that proves integrity, not who signed.

        Returns
        -------
        bool

        Raises
        ------
        VerificationError

        Examples
        --------
        >>> from safeflow.crypto.keys import SigningKey
        >>> from safeflow.policy.certificate import _example
        >>> from safeflow.policy.cert_body import _example_keys
        >>> cert = _example(cosigned=True)
        >>> trusted = {n: k.verify_key for n, k in _example_keys().items()}
        >>> cert.verify(trusted=trusted)
        True
        >>> cert.verify(trusted={**trusted, "beijing": SigningKey.from_bytes(
        ...     bytes([9]) * 32).verify_key})
        Traceback (most recent call last):
        ...
        safeflow.errors.VerificationError: certificate does not verify: the key of signer ...
        """
        problems = [f"missing co-signature of {self.signers[n]} {n!r}" for n in self.pending]
        problems += self._signature_problems(self._signatures)
        if trusted is not None:
            for name in self._body["signers"]:
                key = trusted.get(name)
                if key is None:
                    problems.append(f"no trusted key for signer {name!r}")
                elif not isinstance(key, VerifyKey):
                    raise InvalidParameter(f"trusted[{name!r}] must be a VerifyKey")
                elif not hmac.compare_digest(key.to_bytes(), self._signer_key(name)):
                    problems.append(f"the key of signer {name!r} is not the trusted key")
        problems += _audit_problems(self._body)
        if problems:
            raise VerificationError("certificate does not verify: " + "; ".join(problems))
        return True

    def _signature_problems(self, names: Iterable[str]) -> list[str]:
        problems = []
        for name in names:
            signature = self._signatures.get(name)
            if signature is None:
                problems.append(f"missing signature of {name!r}")
                continue
            try:
                verify_signature(self._signer_key(name), self._body_bytes, signature)
            except VerificationError:
                problems.append(
                    f"the signature of {name!r} does not verify (body or signature "
                    "altered, or signed with another key)"
                )
        return problems

    # ---------------------------------------------------------------- (de)serialisation

    def to_json(self) -> bytes:
        """Canonical JSON (RFC 8785) of ``{"body": ..., "signatures": {name: hex}}``.

        Examples
        --------
        >>> from safeflow.policy.certificate import _example
        >>> _example().to_json()[:9]
        b'{"body":{'
        """
        # The canonical form of {"body", "signatures"}: keys in order, body bytes as signed.
        signatures = canonical_json({n: s.hex() for n, s in self._signatures.items()})
        return b'{"body":' + self._body_bytes + b',"signatures":' + signatures + b"}"

    @classmethod
    def from_json(cls, data: bytes | str) -> Certificate:
        """Parse a certificate strictly; VerificationError on any deviation.

        The input must be exactly the canonical encoding :meth:`to_json` writes: valid UTF-8
        JSON without duplicate keys, no unknown or missing fields, correct types, lower-case
        hex. Parsing does not check signatures; call :meth:`verify`.

        Parameters
        ----------
        data : bytes or str

        Returns
        -------
        Certificate

        Examples
        --------
        >>> from safeflow.policy.certificate import _example
        >>> raw = _example().to_json()
        >>> Certificate.from_json(raw).pending
        ('amsterdam', 'beijing')
        >>> Certificate.from_json(raw.replace(b'"body"', b' "body"'))
        Traceback (most recent call last):
        ...
        safeflow.errors.VerificationError: certificate is not in canonical form ...
        """
        if isinstance(data, str):
            data = data.encode("utf-8")
        if not isinstance(data, bytes | bytearray | memoryview):
            raise InvalidParameter(f"data must be bytes; got {type(data).__name__}")
        data = bytes(data)
        body, signatures = _parse_certificate_json(data)
        cert = cls(body, signatures)
        if cert.to_json() != data:
            raise VerificationError(
                "certificate is not in canonical form (RFC 8785): it was re-encoded or altered; "
                "use the certificate.json file exactly as exported"
            )
        return cert

    # ---------------------------------------------------------------- accessors

    @property
    def body(self) -> dict[str, Any]:
        """A copy of the body."""
        return copy.deepcopy(self._body)

    @property
    def body_bytes(self) -> bytes:
        """The canonical body bytes every signature covers."""
        return self._body_bytes

    @property
    def signatures(self) -> dict[str, bytes]:
        """Signatures present, by signer name."""
        return dict(self._signatures)

    @property
    def signers(self) -> dict[str, str]:
        """Expected signers and their roles (``customs`` or ``site``)."""
        return {n: i["role"] for n, i in sorted(self._body["signers"].items())}

    @property
    def signer_keys(self) -> dict[str, VerifyKey]:
        """The public key embedded for each signer.

        Examples
        --------
        >>> from safeflow.policy.certificate import _example
        >>> from safeflow.policy.cert_body import _example_keys
        >>> _example().signer_keys["customs"] == _example_keys()["customs"].verify_key
        True
        """
        return {n: VerifyKey(self._signer_key(n)) for n in sorted(self._body["signers"])}

    @property
    def pending(self) -> tuple[str, ...]:
        """Signers whose signature is still missing, in name order."""
        return tuple(n for n in sorted(self._body["signers"]) if n not in self._signatures)

    @property
    def output_sha256(self) -> str:
        """:func:`value_digest` of the certified value files."""
        return str(self._body["output_sha256"])

    @property
    def outputs(self) -> dict[str, str]:
        """The certified manifest ``{file name: sha256 hex}``."""
        return dict(self._body["outputs"])

    @property
    def decision(self) -> dict[str, Any]:
        """``{outcome, rules, obligations, exportable}``."""
        return copy.deepcopy(self._body["decision"])

    @property
    def exportable(self) -> bool:
        """Whether the certified decision allows export."""
        return bool(self._body["decision"]["exportable"])

    @property
    def checkpoint(self) -> SignedCheckpoint:
        """The audit checkpoint the certificate carries, e.g. for ``verify_log(checkpoints=)``.

        Examples
        --------
        >>> from safeflow.policy.certificate import _example
        >>> _example().checkpoint.size
        2
        """
        a = self._body["audit"]
        return SignedCheckpoint(
            a["log_id"],
            a["size"],
            bytes.fromhex(a["root"]),
            a["checkpoint"]["timestamp"],
            bytes.fromhex(a["checkpoint"]["signature"]),
        )

    def _signer_key(self, name: str) -> bytes:
        return bytes.fromhex(self._body["signers"][name]["public_key"])

    def _customs_name(self) -> str:
        return next(n for n, r in self.signers.items() if r == "customs")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Certificate):
            return NotImplemented
        return self.to_json() == other.to_json()

    def __hash__(self) -> int:
        return hash(self.to_json())

    def __setattr__(self, name: str, value: object) -> NoReturn:
        raise AttributeError(f"{type(self).__name__} is immutable")

    def __delattr__(self, name: str) -> NoReturn:
        raise AttributeError(f"{type(self).__name__} is immutable")

    def __repr__(self) -> str:
        signed = sorted(self._signatures, key=lambda n: (self.signers[n] != "customs", n))
        pending = f"; missing {', '.join(self.pending)}" if self.pending else ""
        return (
            f"<Certificate output={self.output_sha256[:12]}... outcome="
            f"{self._body['decision']['outcome']} signed by "
            f"{', '.join(signed) or 'nobody'}{pending}>"
        )


# --------------------------------------------------------------------------------------------
# A small worked example (used by the docstrings and tests)
# --------------------------------------------------------------------------------------------


def _example(cosigned: bool = False) -> Certificate:
    """The example certificate, issued by customs (and co-signed by both sites)."""
    body, keys = _example_body()
    cert = Certificate.issue(body, "customs", keys["customs"])
    if cosigned:
        cert = cert.cosign("beijing", keys["beijing"]).cosign("amsterdam", keys["amsterdam"])
    return cert


__all__ = [
    "BODY_FIELDS",
    "CERTIFICATE_VERSION",
    "EXPORTABLE_OUTCOMES",
    "MANIFEST_TYPE",
    "OUTCOMES",
    "RESERVED_NAMES",
    "Certificate",
    "audit_section",
    "build_body",
    "decision_dict",
    "manifest_digest",
    "release_entry",
    "sha256_hex",
    "value_digest",
    "value_manifest",
    "verify_signature",
]
