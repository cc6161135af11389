"""Two-stage release: each site approves the study hash in its own audit log first.

``safeflow study approve STUDY.yaml --site NAME --state-dir DIR`` is the site's
pre-assessment filing (事前评估备案): it checks the study (not expired, every analysis
within ``allowed_variables`` and accepted by the site's export gate), then appends a
``study_approval`` entry naming the study hash to the site's Merkle audit log
(``DIR/sites/NAME/audit.sqlite``, the log the site's runtime keeps during runs) and signs
a checkpoint over it with the site's key.

Before a run, :func:`check_approvals` looks in every site's log for an approval of
*exactly this* study hash that is covered by a checkpoint the site signed (an inclusion
proof against the signed root, so a row added to the SQLite file by hand does not count).
A study file whose meaning changed after approval has another hash, so the run is refused
until every site approves again; a change of comments or formatting keeps the hash
(:mod:`safeflow.study.model`).

Examples
--------
>>> import tempfile
>>> from pathlib import Path
>>> from safeflow.study.enforce import _EXAMPLE
>>> tmp = Path(tempfile.mkdtemp())
>>> _ = (tmp / "study.yaml").write_text(_EXAMPLE)
>>> a = approve_study(tmp / "study.yaml", "a", state_dir=tmp / "state")
>>> a.site, a.index
('a', 0)
>>> check_approvals(tmp / "study.yaml", state_dir=tmp / "state")
Traceback (most recent call last):
...
safeflow.study.errors.StudyRefused: study 'demo' (sha256 ...) is not approved by site 'b': ...
>>> _ = approve_study(tmp / "study.yaml", "b", state_dir=tmp / "state")
>>> sorted(check_approvals(tmp / "study.yaml", state_dir=tmp / "state"))
['a', 'b']
>>> import shutil; shutil.rmtree(tmp)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from safeflow.errors import InvalidParameter, VerificationError
from safeflow.policy.customs import Party
from safeflow.policy.merkle import leaf_hash, verify_inclusion
from safeflow.study.enforce import check_study
from safeflow.study.errors import RULE_APPROVAL, StudyRefused
from safeflow.study.load import load_study
from safeflow.study.model import Study

#: the ``kind`` of a site's approval entry in its audit log
APPROVAL_KIND = "study_approval"


@dataclass(frozen=True)
class Approval:
    """One site's recorded approval of one study hash.

    Attributes
    ----------
    site : str
    study : str
        The study id.
    study_sha256 : str
        The approved study hash.
    index : int
        The entry's index in the site's audit log.
    leaf_sha256 : str
        Its RFC 6962 leaf hash (hex).
    time : str
        When it was recorded (UTC, ISO 8601).
    checkpoint_size : int
        Size of the signed checkpoint that covers it.
    """

    site: str
    study: str
    study_sha256: str
    index: int
    leaf_sha256: str
    time: str
    checkpoint_size: int

    def to_dict(self) -> dict[str, Any]:
        """As JSON-able data (for ``result.json``)."""
        return dict(self.__dict__)


def _study(study: Study | str | Path) -> Study:
    return study if isinstance(study, Study) else load_study(study)


def _root(state_dir: str | Path, site: str) -> Path:
    """The site's state directory, as the federation's customs lays it out."""
    return Path(state_dir) / "sites" / site


def _site_name(study: Study, site: str) -> str:
    names = [s.name for s in study.sites]
    if site not in names:
        raise InvalidParameter(f"site {site!r} is not a site of study {study.id!r}; its sites "
                               f"are {', '.join(names)}")
    return site


def approval_entry(study: Study, site: str) -> dict[str, Any]:
    """The audit entry a site appends when it approves ``study``.

    Examples
    --------
    >>> from safeflow.study.load import parse_study
    >>> from safeflow.study.enforce import _EXAMPLE
    >>> e = approval_entry(parse_study(_EXAMPLE), "a")
    >>> e["kind"], e["jurisdiction"], len(e["study_sha256"])
    ('study_approval', 'CN', 64)
    """
    spec = study.site(_site_name(study, site))
    return {
        "kind": APPROVAL_KIND, "study": study.id, "study_sha256": study.sha256,
        "title": study.title, "site": spec.name, "jurisdiction": spec.jurisdiction,
        "purpose": study.purpose, "destination": study.destination,
        "recipient": study.recipient, "expires": study.expires.isoformat(),
        "ethics_approval": study.instruments.ethics_approval,
        "instruments": study.instruments.policy(),
        "allowed_variables": list(study.allowed_variables),
        "analyses": [[a.id, a.type, a.protocol] for a in study.analyses],
    }


def approve_study(study: Study | str | Path, site: str, *,
                  state_dir: str | Path) -> Approval:
    """Record ``site``'s approval of the study hash in its audit log, with a checkpoint.

    Parameters
    ----------
    study : Study or path
        The study (a path is loaded and validated).
    site : str
        The approving site (one of the study's sites).
    state_dir : str or Path
        The state directory the study runs with (the site's keys and audit log live in
        ``state_dir/sites/<site>/``).

    Returns
    -------
    Approval

    Raises
    ------
    StudyError
        The study file is not valid.
    StudyRefused
        The runtime would refuse the study (expired, a variable not allowed, a protocol
        the export gates refuse): a site does not approve what it would not run.
    InvalidParameter
        ``site`` is not one of the study's sites.

    Examples
    --------
    >>> approve_study.__name__
    'approve_study'
    """
    s = _study(study)
    _site_name(s, site)
    check_study(s)
    party = Party(_root(state_dir, site), site)
    try:
        index, leaf = party.log.append(approval_entry(s, site))
        cp = party.log.checkpoint()
        entry = party.log.entry(index)
    finally:
        party.close()
    return Approval(site, s.id, s.sha256, index, leaf.hex(), str(entry["time"]), cp.size)


def find_approval(study: Study | str | Path, site: str, *,
                  state_dir: str | Path) -> tuple[Approval | None, str | None]:
    """The site's newest approval of this study hash, and the hash it last approved.

    Returns ``(approval or None, sha256 of the newest approval of the same study id)``;
    the second tells a changed file (approved before, another hash) from a missing
    approval.

    Raises
    ------
    VerificationError
        The approval is in the log but no checkpoint signed by the site covers it, or the
        inclusion proof fails (the log file was edited).

    Examples
    --------
    >>> import tempfile
    >>> from safeflow.study.load import parse_study
    >>> from safeflow.study.enforce import _EXAMPLE
    >>> with tempfile.TemporaryDirectory() as state:
    ...     find_approval(parse_study(_EXAMPLE), "a", state_dir=state)
    (None, None)
    """
    s = _study(study)
    _site_name(s, site)
    root = _root(state_dir, site)
    if not (root / "audit.sqlite").is_file():
        return None, None
    party = Party(root, site)
    try:
        log = party.log
        latest: str | None = None
        for index in range(log.size - 1, -1, -1):
            entry = log.entry(index)
            if entry.get("kind") != APPROVAL_KIND or entry.get("study") != s.id:
                continue
            latest = latest or str(entry.get("study_sha256"))
            if entry.get("study_sha256") != s.sha256 or entry.get("site") != site:
                continue
            leaf = leaf_hash(log.entry_bytes(index))
            cp = log.latest_checkpoint()
            if cp is None or cp.size <= index or not cp.verify(party.key.verify_key):
                raise VerificationError(
                    f"site {site!r}: its approval (audit entry {index}) is not covered by a "
                    "checkpoint the site signed; approve the study again")
            if not verify_inclusion(leaf, index, cp.size, log.inclusion_proof(index, cp.size),
                                    cp.root):
                raise VerificationError(
                    f"site {site!r}: the approval entry {index} does not verify against the "
                    "site's signed checkpoint; its audit log was altered")
            return Approval(site, s.id, s.sha256, index, leaf.hex(), str(entry["time"]),
                            cp.size), latest
        return None, latest
    finally:
        party.close()


def check_approvals(study: Study | str | Path, *,
                    state_dir: str | Path) -> dict[str, Approval]:
    """Every site's approval of exactly this study hash, or :class:`StudyRefused`.

    Raises
    ------
    StudyRefused
        (rule ``STUDY-approval``) Some site has not approved this hash; the message names
        each such site, whether it approved an earlier version, and the command to run.

    Examples
    --------
    >>> check_approvals.__name__
    'check_approvals'
    """
    s = _study(study)
    found: dict[str, Approval] = {}
    problems: list[str] = []
    for site in s.sites:
        approval, latest = find_approval(s, site.name, state_dir=state_dir)
        if approval is not None:
            found[site.name] = approval
        elif latest is not None:
            problems.append(f"site {site.name!r} approved another version of the file "
                            f"(sha256 {latest[:12]}...), not this one")
        else:
            problems.append(f"site {site.name!r} has not approved it")
    if problems:
        missing = [n.name for n in s.sites if n.name not in found]
        file = str(s.path) if s.path is not None else "STUDY.yaml"
        cmds = "; ".join(f"safeflow study approve {file} --site {n} --state-dir {state_dir}"
                         for n in missing)
        who = ", ".join(repr(n) for n in missing)
        raise StudyRefused(
            f"study {s.id!r} (sha256 {s.sha256[:12]}...) is not approved by site"
            f"{'s' if len(missing) > 1 else ''} {who}: {'; '.join(problems)}. Every site "
            "must approve this exact version before it runs; nothing was run",
            rule=RULE_APPROVAL, fix=f"each site reviews the file and runs: {cmds}")
    return found


__all__ = ["APPROVAL_KIND", "Approval", "approval_entry", "approve_study", "check_approvals",
           "find_approval"]
