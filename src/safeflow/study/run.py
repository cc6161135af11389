"""Run a study file end to end: check, compute, certify, export, report.

:func:`run_study` is what ``safeflow run STUDY.yaml`` does:

1. load and validate the file (:func:`~safeflow.study.load.load_study`);
2. open a :class:`StudyFederation`, which **before any data is touched** refuses an
   expired study, an analysis outside ``allowed_variables``, a protocol some site's export
   gate refuses (:mod:`safeflow.study.enforce`) and a study hash that some site has not
   approved in its audit log (:mod:`safeflow.study.approve`); only then does it open the
   sites' data and start customs, with the study's policy (packs, SDC profile,
   instruments, recipient) and the persistent ``state_dir`` (keys, audit logs, release
   and budget ledgers);
3. run every analysis through the public API (``sf.describe``, ``sf.glm``, ``sf.cox`` ...),
   showing progress and the bytes that crossed each border. The federation re-checks
   every analysis before it runs, including analyses started by hand on it. An analysis
   that customs denies (:class:`~safeflow.errors.ExportDenied`, or
   :class:`~safeflow.errors.BudgetExceeded` for a DP release over budget) is recorded as
   denied with its rule and fix; any other error stops the run (typed, never re-wrapped,
   with a note naming the analysis);
4. write under ``out_dir``::

       result.json            what ran: study hash, approvals, each analysis' outcome,
                              rule, obligations, bytes across borders, files
       study.json             the canonical study content the hash covers
       results/<id>.csv       the result tables (also .parquet): Table 1, GLM / Cox
                              summary, Kaplan-Meier table, log-rank test ...
       releases/<id>/         each certified release (value files, certificate.json,
                              SUMMARY.txt): ``safeflow verify`` checks it offline
       audit/                 copies of every party's audit log with a fresh signed
                              checkpoint, and checkpoints.json (keys, roots, sizes)
       revealed.json, .csv    what was revealed to whom (:mod:`safeflow.study.manifest`)
       report.html            the HTML report (:func:`safeflow.report.write_report`)

Examples
--------
>>> import tempfile
>>> from pathlib import Path
>>> tmp = Path(tempfile.mkdtemp())
>>> study = _example_study(tmp)
>>> from safeflow.study.approve import approve_study
>>> for site in ("a", "b"):
...     _ = approve_study(study, site, state_dir=tmp / "state")
>>> result = run_study(study, tmp / "out", state_dir=tmp / "state", progress=False)
>>> result.ok, [o.status for o in result.outcomes]
(True, ['released'])
>>> sorted(p.name for p in (tmp / "out").iterdir())
['audit', 'releases', 'report.html', 'result.json', 'results', 'revealed.csv', 'revealed.json', 'study.json']
>>> import shutil; shutil.rmtree(tmp)
"""  # noqa: E501

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

import safeflow as sf
from safeflow.dp.spec import exact, fraction_str
from safeflow.errors import BudgetExceeded, ExportDenied, InvalidParameter, SafeflowError
from safeflow.federation import Federation
from safeflow.release import Release
from safeflow.study.approve import Approval, check_approvals
from safeflow.study.enforce import check_expiry, check_protocol, check_study, check_variables
from safeflow.study.errors import StudyError
from safeflow.study.load import load_study
from safeflow.study.manifest import (
    manifest_rows,
    manifest_table,
    stages_from_audit,
    stages_from_log,
)
from safeflow.study.model import AnalysisSpec, Study

#: ``result.json`` format; a directory holding it is a study output that a re-run replaces
RESULT_FORMAT = "safeflow.study-result/1"
RESULT_FILE = "result.json"


