"""``benchmarks/fl.py --quick`` writes its report with every row (values not checked)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def _row(text: str, *cells: str) -> list[str]:
    for line in text.splitlines():
        parts = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and parts[: len(cells)] == list(cells):
            return parts
    raise AssertionError(f"no row starting with {cells!r} in:\n{text}")


def test_fl_benchmark_quick(tmp_path: Path) -> None:
    out = tmp_path / "fl.md"
    args = ["--quick", "--rounds", "2", "--mlp-rounds", "1", "--repeats", "1"]
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "fl.py"), *args, "--out", str(out)],
        capture_output=True, text=True, cwd=ROOT, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    text = out.read_text()
    assert "benchmarks/fl.py --quick --rounds 2" in text
    for key in ("- date:", "- CPU:", "- cores available:", "- RAM:", "- Python:",
                "- libraries: flwr"):
        assert key in text, key
    _row(text, "scikit-learn LogisticRegression (L2, C = 1)")
    for strategy, protocol in (("fedavg", "plain"), ("fedavg", "masking"), ("fedavg", "he"),
                               ("fedprox", "masking"), ("fedadam", "masking")):
        row = _row(text, strategy, protocol)
        assert row[9].endswith("ms"), row
    for eps in ("1", "5"):
        for rounds in ("3", "10"):
            _row(text, eps, rounds)
