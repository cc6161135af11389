"""The README's example runs as written (from the repository root)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import matplotlib

ROOT = Path(__file__).resolve().parents[2]


def test_readme_example_runs(capsys) -> None:  # type: ignore[no-untyped-def]
    matplotlib.use("Agg")
    text = (ROOT / "README.md").read_text()
    (code,) = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    cwd = Path.cwd()
    os.chdir(ROOT)
    try:
        exec(compile(code, "README.md", "exec"), {})
    finally:
        os.chdir(cwd)
    out = capsys.readouterr().out
    assert "UNCERTIFIED" in out and "exp(coef)" in out
