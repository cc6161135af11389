"""Certificates: issue, co-sign, verify; strict parsing; every single-byte change rejected;
Wycheproof Ed25519 through the certificate's signature check."""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import json
import random
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from safeflow.crypto.keys import SigningKey
from safeflow.errors import InvalidParameter, VerificationError
from safeflow.policy.audit import AuditLog, SignedCheckpoint, verify_log
from safeflow.policy.certificate import (
    BODY_FIELDS,
    CERTIFICATE_VERSION,
    Certificate,
    audit_section,
    build_body,
    decision_dict,
    release_entry,
    sha256_hex,
    value_digest,
    value_manifest,
    verify_signature,
)

WYCHEPROOF = Path(__file__).resolve().parents[2] / "data" / "wycheproof" / "ed25519_test.json"
KEYS = {
    n: SigningKey.from_bytes(hashlib.sha256(f"cert test {n}".encode()).digest())
    for n in ("customs", "beijing", "amsterdam", "mallory")
}
TRUSTED = {n: k.verify_key for n, k in KEYS.items() if n != "mallory"}
FILES = {
    "estimates.csv": b"term,coef,se\narm,-0.41,0.17\nage,0.02,0.01\n",
    "model.json": b'{"family":"binomial"}',
}
SPEC = sha256_hex(b"protocols/masking.yaml")
DECISION = {
    "outcome": "ALLOW_WITH_OBLIGATIONS",
    "rules": ["CN-health-consent"],
    "obligations": ["keep the consent records"],
    "exportable": True,
}
FACTS = {
    "output": {"kind": "regression", "protocol": "masking"},
    "origin": [
        {"site": "beijing", "jurisdiction": "CN"},
        {"site": "amsterdam", "jurisdiction": "NL"},
    ],
    "destination": {"jurisdiction": "NL", "recipient_type": "research"},
    "purpose": "scientific-research",
    "budget": {"epsilon_spent": "0.8"},
}


def make_body(
    tmp_path: Path,
    *,
    decision: Any = DECISION,
    files: dict[str, bytes] = FILES,
    log_key: SigningKey = KEYS["customs"],
    entry_overrides: dict[str, Any] | None = None,
    **overrides: Any,
) -> dict[str, Any]:
    """The documented workflow: hash the value, log the release, checkpoint, build the body."""
    digest = value_digest(files)
    entry = release_entry(
        output_sha256=digest,
        protocol_spec_sha256=SPEC,
        decision=decision,
        time="2026-02-01T08:00:00Z",
    )
    entry.update(entry_overrides or {})
    with AuditLog(
        tmp_path / f"customs-{random.random()}.sqlite", signing_key=log_key, log_id="customs"
    ) as log:
        log.append({"kind": "study_registration", "time": "2026-01-01T08:00:00Z"})
        for i in range(4):
            log.append(
                {
                    "kind": "message",
                    "time": "2026-02-01T07:00:00Z",
                    "hash": f"{i:064x}",
                    "size": 10,
                    "protocol": "masking",
                    "stage": "masked_input",
                    "sender": "beijing",
                    "receiver": "aggregator",
                }
            )
        index, _ = log.append(entry)
        log.append({"kind": "decision", "time": "2026-02-01T08:00:01Z", "outcome": "ALLOW"})
        audit = audit_section(log, index, log_signer="customs")
    kwargs: dict[str, Any] = dict(
        outputs=value_manifest(files),
        protocol_spec_sha256=SPEC,
        packs=[("CN", "2024.2", sha256_hex(b"cn")), ("EU", "2024.1", sha256_hex(b"eu"))],
        facts=FACTS,
        decision=decision,
        audit=audit,
        customs=("customs", KEYS["customs"].verify_key),
        sites={"beijing": KEYS["beijing"].verify_key, "amsterdam": KEYS["amsterdam"].verify_key},
        issued_at="2026-02-01T08:00:02Z",
    )
    kwargs.update(overrides)
    return build_body(**kwargs)


