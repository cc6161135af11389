"""Federated learning as a safeflow analysis: one secure sum per training round.

:class:`FLTrain` (registered as ``fl_train``, output kind ``model``) runs through
:meth:`safeflow.Federation.run` unchanged, under any protocol:

1. **Round request** (public): the global weights ``w`` and the round number; the
   parameters (model, features, strategy, learning rate, ...) travel with every request.
   Customs keeps the optimiser moments and the history; they never go to the sites.
2. **At each site** (:meth:`FLTrain.local`): ``local_epochs`` epochs of mini-batch SGD on
   its own rows (loss plus ``weight_decay/2 · ||weights||²``, biases not penalised),
   streamed from its data source in chunks of at most ``CHUNK_ROWS`` rows,
   each chunk shuffled with a generator seeded by ``(seed, round, site, epoch)`` (public,
   so runs are reproducible and ``plain``/``masking``/``he`` give the same model). FedProx
   adds ``μ (w_local - w)`` to every mini-batch gradient. The update
   ``Δ = w_local - w`` is clipped to L2 norm ``clip``. In the first epoch the site also
   evaluates the global model ``w`` on its rows (loss and correct predictions).
3. **Statistics** (a :class:`~safeflow.statspec.StatLayout`, every bound public):

   ================  ===========================================  =======================
   statistic         without DP (weighted FedAvg)                 DP-FedAvg
   ================  ===========================================  =======================
   ``update``        ``n_i · Δ_i``, real, bound                   ``Δ_i`` clipped, real,
                     ``max_rows_per_site · clip``, *extended*     bound ``clip``, *double*
                     precision                                    precision
   ``n``             rows trained on (count)                      not sent
   ``loss``          Σ row loss of ``w`` (each capped at 30)      not sent
   ``correct``       rows ``w`` classifies right (count)          not sent
   ``clipped``       1 if the site's update was clipped           not sent
   ``dropped``       rows the schema's policies dropped           not sent
   ``sites``         not sent                                     1 (a public constant)
   ================  ===========================================  =======================

   Precision: ``n_i Δ_i`` is far below its public bound when ``max_rows_per_site`` is
   loose (the default is ``2^32``), so it travels in *extended* fixed point (quantum
   ``bound · 2^-94``: ``clip · 2^-62`` at the default, i.e. exact to float64 for any real
   update); the clipped ``Δ_i`` of DP-FedAvg is of the order of its bound, so *double*
   (quantum ``clip · 2^-52``, one ring element) is exact enough, far below the DP noise.
   The encoding is the same under ``plain``, ``masking`` and BFV, so their totals, and
   hence the trained models, are bit-identical.
4. **At customs** (:meth:`FLTrain.combine`): ``Δ = Σ n_i Δ_i / Σ n_i`` (FedAvg), or under
   DP ``Δ = (Σ Δ_i + N(0, σ² I)) / K`` with OpenDP's Gaussian noise
   (:mod:`safeflow.fl.accounting`); then the strategy's server update
   (:mod:`safeflow.fl.strategies`) gives the next global model. After the last training
   round a model trained without DP takes one more round in which the sites only evaluate
   it (so the history ends with the final model's training loss); under DP there is no
   such round (the loss is not released).

History: row ``r`` describes the global model after ``r`` rounds (row 0: the initial
model): its training loss and accuracy on the sites' rows (measured in round ``r + 1``;
not under DP), the norm of the averaged update that produced it, how many sites clipped,
and, when the analyst gave validation data to :func:`safeflow.fl.train`, its validation
loss, accuracy and AUC (computed by customs on the analyst's own data).

Examples
--------
>>> FLTrain.name, FLTrain.kind
('fl_train', 'model')
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
from scipy import stats as sps

from safeflow.analyses._base import Analysis, Done, Next, count_spec, register, site_slot
from safeflow.data import Schema, SiteData
from safeflow.dp.spec import DP, fraction_str
from safeflow.errors import ConvergenceError, DataError, ProtocolError
from safeflow.fl.accounting import CLIP_MARGIN, accuracy, add_noise, l2_sensitivity, noise_scale
from safeflow.fl.features import FeatureEncoder
from safeflow.fl.models import Model, model_from_spec
from safeflow.fl.strategies import strategy_from
from safeflow.statspec import StatLayout, StatSpec

#: per-row cap of the reported training loss (nats), so the loss sum has a public bound
LOSS_CAP = 30.0
#: rows read (and shuffled) at a time at a site
CHUNK_ROWS = 8192
#: statistics a DP-FedAvg round does not release
DP_WITHHELD = ("n", "loss", "correct", "clipped", "dropped")


def evaluate(model: Model, w: np.ndarray, X: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Mean loss, accuracy and ROC AUC of weights ``w`` on encoded rows (analyst side).

    Examples
    --------
    >>> import numpy as np
    >>> from safeflow.fl.models import LogisticRegression
    >>> X, y = np.array([[-1.0], [1.0]]), np.array([0.0, 1.0])
    >>> evaluate(LogisticRegression(), np.array([5.0, 0.0]), X, y)["auc"]
    1.0
    """
    z = model.logits(w, X)
    loss = float(np.mean(np.minimum(np.logaddexp(0.0, z) - y * z, LOSS_CAP)))
    acc = float(np.mean((z > 0) == (y == 1)))
    pos = int(y.sum())
    neg = len(y) - pos
    auc = math.nan
    if pos and neg:
        ranks = sps.rankdata(z)
        auc = float((ranks[y == 1].sum() - pos * (pos + 1) / 2) / (pos * neg))
    return {"loss": loss, "accuracy": acc, "auc": auc}


