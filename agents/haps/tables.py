"""HAPS's shaped reward, and the warm-up's data: an exhaustive table as rewards per assignment."""

from __future__ import annotations

from typing import Any, Sequence

import gymnasium as gym
import numpy as np

from agents.base import all_assignments
from agents.haps.config import TIES
from routing_gym.cost import routing_reward


def haps_reward(perf: float, normalized_cost: float, lam: float, shaping: str = "haps") -> float:
    """HAPS's reward: (F1 if F1 > 0 else −1) − λ·normalized cost; "none" keeps the raw F1."""
    gain = perf if shaping == "none" or perf > 0 else -1.0
    return routing_reward(gain, normalized_cost, lam)


def warmup_targets(rewards: np.ndarray, costs: np.ndarray | None = None, ties: str = "cheapest") -> np.ndarray:
    """``(n, K)`` targets: the best assignment of each row, ties broken per ``ties``."""
    if ties not in TIES:
        raise ValueError(f"ties must be one of {TIES}, got {ties!r}.")
    rewards = np.asarray(rewards, dtype=np.float64)
    best = np.isclose(rewards, rewards.max(axis=1, keepdims=True), rtol=0.0, atol=1e-9)
    targets = np.zeros_like(rewards)
    for i, tied in enumerate(best):
        candidates = np.flatnonzero(tied)
        if ties == "soft":
            targets[i, candidates] = 1.0 / len(candidates)
        elif ties == "cheapest" and costs is not None:
            # the first of the cheapest: stable when costs tie too
            targets[i, candidates[np.argmin(np.asarray(costs)[i, candidates])]] = 1.0
        else:
            targets[i, candidates[0]] = 1.0
    return targets


def table_arrays(
    table: Any,
    env: gym.Env,
    lam: float,
    shaping: str = "haps",
    models: Sequence[str] | None = None,
) -> tuple[list[Any], np.ndarray, np.ndarray]:
    """Examples, shaped rewards ``(n, M^roles)`` and normalized costs of an ``ActionTable``'s questions.

    Columns follow ``all_assignments(M, roles)`` over ``models`` (default: the env's, in its
    order) and the env's roles; costs are normalized with the env's frozen normalizer, so the
    rewards are the env's (before shaping).
    """
    base = env.unwrapped
    names = list(models) if models is not None else list(base.model_names)
    table.check_built_for(base, names)
    outcomes = table.outcomes(names, base.cost_normalizer, arms=all_assignments(len(names), len(base.roles)))
    examples = {str(e.id): e for e in base.examples}
    missing = [q for q in outcomes.question_ids if q not in examples]
    if missing:
        raise ValueError(
            f"ActionTable question {missing[0]!r} is not in the env's split; build the env on the table's split."
        )
    shaped = np.vectorize(lambda p, c: haps_reward(p, c, lam, shaping), otypes=[np.float64])
    rewards = shaped(outcomes.perf, outcomes.cost)
    return [examples[q] for q in outcomes.question_ids], rewards, outcomes.cost
