"""safeflow over a real Flower deployment: SuperLink + 3 SuperNodes on 127.0.0.1, TLS, node auth.

Every process (SuperLink, its SuperExec and ServerApps, the site agents, the SuperNodes,
their SuperExecs and ClientApps) is started here and stopped by PID in the fixture's
finalizer, also when a test fails. The releases must equal those of the local transport
on the same data: the same values, the same facts, decision and certificate shape, the
same audit entries at the sites. These SuperNodes run the bundled relay ClientApp
(``--isolation subprocess``, no pinned app); sites started with ``safeflow site serve``
are tested in test_flower_site_serve.py.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import safeflow as sf
from tests.conftest import LUNG_SCHEMA, lung, split_by_inst

pytest.importorskip("flwr", reason="Flower is not installed (pip install 'flwr>=1.41,<2')")

from safeflow.errors import ReplayedEnvelope
from safeflow.policy.export import verify_export
from safeflow.policy.keystore import load_or_create_signing_key
from safeflow.protocols import load_spec
from safeflow.transport.flower import wire
from safeflow.transport.flower.config import StudySite
from safeflow.transport.flower.deploy import LocalDeployment
from safeflow.transport.flower.submit import FlowerFederation

pytestmark = pytest.mark.slow

SITES = {"beijing": "CN", "amsterdam": "NL", "berlin": "DE"}
STUDY = "color-iv-flower"


def _site_files(root: Path, name: str, jur: str, part: pd.DataFrame) -> Path:
    d = root / "sites" / name
    d.mkdir(parents=True)
    part.to_csv(d / "rows.csv", index=False)
    (d / "schema.json").write_text(json.dumps(LUNG_SCHEMA.to_dict()))
    (d / "site.toml").write_text(
        f'[site]\nname = "{name}"\njurisdiction = "{jur}"\nstate_dir = "state"\n'
        f'studies = ["{STUDY}"]\n[data]\npath = "rows.csv"\n[schema]\npath = "schema.json"\n')
    return d


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    root = tmp_path_factory.mktemp("flower")
    parts = dict(zip(SITES, split_by_inst(lung(), len(SITES)), strict=True))
    (root / "coordinator.toml").write_text(
        '[coordinator]\nstate_dir = "coordinator"\noutbox = "outbox"\nreply_timeout = 90\n')
    dep = LocalDeployment(root / "deploy", root / "coordinator.toml", sites=list(SITES))
    try:
        dep.start_superlink()
        study_sites = []
        for name, jur in SITES.items():
            d = _site_files(root, name, jur, parts[name])
            key = load_or_create_signing_key(d / "state", name)  # pinned in the study
            study_sites.append(StudySite(name, jur, signing_key=key.verify_key.to_bytes().hex(),
                                         node_key=dep.pki.node_public_keys[name].read_text()))
            dep.register(name)
            dep.start_agent(name, d / "site.toml", d / "state" / "agent.sock")
        for name in SITES:
            dep.start_supernode(name, root / "sites" / name / "site.toml", wait=False)
        for name in SITES:
            dep._wait(f"supernode-{name}", lambda n=name: "SuperNode ID" in
                      dep.log(f"supernode-{n}"), 60, f"the SuperNode of {name}")
        flower = FlowerFederation(study_sites, destination="NL", purpose="scientific-research",
                                  schema=LUNG_SCHEMA, connection=dep.connection,
                                  outbox=root / "outbox", study=STUDY, cli=dep.cli,
                                  timeout=240)
        local = sf.Federation.local(
            [sf.Site(n, parts[n], j, schema=LUNG_SCHEMA) for n, j in SITES.items()],
            destination="NL", purpose="scientific-research", study=STUDY)
        yield {"dep": dep, "flower": flower, "local": local, "root": root}
    finally:
        dep.stop()
        assert not dep.pids(), "a Flower or safeflow process survived the deployment"


def _same_facts(a: sf.Release, b: sf.Release) -> None:
    fa, fb = dict(a.facts), dict(b.facts)
    for key in ("output", "origin", "destination", "purpose", "unit_of_privacy"):
        assert fa[key] == fb[key], key
    ra, rb = fa["run"], fb["run"]
    for key in ("study", "protocol_spec_sha256", "rounds", "contributors", "threshold",
                "rows_dropped", "border_bytes", "bytes_per_round"):
        assert ra[key] == rb[key], key
    assert set(ra["messages_sha256"]) == set(rb["messages_sha256"])
    assert (a.decision.outcome, a.decision.rules, a.decision.exportable) == (
        b.decision.outcome, b.decision.rules, b.decision.exportable)
    assert a.certificate.signers == b.certificate.signers
    assert a.certificate.verify(trusted=dict(a.trusted))
    assert a.rounds == b.rounds and [(e.round, e.stage) for e in a.log] == [
        (e.round, e.stage) for e in b.log]


def _audit_kinds(path: Path) -> list[tuple[str, str, int]]:
    """(kind, stage, round) of every entry of a site's audit log (read-only)."""
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as con:
        rows = con.execute("SELECT entry FROM entries ORDER BY idx").fetchall()
    return [(e.get("kind"), e.get("stage"), e.get("round"))
            for e in (json.loads(bytes(r[0])) for r in rows)]


