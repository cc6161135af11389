"""How each result was produced and why it could leave: the part for data-protection officers.

Per item: the protocol, rounds and bytes that crossed borders, the policy decision with its
rules and obligations, disclosure control, differential privacy and the certificate. For
the whole study: the decisions overview, the privacy budget per site and the manifest of
what was revealed to whom.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from fractions import Fraction
from typing import Any

from safeflow.errors import SafeflowError
from safeflow.report import plots
from safeflow.report._analyses import suppressed_cells
from safeflow.report._markup import (
    DASH,
    Markup,
    esc,
    figure,
    fraction,
    intro,
    join,
    kv_table,
    missing,
    num,
    size,
    table,
    tag,
)

PROTOCOLS = {
    "plain": "no protection: each site's statistics were sent in the clear (allowed only for "
             "public data or benchmarks)",
    "masking": "secure aggregation: each site's statistics were hidden under random masks "
               "that cancel only in the sum, so no one saw a single hospital's numbers",
    "he": "homomorphic encryption: statistics were encrypted at each site and added while "
          "encrypted; only customs decrypted the total",
    "dp": "differential privacy: calibrated noise was added before release",
}

OUTCOMES = {
    "EXEMPT": ("ok", "outside the scope of transfer rules; may leave"),
    "ALLOW": ("ok", "allowed to leave under the rules of every origin"),
    "ALLOW_WITH_OBLIGATIONS": ("warn", "allowed to leave, with the obligations listed"),
}

SDC_FIELDS = (("n", "patients counted"), ("min_cell", "smallest published cell"),
              ("min_event_cell", "smallest event count"),
              ("min_at_risk_cell", "smallest number at risk"),
              ("residual_dof", "residual degrees of freedom"),
              ("has_zero", "table has zero cells"),
              ("nk_top2_share", "share of the two largest contributions"),
              ("p_ratio", "p% dominance ratio"))


def outcome_badge(decision: Any) -> Markup:
    """A coloured badge with the decision's outcome (UNCERTIFIED without a decision)."""
    if decision is None:
        return tag("span", "UNCERTIFIED", class_="badge bad")
    value = str(getattr(decision.outcome, "value", decision.outcome))
    cls = OUTCOMES.get(value, ("bad", ""))[0]
    return tag("span", value, class_=f"badge {cls}")


def dp_badge(rel: Any) -> Markup:
    """`` · differential privacy, ε = 1/2`` for a release with DP facts, else nothing."""
    dp = (rel.facts or {}).get("output", {}).get("dp")
    if not dp:
        return Markup("")
    return join([" · ", tag("span", f"differential privacy, ε = {dp.get('epsilon', '?')}",
                            class_="badge dp-badge")])


def cert_digest(cert: Any) -> str:
    """SHA-256 of the certificate's canonical JSON (what ``certificate.json`` holds)."""
    return hashlib.sha256(cert.to_json()).hexdigest()


def _origins(facts: Mapping[str, Any]) -> str:
    return ", ".join(f"{o.get('site', '?')} ({o.get('jurisdiction', '?')})"
                     for o in facts.get("origin", []) or []) or "–"


def _decision_rows(rel: Any) -> list[tuple[Any, Any]]:
    d = rel.decision
    if d is None:
        return [("Policy decision", join([outcome_badge(None), " no policy decision and no "
                                          "certificate: keep this result inside the study"]))]
    value = str(getattr(d.outcome, "value", d.outcome))
    rows: list[tuple[Any, Any]] = [
        ("Policy decision", join([outcome_badge(d), " ", OUTCOMES.get(value, ("", ""))[1]])),
        ("Rules that decided", join((tag("code", r) for r in d.rules), ", ") or DASH),
    ]
    obligations = tuple(getattr(d, "obligations", ()) or ())
    rows.append(("Obligations", tag("ul", join(tag("li", o) for o in obligations),
                                    class_="plain") if obligations else "none"))
    return rows


def _certificate_rows(rel: Any) -> list[tuple[Any, Any]]:
    cert = rel.certificate
    if cert is None:
        return [("Certificate", "none: this result is uncertified and may not be exported")]
    signed = cert.signatures
    signers = join((tag("span", f"{name} ✓" if name in signed else f"{name} (pending)",
                        title=f"{role}: {'signed' if name in signed else 'not yet signed'}",
                        class_="signer" if name in signed else "signer pending")
                    for name, role in sorted(cert.signers.items(),
                                             key=lambda kv: (kv[1] != "customs", kv[0]))),
                   " ")
    try:
        cert.verify(trusted=dict(rel.trusted) or None)
        check = "all signatures and the audit-log proof verify"
        if rel.trusted:
            check += " against the trusted keys of customs and the sites"
    except (SafeflowError, TypeError, ValueError, KeyError) as e:
        check = f"does not verify: {e}"
    issued = cert.body.get("timestamps", {}).get("issued_at", "–")
    return [
        ("Certificate (sha256)", tag("span", cert_digest(cert), class_="hash")),
        ("Output (sha256)", tag("span", cert.output_sha256, class_="hash")),
        ("Issued", issued),
        ("Signed by", signers),
        ("Verification", join([check, ". Check it yourself: ",
                               tag("code", "safeflow verify <exported directory>")])),
    ]


