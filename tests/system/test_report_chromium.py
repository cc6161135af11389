"""The HTML report in a real browser: headless Chromium renders every section, table and plot.

Real releases (the NCCTG lung data over a CN and an NL site, secure aggregation), a real
budget ledger and the masking protocol's manifest. Chromium (Debian's ``chromium``, which
CI installs with ``scripts/install_chromium.sh``) runs through the helpers of
``scripts/report_screenshot.py``: headless, a throw-away profile, no network services, a
timeout, and its process group killed afterwards.

The report has no scripts, so the image check loads it in an iframe of a small wrapper
page whose script reads the report's DOM (``--allow-file-access-from-files`` makes the two
``file:`` pages same-origin) and writes what it found into the wrapper's DOM, which
``--dump-dom`` prints.
"""

from __future__ import annotations

import base64
import importlib.util
import json
import os
import re
import struct
from fractions import Fraction
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

import safeflow as sf
from safeflow.dp import BudgetLedger
from safeflow.report import write_report
from tests.conftest import lung_federation

ROOT = Path(__file__).resolve().parents[2]


def _load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "report_screenshot", ROOT / "scripts" / "report_screenshot.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


rs = _load_script()

pytestmark = pytest.mark.skipif(
    rs.find_chromium() is None,
    reason="Chromium is not installed: run `sudo bash scripts/install_chromium.sh` "
           "(CI does, from .ci/run) or set SAFEFLOW_CHROMIUM",
)

SECTIONS = ["study", "contents", "about", "table1", "glm", "kaplan-meier", "logrank", "cox",
            "histogram", "crosstab", "decisions", "budget", "manifest"]
FIGURES = ["forest-death", "km-overall-survival", "forest-cox-model", "bars-age",
           "budget-chart"]
TABLES = ["table-table-1", "coef-death", "numbers-at-risk-overall-survival",
          "test-survival-by-sex", "coef-cox-model", "table-age", "table-sex-by-ecog"]

WRAPPER = """<!DOCTYPE html><html><body>
<iframe id="f" src="REPORT" style="width:1200px;height:900px;border:0"></iframe>
<pre id="result">pending</pre>
<script>
window.addEventListener("load", () => {
  let r;
  try {
    const d = document.getElementById("f").contentDocument;
    const imgs = [...d.images];
    r = {
      title: d.title,
      ids: [...d.querySelectorAll("[id]")].map(e => e.id),
      images: imgs.map(i => ({id: i.parentElement.id, complete: i.complete,
                               natural: [i.naturalWidth, i.naturalHeight],
                               shown: [i.getBoundingClientRect().width,
                                       i.getBoundingClientRect().height]})),
      tables: [...d.querySelectorAll("table")].map(t => ({id: t.id, rows: t.rows.length,
                                                          height: t.offsetHeight})),
      sections: [...d.querySelectorAll("section[id], header[id]")].map(
        s => ({id: s.id, height: s.offsetHeight})),
      scripts: d.scripts.length,
      styled: getComputedStyle(d.querySelector("table")).borderCollapse,
    };
  } catch (e) { r = {error: String(e)}; }
  document.getElementById("result").textContent = JSON.stringify(r);
});
</script></body></html>
"""


def _no_chromium_left() -> list[str]:
    """Live (non-zombie) processes still using one of our throw-away profiles."""
    left = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"safeflow-chromium-" in cmd:
            left.append(pid)
    return left


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("report")
    fed = lung_federation(2)
    items = [
        ("Table 1", sf.describe(fed, ["age", "wt.loss", "ph.ecog"], by="sex",
                                protocol="masking")),
        ("Death", sf.glm(fed, "status", ["age", "sex"], family="binomial",
                         protocol="masking")),
        ("Overall survival", sf.kaplan_meier(fed, "time", "status", by="sex",
                                             protocol="masking")),
        ("Survival by sex", sf.logrank(fed, "time", "status", "sex", protocol="masking")),
        ("Cox model", sf.cox(fed, "time", "status", ["age", "sex"], protocol="masking")),
        ("Age", sf.histogram(fed, "age", bins=[30, 40, 50, 60, 70, 80, 90],
                             protocol="masking")),
        ("Sex by ECOG", sf.crosstab(fed, "sex", "ph.ecog", protocol="masking")),
    ]
    budgets: dict[str, Any] = {}
    for site, spent in (("site0", Fraction(1, 2)), ("site1", Fraction(1, 4))):
        ledger = BudgetLedger(d / f"{site}.sqlite")
        try:
            ledger.set_total("lung", 1)
            ledger.spend("lung", "q1", spent)
            budgets[site] = ledger.show()
        finally:
            ledger.close()
    return write_report(d / "report.html", items, title="NCCTG lung: system test",
                        budgets=budgets, manifest=rs.manifest_rows("masking"))


