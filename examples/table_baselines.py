"""PPO router vs. fixed baselines on the held-out test split of LLMRouting-Table-v0.

For each λ regime (performance-first, balanced, cost-first), PPO trains on the train split and
every router is scored on the test split by stepping the env through each test query once:

* Best-single: the model with the highest mean train reward at that λ, always.
* Cheapest: the model with the lowest mean train cost, always.
* Random: a uniformly random model per query (seeded).
* Oracle: per query, the model with the highest reward (an upper bound, not a router).

Prints one Markdown table: Perf (mean score), normalized Cost, Reward (Perf − λ·Cost).

    python examples/table_baselines.py [--steps 20000] [--seed 0]
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from typing import Callable

import gymnasium as gym
import numpy as np
import torch

import routing_gym  # noqa: F401  (registers the LLMRouting IDs)
from routing_gym.cost import REGIMES


@dataclass
class PPOConfig:
    """PPO hyperparameters for a one-step (contextual bandit) MDP."""

    total_timesteps: int = 20_000
    n_steps: int = 512
    batch_size: int = 128
    n_epochs: int = 4
    learning_rate: float = 1e-3
    gamma: float = 0.0  # every episode is a single step
    ent_coef: float = 0.0
    seed: int = 0


def evaluate(env: gym.Env, choose: Callable[[np.ndarray, int], int]) -> dict[str, float]:
    """Step through every query of the env's split once; mean Perf, normalized Cost, Reward, USD."""
    base = env.unwrapped
    perf, ncost, reward, usd = [], [], [], []
    for index in range(base.num_queries):
        obs, _ = env.reset(options={"index": index})
        _, r, _, _, info = env.step(choose(obs, index))
        perf.append(info["perf"])
        ncost.append(info["normalized_cost"])
        reward.append(r)
        usd.append(info["cost"])
    return {
        "perf": float(np.mean(perf)),
        "cost": float(np.mean(ncost)),
        "reward": float(np.mean(reward)),
        "usd_per_1k": 1000 * float(np.mean(usd)),
    }


def run_regime(regime: str, cfg: PPOConfig) -> dict[str, dict[str, float]]:
    """Train PPO at one λ regime and score it and the baselines on the test split."""
    from stable_baselines3 import PPO

    train_env = gym.make("LLMRouting-Table-v0", split="train", lam=regime)
    test_env = gym.make("LLMRouting-Table-v0", split="test", lam=regime, shuffle=False)
    train, test = train_env.unwrapped, test_env.unwrapped

    model = PPO(
        "MlpPolicy",
        train_env,
        n_steps=cfg.n_steps,
        batch_size=cfg.batch_size,
        n_epochs=cfg.n_epochs,
        learning_rate=cfg.learning_rate,
        gamma=cfg.gamma,
        ent_coef=cfg.ent_coef,
        seed=cfg.seed,
        verbose=0,
    )
    model.learn(cfg.total_timesteps)

    train_reward = train.scores - train.lam * train.normalized_costs
    best_single = int(np.argmax(train_reward.mean(axis=0)))
    cheapest = int(np.argmin(train.costs.mean(axis=0)))
    oracle = np.argmax(test.scores - test.lam * test.normalized_costs, axis=1)
    rng = np.random.default_rng(cfg.seed)
    n_models = test.action_space.n
    return {
        "PPO": evaluate(test_env, lambda obs, i: int(model.predict(obs, deterministic=True)[0])),
        f"Best-single ({test.models[best_single]})": evaluate(test_env, lambda obs, i: best_single),
        f"Cheapest ({test.models[cheapest]})": evaluate(test_env, lambda obs, i: cheapest),
        "Random": evaluate(test_env, lambda obs, i: int(rng.integers(n_models))),
        "Oracle": evaluate(test_env, lambda obs, i: int(oracle[i])),
    }


def main(argv: list[str] | None = None) -> None:
    """Run all three regimes and print the Markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--steps", type=int, default=PPOConfig.total_timesteps, help="PPO timesteps per regime"
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    cfg = PPOConfig(total_timesteps=args.steps, seed=args.seed)
    torch.set_num_threads(1)  # small MLP: threads cost more than they save

    start = time.perf_counter()
    test = gym.make("LLMRouting-Table-v0", split="test").unwrapped
    print(
        f"LLMRouting-Table-v0, test split: {test.num_queries} queries x {len(test.models)} models; "
        f"PPO {cfg.total_timesteps:,} steps on the train split per regime, seed {cfg.seed}.\n"
    )
    print("| regime (λ) | router | Perf | Cost (norm.) | Reward | USD / 1k queries |")
    print("|---|---|---:|---:|---:|---:|")
    for regime, lam in REGIMES.items():
        for name, row in run_regime(regime, cfg).items():
            print(
                f"| {regime} ({lam}) | {name} | {row['perf']:.3f} | {row['cost']:.4f} | {row['reward']:.3f} "
                f"| {row['usd_per_1k']:.4f} |"
            )
    print(f"\nWall time {time.perf_counter() - start:.0f} s.")


if __name__ == "__main__":
    main()
