"""HAPS against fixed, random and one-shot assignments on the valid questions of an exhaustive table.

The baselines are read from the exhaustive action-level table of the valid split (every
assignment really played, greedy), so Random is its exact expectation (the mean over the
assignments) and "best fixed" is the assignment with the highest mean reward on the *train*
table at λ. With ``--env`` the one-shot routers of ``agents/`` (kNN, MLP, RouteLLM-MF,
IRT-Router, GraphRouter) are fit on the train table (the env's question embeddings, costs
normalized on train) and each valid question's chosen assignment is looked up in the valid
table. The HAPS rows come from ``routing-gym train-haps --results-json``, whose valid episodes
were played live through the env; a run is shown in the table of the λ it was trained at.
Only the valid questions HAPS played are compared. One table per λ (``--lam`` takes a
comma-separated list of numbers or regime names).

    python examples/compare_haps.py --train-table runs/hotpotqa_train_action_table.jsonl \
        --valid-table docs/action_tables/hotpotqa_valid_action_table.jsonl \
        --run HAPS=runs/haps_full.json --run "HAPS without LoRA=runs/haps_nolora.json" \
        --env LLMRouting-HotpotQA-Assign-v0 --env-config '{"models": ["smollm2-135m", "gemma3-270m"]}' \
        --lam performance-first,balanced,cost-first

For a run without LoRA the env plays the same greedy episode as the table did, so its rows
are checked against the table (``table matches``): a mismatch means the two runs differ. For a
run with LoRA the last column counts the questions whose F1 the generated LoRA raised, lowered
or left as the table's episode of the same assignment had it.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

import gymnasium as gym
import numpy as np

import routing_gym  # noqa: F401  (registers the IDs)
from agents import ONE_SHOT_ROUTERS, RoutingData
from agents.base import arm_columns
from routing_gym.action_table import ActionTable
from routing_gym.bench.comparison import haps_comparison
from routing_gym.bench.roster import ROSTER, build_agent
from routing_gym.cost import resolve_lambda, routing_reward
from routing_gym.protocols.base import ROLES


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train-table", required=True, help="exhaustive table of the train split")
    parser.add_argument("--valid-table", required=True, help="exhaustive table of the valid split")
    parser.add_argument(
        "--run",
        action="append",
        default=[],
        metavar="LABEL=PATH",
        help="a results JSON of routing-gym train-haps (repeatable)",
    )
    parser.add_argument(
        "--lam", default="balanced", help="λ: numbers or regime names, comma-separated (one table each)"
    )
    parser.add_argument(
        "--env", default=None,
        help="the live Assign env of the tables (e.g. LLMRouting-HotpotQA-Assign-v0): adds the one-shot routers",
    )
    parser.add_argument("--env-config", default="{}", help="that env's config as JSON (models, data_dir, ...)")
    parser.add_argument("--train-split", default="train", help="the split of --train-table")
    parser.add_argument("--valid-split", default="valid", help="the split of --valid-table")
    parser.add_argument("--seed", type=int, default=0, help="seed of the one-shot routers")
    return parser.parse_args(argv)


def assignment_key(assignment: dict[str, str]) -> tuple[str, ...]:
    return tuple(assignment[role] for role in ROLES)


def one_shot_choices(args, train: ActionTable, normalizer, questions: list[str], lams: list[float]):
    """Per λ and router, the assignment (student, teacher) each valid question gets."""


    config = json.loads(args.env_config)
    train_env = gym.make(args.env, config={**config, "split": args.train_split})
    valid_env = gym.make(args.env, config={**config, "split": args.valid_split})
    train_data = RoutingData.from_action_table(train, train_env, normalizer)
    valid_table = ActionTable.load(args.valid_table)
    valid_data = RoutingData.from_action_table(valid_table, valid_env, normalizer, question_ids=questions)
    choices: dict[float, dict[str, dict[str, tuple[str, ...]]]] = {lam: {} for lam in lams}
    for name in ONE_SHOT_ROUTERS:
        router = build_agent(name, args.seed, data=train_data).fit(train_data)
        columns = arm_columns(name, router.models, router.arms, valid_data)
        for lam in lams:
            router.lam = lam  # these routers take λ at routing time
            arms = columns[router.select_arms(valid_data.embeddings)]
            picked = [tuple(valid_data.models[m] for m in valid_data.arms[a]) for a in arms]
            choices[lam][f"{ROSTER[name].label} (one-shot)"] = dict(zip(valid_data.query_ids, picked))
    train_env.close()
    valid_env.close()
    return choices


def run_lambda(run: dict) -> float:
    """The λ a train-haps run was trained at (its recorded config)."""
    return resolve_lambda((run.get("config") or {}).get("lam", "balanced"))


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    lams = [resolve_lambda(name.strip()) for name in str(args.lam).split(",")]
    train, valid = ActionTable.load(args.train_table), ActionTable.load(args.valid_table)
    normalizer = train.fit_cost_normalizer()  # frozen on train, as in the envs
    runs = {}
    for spec in args.run:
        label, _, path = spec.partition("=")
        if not path:
            raise SystemExit(f"--run {spec!r}: expected LABEL=PATH.")
        runs[label] = json.loads(Path(path).read_text())
        if "per_episode" not in runs[label]:
            raise SystemExit(f"{path}: no 'per_episode' rows (write it with --results-json).")
        if not any(abs(run_lambda(runs[label]) - lam) < 1e-12 for lam in lams):
            raise SystemExit(
                f"--run {label}: trained at λ = {run_lambda(runs[label]):g}, which is not in --lam {args.lam!r}."
            )
    played = {e["question_id"] for run in runs.values() for e in run["per_episode"]}
    rows = [r for r in valid.rows if not played or r["question_id"] in played]
    missing = played - {r["question_id"] for r in rows}
    if missing:
        raise SystemExit(f"{len(missing)} valid questions HAPS played are not in the valid table.")
    outcome = {(r["question_id"], assignment_key(r["assignment"])): r for r in rows}
    questions = sorted({r["question_id"] for r in rows})
    arms = sorted({assignment_key(r["assignment"]) for r in rows})
    one_shot = one_shot_choices(args, train, normalizer, questions, lams) if args.env else {}
    metric = "accuracy" if "MMLU" in str((valid.header or {}).get("env_id", "")) else "F1"
    tables = {}
    for lam in lams:
        tables[lam] = comparison(lam, train, normalizer, outcome, questions, arms, runs, one_shot.get(lam, {}))
        print_table(lam, len(questions), tables[lam], metric)
    summary = {
        "metric": metric,
        "questions": len(questions),
        "lams": lams,
        "tables": {str(lam): table for lam, table in tables.items()},
    }
    if len(lams) == 1:  # one λ: its rows at the top level too
        summary.update(lam=lams[0], rows=tables[lams[0]])
    print(json.dumps(summary))
    return summary


def comparison(lam, train, normalizer, outcome, questions, arms, runs, one_shot) -> dict[str, dict]:
    """Rows of one λ: Random, best fixed, every fixed assignment, one-shot routers, runs, Oracle."""

    def reward(perf: float, cost: float) -> float:
        return routing_reward(perf, normalizer(cost), lam)

    def score(choice: dict[str, tuple[str, ...]]) -> dict[str, float]:
        picked = [outcome[(q, choice[q])] for q in questions]
        shares = Counter("/".join(choice[q]) for q in questions)
        return {**means(per_question(questions, picked)), "assignments": dict(shares),
                "per_question": per_question(questions, picked)}

    def per_question(ids: list[str], played: list[dict]) -> dict[str, list]:
        """Each question's F1, USD, normalized cost and reward (the tables' intervals need them)."""
        return {
            "question_id": list(ids),
            "perf": [float(r["perf"]) for r in played],
            "usd": [float(r["cost"]) for r in played],
            "normalized_cost": [float(normalizer(r["cost"])) for r in played],
            "reward": [float(reward(r["perf"], r["cost"])) for r in played],
        }

    def means(values: dict[str, list]) -> dict[str, float]:
        return {k: float(np.mean(values[k])) for k in ("perf", "usd", "normalized_cost", "reward")}

    train_reward = {
        arm: np.mean(
            [
                reward(r["perf"], r["cost"])
                for r in train.rows
                if assignment_key(r["assignment"]) == arm
            ]
        )
        for arm in arms
    }
    best_fixed = max(arms, key=lambda a: (train_reward[a], a))
    per_arm = {arm: score({q: arm for q in questions}) for arm in arms}
    # Random's exact expectation per question: the mean over the assignments
    random_values = {
        k: np.mean([per_arm[a]["per_question"][k] for a in arms], axis=0).tolist()
        for k in ("perf", "usd", "normalized_cost", "reward")
    }
    random_values["question_id"] = list(questions)
    table = {
        "Random (expectation over the assignments)": {
            **means(random_values), "per_question": random_values,
        },
        f"Best fixed on train: {'/'.join(best_fixed)}": per_arm[best_fixed],
    }
    for arm in arms:
        table[f"Fixed {'/'.join(arm)}"] = per_arm[arm]
    for label, choice in one_shot.items():
        table[label] = score(choice)
    for label, run in runs.items():
        if abs(run_lambda(run) - lam) > 1e-12:
            continue
        by_id = {e["question_id"]: e for e in run["per_episode"]}
        missed = [q for q in questions if q not in by_id]
        if missed:
            raise SystemExit(f"--run {label}: no episode for {len(missed)} of the compared questions "
                             f"(first {missed[0]}); a paired comparison needs every one.")
        episodes = [by_id[q] for q in questions]
        shares = Counter("/".join(assignment_key(e["assignment"])) for e in episodes)
        # the table's episode of the same question and assignment: the one played without LoRA
        plain = [outcome[(e["question_id"], assignment_key(e["assignment"]))] for e in episodes]
        matches = sum(
            abs(e["perf"] - t["perf"]) < 1e-9 and abs(e["cost"] - t["cost"]) < 1e-12
            for e, t in zip(episodes, plain)
        )
        values = per_question(questions, episodes)
        table[label] = {
            **means(values),
            "assignments": dict(shares),
            "per_question": values,
            "table_matches": f"{matches}/{len(episodes)}",
            "vs_table": perf_changes(episodes, plain),
        }
    oracle = {
        q: max(arms, key=lambda a: (reward(outcome[(q, a)]["perf"], outcome[(q, a)]["cost"]), a))
        for q in questions
    }
    table["Oracle (hindsight upper bound)"] = score(oracle)
    return table


def perf_changes(episodes: list[dict], plain: list[dict]) -> dict[str, int]:
    """How many questions a run scored better on, worse on, or the same as the table's episode of
    the same assignment (played greedy without LoRA): where the generated LoRA changed the score."""
    deltas = [e["perf"] - t["perf"] for e, t in zip(episodes, plain)]
    return {
        "better": sum(d > 1e-9 for d in deltas),
        "worse": sum(d < -1e-9 for d in deltas),
        "same": sum(abs(d) <= 1e-9 for d in deltas),
    }


def print_table(lam: float, questions: int, table: dict[str, dict], metric: str = "F1") -> None:
    """The λ's table with n, 95% intervals and Δ from the best fixed assignment on train."""

    print("\n" + haps_comparison(lam, table, metric))


if __name__ == "__main__":
    main()
