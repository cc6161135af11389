"""The command line: documented exit codes (0 ok, 1 check failed, 2 usage) on real files."""

from __future__ import annotations

import json

from typer.testing import CliRunner

import safeflow as sf
from safeflow.cli import app
from safeflow.dp import BudgetLedger
from tests.conftest import lung_federation

runner = CliRunner()


def test_help_lists_every_command() -> None:
    out = runner.invoke(app, ["--help"]).output
    for cmd in ("verify", "audit", "policy", "budget", "version", "run", "study", "site",
                "pki", "coordinator", "bench"):
        assert cmd in out


def test_verify_export_directory(tmp_path) -> None:  # type: ignore[no-untyped-def]
    fed = lung_federation(2)
    rel = sf.describe(fed, ["age"], protocol="masking")
    out = rel.export(tmp_path / "t1")
    keys = [f"{n}={k.to_bytes().hex()}" for n, k in fed.customs.trusted_keys().items()]
    args = ["verify", str(out)] + [a for k in keys for a in ("--key", k)]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    assert "verified" in res.output
    (out / "value.csv").write_text("tampered\n")
    res = runner.invoke(app, args)
    assert res.exit_code == 1 and "NOT VERIFIED" in res.output
    assert runner.invoke(app, ["verify", str(tmp_path / "missing")]).exit_code == 2


def test_audit_verify(tmp_path) -> None:  # type: ignore[no-untyped-def]
    fed = lung_federation(2, state_dir=tmp_path / "state")
    sf.describe(fed, ["age"], protocol="masking")
    party = fed.customs.party
    party.log.checkpoint()
    key = party.key.verify_key.to_bytes().hex()
    res = runner.invoke(app, ["audit", "verify", str(party.log.path), "--key", key])
    assert res.exit_code == 0, res.output
    other = fed.customs.sites["site0"].key.verify_key.to_bytes().hex()
    res = runner.invoke(app, ["audit", "verify", str(party.log.path), "--key", other])
    assert res.exit_code == 1


def test_policy_check_worked_examples(tmp_path) -> None:  # type: ignore[no-untyped-def]
    ok = {"output": {"kind": "freq_table", "protocol": "masking",
                     "sdc": {"min_cell": 10, "has_zero": False, "nk_top2_share": 0.4}},
          "origin": [{"site": "amsterdam", "jurisdiction": "NL", "classes": ["health"]}],
          "destination": {"jurisdiction": "CN"}}
    f = tmp_path / "facts.json"
    f.write_text(json.dumps(ok))
    res = runner.invoke(app, ["policy", "check", str(f)])
    assert res.exit_code == 0 and "ALLOW" in res.output
    ok["output"]["sdc"]["min_cell"] = 9
    f.write_text(json.dumps(ok))
    res = runner.invoke(app, ["policy", "check", str(f)])
    assert res.exit_code == 1 and "DENY_SDC" in res.output and "next step" in res.output
    f.write_text("{not json")
    assert runner.invoke(app, ["policy", "check", str(f)]).exit_code == 2


def test_budget_show(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "budget.sqlite"
    with BudgetLedger(path) as led:
        led.set_total("lung@beijing", "1")
        led.spend("lung@beijing", "q1", "0.3")
    res = runner.invoke(app, ["budget", "show", str(path)])
    assert res.exit_code == 0 and "lung@beijing" in res.output and "7/10" in res.output


def test_budget_show_a_federation_state_dir_lists_every_site(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import pandas as pd

    import safeflow as sf

    s = sf.Schema([sf.Column("x", bounds=(0, 10))])
    df = pd.DataFrame({"x": [1.0, 2, 3]})
    fed = sf.Federation.local(
        [sf.Site("beijing", df, "CN", schema=s, budget="1"),
         sf.Site("amsterdam", df, "NL", schema=s, budget="2")],
        destination="NL", purpose="scientific-research", state_dir=tmp_path)
    fed.accounts.debit("q1", sf.DP("0.25"))
    res = runner.invoke(app, ["budget", "show", str(tmp_path)])
    assert res.exit_code == 0, res.output
    assert "beijing" in res.output and "amsterdam" in res.output and "7/4" in res.output
    assert runner.invoke(app, ["budget", "show", str(tmp_path / "nothing")]).exit_code == 2
