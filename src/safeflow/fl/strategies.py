"""Server strategies: how customs turns the secure average of the sites' updates into the
next global model. The formulas are Flower's (``flwr.serverapp.strategy``, Flower 1.41-1.42),
operation for operation; ``tests/unit/fl/test_flower_parity.py`` runs Flower's own
``aggregate_train`` on the same inputs and checks the results agree.

Why not call Flower here. Flower's strategies are callable without a server only through
internal constructs (a reply ``Message`` with hand-made ``Metadata``, ``current_arrays``
set by hand instead of by ``configure_train``, which needs a ``Grid``); they keep their
optimiser moments in Python attributes, while a safeflow round must be resumable from
JSON-able state; their ``FedAvg`` step averages the *individual* clients' arrays, which
secure aggregation hides by design (customs sees only the sum); and analyses never import
Flower (STYLE.md item 8: only ``safeflow.transport.flower`` does). So the math is written
out below, with the Flower source it follows, and checked against Flower in the tests.

Notation: ``w`` the global weights sent in round ``t`` (1-based, Flower's ``server_round``),
``Δ`` the secure average of the sites' updates (weighted by rows for FedAvg, the noised
mean of clipped updates for DP-FedAvg), ``x = w + Δ`` Flower's "aggregated arrays".

* **FedAvg** (McMahan et al. 2017; ``fedavg.py`` ``aggregate_train`` ->
  ``strategy_utils.aggregate_arrayrecords``): ``w' = x``.
* **FedProx** (Li et al. 2020, "Federated Optimization in Heterogeneous Networks"): the
  server step is FedAvg's (``fedprox.py`` only adds ``proximal-mu`` to the train config);
  the sites minimise ``loss + μ/2 ||w_local - w||²`` (:mod:`safeflow.fl.analysis`).
* **FedAdam, FedYogi, FedAdagrad** (Reddi et al. 2021, "Adaptive Federated Optimization",
  ICLR; ``fedopt.py`` ``_compute_deltat_and_mt``)::

      Δt = x - w;   m = β1·m + (1 - β1)·Δt                       (m starts at 0)
      FedAdam    v = β2·v + (1 - β2)·Δt²                         (fedadam.py)
                 w' = w + η·sqrt(1 - β2^(t+1)) / (1 - β1^(t+1)) · m / (sqrt(v) + τ)
      FedYogi    v = v - (1 - β2)·Δt²·sign(v - Δt²);  w' = w + η·m / (sqrt(v) + τ)
      FedAdagrad v = v + Δt²  (β1 = 0, so m = Δt);    w' = w + η·m / (sqrt(v) + τ)

  with ``v`` starting at 0 (Reddi et al. start it at ``τ²``; Flower, and so safeflow,
  at 0) and FedAdam's bias correction at ``t + 1`` exactly as Flower writes it.
  Defaults are Flower's: FedAdam η = 0.1, β1 = 0.9, β2 = 0.99, τ = 1e-3; FedYogi η = 0.01;
  FedAdagrad η = 0.1, τ = 1e-3.

Examples
--------
>>> import numpy as np
>>> s = strategy_from("fedadam")
>>> w, state = s.server_update(np.zeros(2), np.array([0.1, -0.2]), {}, 1)
>>> np.round(w, 4).tolist(), sorted(state)
([0.0675, -0.0707], ['m', 'v'])
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import numpy as np

from safeflow.errors import InvalidParameter


def _positive(name: str, value: Any, *, upper: float = math.inf, zero: bool = False) -> float:
    ok = (isinstance(value, int | float) and not isinstance(value, bool)
          and math.isfinite(float(value)) and (value >= 0 if zero else value > 0)
          and value <= upper)
    if not ok:
        rng = f"{'≥' if zero else '>'} 0" + ("" if upper == math.inf else f" and ≤ {upper:g}")
        raise InvalidParameter(f"{name} must be a number {rng}; got {value!r}")
    return float(value)


def _beta(name: str, value: Any) -> float:
    if not (isinstance(value, int | float) and not isinstance(value, bool)
            and 0.0 <= float(value) < 1.0):
        raise InvalidParameter(f"{name} must be a number in [0, 1); got {value!r}")
    return float(value)


@dataclass(frozen=True)
class Strategy:
    """Base class: a server update from the averaged site update (see module docstring)."""

    name: ClassVar[str] = ""

    @property
    def proximal_mu(self) -> float:
        """Weight μ of the sites' proximal term (0 except for FedProx)."""
        return 0.0

    def server_update(self, w: np.ndarray, delta: np.ndarray, state: Mapping[str, Any],
                      server_round: int) -> tuple[np.ndarray, dict[str, Any]]:
        """Next global weights and optimiser state (JSON-able) after round ``server_round``."""
        return np.asarray(w, dtype=np.float64) + delta, {}

    def to_params(self) -> dict[str, Any]:
        """JSON-able description (travels in the analysis parameters)."""
        return {"name": self.name, **asdict(self)}


@dataclass(frozen=True)
class FedAvg(Strategy):
    """Federated averaging (McMahan et al. 2017): the new model is the weighted average.

    Examples
    --------
    >>> FedAvg().to_params()
    {'name': 'fedavg'}
    """

    name: ClassVar[str] = "fedavg"


@dataclass(frozen=True)
class FedProx(Strategy):
    """FedAvg on the server; sites add ``μ/2 ||w_local - w_global||²`` to their loss.

    Parameters
    ----------
    mu : float
        Proximal weight μ ≥ 0 (Flower's ``proximal_mu``; Li et al. 2020 try 0.001 to 1).

    Examples
    --------
    >>> FedProx(mu=0.1).proximal_mu
    0.1
    """

    name: ClassVar[str] = "fedprox"
    mu: float = 0.1

    def __post_init__(self) -> None:
        object.__setattr__(self, "mu", _positive("FedProx mu", self.mu, zero=True))

    @property
    def proximal_mu(self) -> float:
        return self.mu


