"""Score any agent on any routing env the same way: Perf, normalized Cost, Reward, call shares.

``evaluate_agent`` (from ``routing_gym.evaluation``, re-exported here) runs
``stable_baselines3.common.evaluation.evaluate_policy`` (so anything with SB3's ``predict``
works, a plain PPO included) and reads each episode's final ``info``
for perf, normalized cost, USD cost and the models called. By default it plays every
question of the env's split exactly once, in a fixed seeded order.

``evaluate_on_data`` scores a one-shot router offline on outcome arrays (e.g. a held-out part
of an ``ActionTable``), with the same metrics and no env steps.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from agents.base import arm_columns
from routing_gym.evaluation import (
    METRICS,
    evaluate_agent,
    markdown_table,
    models_called,
    questions_in,
    summarize,
)
from routing_gym.outcomes import Outcomes

__all__ = [
    "METRICS",
    "evaluate_agent",
    "evaluate_on_data",
    "markdown_table",
    "models_called",
    "questions_in",
    "summarize",
]


def evaluate_on_data(agent: Any, data: Outcomes, lam: float | None = None) -> dict[str, Any]:
    """Offline scores of a one-shot router on outcome arrays: each row's chosen arm, looked up."""
    if lam is not None:
        agent.lam = lam
    # the agent's arms are matched to the data's columns by model names, not by position
    columns = arm_columns(type(agent).__name__, agent.models, agent.arms, data)
    arms = columns[agent.select_arms(data.features)]
    rows = np.arange(len(data))
    perf, cost = data.picked(arms)
    return summarize(
        perf=perf,
        cost=cost,
        usd=[np.nan] * len(rows),
        reward=perf - agent.lam * cost,
        calls=[[data.models[m] for m in data.arms[a]] for a in arms],
        lengths=[len(data.arms[0])] * len(rows),
    )
