"""The protocols compared, and what each party sees under each (from the protocol specs).

A :class:`Variant` is one way of computing an estimand: the pooled plaintext fit of an
established library (the peer every other row is measured against), a federated run
under ``plain``, ``masking``, ``he`` with BFV or with CKKS, or a differentially private
release (``dp=sf.DP(ε, mode=...)``, central or local, over ``masking``).

:func:`reveals` reads each protocol's executable spec (``protocols/*.yaml`` through
:func:`safeflow.protocols.load_spec`) and lists, per receiving party, what every message of
a run reveals to it: the text the certificate's spec hash commits to.

Examples
--------
>>> [v.label for v in PROTOCOL_VARIANTS]
['pooled', 'plain', 'masking', 'he-bfv', 'he-ckks']
>>> dp_variants((1,))[1].label
'dp-local ε=1'
>>> reveals("plain")["aggregator"][-1]
"plain_input (site->aggregator): the site's statistics, in the clear"
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from safeflow.protocols import load_spec

#: the ε grid of the DP rows
EPSILONS: tuple[float, ...] = (0.1, 0.5, 1.0, 2.0, 5.0)
#: the secure sum the DP rows run over
DP_PROTOCOL = "masking"


@dataclass(frozen=True)
class Variant:
    """One way of computing an estimand.

    Attributes
    ----------
    label : str
        Row label in the report.
    protocol : str or None
        ``None`` for the pooled plaintext fit; else the safeflow protocol name.
    params : mapping
        Protocol parameters (``{"scheme": "ckks"}`` selects CKKS under ``he``).
    epsilon : float or None
        ε of a DP release.
    mode : {"central", "local"} or None
        DP mode.
    """

    label: str
    protocol: str | None
    params: Mapping[str, Any] = field(default_factory=dict)
    epsilon: float | None = None
    mode: str | None = None

    @property
    def is_dp(self) -> bool:
        """True for a differentially private release."""
        return self.epsilon is not None

    @property
    def family(self) -> str:
        """The label without ε (``"dp-central"``), for grouping rows and plot lines."""
        return self.label.split(" ")[0]


POOLED = Variant("pooled", None)
PROTOCOL_VARIANTS: tuple[Variant, ...] = (
    POOLED,
    Variant("plain", "plain"),
    Variant("masking", "masking"),
    Variant("he-bfv", "he", {"scheme": "bfv"}),
    Variant("he-ckks", "he", {"scheme": "ckks"}),
)
#: the protocols of the scaling curves (the pooled peer is added by the scaling module)
SECURE_SUMS: tuple[Variant, ...] = PROTOCOL_VARIANTS[1:]


def dp_variants(epsilons: Sequence[float] = EPSILONS) -> list[Variant]:
    """Central and local DP releases over :data:`DP_PROTOCOL`, one per ε.

    Examples
    --------
    >>> [v.label for v in dp_variants((0.5,))]
    ['dp-central ε=0.5', 'dp-local ε=0.5']
    """
    out = []
    for eps in epsilons:
        for mode in ("central", "local"):
            out.append(Variant(f"dp-{mode} ε={eps:g}", DP_PROTOCOL, epsilon=eps, mode=mode))
    return out


def reveals(protocol: str) -> dict[str, list[str]]:
    """Per receiving role, what each message of ``protocol``'s spec reveals to it.

    Every message's ``reveals`` mapping (role -> text) is read from the spec; entries are
    ``"stage (sender->receiver): text"`` in the spec's order.

    Examples
    --------
    >>> sorted(reveals("he"))
    ['aggregator', 'customs', 'site']
    """
    out: dict[str, list[str]] = {}
    for m in load_spec(protocol).messages:
        for role, text in m.reveals.items():
            out.setdefault(role, []).append(f"{m.stage} ({m.sender}->{m.receiver}): {text}")
    return out


#: what the parties see beyond the secure sum's spec, per variant family
EXTRA_VIEWS: dict[str, dict[str, str]] = {
    "pooled": {
        "pooling party": "every row of every site (the rows are exported to one place)",
        "analyst": "the exact estimate",
    },
    "dp-central": {
        "customs": "the exact aggregate (from the secure sum), before noising it once",
        "analyst": "only the noised release, with its ε, mechanism and scale",
    },
    "dp-local": {
        "customs": "only the sum of the sites' noised statistics (sites noise before the "
                   "secure sum; customs adds nothing)",
        "analyst": "only the noised release, with its ε, mechanism and scale",
    },
}


def views(variant: Variant) -> dict[str, list[str]]:
    """Everything each party sees under ``variant``: the spec's reveals plus DP/pooled notes.

    Examples
    --------
    >>> views(POOLED)["pooling party"]
    ['every row of every site (the rows are exported to one place)']
    >>> "analyst" in views(Variant("masking", "masking"))
    True
    """
    out: dict[str, list[str]] = {}
    if variant.protocol is not None:
        out = {k: list(v) for k, v in reveals(variant.protocol).items()}
        if variant.params.get("scheme") == "ckks":
            out.setdefault("customs", []).append(
                "CKKS: the decrypted total is noise-flooded before release (approximate)")
        out.setdefault("analyst", []).append("the certified release (exact for plain, "
                                             "masking and BFV)")
    for role, text in EXTRA_VIEWS.get(variant.family, {}).items():
        if role == "analyst":
            out["analyst"] = [text]
        else:
            out.setdefault(role, []).append(text)
    return out


__all__ = ["DP_PROTOCOL", "EPSILONS", "POOLED", "PROTOCOL_VARIANTS", "SECURE_SUMS", "Variant",
           "dp_variants", "reveals", "views"]