class StudyFederation(Federation):
    """A federation bound to one approved study; every analysis is checked before it runs.

    Building it checks the study (expiry, variables, protocols) and every site's approval
    of its hash *before* opening any site's data; :meth:`run` re-checks expiry, variables
    and the protocol against the live export gates for every analysis, also one started by
    hand (``sf.glm(fed, ...)``). There is no switch that skips a check.

    Parameters
    ----------
    study : Study
        A validated study (:func:`~safeflow.study.load.load_study`).
    state_dir : str or Path
        Where keys, audit logs (with the sites' approvals) and ledgers persist.

    Examples
    --------
    >>> StudyFederation.__mro__[1].__name__
    'Federation'
    """

    def __init__(self, study: Study, *, state_dir: str | Path) -> None:
        if not isinstance(study, Study):
            raise InvalidParameter("StudyFederation takes a Study (safeflow.study.load_study)")
        if state_dir is None:
            raise InvalidParameter("a study runs with a state_dir: the sites' approvals, keys "
                                   "and audit logs live there")
        check_study(study)
        self.approvals: dict[str, Approval] = check_approvals(study, state_dir=state_dir)
        sites = [_site(study, s.name) for s in study.sites]
        options: dict[str, Any] = {}
        if study.threshold is not None:
            options["threshold"] = study.threshold
        if study.max_rows_per_site is not None:
            options["max_rows_per_site"] = study.max_rows_per_site
        self.study_spec = study
        self._current: AnalysisSpec | None = None
        super().__init__(sites, destination=study.destination, purpose=study.purpose,
                         transport="local", study=study.id, policy=study.policy_settings(),
                         state_dir=state_dir, **options)
        self.customs.party.log.append({
            "kind": "study_run", "study": study.id, "study_sha256": study.sha256,
            "approvals": {n: {"index": a.index, "leaf_sha256": a.leaf_sha256}
                          for n, a in sorted(self.approvals.items())}})

    @contextmanager
    def analysis(self, spec: AnalysisSpec) -> Iterator[None]:
        """Name the study analysis being run (refusals then cite its id and line)."""
        self._current = spec
        try:
            yield
        finally:
            self._current = None

    def run(self, analysis: Any, *args: Any, protocol: str = "masking",
            **kwargs: Any) -> Release:
        """Check the analysis against the study, then run it (see :meth:`Federation.run`)."""
        spec, study = self._current, self.study_spec
        aid = spec.id if spec is not None else f"{analysis.name} (not in the study file)"
        line = spec.line if spec is not None else None
        check_expiry(study)
        check_variables(study, analysis.columns(), analysis=aid, line=line)
        check_protocol(study, protocol, analysis.columns(), analysis=aid, line=line,
                       gate=self.customs.gate)
        return super().run(analysis, *args, protocol=protocol, **kwargs)

    def close(self) -> None:
        """Close customs' and the sites' audit logs and the ledgers now."""
        self.customs.close()
        accounts = getattr(self, "accounts", None)
        if accounts is not None:
            accounts.close()


def _site(study: Study, name: str) -> sf.Site:
    spec = study.site(name)
    i = [s.name for s in study.sites].index(name)
    source = spec.data.resolve(study.base_dir)
    if isinstance(source, Path) and not source.exists():
        raise StudyError(f"sites[{i}].data names a file that does not exist: "
                         f"{spec.data.path!r} (paths are relative to the study file)",
                         path=study.path, line=study.line(f"sites[{i}].data"),
                         field=f"sites[{i}].data")
    extra: dict[str, Any] = {}
    if spec.budget is not None:
        extra["budget"] = spec.budget
    return sf.Site(spec.name, source, spec.jurisdiction, schema=study.schema, ciio=spec.ciio,
                   ftz=spec.ftz, **extra)


# ------------------------------------------------------------------------------------------
# Results
# ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AnalysisOutcome:
    """What happened to one analysis of the study.

    Attributes
    ----------
    id, type, protocol : str
    status : {"released", "denied"}
    outcome : str or None
        The policy decision (e.g. ``ALLOW``), or ``None`` when denied by a budget.
    rule, fix : str or None
        For a denial: the rule that decided and the next step.
    obligations : tuple of str
    border_bytes : mapping
        ``"CN->NL" -> bytes`` that crossed each border during the run.
    epsilon : str or None
        ε spent (DP releases), exact: ``"1/2"``.
    export_dir : Path or None
        The release's export directory.
    tables : tuple of Path
        Result tables written (CSV and Parquet).
    seconds : float
    """

    id: str
    type: str
    protocol: str
    status: str
    outcome: str | None = None
    rule: str | None = None
    fix: str | None = None
    message: str | None = None
    obligations: tuple[str, ...] = ()
    border_bytes: Mapping[str, int] = field(default_factory=dict)
    epsilon: str | None = None
    export_dir: Path | None = None
    tables: tuple[Path, ...] = ()
    seconds: float = 0.0

    def to_dict(self, root: Path) -> dict[str, Any]:
        """JSON-able, paths relative to ``root``."""
        def rel(p: Path) -> str:
            return p.relative_to(root).as_posix()
        return {"id": self.id, "type": self.type, "protocol": self.protocol,
                "status": self.status, "outcome": self.outcome, "rule": self.rule,
                "fix": self.fix, "message": self.message,
                "obligations": list(self.obligations), "border_bytes": dict(self.border_bytes),
                "epsilon": self.epsilon,
                "export_dir": None if self.export_dir is None else rel(self.export_dir),
                "tables": [rel(p) for p in self.tables], "seconds": round(self.seconds, 3)}


