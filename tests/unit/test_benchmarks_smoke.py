"""Smoke test of the benchmarks: each ``--quick`` run writes its table with every row.

Only that the figures are produced is checked, not their values (those depend on the
machine). The benchmarks run as scripts in subprocesses, exactly as documented in
``benchmarks/README.md``.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "benchmarks"
NUMBER = r"[-+]?[\d,]*\.?\d+(?:e[-+]?\d+)?"


@pytest.fixture(scope="module")
def quick_runs(
        tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, tuple[Any, Path]]]:
    """Start both ``--quick`` runs at once (they are independent; this halves the wait)."""
    tmp = tmp_path_factory.mktemp("bench")
    extra = {"describe_memory.py": ["--cache", str(tmp / "cache")]}
    runs = {}
    for script in ("secure_sum.py", "describe_memory.py"):
        out = tmp / script.replace(".py", ".md")
        proc = subprocess.Popen(
            [sys.executable, str(BENCH / script), "--quick", "--out", str(out),
             *extra.get(script, [])],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
        runs[script] = (proc, out)
    yield runs
    for proc, _ in runs.values():
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def _run(runs: dict[str, tuple[Any, Path]], script: str) -> str:
    proc, out = runs[script]
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr
    assert out.is_file()
    return out.read_text()


def _row(text: str, *cells: str) -> list[str]:
    """The table row whose first cells are ``cells``, split into its cells."""
    for line in text.splitlines():
        parts = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and parts[: len(cells)] == list(cells):
            return parts
    raise AssertionError(f"no table row starting with {cells!r} in:\n{text}")


def _he_available() -> bool:
    return importlib.util.find_spec("safeflow.protocols.he") is not None


def _machine_and_command(text: str, script: str) -> None:
    assert f"benchmarks/{script} --quick" in text
    for key in ("- date:", "- CPU:", "- cores available:", "- RAM:", "- Python:", "- numpy:"):
        assert key in text, key


def test_secure_sum_quick_writes_every_row(quick_runs: dict[str, tuple[Any, Path]]) -> None:
    text = _run(quick_runs, "secure_sum.py")
    _machine_and_command(text, "secure_sum.py")
    protocols = ["plain", "masking"] + (["he-bfv", "he-ckks"] if _he_available() else [])
    for proto in protocols:
        for kind in ("counts", "reals", "reals-ext"):
            row = _row(text, proto, kind)
            # critical path, x numpy, slowest site, aggregator, wall, up, down, total, x raw,
            # set-up time, set-up bytes, error: all numbers
            assert len(row) == 15, row
            for cell in row[2:14]:
                assert re.fullmatch(NUMBER, cell), (proto, kind, cell)
    for kind, ring in (("counts", "10,000"), ("reals", "10,000"), ("reals-ext", "20,000")):
        assert re.fullmatch(NUMBER, _row(text, kind)[1])  # numpy baseline
        breakdown = _row(text, kind, ring)  # masking: per-component times
        assert all(re.fullmatch(NUMBER, c) for c in breakdown[2:9]), breakdown
    for kind in ("counts", "reals"):
        target = _row(text, "masking", kind, "<= 10x time, <= 1x bytes")
        assert re.search(r"\((met|MISSED)\).*\((met|MISSED)\)", target[3]), target
    assert re.fullmatch(NUMBER, _row(text, "mask_stream (pyca cryptography / OpenSSL)")[1])
    if _he_available():
        for proto in ("he-bfv", "he-ckks"):
            row = _row(text, proto, "counts")
            assert all(re.fullmatch(NUMBER, c) for c in row[2:6]), row


def test_describe_memory_quick_writes_both_rows(
        quick_runs: dict[str, tuple[Any, Path]]) -> None:
    text = _run(quick_runs, "describe_memory.py")
    _machine_and_command(text, "describe_memory.py")
    for method in ("safeflow sf.describe (masking)", "pandas read_parquet + describe (peer)"):
        row = _row(text, method)
        assert row[1] == "201,000", row
        for cell in row[2:8]:
            assert re.fullmatch(NUMBER, cell), (method, cell)
    assert _row(text, "safeflow sf.describe (masking)")[8] in ("met", "MISSED")


@pytest.mark.parametrize("script", ["secure_sum.py", "describe_memory.py"])
def test_benchmarks_document_how_to_run(script: str) -> None:
    readme = (BENCH / "README.md").read_text()
    assert f"benchmarks/{script}" in readme
