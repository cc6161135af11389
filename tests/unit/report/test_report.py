"""The HTML report: sections and ids, escaping, atomic writes, embedded PNGs, DP display.

Real releases: the NCCTG lung data (lifelines) split over a CN and an NL site, every
analysis under secure aggregation (``masking``), built once per module.
"""

from __future__ import annotations

import base64
import dataclasses
import math
import re
import struct
from collections import Counter
from fractions import Fraction
from html import unescape
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import matplotlib
import pandas as pd
import pytest

import safeflow as sf
from safeflow.dp import DP, BudgetLedger, count_mechanism
from safeflow.errors import InvalidParameter, ReleaseError, SafeflowError
from safeflow.protocols.spec import load_spec
from safeflow.release import Release
from safeflow.report import ReportError, build_report, write_report
from safeflow.report import plots as report_plots
from tests.conftest import LUNG_SCHEMA, lung, lung_federation, split_by_inst

# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def rel() -> dict[str, Release]:
    fed = lung_federation(2)
    return {
        "t1": sf.describe(fed, ["age", "wt.loss", "ph.ecog"], by="sex", protocol="masking"),
        "glm": sf.glm(fed, "status", ["age", "sex"], family="binomial", protocol="masking"),
        "km": sf.kaplan_meier(fed, "time", "status", by="sex", protocol="masking"),
        "lr": sf.logrank(fed, "time", "status", "sex", protocol="masking"),
        "cox": sf.cox(fed, "time", "status", ["age", "sex"], protocol="masking"),
        "hist": sf.histogram(fed, "age", bins=[30, 40, 50, 60, 70, 80, 90], protocol="masking"),
        "ct": sf.crosstab(fed, "sex", "ph.ecog", protocol="masking"),
    }


LABELS = {"t1": "Table 1", "glm": "Death (logistic)", "km": "Overall survival",
          "lr": "Survival by sex", "cox": "Cox model", "hist": "Age", "ct": "Sex by ECOG"}


def _items(rel: dict[str, Release]) -> list[tuple[str, Release]]:
    return [(LABELS[k], r) for k, r in rel.items()]


def _manifest() -> list[dict[str, Any]]:
    return [{"party": party, "message": f"{m.stage}: {m.sender} -> {m.receiver}",
             "crosses_border": m.crosses_border, "protection": list(m.protections),
             "reveals": text}
            for m in load_spec("masking").messages for party, text in m.reveals.items()]


def ledger_rows(path: Path, total: Any, spent: Any) -> list[dict[str, Any]]:
    """``BudgetLedger.show()`` of a real ledger with one dataset and one debit."""
    ledger = BudgetLedger(path)
    try:
        ledger.set_total("lung", total)
        if spent:
            ledger.spend("lung", "q1", spent)
        return ledger.show()
    finally:
        ledger.close()


@pytest.fixture(scope="module")
def budgets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[dict[str, Any]]]:
    d = tmp_path_factory.mktemp("ledgers")
    return {"site0": ledger_rows(d / "site0.sqlite", 2, Fraction(1, 2)),
            "site1": ledger_rows(d / "site1.sqlite", 1, 0)}


META = {"title": "NCCTG lung", "purpose": "scientific-research",
        "sites": [{"site": "site0", "jurisdiction": "CN"}, {"site": "site1", "jurisdiction": "NL"}],
        "destination": "NL", "study hash": "ab" * 32,
        "approvals": {"ethics": "METc 2024-001", "hgr_filing": True}}


@pytest.fixture(scope="module")
def page(rel: dict[str, Release], budgets: dict[str, list[dict[str, Any]]]) -> str:
    return build_report(_items(rel), title="Lung report", meta=META, budgets=budgets,
                        manifest=_manifest())


