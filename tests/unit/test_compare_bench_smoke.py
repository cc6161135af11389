"""``benchmarks/compare.py --quick`` runs as documented and produces every table and figure.

Only that the figures are produced is checked (files exist, tables have their rows and
columns, PNGs decode), not their values: those depend on the machine. The benchmark runs
as a script in a subprocess, exactly as ``benchmarks/README.md`` documents it.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NUMBER = r"[-+]?[\d,]*\.?\d+(?:e[-+]?\d+)?"
ESTIMANDS = ["Table 1 (describe)", "logistic regression (glm binomial)",
             "linear regression (glm gaussian)", "pooled Cox (1-day public grid)",
             "Kaplan-Meier", "log-rank (by sex)", "FL model (logistic, FedAvg)"]
PROTOCOLS = ["pooled", "plain", "masking", "he-bfv", "he-ckks"]
EPSILONS = ["0.1", "0.5", "1", "2", "5"]
DP_ESTIMANDS = ["Table 1 (describe)", "linear regression (glm gaussian)", "Kaplan-Meier",
                "log-rank (by sex)"]
COLUMNS = ["variant", "status", "error", "AUC gap", "bytes across borders", "rounds",
           "wall s", "peak MiB", "ε spent", "releases", "note"]
FIGURES = ["protocols.png", "dp_error.png", "scaling_rows.png", "scaling_sites.png",
           "scaling_covariates.png"]


@pytest.fixture(scope="module")
def quick(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    out = tmp_path_factory.mktemp("compare")
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "compare.py"), "--quick", "--out", str(out)],
        capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return (out / "compare.md").read_text(), out


def _section(text: str, title: str) -> str:
    """The text under ``### title`` up to the next heading."""
    start = text.index(f"### {title}\n")
    rest = text[start + 1:]
    end = re.search(r"\n#{2,3} ", rest)
    return rest[: end.start()] if end else rest


def _rows(section: str) -> dict[str, list[str]]:
    """Table rows of a section keyed by their first cell (header and rule excluded)."""
    out = {}
    for line in section.splitlines():
        if line.startswith("| ") and not line.startswith("|---"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            out[cells[0]] = cells
    return out


def test_header_names_command_machine_and_date(quick: tuple[str, Path]) -> None:
    text, _ = quick
    assert "benchmarks/compare.py --quick" in text
    for key in ("- date:", "- CPU:", "- cores available:", "- RAM:", "- Python:", "- numpy:",
                "- peak memory:", "load average"):
        assert key in text, key


@pytest.mark.parametrize("title", ESTIMANDS)
def test_every_estimand_has_every_protocol(quick: tuple[str, Path], title: str) -> None:
    text, _ = quick
    rows = _rows(_section(text, title))
    assert rows["variant"] == COLUMNS
    for proto in PROTOCOLS:
        row = rows[proto]
        assert len(row) == len(COLUMNS), row
        assert row[1] == "ok", row
        for cell in (row[4], row[5], row[6], row[7]):  # bytes, rounds, wall s, peak MiB
            assert re.fullmatch(NUMBER, cell), (title, proto, cell)
        if title != ESTIMANDS[-1]:
            assert re.fullmatch(NUMBER, row[2]), (title, proto, row[2])


@pytest.mark.parametrize("title", DP_ESTIMANDS)
def test_dp_rows_at_every_epsilon(quick: tuple[str, Path], title: str) -> None:
    text, _ = quick
    rows = _rows(_section(text, title))
    for eps in EPSILONS:
        for mode in ("central", "local"):
            row = rows[f"dp-{mode} ε={eps}"]
            assert row[1] == "ok" and row[8] == eps, row
            assert re.fullmatch(NUMBER, row[2]), row
        assert rows[f"opendp ε={eps}"][1] in ("ok", "not available")


@pytest.mark.parametrize("title", ["logistic regression (glm binomial)",
                                   "pooled Cox (1-day public grid)"])
def test_dp_skipped_with_a_reason(quick: tuple[str, Path], title: str) -> None:
    rows = _rows(_section(quick[0], title))
    for fam in ("dp-central", "dp-local"):
        assert rows[fam][1] == "skipped" and rows[fam][-1], rows[fam]


def test_peers_and_hooks_are_reported(quick: tuple[str, Path]) -> None:
    text, _ = quick
    fl = _rows(_section(text, ESTIMANDS[-1]))
    assert fl["bare Flower FedAvg"][1] in ("ok", "not available", "failed")
    assert "## 3. What each party sees" in text
    assert "nothing (IND-CPA ciphertexts)" in text  # read from protocols/he.yaml


def test_scaling_tables_and_growth_fits(quick: tuple[str, Path]) -> None:
    text, _ = quick
    for axis in ("rows per site (n)", "sites (K)", "covariates (p)"):
        section = _section(text, axis)
        assert "wall s:" in section and "bytes across borders:" in section
    growth = [line for line in text.splitlines() if line.startswith(("| rows per site |",
                                                                       "| sites |",
                                                                       "| covariates |"))]
    assert len(growth) == 3 * len(PROTOCOLS), growth
    for line in growth:
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert re.fullmatch(NUMBER, cells[3]) and re.fullmatch(NUMBER, cells[5]), cells
        assert "∝" in cells[-1], cells


@pytest.mark.parametrize("name", FIGURES)
def test_figures_exist_and_decode(quick: tuple[str, Path], name: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    text, out = quick
    path = out / "compare" / name
    assert path.is_file() and f"(compare/{name})" in text
    img = plt.imread(path)
    assert img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 100


def test_script_documents_how_to_run() -> None:
    doc = (ROOT / "benchmarks" / "compare.py").read_text()
    assert ".venv/bin/python benchmarks/compare.py --quick" in doc and "--out" in doc