def test_describe_matches_local(world: dict, tmp_path: Path) -> None:
    cols = ["age", "sex", "ph.ecog"]
    got = sf.describe(world["flower"], cols, protocol="masking")
    want = sf.describe(world["local"], cols, protocol="masking")
    pd.testing.assert_frame_equal(got.value, want.value)
    _same_facts(got, want)
    out = got.export(tmp_path / "describe")
    report = verify_export(out, trusted=dict(got.trusted))
    assert sorted(report.signers) == sorted(["customs", *SITES])


def test_glm_matches_local(world: dict) -> None:
    got = sf.glm(world["flower"], "wt.loss", ["age", "sex"], family="gaussian",
                 protocol="masking")
    want = sf.glm(world["local"], "wt.loss", ["age", "sex"], family="gaussian",
                  protocol="masking")
    np.testing.assert_array_equal(got.value.coef_, want.value.coef_)
    np.testing.assert_array_equal(got.value.cov, want.value.cov)
    pd.testing.assert_frame_equal(got.value.summary, want.value.summary)
    _same_facts(got, want)


def test_fl_training_matches_local(world: dict) -> None:
    # sf.fl.train is an ordinary analysis (fl_train): the same secure sums, rounds and
    # certificate over Flower; the sites train on their rows, only masked updates leave
    from safeflow import fl

    kw = {"rounds": 2, "target": "status", "seed": 7}
    got = fl.train(world["flower"], fl.LogisticRegression(["age", "sex"]), **kw)
    want = fl.train(world["local"], fl.LogisticRegression(["age", "sex"]), **kw)
    np.testing.assert_array_equal(got.value.weights, want.value.weights)
    pd.testing.assert_frame_equal(got.value.history, want.value.history)
    assert (got.value.n, got.facts["output"]["kind"]) == (want.value.n, "model")
    _same_facts(got, want)
    assert got.files == want.files  # model.json and summary.csv, byte for byte


@pytest.mark.skipif(not os.environ.get("SAFEFLOW_FLOWER_FULL"),
                    reason="~45 s more; set SAFEFLOW_FLOWER_FULL=1 to run it")
def test_kaplan_meier_matches_local(world: dict) -> None:
    got = sf.kaplan_meier(world["flower"], duration="time", event="status", protocol="masking")
    want = sf.kaplan_meier(world["local"], duration="time", event="status", protocol="masking")
    pd.testing.assert_frame_equal(got.value.survival, want.value.survival)
    _same_facts(got, want)


@pytest.mark.skipif(not os.environ.get("SAFEFLOW_FLOWER_FULL"),
                    reason="~60 s more; set SAFEFLOW_FLOWER_FULL=1 to run it")
def test_cox_matches_local(world: dict) -> None:
    kw = {"duration": "time", "event": "status", "covariates": ["age"], "strata": "site",
          "protocol": "masking"}
    got, want = sf.cox(world["flower"], **kw), sf.cox(world["local"], **kw)
    pd.testing.assert_frame_equal(got.value.summary, want.value.summary)
    _same_facts(got, want)


def _batch(fed: sf.Federation) -> list:
    from safeflow.analyses.batch import analysis_of

    return [analysis_of(sf.describe, fed, ["age", "sex", "ph.ecog"]),
            analysis_of(sf.glm, fed, "wt.loss", ["age", "sex"], family="gaussian"),
            analysis_of(sf.kaplan_meier, fed, duration="time", event="status")]