class _Doc(HTMLParser):
    """Ids, image sources and alt texts, tag counts, and the text under each id."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.ids: list[str] = []
        self.imgs: list[dict[str, str | None]] = []
        self.tags: Counter[str] = Counter()
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        self.tags[tag] += 1
        if a.get("id"):
            self.ids.append(str(a["id"]))
        if tag == "img":
            self.imgs.append(a)


def _element(html: str, id_: str) -> str:
    """The HTML of the element with ``id_`` (up to its matching close tag)."""
    m = re.search(rf'<(\w+)[^>]*\bid="{re.escape(id_)}"', html)
    assert m, f"no element with id {id_!r}"
    name, depth, pos = m.group(1), 0, m.start()
    for t in re.finditer(rf"<(/?){name}\b[^>]*>", html[pos:]):
        depth += -1 if t.group(1) else 1
        if depth == 0:
            return html[pos:pos + t.end()]
    raise AssertionError(f"unclosed element {id_!r}")


def _cells(table_html: str) -> list[list[str]]:
    rows = re.findall(r"<tr[^>]*>(.*?)</tr>", table_html, flags=re.S)
    return [[re.sub(r"<[^>]+>", "", c) for c in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", r,
                                                              flags=re.S)] for r in rows]


# ----------------------------------------------------------------------------- structure


def test_every_section_and_id_is_present_once(page: str) -> None:
    doc = _Doc(page)
    expected = {
        "study", "study-details", "contents", "about", "decisions", "budget", "budget-chart",
        "manifest", "table1", "glm", "kaplan-meier", "logrank", "cox", "histogram", "crosstab",
        "forest-death-logistic", "forest-cox-model", "km-overall-survival",
        "numbers-at-risk-overall-survival", "bars-age", "table-table-1",
        *(f"provenance-{s}" for s in ("table-1", "death-logistic", "overall-survival",
                                      "survival-by-sex", "cox-model", "age", "sex-by-ecog")),
    }
    assert expected <= set(doc.ids)
    dupes = [i for i, n in Counter(doc.ids).items() if n > 1]
    assert not dupes
    # the contents link to every item and study-level section
    nav = _element(page, "contents")
    for sid in ("table1", "glm", "kaplan-meier", "logrank", "cox", "histogram", "crosstab",
                "decisions", "budget", "manifest"):
        assert f'href="#{sid}"' in nav


def test_each_item_shows_its_provenance(page: str, rel: dict[str, Release]) -> None:
    for key, slug in (("t1", "table-1"), ("cox", "cox-model"), ("km", "overall-survival")):
        block = _element(page, f"provenance-{slug}")
        r = rel[key]
        assert "masking" in block
        assert f"{r.bytes_cross_border:,} bytes" in block
        assert f">{r.rounds}<" in block
        assert r.decision.outcome.value in block
        for rule in r.decision.rules:
            assert rule in block
        assert r.certificate.output_sha256 in block
        for signer in r.certificate.signers:
            assert f"{signer} ✓" in block
        assert "all signatures and the audit-log proof verify" in block
        assert "site0 (CN), site1 (NL)" in block
    assert "no cell suppressed" in _element(page, "provenance-table-1")


def test_decisions_overview_lists_every_item(page: str, rel: dict[str, Release]) -> None:
    block = _element(page, "decisions")
    for key, r in rel.items():
        assert LABELS[key] in block
        assert f"{r.bytes_cross_border:,}" in block
    assert block.count("badge ok") == len(rel)


def test_repeated_analyses_get_distinct_ids(rel: dict[str, Release]) -> None:
    html = build_report([("A", rel["t1"]), ("A", rel["t1"]), ("B", rel["t1"])], title="x")
    ids = _Doc(html).ids
    assert {"table1", "table1-a-2", "table1-b", "provenance-a", "provenance-a-2"} <= set(ids)
    assert len(ids) == len(set(ids))


def test_optional_sections_absent_without_their_inputs(rel: dict[str, Release]) -> None:
    html = build_report([("Table 1", rel["t1"])], title="Only a table")
    ids = set(_Doc(html).ids)
    assert "budget" not in ids and "manifest" not in ids and "dp-table-1" not in ids
    assert "table1" in ids and "decisions" in ids
    # without meta, the header is derived from the release's facts
    header = _element(html, "study")
    assert "site0 (CN)" in header and "scientific-research" in header


def test_meta_header_renders_nested_values(page: str) -> None:
    header = _element(page, "study")
    assert "Lung report" in header and "NCCTG lung" in header  # meta title differs: shown
    assert "METc 2024-001" in header and "ab" * 32 in header
    assert ">CN<" in header and ">NL<" in header


# ----------------------------------------------------------------------------- content


def test_table1_pivots_by_group(page: str, rel: dict[str, Release]) -> None:
    rows = _cells(_element(page, "table-table-1"))
    assert rows[0][1:] == ["sex = 1", "sex = 2"]
    v = rel["t1"].value
    age1 = v[(v["variable"] == "age") & (v["group"] == "1")].iloc[0]
    age_row = next(r for r in rows if r[0] == "age, mean (SD)")
    assert age_row[1].startswith(f"{age1['mean']:.1f} ({age1['sd']:.1f})")
    ecog0 = v[(v["variable"] == "ph.ecog") & (v["group"] == "2") & (v["level"] == "0")].iloc[0]
    ecog_rows = [r for r in rows if r[0] == "0"]
    assert ecog_rows[0][2] == f"{int(ecog0['count'])} ({ecog0['percent']:.1f}%)"


def test_table1_by_site_and_group_has_one_column_per_pair() -> None:
    fed = lung_federation(2)
    r = sf.describe(fed, ["age", "sex"], by="ph.ecog", by_site=True, protocol="plain")
    rows = _cells(_element(build_report([("By site", r)], title="t"), "table-by-site"))
    pairs = list(dict.fromkeys(r.value[["site", "group"]].itertuples(index=False, name=None)))
    assert rows[0][1:] == [f"{site} · ph.ecog = {g}" for site, g in pairs]
    assert all(len(row) == len(pairs) + 1 for row in rows)


def test_table1_marks_suppressed_cells() -> None:
    """Health-classed data: ECOG 3 (one patient) and its partner are suppressed."""
    schema = sf.Schema([
        sf.Column("sex", kind="categorical", categories=(1, 2)),
        sf.Column("ph.ecog", kind="categorical", categories=(0, 1, 2, 3), on_missing="drop"),
    ])
    df = lung()[["sex", "ph.ecog", "inst"]]
    odd = df["inst"].fillna(0) % 2 == 1
    fed = sf.Federation.local(
        [sf.Site("beijing", df[odd][["sex", "ph.ecog"]], "CN", schema=schema),
         sf.Site("amsterdam", df[~odd][["sex", "ph.ecog"]], "NL", schema=schema)],
        destination="NL", purpose="scientific-research")
    r = sf.describe(fed, ["ph.ecog"], by="sex", protocol="masking")
    hidden = int(r.value["count"].isna().sum())
    assert hidden > 0
    html = build_report([("Baseline", r)], title="t")
    table = _element(html, "table-baseline")
    assert table.count('class="suppressed"') == hidden
    assert f"{hidden} cell(s) suppressed" in _element(html, "provenance-baseline")


def test_glm_shows_odds_ratios(page: str, rel: dict[str, Release]) -> None:
    v = rel["glm"].value
    assert v.family == "binomial"
    rows = _cells(_element(page, "coef-death-logistic"))
    assert rows[0][:6] == ["term", "coef", "SE", "z", "p", "Odds ratio"]
    sex = next(r for r in rows if r[0] == "sex[T.2]")
    s = v.summary.loc["sex[T.2]"]
    assert sex[5] == f"{math.exp(s['coef']):.2f}"
    assert sex[6] == f"{math.exp(s['ci_low']):.2f}–{math.exp(s['ci_high']):.2f}"
    alt = _element(page, "forest-death-logistic")
    assert "Intercept" not in alt and "sex[T.2]" in alt


def test_gaussian_glm_is_not_exponentiated() -> None:
    s = sf.Schema([sf.Column("x", classes=("public",), bounds=(0, 10)),
                   sf.Column("y", classes=("public",), bounds=(0, 30))])
    df = pd.DataFrame({"x": [1.0, 2, 3, 4, 5, 6], "y": [2.0, 4.1, 5.9, 8.0, 10.2, 11.9]})
    fed = sf.Federation.local([sf.Site("a", df[:3], "CN", schema=s),
                               sf.Site("b", df[3:], "NL", schema=s)],
                              destination="NL", purpose="scientific-research")
    html = build_report([("Linear", sf.glm(fed, "y", ["x"], protocol="plain"))], title="t")
    coef = _element(html, "coef-linear")
    assert "Odds ratio" not in coef and "95% CI" in coef
    assert "forest-linear" in html


def test_cox_shows_hazard_ratios(page: str, rel: dict[str, Release]) -> None:
    v = rel["cox"].value
    rows = _cells(_element(page, "coef-cox-model"))
    assert rows[0][5] == "HR"
    for term in v.names:
        row = next(r for r in rows if r[0] == term)
        assert row[5] == f"{v.hazard_ratios[term]:.2f}"
    assert "hazard ratio" in _element(page, "forest-cox-model")


def test_km_numbers_at_risk_under_the_plot(page: str, rel: dict[str, Release]) -> None:
    section = _element(page, "kaplan-meier")
    assert section.index('id="km-overall-survival"') < section.index(
        'id="numbers-at-risk-overall-survival"')
    rows = _cells(_element(page, "numbers-at-risk-overall-survival"))
    times = [float(t) for t in rows[0][1:]]
    assert times[0] == 0.0 and len(times) >= 3
    expected = rel["km"].value.at_risk_table(times)
    got = [[int(c.replace(",", "")) for c in r[1:]] for r in rows[1:]]
    assert got == expected.to_numpy().tolist()
    assert [r[0] for r in rows[1:]] == ["sex = 1", "sex = 2"]


def test_logrank_table(page: str, rel: dict[str, Release]) -> None:
    v = rel["lr"].value
    rows = _cells(_element(page, "test-survival-by-sex"))
    assert rows[0] == ["test", "χ²", "df", "p"]
    assert rows[1] == ["log-rank", f"{v.statistic:.2f}", str(v.df), f"{v.p_value:.3f}"]


def test_histogram_and_crosstab(page: str, rel: dict[str, Release]) -> None:
    rows = _cells(_element(page, "table-age"))
    assert [r[1] for r in rows[1:]] == [str(c) for c in rel["hist"].value["count"]]
    ct = rel["ct"].value
    rows = _cells(_element(page, "table-sex-by-ecog"))
    assert rows[0] == ["sex \\ ph.ecog", *(str(c) for c in ct.columns)]
    assert [[int(c) for c in r[1:]] for r in rows[1:]] == ct.to_numpy().tolist()


def test_unknown_analysis_renders_its_repr() -> None:
    r = Release(value={"answer": 42}, facts={}, analysis="custom", protocol="plain")
    html = build_report([("Custom <thing>", r)], title="t")
    assert "{&#x27;answer&#x27;: 42}" in html
    assert "UNCERTIFIED" in _element(html, "provenance-custom-thing")
    assert 'id="result"' in html


def test_dp_block_shows_epsilon_mode_and_ci(rel: dict[str, Release]) -> None:
    mech = count_mechanism(1, DP(Fraction(1, 2), unit="patient"))
    d = mech.describe()
    dp = {"epsilon": d["epsilon"], "delta": d["delta"], "unit": d["unit"], "mode": d["mode"],
          "alpha": d["alpha"],
          "statistics": {"count": {"mechanism": d["mechanism"], "scale": d["scale"],
                                   "accuracy": d["accuracy"]}}}
    base = rel["hist"]
    facts = {**base.facts, "output": {**base.facts["output"], "dp": dp}}
    noised = dataclasses.replace(base, facts=facts)
    html = build_report([("Noisy ages", noised)], title="t")
    block = _element(html, "dp-noisy-ages")
    assert "1/2 (0.5)" in block  # exact ε
    assert d["mode"] in block and d["mechanism"] in block
    level = f"{100 * (1 - d['alpha']):.0f}%"
    assert f"{level} CI half-width" in block
    assert f"± {d['accuracy']:.2f}" in block
    assert "differential privacy, ε = 1/2" in _element(html, "histogram")  # under the title
    assert 'id="dp-' not in build_report([("Plain", base)], title="t")


def test_real_dp_release_and_its_budgets() -> None:
    """A histogram noised by customs (central DP), with the sites' real budget ledgers."""
    parts = split_by_inst(lung(), 2)
    try:
        sites = [sf.Site(f"site{i}", part, jur, schema=LUNG_SCHEMA, budget=2)
                 for i, (part, jur) in enumerate(zip(parts, ["CN", "NL"], strict=True))]
    except TypeError:
        pytest.skip("sf.Site(budget=...) is not available: DP is not wired into the analyses")
    fed = sf.Federation.local(sites, destination="NL", purpose="scientific-research")
    h = sf.histogram(fed, "age", bins=[30, 40, 50, 60, 70, 80, 90], protocol="masking",
                     dp=sf.DP(epsilon=0.5))
    dp = h.facts["output"]["dp"]
    html = build_report([("Noisy ages", h)], title="t", budgets=fed.budgets())
    block = _element(html, "dp-noisy-ages")
    assert str(dp["epsilon"]) in block and dp["mode"] in block
    stats = dp["statistics"]
    first = stats[0] if isinstance(stats, list) else next(iter(stats.values()))
    assert first["mechanism"] in block
    assert f"± {first['accuracy']:.2f}" in block
    rows = _cells(_element(html, "budget"))
    site0 = next(r for r in rows if r and r[0] == "site0")
    assert site0[2:5] == ["2", "1/2 (0.5)", "3/2 (1.5)"]


