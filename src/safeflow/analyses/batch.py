"""Several one-shot analyses in one secure sum: what :meth:`Federation.run_batch` sums.

Flower's Deployment Engine costs seconds per round trip, whatever the payload, and a
protocol session costs several round trips before the first sum. One-shot analyses
(``describe``, ``histogram``, ``crosstab``, ``glm(family="gaussian")``, ``kaplan_meier``,
``logrank``) each need exactly one secure sum, so the ones requested together can share a
session and a round: :class:`Batch` concatenates their layouts (every statistic prefixed
with its analysis's index, ``"0:n"``, ``"1:xtx"``; ``/`` is not a legal statistic
character), computes each analysis's ``local`` on the site's data, and splits the totals
back so that each analysis's ``combine`` sees exactly what it would have seen alone.

``Batch`` is an ordinary registered analysis: it travels in the round request like any
other (``{"analysis": "batch", "params": {"items": [request, ...]}}``) and every site
rebuilds it, and each of its items, from that request. Nothing here is differentially
private: each DP release is debited from the sites' budgets separately, so a batch refuses
items that carry ``dp``.

Examples
--------
>>> from safeflow.analyses.describe import Describe
>>> from safeflow.analyses.crosstab import Crosstab
>>> b = Batch.of([Describe({"columns": ["age"]}), Crosstab({"rows": "arm", "cols": "leak"})])
>>> b.request()["analysis"], [a.name for a in b.items]
('batch', ['describe', 'crosstab'])
>>> Batch.of([Describe({"columns": ["age"], "dp": {"epsilon": "1"}})])
Traceback (most recent call last):
...
safeflow.errors.InvalidParameter: analysis 0 (describe) carries dp=...
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from safeflow.analyses import analysis_from_request
from safeflow.analyses._base import Analysis, Done, Next, register
from safeflow.data import Schema, SiteData
from safeflow.errors import InvalidParameter, ProtocolError, SafeflowError
from safeflow.statspec import StatLayout, StatSpec

#: analyses that need exactly one secure sum (glm: the gaussian family only)
ONE_SHOT = ("describe", "histogram", "crosstab", "glm", "kaplan_meier", "logrank")
#: most analyses one batch may hold (one layout, one envelope per site and stage)
MAX_ITEMS = 64
SEP = ":"


def check_one_shot(analysis: Any, index: int) -> None:
    """Typed refusal unless ``analysis`` is a one-shot analysis without DP.

    Examples
    --------
    >>> from safeflow.analyses.glm import GLM
    >>> check_one_shot(GLM({"y": "y", "X": ["x"], "family": "gaussian"}), 0)
    >>> check_one_shot(GLM({"y": "y", "X": ["x"], "family": "binomial"}), 3)
    Traceback (most recent call last):
    ...
    safeflow.errors.InvalidParameter: analysis 3 (glm, family binomial) needs several rounds...
    """
    if not isinstance(analysis, Analysis):
        raise InvalidParameter(f"analysis {index} is a {type(analysis).__name__}, not an "
                               "analysis; pass the Analysis objects (e.g. Describe(params))")
    name = analysis.name
    what = name
    multi = name not in ONE_SHOT
    if name == "glm" and analysis.params.get("family", "gaussian") != "gaussian":
        what, multi = f"glm, family {analysis.params.get('family')}", True
    if multi:
        raise InvalidParameter(
            f"analysis {index} ({what}) needs several rounds and cannot share a batch's one "
            f"round; batch only {', '.join(ONE_SHOT)} (glm: family='gaussian') and run the "
            "others with fed.run or their sf.* function")
    if analysis.params.get("dp") is not None:
        raise InvalidParameter(
            f"analysis {index} ({name}) carries dp=; each differentially private release is "
            "debited from the sites' budgets separately, so it cannot be batched. Run it "
            "on its own")


def prefix(index: int, name: str) -> str:
    """The batched name of statistic ``name`` of item ``index``.

    Examples
    --------
    >>> prefix(2, "xtx")
    '2:xtx'
    """
    return f"{index}{SEP}{name}"


class _Captured(Exception):
    """(internal) carries the analysis an ``sf.*`` function asked its federation to run."""

    def __init__(self, analysis: Analysis) -> None:
        super().__init__(analysis.name)
        self.analysis = analysis


def analysis_of(fn: Callable[..., Any], fed: Any, *args: Any, **kwargs: Any) -> Analysis:
    """The analysis ``fn(fed, *args, **kwargs)`` would run, built but not run.

    Uses the front door's own validation (``sf.describe``, ``sf.kaplan_meier`` ...), so
    the result is exactly what :meth:`Federation.run` would have received; nothing is sent.
    ``protocol=`` and other run options are ignored (a batch has one protocol).

    Examples
    --------
    >>> import pandas as pd, safeflow as sf
    >>> s = sf.Schema([sf.Column("x", classes=("public",), bounds=(0, 10))])
    >>> fed = sf.Federation.local([sf.Site("a", pd.DataFrame({"x": [1.0]}), "CN", schema=s),
    ...                            sf.Site("b", pd.DataFrame({"x": [2.0]}), "NL", schema=s)],
    ...                           destination="NL", purpose="scientific-research")
    >>> a = analysis_of(sf.describe, fed, ["x"])
    >>> a.name, a.params["columns"]
    ('describe', ['x'])
    """

    def capture(analysis: Analysis, *_: Any, **__: Any) -> Any:
        raise _Captured(analysis)

    if "run" in vars(fed):
        raise InvalidParameter("this federation is already capturing an analysis")
    fed.run = capture
    try:
        fn(fed, *args, **kwargs)
    except _Captured as c:
        return c.analysis
    finally:
        del fed.run
    raise InvalidParameter(f"{getattr(fn, '__name__', fn)!r} did not ask the federation to "
                           "run an analysis; pass an sf.* analysis function")


@register
class Batch(Analysis):
    """One-shot analyses summed together in one round (see module docstring).

    Parameters
    ----------
    params : mapping
        ``{"items": [request, ...]}``: each item's round request
        (:meth:`Analysis.request`), its state included.
    """

    name = "batch"
    kind = "batch"

    def __init__(self, params: Mapping[str, Any], state: Mapping[str, Any] | None = None):
        super().__init__(params, state)
        reqs = self.params.get("items")
        if (not isinstance(reqs, list | tuple) or not 1 <= len(reqs) <= MAX_ITEMS
                or not all(isinstance(r, Mapping) for r in reqs)):
            raise InvalidParameter(f"a batch holds 1 to {MAX_ITEMS} analysis requests")
        self.params["items"] = [dict(r) for r in reqs]
        items = []
        for i, r in enumerate(self.params["items"]):
            if r.get("analysis") == self.name:
                raise InvalidParameter(f"analysis {i} is itself a batch; batches do not nest")
            try:
                a = analysis_from_request(r)
            except ProtocolError:
                raise InvalidParameter(f"analysis {i} of the batch is not a known analysis "
                                       "request") from None
            check_one_shot(a, i)
            items.append(a)
        self.items: list[Analysis] = items

    @classmethod
    def of(cls, analyses: Sequence[Analysis], schema: Schema | None = None) -> Batch:
        """The batch of ``analyses`` (their first-round state filled in when ``schema``).

        Refuses (typed) an empty list, more than :data:`MAX_ITEMS`, multi-round analyses and
        analyses with ``dp``.
        """
        analyses = list(analyses)
        if not 1 <= len(analyses) <= MAX_ITEMS:
            raise InvalidParameter(f"a batch holds 1 to {MAX_ITEMS} analyses; got "
                                   f"{len(analyses)}")
        for i, a in enumerate(analyses):
            check_one_shot(a, i)
            if schema is not None and not a.state:
                a.state = a.initial_state(schema)
        return cls({"items": [a.request() for a in analyses]})

    def columns(self) -> list[str]:
        return list(dict.fromkeys(c for a in self.items for c in a.columns()))

    def layouts(self, schema: Schema, ctx: Mapping[str, Any]) -> list[StatLayout]:
        """Each item's own layout, in order."""
        return [a.layout(schema, ctx) for a in self.items]

    def layout(self, schema: Schema, ctx: Mapping[str, Any]) -> StatLayout:
        return StatLayout(tuple(
            StatSpec(prefix(i, s.name), s.shape, s.kind, s.bound, s.precision)
            for i, lay in enumerate(self.layouts(schema, ctx)) for s in lay.specs))

    def local(self, data: SiteData, ctx: Mapping[str, Any]) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        for i, a in enumerate(self.items):
            out.update({prefix(i, k): v for k, v in a.local(data, ctx).items()})
        return out

    def split(self, totals: Mapping[str, np.ndarray], schema: Schema,
              ctx: Mapping[str, Any]) -> list[dict[str, np.ndarray]]:
        """The batched totals as each item's own totals."""
        return [{s.name: totals[prefix(i, s.name)] for s in lay.specs}
                for i, lay in enumerate(self.layouts(schema, ctx))]

    def combine(self, totals: Mapping[str, np.ndarray], schema: Schema,
                ctx: Mapping[str, Any]) -> Done | Next:
        """``Done(value=[Done or SafeflowError per item])``: one item's typed failure does
        not lose the others."""
        out: list[Done | SafeflowError] = []
        for i, (a, part) in enumerate(zip(self.items, self.split(totals, schema, ctx),
                                          strict=True)):
            try:
                step = a.combine(part, schema, ctx)
            except SafeflowError as e:
                out.append(e)
                continue
            if not isinstance(step, Done):
                raise ProtocolError(f"analysis {i} ({a.name}) asked for a second round in a "
                                    "batch; only one-shot analyses may be batched")
            out.append(step)
        return Done(out)


__all__ = ["MAX_ITEMS", "ONE_SHOT", "Batch", "analysis_of", "check_one_shot", "prefix"]
