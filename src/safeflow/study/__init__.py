"""Study files: one YAML file describes a whole cross-border study, and the runtime holds
every run to it.

* :func:`load_study` / :func:`parse_study` (:mod:`safeflow.study.load`): validate a study
  file into a frozen :class:`Study`; every error names the line and the field.
* :mod:`safeflow.study.enforce`: what the runtime refuses before any data is touched
  (expired study, a variable outside ``allowed_variables``, a protocol a site's export
  gate refuses), as :class:`StudyRefused`.
* :func:`approve_study` / :func:`check_approvals` (:mod:`safeflow.study.approve`): the
  two-stage release; each site records its approval of the study hash in its own audit
  log, and a run needs every site's approval of exactly that hash.
* :func:`run_study` (:mod:`safeflow.study.run`): run it all, write the certified releases,
  result tables, audit checkpoints, the "what was revealed to whom" manifest and the
  HTML report.
* :mod:`safeflow.study.cli`: ``safeflow run`` and ``safeflow study validate | hash |
  approve``.

Examples
--------
>>> from safeflow.study import parse_study
>>> from safeflow.study.enforce import _EXAMPLE
>>> parse_study(_EXAMPLE).analyses[0].type
'describe'
"""

from safeflow.study.approve import Approval, approve_study, check_approvals
from safeflow.study.errors import StudyError, StudyRefused
from safeflow.study.load import load_study, parse_study
from safeflow.study.model import Study
from safeflow.study.run import AnalysisOutcome, StudyFederation, StudyResult, run_study

__all__ = [
    "AnalysisOutcome",
    "Approval",
    "Study",
    "StudyError",
    "StudyFederation",
    "StudyRefused",
    "StudyResult",
    "approve_study",
    "check_approvals",
    "load_study",
    "parse_study",
    "run_study",
]