def test_budget_table_shows_exact_fractions(page: str) -> None:
    rows = _cells(_element(page, "budget"))
    site0 = next(r for r in rows if r and r[0] == "site0")
    assert site0[2:5] == ["2", "1/2 (0.5)", "3/2 (1.5)"]
    assert "site1 / lung spent 0 of 1" in _element(page, "budget-chart")


def test_manifest_table(page: str) -> None:
    rows = _cells(_element(page, "manifest"))
    assert rows[0] == ["party", "message", "crosses a border", "protection", "reveals"]
    assert len(rows) - 1 == len(_manifest())
    assert any("masked" in r[3] for r in rows[1:])


# ----------------------------------------------------------------------------- safety


def test_text_is_escaped(rel: dict[str, Release]) -> None:
    evil = "<script>alert('x')</script>"
    html = build_report([(evil, rel["lr"])], title=f"T {evil}",
                        meta={"purpose": evil, evil: ["<b>bold</b>"]},
                        manifest=[{"party": evil, "message": "m", "crosses_border": True,
                                   "protection": "none", "reveals": {evil: evil}}])
    assert "<script" not in html.lower()
    assert "<b>bold" not in html
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in html
    assert _Doc(html).tags["script"] == 0


def test_self_contained_no_external_references(page: str) -> None:
    assert not re.search(r"https?:", page, flags=re.I)
    assert not re.search(r"""(?:src|href)\s*=\s*["']?//""", page, flags=re.I)
    doc = _Doc(page)
    assert doc.tags["script"] == 0 and doc.tags["link"] == 0 and doc.tags["iframe"] == 0
    assert all(str(i["src"]).startswith("data:image/png;base64,") for i in doc.imgs)
    hrefs = re.findall(r'href="([^"]*)"', page)
    assert hrefs and all(h.startswith("#") for h in hrefs)
    assert "Content-Security-Policy" in page and "default-src 'none'" in unescape(page)
    assert "@media print" in page


