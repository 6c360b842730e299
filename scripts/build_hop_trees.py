"""Build the depth-2 hop trees of the HierRouter runs, task by task and split by split (resumable).

One tree file per (task, split), so a task's result can be reported as soon as both of its
trees are complete. Every file shares the cost bounds of the six-task config, so the trees of
different tasks can be scored and merged on one normalized cost scale.

Defaults (the sizes of the three-model HierRouter runs): the default multi-hop pool
(SmolLM2-135M, Qwen2.5-Coder-0.5B and 1.5B), depth 2, greedy; 100 train and 100 held-out
("test") queries per task. ARC-Challenge, MATH (all 5,000 problems, ``math_source="test"``)
and HumanEval have one file each and are split by id hash 50/50, which gives HumanEval 82/82
of its 164 problems (the most even split); GSM8K, MBPP and MMLU use their own splits.
Cheap tasks come first. Stop it at any time; a rerun skips the queries already written.

    python scripts/build_hop_trees.py --out-dir results/hierrouter3 --limit 100
    python scripts/build_hop_trees.py --tasks arc_challenge --splits test --limit 10
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import gymnasium as gym

import routing_gym  # noqa: F401  (registers the IDs)
from routing_gym.hop_tree import HopTree, build_hop_tree
from routing_gym.records import json_digest

TASK_ORDER = ("arc_challenge", "mmlu", "gsm8k", "mbpp", "human_eval", "math")
SHARED_CONFIG = {"fractions": {"train": 0.5, "test": 0.5}, "math_source": "test", "temperature": 0.0}


def six_task_cost_bounds(config: dict) -> dict:
    """The cost bounds the six-task env derives (the worst episode of the costliest task)."""
    env = gym.make("LLMRouting-MultiHop-v0", config={**config, "tasks": list(TASK_ORDER), "horizon": 2})
    try:
        return env.unwrapped.cost_normalizer.to_dict()
    finally:
        env.close()


def tree_path(out_dir: Path, config: dict) -> Path:
    """The file of one (task, split) tree; its name carries the digest of the whole config."""
    content = {k: v for k, v in config.items() if k not in ("cache_path", "cache_mode", "max_batch_size")}
    return out_dir / f"tree-{config['tasks'][0]}-{config['split']}-{json_digest(content)[:12]}.jsonl"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out-dir", default="results/hierrouter3")
    parser.add_argument("--tasks", default=",".join(TASK_ORDER))
    parser.add_argument("--splits", default="train,test")
    parser.add_argument("--limit", type=int, default=100, help="queries per task and split")
    parser.add_argument("--models", default=None, help="comma-separated pool (default: the multi-hop pool)")
    parser.add_argument("--queries-per-batch", type=int, default=8)
    parser.add_argument("--config", default="{}", help="further MultiHopEnv config, as JSON")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    args = parser.parse_args(argv)
    try:
        out_dir = Path(args.out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        base = {**SHARED_CONFIG, **json.loads(args.config), "limit": args.limit,
                "cache_path": str(out_dir / "responses.sqlite")}
        if args.models:
            base["models"] = args.models.split(",")
        base.setdefault("cost_bounds", six_task_cost_bounds(base))
        for task in args.tasks.split(","):
            for split in args.splits.split(","):
                config = {**base, "tasks": [task], "split": split}
                path = tree_path(out_dir, config)
                print(f"{task} / {split} -> {path}", flush=True)
                build_hop_tree(path, config, depth=2, queries_per_batch=args.queries_per_batch)
                tree = HopTree.load(path)
                print(f"{task} / {split}: {len(tree.queries)} queries complete", flush=True)
    except Exception as exc:
        if args.debug:
            raise
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
