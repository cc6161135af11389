"""HTML building blocks for the report: escaping, number formats, tables, the style sheet.

Every piece of text goes through :func:`esc` unless it is already :class:`Markup` (HTML
this package built itself), so a label or a value can never inject markup.
"""

from __future__ import annotations

import html
import math
import numbers
import re
from collections.abc import Iterable, Mapping, Sequence
from fractions import Fraction
from typing import Any

from safeflow.errors import ReleaseError


class ReportError(ReleaseError):
    """A report cannot be built (a plot or section failed); no file was written."""


ReportError.__module__ = "safeflow.report"  # its public home


class Markup(str):
    """A string of HTML built by this package: inserted as is, never escaped again."""

    __slots__ = ()


def esc(value: Any) -> Markup:
    """``value`` as safe HTML: Markup unchanged, anything else ``str()``-ed and escaped."""
    if isinstance(value, Markup):
        return value
    return Markup(html.escape(str(value), quote=True))


def tag(name: str, *children: Any, **attrs: Any) -> Markup:
    """``<name attrs>children</name>``; attribute values and text children are escaped.

    ``class_`` stands for ``class``; attributes whose value is None or False are left out.
    """
    parts = [name]
    for key, val in attrs.items():
        if val is None or val is False:
            continue
        key = key.rstrip("_").replace("_", "-")
        parts.append(key if val is True else f'{key}="{esc(val)}"')
    body = "".join(esc(c) for c in children if c is not None)
    return Markup(f"<{' '.join(parts)}>{body}</{name}>")


def join(items: Iterable[Any], sep: str = "") -> Markup:
    """Concatenate escaped items."""
    return Markup(esc(sep).join(esc(i) for i in items))


def slug(text: str) -> str:
    """A lower-case ``[a-z0-9-]`` id fragment for ``text`` (``"item"`` if nothing is left)."""
    s = re.sub(r"[^a-z0-9]+", "-", str(text).lower()).strip("-")
    return s[:60].rstrip("-") or "item"


def missing(x: Any) -> bool:
    """True for None, NaN and pandas' NA."""
    if x is None:
        return True
    try:
        return bool(x != x)  # NaN, pd.NA raises TypeError on bool()
    except TypeError:
        return True


SUPPRESSED = Markup(
    '<span class="suppressed" title="suppressed by disclosure control">suppressed</span>'
)
DASH = Markup('<span class="na">–</span>')


def num(x: Any, digits: int = 2) -> Markup:
    """A number for a table cell: ints as is, floats with ``digits`` decimals, ∞, –."""
    if missing(x):
        return DASH
    if isinstance(x, Fraction):
        return esc(fraction(x))
    if isinstance(x, bool):
        return esc("yes" if x else "no")
    if isinstance(x, numbers.Integral):
        return esc(f"{int(x):,}")
    try:
        f = float(x)
    except (TypeError, ValueError):
        return esc(x)
    if math.isinf(f):
        return esc("∞" if f > 0 else "−∞")
    if abs(f) >= 1e7 or (f != 0 and abs(f) < 10 ** (-digits)):
        return esc(f"{f:.{max(digits, 1)}g}")
    return esc(f"{f:,.{digits}f}")


def pvalue(p: Any) -> Markup:
    """A p-value: ``<0.001`` below one in a thousand, else three decimals."""
    if missing(p):
        return DASH
    p = float(p)
    return esc("<0.001" if p < 0.001 else f"{p:.3f}")


def fraction(x: Any) -> str:
    """An exact ε/δ: ``1/2 (0.5)``; integers and plain strings as they are."""
    if isinstance(x, str) and "/" in x:
        try:
            x = Fraction(x)
        except (ValueError, ZeroDivisionError):
            return x
    if isinstance(x, Fraction):
        if x.denominator == 1:
            return str(x.numerator)
        return f"{x.numerator}/{x.denominator} ({float(x):.4g})"
    return str(x)


def size(n: int) -> str:
    """Bytes in a readable unit: ``38.3 kB (38,319 bytes)``."""
    units = [(1e9, "GB"), (1e6, "MB"), (1e3, "kB")]
    for scale, unit in units:
        if n >= scale:
            return f"{n / scale:.1f} {unit} ({n:,} bytes)"
    return f"{n:,} bytes"


