"""RouteLLM's matrix-factorization router, generalized from two models to M.

Reference: Ong et al., "RouteLLM: Learning to Route LLMs with Preference Data", ICLR 2025
(arXiv:2406.18665), the ``mf`` router. A bilinear score ties a learned model embedding to a
projection of the query embedding,

    s(m, q) = w_2ᵀ ( normalize(v_m) ⊙ W_1 e_q ),        P(m beats m' | q) = σ(s(m, q) − s(m', q)),

trained with binary cross-entropy on pairwise "battles" (Gaussian noise of scale ``noise`` is
added to e_q during training, as in RouteLLM). Battles come from the outcome table: on each
query, every pair of models whose scores differ is one battle won by the higher score (pairs
that tie say nothing about who wins and are left out).

Routing with a threshold α, generalizing RouteLLM's "strong if P(strong wins) ≥ α": models
cheaper than the strong one (the best mean train score) are tried from the cheapest up, and the
query goes to the first model m with P(strong beats m | q) < α; if none, to the strong model.
α is ``config.threshold``, or, when that is None, calibrated for λ: the α (among quantiles of
the predicted win probabilities) with the best mean reward ``score − λ·cost`` on a held-out
``calibration_fraction`` of the training queries.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from agents.base import OneShotRouter, mean_arm_costs
from routing_gym.outcomes import Outcomes


@dataclass
class MFRouterConfig:
    """Hyperparameters of the matrix-factorization router (RouteLLM defaults where they exist)."""

    dim: int = 128  # latent dimension (RouteLLM: 128)
    epochs: int = 8
    batch_size: int = 512
    learning_rate: float = 3e-4  # RouteLLM: 3e-4
    weight_decay: float = 1e-5  # RouteLLM: 1e-5
    noise: float = 0.05  # std of the Gaussian noise added to query embeddings while training
    threshold: float | None = None  # α; None = calibrate for λ on held-out training queries
    calibration_fraction: float = 0.2
    strong_model: str | None = None  # None = the arm with the best mean train score
    seed: int = 0
    lam: float | str | None = None  # λ used to calibrate α; None = the env's


class MFModel(nn.Module):
    """RouteLLM's bilinear scorer: ``s(m, q) = w_2ᵀ(normalize(v_m) ⊙ W_1 e_q)``."""

    def __init__(self, embed_dim: int, num_arms: int, dim: int):
        super().__init__()
        self.P = nn.Embedding(num_arms, dim)  # model embeddings v_m
        self.text_proj = nn.Linear(embed_dim, dim, bias=False)  # W_1
        self.classifier = nn.Linear(dim, 1, bias=False)  # w_2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Scores of every arm for each query, ``(b, K)``."""
        models = F.normalize(self.P.weight, p=2, dim=1)  # (K, dim)
        prompts = self.text_proj(x)  # (b, dim)
        return self.classifier(prompts[:, None, :] * models[None, :, :]).squeeze(-1)


def battles(scores: np.ndarray) -> np.ndarray:
    """Every decisive (query, winner, loser) triple of an outcome table."""
    rows, first, second = [], [], []
    k = scores.shape[1]
    for i in range(k):
        for j in range(i + 1, k):
            diff = scores[:, i] - scores[:, j]
            won = np.flatnonzero(diff > 0)
            lost = np.flatnonzero(diff < 0)
            rows += [won, lost]
            first += [np.full(len(won), i), np.full(len(lost), j)]
            second += [np.full(len(won), j), np.full(len(lost), i)]
    return np.stack([np.concatenate(rows), np.concatenate(first), np.concatenate(second)], axis=1)


