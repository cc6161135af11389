"""A small valid study (text with known line numbers) and tiny site data for the tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

#: a valid study; the tests mutate one line at a time (line numbers in the comments below)
BASE = """\
title: Test study
purpose: scientific-research
destination: NL
expires: 2099-12-31
instruments:
  ethics_approval: EC-1
  scc: true
sites:
  - name: a
    jurisdiction: CN
    data: data/a.csv
  - name: b
    jurisdiction: NL
    data: data/b.csv
schema:
  columns:
    age: {bounds: [18, 100]}
    arm: {kind: categorical, categories: [A, B]}
    y: {kind: binary, categories: [0, 1]}
    t: {role: time, bounds: [0, 400], resolution: 1}
    e: {role: event, categories: [0, 1]}
    bmi: {bounds: [10, 60]}
    pid: {role: identifier, kind: categorical}
allowed_variables: [age, arm, y, t, e]
analyses:
  - id: t1
    type: describe
    columns: [age, y]
    by: arm
  - id: lr
    type: glm
    y: y
    X: [arm, age]
    family: binomial
"""
N_LINES = BASE.count("\n")


def mutate(old: str, new: str, text: str = BASE) -> str:
    """``text`` with the one occurrence of ``old`` replaced (``old=""``: append ``new``)."""
    if old == "":
        return text + new
    assert text.count(old) == 1, f"{old!r} occurs {text.count(old)} times"
    return text.replace(old, new)


def write_data(root: Path, n: int = 80, seed: int = 11) -> None:
    """Two sites' CSVs under ``root/data`` matching the BASE schema (plus a constant)."""
    rng = np.random.default_rng(seed)
    (root / "data").mkdir(parents=True, exist_ok=True)
    for site in ("a", "b"):
        df = pd.DataFrame({
            "pid": [f"{site}-{i:03d}" for i in range(n)],
            "age": rng.integers(30, 80, n).astype(float),
            "arm": np.where(np.arange(n) % 2 == 0, "A", "B"),
            "y": rng.binomial(1, 0.35, n),
            "t": rng.integers(1, 400, n).astype(float),
            "e": rng.binomial(1, 0.6, n),
            "bmi": rng.uniform(18, 35, n).round(1),
        })
        df.to_csv(root / "data" / f"{site}.csv", index=False)


def write_study(root: Path, text: str = BASE, *, data: bool = True) -> Path:
    """Write ``text`` as ``root/study.yaml`` (and the site data); return its path."""
    root.mkdir(parents=True, exist_ok=True)
    if data and not (root / "data").exists():
        write_data(root)
    path = root / "study.yaml"
    path.write_text(text)
    return path
