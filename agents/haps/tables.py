"""HAPS's shaped reward, and the warm-up's data: an exhaustive table as ``Outcomes``."""

from __future__ import annotations

from typing import Any, Sequence

import gymnasium as gym
import numpy as np

from agents.base import all_assignments
from agents.haps.config import TIES
from routing_gym.cost import routing_reward
from routing_gym.outcomes import Outcomes


def haps_reward(perf: float, normalized_cost: float, lam: float, shaping: str = "haps") -> float:
    """HAPS's reward: (F1 if F1 > 0 else −1) − λ·normalized cost; "none" keeps the raw F1."""
    gain = perf if shaping == "none" or perf > 0 else -1.0
    return routing_reward(gain, normalized_cost, lam)


def warmup_targets(
    rewards: np.ndarray, costs: np.ndarray | None = None, ties: str = "cheapest"
) -> np.ndarray:
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


def table_outcomes(table: Any, env: gym.Env, models: Sequence[str] | None = None) -> Outcomes:
    """An exhaustive ``ActionTable`` of ``env``'s split as ``Outcomes``, in the env's reward scale.

    Columns follow ``all_assignments(M, R)`` over ``models`` (default: the env's, in its order)
    and the env's R roles; costs are normalized with the env's frozen normalizer, so
    ``rewards(λ)`` are the env's rewards (before HAPS's shaping). Raises ValueError for a table
    built for another protocol or roles, or with a question outside the env's split.
    """
    base = env.unwrapped
    names = list(models) if models is not None else list(base.model_names)
    table.check_built_for(base, names)
    if tuple(table.roles) != tuple(base.roles):
        raise ValueError(
            f"ActionTable assigns models to the roles {list(table.roles)}; "
            f"the env's are {list(base.roles)}."
        )
    arms = all_assignments(len(names), len(base.roles))
    outcomes = Outcomes.from_action_table(table, names, base.cost_normalizer, arms=arms)
    examples_of(env, outcomes.query_ids)  # every question must be one of the split's
    return outcomes


def examples_of(env: gym.Env, query_ids: Sequence[str]) -> list[Any]:
    """The examples of ``env``'s split with these ids, in that order (the warm-up's prompts)."""
    examples = {str(e.id): e for e in env.unwrapped.examples}
    missing = [q for q in query_ids if q not in examples]
    if missing:
        raise ValueError(
            f"ActionTable question {missing[0]!r} is not in the env's split; "
            "build the env on the table's split."
        )
    return [examples[q] for q in query_ids]


def shaped_rewards(outcomes: Outcomes, lam: float, shaping: str = "haps") -> np.ndarray:
    """``haps_reward`` of every (question, assignment): the warm-up's targets are its best."""
    shaped = np.vectorize(lambda p, c: haps_reward(p, c, lam, shaping), otypes=[np.float64])
    return shaped(outcomes.scores, outcomes.costs)
