"""The Flower transport's pieces without a deployment: configs, PKI, wire, jobs, the agent."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import safeflow as sf
from safeflow.envelope import Envelope, Header, Payload
from safeflow.errors import (
    ExportRefused,
    InvalidParameter,
    ReplayedEnvelope,
    SchemaError,
    TransportError,
    UnexpectedStage,
)
from safeflow.protocols import load_spec
from safeflow.transport.flower import wire
from safeflow.transport.flower.agent import SiteAgent, serve
from safeflow.transport.flower.config import StudySite, load_coordinator_config, load_site_config
from safeflow.transport.flower.job import Job, decode_value, encode_value
from safeflow.transport.flower.pki import (
    InsecureTransport,
    make_ca,
    make_client_cert,
    make_node_keypair,
    node_public_key_der,
    require_secure,
    write_deployment_pki,
)
from safeflow.transport.flower.submit import FlowerConnection

SCHEMA = sf.Schema([sf.Column("age", classes=("public",), bounds=(0, 120))])


def _site(tmp: Path, name: str = "beijing", jur: str = "CN", extra: str = "") -> Path:
    d = tmp / name
    d.mkdir()
    pd.DataFrame({"age": [60.0, 70.0, 80.0]}).to_csv(d / "rows.csv", index=False)
    (d / "schema.json").write_text(json.dumps(SCHEMA.to_dict()))
    (d / "site.toml").write_text(f'[site]\nname = "{name}"\njurisdiction = "{jur}"\n'
                                 f'state_dir = "state"\n{extra}[data]\npath = "rows.csv"\n')
    return d / "site.toml"


# ------------------------------------------------------------------------------ config


def test_site_config_is_strict(tmp_path: Path) -> None:
    p = _site(tmp_path)
    cfg = load_site_config(p)
    assert (cfg.name, cfg.jurisdiction, cfg.socket) == ("beijing", "CN",
                                                       p.parent / "state" / "agent.sock")
    p.write_text(p.read_text() + "[extra]\nx = 1\n")
    with pytest.raises(InvalidParameter, match="unknown table"):
        load_site_config(p)


def test_coordinator_config_bounds(tmp_path: Path) -> None:
    p = tmp_path / "c.toml"
    p.write_text('[coordinator]\nstate_dir = "s"\noutbox = "o"\npoll_interval = 0\n')
    with pytest.raises(InvalidParameter, match="poll_interval"):
        load_coordinator_config(p)


# ------------------------------------------------------------------------------ PKI


def test_pki_files_and_key_formats(tmp_path: Path) -> None:
    pki = write_deployment_pki(tmp_path / "pki", ["a"])
    assert pki.node_public_keys["a"].read_bytes().startswith(b"ecdsa-sha2-nistp384 ")
    assert pki.node_keys["a"].stat().st_mode & 0o777 == 0o600
    with pytest.raises(InvalidParameter, match="already exists"):
        write_deployment_pki(tmp_path / "pki", ["a"])
    ca = make_ca()
    assert make_client_cert(ca, "x").certificate.issuer == ca.certificate.subject
    pair = make_node_keypair()
    assert len(node_public_key_der(pair.public_openssh)) > 60
    with pytest.raises(InvalidParameter, match="OpenSSH line"):
        node_public_key_der(b"not a key")


def test_production_refuses_insecure_starts() -> None:
    with pytest.raises(InsecureTransport, match="without TLS"):
        require_secure("production", tls=False, node_auth=True)
    with pytest.raises(InsecureTransport, match="--enable-supernode-auth"):
        require_secure("production", tls=True, node_auth=False)
    with pytest.raises(InsecureTransport):
        FlowerConnection("127.0.0.1:1", insecure=True)
    assert FlowerConnection("127.0.0.1:1", insecure=True, profile="test").insecure


# ------------------------------------------------------------------------------ wire


def test_errors_round_trip_typed_and_closed_set() -> None:
    e = wire.error_from_json(wire.error_to_json(ExportRefused("no", rule="R", fix="F")))
    assert isinstance(e, ExportRefused) and (e.rule, e.fix) == ("R", "F")
    assert type(wire.error_from_json('{"type": "KeyError", "message": "m"}')) is TransportError
    assert "secret" not in wire.error_to_json(ValueError("secret 7"))


def test_record_round_trip_is_raw_bytes() -> None:
    pytest.importorskip("flwr")
    envs = [b"SFE1" + bytes(range(256)), b""]
    assert wire.from_record(wire.to_record(envs)) == envs
    with pytest.raises(TransportError, match="without safeflow envelopes"):
        wire.from_record({})


# ------------------------------------------------------------------------------ jobs


def test_value_codec_is_exact() -> None:
    r = sf.glm(sf.Federation.local(
        [sf.Site("a", pd.DataFrame({"age": [1.0, 2.5, 3.0, 7.0]}), "CN", schema=SCHEMA),
         sf.Site("b", pd.DataFrame({"age": [4.0, 5.5, 6.0, 1.0]}), "NL", schema=SCHEMA)],
        destination="NL", purpose="scientific-research"), "age", [], protocol="masking").value
    back = decode_value(*encode_value(r))
    np.testing.assert_array_equal(back.coef_, r.coef_)
    pd.testing.assert_frame_equal(back.summary, r.summary)
    assert (back.loglik, back.names, back.iterations) == (r.loglik, r.names, r.iterations)


def test_value_codec_carries_a_trained_model_exactly() -> None:
    from safeflow import fl

    schema = sf.Schema([sf.Column("age", classes=("public",), bounds=(0, 120)),
                        sf.Column("y", classes=("public",), kind="binary", categories=(0, 1))])
    df = pd.DataFrame({"age": [30.0, 50.0, 70.0, 90.0], "y": [0, 0, 1, 1]})
    fed = sf.Federation.local([sf.Site("a", df[:2], "CN", schema=schema),
                               sf.Site("b", df[2:], "NL", schema=schema)],
                              destination="NL", purpose="scientific-research")
    m = fl.train(fed, fl.LogisticRegression(["age"]), rounds=2, target="y", seed=3).value
    back = decode_value(*encode_value(m))
    np.testing.assert_array_equal(back.weights, m.weights)
    assert not back.weights.flags.writeable and back.encoder == m.encoder
    pd.testing.assert_frame_equal(back.history, m.history)
    assert back.to_json() == m.to_json() and repr(back) == repr(m)
    probe = pd.DataFrame({"age": [40.0, 80.0]})
    np.testing.assert_array_equal(back.predict_proba(probe), m.predict_proba(probe))


def test_job_rejects_foreign_keys() -> None:
    j = Job("s", "NL", "p", (StudySite("a", "CN"), StudySite("b", "NL")), SCHEMA.to_dict(),
            {"analysis": "describe", "params": {}, "state": {}}, "masking")
    d = json.loads(j.to_json())
    d["exec"] = "rm -rf /"
    with pytest.raises(sf.errors.ProtocolError, match="malformed job"):
        Job.from_json(json.dumps(d))


# ------------------------------------------------------------------------------ agent


def _open(name: str = "beijing", run: str = "r1", study: str = "s", **over: object) -> bytes:
    session = {"sites": ["beijing", "amsterdam"],
               "jurisdictions": {"beijing": "CN", "amsterdam": "NL"}, "threshold": 2,
               "destination": "NL", "purpose": "scientific-research", "protocol": "masking",
               "protocol_spec_sha256": load_spec("masking").sha256, "params": {},
               "schema": SCHEMA.to_dict(), "max_rows_per_site": 2**32,
               "max_envelope_bytes": 1 << 20, **over}
    return Envelope(Header(study, run, 0, wire.OPEN, "aggregator", name),
                    Payload("none", meta={"session": session})).to_bytes()


def test_agent_opens_checks_and_refuses_replays(tmp_path: Path) -> None:
    agent = SiteAgent(load_site_config(_site(tmp_path)))
    try:
        raw = _open()
        reply = Envelope.from_bytes(agent.handle(raw))
        assert reply.payload.meta["signing_key"] == agent.verify_key_hex
        with pytest.raises(ReplayedEnvelope):
            agent.handle(raw)
        with pytest.raises(InvalidParameter, match="this site is in 'CN'"):
            agent.handle(_open(run="r2", jurisdictions={"beijing": "NL", "amsterdam": "NL"}))
        other = sf.Schema([sf.Column("age", classes=("public",), bounds=(0, 99))])
        with pytest.raises(SchemaError, match="differs"):
            agent.handle(_open(run="r3", schema=other.to_dict()))
        with pytest.raises(UnexpectedStage, match="reached site"):
            agent.handle(_open(name="amsterdam", run="r4"))
        close = Envelope(Header("s", "r1", 0, wire.CLOSE, "aggregator", "beijing"),
                         Payload("none")).to_bytes()
        agent.handle(close)
        with pytest.raises(UnexpectedStage, match="no open session"):
            agent.handle(close)
    finally:
        agent.close()


def test_agent_socket_serves_typed_errors(tmp_path: Path) -> None:
    cfg = load_site_config(_site(tmp_path, extra='studies = ["only-this"]\n'))
    ready = threading.Event()
    t = threading.Thread(target=lambda: _serve_quietly(cfg, ready), daemon=True)
    t.start()
    assert ready.wait(30)
    assert cfg.socket.stat().st_mode & 0o777 == 0o600
    with pytest.raises(TransportError, match="has not joined study 's'"):
        wire.agent_exchange(str(cfg.socket), [_open()], max_bytes=1 << 20)
    ok = wire.agent_exchange(str(cfg.socket), [_open(study="only-this")], max_bytes=1 << 20)
    assert Envelope.from_bytes(ok[0]).header.sender == "beijing"


def _serve_quietly(cfg: object, ready: threading.Event) -> None:
    import signal

    orig = signal.signal
    signal.signal = lambda *a, **k: None  # type: ignore[assignment]  # not the main thread
    try:
        serve(cfg, ready=ready.set)  # type: ignore[arg-type]
    finally:
        signal.signal = orig  # type: ignore[assignment]
    time.sleep(0)
