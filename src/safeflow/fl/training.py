"""``sf.fl.train``: the front door of federated learning.

It validates the arguments (typed errors that say what to do), turns them into the JSON
parameters of :class:`~safeflow.fl.analysis.FLTrain`, and for DP-FedAvg calibrates the
noise and debits every site's budget ledger *once for the whole run* before anything is
computed; then :meth:`safeflow.Federation.run` drives the rounds and customs certifies the
model like any other release.

Examples
--------
>>> SECURE_AGGREGATION[None], SECURE_AGGREGATION['masking']
('plain', 'masking')
"""

from __future__ import annotations

import math
import secrets
import uuid
from collections.abc import Sequence
from typing import Any

import numpy as np

from safeflow.data import Schema, SiteData
from safeflow.dp.spec import DP
from safeflow.errors import InvalidParameter
from safeflow.federation import Federation
from safeflow.fl.accounting import noise_scale
from safeflow.fl.analysis import FLTrain
from safeflow.fl.features import FeatureEncoder
from safeflow.fl.models import MLP, LogisticRegression, Model
from safeflow.fl.strategies import Strategy, strategy_from
from safeflow.release import Release

#: ``secure_aggregation`` values and the protocol each runs
SECURE_AGGREGATION: dict[str | None, str] = {"masking": "masking", "he": "he", None: "plain"}
#: rounds one call may run
MAX_ROUNDS = 10_000
#: default clipping norm without DP (a bound for the encoding, rarely reached when features
#: are scaled to [-1, 1] and lr is moderate)
DEFAULT_CLIP = 10.0


