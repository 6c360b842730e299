"""Calibrated logistic router: per-model success probabilities, isotonic-calibrated, and costs.

For each model a logistic regression predicts P(success) from the router's inputs (the query
embedding, and the env's task and length features when it observes them). Scores in [0, 1]
are soft labels: each row enters twice, as a 1 with weight ``s`` and a 0 with weight ``1 − s``,
which is exactly binary cross-entropy against ``s``. With ``isotonic=True`` the probabilities
are then calibrated: the logistic models of ``folds`` folds of the training rows predict the
held-out rows, and an isotonic regression maps those out-of-fold predictions to the observed
scores (so the map is fit on predictions the model did not train on). A ridge regressor per
model predicts the normalized cost. The router plays ``argmax_m p_m − λ·ĉ_m``.

Why calibrate: ``argmax p − λ·ĉ`` compares a probability with a cost, so a model whose
probabilities are over- or under-confident is picked too often or too rarely at every λ > 0;
isotonic calibration makes ``p`` a frequency without changing the ranking within a model.
scikit-learn fits all three parts; the fitted parts are kept as plain arrays (coefficients,
the isotonic breakpoints) so a checkpoint loads without unpickling.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from agents.base import OneShotRouter
from routing_gym.outcomes import Outcomes


@dataclass
class CalibratedRouterConfig:
    """Hyperparameters of the calibrated logistic router."""

    c: float = 1.0  # inverse L2 strength of each logistic regression
    isotonic: bool = True  # calibrate the probabilities on out-of-fold predictions
    folds: int = 3  # folds of the out-of-fold predictions
    cost_alpha: float = 1.0  # L2 strength of the ridge cost regressor
    seed: int = 0
    lam: float | str | None = None  # λ of p − λ·cost; None = the env's


class CalibratedRouter(OneShotRouter):
    """Calibrated LR: per-model logistic P(success), isotonic-calibrated; ridge costs; p − λ·ĉ."""

    name = "calibrated-lr"
    Config = CalibratedRouterConfig

    def _check_config(self) -> None:
        super()._check_config()
        if not self.config.c > 0:
            raise ValueError(f"CalibratedRouterConfig key 'c' must be > 0, got {self.config.c!r}.")
        folds = self.config.folds
        if isinstance(folds, bool) or not isinstance(folds, int) or folds < 2:
            raise ValueError(
                f"CalibratedRouterConfig key 'folds' must be an int >= 2, got {folds!r}."
            )

    def _logistic(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float]:
        """(coefficients, intercept) of a logistic regression on soft labels ``y``."""
        from sklearn.linear_model import LogisticRegression

        y = np.clip(y, 0.0, 1.0)
        if np.all(y == y[0]) and y[0] in (0.0, 1.0):  # one class only: a constant probability
            return np.zeros(x.shape[1]), 20.0 if y[0] == 1.0 else -20.0
        xx = np.vstack([x, x])
        labels = np.concatenate([np.ones(len(y)), np.zeros(len(y))])
        weights = np.concatenate([y, 1.0 - y])
        keep = weights > 0
        model = LogisticRegression(C=self.config.c, max_iter=2000, random_state=self.config.seed)
        model.fit(xx[keep], labels[keep], sample_weight=weights[keep])
        return model.coef_[0].astype(np.float64), float(model.intercept_[0])

    def _fit(self, data: Outcomes) -> None:
        from sklearn.isotonic import IsotonicRegression
        from sklearn.linear_model import Ridge
        from sklearn.model_selection import KFold

        x = data.features.astype(np.float64)
        k = data.scores.shape[1]
        self.coefs = np.zeros((k, x.shape[1]))
        self.intercepts = np.zeros(k)
        self.calibration: list[tuple[np.ndarray, np.ndarray]] = []
        folds = min(self.config.folds, len(x))
        for j in range(k):
            y = data.scores[:, j]
            self.coefs[j], self.intercepts[j] = self._logistic(x, y)
            if not self.config.isotonic:
                continue
            held_out = np.zeros(len(y))
            if folds >= 2:
                split = KFold(folds, shuffle=True, random_state=self.config.seed).split(x)
                for fit_rows, rows in split:
                    w, b = self._logistic(x[fit_rows], y[fit_rows])
                    held_out[rows] = _sigmoid(x[rows] @ w + b)
            else:
                held_out = _sigmoid(x @ self.coefs[j] + self.intercepts[j])
            iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(held_out, y)
            breakpoints = np.asarray(iso.X_thresholds_, np.float64)
            self.calibration.append((breakpoints, np.asarray(iso.y_thresholds_, np.float64)))
        ridge = Ridge(alpha=self.config.cost_alpha).fit(x, data.costs)
        self.cost_coefs = np.asarray(ridge.coef_, np.float64).reshape(k, -1)
        self.cost_intercepts = np.asarray(ridge.intercept_, np.float64).reshape(k)

    def _estimate(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x = np.asarray(x, np.float64)
        p = _sigmoid(x @ self.coefs.T + self.intercepts)
        if self.calibration:
            # np.interp clips at the ends: IsotonicRegression's predict with out_of_bounds="clip"
            p = np.column_stack(
                [np.interp(p[:, j], xs, ys) for j, (xs, ys) in enumerate(self.calibration)]
            )
        cost = np.clip(x @ self.cost_coefs.T + self.cost_intercepts, 0.0, 1.0)
        return p, cost

    def _get_state(self) -> dict[str, Any]:
        return {
            "coefs": self.coefs,
            "intercepts": self.intercepts,
            "calibration": [[xs, ys] for xs, ys in self.calibration],
            "cost_coefs": self.cost_coefs,
            "cost_intercepts": self.cost_intercepts,
        }

    def _set_state(self, state: dict[str, Any]) -> None:
        self.coefs = np.asarray(state["coefs"], np.float64)
        self.intercepts = np.asarray(state["intercepts"], np.float64)
        self.calibration = [(np.asarray(xs), np.asarray(ys)) for xs, ys in state["calibration"]]
        self.cost_coefs = np.asarray(state["cost_coefs"], np.float64)
        self.cost_intercepts = np.asarray(state["cost_intercepts"], np.float64)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -50.0, 50.0)))
