"""The study report: one self-contained HTML file for clinicians and data-protection officers.

* :func:`build_report` returns the page as a string; :func:`write_report` writes it
  atomically. Both take ``(label, Release)`` pairs and optional study details, privacy
  budgets and the "what was revealed to whom" manifest.
* :mod:`safeflow.report.plots` draws the figures (forest plots, Kaplan-Meier curves, bar
  charts) with matplotlib's Agg canvas, embedded as PNG ``data:`` URIs.
* :class:`ReportError` (a :class:`~safeflow.errors.ReleaseError`): a figure or section
  could not be drawn; nothing was written.

Examples
--------
>>> from safeflow.release import Release
>>> from safeflow.report import build_report
>>> page = build_report([("Custom", Release(value=[1, 2], facts={}, analysis="custom",
...                                          protocol="plain"))], title="Demo")
>>> 'id="result"' in page, "[1, 2]" in page
(True, True)
"""

from safeflow.report._markup import ReportError
from safeflow.report.html import build_report, write_report

__all__ = ["ReportError", "build_report", "write_report"]
