"""benchmarks/regression.py --quick runs as documented and writes both tables."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_regression_benchmark_quick(tmp_path: Path) -> None:
    out = tmp_path / "regression.md"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "regression.py"), "--quick", "--out", str(out)],
        capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    text = out.read_text()
    assert "| 20,000 | 5 |" in text and "| 5,000 | 5 |" in text
    assert "Machine: CPU" in text and "--quick" in text
