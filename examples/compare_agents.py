"""Compare every agent on the held-out test split of LLMRouting-Table-v0 at the three λ regimes.

The learned baselines are fit once on the train split (their decision rule takes λ at routing
time); HierRouter's PPO is trained on the train split at each λ; the Oracle reads the test
split's true scores (an upper bound, not a router). Every agent is scored by
``agents.evaluation.evaluate_agent``: each test query played once, Perf = mean score, Cost =
mean normalized cost, Reward = mean of Perf − λ·Cost per query.

    python examples/compare_agents.py [--steps 20000] [--seed 0] [--out results/compare_agents.md]

(``routing-gym bench`` runs the same comparison over several seeds and envs, with mean PGR, AIQ,
the Pareto set, JSON / CSV output and a plot; this script prints one seed's table.)

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
from agents import OracleRouter, action_table_outcomes
from agents.evaluation import evaluate_on_data, markdown_table
from routing_gym.action_table import ActionTable
from routing_gym.bench import BenchConfig
from routing_gym.bench.roster import DEFAULT_AGENTS, ROSTER, TRAIN_ONCE, build_agent
from routing_gym.bench.runner import env_seed_records
from routing_gym.cost import REGIMES
from routing_gym.data.splits import assign_split

COLUMNS = {
    "regime": "regime (λ)",
    "agent": "agent",
    "perf": "Perf",
    "cost": "Cost (norm.)",
    "reward": "Reward",
}


def label(row: dict[str, Any]) -> str:
    """The agent's table label, with the model a data-driven fixed rule picked."""
    if row["agent"] == "fixed-best" and row.get("detail"):
        return f"{row['label']} [{row['detail']}]"
    if row["agent"] == "fixed-strongest" and row.get("detail"):
        return f"{row['label']} ({row['detail']})"
    return row["label"]


def compare_table_env(steps: int, seed: int) -> list[dict[str, Any]]:
    """Rows of the outcome-table comparison (every agent × every regime), via the benchmark runner."""
    config = BenchConfig(seeds=[seed], timesteps=steps, out="unused")
    todo = {(agent, regime) for agent in config.agents for regime in REGIMES}
    rows = []
    for record in env_seed_records(config, "LLMRouting-Table-v0", seed, todo, write_env=False):
        if record["kind"] == "row":
            lam = record["lam"]
            rows.append({**record, "regime": f"{record['regime']} ({lam})", "agent": label(record)})
            print(f"{record['regime']}: {label(record)} fit {record['fit_s']:.1f} s", flush=True)
    return rows


def compare_action_table(
    path: str, env_id: str, config: dict[str, Any], train_fraction: float, seed: int
) -> list[dict[str, Any]]:
    """Rows of the offline comparison of the assignment-level agents on an ActionTable."""

    table = ActionTable.load(path)
    env = gym.make(env_id, config=config)
    data = action_table_outcomes(table, env)
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
    names = [n for n in DEFAULT_AGENTS if ROSTER[n].training == TRAIN_ONCE]
    agents = {n: build_agent(n, seed, data=train).fit(train) for n in names}
    agents["oracle"] = OracleRouter().fit(test)
    rows = []
    for regime, lam in REGIMES.items():
        for name, agent in agents.items():
            scores = evaluate_on_data(agent, test, lam=lam)
            detail = agent.describe().detail
            record = {"agent": name, "label": ROSTER[name].label, "detail": detail}
            rows.append({"regime": f"{regime} ({lam})", **scores, "agent": label(record)})
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