@dataclass(frozen=True)
class StudyResult:
    """The outcome of :func:`run_study`: per-analysis outcomes, releases and written files."""

    study: Study
    out_dir: Path
    outcomes: tuple[AnalysisOutcome, ...]
    releases: Mapping[str, Release] = field(repr=False)
    approvals: Mapping[str, Approval] = field(repr=False)
    report: Path | None = None
    manifest: Path | None = None
    checkpoints: Path | None = None
    keys: Mapping[str, str] = field(default_factory=dict, repr=False)

    @property
    def ok(self) -> bool:
        """True when every analysis was released."""
        return all(o.status == "released" for o in self.outcomes)

    @property
    def denied(self) -> tuple[AnalysisOutcome, ...]:
        """The analyses customs denied."""
        return tuple(o for o in self.outcomes if o.status == "denied")

    def outcome(self, analysis_id: str) -> AnalysisOutcome:
        """The outcome of one analysis (KeyError if none)."""
        for o in self.outcomes:
            if o.id == analysis_id:
                return o
        raise KeyError(analysis_id)


def _tables(kind: str, value: Any) -> dict[str, pd.DataFrame]:
    """The result tables of one release: ``suffix -> DataFrame`` (``""`` is the main one)."""
    if isinstance(value, pd.DataFrame):
        return {"": value}
    out: dict[str, pd.DataFrame] = {}
    if kind == "kaplan_meier":
        out[""], out["summary"] = value.survival, value.summary
    elif kind == "logrank":
        out[""], out["groups"] = value.summary, value.table
    else:
        out[""] = value.summary
        base = getattr(value, "baseline_survival", None)
        if isinstance(base, pd.DataFrame):
            out["baseline"] = base
    return out


def _flat(df: pd.DataFrame) -> pd.DataFrame:
    if not isinstance(df.index, pd.RangeIndex) or df.index.name is not None:
        df = df.reset_index()
    df = df.copy()
    df.columns = [str(c) for c in df.columns]
    return df


def _write_table(df: pd.DataFrame, stem: Path) -> list[Path]:
    flat = _flat(df)
    csv, parquet = stem.with_name(stem.name + ".csv"), stem.with_name(stem.name + ".parquet")
    flat.to_csv(csv, index=False)
    try:
        flat.to_parquet(parquet, index=False)
    except (TypeError, ValueError, ImportError, ArithmeticError, OSError):
        # mixed-type object columns (levels of several columns): store them as text
        for c in flat.columns:
            if flat[c].dtype == object:
                flat[c] = flat[c].map(lambda x: None if x is None or x != x else str(x))
        flat.to_parquet(parquet, index=False)
    return [csv, parquet]


def _prepare_out(out_dir: str | Path) -> Path:
    out = Path(out_dir)
    if out.exists():
        if not out.is_dir():
            raise InvalidParameter(f"out_dir {out} exists and is not a directory")
        if any(out.iterdir()):
            if not (out / RESULT_FILE).is_file():
                raise InvalidParameter(
                    f"out_dir {out} is not empty and holds no earlier study output "
                    f"({RESULT_FILE}); choose a new or empty directory")
            shutil.rmtree(out)  # an earlier run's output: replaced as a whole
    out.mkdir(parents=True, exist_ok=True)
    (out / "results").mkdir()
    (out / "releases").mkdir()
    (out / "audit" / "sites").mkdir(parents=True)
    return out


