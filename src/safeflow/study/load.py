"""Load a study file (YAML) and validate it, naming the line of every problem.

The YAML is composed with a :class:`yaml.SafeLoader` subclass that records, for every
mapping key and sequence item, the line it starts on (``start_mark.line + 1``), so that
each error reads like ``study.yaml line 12: sites[1].jurisdiction must be an ISO 3166
alpha-2 code such as 'NL'; got 'Netherlands'``. Unknown keys are errors with a
did-you-mean, duplicate keys are errors, and nothing untyped leaves this module: the
result is a frozen :class:`~safeflow.study.model.Study`.

The file format (``safeflow.study/1``)::

    id: color-iv                     # optional; default: the title as a slug
    title: COLOR IV                  # required
    purpose: scientific-research     # required
    destination: NL                  # required: ISO 3166 alpha-2 code of the recipient
    recipient: research              # research | company | court | law_enforcement
    expires: 2027-06-30              # required: last day on which the study may run
    instruments:                     # optional; see Instruments
      ethics_approval: METC 2024-0113
      scc: true
      security_assessment: null
    sites:                           # required: at least two
      - name: beijing
        jurisdiction: CN
        data: data/beijing.csv       # or {path: ...} or {sql: "SELECT ...", database: x.duckdb}
        ciio: false                  # optional (CN)
        ftz: null                    # optional, e.g. CN-FTZ-BJ
        budget: 3                    # optional: the site's total ε for DP releases
    schema:
      unit: patient                  # patient | row: the unit of privacy
      columns:                       # name -> role, kind, classes, bounds, categories,
        age: {bounds: [18, 100]}     #         resolution, on_missing, on_out_of_bounds
        arm: {kind: categorical, categories: [ECA, ICA]}
    allowed_variables: [age, arm]    # the only columns any analysis may read
    analyses:                        # required: at least one
      - id: table1
        type: describe               # describe | histogram | crosstab | glm |
        columns: [age]               #   kaplan_meier | logrank | cox; then its parameters
        by: arm
        protocol: masking            # masking (default) | he | plain
        dp: {epsilon: 1, delta: 0, mode: central}   # optional (not for cox)
    policy: {sdc_profile: acro, packs: [], suppress: true}   # optional
    threshold: 2                     # optional: masking threshold (2..number of sites)
    max_rows_per_site: 100000        # optional

Examples
--------
>>> text = '''
... title: Demo
... purpose: scientific-research
... destination: NL
... expires: 2099-12-31
... sites:
...   - {name: a, jurisdiction: CN, data: a.csv}
...   - {name: b, jurisdiction: Netherlands, data: b.csv}
... schema: {columns: {age: {bounds: [18, 100]}}}
... allowed_variables: [age]
... analyses: [{id: t1, type: describe, columns: [age]}]
... '''
>>> parse_study(text, path="study.yaml")
Traceback (most recent call last):
...
safeflow.study.errors.StudyError: study.yaml line 8: sites[1].jurisdiction must be an ISO 3166 alpha-2 code such as 'NL'; got 'Netherlands'
>>> study = parse_study(text.replace("Netherlands", "NL"), path="study.yaml")
>>> study.id, [s.name for s in study.sites], study.analyses[0].variables()
('demo', ['a', 'b'], ('age',))
>>> len(study.sha256)
64
"""  # noqa: E501

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

from safeflow.data import Column, Schema
from safeflow.data.column import DATA_CLASSES, KINDS, ROLES, UNITS
from safeflow.errors import PackError, SafeflowError
from safeflow.policy.sdc import PROFILES
from safeflow.study._analyses import _AnalysisChecks
from safeflow.study._checks import _ID, _key, _show
from safeflow.study._yaml import _Map, compose
from safeflow.study.errors import StudyError
from safeflow.study.model import (
    POLICY_FLAGS,
    POLICY_IDS,
    RECIPIENTS,
    DataSource,
    Instruments,
    PackRef,
    PolicySpec,
    SiteSpec,
    Study,
)

_SITE_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_DATA_SUFFIXES = (".csv", ".csv.gz", ".csv.bz2", ".csv.zst", ".csv.lz4", ".parquet", ".pq",
                  ".parq")
#: a study file is a page of YAML; anything larger is refused before parsing
MAX_BYTES = 1 << 20

_TOP_REQUIRED = ("title", "purpose", "destination", "expires", "sites", "schema",
                 "allowed_variables", "analyses")
_TOP_OPTIONAL = ("id", "recipient", "instruments", "policy", "threshold", "max_rows_per_site")
_SITE_REQUIRED = ("name", "jurisdiction", "data")
_SITE_OPTIONAL = ("ciio", "ftz", "budget")
_COLUMN_KEYS = ("role", "kind", "classes", "bounds", "categories", "resolution", "on_missing",
                "on_out_of_bounds")