def _sdc_text(rel: Any) -> Markup:
    sdc = (rel.facts or {}).get("output", {}).get("sdc") or {}
    parts = [f"{label}: {sdc[k]:.3g}" if isinstance(sdc[k], float) else f"{label}: {sdc[k]}"
             for k, label in SDC_FIELDS if k in sdc and not missing(sdc[k])
             and not isinstance(sdc[k], bool)]
    if sdc.get("has_zero") is True:
        parts.append("table has zero cells")
    n = suppressed_cells(rel)
    if n is not None:
        parts.append(f"{n} cell(s) suppressed" if n else "no cell suppressed")
    return esc("; ".join(parts)) if parts else DASH


def _dp_statistics(dp: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
    """``(name, facts)`` per noised statistic: a mapping by name, or a list of mappings."""
    stats = dp.get("statistics") or {}
    if isinstance(stats, Mapping):
        return [(str(k), v if isinstance(v, Mapping) else {}) for k, v in stats.items()]
    return [(str(st.get("statistic", f"statistic {i + 1}")), st)
            for i, st in enumerate(stats) if isinstance(st, Mapping)]


def dp_block(rel: Any, s: str) -> Markup:
    """The differential-privacy box: ε, δ, unit, mode and the CI half-widths."""
    dp = (rel.facts or {}).get("output", {}).get("dp")
    if not dp:
        return Markup("")
    alpha = dp.get("alpha")
    level = "–" if missing(alpha) else f"{100 * (1 - float(alpha)):.0f}%"
    stats = _dp_statistics(dp)
    per_eps = any("epsilon" in st for _, st in stats)
    rows = [[name, st.get("mechanism", "–"), *([fraction(st.get("epsilon", "–"))] if per_eps
                                               else []),
             num(st.get("scale"), 3), join(["± ", num(st.get("accuracy"), 2)])]
            for name, st in stats]
    unit = dp.get("unit_description") or dp.get("unit") or "–"
    if dp.get("contributions") and not dp.get("unit_description"):
        unit = f"{unit} (all their rows, at most {dp['contributions']})"
    pairs = [("ε (privacy loss)", tag("strong", fraction(dp.get("epsilon")))),
             ("δ", fraction(dp.get("delta", 0))), ("Unit of privacy", unit),
             ("Mode", dp.get("mode", "–")), ("Confidence level", level)]
    if dp.get("withheld"):
        pairs.append(("Not released under DP", ", ".join(map(str, dp["withheld"]))))
    headers = ["statistic", "mechanism", *(["ε"] if per_eps else []), "noise scale",
               f"{level} CI half-width"]
    return tag("div", join([
        tag("h4", "Differential privacy"),
        intro("Random noise was added to this result before it was released, so that whether "
              f"any one {dp.get('unit', 'patient')} is in the data changes the chance of any "
              "released value by at most a factor e^ε. The table gives, for each statistic, "
              f"the half-width of the {level} interval of the noise: the released value is "
              "within that distance of the noise-free value with that probability."),
        kv_table(pairs),
        table(headers, rows, numeric=range(2, len(headers))) if rows else Markup(""),
    ]), class_="dp", id=f"dp-{s}")


def provenance(rel: Any, s: str) -> Markup:
    """The provenance block of one item."""
    facts = rel.facts or {}
    out = facts.get("output", {}) or {}
    run = facts.get("run", {}) or {}
    dest = facts.get("destination", {}) or {}
    flows = run.get("border_bytes", {}) or {}
    border = esc(size(rel.bytes_cross_border))
    if flows:
        border = join([border, " ", tag("span", "(" + ", ".join(
            f"{k}: {v:,}" for k, v in flows.items()) + ")", class_="n")])
    produced: list[tuple[Any, Any]] = [
        ("Protocol", join([tag("code", rel.protocol), " – ",
                           PROTOCOLS.get(rel.protocol, "see the protocol spec")])),
        ("Output kind", out.get("kind") or rel.analysis),
        ("Sites that contributed", _origins(facts)),
        ("Destination and purpose",
         f"{dest.get('jurisdiction', '–')} ({dest.get('recipient_type', '–')}), for "
         f"{facts.get('purpose', '–')}"),
        ("Rounds", num(rel.rounds)),
        ("Bytes that crossed borders", border),
        ("Unit of privacy", facts.get("unit_of_privacy", "–")),
        ("Disclosure control", _sdc_text(rel)),
    ]
    allowed = [*_decision_rows(rel), *_certificate_rows(rel)]
    fired = getattr(rel.decision, "fired", ()) or ()
    fired_table = table(
        ["rule", "pack", "site", "jurisdiction", "outcome", "obligations"],
        [[tag("code", f.rule), f.pack, f.site or "(output)", f.jurisdiction or "–",
          str(getattr(f.outcome, "value", f.outcome)), "; ".join(f.obligations) or "–"]
         for f in fired]) if fired else Markup("")
    summary = (tag("details", tag("summary", "Certificate summary (text)"),
                   tag("pre", rel.summary)) if rel.summary else Markup(""))
    return tag("div", join([
        tag("div", join([
            tag("div", join([tag("h3", "How it was produced"), kv_table(produced)])),
            tag("div", join([tag("h3", "Why it could leave"), kv_table(allowed)])),
        ]), class_="grid"),
        dp_block(rel, s),
        tag("details", tag("summary", f"Every policy rule that fired ({len(fired)})"),
            fired_table) if fired else Markup(""),
        summary,
    ]), class_="provenance", id=f"provenance-{s}")


def decisions(entries: Sequence[tuple[str, str, Any]]) -> Markup:
    """The overview of every item's decision and certificate: ``(label, id, release)``."""
    rows = []
    for label, sid, rel in entries:
        d, cert = rel.decision, rel.certificate
        rows.append([
            tag("a", label, href=f"#{sid}"), rel.analysis, rel.protocol, outcome_badge(d),
            join((tag("code", r) for r in getattr(d, "rules", ()) or ()), ", ") or DASH,
            "; ".join(getattr(d, "obligations", ()) or ()) or "none",
            tag("span", cert_digest(cert)[:12], class_="hash short", title=cert_digest(cert))
            if cert is not None else DASH,
            ", ".join(sorted(cert.signatures)) if cert is not None else DASH,
            num(rel.bytes_cross_border),
        ])
    return tag("section", join([
        tag("h2", "Decisions and certificates"),
        intro("Every result in this report passed the policy check of each hospital's "
              "jurisdiction before it was released. The most restrictive rule wins. Each "
              "certificate is signed by customs and co-signed by every hospital that "
              "contributed data; its hash identifies it."),
        table(["result", "analysis", "protocol", "decision", "rules", "obligations",
               "certificate", "signed by", "bytes across borders"], rows, numeric=[8],
              class_="wide"),
    ]), id="decisions")


def _float(x: Any) -> float:
    try:
        return float(Fraction(x)) if isinstance(x, str) else float(x)
    except (TypeError, ValueError, ZeroDivisionError):
        return 0.0


def budget(budgets: Mapping[str, Sequence[Mapping[str, Any]]]) -> Markup:
    """The privacy budget per site: a table and a bar chart (rows of ``BudgetLedger.show``)."""
    rows, bars = [], []
    for site, entries in budgets.items():
        for r in entries:
            ds = r.get("dataset", "–")
            rows.append([site, ds, fraction(r.get("total", "–")),
                         fraction(r.get("spent", "–")), fraction(r.get("remaining", "–")),
                         fraction(r.get("delta_spent", "–")) + " of " +
                         fraction(r.get("delta_total", "–")), num(r.get("queries"))])
            bars.append((f"{site} / {ds}", _float(r.get("spent", 0)), _float(r.get("total", 0))))
    parts = [
        tag("h2", "Privacy budget per site"),
        intro("Each hospital sets a total privacy-loss budget (ε) for each dataset. Every "
              "differentially private release spends part of it, recorded with exact "
              "arithmetic before the release; when a budget is used up, no further noisy "
              "release from that dataset is possible."),
        table(["site", "dataset", "ε total", "ε spent", "ε remaining", "δ spent", "queries"],
              rows, numeric=[2, 3, 4, 5, 6], class_="wide") if rows else
        tag("p", "No budget is recorded."),
    ]
    if bars:
        p = plots.budget_plot(bars)
        alt = "Privacy budget: " + "; ".join(f"{b[0]} spent {b[1]:g} of {b[2]:g}" for b in bars)
        parts.append(figure(p.uri, alt, id="budget-chart", width=p.width, height=p.height,
                            caption="ε spent (dark) of each dataset's total budget (light)."))
    return tag("section", join(parts), id="budget")


def _reveals(value: Any) -> Markup:
    if isinstance(value, Mapping):
        return tag("ul", join(tag("li", f"to {k}: {v}") for k, v in value.items()),
                   class_="plain")
    return esc("–" if missing(value) else value)


def manifest(rows: Sequence[Mapping[str, Any]]) -> Markup:
    """What was revealed to whom (rows: party, message, crosses_border, protection, reveals)."""
    body = [[r.get("party", "–"), r.get("message", "–"),
             "yes" if r.get("crosses_border") else "no",
             ", ".join(r["protection"]) if isinstance(r.get("protection"), list | tuple)
             else r.get("protection", "–"), _reveals(r.get("reveals"))] for r in rows]
    return tag("section", join([
        tag("h2", "What was revealed to whom"),
        intro("Every kind of message the protocols exchanged, from the protocol specifications "
              "the sites enforced: who received it, whether it crossed a border, how it was "
              "protected, and what it reveals to its receiver. Patient records appear nowhere."),
        table(["party", "message", "crosses a border", "protection", "reveals"], body,
              class_="wide"),
    ]), id="manifest")


__all__ = ["budget", "cert_digest", "decisions", "dp_badge", "dp_block", "manifest",
           "outcome_badge", "provenance"]
