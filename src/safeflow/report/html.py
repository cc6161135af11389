"""The self-contained HTML report: every result with the guarantees that travel with it.

:func:`build_report` turns a list of ``(label, Release)`` into one HTML page: for a
clinician, what each result shows (Table 1, model tables, forest plots, survival curves
with numbers at risk); for a data-protection officer, how it was produced and why it could
leave (protocol, bytes across borders, policy decision, rules, obligations, disclosure
control, differential privacy, the signed certificate), plus the privacy budget per site
and what was revealed to whom. :func:`write_report` writes it atomically.

The page has no scripts and no external resources: the style sheet is inline, figures are
PNGs embedded as ``data:`` URIs, and a Content-Security-Policy forbids anything else, so
the file can be mailed, archived or opened offline. Every text is HTML-escaped.

Examples
--------
>>> import pandas as pd, safeflow as sf
>>> s = sf.Schema([sf.Column("age", classes=("public",), bounds=(0, 120))])
>>> fed = sf.Federation.local(
...     [sf.Site("a", pd.DataFrame({"age": [60.0, 70]}), "CN", schema=s),
...      sf.Site("b", pd.DataFrame({"age": [80.0]}), "NL", schema=s)],
...     destination="NL", purpose="scientific-research")
>>> page = build_report([("Baseline", sf.describe(fed, ["age"]))], title="Demo study")
>>> page.startswith("<!DOCTYPE html>"), 'id="table1"' in page, 'id="decisions"' in page
(True, True, True)
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from safeflow.errors import InvalidParameter, SafeflowError
from safeflow.release import Release
from safeflow.report import _provenance as prov
from safeflow.report._analyses import KIND_TITLES, RENDERERS, SECTION_IDS, generic
from safeflow.report._markup import (
    CSP,
    CSS,
    Markup,
    ReportError,
    esc,
    intro,
    join,
    kv_table,
    slug,
    tag,
    value_markup,
)


class _Ids:
    """Unique element ids: the base the first time, then ``base-2``, ``base-3`` ..."""

    def __init__(self) -> None:
        self.used: set[str] = set()

    def take(self, base: str, alt: str | None = None) -> str:
        for cand in (base, alt):
            if cand and cand not in self.used:
                self.used.add(cand)
                return cand
        n = 2
        while f"{alt or base}-{n}" in self.used:
            n += 1
        self.used.add(f"{alt or base}-{n}")
        return f"{alt or base}-{n}"


def _check_items(items: Any) -> list[tuple[str, Release]]:
    if isinstance(items, str | bytes | Mapping) or not isinstance(items, Sequence):
        raise InvalidParameter(
            "items must be a list of (label, release) pairs, e.g. "
            "[('Table 1', t1), ('Primary outcome', lr)]; got " + type(items).__name__)
    out = []
    for i, item in enumerate(items):
        if not (isinstance(item, tuple | list) and len(item) == 2):
            raise InvalidParameter(f"items[{i}] must be a (label, release) pair; got "
                                   f"{type(item).__name__}")
        label, rel = item
        if not isinstance(label, str) or not label.strip():
            raise InvalidParameter(f"items[{i}]: the label must be a non-empty string")
        if not isinstance(rel, Release):
            raise InvalidParameter(
                f"items[{i}] ({label!r}): expected an sf.Release (what sf.describe, sf.glm, "
                f"sf.cox ... return); got {type(rel).__name__}")
        out.append((label, rel))
    return out


def _check_kwargs(title: Any, meta: Any, budgets: Any, manifest: Any) -> None:
    if not isinstance(title, str) or not title.strip():
        raise InvalidParameter("title must be a non-empty string, e.g. title='COLOR IV'")
    if meta is not None and not isinstance(meta, Mapping):
        raise InvalidParameter("meta must be a mapping of study details (or None); got "
                               + type(meta).__name__)
    if budgets is not None and not (
            isinstance(budgets, Mapping)
            and all(isinstance(v, Sequence) and not isinstance(v, str)
                    and all(isinstance(r, Mapping) for r in v) for v in budgets.values())):
        raise InvalidParameter(
            "budgets must map each site to the rows of its BudgetLedger.show(), e.g. "
            "{'beijing': ledger.show()}")
    if manifest is not None and not (
            isinstance(manifest, Sequence) and not isinstance(manifest, str)
            and all(isinstance(r, Mapping) for r in manifest)):
        raise InvalidParameter(
            "manifest must be a list of rows {party, message, crosses_border, protection, "
            "reveals}")


def _pretty(key: Any) -> str:
    text = str(key).replace("_", " ")
    return text[:1].upper() + text[1:]


def _study(title: str, meta: Mapping[str, Any] | None, items: list[tuple[str, Release]]
           ) -> Markup:
    if meta is None:
        facts = items[0][1].facts if items else {}
        dest = facts.get("destination", {}) or {}
        derived = {
            "study": (facts.get("run", {}) or {}).get("study"),
            "sites": [f"{o.get('site')} ({o.get('jurisdiction')})"
                      for o in facts.get("origin", []) or []],
            "destination": dest.get("jurisdiction"),
            "purpose": facts.get("purpose"),
        }
        meta = {k: v for k, v in derived.items() if v}
    pairs = [(_pretty(k), value_markup(v)) for k, v in meta.items()
             if not (k == "title" and v == title)]
    return tag("header", tag("div", join([
        tag("p", "safeflow · certified cross-border analysis", class_="kicker"),
        tag("h1", title),
        intro("Results of a study run jointly by hospitals in different jurisdictions. No "
              "patient record left its hospital: only protected sums crossed borders, and "
              "every result was checked against each hospital's law and signed before "
              "release."),
        kv_table(pairs, id="study-details") if pairs else Markup(""),
    ]), class_="wrap"), class_="page", id="study")


_ABOUT = (
    "Each section below starts with what the result shows, for clinicians. Its grey box "
    "says how the result was produced and why it was allowed to leave, for data-protection "
    "officers: the protection protocol, how many bytes crossed borders, the policy decision "
    "with the legal rules that decided it and any obligations, disclosure control (cells too "
    "small to publish are marked “suppressed”), differential privacy where used, and the "
    "certificate, signed by customs and co-signed by every contributing hospital, which "
    "anyone can check offline with “safeflow verify”.")


def _item(label: str, rel: Release, sid: str, s: str) -> Markup:
    render = RENDERERS.get(rel.analysis, generic)
    try:
        body = render(rel, s)
    except SafeflowError:
        raise
    except Exception as e:  # a value that does not match its documented type
        raise ReportError(
            f"could not render item {label!r} ({rel.analysis}): {type(e).__name__}: {e}; "
            "no report was written. Pass releases as the analyses return them") from e
    kind = KIND_TITLES.get(rel.analysis, f"{rel.analysis} result")
    return tag("section", join([
        tag("h2", label),
        tag("p", join([kind, " · ", prov.outcome_badge(rel.decision), prov.dp_badge(rel)]),
            class_="intro"),
        body,
        prov.provenance(rel, s),
    ]), class_="item", id=sid, data_analysis=rel.analysis)


def build_report(
    items: Sequence[tuple[str, Release]],
    *,
    title: str,
    meta: Mapping[str, Any] | None = None,
    budgets: Mapping[str, Sequence[Mapping[str, Any]]] | None = None,
    manifest: Sequence[Mapping[str, Any]] | None = None,
) -> str:
    """The report as one self-contained HTML page.

    Parameters
    ----------
    items : list of (str, Release)
        Labels and releases, in display order. Rendered by ``release.analysis``:
        ``describe`` (Table 1), ``glm`` (coefficients, odds/rate ratios, forest plot),
        ``kaplan_meier`` (curves with bands, numbers at risk, medians), ``logrank``,
        ``cox`` (hazard ratios, forest plot), ``histogram`` (table and bar chart),
        ``crosstab``; anything else as the text of its value. Each item also shows its
        protocol, rounds, bytes across borders, decision, rules, obligations, disclosure
        control, differential privacy (when ``facts["output"]["dp"]`` is set) and
        certificate.
    title : str
        The page title.
    meta : mapping, optional
        Study details for the header (title, purpose, sites and jurisdictions,
        destination, instruments, study hash, approvals): values may be text, lists or
        mappings. Default: study, sites, destination and purpose from the first release.
    budgets : mapping, optional
        ``{site: BudgetLedger.show()}``: the "Privacy budget per site" section.
    manifest : list of mapping, optional
        Rows ``{party, message, crosses_border, protection, reveals}``: the "What was
        revealed to whom" section.

    Returns
    -------
    str
        The HTML page. Section ids: ``study``, ``contents``, ``about``, one per item
        (``table1``, ``glm``, ``kaplan-meier``, ``logrank``, ``cox``, ``histogram``,
        ``crosstab``, ``result``; repeats get ``-<label>``), inside items
        ``forest-<label>``, ``km-<label>``, ``numbers-at-risk-<label>``,
        ``provenance-<label>``, ``dp-<label>``, then ``decisions``, ``budget``,
        ``manifest``. ``<label>`` is the label in lower case with runs of other characters
        than ``a-z0-9`` turned into ``-``.

    Raises
    ------
    InvalidParameter
        Malformed arguments.
    ReportError
        A figure or section cannot be drawn.

    Examples
    --------
    >>> import pandas as pd, safeflow as sf
    >>> s = sf.Schema([sf.Column("arm", classes=("public",), kind="categorical",
    ...                          categories=("a", "b"))])
    >>> df = pd.DataFrame({"arm": ["a", "b", "a"]})
    >>> fed = sf.Federation.local([sf.Site("x", df, "CN", schema=s),
    ...                           sf.Site("y", df, "NL", schema=s)],
    ...                          destination="NL", purpose="scientific-research")
    >>> page = build_report([("Arms <b>", sf.describe(fed, ["arm"], protocol="plain"))],
    ...                     title="Trial", meta={"purpose": "demo"})
    >>> "Arms &lt;b&gt;" in page, "<script" in page, "http://" in page
    (True, False, False)
    """
    entries = _check_items(items)
    _check_kwargs(title, meta, budgets, manifest)
    ids = _Ids()
    for fixed in ("study", "study-details", "contents", "about", "decisions", "budget",
                  "budget-chart", "manifest"):
        ids.take(fixed)
    slugs = _Ids()
    sections, toc, overview = [], [], []
    for label, rel in entries:
        s = slugs.take(slug(label))
        base = SECTION_IDS.get(rel.analysis, "result")
        sid = ids.take(base, f"{base}-{s}")
        sections.append(_item(label, rel, sid, s))
        toc.append((sid, label))
        overview.append((label, sid, rel))
    tail = [prov.decisions(overview)] if entries else []
    toc += [("decisions", "Decisions and certificates")] if entries else []
    if budgets is not None:
        tail.append(prov.budget(budgets))
        toc.append(("budget", "Privacy budget per site"))
    if manifest is not None:
        tail.append(prov.manifest(manifest))
        toc.append(("manifest", "What was revealed to whom"))
    nav = tag("nav", join([tag("strong", "Contents"), tag("ol", join(
        tag("li", tag("a", text, href=f"#{sid}")) for sid, text in toc))]), id="contents",
        aria_label="Contents")
    about = tag("section", join([tag("h2", "How to read this report"), intro(_ABOUT)]),
                id="about")
    from safeflow import __version__

    head = join([
        Markup('<meta charset="utf-8">'),
        Markup('<meta name="viewport" content="width=device-width, initial-scale=1">'),
        Markup(f'<meta http-equiv="Content-Security-Policy" content="{esc(CSP)}">'),
        Markup(f'<meta name="generator" content="safeflow {esc(__version__)}">'),
        tag("title", title),
        Markup(f"<style>{CSS}</style>"),
    ])
    body = join([
        _study(title, meta, entries),
        tag("main", join([nav, about, *sections, *tail])),
        tag("footer", tag("p", f"Generated by safeflow {__version__}. This page is "
                               "self-contained: it runs no scripts and loads nothing from the "
                               "network.")),
    ])
    return f'<!DOCTYPE html>\n<html lang="en">\n<head>{head}</head>\n<body>{body}</body>\n</html>\n'


def write_report(
    path: str | os.PathLike[str],
    items: Sequence[tuple[str, Release]],
    *,
    title: str,
    meta: Mapping[str, Any] | None = None,
    budgets: Mapping[str, Sequence[Mapping[str, Any]]] | None = None,
    manifest: Sequence[Mapping[str, Any]] | None = None,
) -> Path:
    """Build the report (:func:`build_report`) and write it to ``path`` atomically.

    The page is built in memory first, then written to a temporary file beside ``path``,
    flushed to disk and renamed over ``path``: a failure at any point leaves no file (and an
    existing report at ``path`` untouched). Missing parent directories are created.

    Parameters
    ----------
    path : str or path-like
        The ``.html`` file to write.
    items, title, meta, budgets, manifest
        As :func:`build_report`.

    Returns
    -------
    pathlib.Path
        ``path``.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> from safeflow.release import Release
    >>> r = Release(value=42, facts={}, analysis="custom", protocol="plain")
    >>> out = write_report(pathlib.Path(tempfile.mkdtemp()) / "r.html", [("Answer", r)],
    ...                    title="Demo")
    >>> out.name, "UNCERTIFIED" in out.read_text(encoding="utf-8")
    ('r.html', True)
    """
    target = Path(path)
    if target.is_dir():
        raise InvalidParameter(f"path {str(target)!r} is a directory; give a file name such "
                               "as report.html")
    page = build_report(items, title=title, meta=meta, budgets=budgets,
                        manifest=manifest).encode("utf-8")
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(page)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):  # make the rename durable where the OS allows it
        dfd = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    return target


__all__ = ["ReportError", "build_report", "write_report"]
