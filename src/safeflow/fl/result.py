"""The value of a federated-learning release: a trained model that carries how it was made.

A :class:`TrainedModel` holds the final global weights, the architecture, the feature
recipe (names, declared bounds used for scaling, levels), the training settings, the
per-round history and, for DP-FedAvg, the privacy parameters. It predicts on new rows with
the same encoding the sites used (:meth:`TrainedModel.predict_proba`), draws its learning
curve (:meth:`TrainedModel.plot`) and says in its ``repr`` how many rounds of which
strategy ran over which protocol, and the ε spent.

Examples
--------
>>> import numpy as np
>>> from safeflow.data import Column, Schema
>>> from safeflow.fl.features import FeatureEncoder
>>> s = Schema([Column("x", bounds=(0, 2)), Column("y", kind="binary", categories=(0, 1))])
>>> m = TrainedModel.build(architecture={"type": "logistic"},
...     encoder=FeatureEncoder.from_schema(s, ["x"], "y"), schema=s,
...     weights=np.array([3.0, 0.0]), history=[{"round": 0, "train_loss": 0.69}],
...     strategy={"name": "fedavg"}, protocol="masking", dp=None, n=10,
...     training={"rounds": 1})
>>> m
<TrainedModel logistic, 2 parameters: 1 round(s) of fedavg via masking, no DP (no ε spent); final training loss 0.69>
>>> import pandas as pd
>>> m.predict_proba(pd.DataFrame({"x": [0.0, 2.0]})).round(3).tolist()
[[0.953, 0.047], [0.047, 0.953]]
"""  # noqa: E501

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import special

from safeflow.data import Schema, SiteData
from safeflow.errors import DataError
from safeflow.fl.features import FeatureEncoder
from safeflow.fl.models import Model, model_from_spec

_HISTORY = ["round", "train_loss", "train_accuracy", "n", "update_norm", "sites_clipped",
            "val_loss", "val_accuracy", "val_auc"]