def full(body: dict[str, Any]) -> Certificate:
    cert = Certificate.issue(body, "customs", KEYS["customs"])
    return cert.cosign("beijing", KEYS["beijing"]).cosign("amsterdam", KEYS["amsterdam"])


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    return full(make_body(tmp_path_factory.mktemp("cert")))


# ------------------------------------------------------------------ the workflow


def test_issue_cosign_verify(cert: Certificate) -> None:
    assert cert.verify() is True
    assert cert.verify(trusted=TRUSTED) is True
    assert cert.pending == ()
    assert cert.signers == {"amsterdam": "site", "beijing": "site", "customs": "customs"}
    assert set(cert.body) == BODY_FIELDS and cert.body["version"] == CERTIFICATE_VERSION
    assert cert.output_sha256 == value_digest(FILES)
    assert cert.outputs == value_manifest(FILES)
    assert cert.exportable and cert.decision == DECISION
    assert cert.body["audit"]["index"] == 5 and cert.checkpoint.size == 7
    assert cert.signer_keys == TRUSTED
    for name, sig in cert.signatures.items():
        assert KEYS[name].verify_key.verify(cert.body_bytes, sig) is None
    assert repr(cert) == (
        f"<Certificate output={cert.output_sha256[:12]}... "
        "outcome=ALLOW_WITH_OBLIGATIONS signed by customs, amsterdam, beijing>"
    )


def test_round_trip_is_byte_identical(cert: Certificate) -> None:
    raw = cert.to_json()
    again = Certificate.from_json(raw)
    assert again == cert and again.to_json() == raw and hash(again) == hash(cert)
    assert Certificate.from_json(raw.decode()) == cert
    assert json.loads(raw)["body"] == cert.body
    assert raw == json_bytes(json.loads(raw))  # exactly RFC 8785


def test_certificate_is_immutable(cert: Certificate) -> None:
    with pytest.raises(AttributeError, match="immutable"):
        cert._body = {}  # type: ignore[misc]
    body = cert.body
    body["decision"]["outcome"] = "PROHIBITED"
    cert.signatures.clear()
    assert cert.decision["outcome"] == "ALLOW_WITH_OBLIGATIONS" and cert.verify()


def test_no_key_material_in_certificate(cert: Certificate) -> None:
    raw = cert.to_json()
    for key in KEYS.values():
        assert key.to_bytes().hex().encode() not in raw


def test_certificate_checkpoint_pins_the_audit_log(tmp_path: Path) -> None:
    """A certificate's checkpoint can be handed to verify_log (external checkpoint)."""
    body = make_body(tmp_path)
    cert = Certificate.issue(body, "customs", KEYS["customs"])
    (log_path,) = tmp_path.glob("customs-*.sqlite")
    report = verify_log(log_path, KEYS["customs"].verify_key, checkpoints=[cert.checkpoint])
    assert report.external_checkpoints == 1


def test_decision_object_with_enum_outcome(tmp_path: Path) -> None:
    class Outcome(enum.StrEnum):
        EXEMPT = "EXEMPT"

    @dataclasses.dataclass(frozen=True)
    class Decision:
        outcome: Outcome
        rules: tuple[str, ...]
        obligations: tuple[str, ...]
        exportable: bool

    d = Decision(Outcome.EXEMPT, ("CN-academic",), (), True)
    assert decision_dict(d) == {
        "outcome": "EXEMPT",
        "rules": ["CN-academic"],
        "obligations": [],
        "exportable": True,
    }
    assert full(make_body(tmp_path, decision=d)).verify(trusted=TRUSTED)


