"""``safeflow site serve`` / ``pki init`` / ``coordinator serve`` without a deployment.

The commands' refusals (production profile without TLS, node authentication or pinned app
hashes), the ``[supernode]`` table, the supervisor that keeps a site's processes in the
foreground, the executor's app pinning and relay, and the channel's handling of a site
whose agent is down. The deployed behaviour is in tests/system/test_flower_site_serve.py.
"""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pandas as pd
import pytest
from typer.testing import CliRunner

import safeflow as sf
from safeflow.envelope import Envelope, Header, Payload
from safeflow.errors import (
    InvalidParameter,
    TransportError,
    UnexpectedStage,
    VerificationError,
)
from safeflow.protocols import load_spec
from safeflow.transport.flower import wire
from safeflow.transport.flower._process import _alive, children, stop_processes
from safeflow.transport.flower.agent import SiteAgent
from safeflow.transport.flower.cli import app
from safeflow.transport.flower.config import load_site_config
from safeflow.transport.flower.executor import SiteExecutor, check_app, fab_sha256
from safeflow.transport.flower.pki import UnpinnedApp
from safeflow.transport.flower.service import ProcessSpec, Supervisor, site_processes

SCHEMA = sf.Schema([sf.Column("age", classes=("public",), bounds=(0, 120))])
PIN = "ab" * 32
runner = CliRunner()


def _site(tmp: Path, supernode: str | None = None) -> Path:
    pd.DataFrame({"age": [60.0, 70.0]}).to_csv(tmp / "rows.csv", index=False)
    (tmp / "schema.json").write_text(json.dumps(SCHEMA.to_dict()))
    text = ('[site]\nname = "beijing"\njurisdiction = "CN"\nstate_dir = "state"\n'
            '[data]\npath = "rows.csv"\n')
    if supernode is not None:
        text += "[supernode]\n" + supernode
    (tmp / "site.toml").write_text(text)
    return tmp / "site.toml"


def _secure(tmp: Path, pins: str = f'["{PIN}"]') -> str:
    (tmp / "ca.pem").write_text("x")
    (tmp / "node.key").write_text("x")
    return ('superlink = "127.0.0.1:9092"\nroot_certificates = "ca.pem"\n'
            f'auth_private_key = "node.key"\npinned_app_hashes = {pins}\n')


# ------------------------------------------------------------------------------ config


def test_supernode_table_is_parsed_and_strict(tmp_path: Path) -> None:
    cfg = load_site_config(_site(tmp_path, _secure(tmp_path) + "clientappio_port = 9094\n"))
    sn = cfg.supernode
    assert sn is not None and (sn.superlink, sn.profile, sn.clientappio_port) == (
        "127.0.0.1:9092", "production", 9094)
    assert sn.root_certificates == tmp_path / "ca.pem" and sn.pinned_app_hashes == (PIN,)
    for bad, what in [('superlink = "nohost"\n', "superlink"),
                      ('superlink = "h:1"\nprofile = "dev"\n', "profile"),
                      ('superlink = "h:1"\npinned_app_hashes = ["abc"]\n', "SHA-256"),
                      ('superlink = "h:1"\nclientappio_port = 80\n', "clientappio_port"),
                      ('superlink = "h:1"\ninsecure = true\n', "unknown key")]:
        with pytest.raises(InvalidParameter, match=what):
            load_site_config(_site(tmp_path, bad))


# ------------------------------------------------------------------------------ site serve


@pytest.mark.parametrize(("table", "error", "says"), [
    (None, "InvalidParameter", "no [supernode] table"),
    ('superlink = "127.0.0.1:9092"\n', "InsecureTransport", "without TLS"),
    ('superlink = "127.0.0.1:9092"\nroot_certificates = "ca.pem"\n', "InsecureTransport",
     "--enable-supernode-auth"),
    ("NOPINS", "UnpinnedApp", "safeflow site app-hash"),
    ("MISSING", "InvalidParameter", "does not exist"),
])
def test_site_serve_refuses_before_starting_anything(tmp_path: Path, table: str | None,
                                                     error: str, says: str) -> None:
    if table == "NOPINS":
        table = _secure(tmp_path, pins="[]")
    elif table == "MISSING":
        table = _secure(tmp_path)
        (tmp_path / "ca.pem").unlink()
    toml = _site(tmp_path, table)
    result = runner.invoke(app, ["site", "serve", "--config", str(toml)])
    assert result.exit_code == 2, result.output
    assert error in result.output and says in " ".join(result.output.split())
    assert not (tmp_path / "state" / "logs").exists()  # nothing was started


