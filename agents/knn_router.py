"""kNN router (RouterBench): predict each model's score and cost from the nearest training queries.

Reference: Hu et al., "RouterBench: A Benchmark for Multi-LLM Routing System", 2024
(arXiv:2403.12031), §4 "predictive routers". For a query, the ``k`` most similar training queries
(cosine similarity of their embeddings) vote: the predicted score (and normalized cost) of each
model is their mean. The router then plays ``argmax_m predicted_score_m − λ·predicted_cost_m``.
The search is an exact inner-product index of faiss over unit vectors (cosine similarity);
faiss answers one query in microseconds, where a scikit-learn regressor spends milliseconds
on input checks per call, which dominates when an env asks one query at a time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import faiss

from agents.base import OneShotRouter
from routing_gym.outcomes import Outcomes


@dataclass
class KNNRouterConfig:
    """Hyperparameters of the kNN router."""

    k: int = 40  # neighbours that vote (chosen on the valid split; RouterBench sweeps k)
    weights: str = "uniform"  # "uniform" or "distance"
    lam: float | str | None = None  # λ of score − λ·cost; None = the env's


class KNNRouter(OneShotRouter):
    """kNN (RouterBench): mean score/cost of the k nearest training queries; argmax score − λ·cost."""

    name = "knn"
    Config = KNNRouterConfig

    def _check_config(self) -> None:
        super()._check_config()
        if self.config.k < 1:
            raise ValueError(f"KNNRouterConfig key 'k' must be >= 1, got {self.config.k!r}.")
        if self.config.weights not in ("uniform", "distance"):
            raise ValueError(
                f"KNNRouterConfig key 'weights' must be 'uniform' or 'distance', got {self.config.weights!r}."
            )

    def _fit(self, data: Outcomes) -> None:
        self._build(data.features, np.hstack([data.scores, data.costs]))

    def _build(self, embeddings: np.ndarray, targets: np.ndarray) -> None:
        self.embeddings, self.targets = embeddings, targets
        self.index = faiss.IndexFlatIP(embeddings.shape[1])
        self.index.add(_unit(embeddings))

    def _estimate(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        k = min(self.config.k, len(self.targets))
        similarity, neighbours = self.index.search(_unit(x), k)
        if (
            self.config.weights == "distance"
        ):  # inverse cosine distance, as scikit-learn's "distance"
            weights = 1.0 / np.maximum(1.0 - similarity, 1e-6)
        else:
            weights = np.ones_like(similarity)
        weights /= weights.sum(axis=1, keepdims=True)
        out = np.einsum("bk,bkt->bt", weights, self.targets[neighbours])
        m = len(self.arms)
        return out[:, :m], out[:, m:]

    def _get_state(self) -> dict[str, Any]:
        return {"embeddings": self.embeddings, "targets": self.targets}

    def _set_state(self, state: dict[str, Any]) -> None:
        self._build(state["embeddings"], state["targets"])


def _unit(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length, float32 and contiguous (what faiss takes)."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
