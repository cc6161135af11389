"""Budget algebra of the ledger: exact, inclusive, idempotent, never overspent."""

from __future__ import annotations

import sqlite3
import threading
import uuid
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from safeflow.dp import BudgetLedger, Receipt
from safeflow.errors import AuditError, BudgetExceeded, InvalidParameter


@pytest.fixture
def ledger(tmp_path: Path) -> BudgetLedger:
    return BudgetLedger(tmp_path / "budget.sqlite")


def test_point_one_plus_point_two_fits_point_three(ledger: BudgetLedger) -> None:
    ledger.set_total("d", 0.3)
    ledger.spend("d", "a", 0.1)
    r = ledger.spend("d", "b", 0.2)
    assert r.epsilon_spent == Fraction(3, 10) == r.epsilon_total
    assert ledger.remaining("d").epsilon == 0
    with pytest.raises(BudgetExceeded):
        ledger.spend("d", "c", "1/10**9".replace("10**9", "1000000000"))


def test_policy_worked_example_7(ledger: BudgetLedger) -> None:
    """ε total 1.0, spent 0.8: 0.3 is refused, 0.2 is allowed (exactly 1.0)."""
    ledger.set_total("d", 1.0)
    ledger.spend("d", "q0", 0.8)
    with pytest.raises(BudgetExceeded):
        ledger.spend("d", "q1", 0.3)
    assert ledger.spend("d", "q2", 0.2).remaining.epsilon == 0