def _call(fed: StudyFederation, spec: AnalysisSpec) -> Release:
    fn = getattr(sf, spec.type)
    kwargs = spec.params.kwargs()
    if spec.dp is not None:
        kwargs["dp"] = spec.dp.to_dp(unit=fed.study_spec.schema.unit)
    with fed.analysis(spec):
        return fn(fed, protocol=spec.protocol, **kwargs)  # type: ignore[no-any-return]


def _bytes_text(border: Mapping[str, int]) -> str:
    return ", ".join(f"{k} {v:,} B" for k, v in sorted(border.items())) or "none"


def _checkpoints(fed: StudyFederation, audit: Path) -> dict[str, Any]:
    parties = [("customs", fed.customs.party, audit / "customs.sqlite"),
               *((n, p, audit / "sites" / f"{n}.sqlite") for n, p in fed.customs.sites.items())]
    out: dict[str, Any] = {}
    for name, party, copy in parties:
        cp = party.log.checkpoint()
        party.log.backup(copy)
        role = "customs" if party is fed.customs.party else "site"
        out[name] = {
            "role": role, "party": name, "log": copy.relative_to(audit.parent).as_posix(),
            "public_key": party.key.verify_key.to_bytes().hex(), "checkpoint": cp.to_dict()}
    (audit / "checkpoints.json").write_text(json.dumps(out, indent=2, sort_keys=True) + "\n")
    return out


def _json_default(x: Any) -> Any:
    if isinstance(x, Path):
        return x.as_posix()
    return str(x)


def run_study(path: str | Path | Study, out_dir: str | Path, *, state_dir: str | Path,
              progress: bool = True, console: Console | None = None) -> StudyResult:
    """Run every analysis of a study and write its certified outputs and report.

    Parameters
    ----------
    path : str, Path or Study
        The study file (or an already loaded study).
    out_dir : str or Path
        Output directory: new, empty, or the output of an earlier run of a study (it is
        then replaced as a whole; any other non-empty directory is refused).
    state_dir : str or Path
        The persistent state: keys, audit logs (where the sites' approvals are), release
        and budget ledgers. Use the directory the sites approved in.
    progress : bool
        Show a progress bar and one line per analysis (outcome, bytes across borders).
    console : rich.console.Console, optional
        Where progress goes (default: standard output).

    Returns
    -------
    StudyResult

    Raises
    ------
    StudyError
        The study file is not valid (names the line and field), or a data file is missing.
    StudyRefused
        Expired, a variable outside ``allowed_variables``, a protocol an export gate
        refuses, or a site has not approved this exact study hash. Nothing was run.
    SafeflowError
        Any other failure of an analysis stops the run (the error carries a note naming
        the analysis). Denials by customs do not: they are recorded in the result.

    Examples
    --------
    >>> run_study.__name__
    'run_study'
    """
    study = path if isinstance(path, Study) else load_study(path)
    state = Path(state_dir)
    fed = StudyFederation(study, state_dir=state)  # every check, before any data is read
    try:
        out = _prepare_out(out_dir)
        return _run(fed, study, out, progress=progress,
                    console=console if console is not None else Console())
    finally:
        fed.close()