def table(
    headers: Sequence[Any],
    rows: Iterable[Sequence[Any]],
    *,
    caption: Any = None,
    id: str | None = None,
    numeric: Iterable[int] = (),
    class_: str | None = None,
    row_classes: Sequence[str | None] | None = None,
) -> Markup:
    """A ``<table>`` with a header row; columns in ``numeric`` are right-aligned."""
    right = set(numeric)
    head = join(tag("th", h, scope="col", class_="num" if i in right else None)
                for i, h in enumerate(headers))
    body = []
    for r, row in enumerate(rows):
        cells = join(
            tag("th" if i == 0 else "td", c, scope="row" if i == 0 else None,
                class_="num" if i in right else None)
            for i, c in enumerate(row))
        cls = row_classes[r] if row_classes is not None and r < len(row_classes) else None
        body.append(tag("tr", cells, class_=cls))
    cap = tag("caption", caption) if caption is not None else None
    return tag("table", cap, tag("thead", tag("tr", head)), tag("tbody", join(body)),
               id=id, class_=class_)


def kv_table(pairs: Iterable[tuple[Any, Any]], *, id: str | None = None,
             class_: str = "kv") -> Markup:
    """A two-column key/value table (keys as row headers)."""
    rows = join(tag("tr", tag("th", k, scope="row"), tag("td", v)) for k, v in pairs)
    return tag("table", tag("tbody", rows), id=id, class_=class_)


def value_markup(value: Any) -> Markup:
    """Study metadata of any JSON-like shape: text, lists, mappings, lists of mappings."""
    if isinstance(value, Markup):
        return value
    if isinstance(value, Mapping):
        return kv_table(((k, value_markup(v)) for k, v in value.items()), class_="kv nested")
    if isinstance(value, list | tuple | set | frozenset):
        items = list(value)
        if items and all(isinstance(i, Mapping) for i in items):
            keys = list(dict.fromkeys(k for i in items for k in i))
            return table(keys, ([value_markup(i.get(k, "")) for k in keys] for i in items),
                         class_="nested")
        return join((value_markup(i) for i in items), ", ")
    if isinstance(value, Fraction):
        return esc(fraction(value))
    if missing(value):
        return DASH
    return esc(value)


def figure(uri: str, alt: str, *, id: str, caption: Any,
           width: int, height: int) -> Markup:
    """A ``<figure>`` with an embedded PNG (a ``data:`` URI) and a caption."""
    img = Markup(f'<img src="{uri}" alt="{esc(alt)}" width="{width}" height="{height}">')
    return tag("figure", img, tag("figcaption", caption), id=id)


def intro(*sentences: Any) -> Markup:
    """The short plain-language paragraph that opens a section."""
    return tag("p", join(sentences, " "), class_="intro")


CSP = ("default-src 'none'; img-src data:; style-src 'unsafe-inline'; base-uri 'none'; "
       "form-action 'none'")

