"""The example studies run end to end: every site approves, every analysis is released,
every certificate verifies offline with the parties' public keys, and the report exists.

``examples/ncctg_lung``: the real NCCTG lung data split by ``prepare.py`` (run as a process)
between three hospitals. ``examples/beijing_amsterdam``: the synthetic COLOR IV-like trial
at four hospitals, with a DP release.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from safeflow.crypto.keys import VerifyKey
from safeflow.policy.audit import verify_log
from safeflow.policy.export import verify_export
from safeflow.study import StudyResult, approve_study, load_study, run_study

ROOT = Path(__file__).resolve().parents[2]
LUNG = ROOT / "examples" / "ncctg_lung"
TRIAL = ROOT / "examples" / "beijing_amsterdam"


def _approve_and_run(study_file: Path, tmp: Path) -> StudyResult:
    study = load_study(study_file)
    for site in study.sites:
        approve_study(study_file, site.name, state_dir=tmp / "state")
    return run_study(study_file, tmp / "out", state_dir=tmp / "state", progress=False)


def _check_outputs(result: StudyResult) -> None:
    out = result.out_dir
    keys = {n: VerifyKey.from_bytes(bytes.fromhex(h)) for n, h in result.keys.items()}
    origins = {s.name for s in result.study.sites}
    for o in result.outcomes:
        assert o.status == "released", (o.id, o.rule, o.fix)
        report = verify_export(o.export_dir, trusted=keys)
        assert set(report.signers) == {"customs"} | origins
        assert all(p.is_file() for p in o.tables)
    cps = json.loads((out / "audit" / "checkpoints.json").read_text())
    for cp in cps.values():
        key = VerifyKey.from_bytes(bytes.fromhex(cp["public_key"]))
        assert verify_log(out / cp["log"], key).size == cp["checkpoint"]["size"]
    html = (out / "report.html").read_text()
    assert html.startswith("<!DOCTYPE html>") and result.study.title in html
    rows = json.loads((out / "revealed.json").read_text())
    assert {r["analysis"] for r in rows} == {a.id for a in result.study.analyses}


def test_ncctg_lung_study(tmp_path) -> None:  # type: ignore[no-untyped-def]
    done = subprocess.run([sys.executable, str(LUNG / "prepare.py"), "--out", str(tmp_path)],
                          capture_output=True, text=True, check=True)
    assert "beijing: 76 patients" in done.stdout
    for site in ("beijing", "amsterdam", "heidelberg"):  # the committed files are reproducible
        assert (tmp_path / "data" / f"{site}.csv").read_bytes() == \
            (LUNG / "data" / f"{site}.csv").read_bytes()
    result = _approve_and_run(tmp_path / "study.yaml", tmp_path)
    assert result.ok and [o.id for o in result.outcomes] == \
        ["table1", "death-rate", "km-sex", "logrank-sex", "cox-site"]
    _check_outputs(result)
    assert {o.outcome for o in result.outcomes} <= {"ALLOW", "EXEMPT"}
    assert set(result.outcome("table1").border_bytes) == {"CN->NL", "DE->NL", "NL->CN", "NL->DE"}
    table1 = pd.read_csv(tmp_path / "out" / "results" / "table1.csv")
    assert table1["n"].max() <= 227
    lr = result.releases["logrank-sex"].value
    assert lr.df == 1 and lr.p_value < 0.01  # women survive longer (lifelines: p = 0.0013)


def test_ncctg_lung_30_day_grid_is_denied(tmp_path) -> None:  # type: ignore[no-untyped-def]
    subprocess.run([sys.executable, str(LUNG / "prepare.py"), "--out", str(tmp_path)],
                   capture_output=True, check=True)
    text = (tmp_path / "study.yaml").read_text()
    fine = text.replace("time_grid: {start: 0, stop: 450, step: 150}",
                        "time_grid: {start: 0, stop: 1080, step: 30}", 1)
    assert fine != text
    (tmp_path / "study.yaml").write_text(fine)
    result = _approve_and_run(tmp_path / "study.yaml", tmp_path)
    km = result.outcome("km-sex")
    assert km.status == "denied" and "SDC-acro-survival" in (km.rule or "")
    assert [o.id for o in result.denied] == ["km-sex"]


def test_beijing_amsterdam_study(tmp_path) -> None:  # type: ignore[no-untyped-def]
    result = _approve_and_run(TRIAL / "study.yaml", tmp_path)
    assert [o.id for o in result.outcomes] == \
        ["table1", "leak-glm", "km-dfs", "logrank-dfs", "cox-dfs", "age-dp"]
    _check_outputs(result)
    assert result.ok
    four = {"CN->NL", "DE->NL", "ES->NL", "NL->CN", "NL->DE", "NL->ES"}
    assert set(result.outcome("leak-glm").border_bytes) == four
    # the federated logistic fit is the pooled one (README: ICA -0.33, BMI 0.094, ASA 0.52)
    coef = result.releases["leak-glm"].value.coef
    assert round(float(coef["arm[T.ICA]"]), 2) == -0.33
    assert round(float(coef["bmi"]), 3) == 0.094 and round(float(coef["asa"]), 2) == 0.52
    dp = result.outcome("age-dp")
    assert dp.epsilon == "1/1"
    budgets = json.loads((tmp_path / "out" / "result.json").read_text())["budgets"]
    assert set(budgets) == {"beijing", "amsterdam", "hamburg", "barcelona"}
    cox = result.releases["cox-dfs"].value
    assert list(cox.coef.index)[:1] == ["arm[T.ICA]"]


@pytest.mark.parametrize("example", [LUNG, TRIAL], ids=["ncctg_lung", "beijing_amsterdam"])
def test_example_study_files_validate(example: Path) -> None:
    from safeflow.study.enforce import check_study

    study = load_study(example / "study.yaml")
    check_study(study)
    assert len(study.sha256) == 64
