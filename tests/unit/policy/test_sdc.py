"""SDC: the profile check and cell suppression (margins never give a suppressed cell back)."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from safeflow.errors import InvalidParameter
from safeflow.policy import suppress_table
from safeflow.policy.sdc import CHECKS, PROFILES, check


def _rank(rows: list[list[Fraction]]) -> int:
    """Rank by exact Gaussian elimination over the rationals."""
    m = [r[:] for r in rows]
    rank, cols = 0, len(m[0]) if m else 0
    for c in range(cols):
        pivot = next((i for i in range(rank, len(m)) if m[i][c] != 0), None)
        if pivot is None:
            continue
        m[rank], m[pivot] = m[pivot], m[rank]
        for i in range(len(m)):
            if i != rank and m[i][c] != 0:
                f = m[i][c] / m[rank][c]
                m[i] = [a - f * b for a, b in zip(m[i], m[rank], strict=True)]
        rank += 1
    return rank


def recoverable(table: pd.DataFrame) -> list[tuple[object, object]]:
    """Suppressed cells that the published row and column totals determine exactly.

    The unknowns are the suppressed cells; each published margin (every row and column
    total; the grand total is their sum) gives one linear equation in them. A cell is
    determined iff its unit vector lies in the row space of those equations.
    """
    mask = table.isna().to_numpy()
    cells = [tuple(c) for c in np.argwhere(mask)]
    if not cells:
        return []
    nr, nc = mask.shape
    eqs = [[Fraction(int(cell[0] == i)) for cell in cells] for i in range(nr)]
    eqs += [[Fraction(int(cell[1] == j)) for cell in cells] for j in range(nc)]
    base = _rank(eqs)
    out = []
    for k, (i, j) in enumerate(cells):
        unit = [Fraction(int(m == k)) for m in range(len(cells))]
        if _rank([*eqs, unit]) == base:
            out.append((table.index[i], table.columns[j]))
    return out


def _assert_protected(counts: pd.DataFrame, profile: str) -> None:
    r = suppress_table(counts, profile)
    p = PROFILES[profile]
    t = r.table
    assert t.shape == counts.shape and list(t.index) == list(counts.index)
    assert list(t.columns) == list(counts.columns)
    suppressed = {(i, j) for i in t.index for j in t.columns if pd.isna(t.loc[i, j])}
    assert suppressed == set(r.primary) | set(r.secondary)
    assert not set(r.primary) & set(r.secondary)
    for i in counts.index:
        for j in counts.columns:
            fails = p.cell_fails(int(counts.loc[i, j]))
            assert fails == ((i, j) in r.primary)
            if (i, j) not in suppressed:
                assert t.loc[i, j] == counts.loc[i, j]
    assert recoverable(t) == [], f"margins recover suppressed cells of\n{counts}"


def test_classic_example() -> None:
    t = pd.DataFrame({"a": [3, 20, 30], "b": [25, 22, 40]}, index=["x", "y", "z"])
    r = suppress_table(t)
    assert r.primary == [("x", "a")]
    assert r.secondary == [("x", "b"), ("y", "a"), ("y", "b")]  # smallest partners
    assert str(r.table.dtypes["a"]) == "Int64" and r.table.loc["z", "b"] == 40
    _assert_protected(t, "acro")


@pytest.mark.parametrize(
    "rows",
    [
        # tables where the classic "two per line" heuristic alone leaves a determined cell
        [[15, 60, 2, 30, 20], [2, 30, 2, 30, 15], [60, 2, 40, 2, 12], [15, 60, 20, 12, 12]],
        [
            [30, 2, 20, 5, 40],
            [15, 60, 5, 60, 40],
            [15, 40, 20, 20, 60],
            [2, 40, 12, 12, 60],
            [30, 15, 15, 40, 2],
        ],
        [[12, 30, 5, 5], [20, 20, 5, 12], [2, 60, 2, 12], [5, 15, 60, 30], [12, 5, 30, 15]],
    ],
)
def test_bridges_left_by_the_classic_heuristic_are_closed(rows: list[list[int]]) -> None:
    _assert_protected(pd.DataFrame(rows), "acro")


def test_zeros_are_primary_only_where_disclosive() -> None:
    t = pd.DataFrame([[0, 20, 30], [15, 25, 35]], columns=["p", "q", "r"])
    assert suppress_table(t, "ohdsi").primary == []
    assert suppress_table(t, "acro").primary == [(0, "p")]
    _assert_protected(t, "acro")


def test_single_row_and_single_column_tables() -> None:
    row = pd.DataFrame([[3, 20, 30]], columns=["a", "b", "c"])
    r = suppress_table(row)
    assert r.primary == [(0, "a")] and r.secondary == [(0, "b")]
    col = pd.DataFrame({"n": [3, 20, 30]})
    r = suppress_table(col)
    assert r.primary == [(0, "n")] and r.secondary == [(1, "n")]
    one = pd.DataFrame({"n": [3]})
    assert suppress_table(one).primary == [(0, "n")] and suppress_table(one).secondary == []


def test_nothing_to_suppress_and_empty() -> None:
    t = pd.DataFrame([[10, 11], [12, 13]])
    r = suppress_table(t)
    assert r.primary == [] and r.secondary == [] and r.table.equals(t.astype("Int64"))
    assert suppress_table(pd.DataFrame()).primary == []


@pytest.mark.parametrize(
    "bad",
    [
        pd.DataFrame([[1.5, 2]]),
        pd.DataFrame([[-1, 2]]),
        pd.DataFrame([["x", 2]]),
        pd.DataFrame([[np.nan, 2]]),
        [[1, 2]],
    ],
)
def test_bad_counts(bad: object) -> None:
    with pytest.raises(InvalidParameter, match="counts must"):
        suppress_table(bad)  # type: ignore[arg-type]


COUNTS = st.sampled_from([0, 1, 2, 3, 4, 5, 9, 10, 11, 20, 35, 80])


@settings(max_examples=120, deadline=None)
@given(
    shape=st.tuples(st.integers(2, 5), st.integers(2, 5)),
    data=st.data(),
    profile=st.sampled_from(["acro", "ohdsi", "datashield"]),
)
def test_margins_never_recover_a_suppressed_cell(
    shape: tuple[int, int], data: st.DataObject, profile: str
) -> None:
    values = data.draw(st.lists(COUNTS, min_size=shape[0] * shape[1], max_size=shape[0] * shape[1]))
    counts = pd.DataFrame(
        np.array(values).reshape(shape),
        index=[f"r{i}" for i in range(shape[0])],
        columns=[f"c{j}" for j in range(shape[1])],
    )
    _assert_protected(counts, profile)
    again = suppress_table(counts, profile)
    assert again.primary == suppress_table(counts, profile).primary  # deterministic


# --- check() ----------------------------------------------------------------------------


def test_check_names_every_failure_in_order() -> None:
    sdc = {
        "min_cell": 2,
        "has_zero": True,
        "nk_top2_share": 0.95,
        "p_ratio": 0.01,
        "residual_dof": 3,
        "min_event_cell": 1,
        "min_at_risk_cell": 4,
    }
    assert check(sdc, "acro").failures == (
        "min_cell",
        "zeros",
        "dominance",
        "p_ratio",
        "residual_dof",
        "survival_event",
        "survival_at_risk",
    )
    assert check(sdc, "ohdsi").failures == ("min_cell", "survival_event", "survival_at_risk")
    assert set(check(sdc, "acro").as_map()) == set(CHECKS)


@pytest.mark.parametrize(
    "kind,sdc,profile,unmeasured",
    [
        ("freq_table", {"min_cell": 12}, "acro", True),  # has_zero needed where zeros disclose
        ("freq_table", {"min_cell": 12}, "ohdsi", False),
        ("survival", {"min_event_cell": 12, "min_at_risk_cell": 30}, "acro", False),
        ("survival", {}, "datashield", True),
        ("regression", {"n_params": 3, "n": 100}, "acro", True),
        ("regression", {"residual_dof": 40}, "datashield", True),
        ("regression", {"params_per_n": 0.1}, "datashield", False),
        ("regression", {}, "ohdsi", False),
        ("model", {}, "acro", False),
    ],
)
def test_unmeasured(kind: str, sdc: dict, profile: str, unmeasured: bool) -> None:
    assert ("unmeasured" in check(sdc, profile, kind=kind).failures) is unmeasured


def test_params_per_n_fallback_is_exact() -> None:
    assert check({"params_per_n": 0.33}, "datashield").passed
    assert not check({"params_per_n": 0.3301}, "datashield").passed


def test_unknown_profile() -> None:
    with pytest.raises(InvalidParameter, match="unknown SDC profile"):
        check({}, "strict")