def test_site_processes_test_profile_and_production(tmp_path: Path) -> None:
    cfg = load_site_config(_site(tmp_path, 'superlink = "127.0.0.1:9092"\nprofile = "test"\n'))
    agent, supernode, executor = site_processes(cfg, runtime_port=9999)
    assert "--insecure" in supernode.args and "--isolation" in supernode.args
    assert supernode.args[supernode.args.index("--isolation") + 1] == "process"
    assert "127.0.0.1:9999" in executor.args
    assert agent.args[-1] == str(cfg.path)
    cfg = load_site_config(_site(tmp_path, _secure(tmp_path)))
    _, supernode, _ = site_processes(cfg, runtime_port=9999)
    args = supernode.args
    assert args[args.index("--root-certificates") + 1] == str(tmp_path / "ca.pem")
    assert args[args.index("--auth-supernode-private-key") + 1] == str(tmp_path / "node.key")
    assert "--insecure" not in args and "--superexec-auth-secret-file" in args


def test_site_app_hash_prints_the_pinnable_hash() -> None:
    pytest.importorskip("flwr")
    result = runner.invoke(app, ["site", "app-hash"])
    assert result.exit_code == 0
    digest = result.output.split()[0]
    assert re.fullmatch(r"[0-9a-f]{64}", digest)
    assert "pinned_app_hashes" in result.output


# ------------------------------------------------------------------------------ pki / coordinator


def test_pki_init_writes_keys_once(tmp_path: Path) -> None:
    out = tmp_path / "pki"
    result = runner.invoke(app, ["pki", "init", str(out), "--node", "beijing",
                                 "--node", "berlin", "--host", "127.0.0.1"])
    assert result.exit_code == 0, result.output
    assert (out / "nodes" / "berlin.key").stat().st_mode & 0o777 == 0o600
    assert (out / "nodes" / "beijing.pub").read_text().startswith("ecdsa-sha2-nistp384 ")
    assert "flwr supernode register" in result.output
    again = runner.invoke(app, ["pki", "init", str(out), "--node", "beijing"])
    assert again.exit_code == 2 and "already exists" in again.output


def test_coordinator_serve_refuses_insecure_production(tmp_path: Path) -> None:
    (tmp_path / "c.toml").write_text('[coordinator]\nstate_dir = "s"\noutbox = "o"\n')
    result = runner.invoke(app, ["coordinator", "serve", "--config", str(tmp_path / "c.toml")])
    assert result.exit_code == 2 and "InsecureTransport" in result.output
    result = runner.invoke(app, ["coordinator", "serve", "--config", str(tmp_path / "c.toml"),
                                 "--pki", str(tmp_path / "nope")])
    assert result.exit_code == 2 and "safeflow pki init" in result.output


# ------------------------------------------------------------------------------ supervisor


def _py(code: str) -> tuple[str, ...]:
    return (sys.executable, "-c", code)


def test_supervisor_stops_everything_when_one_process_dies(tmp_path: Path) -> None:
    out = io.StringIO()
    sup = Supervisor(tmp_path / "logs", out)
    try:
        keeper = sup.start(ProcessSpec("keeper", _py(
            "import subprocess, sys, time; print('ready on', flush=True); "
            "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
            "time.sleep(60)"), ready_text="ready on"), timeout=30)
        sup.start(ProcessSpec("dying", _py(
            "import sys, time; print('ready on', flush=True); time.sleep(0.5); "
            "print('disk full', flush=True); sys.exit(3)"), ready_text="ready on"), timeout=30)
        grandchild = None
        deadline = time.monotonic() + 10
        while grandchild is None and time.monotonic() < deadline:
            grandchild = next(iter(children(keeper.pid)), None)
            time.sleep(0.05)
        assert grandchild is not None
        assert sup.watch(threading.Event(), poll=0.05) == 1
    finally:
        sup.stop(timeout=5)
    assert "dying (pid" in out.getvalue() and "exited with code 3" in out.getvalue()
    assert "disk full" in out.getvalue()  # the dying process's log tail
    assert keeper.poll() is not None and not _alive(grandchild)  # descendants too, by PID


