"""Score any agent on any routing env the same way: Perf, normalized Cost, Reward, call shares.

``evaluate_agent`` runs ``stable_baselines3.common.evaluation.evaluate_policy`` (so anything
with SB3's ``predict`` works, a plain PPO included) and reads each episode's final ``info``
for perf, normalized cost, USD cost and the models called. By default it plays every
question of the env's split exactly once, in a fixed seeded order.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv, VecMonitor
from stable_baselines3.common.vec_env.base_vec_env import VecEnvWrapper
from tqdm.auto import tqdm

METRICS = ("perf", "cost", "reward", "usd", "episodes")


def models_called(info: dict[str, Any]) -> list[str]:
    """The models an episode called, from its final ``info`` (any routing env)."""
    if "models" in info:
        return list(info["models"])
    if "called" in info:
        return list(info["called"])
    if info.get("model") not in (None, "STOP"):
        return [info["model"]]
    return []


def questions_in(env: gym.Env | VecEnv) -> int | None:
    """How many questions the env's split holds (None if it does not say)."""
    base = env.get_attr("unwrapped", indices=0)[0] if isinstance(env, VecEnv) else env.unwrapped
    if hasattr(base, "num_queries"):
        return int(base.num_queries)
    if hasattr(base, "examples"):
        return len(base.examples)
    return None


def _is_monitored(env: VecEnv) -> bool:
    while isinstance(env, VecEnvWrapper):
        if isinstance(env, VecMonitor):
            return True
        env = env.venv
    return bool(env.env_is_wrapped(Monitor)[0])


def evaluate_agent(
    agent: Any,
    env: gym.Env | VecEnv,
    n_eval_episodes: int | None = None,
    deterministic: bool = True,
    seed: int | None = 0,
    return_episodes: bool = False,
    progress_bar: bool = False,
) -> dict[str, Any]:
    """Mean Perf, normalized Cost, Reward (= the env's return), USD cost and each model's call share.

    ``return_episodes`` adds ``"per_episode"``: one row per episode (question index and id,
    assignment where the env reports one, perf, cost, reward) to compare with an action table.
    ``progress_bar`` counts finished episodes (live envs take seconds per episode).

    ``n_eval_episodes`` defaults to the number of questions of the env's split, so with one env
    every question is played once (``seed`` rewinds the env to a fresh order; None keeps its
    current position). Agents with ``adapt_to`` are told the env first (action format, λ).
    """
    if hasattr(agent, "adapt_to"):
        agent.adapt_to(env)
    if isinstance(env, VecEnv):
        vec = env if _is_monitored(env) else VecMonitor(env)
    else:
        vec = DummyVecEnv([lambda: Monitor(env)])
    n = n_eval_episodes or questions_in(vec)
    if not n:
        raise ValueError(
            "n_eval_episodes is needed: the env does not say how many questions it has."
        )
    if seed is not None:
        vec.seed(seed)
    finals: list[dict[str, Any]] = []
    returns: list[float] = []
    running = np.zeros(vec.num_envs)
    bar = tqdm(total=n, desc="evaluate", unit="episode", disable=not progress_bar)

    def collect(local: dict[str, Any], _globals: dict[str, Any]) -> None:
        # sums the step rewards itself: Monitor's episode return is rounded to 6 decimals
        i = local["i"]
        running[i] += float(local["reward"])
        if local["done"]:
            finals.append(local["info"])
            returns.append(float(running[i]))
            running[i] = 0.0
            bar.update(1)

    with bar:
        _, lengths = evaluate_policy(
            agent,
            vec,
            n_eval_episodes=n,
            deterministic=deterministic,
            return_episode_rewards=True,
            callback=collect,
        )
    return episode_scores(finals, returns, lengths, return_episodes)


def episode_scores(
    finals: list[Mapping[str, Any]],
    returns: list[float],
    lengths: Iterable[int],
    return_episodes: bool = True,
) -> dict[str, Any]:
    """``evaluate_agent``'s result from each episode's final ``info``, return and length."""
    scores = summarize(
        perf=[f.get("perf", np.nan) for f in finals],
        cost=[f.get("normalized_cost", np.nan) for f in finals],
        usd=[f.get("cost", np.nan) for f in finals],
        reward=returns,
        calls=[models_called(f) for f in finals],
        lengths=lengths,
    )
    if return_episodes:
        scores["per_episode"] = [episode_row(f, r) for f, r in zip(finals, returns)]
    return scores


def episode_row(info: Mapping[str, Any], reward: float) -> dict[str, Any]:
    """One row of ``per_episode``, from an episode's final ``info`` and its return."""
    keys = ("index", "question_id", "assignment", "perf", "normalized_cost", "cost")
    row = {key: info.get(key) for key in keys}
    if row["question_id"] is None:  # the table envs name their rows query_id
        row["question_id"] = info.get("query_id")
    return {**row, "reward": reward}


def summarize(
    perf: Iterable[float],
    cost: Iterable[float],
    usd: Iterable[float],
    reward: Iterable[float],
    calls: Iterable[list[str]],
    lengths: Iterable[int],
) -> dict[str, Any]:
    """The metrics of a set of episodes: means, and each model's share of all calls."""
    calls = list(calls)
    counts: Counter[str] = Counter(m for episode in calls for m in episode)
    total = sum(counts.values()) or 1
    reward = np.asarray(list(reward), dtype=np.float64)
    return {
        "perf": float(np.nanmean(list(perf))),
        "cost": float(np.nanmean(list(cost))),
        "reward": float(reward.mean()),
        "reward_std": float(reward.std()),
        "usd": float(np.nanmean(list(usd))) if not np.all(np.isnan(list(usd))) else float("nan"),
        "episodes": len(reward),
        "steps_per_episode": float(np.mean(list(lengths))),
        "calls_per_episode": total / max(1, len(calls)) if counts else 0.0,
        "share": {m: counts[m] / total for m in sorted(counts)},
    }


def markdown_table(rows: Iterable[Mapping[str, Any]], columns: Mapping[str, str]) -> str:
    """A Markdown table of ``rows`` with ``columns`` = {key: header}; floats get 3 decimals."""
    lines = [
        "| " + " | ".join(columns.values()) + " |",
        "|" + "|".join("---" for _ in columns) + "|",
    ]
    for row in rows:
        cells = []
        for key in columns:
            value = row.get(key, "")
            cells.append(f"{value:.3f}" if isinstance(value, float) else str(value))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