def _png_size(raw: bytes) -> tuple[int, int]:
    assert raw[:8] == b"\x89PNG\r\n\x1a\n" and raw[12:16] == b"IHDR"
    w, h = struct.unpack(">II", raw[16:24])
    return w, h


def test_chromium_renders_every_section_table_and_plot(report: Path) -> None:
    wrapper = report.with_name("wrapper.html")
    wrapper.write_text(WRAPPER.replace("REPORT", report.name), encoding="utf-8")
    dom = rs.dump_dom(wrapper.as_uri(), extra=["--allow-file-access-from-files"])
    m = re.search(r'<pre id="result">(.*?)</pre>', dom, flags=re.S)
    assert m, dom[-2000:]
    result = json.loads(m.group(1).replace("&lt;", "<").replace("&gt;", ">")
                        .replace("&quot;", '"').replace("&amp;", "&"))
    assert "error" not in result, result
    assert result["title"] == "NCCTG lung: system test"
    assert result["scripts"] == 0
    assert result["styled"] == "collapse"  # the inline style sheet applied
    ids = set(result["ids"])
    missing = [i for i in SECTIONS + FIGURES + TABLES if i not in ids]
    assert not missing, f"sections missing from the rendered DOM: {missing}"
    sections = {s["id"]: s["height"] for s in result["sections"]}
    assert all(sections[s] > 0 for s in SECTIONS if s != "contents"), sections
    tables = {t["id"]: t for t in result["tables"] if t["id"]}
    for t in TABLES:
        assert tables[t]["rows"] >= 2 and tables[t]["height"] > 20, tables[t]
    # every plot decoded at the PNG's own size and laid out on the page
    html = report.read_text(encoding="utf-8")
    pngs = [base64.b64decode(s) for s in re.findall(r'src="data:image/png;base64,([^"]+)"',
                                                    html)]
    images = result["images"]
    assert [i["id"] for i in images] == FIGURES
    for img, raw in zip(images, pngs, strict=True):
        assert img["complete"], img
        assert tuple(img["natural"]) == _png_size(raw), img
        assert img["shown"][0] > 300 and img["shown"][1] > 100, img
    assert not _no_chromium_left()


def test_screenshot_is_not_blank(report: Path, tmp_path: Path) -> None:
    from PIL import Image

    out = tmp_path / "shot.png"
    assert rs.main([str(report), "-o", str(out), "--width", "1180", "--height", "1600"]) == 0
    with Image.open(out) as im:
        assert im.size == (1180, 1600)
        pixels = np.asarray(im.convert("RGB")).reshape(-1, 3)
    share_ink = float((pixels.min(axis=1) <= 245).mean())
    assert 0.05 < share_ink < 0.9, share_ink
    colours = np.unique(pixels, axis=0)
    assert len(colours) > 100  # text, tables, the header band: not a flat image
    assert not _no_chromium_left()


def test_report_prints_to_pdf(report: Path, tmp_path: Path) -> None:
    pdf = tmp_path / "report.pdf"
    res = rs.run_chromium(["--no-pdf-header-footer", f"--print-to-pdf={pdf}",
                           report.as_uri()])
    assert res.returncode == 0, res.stderr[-2000:]
    data = pdf.read_bytes()
    assert data.startswith(b"%PDF") and len(data) > 50_000
    pages = len(re.findall(rb"/Type\s*/Page\b", data))
    assert pages >= 4, pages
    assert not _no_chromium_left()
