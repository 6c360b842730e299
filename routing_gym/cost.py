"""Token cost, its frozen min-max normalization, and the performance–cost reward.

Episode cost is the sum over calls of tokens × price. To make λ comparable across
pools and data sets, costs are min-max normalized with bounds fitted once on a
training split and then frozen, so evaluation never sees its own statistics.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping

import numpy as np

#: Named λ presets, in the order the HAPS paper reports them.
REGIMES: dict[str, float] = {
    "performance-first": 0.1,
    "balanced": 0.5,
    "cost-first": 1.0,
}


#: The most tokens one call may count (prompt or completion). The longest context windows hold a
#: few million; a larger count is a broken input and would swamp every normalized cost.
MAX_CALL_TOKENS = 10_000_000


def resolve_lambda(value: float | str) -> float:
    """Turn a regime name or a number into λ, rejecting anything else."""
    if isinstance(value, str):
        key = value.strip().lower().replace("_", "-")
        if key not in REGIMES:
            raise ValueError(f"Unknown cost regime {value!r}; choose one of {sorted(REGIMES)} or a number.")
        return REGIMES[key]
    if isinstance(value, (bool, np.bool_)):  # True is the int 1 to Python, never a λ
        raise ValueError(f"λ must be a number or a regime name, got the boolean {value!r}.")
    try:
        lam = float(value)
    except (TypeError, ValueError):
        raise ValueError(
            f"λ must be a number or one of {sorted(REGIMES)}, got {value!r}."
        ) from None
    if not np.isfinite(lam) or lam < 0:
        raise ValueError(f"λ must be a finite number >= 0, got {value!r}.")
    return lam


@dataclass(frozen=True)
class Price:
    """USD per one million input (prompt) and output (completion) tokens."""

    input_per_m: float = 0.0
    output_per_m: float = 0.0

    def __post_init__(self):
        for name in ("input_per_m", "output_per_m"):
            value = getattr(self, name)
            if not np.isfinite(value) or value < 0:
                raise ValueError(f"Price.{name} must be a finite number >= 0, got {value!r}.")

    def cost(self, prompt_tokens: int | np.ndarray, completion_tokens: int | np.ndarray):
        """USD cost of one call (or an array of calls)."""
        return (prompt_tokens * self.input_per_m + completion_tokens * self.output_per_m) / 1e6


@dataclass(frozen=True)
class CostNormalizer:
    """Min-max scaling of costs into [0, 1], with bounds frozen at fit time."""

    low: float
    high: float

    @classmethod
    def fit(cls, costs: Iterable[float]) -> "CostNormalizer":
        """Fit the bounds on training-split costs."""
        values = np.asarray(list(costs), dtype=np.float64)
        if values.size == 0 or not np.all(np.isfinite(values)):
            raise ValueError("CostNormalizer.fit needs at least one finite cost.")
        return cls(float(values.min()), float(values.max()))

    def __call__(self, cost):
        """Normalize; costs outside the fitted range are clipped to [0, 1]."""
        span = self.high - self.low
        if span <= 0:
            return np.zeros_like(np.asarray(cost, dtype=np.float64)) if np.ndim(cost) else 0.0
        scaled = np.clip((np.asarray(cost, dtype=np.float64) - self.low) / span, 0.0, 1.0)
        return scaled if np.ndim(cost) else float(scaled)

    def to_dict(self) -> dict[str, float]:
        return {"low": self.low, "high": self.high}

    @classmethod
    def from_dict(cls, data: Mapping[str, float]) -> "CostNormalizer":
        return cls(float(data["low"]), float(data["high"]))


def routing_reward(performance: float, normalized_cost: float, lam: float) -> float:
    """Reward = Perf − λ · normalized cost, the one place the scalar is formed."""
    return float(performance) - float(lam) * float(normalized_cost)
