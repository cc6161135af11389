"""The sites' privacy budgets in a federation: one ledger per site, debited before a release.

Each site keeps its own :class:`~safeflow.dp.budget.BudgetLedger` (a SQLite file in its
state directory) for its own dataset, and enforces it for its own data: a DP release
debits every contributing site, and a site whose budget does not cover it refuses with
:class:`~safeflow.errors.BudgetExceeded` naming what is left.

**No half-spent budget.** Before any debit, every site's remaining budget is checked
(a read, nothing spent): a refusal found there spends nothing anywhere. The debits then
follow site by site; only a concurrent analyst spending the same site between the check
and the debit can make a later site refuse after earlier ones paid. That error says so,
and retrying with the same ``query_id`` charges only the sites that have not paid (a
debit is idempotent per query id), so nothing is lost and nothing is paid twice.

**No free second draw.** A query id whose release was made is refused on a retry (a second
noise draw of the same statistic would average the noise away without paying for it).

Examples
--------
>>> import tempfile, pathlib
>>> from safeflow.dp import DP
>>> acc = SiteAccounts(pathlib.Path(tempfile.mkdtemp()), {"a": ("a", 1), "b": ("b", "0.5")})
>>> receipts = acc.debit("q1", DP(0.5))
>>> acc.budget_facts(receipts)
{'epsilon_total': '0.5', 'epsilon_spent': '0', 'epsilon_requested': '0.5'}
>>> acc.debit("q2", DP(0.1))
Traceback (most recent call last):
...
safeflow.errors.BudgetExceeded: privacy budget exceeded at site 'b': dataset 'b' has 0 ε left of 1/2; requested 1/10. Nothing was spent at any site; ask for at most 0, or raise the site's total (a governance decision).
"""  # noqa: E501

from __future__ import annotations

from collections.abc import Mapping
from fractions import Fraction
from pathlib import Path
from typing import Any

from safeflow.dp.budget import BudgetLedger, Receipt
from safeflow.dp.spec import DP, exact
from safeflow.errors import BudgetExceeded, InvalidParameter
from safeflow.policy._exact import canonical


class SiteAccounts:
    """The budget ledgers of a federation's sites.

    Parameters
    ----------
    state_dir : Path
        The federation's state directory; site ``s`` keeps ``sites/s/budget.sqlite``.
    budgets : mapping
        ``{site: (dataset, epsilon_total)}`` or ``{site: (dataset, (epsilon, delta))}``
        for the sites that declared a budget.
    """

    def __init__(self, state_dir: Path, budgets: Mapping[str, tuple[str, Any]]) -> None:
        self._ledgers: dict[str, tuple[BudgetLedger, str]] = {}
        for site, (dataset, total) in budgets.items():
            eps, delta = total if isinstance(total, tuple) else (total, 0)
            path = Path(state_dir) / "sites" / site / "budget.sqlite"
            path.parent.mkdir(parents=True, exist_ok=True)
            ledger = BudgetLedger(path)
            rows = {r["dataset"]: r for r in ledger.show()}
            want = (exact(eps, "budget"), exact(delta, "budget delta"))
            have = rows.get(dataset)
            if have is None or (have["total"], have["delta_total"]) != want:
                ledger.set_total(dataset, want[0], want[1])
            self._ledgers[site] = (ledger, dataset)

    def has(self, site: str) -> bool:
        """True when the site declared a budget."""
        return site in self._ledgers

    def debit(self, query_id: str, dp: DP, sites: list[str] | None = None) -> list[Receipt]:
        """Debit ``dp``'s ε and δ at every site (all or nothing), before any value leaves.

        Raises
        ------
        InvalidParameter
            A site has no budget, or the query was already released.
        BudgetExceeded
            A site's budget does not cover the query (nothing spent anywhere).
        """
        names = list(self._ledgers) if sites is None else sites
        missing = [s for s in names if s not in self._ledgers]
        if missing:
            raise InvalidParameter(
                f"site {missing[0]!r} has no privacy budget, so it cannot take part in a DP "
                "release; declare one with sf.Site(..., budget=<total ε>)")
        for s in names:
            ledger, ds = self._ledgers[s]
            if ledger.released(ds, query_id):
                raise InvalidParameter(
                    f"query {query_id!r} was already released from site {s!r}; a second noise "
                    "draw of the same statistic would spend privacy without paying for it. "
                    "Use the earlier release, or a new query_id (which is charged again)")
            if any(r.query_id == query_id for r in ledger.receipts(ds)):
                continue  # a retry: already paid here, not charged again
            left = ledger.remaining(ds)
            if dp.epsilon > left.epsilon or dp.delta > left.delta:
                total = next(r for r in ledger.show() if r["dataset"] == ds)
                raise BudgetExceeded(
                    f"privacy budget exceeded at site {s!r}: dataset {ds!r} has "
                    f"{left.epsilon} ε left of {total['total']}; requested {dp.epsilon}"
                    + (f" (δ {dp.delta}, {left.delta} left)" if dp.delta else "")
                    + f". Nothing was spent at any site; ask for at most {left.epsilon}, or "
                    "raise the site's total (a governance decision).")
        receipts = []
        for i, s in enumerate(names):
            ledger, ds = self._ledgers[s]
            try:
                receipts.append(ledger.spend(ds, query_id, dp.epsilon, dp.delta))
            except BudgetExceeded as e:
                paid = ", ".join(names[:i]) or "none"
                raise BudgetExceeded(
                    f"{e} Another query spent site {s!r} at the same moment; sites already "
                    f"debited for query {query_id!r}: {paid}. Retry with query_id="
                    f"{query_id!r}: those sites are not charged again.") from None
        return receipts

    def mark_released(self, query_id: str, receipts: list[Receipt]) -> None:
        """Record at each site that the query's noised value left customs."""
        by_ds = {ds: ledger for ledger, ds in self._ledgers.values()}
        for r in receipts:
            by_ds[r.dataset].mark_released(r.dataset, query_id)

    @staticmethod
    def budget_facts(receipts: list[Receipt]) -> dict[str, str]:
        """``budget`` facts of the binding site (least left after this query), before it."""
        r = min(receipts, key=lambda x: (x.epsilon_total - x.epsilon_spent, x.dataset))
        before = r.epsilon_spent - r.epsilon
        return {"epsilon_total": _dec(r.epsilon_total), "epsilon_spent": _dec(before),
                "epsilon_requested": _dec(r.epsilon)}

    def show(self) -> dict[str, list[dict[str, Any]]]:
        """``{site: BudgetLedger.show() rows}`` for the sites with a budget."""
        return {s: ledger.show() for s, (ledger, _) in self._ledgers.items()}

    def close(self) -> None:
        """Close every ledger connection."""
        for ledger, _ in self._ledgers.values():
            ledger.close()


def _dec(x: Fraction) -> str:
    return canonical(x)


__all__ = ["SiteAccounts"]
