"""Protocol specs load and validate; the export gate refuses undeclared messages and rows."""

from __future__ import annotations

import numpy as np
import pytest

import safeflow as sf
from safeflow.envelope import Envelope, Payload
from safeflow.errors import ExportRefused, SpecError
from safeflow.protocols import ExportGate, load_spec
from safeflow.protocols.spec import parse_spec
from tests.conftest import lung_federation


@pytest.mark.parametrize("name", ["plain", "masking", "he"])
def test_specs_load_and_declare_every_stage(name: str) -> None:
    spec = load_spec(name)
    assert spec.name == name and len(spec.sha256) == 64
    for stage in spec.stage_order:
        assert spec.message(stage, "site") is not None, stage
        assert spec.message(stage, "aggregator") is not None, stage
    for m in spec.messages:
        assert m.size and m.reveals


def test_unknown_spec_is_a_typed_error() -> None:
    with pytest.raises(SpecError, match="no protocol spec named 'nope'"):
        load_spec("nope")


@pytest.mark.parametrize("text,msg", [
    (b"protocol: x\n", "missing key"),
    (b"[1, 2", "not valid YAML"),
    (b"protocol: x\nversion: 1\ntitle: t\nparameters: {}\nphases: {setup: [], round: [a]}\n"
     b"messages:\n - {stage: a, sender: site, receiver: nobody, content: control,"
     b" crosses_border: true, protection: none, fields: {}, size: '1', reveals: {}}\n",
     "sender and receiver"),
    (b"protocol: x\nversion: 1\ntitle: t\nparameters: {}\nphases: {setup: [], round: [a]}\n"
     b"messages:\n - {stage: a, sender: site, receiver: aggregator, content: control,"
     b" crosses_border: true, protection: rot13, fields: {}, size: '1', reveals: {}}\n",
     "protection must be"),
    (b"protocol: x\nversion: 1\ntitle: t\nparameters: {}\nphases: {setup: [], round: [a]}\n"
     b"messages:\n - {stage: a, sender: site, receiver: aggregator, content: rows,"
     b" crosses_border: true, protection: none, fields: {}, size: '1', reveals: {}}\n",
     "content must be"),
])
def test_malformed_specs_name_the_problem(text: bytes, msg: str) -> None:
    with pytest.raises(SpecError, match=msg):
        parse_spec(text, "bad.yaml")


def test_gate_refuses_an_undeclared_message() -> None:
    gate = ExportGate(load_spec("masking"), site="beijing")
    with pytest.raises(ExportRefused, match="declares no such site message"):
        gate.check("rows", Payload("none"), layout_size=3)


def test_gate_refuses_a_raw_row_and_wrong_protection() -> None:
    gate = ExportGate(load_spec("masking"), site="beijing")
    row = np.array([74.0, 1.0, 306.0])
    with pytest.raises(ExportRefused, match="not declared"):
        gate.check("masked_input", Payload("masked", arrays={"row": row}), layout_size=3)
    with pytest.raises(ExportRefused, match="dtype"):
        gate.check("masked_input", Payload("masked", arrays={"vector": row}), layout_size=3)
    vec = np.zeros(4, dtype=np.uint64)
    with pytest.raises(ExportRefused, match="raw rows never leave"):
        gate.check("masked_input", Payload("masked", arrays={"vector": vec}), layout_size=3)
    with pytest.raises(ExportRefused, match="protection 'none'"):
        gate.check("masked_input", Payload("none", arrays={"vector": vec[:3]}), layout_size=3)
    with pytest.raises(ExportRefused, match="field 'age'"):
        gate.check("scale", Payload("none", meta={"exponents": {}, "age": 74}), layout_size=None)
    gate.check("masked_input", Payload("masked", arrays={"vector": vec[:3]}), layout_size=3)


def test_a_site_whose_protocol_half_misbehaves_sends_nothing() -> None:
    """If a site half tried to leak its rows, the runtime's gate stops it before sending."""
    fed = lung_federation(2)
    sent: list[str] = []
    fed.simulate_faults(tamper=lambda s, r, st, raw: sent.append(st) or raw)
    from safeflow.protocols import plain

    original = plain.PlainSite._handle

    def leaky(self, rnd, stage, payload, local):  # type: ignore[no-untyped-def]
        return Payload("none", arrays={"vector": np.arange(7, dtype=np.uint64)})

    plain.PlainSite._handle = leaky  # type: ignore[method-assign]
    try:
        with pytest.raises(ExportRefused, match="raw rows never leave"):
            sf.describe(fed, ["age"], protocol="plain")
    finally:
        plain.PlainSite._handle = original  # type: ignore[method-assign]
    assert "plain_input" not in sent


def test_site_rejects_replayed_request() -> None:
    fed = lung_federation(2)
    captured: dict[str, bytes] = {}
    rel = sf.describe(fed, ["age"], protocol="plain")
    assert rel.rounds == 1
    from safeflow.envelope import Header
    from safeflow.errors import ReplayedEnvelope, UnexpectedStage
    from safeflow.protocols import SessionInfo
    from safeflow.runtime import SiteRuntime

    info = SessionInfo("s", "r", ("site0", "site1"), 2)
    rt = SiteRuntime("site0", fed._site_data["site0"], fed.public_schema, "plain", info,
                     context={**fed._context(), "site": "site0"})
    req = Envelope(Header("s", "r", 1, "scale", "aggregator", "site0"),
                   Payload("none", meta={"request": {"analysis": "describe", "params": {
                       "columns": ["age"], "by": None, "by_site": False}, "state": {}}}))
    raw = req.to_bytes()
    captured["first"] = rt.handle(raw)
    with pytest.raises(ReplayedEnvelope):
        rt.handle(raw)
    with pytest.raises(UnexpectedStage):
        rt.handle(Envelope(Header("s", "other", 1, "plain_input", "aggregator", "site0"),
                           Payload("none")).to_bytes())
