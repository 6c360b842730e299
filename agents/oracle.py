"""Oracle: the hindsight best arm of every query. An upper bound, not a router.

It reads the true outcomes of the very queries it is scored on, which no real router can. On
the outcome-table env it is fit on the *evaluation* split (``fit_env(test_env)``: the unwrapped
env's ``scores`` and normalized costs) and recognises each query by its observation (the
embedding row the env returns); on a live env it reads the ``ActionTable`` of the questions.
Per query it plays ``argmax(score − λ·normalized cost)`` (ties to the cheaper arm), so its mean
reward is at least every router's on the same queries.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from agents.base import OneShotRouter
from routing_gym.outcomes import Outcomes
from routing_gym.routers import FIT_ON_EVAL


@dataclass
class OracleConfig:
    """The oracle has no hyperparameters but λ."""

    lam: float | str | None = None  # None = the env's


class OracleRouter(OneShotRouter):
    """Oracle (UPPER BOUND, not a router): the hindsight best model per query from the true scores."""

    name = "oracle"
    Config = OracleConfig
    training = FIT_ON_EVAL  # reads the evaluation split's outcomes

    def _fit(self, data: Outcomes) -> None:
        self._scores, self._costs = data.scores, data.costs
        self._row_of: dict[bytes, int] = {}
        for row, x in enumerate(data.features):
            self._row_of.setdefault(x.tobytes(), row)

    def _rows(self, x: np.ndarray) -> np.ndarray:
        rows = [self._row_of.get(np.ascontiguousarray(v, dtype=np.float32).tobytes()) for v in x]
        if any(r is None for r in rows):
            raise ValueError(
                "OracleRouter: a query is not among the outcomes it was fit on; fit it on the split "
                "(or ActionTable) being evaluated."
            )
        return np.array(rows)

    def _select(self, x: np.ndarray, deterministic: bool = True) -> np.ndarray:
        rows = self._rows(x)
        reward = self._scores[rows] - self.lam * self._costs[rows]
        # ties go to the cheaper arm: subtract a tiny multiple of cost
        return np.argmax(reward - 1e-9 * self._costs[rows], axis=1)

    def _get_state(self) -> dict[str, Any]:
        # the lookup's keys are embedding bytes: saved as one array of rows (plain data)
        keys = list(self._row_of)
        width = len(keys[0]) if keys else 0
        return {
            "scores": self._scores,
            "costs": self._costs,
            "row_keys": np.frombuffer(b"".join(keys), dtype=np.uint8).reshape(len(keys), width),
            "row_values": np.array(list(self._row_of.values()), dtype=np.int64),
        }

    def _set_state(self, state: dict[str, Any]) -> None:
        self._scores, self._costs = state["scores"], state["costs"]
        if "row_of" in state:  # format 1, read with trust_pickle=True
            self._row_of = state["row_of"]
            return
        self._row_of = {
            bytes(key): int(row) for key, row in zip(state["row_keys"], state["row_values"])
        }
