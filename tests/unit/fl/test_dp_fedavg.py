"""DP-FedAvg: budgets debited once per run, refusals spend nothing, the noise matches the
accounting, and the certificate states the guarantee."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pandas as pd
import pytest

import safeflow as sf
from safeflow import fl
from safeflow.errors import BudgetExceeded, InvalidParameter, ProtocolError
from safeflow.fl.accounting import (
    add_noise,
    l2_sensitivity,
    noise_scale,
    round_rho,
    run_privacy_loss,
)
from safeflow.fl.analysis import FLTrain
from tests.unit.fl.data import FEATURES, TARGET, federation, split

DP = sf.DP(1, delta=1e-6)
ARGS = {"rounds": 4, "target": TARGET, "clip": 0.5, "lr": 0.5, "batch_size": 16, "seed": 4}


@pytest.fixture(scope="module")
def train_rows() -> pd.DataFrame:
    return split()[0]


@pytest.fixture(scope="module")
def run(train_rows: pd.DataFrame) -> tuple[sf.Federation, sf.Release]:
    fed = federation(train_rows, budget=(2, 1e-5))
    return fed, fl.train(fed, fl.LogisticRegression(FEATURES), dp=DP, **ARGS)


def _spent(fed: sf.Federation) -> dict[str, tuple[Fraction, Fraction, int]]:
    return {s: (rows[0]["spent"], rows[0]["delta_spent"], rows[0]["queries"])
            for s, rows in fed.budgets().items()}


def test_every_site_pays_once_for_the_whole_run(run: tuple[sf.Federation, sf.Release]) -> None:
    fed, rel = run
    assert rel.rounds == ARGS["rounds"]  # no evaluation round under DP
    assert _spent(fed) == {s: (Fraction(1), Fraction(1, 10**6), 1) for s in ("h0", "h1", "h2")}
    assert rel.facts["budget"] == {"epsilon_total": "2", "epsilon_spent": "0",
                                   "epsilon_requested": "1"}
    assert rel.epsilon == "1"
    assert "DP-FedAvg ε=1 δ=1/1000000" in repr(rel.value)


def test_refused_when_the_budget_is_short_and_nothing_is_spent(
        run: tuple[sf.Federation, sf.Release]) -> None:
    fed, _ = run
    before = _spent(fed)
    with pytest.raises(BudgetExceeded, match="Nothing was spent at any site"):
        fl.train(fed, fl.LogisticRegression(FEATURES), dp=sf.DP(1.5, delta=1e-6), **ARGS)
    assert _spent(fed) == before


def test_a_released_query_cannot_be_drawn_again(train_rows: pd.DataFrame) -> None:
    fed = federation(train_rows, budget=(5, 1e-5))
    fl.train(fed, "logistic", features=FEATURES, dp=DP, query_id="model-1", **{**ARGS,
                                                                              "rounds": 1})
    with pytest.raises(InvalidParameter, match="already released"):
        fl.train(fed, "logistic", features=FEATURES, dp=DP, query_id="model-1",
                 **{**ARGS, "rounds": 1})
    assert _spent(fed)["h0"] == (Fraction(1), Fraction(1, 10**6), 1)


def test_sites_without_a_budget_are_refused(train_rows: pd.DataFrame) -> None:
    with pytest.raises(InvalidParameter, match="has no privacy budget"):
        fl.train(federation(train_rows), "logistic", features=FEATURES, dp=DP, **ARGS)


def test_noise_scale_matches_the_accounting(run: tuple[sf.Federation, sf.Release]) -> None:
    _, rel = run
    rounds, clip = ARGS["rounds"], ARGS["clip"]
    sigma = noise_scale(DP, rounds=rounds, clip=clip)
    stat = rel.facts["output"]["dp"]["statistics"][0]
    assert stat["scale"] == stat["std"] == sigma == rel.value.dp["noise_scale"]
    # zCDP of one round is OpenDP's map, = (2C)^2 / (2 sigma^2)
    assert round_rho(sigma, clip) == pytest.approx((2 * clip) ** 2 / (2 * sigma**2), rel=1e-12)
    # the composed run meets (eps, delta) ... and is tight: 0.1% less noise would not
    eps, delta = run_privacy_loss(sigma, rounds=rounds, clip=clip, delta=DP.delta)
    assert eps <= DP.epsilon and delta <= DP.delta
    eps_less, _ = run_privacy_loss(sigma * 0.999, rounds=rounds, clip=clip, delta=DP.delta)
    assert eps_less > DP.epsilon
    # the textbook conversion rho + 2 sqrt(rho ln 1/delta) is looser than OpenDP's
    rho = rounds * (2 * clip) ** 2 / (2 * sigma**2)
    assert rho + 2 * math.sqrt(rho * math.log(1 / float(DP.delta))) >= float(eps)
    # more rounds at the same budget need more noise per round, about sqrt(rounds)
    ratio = noise_scale(DP, rounds=4 * rounds, clip=clip) / sigma
    assert 1.9 < ratio < 2.1
    assert l2_sensitivity(clip) == 2 * clip


def test_noise_is_gaussian_with_the_calibrated_scale() -> None:
    x = add_noise(np.zeros(4000), 3.0)
    assert abs(x.std() / 3.0 - 1) < 0.06
    assert abs(x.mean()) < 0.3
    with pytest.raises(ProtocolError, match="not finite"):
        add_noise(np.array([np.nan]), 1.0)


def test_customs_noises_every_round(run: tuple[sf.Federation, sf.Release]) -> None:
    fed, _ = run
    params = {"features": FEATURES, "target": TARGET, "model": {"type": "logistic"},
              "strategy": {"name": "fedavg"}, "rounds": 2, "local_epochs": 1, "lr": 0.1,
              "batch_size": 8, "clip": 1.0, "seed": 0, "protocol": "plain",
              "dp_fedavg": {"epsilon": "1", "delta": "1/1000000", "unit": "patient"},
              "budget": {"epsilon_total": "1", "epsilon_spent": "0", "epsilon_requested": "1"}}
    a = FLTrain(params)
    a.state = a.initial_state(fed.public_schema)
    lay = a.layout(fed.public_schema, {"max_rows_per_site": 1000})
    assert lay.names == ("sites", "update")  # no counts, losses or row numbers under DP
    assert [s.precision for s in lay.specs][1] == "double" and lay.specs[1].bound == 1.0
    step = a.combine({"sites": np.array([3]), "update": np.zeros(31)}, fed.public_schema, {})
    w = np.asarray(step.state["weights"])  # type: ignore[union-attr]
    sigma = noise_scale(sf.DP(1, delta=1e-6), rounds=2, clip=1.0)
    assert 0.3 * sigma / 3 < w.std() < 3 * sigma / 3  # the zero sum came back noised
    assert step.state["history"][1]["train_loss"] is None  # type: ignore[union-attr]


def test_certificate_states_the_guarantee(run: tuple[sf.Federation, sf.Release]) -> None:
    _, rel = run
    assert rel.certificate.verify()
    dp = rel.certificate.body["facts"]["output"]["dp"]
    assert dp["epsilon"] == "1" and dp["delta"] == "0.000001" and dp["mode"] == "central"
    assert dp["unit"] == "patient" and dp["withheld"] == ["n", "loss", "correct", "clipped",
                                                          "dropped"]
    assert dp["statistics"][0]["mechanism"] == "gaussian"
    assert "L2 sensitivity 1" in dp["statistics"][0]["statistic"]
    assert rel.decision.rules == ("EU-anon",)
    h = rel.value.history
    assert h["train_loss"].isna().all() and h["n"].isna().all()
    assert rel.value.n is None and rel.facts["output"]["sdc"]["n"] is None


def test_health_data_model_with_dp_is_anonymous() -> None:
    rng = np.random.default_rng(1)
    s = sf.Schema([sf.Column("age", bounds=(18, 100)),
                   sf.Column("leak", kind="binary", categories=(0, 1))])
    sites = []
    for i, j in enumerate(("CN", "NL")):
        df = pd.DataFrame({"age": rng.uniform(18, 100, 60)})
        df["leak"] = (df["age"] > 60).astype(int)
        sites.append(sf.Site(f"s{i}", df, j, schema=s, budget=(1, 1e-6)))
    fed = sf.Federation.local(sites, destination="NL", purpose="scientific-research")
    rel = fl.train(fed, "logistic", rounds=2, features=["age"], target="leak", dp=DP,
                   clip=1.0, seed=0)
    assert rel.decision.exportable and rel.decision.rules == ("EU-anon",)


@pytest.mark.parametrize(("dp", "extra", "message"), [
    (sf.DP(1), {}, "needs delta > 0: pass e.g. sf.DP\\(1, delta=1e-6\\)"),
    (sf.DP(1, delta=1e-6, mode="local"), {}, "DP-FedAvg runs in central mode"),
    (sf.DP(1, delta=1e-6, unit="row"), {}, "the DP unit of privacy \\('row'\\) differs"),
    (sf.DP(1, delta=1e-6), {"clip": None}, "DP-FedAvg needs clip="),
])
def test_dp_argument_errors(train_rows: pd.DataFrame, dp: sf.DP, extra: dict,
                            message: str) -> None:
    fed = federation(train_rows, budget=(2, 1e-5))
    with pytest.raises(InvalidParameter, match=message):
        fl.train(fed, "logistic", features=FEATURES, dp=dp, **{**ARGS, **extra})
    assert all(rows[0]["spent"] == 0 for rows in fed.budgets().values())


def test_dp_run_without_the_front_door_is_refused(train_rows: pd.DataFrame) -> None:
    fed = federation(train_rows)
    a = FLTrain({"features": FEATURES, "target": TARGET, "model": {"type": "logistic"},
                 "strategy": {"name": "fedavg"}, "rounds": 1, "local_epochs": 1, "lr": 0.1,
                 "batch_size": 8, "clip": 1.0, "seed": 0, "protocol": "masking",
                 "dp_fedavg": {"epsilon": "1", "delta": "1/1000000", "unit": "patient"}})
    with pytest.raises(ProtocolError, match=r"must be started with sf\.fl\.train"):
        fed.run(a, protocol="masking")


def test_dp_average_divides_by_the_surviving_sites(train_rows: pd.DataFrame) -> None:
    fed = federation(train_rows, budget=(2, 1e-5))
    fed.simulate_faults(dropouts={"h0": (2, "masked_input")})
    rel = fl.train(fed, "logistic", features=FEATURES, dp=DP, **ARGS)
    assert rel.facts["run"]["contributors"] == ["h1", "h2"]
    assert np.all(np.isfinite(rel.value.weights))


def test_retry_is_free_before_the_first_noised_round_and_refused_after(
        train_rows: pd.DataFrame) -> None:
    from safeflow.errors import TooFewSurvivors

    fed = federation(train_rows, budget=(5, 1e-5))
    args = {"features": FEATURES, "dp": DP, **ARGS}
    fed.simulate_faults(dropouts={"h0": (1, "masked_input"), "h1": (1, "masked_input")})
    with pytest.raises(TooFewSurvivors):
        fl.train(fed, "logistic", query_id="early", **args)
    fed.simulate_faults()
    fl.train(fed, "logistic", query_id="early", **args)  # nothing noised yet: a free retry
    assert _spent(fed)["h2"] == (Fraction(1), Fraction(1, 10**6), 1)
    fed.simulate_faults(dropouts={"h0": (3, "masked_input"), "h1": (3, "masked_input")})
    with pytest.raises(TooFewSurvivors):
        fl.train(fed, "logistic", query_id="late", **args)
    fed.simulate_faults()
    with pytest.raises(InvalidParameter, match="already released"):  # models reached sites
        fl.train(fed, "logistic", query_id="late", **args)
    assert _spent(fed)["h2"] == (Fraction(2), Fraction(2, 10**6), 2)