class MFRouter(OneShotRouter):
    """RouteLLM mf (Ong et al., ICLR 2025): pairwise win-prob router, cheapest model that clears α."""

    name = "routellm-mf"
    Config = MFRouterConfig

    def _check_config(self) -> None:
        super()._check_config()
        cfg = self.config
        if cfg.threshold is not None and not 0 <= cfg.threshold <= 1:
            raise ValueError(
                f"MFRouterConfig key 'threshold' must be None or in [0, 1], got {cfg.threshold!r}."
            )
        if not 0 < cfg.calibration_fraction < 1:
            raise ValueError(
                f"MFRouterConfig key 'calibration_fraction' must be in (0, 1), got {cfg.calibration_fraction!r}."
            )

    def _fit(self, data: Outcomes) -> None:
        cfg = self.config
        rng = np.random.default_rng(cfg.seed)
        n = len(data)
        held_out = (
            rng.random(n) < cfg.calibration_fraction
            if cfg.threshold is None and n >= 10
            else np.zeros(n, bool)
        )
        train = data.subset(np.flatnonzero(~held_out))
        self.arm_costs = mean_arm_costs(data)
        if cfg.strong_model is None:
            self.strong = int(np.argmax(train.scores.mean(axis=0)))
        else:
            if (
                cfg.strong_model not in self.models
                or (self.models.index(cfg.strong_model),) not in self.arms
            ):
                raise ValueError(
                    f"MFRouterConfig key 'strong_model': {cfg.strong_model!r} is not one of {self.models}."
                )
            self.strong = self.arms.index((self.models.index(cfg.strong_model),))
        self._train_net(train)
        self._calibration = data.subset(np.flatnonzero(held_out)) if held_out.any() else None
        self._thresholds: dict[float, float] = {}

    def _train_net(self, data: Outcomes) -> None:
        cfg = self.config
        pairs = torch.from_numpy(battles(data.scores))
        x = torch.tensor(data.features)  # a copy: the env hands out read-only arrays
        with torch.random.fork_rng():
            torch.manual_seed(cfg.seed)
            self.net = MFModel(x.shape[1], len(data.arms), cfg.dim)
            optimizer = torch.optim.Adam(
                self.net.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay
            )
            for _ in range(cfg.epochs):
                for batch in torch.randperm(len(pairs)).split(cfg.batch_size):
                    q, winner, loser = pairs[batch].unbind(1)
                    prompts = x[q] + cfg.noise * torch.randn(len(q), x.shape[1])
                    s = self.net(prompts)
                    margin = s.gather(1, winner[:, None]) - s.gather(1, loser[:, None])
                    loss = F.binary_cross_entropy_with_logits(margin, torch.ones_like(margin))
                    optimizer.zero_grad()
                    loss.backward()
                    optimizer.step()
        self.net.eval()

    @torch.no_grad()
    def win_probabilities(self, x: np.ndarray) -> np.ndarray:
        """P(strong model beats arm k | query) for every arm, ``(b, K)``."""
        s = self.net(torch.as_tensor(x, dtype=torch.float32))
        return torch.sigmoid(s[:, self.strong : self.strong + 1] - s).numpy()

    def _route(self, win: np.ndarray, threshold: float) -> np.ndarray:
        """Cheapest arm (cheaper than the strong one) whose P(strong wins) < α, else the strong arm."""
        cheaper = [
            k
            for k in np.argsort(self.arm_costs, kind="stable")
            if self.arm_costs[k] < self.arm_costs[self.strong]
        ]
        choice = np.full(len(win), self.strong, dtype=np.int64)
        undecided = np.ones(len(win), dtype=bool)
        for k in cheaper:
            take = undecided & (win[:, k] < threshold)
            choice[take] = k
            undecided &= ~take
        return choice

    @property
    def threshold(self) -> float:
        """α in use: the configured one, or the one calibrated for the current λ."""
        if self.config.threshold is not None:
            return float(self.config.threshold)
        lam = self.lam
        if lam not in self._thresholds:
            self._thresholds[lam] = self._calibrate(lam)
        return self._thresholds[lam]

    def _calibrate(self, lam: float) -> float:
        data = self._calibration
        if data is None:
            return 0.5
        win = self.win_probabilities(data.features)
        candidates = np.unique(
            np.concatenate([np.quantile(win, np.linspace(0, 1, 101)), [0.0, 1.0 + 1e-6]])
        )
        rewards = data.rewards(lam)
        rows = np.arange(len(data))
        means = [rewards[rows, self._route(win, a)].mean() for a in candidates]
        return float(candidates[int(np.argmax(means))])

    def _select(self, x: np.ndarray, deterministic: bool = True) -> np.ndarray:
        return self._route(self.win_probabilities(x), self.threshold)

    def threshold_values(self, embeddings: np.ndarray) -> np.ndarray:
        """What α is compared with: P(strong beats arm k | query) of the arms cheaper than the
        strong one, ``(b, k)`` (RouteLLM sweeps its threshold over the quantiles of these)."""
        strong_cost = self.arm_costs[self.strong]
        cheaper = [k for k in range(len(self.arms)) if self.arm_costs[k] < strong_cost]
        win = self.win_probabilities(np.asarray(embeddings, dtype=np.float32))
        return win[:, cheaper].astype(np.float64)

    def select_arms_at(self, embeddings: np.ndarray, threshold: float) -> np.ndarray:
        """Arm per query at threshold α (RouteLLM's knob) instead of the one calibrated for λ."""
        if not self.fitted:
            raise RuntimeError("MFRouter is not fitted: call fit or fit_env first.")
        x = np.asarray(embeddings, dtype=np.float32)
        # float64, like threshold_values: a float32 comparison would round α onto a value
        return self._route(self.win_probabilities(x).astype(np.float64), float(threshold))

    def _get_state(self) -> dict[str, Any]:
        return {
            "net": self.net.state_dict(),
            "embed_dim": self.net.text_proj.in_features,
            "strong": self.strong,
            "arm_costs": self.arm_costs,
            # plain fields, not the Outcomes object: a checkpoint holds no Python objects
            "calibration": None if self._calibration is None else vars(self._calibration),
        }

    def _set_state(self, state: dict[str, Any]) -> None:
        self.net = MFModel(state["embed_dim"], len(self.arms), self.config.dim)
        self.net.load_state_dict(state["net"])
        self.net.eval()
        self.strong, self.arm_costs = state["strong"], state["arm_costs"]
        calibration = state["calibration"]
        if isinstance(calibration, dict):
            calibration = _calibration_outcomes(calibration)
        self._calibration, self._thresholds = calibration, {}


def _calibration_outcomes(fields: dict[str, Any]) -> Outcomes:
    """The held-out calibration rows of a checkpoint as ``Outcomes``."""
    fields = dict(fields)
    if "embeddings" in fields:  # written before Outcomes, with the fields of its former data type
        fields["features"] = fields.pop("embeddings")
        fields["cost_unit"] = "normalized"
        if fields.get("query_ids") is None:
            fields["query_ids"] = [str(i) for i in range(len(fields["scores"]))]
    return Outcomes(**fields)