def _same_value(a: object, b: object) -> None:
    if isinstance(a, pd.DataFrame):
        pd.testing.assert_frame_equal(a, b)  # type: ignore[arg-type]
        return
    for name, v in vars(a).items():
        w = getattr(b, name)
        if isinstance(v, np.ndarray):
            np.testing.assert_array_equal(v, w)
        elif isinstance(v, pd.DataFrame):
            pd.testing.assert_frame_equal(v, w)
        elif isinstance(v, pd.Series):
            pd.testing.assert_series_equal(v, w)
        else:
            assert v == w or (v != v and w != w), name


def test_batch_is_one_session_and_equals_local(world: dict) -> None:
    # describe + gaussian GLM + Kaplan-Meier as one job: one masking session (2 set-up
    # exchanges), one secure sum (2 exchanges), one co-signature round, instead of three
    # of each; the values equal the local transport's, batched or run one by one
    flower, local = world["flower"], world["local"]
    t = time.perf_counter()
    got = flower.run_batch(_batch(flower), protocol="masking")
    batch_s = time.perf_counter() - t
    want = local.run_batch(_batch(local), protocol="masking")
    assert all(isinstance(r, sf.Release) for r in got), got
    parts = dict(zip(SITES, split_by_inst(lung(), len(SITES)), strict=True))
    alone = sf.Federation.local(  # a fresh federation: world["local"]'s audit logs unchanged
        [sf.Site(n, parts[n], j, schema=LUNG_SCHEMA) for n, j in SITES.items()],
        destination="NL", purpose="scientific-research", study=STUDY)
    separate = [sf.describe(alone, ["age", "sex", "ph.ecog"], protocol="masking"),
                sf.glm(alone, "wt.loss", ["age", "sex"], family="gaussian", protocol="masking"),
                sf.kaplan_meier(alone, duration="time", event="status", protocol="masking")]
    for g, w, s in zip(got, want, separate, strict=True):
        _same_value(g.value, w.value)
        _same_value(g.value, s.value)
        _same_facts(g, w)
        assert g.facts["output"] == s.facts["output"]
        assert sorted(g.certificate.signers) == sorted(["customs", *SITES])
    assert len({g.facts["run"]["run_id"] for g in got}) == 1
    exchanges = [(e.round, e.stage) for e in got[0].log]
    assert exchanges == [(e.round, e.stage) for e in separate[0].log]  # one analysis' worth
    assert len(exchanges) * 3 == sum(len(s.log) for s in separate)
    # wall time: the batch of three costs about one job (each job: flwr run, ServerApp
    # start, 4 exchanges and a co-signature round, ~5 s per Flower round trip)
    t = time.perf_counter()
    one = sf.describe(flower, ["age"], protocol="masking")
    single_s = time.perf_counter() - t
    assert one.decision.exportable
    sf.describe(local, ["age"], protocol="masking")  # the same audit entries at the sites
    print(f"\nbatch of 3 over Flower: {batch_s:.1f} s; one describe: {single_s:.1f} s")
    assert batch_s < 2.0 * single_s, (batch_s, single_s)


def test_site_audit_logs_match_local(world: dict) -> None:
    # runs after the analyses above (module order): the same messages were logged at each site
    for name in SITES:
        flower = _audit_kinds(world["root"] / "sites" / name / "state" / "audit.sqlite")
        local = _audit_kinds(world["local"].state_dir / "sites" / name / "audit.sqlite")
        assert flower == local, name
        if SITES[name] != "NL":  # sites outside the destination logged what crossed the border
            assert flower and all(kind == "message" for kind, _, _ in flower), name


def test_unregistered_node_is_refused(world: dict) -> None:
    dep = world["dep"]
    dep.start_supernode("intruder", None, key="unregistered", wait=False,
                        extra=["--max-retries", "1", "--max-wait-time", "10"])
    proc = dep.procs["supernode-intruder"]
    proc.wait(timeout=60)
    assert proc.returncode != 0
    assert "No SuperNode found with the given public key" in dep.log("superlink")
    assert "SuperNode ID" not in dep.log("supernode-intruder")


