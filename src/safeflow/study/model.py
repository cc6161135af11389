"""A validated study: frozen, typed dataclasses built by :mod:`safeflow.study.load`.

Nothing past the loader sees an untyped string key (STYLE.md item 13): a
:class:`Study` holds its sites (:class:`SiteSpec`), the public :class:`~safeflow.Schema`,
destination, recipient, :class:`Instruments`, the variables the approval covers, the
expiry date, the :class:`AnalysisSpec` list (each with typed parameters such as
:class:`GLMParams`) and the :class:`PolicySpec`.

**The study hash** is the SHA-256 of the RFC 8785 canonical JSON of :meth:`Study.to_dict`,
the *validated* content with every default filled in (format ``safeflow.study/1``). So
comments, key order, quoting, ``18`` vs ``18.0`` and spelling out a default do not change
it; any change of meaning does (a site, a data source, a column bound, an analysis, the
expiry date, and the bytes of a study policy pack, whose SHA-256 is part of the content).
Site data is never hashed: it never leaves its site.

Examples
--------
>>> p = GLMParams(y="leak", X=("arm", "age"), family="binomial")
>>> p.variables()
('leak', 'arm', 'age')
>>> p.kwargs()["family"]
'binomial'
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal, get_args

import rfc8785

from safeflow.data import SQL, Schema
from safeflow.dp.spec import DP, fraction_str
from safeflow.policy.customs import PolicySettings

#: the ``format`` of the canonical study content (changes only with an incompatible layout)
STUDY_FORMAT = "safeflow.study/1"

AnalysisType = Literal[
    "describe", "histogram", "crosstab", "glm", "kaplan_meier", "logrank", "cox"]
Protocol = Literal["masking", "he", "plain"]
Recipient = Literal["research", "company", "court", "law_enforcement"]
DPMode = Literal["central", "local"]

ANALYSIS_TYPES: tuple[str, ...] = get_args(AnalysisType)
PROTOCOLS: tuple[str, ...] = get_args(Protocol)
RECIPIENTS: tuple[str, ...] = get_args(Recipient)
DP_MODES: tuple[str, ...] = get_args(DPMode)
#: analyses that accept ``dp:`` (GLM only with family gaussian)
DP_TYPES: tuple[str, ...] = (
    "describe", "histogram", "crosstab", "kaplan_meier", "logrank", "glm")
#: instrument fields that customs puts into the facts (POLICY.md ``instruments``)
POLICY_FLAGS: tuple[str, ...] = (
    "scc", "hgr_filing", "explicit_consent", "tia", "dpia", "pipia", "certification")
POLICY_IDS: tuple[str, ...] = ("security_assessment", "hgr_approval", "authority_approval")


def _grid(points: tuple[float, ...] | None) -> list[float] | None:
    return None if points is None else list(points)


# ------------------------------------------------------------------------------------------
# Analysis parameters: one frozen class per analysis type
# ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DescribeParams:
    """``sf.describe``: Table 1 of ``columns``, optionally by a categorical column."""

    columns: tuple[str, ...]
    by: str | None = None
    by_site: bool = False

    def variables(self) -> tuple[str, ...]:
        """Columns the analysis reads."""
        return (*self.columns, *((self.by,) if self.by else ()))

    def kwargs(self) -> dict[str, Any]:
        """Keyword arguments of the public API call."""
        return {"columns": list(self.columns), "by": self.by, "by_site": self.by_site}


@dataclass(frozen=True)
class HistogramParams:
    """``sf.histogram``: counts of a numeric column in public bins."""

    column: str
    bins: tuple[float, ...]
    by: str | None = None

    def variables(self) -> tuple[str, ...]:
        """Columns the analysis reads."""
        return (self.column, *((self.by,) if self.by else ()))

    def kwargs(self) -> dict[str, Any]:
        """Keyword arguments of the public API call."""
        return {"column": self.column, "bins": list(self.bins), "by": self.by}


@dataclass(frozen=True)
class CrosstabParams:
    """``sf.crosstab``: two categorical columns against each other."""

    rows: str
    cols: str

    def variables(self) -> tuple[str, ...]:
        """Columns the analysis reads."""
        return (self.rows, self.cols)

    def kwargs(self) -> dict[str, Any]:
        """Keyword arguments of the public API call."""
        return {"rows": self.rows, "cols": self.cols}


@dataclass(frozen=True)
class GLMParams:
    """``sf.glm``: a generalised linear model of ``y`` on ``X``."""

    y: str
    X: tuple[str, ...]
    family: Literal["gaussian", "binomial", "poisson"] = "gaussian"
    offset: str | None = None
    penalty: float = 0.0

    def variables(self) -> tuple[str, ...]:
        """Columns the analysis reads."""
        return (self.y, *self.X, *((self.offset,) if self.offset else ()))

    def kwargs(self) -> dict[str, Any]:
        """Keyword arguments of the public API call."""
        return {"y": self.y, "X": list(self.X), "family": self.family, "offset": self.offset,
                "penalty": self.penalty}


@dataclass(frozen=True)
class KaplanMeierParams:
    """``sf.kaplan_meier``: survival curves on a public time grid."""

    duration: str
    event: str
    by: str | None = None
    time_grid: tuple[float, ...] | None = None
    alpha: float = 0.05

    def variables(self) -> tuple[str, ...]:
        """Columns the analysis reads."""
        return (self.duration, self.event, *((self.by,) if self.by else ()))

    def kwargs(self) -> dict[str, Any]:
        """Keyword arguments of the public API call."""
        return {"duration": self.duration, "event": self.event, "by": self.by,
                "time_grid": _grid(self.time_grid), "alpha": self.alpha}


@dataclass(frozen=True)
class LogRankParams:
    """``sf.logrank``: log-rank test across the levels of ``group``."""

    duration: str
    event: str
    group: str
    time_grid: tuple[float, ...] | None = None

    def variables(self) -> tuple[str, ...]:
        """Columns the analysis reads."""
        return (self.duration, self.event, self.group)

    def kwargs(self) -> dict[str, Any]:
        """Keyword arguments of the public API call."""
        return {"duration": self.duration, "event": self.event, "group": self.group,
                "time_grid": _grid(self.time_grid)}


@dataclass(frozen=True)
class CoxParams:
    """``sf.cox``: Cox proportional hazards, pooled or stratified (``strata: [site]``)."""

    duration: str
    event: str
    covariates: tuple[str, ...]
    strata: tuple[str, ...] = ()
    ties: Literal["efron", "breslow"] = "efron"
    time_grid: tuple[float, ...] | None = None
    penalty: float = 0.0

    def variables(self) -> tuple[str, ...]:
        """Columns the analysis reads (``site`` is a stratum, not a column)."""
        return (self.duration, self.event, *self.covariates,
                *(s for s in self.strata if s != "site"))

    def kwargs(self) -> dict[str, Any]:
        """Keyword arguments of the public API call."""
        return {"duration": self.duration, "event": self.event,
                "covariates": list(self.covariates),
                "strata": list(self.strata) or None, "ties": self.ties,
                "time_grid": _grid(self.time_grid), "penalty": self.penalty}


Params = (DescribeParams | HistogramParams | CrosstabParams | GLMParams | KaplanMeierParams
          | LogRankParams | CoxParams)

#: analysis type -> its parameter class
PARAMS: Mapping[str, type] = {
    "describe": DescribeParams, "histogram": HistogramParams, "crosstab": CrosstabParams,
    "glm": GLMParams, "kaplan_meier": KaplanMeierParams, "logrank": LogRankParams,
    "cox": CoxParams,
}


def _params_dict(p: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in p.__dict__.items():
        out[k] = list(v) if isinstance(v, tuple) else v
    return out


# ------------------------------------------------------------------------------------------
# The study
# ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DPSpec:
    """``dp: {epsilon, delta, mode}`` of one analysis, exact.

    Examples
    --------
    >>> DPSpec(Fraction(1)).to_dp(unit="row").epsilon
    Fraction(1, 1)
    """

    epsilon: Fraction
    delta: Fraction = Fraction(0)
    mode: DPMode = "central"

    def to_dp(self, unit: str = "patient") -> DP:
        """The ``sf.DP`` object passed to the analysis (``unit``: the schema's)."""
        return DP(self.epsilon, delta=self.delta, mode=self.mode, unit=unit)

    def to_dict(self) -> dict[str, Any]:
        """Canonical content (exact fractions as ``"num/den"`` text)."""
        return {"epsilon": fraction_str(self.epsilon), "delta": fraction_str(self.delta),
                "mode": self.mode}


@dataclass(frozen=True)
class AnalysisSpec:
    """One analysis of the study: id, type, typed parameters, protocol and DP.

    Examples
    --------
    >>> a = AnalysisSpec("t1", "describe", DescribeParams(("age",), by="arm"))
    >>> a.variables(), a.protocol
    (('age', 'arm'), 'masking')
    """

    id: str
    type: AnalysisType
    params: Params
    protocol: Protocol = "masking"
    dp: DPSpec | None = None
    title: str | None = None
    line: int | None = field(default=None, compare=False)

    def variables(self) -> tuple[str, ...]:
        """Columns the analysis reads, without repeats."""
        return tuple(dict.fromkeys(self.params.variables()))

    def to_dict(self) -> dict[str, Any]:
        """Canonical content."""
        return {"id": self.id, "type": self.type, "title": self.title,
                "protocol": self.protocol, "dp": None if self.dp is None else self.dp.to_dict(),
                "params": _params_dict(self.params)}


@dataclass(frozen=True)
class DataSource:
    """Where a site's rows are: a CSV/Parquet ``path`` or a DuckDB ``sql`` query.

    Paths are kept as written (relative to the study file) so the study hash does not
    depend on where the file lies; :meth:`resolve` makes them absolute.

    Examples
    --------
    >>> DataSource(path="data/beijing.csv").resolve(Path("/studies/x"))
    PosixPath('/studies/x/data/beijing.csv')
    """

    path: str | None = None
    sql: str | None = None
    database: str | None = None

    def resolve(self, base: Path) -> Path | SQL:
        """The source for :class:`sf.Site`: an absolute path, or an ``sf.SQL``."""
        if self.path is not None:
            return (base / self.path).resolve() if not Path(self.path).is_absolute() \
                else Path(self.path)
        db = None if self.database is None else (base / self.database).resolve()
        return SQL(str(self.sql), database=db)

    def describe(self) -> str:
        """Short text for progress and reports."""
        return self.path if self.path is not None else "SQL query"

    def to_dict(self) -> dict[str, Any]:
        """Canonical content."""
        return {"path": self.path, "sql": self.sql, "database": self.database}


@dataclass(frozen=True)
class SiteSpec:
    """One site: name, jurisdiction, data source, CN flags and an optional ε budget."""

    name: str
    jurisdiction: str
    data: DataSource
    ciio: bool = False
    ftz: str | None = None
    budget: Fraction | None = None
    line: int | None = field(default=None, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """Canonical content."""
        return {"name": self.name, "jurisdiction": self.jurisdiction,
                "data": self.data.to_dict(), "ciio": self.ciio, "ftz": self.ftz,
                "budget": None if self.budget is None else fraction_str(self.budget)}


@dataclass(frozen=True)
class Instruments:
    """The study's legal instruments.

    ``ethics_approval`` is recorded in every site's approval and in the report; the others
    are the facts' ``instruments`` (POLICY.md) that customs adds to every decision, e.g. a
    filed standard contract (``scc``) or a CAC security assessment id
    (``security_assessment``).

    Examples
    --------
    >>> Instruments(ethics_approval="METC 2024-0113", scc=True).policy()["scc"]
    True
    """

    ethics_approval: str | None = None
    scc: bool = False
    security_assessment: str | None = None
    hgr_filing: bool = False
    hgr_approval: str | None = None
    explicit_consent: bool = False
    tia: bool = False
    dpia: bool = False
    pipia: bool = False
    certification: bool = False
    authority_approval: str | None = None

    def policy(self) -> dict[str, Any]:
        """The instruments customs certifies with (``PolicySettings(instruments=...)``)."""
        return {k: getattr(self, k) for k in (*POLICY_FLAGS, *POLICY_IDS)}

    def to_dict(self) -> dict[str, Any]:
        """Canonical content."""
        return {"ethics_approval": self.ethics_approval, **self.policy()}


@dataclass(frozen=True)
class PackRef:
    """A study policy pack: its path (relative to the study file) and SHA-256."""

    path: str
    sha256: str


@dataclass(frozen=True)
class PolicySpec:
    """``policy:``: SDC profile, extra packs, and whether small table cells are suppressed."""

    sdc_profile: Literal["acro", "ohdsi", "datashield"] = "acro"
    packs: tuple[PackRef, ...] = ()
    suppress: bool = True

    def to_dict(self) -> dict[str, Any]:
        """Canonical content."""
        return {"sdc_profile": self.sdc_profile, "suppress": self.suppress,
                "packs": [{"path": p.path, "sha256": p.sha256} for p in self.packs]}


@dataclass(frozen=True)
class Study:
    """A validated study file. Build it with :func:`safeflow.study.load_study`."""

    id: str
    title: str
    purpose: str
    sites: tuple[SiteSpec, ...]
    schema: Schema
    destination: str
    allowed_variables: tuple[str, ...]
    expires: date
    analyses: tuple[AnalysisSpec, ...]
    recipient: Recipient = "research"
    instruments: Instruments = Instruments()
    policy: PolicySpec = PolicySpec()
    threshold: int | None = None
    max_rows_per_site: int | None = None
    path: Path | None = field(default=None, compare=False)
    lines: Mapping[str, int] = field(default_factory=dict, compare=False, repr=False)

    @property
    def base_dir(self) -> Path:
        """The directory relative paths are resolved against (the study file's)."""
        return Path.cwd() if self.path is None else self.path.resolve().parent

    def to_dict(self) -> dict[str, Any]:
        """The canonical, validated content: what :attr:`sha256` hashes."""
        return {
            "format": STUDY_FORMAT, "id": self.id, "title": self.title,
            "purpose": self.purpose, "sites": [s.to_dict() for s in self.sites],
            "schema": self.schema.to_dict(), "destination": self.destination,
            "recipient": self.recipient, "instruments": self.instruments.to_dict(),
            "allowed_variables": list(self.allowed_variables),
            "expires": self.expires.isoformat(),
            "analyses": [a.to_dict() for a in self.analyses],
            "policy": self.policy.to_dict(), "threshold": self.threshold,
            "max_rows_per_site": self.max_rows_per_site,
        }

    def canonical_json(self) -> bytes:
        """RFC 8785 canonical JSON of :meth:`to_dict`."""
        return rfc8785.dumps(self.to_dict())

    @property
    def sha256(self) -> str:
        """The study hash: SHA-256 (hex) of :meth:`canonical_json`."""
        return hashlib.sha256(self.canonical_json()).hexdigest()

    def analysis(self, analysis_id: str) -> AnalysisSpec:
        """The analysis with this id (KeyError if none)."""
        for a in self.analyses:
            if a.id == analysis_id:
                return a
        raise KeyError(analysis_id)

    def site(self, name: str) -> SiteSpec:
        """The site with this name (KeyError if none)."""
        for s in self.sites:
            if s.name == name:
                return s
        raise KeyError(name)

    def line(self, field_path: str) -> int | None:
        """The line of a field (dotted path such as ``sites[1].jurisdiction``), if known."""
        return self.lines.get(field_path)

    def policy_settings(self) -> PolicySettings:
        """The :class:`sf.PolicySettings` every decision of this study uses."""
        return PolicySettings(
            packs=tuple(str((self.base_dir / p.path).resolve()) for p in self.policy.packs),
            sdc_profile=self.policy.sdc_profile, instruments=self.instruments.policy(),
            recipient_type=self.recipient, suppress=self.policy.suppress)

    def __repr__(self) -> str:
        sites = ", ".join(f"{s.name} ({s.jurisdiction})" for s in self.sites)
        return (f"<Study {self.id}: {len(self.analyses)} analyses at {sites} -> "
                f"{self.destination} for {self.purpose}, expires {self.expires}, "
                f"sha256 {self.sha256[:12]}>")


__all__ = [
    "ANALYSIS_TYPES",
    "DP_MODES",
    "DP_TYPES",
    "PARAMS",
    "PROTOCOLS",
    "RECIPIENTS",
    "STUDY_FORMAT",
    "AnalysisSpec",
    "CoxParams",
    "CrosstabParams",
    "DPSpec",
    "DataSource",
    "DescribeParams",
    "GLMParams",
    "HistogramParams",
    "Instruments",
    "KaplanMeierParams",
    "LogRankParams",
    "PackRef",
    "PolicySpec",
    "SiteSpec",
    "Study",
]
