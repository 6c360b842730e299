"""MLP router (RouterBench): a small network predicts each model's score and cost from the embedding.

Reference: Hu et al., "RouterBench: A Benchmark for Multi-LLM Routing System", 2024
(arXiv:2403.12031), §4 "predictive routers". A multi-output MLP regressor maps the query
embedding to every model's score and normalized cost (one joint network, squared error,
early stopping on a held-out tenth); the router plays ``argmax_m score_m − λ·cost_m``.
scikit-learn's ``MLPRegressor`` does the training.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from agents.base import OneShotRouter
from routing_gym.outcomes import Outcomes


@dataclass
class MLPRouterConfig:
    """Hyperparameters of the MLP router."""

    hidden: tuple[int, ...] = (128,)
    alpha: float = 1e-3  # L2 penalty
    learning_rate: float = 3e-3
    batch_size: int = 512
    max_iter: int = 100
    early_stopping: bool = True  # stop when the held-out tenth stops improving
    seed: int = 0
    lam: float | str | None = None  # λ of score − λ·cost; None = the env's


class MLPRouter(OneShotRouter):
    """MLP (RouterBench): regress every model's score and cost from the embedding; argmax score − λ·cost."""

    name = "mlp"
    Config = MLPRouterConfig

    def _fit(self, data: Outcomes) -> None:
        # imported here: scikit-learn takes seconds to import, and `import agents` should not
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.neural_network import MLPRegressor

        cfg = self.config
        early_stopping = cfg.early_stopping and len(data) >= 20
        fitted_rows = len(data) - (int(np.ceil(0.1 * len(data))) if early_stopping else 0)
        self.regressor = MLPRegressor(
            hidden_layer_sizes=tuple(cfg.hidden),
            alpha=cfg.alpha,
            learning_rate_init=cfg.learning_rate,
            batch_size=min(cfg.batch_size, fitted_rows),
            max_iter=cfg.max_iter,
            early_stopping=early_stopping,
            validation_fraction=0.1,
            random_state=cfg.seed,
        )
        with warnings.catch_warnings():  # max_iter is a budget here, not a convergence promise
            warnings.simplefilter("ignore", ConvergenceWarning)
            self.regressor.fit(data.features, np.hstack([data.scores, data.costs]))

    def _estimate(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        out = self.regressor.predict(x).reshape(len(x), -1)
        k = len(self.arms)
        return out[:, :k], out[:, k:]

    def _get_state(self) -> dict[str, Any]:
        # the fitted network as arrays: a pickled estimator could not be read without trust
        net = self.regressor
        return {
            "coefs": list(net.coefs_),
            "intercepts": list(net.intercepts_),
            "activation": net.activation,
            "out_activation": net.out_activation_,
            "n_iter": int(net.n_iter_),
        }

    def _set_state(self, state: dict[str, Any]) -> None:
        if "regressor" in state:  # format 1, read with trust_pickle=True
            self.regressor = state["regressor"]
            return
        from sklearn.neural_network import MLPRegressor

        cfg = self.config
        net = MLPRegressor(
            hidden_layer_sizes=tuple(cfg.hidden),
            activation=state["activation"],
            random_state=cfg.seed,
        )
        # the attributes scikit-learn's predict reads (its fitted state)
        net.coefs_ = [np.asarray(c) for c in state["coefs"]]
        net.intercepts_ = [np.asarray(b) for b in state["intercepts"]]
        net.n_features_in_ = net.coefs_[0].shape[0]
        net.n_outputs_ = net.coefs_[-1].shape[1]
        net.n_layers_ = len(net.coefs_) + 1
        net.out_activation_ = state["out_activation"]
        net.n_iter_ = state["n_iter"]
        self.regressor = net
