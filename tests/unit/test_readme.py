"""The README's example runs as written (from the repository root)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import matplotlib

ROOT = Path(__file__).resolve().parents[2]


def test_readme_example_runs(capsys, tmp_path) -> None:  # type: ignore[no-untyped-def]
    matplotlib.use("Agg")
    text = (ROOT / "README.md").read_text()
    (code,) = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    code = code.replace('"out/readme-cox"', repr(str(tmp_path / "readme-cox")))
    cwd = Path.cwd()
    os.chdir(ROOT)
    try:
        exec(compile(code, "README.md", "exec"), {})
    finally:
        os.chdir(cwd)
    out = capsys.readouterr().out
    assert "certified ALLOW" in out and "exp(coef)" in out
    assert (tmp_path / "readme-cox" / "certificate.json").is_file()