_INSTRUMENT_KEYS = ("ethics_approval", *POLICY_FLAGS, *POLICY_IDS)


class _Check(_AnalysisChecks):
    """One validation pass over the composed YAML; the first problem raises StudyError."""

    # --- the study --------------------------------------------------------------------

    def study(self, raw: Any) -> Study:
        top = self.mapping(raw, 1, "", _TOP_REQUIRED, _TOP_OPTIONAL,
                           what="a mapping of study fields (title, sites, schema, analyses...)")
        v, line, f = self.at(top, "title", "")
        title = self.text(v, line, f)
        v, line, f = self.at(top, "id", "")
        default_id = re.sub(r"[^a-z0-9_.-]+", "-", title.lower()).strip("-.")[:64] or "study"
        study_id = default_id if v is None else self.text(
            v, line, f, pattern=_ID, expected="1-64 letters, digits or _.- (starting with a "
            "letter or digit)", example=" such as 'color-iv'")
        v, line, f = self.at(top, "purpose", "")
        purpose = self.text(v, line, f, example=" such as 'scientific-research'")
        v, line, f = self.at(top, "destination", "")
        destination = self.code(v, line, f)
        v, line, f = self.at(top, "recipient", "")
        recipient = "research" if v is None else self.choice(v, line, f, RECIPIENTS)
        v, line, f = self.at(top, "expires", "")
        expires = self.iso_date(v, line, f)
        v, line, f = self.at(top, "instruments", "")
        instruments = self.instruments(v, line, f)
        v, line, f = self.at(top, "sites", "")
        sites = self.sites(v, line, f)
        v, line, f = self.at(top, "schema", "")
        self.schema = self.schema_(v, line, f)
        v, line, f = self.at(top, "allowed_variables", "")
        allowed = self.allowed(v, line, f)
        v, line, f = self.at(top, "analyses", "")
        analyses = self.analyses(v, line, f)
        v, line, f = self.at(top, "policy", "")
        policy = self.policy(v, line, f)
        v, line, f = self.at(top, "threshold", "")
        threshold = None if v is None else self.integer(v, line, f, 2, len(sites))
        v, line, f = self.at(top, "max_rows_per_site", "")
        max_rows = None if v is None else self.integer(v, line, f, 1, 2**52 - 1)
        return Study(
            id=study_id, title=title, purpose=purpose, sites=sites, schema=self.schema,
            destination=destination, allowed_variables=allowed, expires=expires,
            analyses=analyses, recipient=recipient, instruments=instruments,  # type: ignore[arg-type]
            policy=policy, threshold=threshold, max_rows_per_site=max_rows, path=self.path,
            lines=dict(self.lines))

    def instruments(self, v: Any, line: int, field: str) -> Instruments:
        m = self.mapping(v, line, field, (), _INSTRUMENT_KEYS)
        kw: dict[str, Any] = {}
        for key in m:
            value, ln, f = self.at(m, key, field)
            if key in POLICY_FLAGS:
                kw[key] = self.boolean(value, ln, f)
            else:
                kw[key] = self.optional_text(value, ln, f, expected="an id (text) or null")
        return Instruments(**kw)

    def sites(self, v: Any, line: int, field: str) -> tuple[SiteSpec, ...]:
        items = self.seq(v, line, field, what="sites", min_items=2)
        out: list[SiteSpec] = []
        seen: dict[str, int] = {}
        for i, (item, ln) in enumerate(zip(items, items.item_lines, strict=True)):
            f = f"{field}[{i}]"
            self.lines[f] = ln
            m = self.mapping(item, ln, f, _SITE_REQUIRED, _SITE_OPTIONAL)
            value, l2, f2 = self.at(m, "name", f)
            name = self.text(value, l2, f2, pattern=_SITE_NAME,
                             expected="1-64 letters, digits or _.-", example=" such as 'beijing'")
            if name == "aggregator":
                raise self.fail(l2, f2, "must not be 'aggregator' (a reserved party name)")
            if name in seen:
                raise self.fail(l2, f2, f"repeats the site name {name!r} of line {seen[name]}; "
                                "site names must be unique")
            seen[name] = l2
            value, l2, f2 = self.at(m, "jurisdiction", f)
            jur = self.code(value, l2, f2)
            value, l2, f2 = self.at(m, "data", f)
            data = self.data_source(value, l2, f2)
            value, l2, f2 = self.at(m, "ciio", f)
            ciio = False if value is None else self.boolean(value, l2, f2)
            value, l2, f2 = self.at(m, "ftz", f)
            ftz = self.optional_text(value, l2, f2, example=" such as 'CN-FTZ-BJ'")
            value, l2, f2 = self.at(m, "budget", f)
            budget = None if value is None else self.fraction(
                value, l2, f2, "the site's total ε for DP releases, a number > 0 such as 3")
            out.append(SiteSpec(name, jur, data, ciio=ciio, ftz=ftz, budget=budget, line=ln))
        return tuple(out)

    def data_source(self, v: Any, line: int, field: str) -> DataSource:
        if isinstance(v, str):
            return DataSource(path=self.data_path(v, line, field))
        m = self.mapping(v, line, field, (), ("path", "sql", "database"),
                         what="a file path, or a mapping with path, or sql (and database)")
        if ("path" in m) == ("sql" in m):
            raise self.fail(m.line, field, "needs exactly one of path (a CSV or Parquet file) "
                            "or sql (a DuckDB SELECT query)")
        if "path" in m:
            if "database" in m:
                raise self.fail(m.key_lines["database"], _key(field, "database"),
                                "applies to sql sources only")
            value, ln, f = self.at(m, "path", field)
            return DataSource(path=self.data_path(value, ln, f))
        value, ln, f = self.at(m, "sql", field)
        sql = self.text(value, ln, f, example=" such as 'SELECT * FROM visits'")
        value, ln, f = self.at(m, "database", field)
        db = self.optional_text(value, ln, f, example=" such as 'hospital.duckdb'")
        return DataSource(sql=sql.strip(), database=db)

    def data_path(self, v: Any, line: int, field: str) -> str:
        text = self.text(v, line, field, example=" such as 'data/beijing.csv'")
        if not text.lower().endswith(_DATA_SUFFIXES):
            raise self.fail(line, field, f"must be a CSV or Parquet file (ending in "
                            f"{', '.join(_DATA_SUFFIXES)}); got {_show(text)}")
        return Path(text).as_posix()

    def schema_(self, v: Any, line: int, field: str) -> Schema:
        m = self.mapping(v, line, field, ("columns",), ("unit",))
        value, ln, f = self.at(m, "unit", field)
        unit = "patient" if value is None else self.choice(value, ln, f, UNITS)
        value, ln, f = self.at(m, "columns", field)
        if not isinstance(value, _Map) or not value:
            raise self.fail(ln, f, "must map each column name to its description, e.g. "
                            "{age: {bounds: [18, 100]}}; got " + _show(value))
        cols = [self.column(value, name, f) for name in value]
        try:
            return Schema(cols, unit=unit)
        except SafeflowError as e:
            raise self.fail(ln, f, f"is not a valid schema: {e}") from None

    def column(self, parent: _Map, name: Any, prefix: str) -> Column:
        v, line, field = self.at(parent, name, prefix)
        if not isinstance(name, str) or not name:
            raise self.fail(line, prefix, f"column names must be text; got {_show(name)}")
        m = self.mapping(v, line, field, (), _COLUMN_KEYS)
        kw: dict[str, Any] = {}
        for key in m:
            value, ln, f = self.at(m, key, field)
            if key in ("role", "kind", "on_missing", "on_out_of_bounds"):
                choices = {"role": ROLES, "kind": KINDS, "on_missing": ("error", "drop"),
                           "on_out_of_bounds": ("error", "clip", "drop")}[key]
                kw[key] = self.choice(value, ln, f, choices)
            elif key == "classes":
                items = [value] if isinstance(value, str) else value
                if not isinstance(items, list) or not items:
                    raise self.fail(ln, f, f"must be a list of data classes "
                                    f"({', '.join(DATA_CLASSES)}); got {_show(value)}")
                kw[key] = tuple(self.choice(c, ln, f, DATA_CLASSES) for c in items)
            elif key == "bounds":
                if not isinstance(value, list) or len(value) != 2:
                    raise self.fail(ln, f, f"must be [low, high]; got {_show(value)}")
                lo = self.number(value[0], ln, f, expected="[low, high] with numbers")
                hi = self.number(value[1], ln, f, expected="[low, high] with numbers")
                if lo > hi:
                    raise self.fail(ln, f, f"must be [low, high] with low <= high; got "
                                    f"{_show(list(value))}")
                kw[key] = (lo, hi)
            elif key == "categories":
                if not isinstance(value, list) or not value:
                    raise self.fail(ln, f, f"must be a list of levels (the reference level "
                                    f"first), e.g. [ECA, ICA]; got {_show(value)}")
                kw[key] = tuple(value)
            else:  # resolution
                kw[key] = self.number(value, ln, f, lo=0, lo_open=True,
                                      expected="a number > 0 such as 1 (whole days)")
        try:
            return Column(name, **kw)
        except SafeflowError as e:
            raise self.fail(line, field, f"is not a valid column: {e}") from None

    def allowed(self, v: Any, line: int, field: str) -> tuple[str, ...]:
        items = self.seq(v, line, field, what="column names", min_items=1)
        out: list[str] = []
        for i, (item, ln) in enumerate(zip(items, items.item_lines, strict=True)):
            name = self.column_ref(item, ln, f"{field}[{i}]")
            if name in out:
                raise self.fail(ln, f"{field}[{i}]", f"repeats {name!r}")
            out.append(name)
        return tuple(out)

    def policy(self, v: Any, line: int, field: str) -> PolicySpec:
        m = self.mapping(v, line, field, (), ("sdc_profile", "packs", "suppress"))
        value, ln, f = self.at(m, "sdc_profile", field)
        profile = "acro" if value is None else self.choice(value, ln, f, tuple(PROFILES))
        value, ln, f = self.at(m, "suppress", field)
        suppress = True if value is None else self.boolean(value, ln, f)
        value, ln, f = self.at(m, "packs", field)
        packs: list[PackRef] = []
        if value is not None:
            items = self.seq(value, ln, f, what="policy pack files (YAML)")
            for i, (item, l2) in enumerate(zip(items, items.item_lines, strict=True)):
                packs.append(self.pack(item, l2, f"{f}[{i}]"))
        return PolicySpec(profile, tuple(packs), suppress)  # type: ignore[arg-type]

    def pack(self, v: Any, line: int, field: str) -> PackRef:
        from safeflow.policy.packs import load_pack

        text = self.text(v, line, field, example=" such as 'packs/study.yaml'")
        file = self.base / text
        if not file.is_file():
            raise self.fail(line, field, f"names a file that does not exist: {text!r} "
                            "(paths are relative to the study file)")
        try:
            load_pack(file)
        except PackError as e:
            raise self.fail(line, field, f"is not a valid policy pack: {e}") from None
        return PackRef(Path(text).as_posix(), hashlib.sha256(file.read_bytes()).hexdigest())


