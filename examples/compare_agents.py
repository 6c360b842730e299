"""Compare every agent on the held-out test split of LLMRouting-Table-v0 at the three λ regimes.

The learned baselines are fit once on the train split (their decision rule takes λ at routing
time); HierRouter's PPO is trained on the train split at each λ; the Oracle reads the test
split's true scores (an upper bound, not a router). Every agent is scored by
``agents.evaluation.evaluate_agent``: each test query played once, Perf = mean score, Cost =
mean normalized cost, Reward = mean of Perf − λ·Cost per query.

    python examples/compare_agents.py [--steps 20000] [--seed 0] [--out results/compare_agents.md]

With ``--action-table PATH`` (an exhaustive-builder table of a live env, see
``python -m routing_gym precompute``) the assignment-level agents are also compared on it
offline: its questions are split by a hash of their id into train and test parts, the agents
are fit on the train part and every test question's chosen assignment is looked up.

    python examples/compare_agents.py --action-table results/action_table.jsonl \
        --live-env LLMRouting-HotpotQA-Assign-v0 --live-config '{"split": "valid"}'
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

import routing_gym  # noqa: F401  (registers the LLMRouting IDs)
from agents import (
    FixedRouter,
    GraphRouter,
    HierRouter,
    IRTRouter,
    KNNRouter,
    MFRouter,
    MLPRouter,
    OneShotRouter,
    OracleRouter,
    RandomRouter,
    RoutingData,
)
from agents.evaluation import evaluate_agent, evaluate_on_data, markdown_table
from routing_gym.cost import REGIMES
from routing_gym.data.splits import assign_split

COLUMNS = {
    "regime": "regime (λ)",
    "agent": "agent",
    "perf": "Perf",
    "cost": "Cost (norm.)",
    "reward": "Reward",
}


def learned_baselines(seed: int) -> dict[str, OneShotRouter]:
    """The data-driven routers, unfitted, by display name."""
    return {
        "RouteLLM-MF": MFRouter(seed=seed),
        "IRT-Router": IRTRouter(seed=seed),
        "GraphRouter": GraphRouter(seed=seed),
        "kNN (RouterBench)": KNNRouter(),
        "MLP (RouterBench)": MLPRouter(seed=seed),
    }


def fixed_baselines(data: RoutingData, seed: int) -> dict[str, OneShotRouter]:
    """Random and the fixed arms: cheapest, strongest (best mean score) and best at λ."""
    strongest = data.arms[int(np.argmax(data.scores.mean(axis=0)))]
    named = "/".join(data.models[i] for i in strongest)
    strong_cfg = (
        {"model": data.models[strongest[0]]}
        if len(strongest) == 1
        else {
            "assignment": {
                "student": data.models[strongest[0]],
                "teacher": data.models[strongest[1]],
            }
        }
    )
    return {
        "Random": RandomRouter(seed=seed),
        "Fixed: cheapest": FixedRouter(rule="cheapest"),
        f"Fixed: strongest ({named})": FixedRouter(**strong_cfg),
        "Fixed: best at λ": FixedRouter(rule="best"),
    }


def compare_table_env(steps: int, seed: int) -> list[dict[str, Any]]:
    """Rows of the outcome-table comparison (every agent × every regime)."""
    train_env = gym.make("LLMRouting-Table-v0", split="train")
    train = RoutingData.from_table_env(train_env)
    agents = {**fixed_baselines(train, seed), **learned_baselines(seed)}
    for name, agent in agents.items():
        start = time.perf_counter()
        agent.fit_env(train_env)
        print(f"fit {name}: {time.perf_counter() - start:.1f} s", flush=True)
    rows = []
    for regime, lam in REGIMES.items():
        test_env = gym.make("LLMRouting-Table-v0", split="test", lam=lam)
        start = time.perf_counter()
        hier = HierRouter(total_timesteps=steps, seed=seed).fit(
            "LLMRouting-Table-v0", env_kwargs={"config": {"split": "train", "lam": lam}}
        )
        print(f"fit HierRouter (PPO, λ={lam}): {time.perf_counter() - start:.1f} s", flush=True)
        oracle = OracleRouter().fit_env(test_env)
        for name, agent in {
            **agents,
            "HierRouter (PPO)": hier,
            "Oracle (upper bound)": oracle,
        }.items():
            scores = evaluate_agent(agent, test_env)
            label = f"{name} [{agent.describe()}]" if name == "Fixed: best at λ" else name
            rows.append({"regime": f"{regime} ({lam})", "agent": label, **scores})
    return rows


def compare_action_table(
    path: str, env_id: str, config: dict[str, Any], train_fraction: float, seed: int
) -> list[dict[str, Any]]:
    """Rows of the offline comparison of the assignment-level agents on an ActionTable."""
    from routing_gym.action_table import ActionTable

    table = ActionTable.load(path)
    env = gym.make(env_id, config=config)
    data = RoutingData.from_action_table(table, env)
    parts = np.array(
        [
            assign_split(q, fractions={"train": train_fraction, "test": 1 - train_fraction})
            for q in data.query_ids
        ]
    )
    train, test = data.subset(np.flatnonzero(parts == "train")), data.subset(
        np.flatnonzero(parts == "test")
    )
    if not len(train) or not len(test):
        raise SystemExit(
            f"{path}: too few questions ({len(data)}) to split into train and test parts."
        )
    print(
        f"{path}: {len(train)} train / {len(test)} test questions x {len(data.arms)} assignments",
        flush=True,
    )
    agents = {**fixed_baselines(train, seed), **learned_baselines(seed)}
    for agent in agents.values():
        agent.fit(train)
    agents["Oracle (upper bound)"] = OracleRouter().fit(test)
    rows = []
    for regime, lam in REGIMES.items():
        for name, agent in agents.items():
            scores = evaluate_on_data(agent, test, lam=lam)
            label = f"{name} [{agent.describe()}]" if name == "Fixed: best at λ" else name
            rows.append({"regime": f"{regime} ({lam})", "agent": label, **scores})
    env.close()
    return rows


def main(argv: list[str] | None = None) -> None:
    """Run the comparisons and print (and optionally save) the Markdown tables."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--steps", type=int, default=20_000, help="HierRouter PPO timesteps per regime"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="also write the tables to this Markdown file")
    parser.add_argument(
        "--action-table", default=None, help="an exhaustive-builder JSONL of a live env"
    )
    parser.add_argument(
        "--live-env", default="LLMRouting-HotpotQA-Assign-v0", help="the env the table was built on"
    )
    parser.add_argument(
        "--live-config", default="{}", help="that env's config as JSON (split, limit, models, ...)"
    )
    parser.add_argument(
        "--train-fraction", type=float, default=0.5, help="share of the table's questions to fit on"
    )
    parser.add_argument(
        "--skip-table-env", action="store_true", help="only the --action-table comparison"
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # small models: extra threads cost more than they save

    start = time.perf_counter()
    sections = []
    if not args.skip_table_env:
        test = gym.make("LLMRouting-Table-v0", split="test").unwrapped
        header = (
            f"LLMRouting-Table-v0, held-out test split: {test.num_queries} queries x {len(test.models)} models; "
            f"baselines fit on the train split, HierRouter PPO {args.steps:,} steps per λ, seed {args.seed}."
        )
        sections.append(
            header + "\n\n" + markdown_table(compare_table_env(args.steps, args.seed), COLUMNS)
        )
    if args.action_table:
        rows = compare_action_table(
            args.action_table,
            args.live_env,
            json.loads(args.live_config),
            args.train_fraction,
            args.seed,
        )
        sections.append(
            f"{args.live_env} action table {args.action_table} (offline):\n\n"
            + markdown_table(rows, COLUMNS)
        )
    text = "\n\n".join(sections) + f"\n\nWall time {time.perf_counter() - start:.0f} s.\n"
    print("\n" + text)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
