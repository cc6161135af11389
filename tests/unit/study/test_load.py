"""Study files: every field wrong in turn names its line and field; the hash is canonical."""

from __future__ import annotations

from datetime import date
from fractions import Fraction

import pytest

import safeflow as sf
from safeflow.study import StudyError, load_study, parse_study
from safeflow.study.model import CoxParams, GLMParams, KaplanMeierParams
from tests.unit.study._helpers import BASE, N_LINES, mutate

END = N_LINES + 1  # the line of anything appended to BASE

# (old text, new text, field, line, words the message must contain)
CASES = [
    ("title: Test study", "title: ''", "title", 1, "must be a non-empty string"),
    ("purpose: scientific-research", "purpose: [x]", "purpose", 2, "non-empty string"),
    ("destination: NL", "destination: Netherlands", "destination", 3,
     "ISO 3166 alpha-2 code such as 'NL'; got 'Netherlands'"),
    ("expires: 2099-12-31", "expires: next year", "expires", 4, "ISO date"),
    ("expires: 2099-12-31", "expires: 2099-12-31T10:00:00", "expires", 4, "no time of day"),
    ("  scc: true", "  scc: yes please", "instruments.scc", 7, "true or false"),
    ("  ethics_approval: EC-1", "  ethics_aproval: EC-1", "instruments.ethics_aproval", 6,
     "did you mean 'ethics_approval'"),
    ("  ethics_approval: EC-1", "  ethics_approval: 12", "instruments.ethics_approval", 6,
     "an id (text) or null"),
    ("    jurisdiction: NL", "    jurisdiction: Netherlands", "sites[1].jurisdiction", 13,
     "sites[1].jurisdiction must be an ISO 3166 alpha-2 code such as 'NL'; got 'Netherlands'"),
    ("    jurisdiction: NL", "    jurisdiction: NO", "sites[1].jurisdiction", 13,
     "quote the code"),
    ("  - name: b", "  - name: a", "sites[1].name", 12, "unique"),
    ("  - name: b", "  - name: 'b c'", "sites[1].name", 12, "letters, digits"),
    ("    data: data/b.csv", "    data: data/b.txt", "sites[1].data", 14, "CSV or Parquet"),
    ("    data: data/a.csv", "    data: {sql: SELECT 1, path: x.csv}", "sites[0].data", 11,
     "exactly one of path"),
    ("    data: data/a.csv", "    data: {path: a.csv, database: x.duckdb}",
     "sites[0].data.database", 11, "sql sources only"),
    ("    data: data/a.csv", "    data: data/a.csv\n    budget: -1", "sites[0].budget", 12,
     "total ε"),
    ("    jurisdiction: CN", "    jurisdiction: CN\n    ftz: 3", "sites[0].ftz", 11,
     "CN-FTZ-BJ"),
    ("    jurisdiction: CN", "    jurisdiction: CN\n    ciio: maybe", "sites[0].ciio", 11,
     "true or false"),
    ("  - name: a\n    jurisdiction: CN\n    data: data/a.csv\n", "", "sites", 8,
     "at least 2 sites"),
    ("    age: {bounds: [18, 100]}", "    age: {bounds: [100, 18]}", "schema.columns.age.bounds",
     17, "low <= high"),
    ("    age: {bounds: [18, 100]}", "    age: {bounds: 18}", "schema.columns.age.bounds",
     17, "[low, high]"),
    ("    arm: {kind: categorical, categories: [A, B]}", "    arm: {kind: categorical}",
     "schema.columns.arm", 18, "needs its public levels"),
    ("    arm: {kind: categorical, categories: [A, B]}",
     "    arm: {kind: categorcal, categories: [A, B]}", "schema.columns.arm.kind", 18,
     "did you mean 'categorical'"),
    ("    t: {role: time,", "    t: {role: tme,", "schema.columns.t.role", 20,
     "did you mean 'time'"),
    ("    bmi: {bounds: [10, 60]}", "    bmi: {bounds: [10, 60], classes: [medical]}",
     "schema.columns.bmi.classes", 22, "health"),
    ("    bmi: {bounds: [10, 60]}", "    bmi: {bounds: [10, 60], on_missing: skip}",
     "schema.columns.bmi.on_missing", 22, "error, drop"),
    ("    bmi: {bounds: [10, 60]}", "    bmi: {bounds: [10, 60], resolution: 0}",
     "schema.columns.bmi.resolution", 22, "> 0"),
    ("    bmi: {bounds: [10, 60]}", "    bmi: {bounds: [10, 60], unit: kg}",
     "schema.columns.bmi.unit", 22, "not a known field"),
    ("schema:\n  columns:", "schema:\n  unit: person\n  columns:", "schema.unit", 16,
     "patient, row"),
    ("allowed_variables: [age, arm, y, t, e]", "allowed_variables: [age, arm, weight]",
     "allowed_variables[2]", 24, "columns: age, arm"),
    ("allowed_variables: [age, arm, y, t, e]", "allowed_variables: [age, pid]",
     "allowed_variables[1]", 24, "identifier"),
    ("allowed_variables: [age, arm, y, t, e]", "allowed_variables: [age, age]",
     "allowed_variables[1]", 24, "repeats"),
    ("allowed_variables: [age, arm, y, t, e]", "allowed_variables: []",
     "allowed_variables", 24, "at least 1"),
    ("    type: describe", "    type: describes", "analyses[0].type", 27,
     "did you mean 'describe'"),
    ("    by: arm", "    group: arm", "analyses[0].group", 29, "not a known field"),
    ("    columns: [age, y]", "    columns: [age, weight]", "analyses[0].columns[1]", 28,
     "of the schema"),
    ("    columns: [age, y]", "    columns: age", "analyses[0].columns", 28,
     "list of column names"),
    ("    by: arm", "    by: age", "analyses[0].by", 29, "categorical"),
    ("    by: arm", "    by: arm\n    by_site: 2", "analyses[0].by_site", 30, "true or false"),
    ("    family: binomial", "    family: logistic", "analyses[1].family", 34,
     "gaussian, binomial, poisson"),
    ("    family: binomial", "    family: binomial\n    protocol: secret",
     "analyses[1].protocol", 35, "masking, he, plain"),
    ("    family: binomial", "    family: binomial\n    dp: {epsilon: 1}", "analyses[1].dp", 35,
     "family gaussian"),
    ("    by: arm", "    by: arm\n    dp: {epsilon: 0}", "analyses[0].dp.epsilon", 30, "> 0"),
    ("    by: arm", "    by: arm\n    dp: {epsilon: 20}", "analyses[0].dp", 30, "≤ 10"),
    ("    by: arm", "    by: arm\n    dp: {epsilon: 1, mode: distributed}",
     "analyses[0].dp.mode", 30, "central, local"),
    ("    X: [arm, age]", "    X: [arm, y]", "analyses[1].X", 33, "outcome"),
    ("  - id: lr", "  - id: t1", "analyses[1].id", 30, "unique"),
    ("  - id: lr", "  - id: 'l r'", "analyses[1].id", 30, "letters, digits"),
    ("    y: y\n", "", "analyses[1].y", 30, "is required"),
    ("    type: describe\n", "", "analyses[0].type", 26, "is required"),
    ("", "  - {id: km, type: kaplan_meier, duration: t, event: e, time_grid: [0, 30, 20]}\n",
     "analyses[2].time_grid", END, "strictly increasing"),
    ("", "  - {id: km, type: kaplan_meier, duration: t, event: e, "
         "time_grid: {start: 0, step: 30}}\n", "analyses[2].time_grid.stop", END, "required"),
    ("", "  - {id: km, type: kaplan_meier, duration: arm, event: e}\n",
     "analyses[2].duration", END, "numeric"),
    ("", "  - {id: km, type: kaplan_meier, duration: t, event: e, alpha: 1}\n",
     "analyses[2].alpha", END, "strictly between 0 and 1"),
    ("", "  - {id: h, type: histogram, column: age, bins: [1]}\n", "analyses[2].bins", END,
     "at least two"),
    ("", "  - {id: c, type: cox, duration: t, event: e, covariates: [age], strata: [age]}\n",
     "analyses[2].strata[0]", END, "categorical"),
    ("", "  - {id: c, type: cox, duration: t, event: e, covariates: [age], ties: exact}\n",
     "analyses[2].ties", END, "efron, breslow"),
    ("", "  - {id: c, type: cox, duration: t, event: e, covariates: [age], "
         "dp: {epsilon: 1}}\n", "analyses[2].dp", END, "not available for cox"),
    ("", "  - {id: x, type: crosstab, rows: arm, cols: pid}\n", "analyses[2].cols", END,
     "identifier"),
    ("", "  - {id: g, type: glm, y: y, X: [age], penalty: -1}\n", "analyses[2].penalty", END,
     ">= 0"),
    ("", "  - just text\n", "analyses[2]", END, "must be a mapping"),
    ("", "threshold: 5\n", "threshold", END, "from 2 to 2"),
    ("", "max_rows_per_site: 0\n", "max_rows_per_site", END, "from 1"),
    ("", "recipient: police\n", "recipient", END, "research, company"),
    ("", "policy: {sdc_profile: strict}\n", "policy.sdc_profile", END, "acro, ohdsi"),
    ("", "policy: {packs: [nope.yaml]}\n", "policy.packs[0]", END, "does not exist"),
    ("", "policy: {suppress: 1}\n", "policy.suppress", END, "true or false"),
    ("", "id: 'my study'\n", "id", END, "letters, digits"),
    ("", "expiry: 2030-01-01\n", "expiry", END, "did you mean 'expires'"),
    ("destination: NL\n", "", "destination", 1, "is required"),
]


