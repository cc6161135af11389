"""Server strategies: Flower's own ``aggregate_train`` on the same inputs gives the same model.

Flower's Message-API strategies (``flwr.serverapp.strategy``) run here without a server:
reply messages are built with explicit ``Metadata`` (Flower's internal-use constructor
path) and ``current_arrays`` is set by hand (what ``configure_train`` does with a Grid).

* From the *individual* clients' weights (what Flower sees): Flower's weighted average and
  safeflow's ``w + Σ n_i Δ_i / Σ n_i`` (what the secure sum allows) agree to float
  rounding, over several rounds of optimiser state.
* From the *same* aggregated arrays (one reply carrying the secure average): the server
  optimisers agree bit for bit.
"""

from __future__ import annotations

import numpy as np
import pytest

from safeflow.errors import InvalidParameter
from safeflow.fl.strategies import (
    STRATEGIES,
    FedAdagrad,
    FedAdam,
    FedAvg,
    FedProx,
    FedYogi,
    strategy_from,
)

flwr_strategy = pytest.importorskip("flwr.serverapp.strategy")
flwr_app = pytest.importorskip("flwr.app")

OURS = {"fedavg": FedAvg(), "fedprox": FedProx(mu=0.1),
        "fedadam": FedAdam(eta=0.1, beta_1=0.9, beta_2=0.99, tau=1e-3),
        "fedyogi": FedYogi(eta=0.01, beta_1=0.9, beta_2=0.99, tau=1e-3),
        "fedadagrad": FedAdagrad(eta=0.1, tau=1e-3)}


def _flower(name: str):  # type: ignore[no-untyped-def]
    s = flwr_strategy
    return {"fedavg": lambda: s.FedAvg(), "fedprox": lambda: s.FedProx(proximal_mu=0.1),
            "fedadam": lambda: s.FedAdam(eta=0.1, beta_1=0.9, beta_2=0.99, tau=1e-3),
            "fedyogi": lambda: s.FedYogi(eta=0.01, beta_1=0.9, beta_2=0.99, tau=1e-3),
            "fedadagrad": lambda: s.FedAdagrad(eta=0.1, tau=1e-3)}[name]()


def _reply(w: np.ndarray, n: int):  # type: ignore[no-untyped-def]
    a = flwr_app
    content = a.RecordDict({"arrays": a.ArrayRecord({"w": a.Array(np.asarray(w))}),
                            "metrics": a.MetricRecord({"num-examples": n})})
    md = a.Metadata(run_id=1, message_id="m", src_node_id=2, dst_node_id=1,
                    reply_to_message_id="x", group_id="1", created_at=0.0, ttl=60.0,
                    message_type="train")
    return a.Message(content, metadata=md)


def _flower_step(strategy, current: np.ndarray, replies: list, server_round: int) -> np.ndarray:  # type: ignore[no-untyped-def]
    strategy.current_arrays = {"w": current.copy()}
    arrays, _ = strategy.aggregate_train(server_round, replies)
    return arrays["w"].numpy()


@pytest.mark.parametrize("name", list(STRATEGIES))
def test_matches_flower_from_client_weights(name: str) -> None:
    rng = np.random.default_rng(7)
    w_ours = w_flwr = rng.normal(size=6)
    state: dict = {}
    flower = _flower(name)
    for rnd in (1, 2, 3):
        n = [120, 35, 80]
        deltas = [rng.normal(scale=0.2, size=6) for _ in n]
        secure_sum = sum(ni * d for ni, d in zip(n, deltas, strict=True))  # what customs sees
        w_ours, state = OURS[name].server_update(w_ours, secure_sum / sum(n), state, rnd)
        w_flwr = _flower_step(flower, w_flwr,
                              [_reply(w_flwr + d, ni) for ni, d in zip(n, deltas, strict=True)],
                              rnd)
        np.testing.assert_allclose(w_ours, w_flwr, rtol=0, atol=1e-13)


@pytest.mark.parametrize("name", list(STRATEGIES))
def test_server_optimiser_is_bit_identical_on_the_same_aggregate(name: str) -> None:
    rng = np.random.default_rng(11)
    w = rng.normal(size=5)
    state: dict = {}
    flower = _flower(name)
    for rnd in (1, 2, 3, 4):
        avg = rng.normal(scale=0.1, size=5)
        ours, state = OURS[name].server_update(w, avg, state, rnd)
        theirs = _flower_step(flower, w, [_reply(w + avg, 427)], rnd)
        assert np.array_equal(ours, theirs), name
        w = ours


def test_defaults_are_flowers() -> None:
    for name, cls in STRATEGIES.items():
        theirs = _flower(name) if name != "fedprox" else None
        ours = cls()
        for attr in ("eta", "beta_1", "beta_2", "tau"):
            if theirs is not None and hasattr(ours, attr):
                assert getattr(ours, attr) == getattr(theirs, attr), (name, attr)


def test_fedprox_server_step_is_fedavg() -> None:
    w, d = np.ones(3), np.array([0.1, 0.2, -0.3])
    assert np.array_equal(FedProx(mu=1.0).server_update(w, d, {}, 1)[0],
                          FedAvg().server_update(w, d, {}, 1)[0])


@pytest.mark.parametrize(("value", "message"), [
    ("fedsgd", "strategy must be one of 'fedavg', 'fedprox'"),
    ({"name": "fedadam", "lr": 1}, "bad options for strategy 'fedadam'"),
    (FedAdam(eta=0.0 + 1e-3).to_params() | {"eta": -1}, "fedadam eta must be a number > 0"),
])
def test_strategy_errors(value: object, message: str) -> None:
    with pytest.raises(InvalidParameter, match=message):
        strategy_from(value)


def test_parameter_errors() -> None:
    with pytest.raises(InvalidParameter, match="beta_1 must be a number in"):
        FedYogi(beta_1=1.0)
    with pytest.raises(InvalidParameter, match="FedProx mu must be a number ≥ 0"):
        FedProx(mu=-0.1)
    with pytest.raises(InvalidParameter, match="FedAdagrad has no momentum"):
        FedAdagrad(beta_1=0.5)
    assert strategy_from(FedAdam(eta=0.05)).eta == 0.05
    assert strategy_from(FedAdam(eta=0.05).to_params()) == FedAdam(eta=0.05)