def _int(name: str, value: Any, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise InvalidParameter(f"{name} must be an int from {lo} to {hi:,}; got {value!r}")
    return int(value)


def _real(name: str, value: Any, example: str) -> float:
    if (isinstance(value, bool) or not isinstance(value, int | float)
            or not math.isfinite(float(value)) or value <= 0):
        raise InvalidParameter(f"{name} must be a finite number > 0, e.g. {example}; "
                               f"got {value!r}")
    return float(value)


def _model(model: Any, features: Sequence[str] | None) -> tuple[Model, list[str]]:
    if isinstance(model, str):
        kinds: dict[str, type[Model]] = {"logistic": LogisticRegression, "mlp": MLP}
        if model not in kinds:
            raise InvalidParameter(
                f"model must be sf.fl.LogisticRegression(...), sf.fl.MLP(...), 'logistic' or "
                f"'mlp'; got {model!r}")
        model = kinds[model]()
    if not isinstance(model, Model):
        raise InvalidParameter(
            "model must be sf.fl.LogisticRegression(features) or sf.fl.MLP(features, "
            f"hidden=(16,)); got {type(model).__name__}")
    if features is not None:
        if isinstance(features, str) or not isinstance(features, Sequence):
            raise InvalidParameter(
                f"features must be a list of column names, e.g. ['age', 'arm']; got {features!r}")
        features = list(features)
    if model.features is not None and features is not None \
            and list(model.features) != features:
        raise InvalidParameter(
            f"the model reads {list(model.features)} but features={features}; give the "
            "features once (to the model or to train)")
    chosen = list(model.features) if model.features is not None else features
    if not chosen:
        raise InvalidParameter("no features: pass features=['age', ...] to sf.fl.train or "
                               "to the model")
    return model, chosen


def train(fed: Federation, model: Model | str, rounds: int = 20, *,
          features: Sequence[str] | None = None, target: str | None = None,
          strategy: str | Strategy = "fedavg", secure_aggregation: str | None = "masking",
          dp: DP | None = None, local_epochs: int = 1, lr: float = 0.1, batch_size: int = 32,
          weight_decay: float = 0.0, clip: float | None = None, seed: int | None = None,
          validation: Any = None, query_id: str | None = None, **options: Any) -> Release:
    """Train a model by federated learning; return the certified :class:`~safeflow.Release`.

    Parameters
    ----------
    fed : sf.Federation
    model : sf.fl.LogisticRegression, sf.fl.MLP, "logistic" or "mlp"
        The architecture (a binary classifier).
    rounds : int
        Training rounds (one secure sum each; without DP one more round evaluates the final
        model on the sites' rows).
    features : list of str, optional
        Schema columns the model reads (unless the model names them). Numeric ones need
        declared bounds (they are scaled to [-1, 1]); categorical ones are one-hot encoded
        against their declared levels.
    target : str
        A two-level column (the second level is the positive class) or a 0/1 column.
    strategy : {"fedavg", "fedprox", "fedadam", "fedyogi", "fedadagrad"} or a strategy
        The server update (Flower's math, :mod:`safeflow.fl.strategies`); pass e.g.
        ``sf.fl.FedAdam(eta=0.05)`` or ``sf.fl.FedProx(mu=0.1)`` to set hyperparameters.
    secure_aggregation : {"masking", "he", None}
        How the sites' updates are summed: pairwise masking (SecAgg) or homomorphic
        encryption; ``None`` runs the ``plain`` protocol, which the export gates refuse
        for anything but public data.
    dp : sf.DP, optional
        DP-FedAvg (central mode): each site's update is clipped to ``clip`` and customs adds
        Gaussian noise to the secure sum every round, calibrated so that all ``rounds``
        rounds together spend ``dp``'s ε and δ (δ > 0; :mod:`safeflow.fl.accounting`).
        Every site's budget is debited once, before training.
    local_epochs : int
        Passes over its rows each site makes per round.
    lr : float
        Sites' SGD learning rate.
    batch_size : int
        Mini-batch rows.
    weight_decay : float
        L2 penalty ``λ/2 ||weights||²`` added to every site's loss (biases not penalised).
        ``λ = 1 / (C · n)`` gives scikit-learn's ``LogisticRegression(C=C)`` objective on
        ``n`` pooled rows.
    clip : float, optional
        L2 norm every site's update is clipped to (public). Default 10 without DP; required
        with DP (the noise is proportional to it).
    seed : int, optional
        Public seed of the initial weights and the sites' shuffling (default: random,
        recorded in the model).
    validation : DataFrame, optional
        The analyst's own labelled rows (features and target); customs reports their loss,
        accuracy and AUC after every round. They never reach the sites.
    query_id : str, optional
        DP only: the ledger entry charged (default: a fresh id). A run that failed before
        its first noised round may be retried with the same id without paying again; once
        a noised model has gone to the sites the id counts as released.
    **options
        Protocol options passed to :meth:`sf.Federation.run` (e.g. ``scheme="ckks"``).

    Returns
    -------
    Release
        ``.value`` is a :class:`~safeflow.fl.TrainedModel`.

    Raises
    ------
    InvalidParameter
        A bad argument (the message names the valid range).
    BudgetExceeded
        DP: a site's budget cannot pay (nothing is spent anywhere).

    Examples
    --------
    >>> import pandas as pd, safeflow as sf
    >>> from safeflow import fl
    >>> s = sf.Schema([sf.Column("x", classes=("public",), bounds=(-1, 1)),
    ...                sf.Column("y", classes=("public",), kind="binary", categories=(0, 1))])
    >>> df = pd.DataFrame({"x": [-0.9, -0.5, -0.2, 0.3, 0.6, 0.8], "y": [0, 0, 0, 1, 1, 1]})
    >>> fed = sf.Federation.local([sf.Site("a", df[:3], "NL", schema=s),
    ...                           sf.Site("b", df[3:], "DE", schema=s)],
    ...                          destination="NL", purpose="scientific-research")
    >>> rel = fl.train(fed, fl.LogisticRegression(["x"]), rounds=3, target="y", lr=1.0,
    ...                batch_size=2, seed=1)
    >>> rel.value.predict(pd.DataFrame({"x": [-0.7, 0.7]})).tolist()
    ['0', '1']
    >>> fl.train(fed, "logistic", rounds=0, features=["x"], target="y")
    Traceback (most recent call last):
    ...
    safeflow.errors.InvalidParameter: rounds must be an int from 1 to 10,000; got 0
    """
    if not isinstance(fed, Federation):
        raise InvalidParameter(
            "the first argument must be an sf.Federation (e.g. sf.Federation.local([...])); "
            f"got {type(fed).__name__}")
    mdl, feats = _model(model, features)
    rounds = _int("rounds", rounds, 1, MAX_ROUNDS)
    local_epochs = _int("local_epochs", local_epochs, 1, 1000)
    batch_size = _int("batch_size", batch_size, 1, 1 << 20)
    lr = _real("lr", lr, "lr=0.1")
    if (isinstance(weight_decay, bool) or not isinstance(weight_decay, int | float)
            or not math.isfinite(float(weight_decay)) or not 0 <= weight_decay < 1 / lr):
        raise InvalidParameter(
            f"weight_decay must be a number ≥ 0 and < 1/lr ({1 / lr:g}), e.g. 1e-3; "
            f"got {weight_decay!r}")
    if secure_aggregation not in SECURE_AGGREGATION:
        raise InvalidParameter(
            "secure_aggregation must be 'masking' (pairwise masks), 'he' (homomorphic "
            f"encryption) or None (plain sums, public data only); got {secure_aggregation!r}")
    protocol = SECURE_AGGREGATION[secure_aggregation]
    strat = strategy_from(strategy)
    if seed is None:
        seed = secrets.randbelow(2**63)
    seed = _int("seed", seed, 0, 2**63 - 1)
    if dp is not None and not isinstance(dp, DP):
        raise InvalidParameter(
            f"dp must be an sf.DP object, e.g. dp=sf.DP(1, delta=1e-6); got {type(dp).__name__}")
    if clip is None:
        if dp is not None:
            raise InvalidParameter(
                "DP-FedAvg needs clip=, the L2 norm each site's update is clipped to (the noise "
                "is proportional to it), e.g. clip=1.0; the history's update_norm of a run "
                "without DP shows typical sizes")
        clip = DEFAULT_CLIP
    clip = _real("clip", clip, "clip=1.0")
    schema = fed.public_schema
    enc = FeatureEncoder.from_schema(schema, feats, target)  # type: ignore[arg-type]
    params: dict[str, Any] = {
        "features": feats, "target": target, "model": mdl.spec(),
        "strategy": strat.to_params(), "rounds": rounds, "local_epochs": local_epochs,
        "lr": lr, "batch_size": batch_size, "weight_decay": float(weight_decay), "clip": clip,
        "seed": seed, "protocol": protocol}
    in_process = getattr(fed, "transport", None) == "local"
    if validation is not None and not in_process:
        raise InvalidParameter(
            "validation= is evaluated by customs in this process, which a deployed "
            "federation's customs is not; evaluate the returned model instead with "
            "release.value.predict_proba(df)")
    if dp is not None and getattr(fed, "accounts", None) is None:
        raise InvalidParameter(
            "DP-FedAvg needs the sites' budget ledgers, which this federation does not "
            "expose (deployed federations do not support DP yet); train without dp= or on "
            "a local federation")
    held_out = None if validation is None else _validation(validation, enc, schema)
    receipts, qid = [], None
    if dp is not None:  # everything that can fail was checked; now every site pays, once
        _check_dp(dp, schema.unit)
        noise_scale(dp, rounds=rounds, clip=clip)  # calibrate now: fail before paying
        qid = query_id or f"{fed.study}/fl_train/{uuid.uuid4().hex[:16]}"
        receipts = fed.accounts.debit(qid, dp, [s.name for s in fed.sites])
        params["dp_fedavg"] = {"epsilon": str(dp.epsilon), "delta": str(dp.delta),
                               "unit": dp.unit, "alpha": dp.alpha}
        params["budget"] = fed.accounts.budget_facts(receipts)
    elif query_id is not None:
        raise InvalidParameter("query_id= names a DP budget entry; it needs dp=sf.DP(...)")
    analysis = FLTrain(params)
    analysis.validation = held_out
    try:
        return fed.run(analysis, protocol=protocol, **options)
    finally:
        # every noised round's model went to the sites: from the first one on, the query
        # counts as released (a retry under the same id would be a free second draw)
        if qid is not None and analysis.noised_rounds:
            fed.accounts.mark_released(qid, receipts)


def _check_dp(dp: DP, schema_unit: str) -> None:
    if dp.mode != "central":
        raise InvalidParameter(
            "DP-FedAvg runs in central mode (customs noises the secure sum of clipped "
            "updates once per round); use sf.DP(..., mode='central')")
    if dp.mechanism not in (None, "gaussian"):
        raise InvalidParameter("DP-FedAvg uses the Gaussian mechanism: leave mechanism=None "
                               "and pass delta > 0")
    if dp.delta == 0:
        raise InvalidParameter("DP-FedAvg uses the Gaussian mechanism, which needs delta > 0: "
                               f"pass e.g. sf.DP({dp.epsilon}, delta=1e-6)")
    if dp.unit != schema_unit:
        raise InvalidParameter(
            f"the DP unit of privacy ({dp.unit!r}) differs from the schema's "
            f"({schema_unit!r}); use sf.DP(..., unit={schema_unit!r}) or declare the schema "
            f"with unit={dp.unit!r}")


def _validation(data: Any, enc: FeatureEncoder, schema: Schema) -> tuple[np.ndarray,
                                                                           np.ndarray]:
    """Encode the analyst's validation rows like the sites do (typed data errors)."""
    sub = Schema([schema.column(c) for c in enc.columns], unit=schema.unit,
                 declared=schema.declared, rows_per_patient=schema.rows_per_patient)
    sd = SiteData(data, schema=sub)
    xs, ys = [], []
    for b in sd.batches(enc.columns):
        xs.append(enc.encode(b))
        ys.append(enc.labels(b))
    if not sum(len(y) for y in ys):
        raise InvalidParameter("validation data has no rows; pass a DataFrame with the "
                               "features and the target")
    return np.vstack(xs), np.concatenate(ys)


__all__ = ["DEFAULT_CLIP", "MAX_ROUNDS", "SECURE_AGGREGATION", "train"]
