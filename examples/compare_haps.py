"""HAPS against the fixed and random assignments on the valid questions of an exhaustive table.

The baselines are read from the exhaustive action-level table of the valid split (every
assignment really played, greedy), so Random is its exact expectation (the mean over the
assignments) and "best fixed" is the assignment with the highest mean reward on the *train*
table at λ. The HAPS rows come from ``routing-gym train-haps --results-json``, whose valid
episodes were played live through the env. Only the valid questions HAPS played are compared.

    python examples/compare_haps.py --train-table runs/hotpotqa_train_action_table.jsonl \
        --valid-table docs/action_tables/hotpotqa_valid_action_table.jsonl \
        --run HAPS=runs/haps_full.json --run "HAPS without LoRA=runs/haps_nolora.json"

For a run without LoRA the env plays the same greedy episode as the table did, so its rows
are checked against the table (``table matches``): a mismatch means the two runs differ.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

import numpy as np

from routing_gym.action_table import ActionTable
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
    parser.add_argument("--lam", default="balanced", help="λ: a number or a regime name")
    return parser.parse_args(argv)


def assignment_key(assignment: dict[str, str]) -> tuple[str, ...]:
    return tuple(assignment[role] for role in ROLES)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    lam = resolve_lambda(args.lam)
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
    played = {e["question_id"] for run in runs.values() for e in run["per_episode"]}
    rows = [r for r in valid.rows if not played or r["question_id"] in played]
    missing = played - {r["question_id"] for r in rows}
    if missing:
        raise SystemExit(f"{len(missing)} valid questions HAPS played are not in the valid table.")
    outcome = {(r["question_id"], assignment_key(r["assignment"])): r for r in rows}
    questions = sorted({r["question_id"] for r in rows})
    arms = sorted({assignment_key(r["assignment"]) for r in rows})

    def reward(perf: float, cost: float) -> float:
        return routing_reward(perf, normalizer(cost), lam)

    def score(choice: dict[str, tuple[str, ...]]) -> dict[str, float]:
        picked = [outcome[(q, choice[q])] for q in questions]
        return {
            "f1": float(np.mean([r["perf"] for r in picked])),
            "usd": float(np.mean([r["cost"] for r in picked])),
            "reward": float(np.mean([reward(r["perf"], r["cost"]) for r in picked])),
        }

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
    table = {
        "Random (expectation over the assignments)": {
            k: float(np.mean([per_arm[a][k] for a in arms])) for k in ("f1", "usd", "reward")
        },
        f"Best fixed on train: {'/'.join(best_fixed)}": per_arm[best_fixed],
    }
    for arm in arms:
        table[f"Fixed {'/'.join(arm)}"] = per_arm[arm]
    for label, run in runs.items():
        episodes = [e for e in run["per_episode"] if e["question_id"] in set(questions)]
        shares = Counter("/".join(assignment_key(e["assignment"])) for e in episodes)
        matches = sum(
            abs(e["perf"] - outcome[(e["question_id"], assignment_key(e["assignment"]))]["perf"])
            < 1e-9
            and abs(
                e["cost"] - outcome[(e["question_id"], assignment_key(e["assignment"]))]["cost"]
            )
            < 1e-12
            for e in episodes
        )
        table[label] = {
            "f1": float(np.mean([e["perf"] for e in episodes])),
            "usd": float(np.mean([e["cost"] for e in episodes])),
            "reward": float(np.mean([reward(e["perf"], e["cost"]) for e in episodes])),
            "assignments": dict(shares),
            "table_matches": f"{matches}/{len(episodes)}",
        }
    oracle = {
        q: max(arms, key=lambda a: (reward(outcome[(q, a)]["perf"], outcome[(q, a)]["cost"]), a))
        for q in questions
    }
    table["Oracle (hindsight upper bound)"] = score(oracle)

    print(
        f"Valid questions: {len(questions)}, λ = {lam:g} (student/teacher; cost normalized on train)\n"
    )
    print("| router | valid F1 | mean cost (USD) | reward | assignments played | table matches |")
    print("|---|---:|---:|---:|---|---|")
    for label, row in table.items():
        shares = ", ".join(f"{k} {v}" for k, v in sorted(row.get("assignments", {}).items()))
        print(
            f"| {label} | {row['f1']:.3f} | {row['usd']:.2e} | {row['reward']:.3f} | "
            f"{shares} | {row.get('table_matches', '')} |"
        )
    summary = {"questions": len(questions), "lam": lam, "rows": table}
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