CSS = """
:root { --ink:#1d2433; --muted:#5b6474; --line:#d8dde6; --band:#f4f6f9; --accent:#1f5f99;
  --ok:#1b7a3e; --ok-bg:#e4f4ea; --warn:#8a5a00; --warn-bg:#fdf1d8; --bad:#a4262c;
  --bad-bg:#fbe5e6; }
* { box-sizing: border-box; }
html { -webkit-text-size-adjust: 100%; }
body { margin: 0; color: var(--ink); background: #fff; line-height: 1.5;
  font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Noto Sans", "DejaVu Sans",
  "Helvetica Neue", Arial, sans-serif; }
main, header.page .wrap, footer { max-width: 1040px; margin: 0 auto; padding: 0 28px; }
header.page { padding: 26px 0 10px; background: var(--band);
  border-bottom: 3px solid var(--accent); }
header.page table.kv { background: #fff; }
header.page .kicker { color: var(--accent); font-weight: 600; letter-spacing: .04em;
  text-transform: uppercase; font-size: 12px; margin: 0; }
h1 { font-size: 28px; line-height: 1.2; margin: 4px 0 10px; }
h2 { font-size: 21px; margin: 0 0 6px; padding-top: 6px; }
h3 { font-size: 16px; margin: 18px 0 6px; }
h4 { font-size: 14px; margin: 12px 0 4px; color: var(--muted); }
section { margin: 28px 0; }
section.item { border-top: 1px solid var(--line); padding-top: 18px; }
p.intro { color: var(--muted); margin: 0 0 12px; max-width: 78ch; }
nav#contents { background: var(--band); border: 1px solid var(--line); border-radius: 6px;
  padding: 10px 16px; margin: 20px 0; font-size: 14px; }
nav#contents ol { margin: 4px 0; padding-left: 22px; columns: 2; column-gap: 32px; }
nav#contents a { color: var(--accent); text-decoration: none; }
table { border-collapse: collapse; margin: 8px 0 14px; font-size: 13.5px;
  font-variant-numeric: tabular-nums; }
caption { caption-side: top; text-align: left; color: var(--muted); font-size: 13px;
  padding-bottom: 4px; }
th, td { border-bottom: 1px solid var(--line); padding: 4px 10px; text-align: left;
  vertical-align: top; }
thead th { border-bottom: 2px solid var(--ink); background: #fff; font-weight: 600; }
tbody tr:nth-child(even) { background: var(--band); }
tbody th { font-weight: 500; }
.num { text-align: right; white-space: nowrap; }
tr.var th { font-weight: 700; }
tr.level th { padding-left: 26px; font-weight: 400; }
table.kv th { width: 230px; color: var(--muted); font-weight: 500; }
table.table1 { min-width: 62%; }
table.table1 td { padding-left: 24px; }
table.kv, table.wide { width: 100%; }
table.nested { margin: 0; font-size: 13px; }
table.nested th, table.nested td { padding: 2px 8px; }
.n { color: var(--muted); font-size: 12px; }
.na { color: var(--muted); }
.suppressed { color: var(--warn); font-style: italic; }
code, .hash { font-family: ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace;
  font-size: 12.5px; overflow-wrap: anywhere; }
figure { margin: 10px 0 4px; }
figure img { max-width: 100%; height: auto; display: block; border: 1px solid var(--line);
  border-radius: 4px; }
figcaption { color: var(--muted); font-size: 13px; margin-top: 4px; max-width: 78ch; }
.badge { display: inline-block; padding: 1px 8px; border-radius: 10px; font-weight: 700;
  font-size: 12px; letter-spacing: .02em; white-space: nowrap; }
.badge.ok { color: var(--ok); background: var(--ok-bg); }
.badge.warn { color: var(--warn); background: var(--warn-bg); }
.badge.bad { color: var(--bad); background: var(--bad-bg); }
.badge.dp-badge { color: var(--accent); background: #e3eef8; font-weight: 600; }
.provenance { background: var(--band); border: 1px solid var(--line); border-radius: 6px;
  padding: 4px 16px 10px; margin-top: 14px; }
.provenance table.kv tbody tr:nth-child(even) { background: transparent; }
.provenance h3 { font-size: 14px; text-transform: uppercase; letter-spacing: .04em;
  color: var(--accent); margin: 12px 0 2px; }
.provenance table.kv { margin: 0 0 6px; }
.provenance table.kv th { width: 36%; }
.grid { display: grid; grid-template-columns: 1fr 1fr; gap: 0 24px; }
.signer { white-space: nowrap; margin-right: 6px; }
.signer.pending { color: var(--bad); }
td code { white-space: nowrap; }
@media (max-width: 760px) { .grid { grid-template-columns: 1fr; } }
.dp { border-left: 4px solid var(--accent); background: #eef4fa; padding: 6px 14px;
  margin: 12px 0; border-radius: 0 6px 6px 0; }
details { margin: 8px 0; }
summary { cursor: pointer; color: var(--accent); font-size: 14px; }
pre { background: #fff; border: 1px solid var(--line); padding: 8px 10px; font-size: 12px;
  overflow-x: auto; white-space: pre-wrap; overflow-wrap: anywhere; }
ul.plain { margin: 0; padding-left: 18px; }
footer { color: var(--muted); font-size: 12px; padding-bottom: 28px; margin-top: 36px; }
footer p { border-top: 1px solid var(--line); padding-top: 10px; margin: 0; }
a { color: var(--accent); }
.hash.short { white-space: nowrap; overflow-wrap: normal; }
@media print {
  @page { size: A4; margin: 14mm 12mm; }
  body { font-size: 10.5pt; }
  main, header.page .wrap, footer { max-width: none; padding: 0; }
  header.page { background: none; padding-top: 0; }
  nav#contents { display: none; }
  section.item, section { break-before: auto; }
  table, figure, .provenance, .dp { break-inside: avoid; }
  h2, h3 { break-after: avoid; }
  a { color: inherit; text-decoration: none; }
  summary { color: var(--ink); }
  tbody tr:nth-child(even), .provenance, .dp { -webkit-print-color-adjust: exact;
    print-color-adjust: exact; }
}
"""

__all__ = [
    "CSP",
    "CSS",
    "Markup",
    "ReportError",
    "esc",
    "figure",
    "fraction",
    "intro",
    "join",
    "kv_table",
    "missing",
    "num",
    "pvalue",
    "size",
    "slug",
    "table",
    "tag",
    "value_markup",
]