@pytest.mark.parametrize(
    ("budget", "eps"),
    [
        (Fraction(1), Fraction(1, 100)),
        (Fraction(1), 0.01),
        (Fraction(3, 10), 0.1),
        (Fraction(7, 30), Fraction(1, 300)),
        (Fraction(2, 10), Decimal("0.003")),
    ],
)
def test_identical_queries_are_refused_exactly_at_floor_b_over_eps_plus_one(
    ledger: BudgetLedger, budget: Fraction, eps: object
) -> None:
    ledger.set_total("d", budget)
    e = Fraction(str(eps)) if not isinstance(eps, Fraction) else eps
    fit = int(budget // e)
    for i in range(fit):
        ledger.spend("d", f"q{i}", eps)
    with pytest.raises(BudgetExceeded):
        ledger.spend("d", f"q{fit}", eps)  # query number floor(B/ε) + 1
    assert ledger.show()[0]["queries"] == fit
    assert ledger.show()[0]["spent"] == fit * e


def test_1000_identical_queries(ledger: BudgetLedger) -> None:
    """1,000 queries of ε = B/k with k = 700: refused exactly at the 701st."""
    ledger.set_total("d", "0.7")
    eps = Fraction(7, 10) / 700
    outcomes = []
    for i in range(1000):
        try:
            ledger.spend("d", f"q{i}", eps)
            outcomes.append(True)
        except BudgetExceeded:
            outcomes.append(False)
    assert outcomes == [True] * 700 + [False] * 300


def test_refusal_message_names_what_is_left(ledger: BudgetLedger) -> None:
    ledger.set_total("lung@beijing", 1)
    ledger.spend("lung@beijing", "q1", "4/5")
    with pytest.raises(BudgetExceeded) as e:
        ledger.spend("lung@beijing", "q2", 0.3)
    msg = str(e.value)
    assert "dataset 'lung@beijing' has 1/5 ε left of 1; requested 3/10" in msg
    assert "Nothing was spent" in msg
    assert e.value.remaining == Fraction(1, 5)  # type: ignore[attr-defined]
    assert isinstance(e.value, PermissionError)
    assert ledger.remaining("lung@beijing").epsilon == Fraction(1, 5)  # nothing spent
    assert [r.query_id for r in ledger.receipts("lung@beijing")] == ["q1"]


def test_delta_is_budgeted_too(ledger: BudgetLedger) -> None:
    ledger.set_total("d", 10, delta_total="1e-5")
    ledger.spend("d", "a", 1, delta=1e-6)
    with pytest.raises(BudgetExceeded, match="δ left of 1/100000; requested 1/10000"):
        ledger.spend("d", "b", 1, delta="1e-4")
    assert ledger.remaining("d") == (Fraction(9), Fraction(9, 10**6))


@pytest.mark.parametrize(
    "bad",
    [
        0,
        -1,
        -0.1,
        float("nan"),
        float("inf"),
        -float("inf"),
        "nan",
        "inf",
        Decimal("NaN"),
        None,
        True,
        "x",
    ],
)
def test_bad_epsilon_is_rejected(ledger: BudgetLedger, bad: object) -> None:
    ledger.set_total("d", 1)
    with pytest.raises(InvalidParameter, match="epsilon must be a finite number > 0"):
        ledger.spend("d", "q", bad)
    assert ledger.remaining("d").epsilon == 1 and ledger.receipts("d") == []


@pytest.mark.parametrize("bad", [-1e-9, float("nan"), 1, 2])
def test_bad_delta_is_rejected(ledger: BudgetLedger, bad: object) -> None:
    ledger.set_total("d", 1)
    with pytest.raises(InvalidParameter, match="delta must be"):
        ledger.spend("d", "q", 0.1, delta=bad)


def test_bad_totals_and_names(ledger: BudgetLedger) -> None:
    for bad in (0, -1, float("nan"), float("inf")):
        with pytest.raises(InvalidParameter, match="epsilon_total"):
            ledger.set_total("d", bad)
    with pytest.raises(InvalidParameter, match="dataset must be"):
        ledger.set_total("", 1)
    with pytest.raises(InvalidParameter, match="query_id must be"):
        ledger.set_total("d", 1) or ledger.spend("d", "", 0.1)
    with pytest.raises(InvalidParameter, match="no privacy budget"):
        ledger.spend("unknown", "q", 0.1)
    with pytest.raises(InvalidParameter, match="no privacy budget"):
        ledger.remaining("unknown")
    with pytest.raises(InvalidParameter, match="timeout"):
        BudgetLedger(ledger.path, timeout=0)


def test_retry_is_not_charged_twice(ledger: BudgetLedger) -> None:
    ledger.set_total("d", 1)
    r1 = ledger.spend("d", "q", "0.5")
    r2 = ledger.spend("d", "q", 0.5)
    assert r2.replayed and not r1.replayed
    assert (r2.receipt_id, r2.epsilon_spent, r2.created_at) == (
        r1.receipt_id,
        r1.epsilon_spent,
        r1.created_at,
    )
    assert ledger.remaining("d").epsilon == Fraction(1, 2)
    # a retry is answered even when the budget is now exhausted
    ledger.spend("d", "other", "0.5")
    assert ledger.spend("d", "q", "1/2").receipt_id == r1.receipt_id


def test_same_id_with_different_epsilon_is_an_error(ledger: BudgetLedger) -> None:
    ledger.set_total("d", 1)
    ledger.spend("d", "q", 0.5)
    with pytest.raises(InvalidParameter, match="already charged ε 1/2"):
        ledger.spend("d", "q", 0.25)
    with pytest.raises(InvalidParameter, match="already charged"):
        ledger.spend("d", "q", 0.5, delta=1e-9)
    assert ledger.remaining("d").epsilon == Fraction(1, 2)


def test_set_total_cannot_go_below_spent(ledger: BudgetLedger) -> None:
    ledger.set_total("d", 1)
    ledger.spend("d", "q", 0.6)
    with pytest.raises(InvalidParameter, match="cannot be set below"):
        ledger.set_total("d", 0.5)
    ledger.set_total("d", 2)
    assert ledger.remaining("d").epsilon == Fraction(7, 5)


def test_values_are_stored_as_exact_fraction_text(ledger: BudgetLedger) -> None:
    ledger.set_total("d", "0.3")
    ledger.spend("d", "q", 0.1)
    con = sqlite3.connect(ledger.path)
    assert con.execute("SELECT epsilon_total, epsilon_spent FROM budgets").fetchone() == (
        "3/10",
        "1/10",
    )
    assert con.execute("SELECT epsilon FROM debits").fetchone() == ("1/10",)
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    con.close()


def test_persistence_across_instances(tmp_path: Path) -> None:
    path = tmp_path / "b.sqlite"
    BudgetLedger(path).set_total("d", 1)
    BudgetLedger(path).spend("d", "q", "1/3")
    again = BudgetLedger(path)
    assert again.remaining("d").epsilon == Fraction(2, 3)
    assert again.show()[0]["queries"] == 1


def test_show_and_receipts(ledger: BudgetLedger) -> None:
    ledger.set_total("b", 2)
    ledger.set_total("a", 1, delta_total=1e-6)
    r = ledger.spend("a", "q1", "1/4", delta=1e-7)
    rows = ledger.show()
    assert [x["dataset"] for x in rows] == ["a", "b"]
    assert rows[0] == {
        "dataset": "a",
        "total": 1,
        "spent": Fraction(1, 4),
        "remaining": Fraction(3, 4),
        "delta_total": Fraction(1, 10**6),
        "delta_spent": Fraction(1, 10**7),
        "delta_remaining": Fraction(9, 10**7),
        "queries": 1,
    }
    assert ledger.receipts("a") == [r]
    assert r.to_facts()["epsilon"] == "1/4"
    assert isinstance(r, Receipt)


def test_verify_detects_tampering(ledger: BudgetLedger) -> None:
    ledger.set_total("d", 1)
    ledger.spend("d", "q", "1/2")
    ledger.verify()
    con = sqlite3.connect(ledger.path)
    con.execute("UPDATE budgets SET epsilon_spent='1/4'")
    con.commit()
    with pytest.raises(AuditError, match="debits add up to"):
        ledger.verify()
    con.execute("UPDATE budgets SET epsilon_spent='0.5'")
    con.commit()
    con.close()
    with pytest.raises(AuditError, match="malformed"):
        ledger.remaining("d")


def test_threads_in_one_process_never_overspend(ledger: BudgetLedger) -> None:
    ledger.set_total("d", 1)
    granted: list[int] = []
    barrier = threading.Barrier(32)

    def run(t: int) -> None:
        barrier.wait()
        for j in range(4):
            try:
                ledger.spend("d", f"{t}-{j}", "0.03")
                granted.append(1)
            except BudgetExceeded:
                pass

    threads = [threading.Thread(target=run, args=(t,)) for t in range(32)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert len(granted) == 33  # floor(1 / 0.03)
    ledger.verify()


_eps = st.fractions(min_value=Fraction(1, 1000), max_value=Fraction(1), max_denominator=1000)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    total=st.fractions(min_value=Fraction(1, 10), max_value=Fraction(3), max_denominator=100),
    requests=st.lists(st.tuples(st.integers(0, 15), _eps), min_size=1, max_size=40),
)
def test_property_never_overspend_and_idempotent(
    tmp_path: Path, total: Fraction, requests: list[tuple[int, Fraction]]
) -> None:
    """Any sequence of (query id, ε) requests, with retries: the ledger agrees with a model
    that grants exactly when spent + ε ≤ total and charges every id at most once."""
    ledger = BudgetLedger(tmp_path / f"{uuid.uuid4().hex}.sqlite")
    ledger.set_total("d", total)
    charged: dict[int, Fraction] = {}
    spent = Fraction(0)
    for qid, eps in requests:
        if qid in charged:
            if charged[qid] == eps:
                assert ledger.spend("d", str(qid), eps).replayed
            else:
                with pytest.raises(InvalidParameter):
                    ledger.spend("d", str(qid), eps)
            continue
        if spent + eps <= total:
            r = ledger.spend("d", str(qid), eps)
            spent += eps
            charged[qid] = eps
            assert r.epsilon_spent == spent and not r.replayed
        else:
            with pytest.raises(BudgetExceeded):
                ledger.spend("d", str(qid), eps)
        assert ledger.remaining("d").epsilon == total - spent >= 0
    assert ledger.show()[0]["queries"] == len(charged)
    ledger.verify()