def test_supervisor_reports_a_start_failure_with_its_log(tmp_path: Path) -> None:
    sup = Supervisor(tmp_path / "logs", io.StringIO())
    try:
        with pytest.raises(TransportError, match=r"(?s)exited with code 4.*bad config"):
            sup.start(ProcessSpec("agent", _py(
                "import sys; print('bad config', flush=True); sys.exit(4)"),
                ready_text="ready on"), timeout=30)
    finally:
        sup.stop(timeout=5)


def test_supervisor_stop_event_returns_zero(tmp_path: Path) -> None:
    sup = Supervisor(tmp_path / "logs", io.StringIO())
    stop = threading.Event()
    try:
        p = sup.start(ProcessSpec("sleeper", _py("print('ready on', flush=True); "
                                                 "import time; time.sleep(60)"),
                                  ready_text="ready on"), timeout=30)
        threading.Timer(0.2, stop.set).start()
        assert sup.watch(stop, poll=0.05) == 0
    finally:
        sup.stop(timeout=5)
    assert p.poll() is not None
    stop_processes([p])  # idempotent on exited processes


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux")
def test_supervised_processes_end_with_a_killed_supervisor(tmp_path: Path) -> None:
    script = (
        "import sys, time\n"
        "from safeflow.transport.flower.service import ProcessSpec, Supervisor\n"
        f"sup = Supervisor({str(tmp_path / 'logs')!r}, sys.stderr)\n"
        "p = sup.start(ProcessSpec('child', (sys.executable, '-c', "
        "\"print('ready on', flush=True); import time; time.sleep(60)\"), "
        "ready_text='ready on'), timeout=30)\n"
        "print(p.pid, flush=True)\n"
        "time.sleep(60)\n")
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                              start_new_session=True)
    try:
        assert parent.stdout is not None
        child = int(parent.stdout.readline())
        parent.kill()  # SIGKILL: the supervisor cannot clean up itself
        parent.wait(timeout=10)
        deadline = time.monotonic() + 10
        while _alive(child) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(child)
    finally:
        parent.stdout.close()  # type: ignore[union-attr]
        stop_processes([parent], timeout=2)


# ------------------------------------------------------------------------------ executor


def test_check_app_pins() -> None:
    check_app(fab_sha256(b"fab"), pinned=(fab_sha256(b"fab"),), site="s")
    with pytest.raises(UnpinnedApp, match="refuses this run") as e:
        check_app(fab_sha256(b"other"), pinned=(fab_sha256(b"fab"),), site="s")
    assert isinstance(e.value, VerificationError)
    back = wire.error_from_json(wire.error_to_json(e.value))
    assert type(back) is UnpinnedApp  # reaches the analyst as the same typed error


def test_executor_refuses_production_without_pins(tmp_path: Path) -> None:
    cfg = load_site_config(_site(tmp_path, _secure(tmp_path, pins="[]")))
    with pytest.raises(UnpinnedApp, match="pins none"):
        SiteExecutor(cfg, "127.0.0.1:1")


def _msg(envelopes: list[bytes], message_type: str = wire.MESSAGE_TYPE) -> Any:
    pytest.importorskip("flwr")
    return SimpleNamespace(metadata=SimpleNamespace(message_type=message_type),
                           content=wire.to_record(envelopes))


def _open(run: str = "r1", **over: Any) -> bytes:
    session = {"sites": ["beijing", "amsterdam"],
               "jurisdictions": {"beijing": "CN", "amsterdam": "NL"}, "threshold": 2,
               "destination": "NL", "purpose": "scientific-research", "protocol": "masking",
               "protocol_spec_sha256": load_spec("masking").sha256, "params": {},
               "schema": SCHEMA.to_dict(), "max_rows_per_site": 2**32,
               "max_envelope_bytes": 1 << 20, **over}
    return Envelope(Header("s", run, 0, wire.OPEN, "aggregator", "beijing"),
                    Payload("none", meta={"session": session})).to_bytes()


def test_executor_relays_only_safeflow_messages(tmp_path: Path) -> None:
    cfg = load_site_config(_site(tmp_path, 'superlink = "127.0.0.1:9092"\nprofile = "test"\n'))
    ex = SiteExecutor(cfg, "127.0.0.1:1")
    with pytest.raises(TransportError, match="answers only safeflow messages"):
        ex.relay(_msg([_open()], message_type="train"))
    with pytest.raises(wire.AgentUnavailable, match="cannot reach the site agent"):
        ex.relay(_msg([_open()]))  # no agent is running: the site counts as dropped out


