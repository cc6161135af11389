"""Sites run as their operators run them: ``safeflow site serve`` against a real SuperLink.

A LocalDeployment SuperLink (TLS, node authentication) on 127.0.0.1; each site is one
``safeflow site serve --config site.toml`` subprocess (production profile: TLS, node key,
the installed safeflow's app hash pinned), which starts the site's agent,
``flower-supernode --isolation process`` and the site executor. Every process is stopped by
PID after each test, also when it fails.

Faults use the agent's documented test-only hook ``SAFEFLOW_TEST_AGENT_EXIT_AT``: the agent
SIGKILLs itself on the first envelope of that round and stage (a site dying mid-round).
"""

from __future__ import annotations

import json
import os
import re
import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import safeflow as sf
from tests.conftest import LUNG_SCHEMA, lung, split_by_inst

pytest.importorskip("flwr", reason="Flower is not installed (pip install 'flwr>=1.41,<2')")

from safeflow.analyses.describe import Describe
from safeflow.errors import TooFewSurvivors
from safeflow.policy.keystore import load_or_create_signing_key
from safeflow.transport.flower._process import _alive, children
from safeflow.transport.flower.agent import FAULT_ENV
from safeflow.transport.flower.apps import write_flower_app
from safeflow.transport.flower.config import StudySite
from safeflow.transport.flower.deploy import LocalDeployment
from safeflow.transport.flower.executor import app_hash
from safeflow.transport.flower.pki import UnpinnedApp
from safeflow.transport.flower.submit import FlowerFederation, run_on_flower

pytestmark = pytest.mark.slow

SITES = {"beijing": "CN", "amsterdam": "NL", "berlin": "DE"}
STUDY = "color-iv-serve"
COLS = ["age", "sex", "ph.ecog"]


