"""Federation.run_batch: one-shot analyses in one session and one secure sum, values and
decisions identical to separate runs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import safeflow as sf
from safeflow.analyses import analysis_from_request
from safeflow.analyses.batch import Batch, analysis_of
from safeflow.analyses.cox import Cox
from safeflow.analyses.describe import Describe
from safeflow.analyses.glm import GLM
from safeflow.errors import ExportDenied, InvalidParameter
from tests.conftest import LUNG_SCHEMA, lung, lung_federation


def _requests(fed: sf.Federation) -> list[tuple[str, tuple, dict]]:
    return [
        ("describe", (["age", "sex", "ph.ecog"],), {"by": "sex"}),
        ("glm", ("wt.loss", ["age", "sex"]), {"family": "gaussian"}),
        ("kaplan_meier", (), {"duration": "time", "event": "status", "by": "sex"}),
        ("logrank", (), {"duration": "time", "event": "status", "group": "sex"}),
        ("crosstab", ("sex", "ph.ecog"), {}),
        ("histogram", ("age", [18, 50, 60, 70, 100]), {}),
    ]


def _same_value(a: object, b: object) -> None:
    if isinstance(a, pd.DataFrame):
        pd.testing.assert_frame_equal(a, b)  # type: ignore[arg-type]
        return
    for name, v in vars(a).items():
        w = getattr(b, name)
        if isinstance(v, np.ndarray):
            np.testing.assert_array_equal(v, w)
        elif isinstance(v, pd.DataFrame):
            pd.testing.assert_frame_equal(v, w)
        elif isinstance(v, pd.Series):
            pd.testing.assert_series_equal(v, w)
        else:
            assert v == w or (v != v and w != w), name


@pytest.mark.parametrize("protocol", ["plain", "masking"])
def test_batch_equals_separate_runs(protocol: str) -> None:
    fed = lung_federation(3)
    reqs = _requests(fed)
    analyses = [analysis_of(getattr(sf, fn), fed, *a, **kw) for fn, a, kw in reqs]
    got = fed.run_batch(analyses, protocol=protocol, rng=np.random.default_rng(1))
    assert len(got) == len(reqs)
    run_ids = set()
    for (fn, a, kw), rel in zip(reqs, got, strict=True):
        assert isinstance(rel, sf.Release), rel
        want = getattr(sf, fn)(fed, *a, protocol=protocol, **kw)
        assert rel.analysis == want.analysis == fn
        _same_value(rel.value, want.value)
        assert rel.files == want.files
        assert rel.facts["output"] == want.facts["output"]
        assert rel.decision.outcome == want.decision.outcome
        assert rel.decision.rules == want.decision.rules
        assert rel.certificate.verify(trusted=dict(rel.trusted))
        assert rel.rounds == 1 and rel.facts["run"]["rounds"] == 1
        run_ids.add(rel.facts["run"]["run_id"])
    assert len(run_ids) == 1  # one shared session
    # one secure sum: the batch's session moves fewer messages than the separate ones
    assert {e.round for e in got[0].log} <= {0, 1}


def test_batch_saves_rounds_and_messages() -> None:
    fed = lung_federation(2)
    a = [Describe({"columns": ["age"]}),
         GLM({"y": "wt.loss", "X": ["age"], "family": "gaussian"})]
    (r1, r2) = fed.run_batch(a, protocol="masking")
    sep = [fed.run(Describe({"columns": ["age"]}), protocol="masking"),
           fed.run(GLM({"y": "wt.loss", "X": ["age"], "family": "gaussian"}),
                   protocol="masking")]
    exchanges = len(r1.log)
    assert exchanges == len(sep[0].log) == len(sep[1].log)  # one session: as many exchanges
    assert r1.facts["run"]["border_bytes"] == r2.facts["run"]["border_bytes"]  # shared
    assert r1.bytes_cross_border < sum(r.bytes_cross_border for r in sep)


def test_refuses_multi_round_and_dp() -> None:
    fed = lung_federation(2)
    with pytest.raises(InvalidParameter, match=r"analysis 1 \(glm, family binomial\)"):
        fed.run_batch([Describe({"columns": ["age"]}),
                       GLM({"y": "status", "X": ["age"], "family": "binomial"})])
    with pytest.raises(InvalidParameter, match=r"analysis 0 \(cox\) needs several rounds"):
        fed.run_batch([Cox({"duration": "time", "event": "status", "covariates": ["age"]})])
    dp = analysis_of(sf.describe, fed, ["age"], dp=sf.DP(1))
    with pytest.raises(InvalidParameter, match="debited from the sites' budgets separately"):
        fed.run_batch([dp])
    with pytest.raises(InvalidParameter, match="1 to 64"):
        fed.run_batch([])
    with pytest.raises(InvalidParameter, match="batches do not nest"):
        Batch({"items": [Batch.of([Describe({"columns": ["age"]})]).request()]})


def test_sites_rebuild_the_batch_from_its_request() -> None:
    b = Batch.of([Describe({"columns": ["age"]}), GLM({"y": "wt.loss", "X": ["age"],
                                                       "family": "gaussian"})], LUNG_SCHEMA)
    again = analysis_from_request(b.request())
    assert isinstance(again, Batch) and again.request() == b.request()
    ctx = {"sites": ["a"], "max_rows_per_site": 2**32, "public_schema": LUNG_SCHEMA}
    names = again.layout(LUNG_SCHEMA, ctx).names
    assert names[0] == "0:rows" and any(n.startswith("1:xtx") for n in names)


def test_a_denial_does_not_lose_the_others() -> None:
    # health-classed data: a crosstab with small cells is denied by disclosure control
    # (suppression off), the describe next to it is released
    schema = sf.Schema([sf.Column(c.name, role=c.role, kind=c.kind, categories=c.categories,
                                  bounds=c.bounds, resolution=c.resolution,
                                  on_missing=c.on_missing)
                        for c in LUNG_SCHEMA.columns])
    df = lung()
    parts = [df.iloc[::2], df.iloc[1::2]]
    fed = sf.Federation.local(
        [sf.Site("a", parts[0], "CN", schema=schema), sf.Site("b", parts[1], "NL", schema=schema)],
        destination="NL", purpose="scientific-research",
        policy=sf.PolicySettings(suppress=False))
    out = fed.run_batch([analysis_of(sf.crosstab, fed, "ph.ecog", "sex"),
                         analysis_of(sf.describe, fed, ["age"])])
    assert isinstance(out[0], ExportDenied)
    with pytest.raises(ExportDenied):
        sf.crosstab(fed, "ph.ecog", "sex")
    assert isinstance(out[1], sf.Release) and out[1].decision.exportable


def test_a_federation_with_its_own_run_checks_is_refused() -> None:
    class Checked(sf.Federation):
        def run(self, analysis, **kw):  # type: ignore[no-untyped-def, override]
            return super().run(analysis, **kw)

    fed = lung_federation(2)
    fed.__class__ = Checked
    with pytest.raises(InvalidParameter, match="adds checks to run"):
        fed.run_batch([Describe({"columns": ["age"]})])