@dataclass(frozen=True, repr=False, eq=False)
class TrainedModel:
    """A federated model and its provenance (build it with :meth:`build`).

    Attributes
    ----------
    architecture : dict
        ``{"type": "logistic"}`` or ``{"type": "mlp", "hidden": [...], "activation": ...}``.
    encoder : FeatureEncoder
        Features, their scaling by declared bounds, levels, and the target's classes.
    weights : numpy.ndarray
        The flat parameter vector (read-only).
    history : pandas.DataFrame
        One row per global model (round 0: the initial one): ``train_loss``,
        ``train_accuracy`` (on the sites' rows, NaN under DP), ``n``, ``update_norm``,
        ``sites_clipped``, and ``val_loss``, ``val_accuracy``, ``val_auc`` when validation
        data was given.
    strategy : dict
        The server strategy and its hyperparameters.
    protocol : str
        How the updates were summed: ``plain``, ``masking`` or ``he``.
    dp : dict or None
        DP-FedAvg: ``epsilon``, ``delta``, ``unit``, ``noise_scale``, ``clip``, ``rounds``.
    n : int or None
        Rows trained on (None under DP: not released).
    training : dict
        ``rounds``, ``local_epochs``, ``lr``, ``batch_size``, ``clip``, ``seed``.
    """

    architecture: dict[str, Any]
    encoder: FeatureEncoder
    schema: dict[str, Any]
    weights: np.ndarray
    history: pd.DataFrame
    strategy: dict[str, Any]
    protocol: str
    dp: dict[str, Any] | None
    n: int | None
    training: dict[str, Any]

    @classmethod
    def build(cls, *, architecture: Mapping[str, Any], encoder: FeatureEncoder,
              schema: Schema, weights: np.ndarray, history: Sequence[Mapping[str, Any]],
              strategy: Mapping[str, Any], protocol: str, dp: Mapping[str, Any] | None,
              n: int | None, training: Mapping[str, Any]) -> TrainedModel:
        """Assemble a model (customs calls this at the end of a run)."""
        w = np.array(weights, dtype=np.float64)
        w.setflags(write=False)
        hist = pd.DataFrame([{k: h.get(k) for k in _HISTORY} for h in history],
                            columns=_HISTORY)
        hist = hist.astype({k: "float64" for k in _HISTORY if k != "round"})
        hist["round"] = hist["round"].astype("int64")
        sub = Schema([schema.column(f) for f in encoder.features], unit=schema.unit,
                     declared=schema.declared, rows_per_patient=schema.rows_per_patient)
        return cls(dict(architecture), encoder, sub.to_dict(allow_inferred=True), w, hist,
                   dict(strategy), protocol, None if dp is None else dict(dp), n,
                   dict(training))

    @property
    def model(self) -> Model:
        """The model object (architecture and features)."""
        return model_from_spec(self.architecture, self.encoder.features)

    @property
    def params(self) -> dict[str, np.ndarray]:
        """The weights as named arrays (``weight``, ``bias``; ``layer1.weight``, ...)."""
        return self.model.unflatten(self.weights, self.encoder.width)

    @property
    def summary(self) -> pd.DataFrame:
        """One row per parameter: its name and value (what an export writes).

        Logistic regression names its coefficients by encoded feature (``age``,
        ``arm[ec]``) and calls the bias ``Intercept``.
        """
        names, values = [], []
        for name, arr in self.params.items():
            if self.architecture["type"] == "logistic":
                names += list(self.encoder.names) if name == "weight" else ["Intercept"]
            elif arr.ndim == 1:
                names += [f"{name}[{i}]" for i in range(arr.shape[0])]
            else:
                names += [f"{name}[{i},{j}]" for i in range(arr.shape[0])
                          for j in range(arr.shape[1])]
            values += arr.ravel().tolist()
        return pd.DataFrame({"value": values}, index=pd.Index(names, name="parameter"))

    def _inputs(self, data: Any) -> np.ndarray:
        sd = SiteData(data, schema=Schema.from_dict(self.schema))
        parts = [self.encoder.encode(b) for b in sd.batches(list(self.encoder.features))]
        if sum(sd.drop_counts.values()):
            raise DataError("some rows were dropped by the schema's missing-value or bounds "
                            "policies, so predictions would not line up with the rows; fill "
                            "or remove those rows first")
        return np.vstack(parts) if parts else np.zeros((0, self.encoder.width))

    def decision_function(self, data: Any) -> np.ndarray:
        """The logit of every row of ``data`` (a DataFrame or any site data source)."""
        return self.model.logits(self.weights, self._inputs(data))

    def predict_proba(self, data: Any) -> np.ndarray:
        """Class probabilities, shape ``(n, 2)``: columns are the target's two levels.

        ``data`` holds the feature columns (raw values, as at the sites): numeric ones are
        scaled by their declared bounds, categorical ones matched to the declared levels.
        """
        p1 = special.expit(self.decision_function(data))
        return np.column_stack([1.0 - p1, p1])

    def predict(self, data: Any) -> np.ndarray:
        """The more probable class label (the target's declared level, as text)."""
        labels = np.array(self.encoder.classes, dtype=object)
        return labels[(self.decision_function(data) > 0).astype(int)]

    def plot(self, ax: Any = None) -> Any:
        """Learning curve: training (and validation) loss per round; validation AUC on a
        second axis when present. Returns the matplotlib ``Axes``."""
        if ax is None:
            from matplotlib.figure import Figure

            ax = Figure(figsize=(6, 3.5)).subplots()
        h = self.history
        if h["train_loss"].notna().any():
            ax.plot(h["round"], h["train_loss"], marker="o", ms=3, label="training loss")
        if h["val_loss"].notna().any():
            ax.plot(h["round"], h["val_loss"], marker="s", ms=3, label="validation loss")
        ax.set_xlabel("round")
        ax.set_ylabel("cross-entropy")
        if h["val_auc"].notna().any():
            ax2 = ax.twinx()
            ax2.plot(h["round"], h["val_auc"], color="grey", linestyle="--",
                     label="validation AUC")
            ax2.set_ylabel("AUC")
            ax2.legend(loc="center right")
        ax.legend(loc="upper right")
        ax.set_title(self._title())
        return ax

    def to_dict(self) -> dict[str, Any]:
        """JSON-able description: architecture, features, weights, history, provenance."""
        return {"architecture": self.architecture, "encoder": self.encoder.to_dict(),
                "schema": self.schema, "weights": self.weights.tolist(),
                "parameters": [[n, list(s)] for n, s in self.model.shapes(self.encoder.width)],
                "history": json.loads(self.history.to_json(orient="records")),
                "strategy": self.strategy, "protocol": self.protocol, "dp": self.dp,
                "n": self.n, "training": self.training}

    def to_json(self) -> str:
        """:meth:`to_dict` as JSON text."""
        return json.dumps(self.to_dict(), sort_keys=True)

    def _privacy(self) -> str:
        if self.dp is None:
            return "no DP (no ε spent)"
        return f"DP-FedAvg ε={self.dp['epsilon']} δ={self.dp['delta']}"

    def _title(self) -> str:
        return f"{self.strategy['name']} via {self.protocol}, {self._privacy()}"

    def __repr__(self) -> str:
        h = self.history
        tail = ""
        loss = h["train_loss"].dropna()
        if len(loss) and int(h["round"].iloc[loss.index[-1]]) == int(h["round"].iloc[-1]):
            tail += f"; final training loss {loss.iloc[-1]:.4g}"
        auc = h["val_auc"].iloc[-1] if len(h) else math.nan
        if not math.isnan(auc):
            tail += f"; validation AUC {auc:.3f}"
        rounds = self.training.get("rounds", int(h["round"].iloc[-1]) if len(h) else 0)
        return (f"<TrainedModel {self.architecture['type']}, {self.weights.size} parameters: "
                f"{rounds} round(s) of {self.strategy['name']} via {self.protocol}, "
                f"{self._privacy()}{tail}>")


__all__ = ["TrainedModel"]
