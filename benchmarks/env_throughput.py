"""Steps per second of the routing envs next to CartPole-v1, all made with gym.make defaults.

Outcome-table envs: random actions, auto-reset on episode end (the table env ends every step,
so each of its steps also pays for a reset). Each env runs ``--repeats`` times and the best run
counts.

Live HotpotQA env with the real pool (unless ``--no-live``): episodes/s with a cold cache, a
vector of 8 envs whose model calls run in one batch per step against one env stepping the
same questions alone; then steps/s of the single env replaying from its warm cache.

The last line of the output is one JSON object with the headline figures.

    python benchmarks/env_throughput.py [--steps 100000] [--repeats 3] [--no-live] [--live-episodes 8]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import gymnasium as gym
import numpy as np

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


def live_config(cache_path: Path, episodes: int) -> dict:
    """Real models, real questions, CPU-friendly limits."""
    return {
        "models": ["smollm2-135m", "gemma3-270m"],
        "split": "valid",
        "limit": episodes,
        "shuffle": False,
        "cache_path": str(cache_path),
        "protocol": {"search_budget": 1, "student_max_new_tokens": 32, "teacher_max_new_tokens": 16},
    }


def live_single(config: dict, episodes: int) -> tuple[float, int]:
    """Seconds and steps for one env to play questions 0..episodes-1 with seeded random actions."""
    env = gym.make("LLMRouting-HotpotQA-v0", config=config)
    steps, start = 0, time.perf_counter()
    for index in range(episodes):
        rng = np.random.default_rng(index)
        env.reset(seed=index, options={"index": index})
        done = False
        while not done:
            _, _, terminated, truncated, _ = env.step(int(rng.integers(2)))
            done, steps = terminated or truncated, steps + 1
    elapsed = time.perf_counter() - start
    env.close()
    return elapsed, steps


def live_batched(config: dict, episodes: int) -> tuple[float, int]:
    """Seconds and finished episodes for a batched vector of ``episodes`` envs, one question each."""
    from routing_gym.vector import make_batched_vec_env

    vec = make_batched_vec_env("LLMRouting-HotpotQA-v0", n_envs=episodes, seed=0, env_kwargs={"config": config})
    vec.set_options([{"index": i} for i in range(episodes)])
    rngs = [np.random.default_rng(i) for i in range(episodes)]
    finished, first_done = 0, np.zeros(episodes, dtype=bool)
    start = time.perf_counter()
    vec.reset()
    while not first_done.all():
        _, _, dones, _ = vec.step(np.array([int(r.integers(2)) for r in rngs]))
        finished += int(dones.sum())
        first_done |= dones
    elapsed = time.perf_counter() - start
    vec.close()
    return elapsed, finished


def main(argv: list[str] | None = None) -> dict[str, float]:
    """Measure, print a table, and print the JSON headline last."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-live", action="store_true", help="skip the live env with the real models")
    parser.add_argument("--live-episodes", type=int, default=8)
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
    if not args.no_live:
        headline.update(live_figures(args.live_episodes, cartpole))
    print(json.dumps(headline))
    return headline


def live_figures(episodes: int, cartpole: float) -> dict[str, float]:
    """Cold batched vs single episodes/s, and warm single steps/s, each on a fresh cache."""
    with tempfile.TemporaryDirectory() as tmp:
        single_config = live_config(Path(tmp) / "single.sqlite", episodes)
        batched_config = live_config(Path(tmp) / "batched.sqlite", episodes)
        gym.make("LLMRouting-HotpotQA-v0", config=single_config).unwrapped.pool.generate([])  # import cost
        live_single(live_config(Path(tmp) / "warmup.sqlite", 1), 1)  # load models outside the timings
        cold_s, _ = live_single(single_config, episodes)
        batched_s, batched_episodes = live_batched(batched_config, episodes)
        warm_s, warm_steps = live_single(single_config, episodes)
    single_eps = episodes / cold_s
    batched_eps = batched_episodes / batched_s
    warm_rate = warm_steps / warm_s
    print(f"\n| live LLMRouting-HotpotQA-v0 (real pool) | figure |\n|---|---:|")
    print(f"| cold, 1 env: episodes/s | {single_eps:.4f} |")
    print(f"| cold, vector of {episodes} batched: episodes/s | {batched_eps:.4f} ({batched_eps / single_eps:.1f}x) |")
    print(f"| warm cache, 1 env: steps/s | {warm_rate:,.1f} ({warm_rate / cartpole:.4f}x CartPole-v1) |")
    return {
        "live_cold_single_episodes_per_s": round(single_eps, 4),
        "live_cold_batched_episodes_per_s": round(batched_eps, 4),
        "live_batched_speedup": round(batched_eps / single_eps, 2),
        "live_warm_steps_per_s": round(warm_rate, 1),
        "live_warm_vs_cartpole": round(warm_rate / cartpole, 5),
    }


if __name__ == "__main__":
    main()
