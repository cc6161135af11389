"""Validation of the ``analyses:`` list: each type's parameters, protocol and DP."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from fractions import Fraction
from typing import Any

from safeflow.analyses.histogram import check_edges
from safeflow.analyses.survival_grid import check_grid
from safeflow.dp.spec import DP, MODES
from safeflow.errors import InvalidParameter
from safeflow.study._checks import _ID, _Base, _key, _show
from safeflow.study._yaml import _Map, _Seq
from safeflow.study.model import (
    ANALYSIS_TYPES,
    DP_TYPES,
    PARAMS,
    PROTOCOLS,
    AnalysisSpec,
    DPSpec,
)

MAX_GRID_POINTS = 10_000
_ANALYSIS_COMMON = ("id", "type", "protocol", "dp", "title")

# parameter name -> (checker, required) per analysis type; checker x is method p_x
_PARAM_FIELDS: Mapping[str, Mapping[str, tuple[str, bool]]] = {
    "describe": {"columns": ("columns", True), "by": ("group", False),
                 "by_site": ("boolean", False)},
    "histogram": {"column": ("numeric", True), "bins": ("edges", True), "by": ("group", False)},
    "crosstab": {"rows": ("group", True), "cols": ("group", True)},
    "glm": {"y": ("column", True), "X": ("columns", True), "family": ("family", False),
            "offset": ("numeric", False), "penalty": ("penalty", False)},
    "kaplan_meier": {"duration": ("numeric", True), "event": ("event", True),
                     "by": ("group", False), "time_grid": ("grid", False),
                     "alpha": ("alpha", False)},
    "logrank": {"duration": ("numeric", True), "event": ("event", True),
                "group": ("group", True), "time_grid": ("grid", False)},
    "cox": {"duration": ("numeric", True), "event": ("event", True),
            "covariates": ("columns", True), "strata": ("strata", False),
            "ties": ("ties", False), "time_grid": ("grid", False),
            "penalty": ("penalty", False)},
}


class _AnalysisChecks(_Base):
    """The checks of ``analyses:`` (uses the schema checked before)."""

    def analyses(self, v: Any, line: int, field: str) -> tuple[AnalysisSpec, ...]:
        items = self.seq(v, line, field, what="analyses", min_items=1)
        out: list[AnalysisSpec] = []
        seen: dict[str, int] = {}
        for i, (item, ln) in enumerate(zip(items, items.item_lines, strict=True)):
            f = f"{field}[{i}]"
            self.lines[f] = ln
            if not isinstance(item, _Map):
                raise self.fail(ln, f, f"must be a mapping with id, type and the analysis' "
                                f"parameters; got {_show(item)}")
            value, l2, f2 = self.at(item, "type", f)
            if value is None:
                raise self.fail(ln, f2, f"is required (one of {', '.join(ANALYSIS_TYPES)})")
            kind = self.choice(value, l2, f2, ANALYSIS_TYPES)
            spec = _PARAM_FIELDS[kind]
            required = ("id", "type", *(k for k, (_, req) in spec.items() if req))
            optional = (*(k for k in _ANALYSIS_COMMON if k not in required),
                        *(k for k, (_, req) in spec.items() if not req))
            m = self.mapping(item, ln, f, required, optional)
            value, l2, f2 = self.at(m, "id", f)
            aid = self.text(value, l2, f2, pattern=_ID, expected="1-64 letters, digits or "
                            "_.- (it names the output files)", example=" such as 'table1'")
            if aid in seen:
                raise self.fail(l2, f2, f"repeats the id {aid!r} of line {seen[aid]}; "
                                "analysis ids must be unique")
            seen[aid] = l2
            params: dict[str, Any] = {}
            for key, (checker, _) in spec.items():
                value, l2, f2 = self.at(m, key, f)
                if value is not None:
                    params[key] = getattr(self, f"p_{checker}")(value, l2, f2)
            if kind == "glm" and params["y"] in params["X"]:
                raise self.fail(m.key_lines["X"], _key(f, "X"),
                                f"must not contain the outcome {params['y']!r}")
            value, l2, f2 = self.at(m, "protocol", f)
            protocol = "masking" if value is None else self.choice(value, l2, f2, PROTOCOLS)
            value, l2, f2 = self.at(m, "title", f)
            title = self.optional_text(value, l2, f2)
            value, l2, f2 = self.at(m, "dp", f)
            dp = None if value is None else self.dp(value, l2, f2, kind, params)
            out.append(AnalysisSpec(aid, kind, PARAMS[kind](**params),  # type: ignore[arg-type]
                                    protocol=protocol, dp=dp, title=title, line=ln))  # type: ignore[arg-type]
        return tuple(out)

    def dp(self, v: Any, line: int, field: str, kind: str, params: Mapping[str, Any]) -> DPSpec:
        if kind not in DP_TYPES:
            raise self.fail(line, field, f"is not available for {kind}; differential privacy "
                            f"applies to {', '.join(DP_TYPES)} (glm: family gaussian)")
        if kind == "glm" and params.get("family", "gaussian") != "gaussian":
            raise self.fail(line, field, "applies to glm with family gaussian only; "
                            f"got family {params['family']!r}")
        m = self.mapping(v, line, field, ("epsilon",), ("delta", "mode"))
        value, ln, f = self.at(m, "epsilon", field)
        eps = self.fraction(value, ln, f, "a number > 0 and <= 10, such as 1")
        value, ln, f = self.at(m, "delta", field)
        delta = Fraction(0)
        if value is not None:
            if value == 0 and not isinstance(value, bool):
                delta = Fraction(0)
            else:
                delta = self.fraction(value, ln, f, "a number >= 0 and <= 1e-5")
        value, ln, f = self.at(m, "mode", field)
        mode = "central" if value is None else self.choice(value, ln, f, MODES)
        try:
            DP(eps, delta=delta, mode=mode)
        except InvalidParameter as e:
            raise self.fail(line, field, f"is not valid: {e}") from None
        return DPSpec(eps, delta, mode)  # type: ignore[arg-type]

    # --- analysis parameter checkers (p_<name>) ---------------------------------------

    def p_column(self, v: Any, line: int, field: str) -> str:
        return self.column_ref(v, line, field)

    def p_numeric(self, v: Any, line: int, field: str) -> str:
        return self.column_ref(v, line, field, kinds=("numeric",), what="a numeric column")

    def p_group(self, v: Any, line: int, field: str) -> str:
        return self.column_ref(v, line, field, kinds=("categorical", "binary"),
                               what="a categorical column")

    def p_event(self, v: Any, line: int, field: str) -> str:
        return self.column_ref(v, line, field, kinds=("binary", "categorical"),
                               what="an event column")

    def p_columns(self, v: Any, line: int, field: str) -> tuple[str, ...]:
        if not isinstance(v, _Seq) or not v:
            raise self.fail(line, field, f"must be a list of column names such as [age, sex]; "
                            f"got {_show(v)}")
        out = [self.column_ref(c, ln, f"{field}[{i}]")
               for i, (c, ln) in enumerate(zip(v, v.item_lines, strict=True))]
        if len(set(out)) != len(out):
            raise self.fail(line, field, f"repeats a column: {out}")
        return tuple(out)

    def p_strata(self, v: Any, line: int, field: str) -> tuple[str, ...]:
        items = [v] if isinstance(v, str) else v
        lines = [line] * len(items) if isinstance(v, str) or not isinstance(v, _Seq) \
            else v.item_lines
        if not isinstance(items, list) or not items:
            raise self.fail(line, field, f"must be 'site', a categorical column, or a list of "
                            f"these; got {_show(v)}")
        out = [s if s == "site" else self.p_group(s, ln, f"{field}[{i}]")
               for i, (s, ln) in enumerate(zip(items, lines, strict=True))]
        if len(set(out)) != len(out):
            raise self.fail(line, field, f"repeats a stratum: {out}")
        return tuple(out)

    def p_boolean(self, v: Any, line: int, field: str) -> bool:
        return self.boolean(v, line, field)

    def p_edges(self, v: Any, line: int, field: str) -> tuple[float, ...]:
        if not isinstance(v, list) or any(isinstance(x, bool | str) for x in v):
            raise self.fail(line, field, f"must be a list of bin edges such as [20, 40, 60]; "
                            f"got {_show(v)}")
        return tuple(self._wrap(check_edges, v, line, field))

    def p_grid(self, v: Any, line: int, field: str) -> tuple[float, ...]:
        if isinstance(v, _Map):
            m = self.mapping(v, line, field, ("step",), ("start", "stop"))
            s0, l0, f0 = self.at(m, "start", field)
            start = 0.0 if s0 is None else self.number(s0, l0, f0)
            s1, l1, f1 = self.at(m, "step", field)
            step = self.number(s1, l1, f1, lo=0, lo_open=True, expected="a number > 0")
            s2, l2, f2 = self.at(m, "stop", field)
            if s2 is None:
                raise self.fail(m.line, f2, "is required: the last grid point, e.g. 1096")
            stop = self.number(s2, l2, f2, lo=start, expected=f"a number >= start ({start:g})")
            count = math.floor((stop - start) / step + 1e-9) + 1
            if count > MAX_GRID_POINTS:
                raise self.fail(line, field, f"has {count} points, more than "
                                f"{MAX_GRID_POINTS}; use a larger step")
            return tuple(start + k * step for k in range(count))
        if not isinstance(v, list) or any(isinstance(x, bool | str) for x in v):
            raise self.fail(line, field, f"must be a list of increasing times such as "
                            f"[0, 30, 60] or {{start: 0, stop: 1096, step: 30}}; got {_show(v)}")
        grid = self._wrap(check_grid, v, line, field)
        return tuple(grid or ())

    def p_family(self, v: Any, line: int, field: str) -> str:
        return self.choice(v, line, field, ("gaussian", "binomial", "poisson"))

    def p_ties(self, v: Any, line: int, field: str) -> str:
        return self.choice(v, line, field, ("efron", "breslow"))

    def p_penalty(self, v: Any, line: int, field: str) -> float:
        return self.number(v, line, field, lo=0, expected="a number >= 0")

    def p_alpha(self, v: Any, line: int, field: str) -> float:
        return self.number(v, line, field, lo=0, hi=1, lo_open=True, hi_open=True,
                           expected="a number strictly between 0 and 1, such as 0.05")

    def _wrap(self, check: Callable[[Any], Any], v: Any, line: int, field: str) -> Any:
        try:
            return check(list(v))
        except InvalidParameter as e:
            raise self.fail(line, field, f"is not valid: {e}") from None