def test_images_are_valid_pngs_with_alt_text(page: str) -> None:
    imgs = _Doc(page).imgs
    assert len(imgs) == 5  # forest x2, KM, histogram bars, budget chart
    for img in imgs:
        raw = base64.b64decode(str(img["src"]).split(",", 1)[1], validate=True)
        assert raw[:8] == b"\x89PNG\r\n\x1a\n" and len(raw) > 1000
        assert raw[12:16] == b"IHDR"
        w, h = struct.unpack(">II", raw[16:24])
        assert w > 0 and h > 0
        assert int(str(img["width"])) > 0 and int(str(img["height"])) > 0
        assert len(str(img["alt"])) > 20


def test_report_leaves_matplotlib_state_alone(rel: dict[str, Release]) -> None:
    import sys

    def figures() -> list[int]:  # other tests may have left pyplot figures open
        plt = sys.modules.get("matplotlib.pyplot")
        return [] if plt is None else list(plt.get_fignums())

    backend = matplotlib.get_backend()
    rc = dict(matplotlib.rcParams)
    before = figures()
    build_report([("KM", rel["km"]), ("Cox", rel["cox"])], title="t")
    assert matplotlib.get_backend() == backend
    assert dict(matplotlib.rcParams) == rc
    assert figures() == before  # no pyplot figure created (or left open)