def test_value_digest_binds_names_and_bytes() -> None:
    base = value_digest(FILES)
    assert base == value_digest(dict(reversed(FILES.items())))
    assert value_digest({**FILES, "model.json": b"{}"}) != base
    assert (
        value_digest({"renamed.csv": FILES["estimates.csv"], "model.json": FILES["model.json"]})
        != base
    )
    assert value_digest({"estimates.csv": FILES["estimates.csv"]}) != base
    swapped = {"estimates.csv": FILES["model.json"], "model.json": FILES["estimates.csv"]}
    assert value_digest(swapped) != base
    for bad in (
        {},
        {"a/b.csv": b""},
        {".hidden": b""},
        {"certificate.json": b""},
        {"SUMMARY.txt": b""},
        {"x.csv": "text"},
    ):
        with pytest.raises(InvalidParameter):
            value_digest(bad)  # type: ignore[arg-type]


# ------------------------------------------------------------------ rejections


def test_missing_cosignature_is_rejected(tmp_path: Path) -> None:
    issued = Certificate.issue(make_body(tmp_path), "customs", KEYS["customs"])
    assert issued.pending == ("amsterdam", "beijing")
    half = issued.cosign("beijing", KEYS["beijing"])
    with pytest.raises(VerificationError, match="missing co-signature of site 'amsterdam'"):
        half.verify()
    with pytest.raises(VerificationError, match="missing co-signature of site 'amsterdam'"):
        Certificate.from_json(half.to_json()).verify(trusted=TRUSTED)


def test_missing_customs_signature_is_rejected(cert: Certificate) -> None:
    raw = json.loads(cert.to_json())
    del raw["signatures"]["customs"]
    stripped = Certificate.from_json(json_bytes(raw))
    with pytest.raises(VerificationError, match="missing co-signature of customs 'customs'"):
        stripped.verify()


def test_wrong_key_is_rejected(cert: Certificate) -> None:
    with pytest.raises(VerificationError, match="the key of signer 'beijing' is not the trusted"):
        cert.verify(trusted={**TRUSTED, "beijing": KEYS["mallory"].verify_key})
    with pytest.raises(VerificationError, match="no trusted key for signer 'amsterdam'"):
        cert.verify(trusted={n: k for n, k in TRUSTED.items() if n != "amsterdam"})


def test_signature_by_another_key_is_rejected(cert: Certificate) -> None:
    raw = json.loads(cert.to_json())
    raw["signatures"]["beijing"] = KEYS["mallory"].sign(cert.body_bytes).hex()
    with pytest.raises(VerificationError, match="the signature of 'beijing' does not verify"):
        Certificate.from_json(json_bytes(raw)).verify()
    raw["signatures"]["beijing"] = raw["signatures"]["amsterdam"]
    with pytest.raises(VerificationError, match="the signature of 'beijing' does not verify"):
        Certificate.from_json(json_bytes(raw)).verify()


def test_forgery_with_own_keys_fails_only_against_trusted_keys(tmp_path: Path) -> None:
    """Mallory re-creates everything with her own keys: self-consistent, so only the trusted
    key set exposes it (why regulators must pass `trusted`)."""
    body = make_body(
        tmp_path, log_key=KEYS["mallory"], customs=("customs", KEYS["mallory"].verify_key)
    )
    forged = Certificate.issue(body, "customs", KEYS["mallory"])
    forged = forged.cosign("beijing", KEYS["beijing"]).cosign("amsterdam", KEYS["amsterdam"])
    assert forged.verify()
    with pytest.raises(VerificationError, match="the key of signer 'customs' is not the trusted"):
        forged.verify(trusted=TRUSTED)


def test_cosign_and_issue_refuse_wrong_keys(cert: Certificate, tmp_path: Path) -> None:
    with pytest.raises(InvalidParameter, match="site_key is not the public key listed for"):
        cert.cosign("beijing", KEYS["amsterdam"])
    with pytest.raises(InvalidParameter, match="not an origin site"):
        cert.cosign("nowhere", KEYS["beijing"])
    with pytest.raises(InvalidParameter, match="customs_key is not the public key listed"):
        Certificate.issue(make_body(tmp_path), "customs", KEYS["mallory"])
    with pytest.raises(InvalidParameter, match="not the customs signer"):
        Certificate.issue(make_body(tmp_path), "beijing", KEYS["beijing"])
    with pytest.raises(VerificationError, match="the signature of 'beijing' does not verify"):
        cert.add_signature("beijing", KEYS["mallory"].sign(cert.body_bytes))
    with pytest.raises(VerificationError, match="not among the certificate's signers"):
        cert.add_signature("mallory", KEYS["mallory"].sign(cert.body_bytes))