@pytest.mark.parametrize(("old", "new", "field", "line", "words"), CASES,
                         ids=[f"{c[2]}-{i}" for i, c in enumerate(CASES)])
def test_every_field_wrong_names_line_and_field(tmp_path, old, new, field, line,  # type: ignore[no-untyped-def]
                                               words) -> None:
    text = mutate(old, new)
    with pytest.raises(StudyError) as info:
        parse_study(text, path=tmp_path / "study.yaml")
    e = info.value
    assert (e.field, e.line) == (field, line), str(e)
    assert str(e).startswith(f"study.yaml line {line}: {field} ")
    assert words in str(e)
    assert isinstance(e, sf.errors.InvalidParameter) and isinstance(e, ValueError)
    assert e.path == tmp_path / "study.yaml"


def test_the_base_study_is_valid(tmp_path) -> None:  # type: ignore[no-untyped-def]
    s = parse_study(BASE, path=tmp_path / "study.yaml")
    assert s.id == "test-study" and s.expires == date(2099, 12, 31)
    assert [x.name for x in s.sites] == ["a", "b"]
    assert s.analyses[1].params == GLMParams("y", ("arm", "age"), family="binomial")
    assert s.analyses[0].variables() == ("age", "y", "arm")
    assert s.instruments.policy()["scc"] is True and s.instruments.ethics_approval == "EC-1"
    assert s.policy_settings().instruments["scc"] is True
    assert s.line("sites[1].jurisdiction") == 13
    assert s.sites[0].data.resolve(s.base_dir) == tmp_path / "data" / "a.csv"