# ----------------------------------------------------------------------------- writing


def test_write_report_is_atomic_and_returns_path(tmp_path: Path,
                                                 rel: dict[str, Release]) -> None:
    target = tmp_path / "sub" / "report.html"
    out = write_report(target, [("Table 1", rel["t1"])], title="t")
    assert out == target and out.is_file()
    assert out.read_text(encoding="utf-8") == build_report([("Table 1", rel["t1"])], title="t")
    assert sorted(p.name for p in target.parent.iterdir()) == ["report.html"]
    write_report(str(target), [("Age", rel["hist"])], title="second")  # replaces
    assert "second" in target.read_text(encoding="utf-8")


def test_failing_plot_raises_typed_error_and_writes_nothing(
    tmp_path: Path, rel: dict[str, Release], monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("disk full while rendering")

    monkeypatch.setattr(report_plots.Figure, "savefig", broken)
    target = tmp_path / "report.html"
    with pytest.raises(ReportError, match="could not draw the Kaplan-Meier plot") as info:
        write_report(target, [("Table 1", rel["t1"]), ("KM", rel["km"])], title="t")
    assert isinstance(info.value, SafeflowError) and isinstance(info.value, ReleaseError)
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []
    # an existing report is left as it was
    target.write_text("old report", encoding="utf-8")
    with pytest.raises(ReportError):
        write_report(target, [("Cox", rel["cox"])], title="t")
    assert target.read_text(encoding="utf-8") == "old report"
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]