def _row(r: int) -> dict[str, Any]:
    return {"round": r, "train_loss": None, "train_accuracy": None, "n": None,
            "update_norm": None, "sites_clipped": None, "val_loss": None,
            "val_accuracy": None, "val_auc": None}


@register
class FLTrain(Analysis):
    """Federated training of a numpy model (see the module docstring).

    The coordinator's instance may carry ``validation`` (encoded inputs and labels of the
    analyst's own data), which never travels: round requests hold only the parameters, the
    round, the phase and the global weights.
    """

    name = "fl_train"
    kind = "model"
    validation: tuple[np.ndarray, np.ndarray] | None = None
    #: DP-FedAvg rounds customs has noised in this run (coordinator side)
    noised_rounds: int = 0

    # ---- public description ---------------------------------------------------------------
    def columns(self) -> list[str]:
        return [*self.params["features"], self.params["target"]]

    def encoder(self, schema: Schema) -> FeatureEncoder:
        """The feature encoder, from the public schema."""
        return FeatureEncoder.from_schema(schema, list(self.params["features"]),
                                          self.params["target"])

    def model(self) -> Model:
        """The model object of the parameters."""
        return model_from_spec(self.params["model"], self.params["features"])

    @property
    def dp(self) -> DP | None:
        """The run's DP budget (DP-FedAvg), or None."""
        d = self.params.get("dp_fedavg")
        if d is None:
            return None
        return DP(d["epsilon"], d["delta"], unit=d["unit"], alpha=d.get("alpha", 0.05))

    def request(self) -> dict[str, Any]:
        """Parameters and the public part of the state (never the optimiser or history)."""
        st = {k: self.state[k] for k in ("round", "phase", "weights") if k in self.state}
        return {"analysis": self.name, "params": self.params, "state": st}

    def initial_state(self, schema: Schema) -> dict[str, Any]:
        """Round 1 with the model's deterministic initial weights."""
        if self.dp is not None and self.params.get("budget") is None:
            raise ProtocolError(
                "DP-FedAvg must be started with sf.fl.train, which debits every site's "
                "privacy budget before training; nothing was computed")
        w = self.model().init(self.encoder(schema).width, int(self.params["seed"]))
        first = _row(0)
        first.update(self._validate(w))
        return {"round": 1, "phase": "train", "weights": w.tolist(), "opt": {},
                "history": [first]}

    def layout(self, schema: Schema, ctx: Mapping[str, Any]) -> StatLayout:
        p = self.model().size(self.encoder(schema).width)
        rows = float(ctx["max_rows_per_site"])
        clip = float(self.params["clip"])
        if self.state.get("phase") == "train" and self.dp is not None:
            return StatLayout((StatSpec("sites", (1,), "count", bound=1.0),
                               StatSpec("update", (p,), "real", clip, precision="double")))
        specs = [count_spec("n", (1,), ctx), count_spec("dropped", (1,), ctx),
                 StatSpec("loss", (1,), "real", rows * LOSS_CAP),
                 count_spec("correct", (1,), ctx)]
        if self.state.get("phase") == "train":
            specs += [StatSpec("clipped", (1,), "count", bound=1.0),
                      StatSpec("update", (p,), "real", rows * clip)]
        return StatLayout(tuple(specs))

    # ---- at a site --------------------------------------------------------------------------
    def local(self, data: SiteData, ctx: Mapping[str, Any]) -> dict[str, np.ndarray]:
        schema = ctx["public_schema"]
        enc, model = self.encoder(schema), self.model()
        w0 = np.asarray(self.state["weights"], dtype=np.float64)
        if w0.shape != (model.size(enc.width),):
            raise ProtocolError("the round's weights do not fit the model; the request is "
                                "malformed")
        evaluate_only = self.state["phase"] == "evaluate"
        dp = self.dp is not None
        p = self.params
        lr, bsz, mu = float(p["lr"]), int(p["batch_size"]), strategy_from(p["strategy"]).proximal_mu
        decay = float(p.get("weight_decay", 0.0)) * model.decay_mask(enc.width)
        n, loss, correct = 0, 0.0, 0
        w = w0.copy()
        epochs = 1 if evaluate_only else int(p["local_epochs"])
        for epoch in range(epochs):
            rng = np.random.default_rng([int(p["seed"]), int(self.state["round"]),
                                         site_slot(ctx), epoch])
            for batch in data.batches(enc.columns, batch_size=max(CHUNK_ROWS, bsz)):
                X, y = enc.encode(batch), enc.labels(batch)
                if epoch == 0 and not dp:
                    z = model.logits(w0, X)
                    n += len(y)
                    loss += float(np.sum(np.minimum(np.logaddexp(0.0, z) - y * z, LOSS_CAP)))
                    correct += int(np.sum((z > 0) == (y == 1)))
                if evaluate_only:
                    continue
                order = rng.permutation(len(y))
                for start in range(0, len(y), bsz):
                    idx = order[start:start + bsz]
                    _, g = model.loss_grad(w, X[idx], y[idx])
                    g /= len(idx)
                    g += decay * w
                    if mu:
                        g += mu * (w - w0)
                    w -= lr * g
        if not np.all(np.isfinite(w)):
            raise ConvergenceError("local training diverged (weights not finite); lower lr")
        out: dict[str, np.ndarray] = {}
        if not dp:
            out = {"n": np.array([n]), "dropped": np.array([sum(data.drop_counts.values())]),
                   "loss": np.array([loss]), "correct": np.array([correct])}
        if evaluate_only:
            return out
        delta = w - w0
        limit = float(p["clip"]) * (CLIP_MARGIN if dp else 1.0)
        norm = float(np.linalg.norm(delta))
        clipped = norm > limit
        if clipped:
            delta = delta * (limit / norm)
        if dp:
            return {"sites": np.array([1]), "update": delta}
        return {**out, "clipped": np.array([int(clipped)]), "update": n * delta}

    # ---- at customs -------------------------------------------------------------------------
    def combine(self, totals: Mapping[str, np.ndarray], schema: Schema,
                ctx: Mapping[str, Any]) -> Done | Next:
        st, p = self.state, self.params
        r, rounds = int(st["round"]), int(p["rounds"])
        history = [dict(h) for h in st["history"]]
        w = np.asarray(st["weights"], dtype=np.float64)
        if self.dp is None:
            n = int(totals["n"][0])
            if n == 0:
                raise DataError("no site has rows to train on (after the schema's missing-value "
                                "and bounds policies); check the sites' data")
            history[-1].update(train_loss=float(totals["loss"][0]) / n,
                               train_accuracy=int(totals["correct"][0]) / n, n=n)
        if st["phase"] == "evaluate":
            return self._done(w, history, totals, schema)
        if self.dp is None:
            avg = np.asarray(totals["update"], dtype=np.float64) / int(totals["n"][0])
            clipped: int | None = int(totals["clipped"][0])
        else:
            sites = int(totals["sites"][0])
            if sites == 0:
                raise ProtocolError("no site contributed an update; nothing was released")
            sigma = noise_scale(self.dp, rounds=rounds, clip=float(p["clip"]))
            avg = add_noise(totals["update"], sigma) / sites
            self.noised_rounds += 1
            clipped = None
        new, opt = strategy_from(p["strategy"]).server_update(w, avg, st["opt"], r)
        if not np.all(np.isfinite(new)):
            raise ConvergenceError("the global model diverged (weights not finite); lower lr "
                                   "or the strategy's server learning rate (eta)")
        row = _row(r)
        row.update(update_norm=float(np.linalg.norm(avg)), sites_clipped=clipped,
                   **self._validate(new))
        history.append(row)
        if r < rounds:
            return Next({"round": r + 1, "phase": "train", "weights": new.tolist(),
                         "opt": opt, "history": history})
        if self.dp is None:  # one more round: the sites evaluate the final model
            return Next({"round": r + 1, "phase": "evaluate", "weights": new.tolist(),
                         "opt": opt, "history": history})
        return self._done(new, history, totals, schema)

    def _validate(self, w: np.ndarray) -> dict[str, float]:
        if self.validation is None:
            return {}
        X, y = self.validation
        return {f"val_{k}": v for k, v in evaluate(self.model(), w, X, y).items()}

    def _done(self, w: np.ndarray, history: list[dict[str, Any]],
              totals: Mapping[str, np.ndarray], schema: Schema) -> Done:
        from safeflow.fl.result import TrainedModel

        enc, model, p = self.encoder(schema), self.model(), self.params
        size = model.size(enc.width)
        dp = self.dp
        dp_info = None
        facts: dict[str, Any]
        if dp is None:
            n = int(totals["n"][0])
            facts = {"sdc": {"n": n, "n_params": size, "params_per_n": size / n},
                     "rows_dropped": int(totals["dropped"][0])}
        else:
            n = None
            facts = {"sdc": {"n_params": size}, "dp": self._dp_facts(size),
                     "budget": dict(p["budget"])}
            dp_info = {"epsilon": str(dp.epsilon), "delta": str(dp.delta), "unit": dp.unit,
                       "noise_scale": noise_scale(dp, rounds=int(p["rounds"]),
                                                  clip=float(p["clip"])),
                       "clip": float(p["clip"]), "rounds": int(p["rounds"])}
        value = TrainedModel.build(
            architecture=model.spec(), encoder=enc, schema=schema, weights=w, history=history,
            strategy=strategy_from(p["strategy"]).to_params(), protocol=str(p["protocol"]),
            dp=dp_info, n=n, training={k: p.get(k) for k in ("rounds", "local_epochs", "lr",
                                                             "batch_size", "weight_decay",
                                                             "clip", "seed")})
        return Done(value, facts)

    def _dp_facts(self, size: int) -> dict[str, Any]:
        """``output.dp``: the whole run's (ε, δ), and its one Gaussian mechanism."""
        dp, p = self.dp, self.params
        assert dp is not None
        rounds, clip = int(p["rounds"]), float(p["clip"])
        sigma = noise_scale(dp, rounds=rounds, clip=clip)
        l2 = l2_sensitivity(clip)
        return {"epsilon": fraction_str(dp.epsilon), "delta": fraction_str(dp.delta),
                "unit": dp.unit, "mode": "central", "alpha": dp.alpha,
                "statistics": [{
                    "statistic": f"update (sum of site updates clipped to L2 norm {clip:g}; "
                                 f"L2 sensitivity {l2:g}; one draw per round, {rounds} rounds, "
                                 "zCDP composition)",
                    "kind": "real", "mechanism": "gaussian",
                    "epsilon": fraction_str(dp.epsilon), "delta": fraction_str(dp.delta),
                    "scale": sigma, "std": sigma,
                    "sensitivity_l1": repr(l2 * math.sqrt(size) * (1 + 2.0**-40)),
                    "sensitivity_l2": repr(l2),
                    "accuracy": accuracy(sigma, dp.alpha)}],
                "withheld": list(DP_WITHHELD)}


__all__ = ["CHUNK_ROWS", "DP_WITHHELD", "LOSS_CAP", "FLTrain", "evaluate"]
