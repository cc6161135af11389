"""benchmarks/policy.py --quick writes its report with every row (values not checked)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
NUMBER = r"[-+]?[\d,]*\.?\d+"


def test_policy_benchmark_quick(tmp_path: Path) -> None:
    out = tmp_path / "policy.md"
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "policy.py"),
            "--quick",
            "--out",
            str(out),
            "--dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    text = out.read_text()
    assert "benchmarks/policy.py --quick" in text
    for key in ("- date:", "- CPU:", "- cores available:", "- RAM:", "- Python:", "- numpy:"):
        assert key in text
    rows = [
        [c.strip() for c in line.strip().strip("|").split("|")]
        for line in text.splitlines()
        if line.startswith("| ") and "---" not in line
    ]
    assert rows[0][:3] == ["section", "operation", "per op (ms)"]
    assert len(rows) == 24
    for row in rows[1:]:
        assert re.fullmatch(NUMBER, row[2]) and re.fullmatch(NUMBER, row[3]), row
    assert re.search(r"target < 5 ms \((met|MISSED)\)", text)
    assert [p.name for p in tmp_path.iterdir()] == ["policy.md"]  # audit files removed
