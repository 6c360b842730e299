"""The LLMRouter table with and without the task and prompt-length features: the share of the
best-single-to-Oracle gap each router captures on the test split, at λ = 0 and balanced.

Every router reads its inputs from the env's observation (``features=...``): the embedding
alone, or the embedding with the task one-hot and the scaled log prompt length. Each router is
fit on **train**, its setting (k, α, C) is chosen on **valid** (the mean of its gap captured at
the two λ), and **test** is scored once. The per-task best from train (each task's best model
on train at that λ) needs the task only. PPO (HierRouter) trains on the train split at each λ.

The per-query test rewards go to ``--out`` (JSON); ``docs/results/llmrouter_features.md``
renders its table from them (``python -m routing_gym.bench.published``), with 95% paired
bootstrap intervals (``routing_gym.stats.gap_captured_interval``).

    python examples/llmrouter_features.py --out docs/results/llmrouter_features.json \
        [--ppo-steps 20000] [--ppo-seeds 0 1 2]
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from collections import Counter
from typing import Any

import gymnasium as gym
import numpy as np

import routing_gym  # noqa: F401  (registers the IDs)
from agents import HierRouter, KNNRouter, MLPRouter
from agents.calibrated_router import CalibratedRouter
from routing_gym.cost import REGIMES
from routing_gym.outcomes import Outcomes

ENV_ID = "LLMRouting-Table-v0"
FEATURE_SETS = {
    "embedding": ["embedding"],
    "embedding+task+length": ["embedding", "task", "length"],
}
#: The two trade-offs of the table: quality only, and the "balanced" regime.
LAMS = {"0": 0.0, "balanced": REGIMES["balanced"]}
#: Each router's settings, chosen on valid.
GRIDS: dict[str, tuple[type, list[dict[str, Any]]]] = {
    "kNN": (KNNRouter, [{"k": k} for k in (10, 20, 40, 80)]),
    "MLP": (MLPRouter, [{"alpha": a} for a in (1e-3, 1e-2)]),
    "Calibrated LR": (CalibratedRouter, [{"c": c, "isotonic": True} for c in (0.3, 3.0)]),
}


def split_envs(features: list[str]) -> dict[str, gym.Env]:
    return {s: gym.make(ENV_ID, split=s, features=features) for s in ("train", "valid", "test")}


def gap(data: Outcomes, arms: np.ndarray, lam: float) -> float:
    """Gap captured by per-query arms at λ on ``data`` (best single and oracle of ``data``)."""
    reward = data.rewards(lam)
    best, oracle = reward.mean(axis=0).max(), reward.max(axis=1).mean()
    return float((reward[np.arange(len(arms)), arms].mean() - best) / (oracle - best))


def per_task_best(train: Outcomes, data: Outcomes, lam: float) -> np.ndarray:
    """Each query's arm: its task's best model on train at λ (the overall best for a new task)."""
    reward = train.rewards(lam)
    tasks = np.array(train.tasks)
    fallback = int(reward.mean(axis=0).argmax())
    best = {t: int(reward[tasks == t].mean(axis=0).argmax()) for t in set(train.tasks)}
    return np.array([best.get(t, fallback) for t in data.tasks], dtype=np.int64)


def one_shot(name: str, features: list[str], log: list[str]) -> dict[str, Any]:
    """Fit each setting on train, choose on valid, return the chosen one's test arms per λ."""
    cls, grid = GRIDS[name]
    envs = split_envs(features)
    data = {s: Outcomes.from_table_env(env) for s, env in envs.items()}
    tried = []
    for setting in grid:
        start = time.perf_counter()
        router = cls(**setting).fit_env(envs["train"])
        estimates = {s: router.estimate(data[s].features) for s in ("valid", "test")}
        arms = {
            s: {key: np.argmax(sc - lam * co, axis=1) for key, lam in LAMS.items()}
            for s, (sc, co) in estimates.items()
        }
        objective = float(np.mean([gap(data["valid"], arms["valid"][k], lam) for k, lam in LAMS.items()]))
        tried.append({"setting": setting, "valid_objective": objective, "test_arms": arms["test"]})
        log.append(f"  {name} [{'+'.join(features)}] {setting}: valid objective {objective:.3f} "
                   f"({time.perf_counter() - start:.0f} s)")
        print(log[-1], flush=True)
    chosen = max(tried, key=lambda t: t["valid_objective"])
    return {"setting": chosen["setting"], "valid_objective": chosen["valid_objective"],
            "valid_tried": [{**t["setting"], "objective": t["valid_objective"]} for t in tried],
            "arms": chosen["test_arms"], "inputs": int(data["train"].features.shape[1])}