@dataclass(frozen=True)
class _FedOpt(Strategy):
    eta: float = 0.1
    beta_1: float = 0.9
    beta_2: float = 0.99
    tau: float = 1e-3

    def __post_init__(self) -> None:
        object.__setattr__(self, "eta", _positive(f"{self.name} eta", self.eta))
        object.__setattr__(self, "tau", _positive(f"{self.name} tau", self.tau))
        object.__setattr__(self, "beta_1", _beta(f"{self.name} beta_1", self.beta_1))
        object.__setattr__(self, "beta_2", _beta(f"{self.name} beta_2", self.beta_2))

    def _v(self, v: np.ndarray, delta_t: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _eta(self, server_round: int) -> float:
        return self.eta

    def server_update(self, w: np.ndarray, delta: np.ndarray, state: Mapping[str, Any],
                      server_round: int) -> tuple[np.ndarray, dict[str, Any]]:
        current = np.asarray(w, dtype=np.float64)
        aggregated = current + delta  # Flower's aggregated arrays
        delta_t = aggregated - current
        m = np.asarray(state["m"]) if state.get("m") is not None else np.zeros_like(current)
        m = self.beta_1 * m + (1 - self.beta_1) * delta_t
        v = np.asarray(state["v"]) if state.get("v") is not None else np.zeros_like(current)
        v = self._v(v, delta_t)
        new = current + self._eta(server_round) * m / (np.sqrt(v) + self.tau)
        return new, {"m": m.tolist(), "v": v.tolist()}


@dataclass(frozen=True)
class FedAdam(_FedOpt):
    """Adaptive server optimiser FedAdam (Reddi et al. 2021), Flower's formula.

    Examples
    --------
    >>> FedAdam(eta=0.05).to_params()["eta"]
    0.05
    """

    name: ClassVar[str] = "fedadam"

    def _v(self, v: np.ndarray, delta_t: np.ndarray) -> np.ndarray:
        return self.beta_2 * v + (1 - self.beta_2) * (delta_t ** 2)

    def _eta(self, server_round: int) -> float:
        return float(self.eta * np.sqrt(1 - np.power(self.beta_2, server_round + 1.0))
                     / (1 - np.power(self.beta_1, server_round + 1.0)))


@dataclass(frozen=True)
class FedYogi(_FedOpt):
    """Adaptive server optimiser FedYogi (Reddi et al. 2021), Flower's formula.

    Examples
    --------
    >>> FedYogi().eta
    0.01
    """

    name: ClassVar[str] = "fedyogi"
    eta: float = 1e-2

    def _v(self, v: np.ndarray, delta_t: np.ndarray) -> np.ndarray:
        return v - (1.0 - self.beta_2) * (delta_t ** 2) * np.sign(v - delta_t ** 2)


@dataclass(frozen=True)
class FedAdagrad(_FedOpt):
    """Adaptive server optimiser FedAdagrad (Reddi et al. 2021): β1 = β2 = 0, as Flower.

    Examples
    --------
    >>> FedAdagrad().to_params()["beta_1"]
    0.0
    """

    name: ClassVar[str] = "fedadagrad"
    beta_1: float = 0.0
    beta_2: float = 0.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.beta_1 != 0.0 or self.beta_2 != 0.0:
            raise InvalidParameter("FedAdagrad has no momentum: beta_1 and beta_2 are 0 (as in "
                                   "Flower); use FedAdam or FedYogi for momentum")

    def _v(self, v: np.ndarray, delta_t: np.ndarray) -> np.ndarray:
        return v + (delta_t ** 2)


#: every strategy, by name
STRATEGIES: dict[str, type[Strategy]] = {
    c.name: c for c in (FedAvg, FedProx, FedAdam, FedYogi, FedAdagrad)}


def strategy_from(value: Any) -> Strategy:
    """A strategy from its name, a :class:`Strategy`, or its :meth:`~Strategy.to_params`.

    Examples
    --------
    >>> strategy_from("fedprox")
    FedProx(mu=0.1)
    >>> strategy_from({"name": "fedyogi", "eta": 0.02, "beta_1": 0.9, "beta_2": 0.99,
    ...                "tau": 0.001}).eta
    0.02
    >>> strategy_from("fedsgd")
    Traceback (most recent call last):
    ...
    safeflow.errors.InvalidParameter: strategy must be one of 'fedavg', 'fedprox', 'fedadam', 'fedyogi', 'fedadagrad' (or an sf.fl strategy object such as sf.fl.FedAdam(eta=0.05)); got 'fedsgd'
    """  # noqa: E501
    if isinstance(value, Strategy) and type(value) in STRATEGIES.values():
        return value
    name, options = value, {}
    if isinstance(value, Mapping):
        name = value.get("name")
        options = {k: v for k, v in value.items() if k != "name"}
    if not isinstance(name, str) or name not in STRATEGIES:
        names = ", ".join(repr(n) for n in STRATEGIES)
        raise InvalidParameter(
            f"strategy must be one of {names} (or an sf.fl strategy object such as "
            f"sf.fl.FedAdam(eta=0.05)); got {value!r}")
    try:
        return STRATEGIES[name](**options)
    except TypeError as e:
        raise InvalidParameter(f"bad options for strategy {name!r}: {options}") from e


__all__ = ["STRATEGIES", "FedAdagrad", "FedAdam", "FedAvg", "FedProx", "FedYogi", "Strategy",
           "strategy_from"]
