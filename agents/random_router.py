"""Random router: a uniformly random model (or assignment) per query.

The floor every router must beat. One arm is drawn per episode, so on a live per-turn env the
episode follows one random assignment (the same decision space as the other one-shot routers).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from agents.base import OneShotRouter
from routing_gym.outcomes import Outcomes


@dataclass
class RandomRouterConfig:
    """Hyperparameters of the random router."""

    seed: int = 0
    lam: float | str | None = None  # unused: a random choice ignores the trade-off


class RandomRouter(OneShotRouter):
    """Random: a uniformly random model (assignment) per query; the floor to beat."""

    name = "random"
    Config = RandomRouterConfig
    needs_data = False

    def _fit(self, data: Outcomes | None) -> None:
        self.rng = np.random.default_rng(self.config.seed)

    def reseed(self, seed: int) -> None:
        """Draw from a fresh generator seeded with ``seed`` from now on."""
        self.rng = np.random.default_rng(seed)

    def _select(self, x: np.ndarray, deterministic: bool = True) -> np.ndarray:
        return self.rng.integers(len(self.arms), size=len(x))

    def _get_state(self) -> dict[str, Any]:
        return {"rng": self.rng.bit_generator.state}

    def _set_state(self, state: dict[str, Any]) -> None:
        self.rng = np.random.default_rng(self.config.seed)
        if "rng" in state:
            self.rng.bit_generator.state = state["rng"]
