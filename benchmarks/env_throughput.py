"""Steps per second of the outcome-table envs next to CartPole-v1, all made with gym.make defaults.

Random actions, auto-reset on episode end (the table env ends every step, so each of its steps
also pays for a reset). Each env runs ``--repeats`` times and the best run counts. The last
line of the output is one JSON object with the headline figures.

    python benchmarks/env_throughput.py [--steps 100000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import time

import gymnasium as gym

import routing_gym  # noqa: F401  (registers the LLMRouting IDs)

TARGET_RATIO = 0.5
ENV_IDS = ("CartPole-v1", "LLMRouting-Table-v0", "LLMRouting-Table-Cascade-v0")


def steps_per_second(env_id: str, steps: int, seed: int = 0) -> float:
    """Random-action steps per second of ``gym.make(env_id)``, resets included."""
    env = gym.make(env_id)
    env.reset(seed=seed)
    env.action_space.seed(seed)
    sample, step, reset = env.action_space.sample, env.step, env.reset
    start = time.perf_counter()
    for _ in range(steps):
        _, _, terminated, truncated, _ = step(sample())
        if terminated or truncated:
            reset()
    elapsed = time.perf_counter() - start
    env.close()
    return steps / elapsed


def main(argv: list[str] | None = None) -> dict[str, float]:
    """Measure, print a table, and print the JSON headline last."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)

    rates = {
        env_id: max(steps_per_second(env_id, args.steps, seed=r) for r in range(args.repeats))
        for env_id in ENV_IDS
    }
    cartpole = rates["CartPole-v1"]
    print("| env | steps/s | vs CartPole-v1 |\n|---|---:|---:|")
    for env_id, rate in rates.items():
        print(f"| {env_id} | {rate:,.0f} | {rate / cartpole:.2f}x |")
    ratio = rates["LLMRouting-Table-v0"] / cartpole
    print(
        f"\n{args.steps:,} steps x best of {args.repeats}; "
        f"target LLMRouting-Table-v0 >= {TARGET_RATIO}x CartPole-v1: "
        f"{'met' if ratio >= TARGET_RATIO else 'NOT met'}"
    )
    headline = {
        "table_steps_per_s": round(rates["LLMRouting-Table-v0"], 1),
        "cascade_steps_per_s": round(rates["LLMRouting-Table-Cascade-v0"], 1),
        "cartpole_steps_per_s": round(cartpole, 1),
        "ratio": round(ratio, 3),
        "target_ratio": TARGET_RATIO,
    }
    print(json.dumps(headline))
    return headline


if __name__ == "__main__":
    main()