def test_write_failure_removes_the_temporary_file(
    tmp_path: Path, rel: dict[str, Release], monkeypatch: pytest.MonkeyPatch
) -> None:
    import safeflow.report.html as report_html

    def no_rename(src: str, dst: Any) -> None:
        raise OSError("rename failed")

    monkeypatch.setattr(report_html.os, "replace", no_rename)
    with pytest.raises(OSError, match="rename failed"):
        write_report(tmp_path / "r.html", [("Table 1", rel["t1"])], title="t")
    assert list(tmp_path.iterdir()) == []


def test_non_finite_interval_is_left_out_of_the_forest_plot() -> None:
    """Quasi-separation (ECOG 3: one patient) gives an unbounded interval: table, no dot."""
    fed = lung_federation(2)
    r = sf.glm(fed, "status", ["sex", "ph.ecog"], family="binomial", protocol="masking")
    assert r.value.summary.loc["ph.ecog[T.3]", "ci_high"] > 1000  # exp() overflows
    html = build_report([("Separated", r)], title="t")
    fig = _element(html, "forest-separated")
    assert "Not drawn" in fig and "ph.ecog[T.3]" in fig
    assert "ph.ecog[T.3]" in _element(html, "coef-separated")


# ----------------------------------------------------------------------------- arguments


@pytest.mark.parametrize(
    ("items", "kwargs", "match"),
    [
        ("not a list", {"title": "t"}, "list of \\(label, release\\) pairs"),
        ([("x",)], {"title": "t"}, "must be a \\(label, release\\) pair"),
        ([("x", 42)], {"title": "t"}, "expected an sf.Release"),
        ([("", None)], {"title": "t"}, "label must be a non-empty string"),
        ([], {"title": ""}, "title must be a non-empty string"),
        ([], {"title": "t", "budgets": {"a": 1}}, "BudgetLedger.show"),
        ([], {"title": "t", "manifest": "x"}, "manifest must be a list"),
        ([], {"title": "t", "meta": ["a"]}, "meta must be a mapping"),
    ],
)
def test_bad_arguments_are_named(items: Any, kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(InvalidParameter, match=match):
        build_report(items, **kwargs)


def test_write_report_refuses_a_directory(tmp_path: Path) -> None:
    with pytest.raises(InvalidParameter, match="is a directory"):
        write_report(tmp_path, [], title="t")
