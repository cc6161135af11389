"""``benchmarks/dp.py --quick`` writes its report with every row (values not checked)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
NUMBER = r"[-+]?[\d,]*\.?\d+(?:e[-+]?\d+)?"


def _row(text: str, *cells: str) -> list[str]:
    for line in text.splitlines():
        parts = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and parts[: len(cells)] == list(cells):
            return parts
    raise AssertionError(f"no row starting with {cells!r} in:\n{text}")


def test_dp_benchmark_quick(tmp_path: Path) -> None:
    out = tmp_path / "dp.md"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "dp.py"), "--quick", "--out", str(out)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    text = out.read_text()
    assert "benchmarks/dp.py --quick" in text
    for key in ("- date:", "- CPU:", "- cores available:", "- RAM:", "- Python:", "- numpy:"):
        assert key in text, key
    for stat, mech in (
        ("count", "discrete_laplace"),
        ("sum", "laplace"),
        ("histogram (20 bins)", "discrete_laplace"),
        ("count", "discrete_gaussian"),
        ("sum", "gaussian"),
        ("histogram (20 bins)", "discrete_gaussian"),
    ):
        row = _row(text, stat, mech)
        assert all(re.fullmatch(NUMBER, c) for c in row[4:10]), row
        assert row[10] in ("met", "met within 2 s.e.", "MISSED"), row
    for mode in (
        "single curator (OpenDP on pooled rows)",
        "central (10 sites, secure sum + one noise)",
        "local (10 sites, each noised)",
    ):
        assert re.fullmatch(NUMBER, _row(text, mode)[1])
    for stat in ("count (x > 65)", "sum (clamped)", "histogram, 20 bins"):
        row = _row(text, stat)
        assert all(re.fullmatch(NUMBER, c) for c in row[1:4]), row