def test_yaml_problems_name_the_line(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(StudyError, match=r"study\.yaml line 30: not valid YAML: expected "
                       r"',' or '\]', but got ':' \(while parsing a flow sequence that "
                       r"starts on line 29\)"):
        parse_study(mutate("    by: arm", "    by: [arm"), path="study.yaml")
    with pytest.raises(StudyError, match=r"line 2: duplicate key 'title' \(first on line 1\)"):
        parse_study(mutate("title: Test study", "title: Test study\ntitle: Again"),
                    path="study.yaml")
    with pytest.raises(StudyError, match="the study file is empty"):
        parse_study("# nothing\n", path="study.yaml")
    with pytest.raises(StudyError, match="must be a mapping of study fields"):
        parse_study("- a\n- b\n", path="study.yaml")
    with pytest.raises(StudyError, match="cannot read the study file"):
        load_study(tmp_path / "missing.yaml")
    (tmp_path / "bin.yaml").write_bytes(b"title: \xff\n")
    with pytest.raises(StudyError, match="not UTF-8"):
        load_study(tmp_path / "bin.yaml")


def test_parameters_are_typed_and_grids_expand(tmp_path) -> None:  # type: ignore[no-untyped-def]
    text = BASE + (
        "  - {id: km, type: kaplan_meier, duration: t, event: e, by: arm,\n"
        "     time_grid: {start: 0, stop: 90, step: 30}, dp: {epsilon: 0.5, delta: 1e-6}}\n"
        "  - {id: c, type: cox, duration: t, event: e, covariates: [age, arm], strata: site,\n"
        "     time_grid: [0, 100, 200]}\n")
    s = parse_study(text, path=tmp_path / "s.yaml")
    km, cox = s.analysis("km"), s.analysis("c")
    assert km.params == KaplanMeierParams("t", "e", by="arm", time_grid=(0.0, 30.0, 60.0, 90.0))
    assert km.dp is not None and km.dp.epsilon == Fraction(1, 2)
    assert km.dp.delta == Fraction(1, 1_000_000)
    assert cox.params == CoxParams("t", "e", ("age", "arm"), strata=("site",),
                                   time_grid=(0.0, 100.0, 200.0))
    assert cox.variables() == ("t", "e", "age", "arm")
    assert cox.params.kwargs()["strata"] == ["site"]


def test_hash_ignores_formatting_and_defaults(tmp_path) -> None:  # type: ignore[no-untyped-def]
    base = parse_study(BASE, path=tmp_path / "a.yaml")
    reformatted = (
        "# the same study, written differently\n"
        "purpose: 'scientific-research'   # quoted\n"
        "title: Test study\n"
        "expires: '2099-12-31'\n"
        "destination: NL\n"
        "recipient: research              # the default, spelled out\n"
        "instruments: {scc: true, ethics_approval: EC-1, tia: false}\n"
        "sites: [{name: a, jurisdiction: CN, data: {path: data/a.csv}},\n"
        "        {name: b, jurisdiction: NL, data: ./data/b.csv, ciio: false}]\n"
        "schema:\n"
        "  unit: patient\n"
        "  columns:\n"
        "    age: {bounds: [18.0, 100.0]}\n"
        "    arm: {kind: categorical, categories: [A, B]}\n"
        "    y: {kind: binary, categories: [0, 1]}\n"
        "    t: {role: time, bounds: [0, 400], resolution: 1.0}\n"
        "    e: {role: event, categories: [0, 1], on_missing: error}\n"
        "    bmi: {bounds: [10, 60]}\n"
        "    pid: {role: identifier, kind: categorical}\n"
        "allowed_variables: [age, arm, y, t, e]\n"
        "analyses:\n"
        "  - {id: t1, type: describe, columns: [age, y], by: arm, protocol: masking}\n"
        "  - {id: lr, type: glm, y: y, X: [arm, age], family: binomial, penalty: 0}\n"
        "policy: {sdc_profile: acro, suppress: true}\n")
    same = parse_study(reformatted, path=tmp_path / "b.yaml")
    assert same.sha256 == base.sha256
    for old, new in [("expires: 2099-12-31", "expires: 2099-12-30"),
                     ("    data: data/a.csv", "    data: data/a2.csv"),
                     ("    family: binomial", "    family: poisson"),
                     ("  scc: true", "  scc: false"),
                     ("allowed_variables: [age, arm, y, t, e]",
                      "allowed_variables: [age, arm, y, t, e, bmi]")]:
        assert parse_study(mutate(old, new), path=tmp_path / "c.yaml").sha256 != base.sha256


def test_hash_covers_the_bytes_of_study_packs(tmp_path) -> None:  # type: ignore[no-untyped-def]
    pack = tmp_path / "pack.yaml"
    rule = ("pack: study-nl-only\nversion: '1'\nscope: output\nrules:\n"
            "  - id: STUDY-destination\n    when: destination.jurisdiction != '{}'\n"
            "    outcome: PROHIBITED\n    fix: release to the study office only\n"
            "    sources: [{{law: Study protocol, article: 'Sec 7'}}]\n")
    pack.write_text(rule.format("NL"))
    text = BASE + "policy: {packs: [pack.yaml]}\n"
    first = parse_study(text, path=tmp_path / "study.yaml")
    assert first.policy.packs[0].path == "pack.yaml"
    assert len(first.policy_settings().resolved_packs()) > len(sf.PolicySettings().resolved_packs())
    pack.write_text(rule.format("DE"))
    assert parse_study(text, path=tmp_path / "study.yaml").sha256 != first.sha256
    pack.write_text("pack: broken\n")
    with pytest.raises(StudyError, match=r"line 35: policy.packs\[0\] is not a valid policy pack"):
        parse_study(text, path=tmp_path / "study.yaml")


def test_sql_sources_and_default_id(tmp_path) -> None:  # type: ignore[no-untyped-def]
    text = mutate("    data: data/a.csv",
                  "    data: {sql: 'SELECT * FROM t', database: site.duckdb}")
    s = parse_study(mutate("title: Test study", "title: 'COLOR IV: leak & DFS!'", text),
                    path=tmp_path / "study.yaml")
    assert s.id == "color-iv-leak-dfs"
    src = s.sites[0].data.resolve(s.base_dir)
    assert isinstance(src, sf.SQL) and src.query == "SELECT * FROM t"
    assert src.database == tmp_path / "site.duckdb"