def _run(fed: StudyFederation, study: Study, out: Path, *, progress: bool,
         console: Console) -> StudyResult:
    started = datetime.now(UTC).isoformat(timespec="seconds")
    outcomes: list[AnalysisOutcome] = []
    releases: dict[str, Release] = {}
    rows: list[dict[str, Any]] = []
    crossed = any(s.jurisdiction != study.destination for s in study.sites)
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn())
    with Progress(*columns, console=console, disable=not progress, transient=True) as bar:
        task = bar.add_task(study.id, total=len(study.analyses))
        for spec in study.analyses:
            bar.update(task, description=f"{spec.id} ({spec.type} via {spec.protocol})")
            before = {n: p.log.size for n, p in fed.customs.sites.items()}
            t0 = time.perf_counter()
            try:
                rel = _call(fed, spec)
            except (ExportDenied, BudgetExceeded) as e:
                seconds = time.perf_counter() - t0
                entries = [p.log.entry(i) for n, p in fed.customs.sites.items()
                           for i in range(before[n], p.log.size)]
                stages = stages_from_audit(entries)
                border: dict[str, int] = {}
                for e2 in entries:
                    if e2.get("kind") == "message":
                        key = f"{study.site(str(e2['sender'])).jurisdiction}->{study.destination}"
                        border[key] = border.get(key, 0) + int(e2.get("size", 0))
                rule = getattr(e, "rule", None) or (
                    "privacy-budget" if isinstance(e, BudgetExceeded) else type(e).__name__)
                fix = getattr(e, "fix", None) or (
                    "request a smaller ε, or the sites raise their budgets (sites[i].budget: "
                    "a new version of the study, approved again)"
                    if isinstance(e, BudgetExceeded) else None)
                outcomes.append(AnalysisOutcome(
                    spec.id, spec.type, spec.protocol, "denied",
                    outcome="DENY_SDC" if isinstance(e, BudgetExceeded) else _outcome(str(e)),
                    rule=rule, fix=fix, message=str(e), border_bytes=border,
                    seconds=seconds))
                rows += manifest_rows(spec.id, spec.protocol, stages,
                                      destination=study.destination, released=None,
                                      rule=rule, crossed=crossed)
                if progress:
                    bar.console.print(f"[red]✗ {spec.id}[/red] ({spec.type} via "
                                      f"{spec.protocol}) denied by {rule}; bytes across "
                                      f"borders (sites' side): {_bytes_text(border)}")
            except SafeflowError as e:
                where = f" ({study.path.name} line {spec.line})" if study.path else ""
                e.add_note(f"while running analysis {spec.id!r}{where} of study {study.id!r}")
                raise
            else:
                seconds = time.perf_counter() - t0
                releases[spec.id] = rel
                export = rel.export(out / "releases" / spec.id)
                tables: list[Path] = []
                for suffix, df in _tables(spec.type, rel.value).items():
                    name = spec.id + (f".{suffix}" if suffix else "")
                    tables += _write_table(df, out / "results" / name)
                border = dict(rel.facts.get("run", {}).get("border_bytes", {}))
                eps = rel.epsilon
                outcomes.append(AnalysisOutcome(
                    spec.id, spec.type, spec.protocol, "released",
                    outcome=rel.decision.outcome.value, rule=", ".join(rel.decision.rules),
                    obligations=tuple(rel.decision.obligations), border_bytes=border,
                    epsilon=None if eps is None else fraction_str(exact(eps)),
                    export_dir=export,
                    tables=tuple(tables), seconds=seconds))
                rows += manifest_rows(spec.id, spec.protocol, stages_from_log(rel.log),
                                      destination=study.destination,
                                      released=rel.decision.outcome.value,
                                      dp=rel.facts.get("output", {}).get("dp"), crossed=crossed)
                if progress:
                    bar.console.print(
                        f"[green]✓ {spec.id}[/green] ({spec.type} via {spec.protocol}) "
                        f"{rel.decision.outcome.value}; bytes across borders: "
                        f"{_bytes_text(border)} ({seconds:.1f} s)")
            bar.advance(task)
    budgets = fed.budgets() if hasattr(fed, "budgets") else {}
    checkpoints = _checkpoints(fed, out / "audit")
    (out / "revealed.json").write_text(json.dumps(rows, indent=2) + "\n")
    manifest_table(rows).to_csv(out / "revealed.csv", index=False)
    (out / "study.json").write_bytes(study.canonical_json())
    keys = {n: c["public_key"] for n, c in checkpoints.items()}
    report = _report(study, out, outcomes, releases, budgets, rows, fed)
    result = StudyResult(study, out, tuple(outcomes), releases, dict(fed.approvals),
                         report=report, manifest=out / "revealed.json",
                         checkpoints=out / "audit" / "checkpoints.json", keys=keys)
    _write_result(result, started, budgets, checkpoints)
    if progress:
        n_ok = sum(o.status == "released" for o in outcomes)
        colour = "green" if result.ok else "yellow"
        console.print(f"[{colour}]{n_ok} of {len(outcomes)} analyses released[/{colour}]; "
                      f"outputs in {out}")
    return result


