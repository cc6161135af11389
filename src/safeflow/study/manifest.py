"""The "what was revealed to whom" manifest of a study run.

Each row says, for one analysis, which party (``aggregator``, ``site``, ``customs``, the
analyst at the destination) learned what from one kind of message, whether that message
crossed a border, how it was protected, and how many bytes the run moved at that stage.
What a message reveals comes from the protocol spec (``protocols/<name>.yaml``, the
executable contract sites and regulators read); which stages actually ran and their bytes
come from the run itself: the release's transport log (:attr:`Release.log`) or, for an
analysis that customs denied (no release), the message entries the sites' audit logs
recorded while it ran. Two rows per analysis describe customs (the one place the
unprotected total exists) and the analyst (what was released, or nothing).

Examples
--------
>>> rows = manifest_rows("t1", "masking", {"masked_input": (1, 2276, 1137)},
...                      destination="NL", released="ALLOW")
>>> [(r["party"], r["stage"]) for r in rows]
[('site', 'masked_input'), ('aggregator', 'masked_input'), ('customs', 'aggregate'), ('analyst (NL)', 'release')]
>>> rows[1]["reveals"]
"nothing about the site's statistics (uniformly masked mod 2^64)"
"""  # noqa: E501

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from safeflow.protocols import load_spec

#: the columns of a manifest row, in order (the report uses the first five)
COLUMNS = ("party", "message", "crosses_border", "protection", "reveals", "analysis",
           "protocol", "stage", "sender", "receiver", "content", "exchanges", "stage_bytes",
           "stage_bytes_cross_border")

Stages = Mapping[str, tuple[int, int, int]]


def stages_from_log(log: Iterable[Any]) -> dict[str, tuple[int, int, int]]:
    """``stage -> (exchanges, bytes, bytes across borders)`` from a release's transport log.

    Examples
    --------
    >>> from types import SimpleNamespace as R
    >>> stages_from_log([R(stage="unmask", bytes_total=10, bytes_cross_border=4)] * 2)
    {'unmask': (2, 20, 8)}
    """
    out: dict[str, tuple[int, int, int]] = {}
    for e in log:
        n, b, x = out.get(e.stage, (0, 0, 0))
        out[e.stage] = (n + 1, b + int(e.bytes_total), x + int(e.bytes_cross_border))
    return out


def stages_from_audit(entries: Iterable[Mapping[str, Any]]) -> dict[str, tuple[int, int, int]]:
    """The same from sites' audit ``message`` entries (the messages sites sent abroad).

    Only what sites sent is recorded there, so the byte counts are the sites' side.

    Examples
    --------
    >>> stages_from_audit([{"kind": "message", "stage": "masked_input", "size": 600}])
    {'masked_input': (1, 600, 600)}
    """
    out: dict[str, tuple[int, int, int]] = {}
    for e in entries:
        if e.get("kind") != "message":
            continue
        n, b, x = out.get(str(e["stage"]), (0, 0, 0))
        size = int(e.get("size", 0))
        out[str(e["stage"])] = (n + 1, b + size, x + size)
    return out


def manifest_rows(analysis: str, protocol: str, stages: Stages, *, destination: str,
                  released: str | None, dp: Mapping[str, Any] | None = None,
                  rule: str | None = None, crossed: bool = True) -> list[dict[str, Any]]:
    """Manifest rows of one analysis.

    Parameters
    ----------
    analysis : str
        The analysis id.
    protocol : str
        The protocol it ran under (its spec says what each message reveals).
    stages : mapping
        ``stage -> (exchanges, bytes, bytes across borders)`` of the stages that ran.
    destination : str
        The analyst's jurisdiction.
    released : str or None
        The decision's outcome when released; ``None`` when denied.
    dp : mapping, optional
        ``{"epsilon": ..., "delta": ...}`` of a DP release.
    rule : str, optional
        The rule that denied it.
    crossed : bool
        Whether any data left a jurisdiction (false when every site is in the destination).

    Returns
    -------
    list of dict
        Rows with the keys in :data:`COLUMNS`.

    Examples
    --------
    >>> rows = manifest_rows("km", "he", {"encrypted_input": (1, 9, 9)}, destination="NL",
    ...                      released=None, rule="SDC-acro-survival")
    >>> rows[2]["party"], rows[2]["reveals"]
    ('customs', 'only the decrypted total (BFV: exact; CKKS: noise-flooded before release)')
    >>> rows[-1]["reveals"]
    'nothing: customs denied the release (SDC-acro-survival)'
    """
    spec = load_spec(protocol)
    rows: list[dict[str, Any]] = []
    for m in spec.messages:
        if m.stage not in stages:
            continue
        n, total, cross = stages[m.stage]
        for party, text in m.reveals.items():
            rows.append({
                "party": party, "message": f"{m.stage}: {m.sender} -> {m.receiver}",
                "crosses_border": bool(m.crosses_border and cross > 0),
                "protection": " or ".join(m.protections), "reveals": text,
                "analysis": analysis, "protocol": protocol, "stage": m.stage,
                "sender": m.sender, "receiver": m.receiver, "content": m.content,
                "exchanges": n, "stage_bytes": total, "stage_bytes_cross_border": cross})
    noise = "" if dp is None else f", then adds DP noise (ε={dp.get('epsilon')})"
    base = {"analysis": analysis, "protocol": protocol, "sender": "customs", "exchanges": 0,
            "stage_bytes": 0, "stage_bytes_cross_border": 0}
    total = "the total of the sites' statistics, before disclosure control" + noise
    if not stages and released is None:  # refused before any message (e.g. over budget)
        total = "nothing: the run stopped before any statistic was computed"
    rows.append({
        **base, "party": "customs", "message": "aggregate: aggregator -> customs",
        "crosses_border": False, "protection": "none (inside customs)", "reveals": total,
        "stage": "aggregate", "receiver": "customs", "content": "statistics"})
    if released is None:
        what = f"nothing: customs denied the release ({rule or 'policy'})"
        protection = "not released"
    else:
        what = f"the certified {analysis} result ({released})"
        protection = ("dp-noised" if dp is not None else "disclosure control") + \
            ", signed certificate"
    rows.append({
        **base, "party": f"analyst ({destination})", "message": "release: customs -> analyst",
        "crosses_border": bool(crossed and released is not None), "protection": protection,
        "reveals": what, "stage": "release", "receiver": "analyst", "content": "result"})
    return [{k: r[k] for k in COLUMNS} for r in rows]


def manifest_table(rows: Sequence[Mapping[str, Any]]) -> Any:
    """The rows as a DataFrame with the columns of :data:`COLUMNS`.

    Examples
    --------
    >>> manifest_table([]).columns[:3].tolist()
    ['party', 'message', 'crosses_border']
    """
    import pandas as pd

    return pd.DataFrame.from_records(list(rows), columns=list(COLUMNS))


__all__ = ["COLUMNS", "manifest_rows", "manifest_table", "stages_from_audit", "stages_from_log"]
