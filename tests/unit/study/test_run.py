"""run_study: outputs, certificates that verify offline, denials recorded, errors abort."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from safeflow.crypto.keys import VerifyKey
from safeflow.errors import InvalidParameter, OutOfBoundsError
from safeflow.policy.audit import verify_log
from safeflow.policy.export import verify_export
from safeflow.study import approve_study, run_study
from safeflow.study.manifest import COLUMNS
from tests.unit.study._helpers import BASE, write_study

KM_FINE = ("  - {id: km-fine, type: kaplan_meier, duration: t, event: e, by: arm}\n")
KM_COARSE = ("  - {id: km, type: kaplan_meier, duration: t, event: e,\n"
             "     time_grid: [0, 200], protocol: he}\n")


def _run(tmp_path, text=BASE, **kw):  # type: ignore[no-untyped-def]
    path = write_study(tmp_path, text)
    for site in ("a", "b"):
        approve_study(path, site, state_dir=tmp_path / "state")
    return run_study(path, tmp_path / "out", state_dir=tmp_path / "state", progress=False,
                     **kw)


def test_outputs_and_offline_verification(tmp_path) -> None:  # type: ignore[no-untyped-def]
    result = _run(tmp_path, BASE + KM_COARSE)
    out = tmp_path / "out"
    assert result.ok and [o.id for o in result.outcomes] == ["t1", "lr", "km"]
    keys = {n: VerifyKey.from_bytes(bytes.fromhex(h)) for n, h in result.keys.items()}
    for o in result.outcomes:
        assert o.status == "released" and o.outcome in ("ALLOW", "EXEMPT")
        assert set(o.border_bytes) == {"CN->NL", "NL->CN"} and min(o.border_bytes.values()) > 0
        report = verify_export(o.export_dir, trusted=keys)
        assert set(report.signers) >= {"customs", "a", "b"}
        for table in o.tables:
            assert table.is_file() and table.stat().st_size > 0
    assert pd.read_parquet(out / "results" / "lr.parquet")["term"].tolist()[:2] == \
        ["Intercept", "arm[T.B]"]
    assert (out / "results" / "km.summary.csv").is_file()
    data = json.loads((out / "result.json").read_text())
    assert data["study_sha256"] == result.study.sha256 and data["released"] == 3
    assert data["analyses"][0]["export_dir"] == "releases/t1"
    assert (out / "study.json").read_bytes() == result.study.canonical_json()
    # audit: a signed checkpoint of every party's log, copies an auditor can verify
    cps = json.loads((out / "audit" / "checkpoints.json").read_text())
    assert sorted(cps) == ["a", "b", "customs"]
    for cp in cps.values():
        key = VerifyKey.from_bytes(bytes.fromhex(cp["public_key"]))
        assert verify_log(out / cp["log"], key).size == cp["checkpoint"]["size"]
    # what was revealed to whom
    rows = json.loads((out / "revealed.json").read_text())
    assert all(tuple(r) == COLUMNS for r in rows)
    masked = [r for r in rows if r["analysis"] == "t1" and r["stage"] == "masked_input"
              and r["party"] == "aggregator"]
    assert masked and masked[0]["protection"] == "masked" and masked[0]["crosses_border"]
    he = [r for r in rows if r["analysis"] == "km" and r["party"] == "customs"
          and r["stage"] == "encrypted_input"]
    assert he and "decrypted total" in he[0]["reveals"]
    assert pd.read_csv(out / "revealed.csv").shape == (len(rows), len(COLUMNS))
    html = (out / "report.html").read_text()
    assert result.report == out / "report.html" and "Test study" in html


def test_a_denied_analysis_is_recorded_not_a_crash(tmp_path) -> None:  # type: ignore[no-untyped-def]
    result = _run(tmp_path, BASE + KM_FINE)
    assert not result.ok and [o.id for o in result.denied] == ["km-fine"]
    o = result.outcome("km-fine")
    assert o.status == "denied" and o.outcome == "DENY_SDC" and o.export_dir is None
    assert "SDC-acro-survival" in (o.rule or "") and "coarsen the time grid" in (o.fix or "")
    assert set(o.border_bytes) == {"CN->NL"}  # what the sites sent before customs said no
    assert not (tmp_path / "out" / "releases" / "km-fine").exists()
    data = json.loads((tmp_path / "out" / "result.json").read_text())
    assert data["denied"] == 1 and data["analyses"][2]["rule"] == o.rule
    rows = json.loads((tmp_path / "out" / "revealed.json").read_text())
    analyst = [r for r in rows if r["analysis"] == "km-fine" and r["stage"] == "release"]
    assert analyst[0]["reveals"].startswith("nothing: customs denied the release")
    html = (tmp_path / "out" / "report.html").read_text()
    assert "km-fine" in html and "SDC-acro-survival" in html


def test_other_errors_abort_with_a_typed_error(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = write_study(tmp_path)
    df = pd.read_csv(tmp_path / "data" / "a.csv")
    df.loc[3, "age"] = 150.0  # outside the declared bounds [18, 100]
    df.to_csv(tmp_path / "data" / "a.csv", index=False)
    for site in ("a", "b"):
        approve_study(path, site, state_dir=tmp_path / "state")
    with pytest.raises(OutOfBoundsError) as info:
        run_study(path, tmp_path / "out", state_dir=tmp_path / "state", progress=False)
    assert any("while running analysis 't1' (study.yaml line 26)" in n
               for n in info.value.__notes__)


def test_missing_data_file_names_the_line(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from safeflow.study import StudyError

    path = write_study(tmp_path)
    (tmp_path / "data" / "b.csv").unlink()
    for site in ("a", "b"):
        approve_study(path, site, state_dir=tmp_path / "state")
    with pytest.raises(StudyError, match=r"study.yaml line 14: sites\[1\].data names a file "
                                         r"that does not exist: 'data/b.csv'"):
        run_study(path, tmp_path / "out", state_dir=tmp_path / "state", progress=False)


def test_output_directory_rules(tmp_path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "notes.txt").write_text("mine")
    with pytest.raises(InvalidParameter, match="not empty and holds no earlier study output"):
        _run(tmp_path)
    assert (tmp_path / "out" / "notes.txt").read_text() == "mine"
    (tmp_path / "out" / "notes.txt").unlink()
    first = _run(tmp_path)
    second = run_study(tmp_path / "study.yaml", tmp_path / "out", state_dir=tmp_path / "state",
                       progress=False)  # an earlier run's output is replaced
    assert first.ok and second.ok
    assert json.loads((tmp_path / "out" / "result.json").read_text())["released"] == 2


def test_progress_shows_bytes_across_borders(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from rich.console import Console

    console = Console(record=True, width=200)
    path = write_study(tmp_path)
    for site in ("a", "b"):
        approve_study(path, site, state_dir=tmp_path / "state")
    run_study(path, tmp_path / "out", state_dir=tmp_path / "state", console=console)
    text = console.export_text()
    assert "✓ t1 (describe via masking) ALLOW; bytes across borders: CN->NL" in text
    assert "2 of 2 analyses released" in text


def test_dp_release_spends_the_sites_budgets(tmp_path) -> None:  # type: ignore[no-untyped-def]
    text = BASE.replace("    data: data/a.csv", "    data: data/a.csv\n    budget: 2").replace(
        "    data: data/b.csv", "    data: data/b.csv\n    budget: 2")
    text += ("  - {id: age-dp, type: histogram, column: age, bins: [18, 50, 100],\n"
             "     dp: {epsilon: 0.5}}\n")
    result = _run(tmp_path, text)
    o = result.outcome("age-dp")
    assert o.status == "released" and o.epsilon == "1/2"
    data = json.loads((tmp_path / "out" / "result.json").read_text())
    assert set(data["budgets"]) == {"a", "b"}
    assert str(data["budgets"]["a"][0]["spent"]) in ("1/2", "0.5")


def test_a_dp_release_over_budget_is_denied(tmp_path) -> None:  # type: ignore[no-untyped-def]
    text = BASE.replace("    data: data/a.csv", "    data: data/a.csv\n    budget: 1").replace(
        "    data: data/b.csv", "    data: data/b.csv\n    budget: 1")
    text += ("  - {id: dp1, type: histogram, column: age, bins: [18, 50, 100],\n"
             "     dp: {epsilon: 0.75}}\n"
             "  - {id: dp2, type: histogram, column: age, bins: [18, 60, 100],\n"
             "     dp: {epsilon: 0.75}}\n")
    result = _run(tmp_path, text)
    assert result.outcome("dp1").status == "released"
    o = result.outcome("dp2")
    assert o.status == "denied" and o.rule == "privacy-budget" and "smaller ε" in (o.fix or "")
    assert "budget" in (o.message or "")
    rows = json.loads((tmp_path / "out" / "revealed.json").read_text())
    customs = [r for r in rows if r["analysis"] == "dp2" and r["party"] == "customs"]
    assert customs[0]["reveals"].startswith("nothing")
