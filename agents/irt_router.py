"""IRT-Router: multidimensional item response theory over (query, LLM) outcomes.

Reference: Song et al., "IRT-Router: Effective and Interpretable Multi-LLM Routing via Item
Response Theory", ACL 2025 (arXiv:2506.01048); the MIRT variant. Each LLM has an ability vector
θ_m; each query gets a discrimination vector a_q and a difficulty b_q, produced from its
embedding by small linear layers so that unseen queries get them too:

    P(correct | q, m) = σ(a_qᵀ θ_m − b_q),   a_q = σ(W_a e_q),   b_q = w_bᵀ e_q

(a_q is kept positive, as discrimination is in IRT). Training minimises binary cross-entropy
against the recorded scores (fractional scores are soft labels). Routing uses the paper's
cost-aware score ``P(correct | q, m) − λ · cost_m``, with cost_m the LLM's mean normalized
cost (its price). The paper's query "warm-up" from neighbouring training queries is left out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from agents.base import OneShotRouter, mean_arm_costs
from routing_gym.outcomes import Outcomes


@dataclass
class IRTRouterConfig:
    """Hyperparameters of IRT-Router (MIRT)."""

    dim: int = 16  # latent ability dimensions
    epochs: int = 40
    batch_size: int = 256
    learning_rate: float = 3e-3
    weight_decay: float = 1e-5
    seed: int = 0
    lam: float | str | None = None  # λ of P(correct) − λ·cost; None = the env's


class MIRT(nn.Module):
    """σ(a_qᵀθ_m − b_q) for every query in a batch and every LLM (arm)."""

    def __init__(self, embed_dim: int, num_arms: int, dim: int):
        super().__init__()
        self.theta = nn.Embedding(num_arms, dim)  # ability of each LLM
        self.discrimination = nn.Linear(embed_dim, dim)  # a_q = σ(W_a e_q)
        self.difficulty = nn.Linear(embed_dim, 1)  # b_q

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(b, K)``."""
        a = torch.sigmoid(self.discrimination(x))
        b = self.difficulty(x)
        return a @ self.theta.weight.T - b


class IRTRouter(OneShotRouter):
    """IRT-Router (Song et al., ACL 2025): MIRT P(correct) = σ(a_qᵀθ_m − b_q); argmax P − λ·cost."""

    name = "irt-router"
    Config = IRTRouterConfig

    def _fit(self, data: Outcomes) -> None:
        cfg = self.config
        with torch.random.fork_rng():
            torch.manual_seed(cfg.seed)
            self.net = MIRT(data.features.shape[1], len(data.arms), cfg.dim)
            x = torch.tensor(data.features)  # a copy: the env hands out read-only arrays
            y = torch.from_numpy(data.scores.astype(np.float32))
            optimizer = torch.optim.Adam(
                self.net.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay
            )
            loss_fn = nn.BCEWithLogitsLoss()
            for _ in range(cfg.epochs):
                for batch in torch.randperm(len(x)).split(cfg.batch_size):
                    loss = loss_fn(self.net(x[batch]), y[batch])
                    optimizer.zero_grad()
                    loss.backward()
                    optimizer.step()
        self.net.eval()
        self.arm_costs = mean_arm_costs(data)

    @torch.no_grad()
    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """P(correct) of every arm for each query embedding, ``(b, K)``."""
        return torch.sigmoid(self.net(torch.as_tensor(x, dtype=torch.float32))).numpy()

    def _estimate(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.predict_proba(x), np.broadcast_to(self.arm_costs, (len(x), len(self.arms)))

    def _get_state(self) -> dict[str, Any]:
        return {
            "net": self.net.state_dict(),
            "arm_costs": self.arm_costs,
            "embed_dim": self.net.discrimination.in_features,
        }

    def _set_state(self, state: dict[str, Any]) -> None:
        self.net = MIRT(state["embed_dim"], len(self.arms), self.config.dim)
        self.net.load_state_dict(state["net"])
        self.net.eval()
        self.arm_costs = state["arm_costs"]