# ------------------------------------------------------------------------------------------
# Public entry points
# ------------------------------------------------------------------------------------------


def parse_study(text: str, *, path: str | Path | None = None,
                base_dir: str | Path | None = None) -> Study:
    """Validate study YAML given as text.

    Parameters
    ----------
    text : str
        The YAML.
    path : str or Path, optional
        The file it came from (named in errors; relative paths resolve against its folder).
    base_dir : str or Path, optional
        Folder for relative paths when ``path`` is not given (default: the current one).

    Returns
    -------
    Study

    Raises
    ------
    StudyError
        The first problem, naming the line and the field.

    Examples
    --------
    >>> parse_study("title: x\\nsites: 3\\n", path="s.yaml")
    Traceback (most recent call last):
    ...
    safeflow.study.errors.StudyError: s.yaml line 1: purpose is required
    """
    p = None if path is None else Path(path)
    base = Path(base_dir) if base_dir is not None else (
        p.resolve().parent if p is not None else Path.cwd())
    if not isinstance(text, str):
        raise StudyError(f"study text must be str; got {type(text).__name__}", path=p)
    raw = compose(text, p) if text.strip() else None
    if raw is None:
        raise StudyError("the study file is empty; see safeflow.study.load for the format",
                         path=p)
    return _Check(p, base).study(raw)


def load_study(path: str | Path) -> Study:
    """Load and validate a study file.

    Parameters
    ----------
    path : str or Path
        The YAML file (UTF-8, at most 1 MiB).

    Returns
    -------
    Study
        Frozen and validated; ``study.sha256`` is its hash.

    Raises
    ------
    StudyError
        The file cannot be read or is not valid; the message names the line and field.

    Examples
    --------
    >>> load_study("no-such-study.yaml")
    Traceback (most recent call last):
    ...
    safeflow.study.errors.StudyError: no-such-study.yaml: cannot read the study file ...
    """
    p = Path(path)
    try:
        data = p.read_bytes() if p.stat().st_size <= MAX_BYTES else None
    except OSError as e:
        raise StudyError(f"cannot read the study file ({e.strerror or e})", path=p) from None
    if data is None:
        raise StudyError(f"the study file is larger than {MAX_BYTES} bytes", path=p)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise StudyError(f"the study file is not UTF-8 text (byte {e.start})", path=p) from None
    return parse_study(text, path=p)


__all__ = ["MAX_BYTES", "load_study", "parse_study"]
