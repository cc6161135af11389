"""The policy layer: may this output leave, under every origin's law and disclosure control?

* :func:`evaluate` decides one candidate output from its facts (POLICY.md) with versioned
  YAML packs of CEL rules (:func:`default_packs`, :func:`load_pack`) and returns a
  :class:`Decision` whose :class:`Outcome` is the most restrictive of all fired rules.
* :func:`normalize_facts` validates facts and fills the documented defaults
  (:mod:`safeflow.policy.facts` has the table).
* :func:`gate_check` decides which message protections may leave a site's jurisdiction
  during a run (the packs' ``export_gate:`` rules).
* :func:`suppress_table` applies a disclosure-control profile to a table of counts.
* :class:`ReleaseLedger` refuses releases that could be differenced against earlier ones.

Importing this package reads no file and opens no database.

Examples
--------
>>> import safeflow.policy as policy
>>> d = policy.evaluate({
...     "output": {"kind": "freq_table", "protocol": "masking",
...                "sdc": {"min_cell": 10, "has_zero": False, "nk_top2_share": 0.4}},
...     "origin": [{"site": "amsterdam", "jurisdiction": "NL", "classes": ["health"]}],
...     "destination": {"jurisdiction": "CN"}})
>>> d.outcome, d.exportable
(<Outcome.ALLOW: 'ALLOW'>, True)
"""

from safeflow.policy.engine import Decision, evaluate
from safeflow.policy.facts import normalize_facts
from safeflow.policy.gate import GateDecision, gate_check
from safeflow.policy.ledger import Population, ReleaseLedger
from safeflow.policy.outcome import Outcome
from safeflow.policy.packs import Pack, default_packs, load_pack
from safeflow.policy.sdc import SuppressionResult, suppress_table

__all__ = [
    "Decision",
    "GateDecision",
    "Outcome",
    "Pack",
    "Population",
    "ReleaseLedger",
    "SuppressionResult",
    "default_packs",
    "evaluate",
    "gate_check",
    "load_pack",
    "normalize_facts",
    "suppress_table",
]