def test_cosign_refuses_a_body_customs_did_not_sign(cert: Certificate) -> None:
    raw = json.loads(cert.to_json())
    raw["signatures"] = {"customs": KEYS["mallory"].sign(cert.body_bytes).hex()}
    bad = Certificate.from_json(json_bytes(raw))
    with pytest.raises(VerificationError, match="refusing to co-sign: the signature of 'customs'"):
        bad.cosign("beijing", KEYS["beijing"])


def test_audit_proof_is_checked(tmp_path: Path) -> None:
    body = make_body(tmp_path)
    body["audit"]["inclusion_proof"][0] = "00" * 32
    with pytest.raises(VerificationError, match="release entry is not in the audit log"):
        Certificate.issue(body, "customs", KEYS["customs"])
    body = make_body(tmp_path)
    body["audit"]["index"] = 4
    with pytest.raises(VerificationError, match="release entry is not in the audit log"):
        Certificate.issue(body, "customs", KEYS["customs"])
    body = make_body(tmp_path)
    body["audit"]["root"] = "11" * 32
    with pytest.raises(VerificationError, match="checkpoint is not signed by the log signer"):
        Certificate.issue(body, "customs", KEYS["customs"])
    body = make_body(tmp_path, log_key=KEYS["mallory"])
    with pytest.raises(VerificationError, match="checkpoint is not signed by the log signer"):
        Certificate.issue(body, "customs", KEYS["customs"])


def test_audit_entry_must_be_this_release(tmp_path: Path) -> None:
    with pytest.raises(InvalidParameter, match=r"audit.entry.output_sha256 does not match"):
        make_body(tmp_path, entry_overrides={"output_sha256": "ab" * 32})
    with pytest.raises(InvalidParameter, match=r"audit.entry.outcome does not match"):
        make_body(tmp_path, entry_overrides={"outcome": "EXEMPT"})
    with pytest.raises(InvalidParameter, match=r"audit.entry must be the logged 'release'"):
        make_body(tmp_path, entry_overrides={"kind": "decision"})


def test_signers_must_be_the_origin_sites(tmp_path: Path) -> None:
    with pytest.raises(InvalidParameter, match="must list every origin site as a co-signer"):
        make_body(tmp_path, sites={"beijing": KEYS["beijing"].verify_key})
    with pytest.raises(InvalidParameter, match="used twice"):
        make_body(tmp_path, sites={"customs": KEYS["beijing"].verify_key})


def test_decision_must_be_consistent(tmp_path: Path) -> None:
    with pytest.raises(InvalidParameter, match=r"decision.exportable must be true exactly"):
        make_body(tmp_path, decision={**DECISION, "outcome": "DENY_SDC"})
    with pytest.raises(InvalidParameter, match=r"decision.outcome must be one of"):
        make_body(tmp_path, decision={**DECISION, "outcome": "allow"})
    denied = {**DECISION, "outcome": "DENY_SDC", "exportable": False}
    cert = full(make_body(tmp_path, decision=denied))
    assert cert.verify() and not cert.exportable


# ------------------------------------------------------------------ strict parsing


def json_bytes(obj: Any) -> bytes:
    import rfc8785

    return rfc8785.dumps(obj)


def mutated(cert: Certificate, edit: Any) -> bytes:
    raw = json.loads(cert.to_json())
    edit(raw)
    return json_bytes(raw)