# A hostile ServerApp, submitted by someone who can run jobs on the SuperLink: it opens a
# session at beijing like a coordinator would (the genuine first exchange, captured), then
# re-sends the captured bytes through Flower. Its ClientApp is safeflow's own relay.
_REPLAY_PYPROJECT = """[build-system]
requires = ["hatchling"]
build-backend = "hatchling.build"

[project]
name = "safeflow-replay"
version = "1.0.0"
description = "replays captured safeflow envelopes (test)"
license = "Apache-2.0"
dependencies = []

[tool.hatch.build.targets.wheel]
packages = ["."]

[tool.flwr.app]
publisher = "safeflow"

[tool.flwr.app.components]
serverapp = "replay_app.server:app"
clientapp = "replay_app.client:app"

[tool.flwr.app.config]
job = ""
"""

_REPLAY_SERVER = '''"""Captures a site's requests and replays them through Flower (tests only)."""

import json
import time
from pathlib import Path

from flwr.app import Message
from flwr.serverapp import ServerApp

from safeflow.envelope import Envelope, Header, Payload
from safeflow.transport.flower import wire

app = ServerApp()


def _ask(grid, node, envelopes, timeout=60.0):
    msg = Message(wire.to_record(envelopes), dst_node_id=node, message_type=wire.MESSAGE_TYPE)
    (mid,) = grid.push_messages([msg])
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for reply in grid.pull_messages([mid]):
            if reply.has_error():
                return {"code": reply.error.code, "error": reply.error.reason}
            return {"ok": len(wire.from_record(reply.content))}
        time.sleep(0.1)
    return {"timeout": True}


@app.main()
def main(grid, context):
    cfg = json.loads(context.run_config["job"])
    node = next(n.node_id for n in grid.get_nodes() if n.name == cfg["site"])
    s = cfg["session"]

    def env(stage, meta):
        h = Header(cfg["study"], cfg["run"], 0, stage, "aggregator", cfg["site"])
        return Envelope(h, Payload("none", meta=meta)).to_bytes()

    opening = env("open", {"session": s})
    advertise = env("advertise", {"sites": s["sites"], "threshold": s["threshold"]})
    out = [_ask(grid, node, [opening, advertise]),  # genuine; the attacker keeps the bytes
           _ask(grid, node, [advertise]),  # the captured protocol request, replayed
           _ask(grid, node, [opening])]  # the captured session opening, replayed
    Path(cfg["out"]).write_text(json.dumps(out))
'''


def test_replayed_envelopes_are_refused_by_the_agent(world: dict, tmp_path: Path) -> None:
    # runs last: it opens a session at beijing, which logs one message in its audit log
    dep = world["dep"]
    app = tmp_path / "replay"
    (app / "replay_app").mkdir(parents=True)
    (app / "pyproject.toml").write_text(_REPLAY_PYPROJECT)
    (app / "replay_app" / "__init__.py").write_text("")
    (app / "replay_app" / "server.py").write_text(_REPLAY_SERVER)
    relay = Path(wire.__file__).with_name("_relay.py").read_text()
    (app / "replay_app" / "client.py").write_text(relay)
    out = tmp_path / "replies.json"
    session = {"sites": list(SITES), "jurisdictions": SITES, "threshold": 2,
               "destination": "NL", "purpose": "scientific-research", "protocol": "masking",
               "protocol_spec_sha256": load_spec("masking").sha256, "params": {},
               "schema": LUNG_SCHEMA.to_dict(), "max_rows_per_site": 2**32,
               "max_envelope_bytes": 1 << 30}
    job = {"site": "beijing", "study": STUDY, "run": "replayed-run", "session": session,
           "out": str(out)}
    cfg = tmp_path / "run.toml"
    cfg.write_text("job = " + json.dumps(json.dumps(job)) + "\n")
    dep.cli("run", str(app), "safeflow", "--run-config", str(cfg))
    deadline = time.monotonic() + 120
    while not out.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert out.exists(), dep.log("superlink")[-3000:]
    genuine, replayed, reopened = json.loads(out.read_text())
    assert genuine == {"ok": 2}
    for reply, says in ((replayed, "nonce already accepted"), (reopened, "already opened")):
        assert reply["code"] == wire.ERROR_CODE
        err = wire.error_from_json(reply["error"])
        assert isinstance(err, ReplayedEnvelope) and says in str(err), reply
