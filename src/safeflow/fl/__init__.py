"""Federated learning: train a model across hospitals; only secure sums of updates leave.

``sf.fl.train(fed, model, rounds, ...)`` runs federated training as an ordinary safeflow
analysis (:class:`~safeflow.fl.analysis.FLTrain`): each round every site trains the global
model on its own rows and sends its clipped, row-weighted update through the secure-sum
protocol (``masking`` or ``he``); customs averages the sum and applies the server strategy
(FedAvg, FedProx, FedAdam, FedYogi or FedAdagrad, with Flower's formulas). With
``dp=sf.DP(ε, δ)`` it is DP-FedAvg: customs adds Gaussian noise to every round's sum, with
the whole run's (ε, δ) accounted by OpenDP and debited from every site's budget once. The
trained model is a release like any other: facts (output kind ``model``), a policy
decision, and a certificate co-signed by every site.

Modules: :mod:`~safeflow.fl.models` (numpy models), :mod:`~safeflow.fl.features` (the
design matrix), :mod:`~safeflow.fl.strategies` (server math), :mod:`~safeflow.fl.accounting`
(DP-FedAvg), :mod:`~safeflow.fl.analysis` (the rounds), :mod:`~safeflow.fl.result`
(:class:`TrainedModel`), :mod:`~safeflow.fl.training` (the front door).

Examples
--------
>>> import pandas as pd, safeflow as sf
>>> from safeflow import fl
>>> s = sf.Schema([sf.Column("x", classes=("public",), bounds=(-1, 1)),
...                sf.Column("y", classes=("public",), kind="binary", categories=(0, 1))])
>>> df = pd.DataFrame({"x": [-0.8, -0.4, 0.1, 0.5, 0.9, -0.1], "y": [0, 0, 1, 1, 1, 0]})
>>> fed = sf.Federation.local([sf.Site("a", df[:3], "NL", schema=s),
...                           sf.Site("b", df[3:], "DE", schema=s)],
...                          destination="NL", purpose="scientific-research")
>>> rel = fl.train(fed, fl.LogisticRegression(["x"]), rounds=2, target="y", seed=0)
>>> rel.value
<TrainedModel logistic, 2 parameters: 2 round(s) of fedavg via masking, no DP (no ε spent); final training loss 0.6...>
>>> rel.certified, rel.facts["output"]["kind"]
(True, 'model')
"""  # noqa: E501

from safeflow.fl.analysis import FLTrain
from safeflow.fl.models import MLP, LogisticRegression, Model
from safeflow.fl.result import TrainedModel
from safeflow.fl.strategies import (
    STRATEGIES,
    FedAdagrad,
    FedAdam,
    FedAvg,
    FedProx,
    FedYogi,
    Strategy,
)
from safeflow.fl.training import train

__all__ = [
    "MLP",
    "STRATEGIES",
    "FLTrain",
    "FedAdagrad",
    "FedAdam",
    "FedAvg",
    "FedProx",
    "FedYogi",
    "LogisticRegression",
    "Model",
    "Strategy",
    "TrainedModel",
    "train",
]