STRICT_CASES = {
    "unknown top-level key": lambda r: r.update(extra=1),
    "unknown body key": lambda r: r["body"].update(note="hi"),
    "missing body key": lambda r: r["body"].pop("packs"),
    "unknown audit key": lambda r: r["body"]["audit"].update(leaf="00"),
    "unknown signer field": lambda r: r["body"]["signers"]["beijing"].update(x=1),
    "index as string": lambda r: r["body"]["audit"].update(index="5"),
    "index as bool": lambda r: r["body"]["audit"].update(index=True),
    "exportable as string": lambda r: r["body"]["decision"].update(exportable="true"),
    "outputs as list": lambda r: r["body"].update(outputs=[]),
    "packs entry too short": lambda r: r["body"]["packs"][0].pop(),
    "upper-case hex": lambda r: r["body"].update(protocol_spec_sha256=SPEC.upper()),
    "short signature": lambda r: r["signatures"].update(beijing="00" * 63),
    "signature of a stranger": lambda r: r["signatures"].update(mallory="00" * 64),
    "wrong version": lambda r: r["body"].update(version="safeflow/certificate/v2"),
    "role unknown": lambda r: r["body"]["signers"]["beijing"].update(role="admin"),
    "two customs": lambda r: r["body"]["signers"]["beijing"].update(role="customs"),
    "bad timestamp": lambda r: r["body"]["timestamps"].update(issued_at="2026-02-01"),
    "output hash not of outputs": lambda r: r["body"].update(output_sha256="00" * 32),
    "signatures not an object": lambda r: r.update(signatures=[]),
    "body not an object": lambda r: r.update(body=[]),
}


@pytest.mark.parametrize("case", sorted(STRICT_CASES))
def test_strict_parsing(cert: Certificate, case: str) -> None:
    with pytest.raises(VerificationError, match="certificate"):
        Certificate.from_json(mutated(cert, STRICT_CASES[case]))


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        (b"\xff\xfe", "not valid UTF-8 JSON"),
        (b'{"body":{},"body":{}}', "not valid UTF-8 JSON"),
        (b'{"body":NaN,"signatures":{}}', "not valid UTF-8 JSON"),
        (b"[1]", "must be a JSON object"),
        (b"", "not valid UTF-8 JSON"),
        (b"[" * 100_000, "not valid UTF-8 JSON"),
    ],
)
def test_malformed_json(raw: bytes, match: str) -> None:
    with pytest.raises(VerificationError, match=match):
        Certificate.from_json(raw)


def test_non_canonical_encodings_are_rejected(cert: Certificate) -> None:
    raw = cert.to_json()
    obj = json.loads(raw)
    for variant in (
        json.dumps(obj).encode(),
        json.dumps(obj, sort_keys=True).encode(),
        raw + b"\n",
        b" " + raw,
        raw.replace(b'"size":7', b'"size":7.0'),
        raw.replace(b'"size":7', b'"size":7e0'),
    ):
        with pytest.raises(VerificationError):
            Certificate.from_json(variant)


def test_every_single_byte_change_is_rejected(cert: Certificate) -> None:
    """Each byte of the canonical form changed to another value, twice: to a random byte and
    to another byte of its class (digit, lower-case letter, upper-case letter), which is
    more likely to parse. Parsing or verification must fail, with a VerificationError and
    nothing else."""
    raw = cert.to_json()
    rng = random.Random(8785)
    classes = [b"0123456789", b"abcdefghijklmnopqrstuvwxyz", b"ABCDEFGHIJKLMNOPQRSTUVWXYZ"]
    outcomes = {"parse": 0, "verify": 0}
    for pos in range(len(raw)):
        same = next((c for c in classes if raw[pos] in c), bytes(range(256)))
        for pool in (range(256), same):
            value = rng.choice([b for b in pool if b != raw[pos]])
            changed = raw[:pos] + bytes([value]) + raw[pos + 1 :]
            try:
                parsed = Certificate.from_json(changed)
            except VerificationError:
                outcomes["parse"] += 1
                continue
            with pytest.raises(VerificationError):
                parsed.verify()
            outcomes["verify"] += 1
    assert sum(outcomes.values()) == 2 * len(raw) > 4000
    assert outcomes["verify"] > 1000, outcomes  # changes in hex and text reach the signatures


