"""HAPS against fixed, random and one-shot assignments on the valid questions of a table.

The baselines are read from the exhaustive action-level table of the valid split (every
assignment really played, greedy), so Random is its exact expectation (the mean over the
assignments) and "best fixed" is the assignment with the highest mean reward on the *train*
table at λ. With ``--env`` the one-shot routers of ``agents/`` (kNN, MLP, RouteLLM-MF,
IRT-Router, GraphRouter) are fit on the train table (the env's question embeddings, costs
normalized on train) and each valid question's chosen assignment is looked up in the valid
table. The HAPS rows come from ``routing-gym train-haps --results-json``, whose valid episodes
were played live through the env; a run is shown in the table of the λ it was trained at.
Only the valid questions HAPS played are compared. One table per λ (``--lam`` takes a
comma-separated list of numbers or regime names). The rows are computed by
``agents.haps.comparison`` and printed by ``routing_gym.bench.comparison.haps_comparison``.

    python examples/compare_haps.py --train-table runs/hotpotqa_train_action_table.jsonl \
        --valid-table docs/action_tables/hotpotqa_valid_action_table.jsonl \
        --run HAPS=runs/haps_full.json --run "HAPS without LoRA=runs/haps_nolora.json" \
        --env LLMRouting-HotpotQA-Assign-v0 \
        --env-config '{"models": ["smollm2-135m", "gemma3-270m"]}' \
        --lam performance-first,balanced,cost-first

For a run without LoRA the env plays the same greedy episode as the table did, so its rows
are checked against the table (``table matches``): a mismatch means the two runs differ. For a
run with LoRA the last column counts the questions whose F1 the generated LoRA raised, lowered
or left as the table's episode of the same assignment had it.
"""

from __future__ import annotations

import argparse
import json
import sys

import routing_gym  # noqa: F401  (registers the IDs)
from agents.haps.comparison import (
    HAPSComparison,
    compared_questions,
    load_runs,
    one_shot_choices,
    parse_lams,
    table_metric,
)
from routing_gym.action_table import ActionTable
from routing_gym.bench.comparison import haps_comparison
from routing_gym.errors import RoutingGymError


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
        "--lam",
        default="balanced",
        help="λ: numbers or regime names, comma-separated (one table each)",
    )
    parser.add_argument(
        "--env",
        default=None,
        help="the live Assign env of the tables "
        "(e.g. LLMRouting-HotpotQA-Assign-v0): adds the one-shot routers",
    )
    parser.add_argument(
        "--env-config", default="{}", help="that env's config as JSON (models, data_dir, ...)"
    )
    parser.add_argument("--train-split", default="train", help="the split of --train-table")
    parser.add_argument("--valid-split", default="valid", help="the split of --valid-table")
    parser.add_argument("--seed", type=int, default=0, help="seed of the one-shot routers")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    lams = parse_lams(args.lam)
    train, valid = ActionTable.load(args.train_table), ActionTable.load(args.valid_table)
    normalizer = train.fit_cost_normalizer()  # frozen on train, as in the envs
    runs = load_runs(args.run, lams)
    questions = compared_questions(valid, runs)
    one_shot = {}
    if args.env:
        one_shot = one_shot_choices(
            args.env,
            json.loads(args.env_config),
            (args.train_split, args.valid_split),
            (train, valid),
            normalizer,
            questions,
            lams,
            args.seed,
        )
    metric = table_metric(valid)
    tables = {}
    for lam in lams:
        tables[lam] = HAPSComparison(lam, train, valid, questions, normalizer).rows(
            runs, one_shot.get(lam, {})
        )
        print("\n" + haps_comparison(lam, tables[lam], metric))
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


if __name__ == "__main__":
    try:
        main()
    except (ValueError, RoutingGymError) as exc:  # bad input: one line, no traceback
        sys.exit(f"compare_haps.py: {exc}")