def ppo(features: list[str], steps: int, seed: int, test: gym.Env) -> dict[str, np.ndarray]:
    """HierRouter's PPO trained on train at each λ; its test arms, read off the test env's
    observations (``reset(options={"index": i})``, the features included)."""
    base = test.unwrapped
    observations = [base.reset(options={"index": i})[0] for i in range(base.num_queries)]
    if isinstance(observations[0], dict):
        batch: Any = {k: np.stack([o[k] for o in observations]) for k in observations[0]}
    else:
        batch = np.stack(observations)
    arms = {}
    for key, lam in LAMS.items():
        agent = HierRouter(total_timesteps=steps, seed=seed)
        agent.fit(ENV_ID, env_kwargs={"config": {"split": "train", "lam": lam, "features": features}})
        agent.adapt_to(test)
        actions, _ = agent.predict(batch, deterministic=True)
        arms[key] = np.asarray(actions, dtype=np.int64).reshape(-1)
    return arms


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="docs/results/llmrouter_features.json")
    parser.add_argument("--ppo-steps", type=int, default=0, help="PPO steps per λ (0: no PPO)")
    parser.add_argument("--ppo-seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--routers", nargs="+", default=list(GRIDS), choices=list(GRIDS))
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore", category=UserWarning)
    start = time.perf_counter()
    test_env = gym.make(ENV_ID, split="test")
    test = Outcomes.from_table_env(test_env)
    train = Outcomes.from_table_env(gym.make(ENV_ID, split="train"))
    methods: dict[str, dict[str, Any]] = {}  # label -> {"router", "features", "arms", ...}
    log: list[str] = []
    for name in args.routers:
        for label, features in FEATURE_SETS.items():
            result = one_shot(name, features, log)
            methods[f"{name} [{label}]"] = {"router": name, "features": label, **result}
    methods["Per-task best from train [task]"] = {
        "router": "Per-task best from train", "features": "task",
        "arms": {k: per_task_best(train, test, lam) for k, lam in LAMS.items()},
    }
    if args.ppo_steps > 0:
        for label, features in FEATURE_SETS.items():
            test_features = gym.make(ENV_ID, split="test", features=features)
            for seed in args.ppo_seeds:
                t0 = time.perf_counter()
                arms = ppo(features, args.ppo_steps, seed, test_features)
                methods[f"PPO seed {seed} [{label}]"] = {
                    "router": f"PPO (HierRouter, {args.ppo_steps} steps/λ, seed {seed})",
                    "features": label, "arms": arms, "seed": seed,
                }
                print(f"  PPO [{label}] seed {seed}: {time.perf_counter() - t0:.0f} s", flush=True)

    by_lam = {}
    for key, lam in LAMS.items():
        reward = test.rewards(lam)
        best = int(reward.mean(axis=0).argmax())
        rewards = {"best single": reward[:, best], "oracle": reward.max(axis=1)}
        calls = {}
        for label, method in methods.items():
            arms = method["arms"][key]
            rewards[label] = reward[np.arange(len(arms)), arms]
            calls[label] = dict(Counter(test.models[a] for a in arms.tolist()))
        by_lam[key] = {
            "lam": lam,
            "best_single": test.models[best],
            "rewards": {k: np.round(v, 7).tolist() for k, v in rewards.items()},
            "calls": calls,
        }
    summary = {
        "env": ENV_ID,
        "split_sizes": {s: gym.make(ENV_ID, split=s).unwrapped.num_queries for s in ("train", "valid", "test")},
        "models": list(test.models),
        "feature_sets": FEATURE_SETS,
        "methods": {label: {k: v for k, v in m.items() if k != "arms"} for label, m in methods.items()},
        "test": {"query_ids": list(test.query_ids), "tasks": list(test.tasks), "by_lam": by_lam},
        "command": "python examples/llmrouter_features.py " + " ".join(argv or []),
        "wall_s": round(time.perf_counter() - start, 1),
    }
    with open(args.out, "w", encoding="utf-8") as handle:
        json.dump(summary, handle)
        handle.write("\n")
    from routing_gym.bench.feature_gap import feature_gap_table

    for key in LAMS:
        print(f"\nλ = {LAMS[key]:g} ({key}):\n")
        print(feature_gap_table(summary, key))
    print(json.dumps({"out": args.out, "wall_s": summary["wall_s"]}))
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main(sys.argv[1:]))