def test_every_hex_digit_change_in_signatures_and_keys_is_rejected(cert: Certificate) -> None:
    """Changes that stay well-formed (a hex digit to another hex digit) all reach the
    signature checks, in every signature, key, hash and proof element."""
    raw = cert.to_json()
    obj = json.loads(raw)
    hexes = [
        *obj["signatures"].values(),
        *(s["public_key"] for s in obj["body"]["signers"].values()),
        obj["body"]["audit"]["root"],
        *obj["body"]["audit"]["inclusion_proof"],
        obj["body"]["audit"]["checkpoint"]["signature"],
    ]
    rng = random.Random(1)
    for h in hexes:
        start = raw.index(h.encode())
        for pos in range(start, start + len(h), 7):
            value = rng.choice([c for c in b"0123456789abcdef" if c != raw[pos]])
            changed = raw[:pos] + bytes([value]) + raw[pos + 1 :]
            with pytest.raises(VerificationError):
                Certificate.from_json(changed).verify()


# ------------------------------------------------------------------ Wycheproof


@cache
def wycheproof_cases() -> list[tuple[str, dict[str, Any]]]:
    data = json.loads(WYCHEPROOF.read_text(encoding="utf-8"))
    assert data["algorithm"] == "EDDSA"
    return [(g["publicKey"]["pk"], t) for g in data["testGroups"] for t in g["tests"]]


def test_wycheproof_ed25519_through_the_certificate_check() -> None:
    """All 151 vectors through verify_signature, the function every certificate and checkpoint
    signature goes through: 100 % agreement."""
    cases = wycheproof_cases()
    assert len(cases) == 151
    agree = 0
    for pk, test in cases:
        public, msg, sig = (bytes.fromhex(x) for x in (pk, test["msg"], test["sig"]))
        try:
            ok = verify_signature(public, msg, sig)
        except VerificationError:
            ok = False
        assert ok == (test["result"] == "valid"), test["tcId"]
        agree += 1
    assert agree == 151


def test_certificate_verification_uses_verify_signature(
    cert: Certificate, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The Wycheproof test above covers the certificate path: verify() calls it for every
    signature (3 signers + the audit checkpoint)."""
    import safeflow.policy.certificate as module

    calls = []
    real = module.verify_signature

    def spy(*args: Any) -> bool:
        calls.append(args)
        return real(*args)

    monkeypatch.setattr(module, "verify_signature", spy)
    assert cert.verify()
    assert len(calls) == 4
    statement = SignedCheckpoint.statement(
        "customs", 7, cert.checkpoint.root, cert.checkpoint.timestamp
    )
    assert {c[1] for c in calls} == {cert.body_bytes, statement}


def test_certificate_from_the_policy_engine(tmp_path: Path) -> None:
    """A real Decision and normalised facts from safeflow.policy go into a certificate."""
    import safeflow.policy as policy

    facts = policy.normalize_facts(
        {
            "output": {
                "kind": "dp_release",
                "protocol": "masking",
                "dp": {"epsilon": 0.5, "delta": 0.0},
                "sdc": {"min_cell": 12, "has_zero": False, "nk_top2_share": 0.4},
            },
            "origin": [
                {"site": "beijing", "jurisdiction": "CN", "classes": ["health"]},
                {"site": "amsterdam", "jurisdiction": "NL", "classes": ["health"]},
            ],
            "destination": {"jurisdiction": "NL", "recipient_type": "research"},
            "budget": {"epsilon_total": 1.0, "epsilon_spent": 0.2, "epsilon_requested": 0.5},
        }
    )
    decision = policy.evaluate(facts)
    body = make_body(tmp_path, decision=decision, facts=facts, packs=decision.packs)
    cert = full(body)
    assert cert.verify(trusted=TRUSTED)
    assert cert.decision["outcome"] == str(decision.outcome)
    assert cert.exportable == decision.exportable
    assert [tuple(p) for p in cert.body["packs"]] == list(decision.packs)
