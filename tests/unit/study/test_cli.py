"""``safeflow run`` and ``safeflow study validate|hash|approve``: exit codes 0, 1, 2."""

from __future__ import annotations

import typer
from typer.testing import CliRunner

from safeflow.study import load_study
from safeflow.study.cli import run, study_app
from tests.unit.study._helpers import BASE, mutate, write_study

app = typer.Typer()
app.command("run")(run)
app.add_typer(study_app, name="study")
runner = CliRunner()


def _invoke(*args: object):  # type: ignore[no-untyped-def]
    return runner.invoke(app, [str(a) for a in args])


def test_validate_and_hash(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = write_study(tmp_path, data=False)
    res = _invoke("study", "validate", path)
    assert res.exit_code == 0, res.output
    assert "valid" in res.output and "t1: describe via masking on age, y, arm" in res.output
    res = _invoke("study", "hash", path)
    assert res.exit_code == 0 and res.output.strip() == load_study(path).sha256
    bad = write_study(tmp_path / "bad", mutate("    jurisdiction: NL",
                                               "    jurisdiction: Netherlands"), data=False)
    for cmd in ("validate", "hash"):
        res = _invoke("study", cmd, bad)
        assert res.exit_code == 2
        assert "study.yaml line 13: sites[1].jurisdiction must be an ISO 3166" in res.output
    refused = write_study(tmp_path / "refused", mutate("    columns: [age, y]",
                                                       "    columns: [age, bmi]"), data=False)
    res = _invoke("study", "validate", refused)
    assert res.exit_code == 1 and "REFUSED" in res.output and "reads bmi" in res.output
    assert _invoke("study", "validate", tmp_path / "missing.yaml").exit_code == 2


def test_approve_then_run(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = write_study(tmp_path)
    state, out = tmp_path / "state", tmp_path / "results"
    res = _invoke("run", path, "--state-dir", state, "--out", out, "--no-progress")
    assert res.exit_code == 1 and res.output.startswith("REFUSED: study 'test-study'")
    assert "not approved by sites 'a', 'b'" in res.output
    assert "next step" in res.output
    res = _invoke("study", "approve", path, "--site", "a", "--state-dir", state)
    assert res.exit_code == 0 and "approved" in res.output and "audit entry 0" in res.output
    assert _invoke("study", "approve", path, "--site", "zz", "--state-dir", state
                   ).exit_code == 2
    assert _invoke("study", "approve", path, "--site", "b", "--state-dir", state
                   ).exit_code == 0
    res = _invoke("run", path, "--state-dir", state, "--out", out)
    assert res.exit_code == 0, res.output
    assert "2 of 2 analyses released" in res.output and (out / "report.html").is_file()


def test_run_exit_codes_for_denials_and_defaults(tmp_path) -> None:  # type: ignore[no-untyped-def]
    text = BASE + "  - {id: km-fine, type: kaplan_meier, duration: t, event: e, by: arm}\n"
    path = write_study(tmp_path, text)
    for site in ("a", "b"):  # default state dir: out/state next to the study file
        assert _invoke("study", "approve", path, "--site", site).exit_code == 0
    assert (tmp_path / "out" / "state" / "sites" / "a" / "audit.sqlite").is_file()
    res = _invoke("run", path, "--no-progress")
    assert res.exit_code == 1, res.output
    assert "denied km-fine" in res.output and "coarsen the time grid" in res.output
    assert (tmp_path / "out" / "results" / "result.json").is_file()
    # a file that is not valid is a usage error
    path.write_text(mutate("title: Test study", "title: Test study\nsites2: []"))
    res = _invoke("run", path, "--no-progress")
    assert res.exit_code == 2 and "did you mean 'sites'" in res.output