def test_agent_refuses_another_protocol_spec(tmp_path: Path) -> None:
    agent = SiteAgent(load_site_config(_site(tmp_path)))
    try:
        with pytest.raises(VerificationError, match="another 'masking' protocol spec"):
            agent.handle(_open(protocol_spec_sha256="0" * 64))
        assert Envelope.from_bytes(agent.handle(_open(run="r2"))).header.sender == "beijing"
    finally:
        agent.close()


def test_agent_fault_hook_is_parsed_strictly(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAFEFLOW_TEST_AGENT_EXIT_AT", "masked_input")
    with pytest.raises(InvalidParameter, match="ROUND:STAGE"):
        SiteAgent(load_site_config(_site(tmp_path)))


# ------------------------------------------------------------------------------ channel


class _Grid:
    """Answers every pushed message with a Flower error of ``code`` from the right node."""

    def __init__(self, code: int, src: int | None = None) -> None:
        self.code, self.src, self.pushed = code, src, {}

    def push_messages(self, msgs: list[Any]) -> list[str]:
        ids = []
        for m in msgs:
            ids.append(f"m{len(self.pushed)}")
            self.pushed[ids[-1]] = m.dst_node_id
        return ids

    def pull_messages(self, ids: list[str]) -> list[Any]:
        err = SimpleNamespace(code=self.code, reason=wire.error_to_json(
            wire.AgentUnavailable("agent down")))
        return [SimpleNamespace(metadata=SimpleNamespace(
            reply_to_message_id=i, src_node_id=self.src or self.pushed[i]),
                                has_error=lambda: True, error=err) for i in ids]


@pytest.mark.parametrize(("code", "src"), [(wire.UNAVAILABLE_CODE, None),
                                           (wire.ERROR_CODE, None), (5, 1), (7, 1)],
                         ids=["agent-down", "typed-refusal", "node-offline", "forged"])
def test_channel_counts_an_unreachable_site_as_dropped(monkeypatch: pytest.MonkeyPatch,
                                                       code: int, src: int | None) -> None:
    flwr_app = pytest.importorskip("flwr.app")
    from safeflow.transport.flower.channel import FlowerChannel

    monkeypatch.setattr(flwr_app, "Message", lambda content, **kw: SimpleNamespace(
        content=content, **kw))
    ch = FlowerChannel(_Grid(code, src), study="s", run="r", nodes={"a": 11, "b": 12},
                       jurisdictions={"a": "CN", "b": "NL"}, aggregator_jurisdiction="NL",
                       session={}, pinned_keys={}, max_envelope_bytes=1 << 20, timeout=5)
    requests = {"a": Payload("none"), "b": Payload("none")}
    if code == wire.ERROR_CODE:  # a typed refusal from a live agent aborts the run
        with pytest.raises(TransportError, match="agent down"):
            ch.exchange(0, "advertise", requests)
        return
    if code == 7:  # another node (or the SuperLink) answering in a site's place
        with pytest.raises(UnexpectedStage, match="came from another node"):
            ch.exchange(0, "advertise", requests)
        return
    assert ch.exchange(0, "advertise", requests) == {}
    assert ch._dead == {"a", "b"} and ch.log[-1].answered == ()


# ------------------------------------------------------------------------------ coordinator


@pytest.mark.parametrize("extra", [{"dp_fedavg": {"epsilon": "1", "delta": "1e-06",
                                                  "unit": "patient", "alpha": 0.05}},
                                   {"budget": {"forged": True}}], ids=["dp_fedavg", "budget"])
def test_coordinator_refuses_dp_fedavg_jobs(tmp_path: Path, extra: dict[str, Any]) -> None:
    """A job cannot make customs certify DP (or budget facts) that no site paid for."""
    from safeflow.fl.analysis import FLTrain
    from safeflow.transport.flower.config import CoordinatorConfig, StudySite
    from safeflow.transport.flower.coordinator import CoordinatorFederation
    from safeflow.transport.flower.job import Job

    job = Job("s", "NL", "scientific-research", (StudySite("a", "CN"), StudySite("b", "NL")),
              SCHEMA.to_dict(), {"analysis": "describe", "params": {}, "state": {}}, "masking")
    cfg = CoordinatorConfig(state_dir=tmp_path / "state", outbox=tmp_path / "out")
    fed = CoordinatorFederation(job, cfg, SimpleNamespace(get_nodes=lambda: []))
    try:
        with pytest.raises(InvalidParameter, match="differential privacy over Flower"):
            fed.run(FLTrain({"features": ["age"], "target": "y", **extra}))
    finally:
        fed.customs.close()