def _outcome(message: str) -> str | None:
    for word in ("PROHIBITED", "NEEDS_APPROVAL", "SECURITY_ASSESSMENT", "SCC_OR_CERT",
                 "REVIEW", "DENY_SDC"):
        if word in message:
            return word
    return "DENY_SDC" if "SDC-" in message else None


def _meta(study: Study, fed: StudyFederation,
          outcomes: list[AnalysisOutcome]) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "study": study.id, "title": study.title,
        "study_sha256": study.sha256, "purpose": study.purpose,
        "sites": [f"{s.name} ({s.jurisdiction})" for s in study.sites],
        "destination": f"{study.destination} ({study.recipient})",
        "expires": study.expires.isoformat(),
        "ethics_approval": study.instruments.ethics_approval or "-",
        "instruments": {k: v for k, v in study.instruments.policy().items() if v},
        "approvals": [{"site": a.site, "audit_entry": a.index, "approved": a.time}
                      for a in fed.approvals.values()],
        "protocols": sorted({a.protocol for a in study.analyses}),
        "sdc_profile": study.policy.sdc_profile,
    }
    denied = [{"analysis": o.id, "rule": o.rule, "next step": o.fix or "-"}
              for o in outcomes if o.status == "denied"]
    if denied:
        meta["denied"] = denied
    return meta


def _report(study: Study, out: Path, outcomes: list[AnalysisOutcome],
            releases: Mapping[str, Release], budgets: Mapping[str, Any],
            rows: list[dict[str, Any]], fed: StudyFederation) -> Path:
    from safeflow.report import write_report

    items = [(study.analysis(i).title or i, rel) for i, rel in releases.items()]
    return Path(write_report(out / "report.html", items, title=study.title,
                             meta=_meta(study, fed, outcomes),
                             budgets={k: list(v) for k, v in budgets.items()} or None,
                             manifest=rows))


def _write_result(result: StudyResult, started: str, budgets: Mapping[str, Any],
                  checkpoints: Mapping[str, Any]) -> None:
    s, out = result.study, result.out_dir
    data = {
        "format": RESULT_FORMAT, "study": s.id, "title": s.title, "study_sha256": s.sha256,
        "study_file": None if s.path is None else str(s.path), "started": started,
        "finished": datetime.now(UTC).isoformat(timespec="seconds"),
        "sites": [{"name": x.name, "jurisdiction": x.jurisdiction} for x in s.sites],
        "destination": s.destination, "approvals": {k: a.to_dict()
                                                    for k, a in result.approvals.items()},
        "analyses": [o.to_dict(out) for o in result.outcomes],
        "released": sum(o.status == "released" for o in result.outcomes),
        "denied": len(result.denied), "keys": dict(result.keys),
        "budgets": budgets, "checkpoints": {k: v["checkpoint"] for k, v in checkpoints.items()},
        "report": None if result.report is None else result.report.relative_to(out).as_posix(),
    }
    (out / RESULT_FILE).write_text(json.dumps(data, indent=2, default=_json_default) + "\n")


def _example_study(tmp: Path) -> Path:
    """A tiny two-site study (for the docstring examples)."""
    import numpy as np

    rng = np.random.default_rng(7)
    (tmp / "data").mkdir()
    for name in ("a", "b"):
        pd.DataFrame({"age": rng.integers(30, 80, 40).astype(float)}).to_csv(
            tmp / "data" / f"{name}.csv", index=False)
    (tmp / "study.yaml").write_text(
        "title: Example\npurpose: scientific-research\ndestination: NL\nexpires: 2099-12-31\n"
        "sites:\n  - {name: a, jurisdiction: CN, data: data/a.csv}\n"
        "  - {name: b, jurisdiction: NL, data: data/b.csv}\n"
        "schema: {columns: {age: {bounds: [18, 100]}}}\nallowed_variables: [age]\n"
        "analyses:\n  - {id: table1, type: describe, columns: [age]}\n")
    return tmp / "study.yaml"


__all__ = ["RESULT_FILE", "RESULT_FORMAT", "AnalysisOutcome", "StudyFederation", "StudyResult",
           "run_study"]