@pytest.fixture(scope="module")
def link(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """The SuperLink, the registered node keys and each site's files (sites not started)."""
    root = tmp_path_factory.mktemp("serve")
    parts = dict(zip(SITES, split_by_inst(lung(), len(SITES)), strict=True))
    (root / "coordinator.toml").write_text(
        '[coordinator]\nstate_dir = "coordinator"\noutbox = "outbox"\nreply_timeout = 30\n')
    dep = LocalDeployment(root / "deploy", root / "coordinator.toml", sites=list(SITES))
    try:
        dep.start_superlink()
        pin = app_hash()
        study_sites = []
        for name, jur in SITES.items():
            d = root / "sites" / name
            d.mkdir(parents=True)
            parts[name].to_csv(d / "rows.csv", index=False)
            (d / "schema.json").write_text(json.dumps(LUNG_SCHEMA.to_dict()))
            (d / "site.toml").write_text(
                f'[site]\nname = "{name}"\njurisdiction = "{jur}"\nstate_dir = "state"\n'
                f'studies = ["{STUDY}"]\n[data]\npath = "rows.csv"\n'
                f'[schema]\npath = "schema.json"\n' + dep.supernode_table(name, pins=[pin]))
            key = load_or_create_signing_key(d / "state", name)
            study_sites.append(StudySite(name, jur, signing_key=key.verify_key.to_bytes().hex(),
                                         node_key=dep.pki.node_public_keys[name].read_text()))
            dep.register(name)
        flower = FlowerFederation(study_sites, destination="NL", purpose="scientific-research",
                                  schema=LUNG_SCHEMA, connection=dep.connection,
                                  outbox=root / "outbox", study=STUDY, cli=dep.cli,
                                  timeout=240)
        yield {"dep": dep, "flower": flower, "root": root, "parts": parts, "pin": pin}
    finally:
        dep.stop()
        assert not dep.pids(), "a Flower or safeflow process survived the deployment"


@pytest.fixture
def serve(link: dict) -> Iterator[Callable[..., None]]:
    """``serve(faults={site: "ROUND:STAGE"})`` starts every site's ``safeflow site serve``;
    all of them are stopped by PID (with their children) when the test ends."""
    dep: LocalDeployment = link["dep"]

    def start(faults: dict[str, str] | None = None) -> None:
        for name in SITES:
            env = {FAULT_ENV: faults[name]} if faults and name in faults else {}
            dep.start_site(name, link["root"] / "sites" / name / "site.toml", env=env,
                           wait=False)
        for name in SITES:
            dep.wait_site(name)

    yield start
    for name in SITES:
        dep.stop_process(f"site-{name}")


def _local(link: dict, names: list[str]) -> sf.Federation:
    return sf.Federation.local(
        [sf.Site(n, link["parts"][n], SITES[n], schema=LUNG_SCHEMA) for n in names],
        destination="NL", purpose="scientific-research", study=STUDY)


def _site_log(link: dict, name: str, process: str) -> str:
    return (link["root"] / "sites" / name / "state" / "logs" / f"{process}.log").read_text()


def test_site_serve_runs_describe_and_refuses_unpinned_apps(link: dict, serve: Callable,
                                                            tmp_path: Path) -> None:
    serve()
    dep: LocalDeployment = link["dep"]
    got = sf.describe(link["flower"], COLS, protocol="masking")
    want = sf.describe(_local(link, list(SITES)), COLS, protocol="masking")
    pd.testing.assert_frame_equal(got.value, want.value)
    assert got.facts["run"]["contributors"] == sorted(SITES)
    assert sorted(got.certificate.signers) == sorted(["customs", *SITES])
    for name in SITES:  # every message was answered by the site's executor, app pinned
        log = _site_log(link, name, "executor")
        assert re.search(rf"app {link['pin'][:12]} -> ok", log), log

    # a modified app (one extra module in the bundle) is refused by every site, typed,
    # end to end; run_on_flower rewrites safeflow's own files, the extra one stays
    app = write_flower_app(tmp_path / "app")
    (app / "safeflow_app" / "extra.py").write_text("# not safeflow's\n")
    job = link["flower"].job(Describe({"columns": ["age"], "by": None, "by_site": False}),
                             "masking", {})
    with pytest.raises(UnpinnedApp, match="not one of the app hashes pinned"):
        run_on_flower(job, dep.connection, outbox=link["root"] / "outbox", cli=dep.cli,
                      app_dir=app, timeout=180)

    # SIGTERM stops a site's processes (by PID, children included) and exits 0
    proc = dep.procs["site-berlin"]
    family = [proc.pid, *children(proc.pid)]
    assert len(family) >= 4  # serve, agent, supernode, executor
    os.kill(proc.pid, signal.SIGTERM)
    assert proc.wait(timeout=60) == 0
    assert not [p for p in family if _alive(p)]
    assert "safeflow site berlin stopped" in dep.log("site-berlin")


def test_a_site_dying_mid_round_leaves_the_survivors_exact_sum(link: dict,
                                                               serve: Callable) -> None:
    serve(faults={"beijing": "1:masked_input"})
    dep: LocalDeployment = link["dep"]
    got = sf.describe(link["flower"], COLS, protocol="masking")
    survivors = ["amsterdam", "berlin"]
    assert got.facts["run"]["contributors"] == survivors
    want = sf.describe(_local(link, survivors), COLS, protocol="masking")
    pd.testing.assert_frame_equal(got.value, want.value)  # exact: the survivors' sum
    assert sorted(got.certificate.signers) == sorted(["customs", *survivors])
    # beijing's `site serve` saw its agent die, stopped the rest and failed with its log
    proc = dep.procs["site-beijing"]
    assert proc.wait(timeout=60) == 1
    out = dep.log("site-beijing")
    assert re.search(r"agent \(pid \d+\) exited with code -9", out), out
    assert "last lines of" in out and "ready on" in out
    assert not [p for p in children(proc.pid) if _alive(p)]


def test_two_sites_dying_mid_round_abort_typed(link: dict, serve: Callable) -> None:
    serve(faults={"beijing": "1:masked_input", "amsterdam": "1:masked_input"})
    with pytest.raises(TooFewSurvivors, match=r"only 1 of 3 sites answered at stage "
                                              r"'masked_input'.*nothing was released"):
        sf.describe(link["flower"], COLS, protocol="masking")
    dep: LocalDeployment = link["dep"]
    for name in ("beijing", "amsterdam"):
        assert dep.procs[f"site-{name}"].wait(timeout=60) == 1
    assert np.all([dep.procs["site-berlin"].poll() is None])  # the survivor still serves
