"""The two ways a study can fail before any data is touched.

* :class:`StudyError` (an :class:`~safeflow.errors.InvalidParameter`): the study file is
  not valid. It names the file, the line and the field, e.g.
  ``study.yaml line 12: sites[1].jurisdiction must be an ISO 3166 alpha-2 code such as
  'NL'; got 'Netherlands'``.
* :class:`StudyRefused` (an :class:`~safeflow.errors.ExportRefused`): the file is valid,
  but the runtime refuses to run it (or one of its analyses): a variable outside
  ``allowed_variables``, a study past its ``expires`` date, a protocol the sites' export
  gates refuse, or a site that has not approved this exact version of the file. It names
  the rule that refused (``STUDY-variables``, ``STUDY-expired``, ``STUDY-approval`` or the
  export-gate rule) and the next step.

Both sit in safeflow's one exception tree (``safeflow.errors``)::

    SafeflowError
    ├── InvalidParameter (ValueError)
    │   └── StudyError                  the study file is not valid (path, line, field)
    └── ExportRefused (PermissionError)
        └── StudyRefused                the runtime refuses the study (rule, fix, analysis)

Examples
--------
>>> e = StudyError("title must be a non-empty string; got 3", path="study.yaml", line=2,
...                field="title")
>>> str(e)
'study.yaml line 2: title must be a non-empty string; got 3'
>>> e.line, e.field, isinstance(e, ValueError)
(2, 'title', True)
"""

from __future__ import annotations

from pathlib import Path

from safeflow.errors import ExportRefused, InvalidParameter

#: rule ids of the study runtime's own refusals (export-gate refusals keep the gate's id)
RULE_VARIABLES = "STUDY-variables"
RULE_EXPIRED = "STUDY-expired"
RULE_APPROVAL = "STUDY-approval"


class StudyError(InvalidParameter):
    """A study file that is not valid; names the file, the line and the field.

    Attributes
    ----------
    path : Path or None
        The study file.
    line : int or None
        1-based line of the offending field (``None`` when the file has no lines, e.g. it
        is empty or unreadable).
    field : str or None
        Dotted path of the field, e.g. ``sites[1].jurisdiction``.
    """

    def __init__(self, message: str, *, path: str | Path | None = None,
                 line: int | None = None, field: str | None = None) -> None:
        self.path = None if path is None else Path(path)
        self.line, self.field, self.reason = line, field, message
        where = "" if self.path is None else self.path.name
        if line is not None:
            where = f"{where} line {line}".strip()
        head = f"{where}: " if where else ""
        super().__init__(f"{head}{message}")


class StudyRefused(ExportRefused):
    """The runtime refuses a study or one of its analyses; names the rule and the fix.

    Attributes
    ----------
    rule : str
        ``STUDY-variables``, ``STUDY-expired``, ``STUDY-approval`` or an export-gate rule
        such as ``GATE-default-deny``.
    fix : str or None
        The next step.
    analysis : str or None
        The id of the refused analysis (``None`` when the whole study is refused).
    line : int or None
        Line of the study file the refusal is about.
    """

    def __init__(self, message: str, *, rule: str, fix: str | None = None,
                 analysis: str | None = None, line: int | None = None) -> None:
        super().__init__(message, rule=rule, fix=fix)
        self.analysis, self.line = analysis, line


__all__ = ["RULE_APPROVAL", "RULE_EXPIRED", "RULE_VARIABLES", "StudyError", "StudyRefused"]
