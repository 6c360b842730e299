"""Hand-made hop tree files of the fixture queries, in the layout scripts/build_hop_trees.py writes
(one task and split per file): the folder loader and the three-model report read them without a
model run. Scores and costs follow simple rules, so a test can work out what a router earns."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np

from routing_gym.hop_tree import TREE_FORMAT, HopTree, encode_vector, expected_question_ids
from routing_gym.records import json_digest
from routing_gym.retrieval.encoder import EMBEDDING_DIM

FIXTURES = Path(__file__).resolve().parent / "data" / "fixtures"
MODELS = ("tiny-llama", "tiny-qwen2")
PRICES = {
    "tiny-llama": {"input_per_m": 0.01, "output_per_m": 0.02},
    "tiny-qwen2": {"input_per_m": 0.02, "output_per_m": 0.04},
}
COST_BOUNDS = {"low": 0.0, "high": 4.0}
#: Per model index: the cost of one hop (the second model is the dearer one).
HOP_COST = (1.0, 2.0)


def tree_config(task: str, split: str, limit: int = 3, **changes) -> dict:
    """A header config as the builder records it (the fixture data, the tiny models)."""
    config = {
        "models": list(MODELS),
        "tasks": [task],
        "split": split,
        "splits": {},
        "fractions": {"train": 0.5, "test": 0.5},
        "limit": limit,
        "temperature": 0.0,
        "max_new_tokens": 8,
        "response_chars": 1500,
        "math_source": "test",
        "mmlu_subjects": None,
        "mbpp_variant": "full",
        "sandbox": None,
        "model_ids": {m: f"{m}@test" for m in MODELS},
        "prices": PRICES,
    }
    return {**config, **changes}


def score_of(position: int, path: tuple[int, ...]) -> float:
    """The larger model answers every query right; the small one only every other query."""
    return 1.0 if path[-1] == 1 or position % 2 == 0 else 0.0


def tree_rows(config: dict, depth: int = 2, drop: int = 0) -> list[dict]:
    """Rows of every query the config asks for, less the last ``drop``."""
    task = config["tasks"][0]
    expected = expected_question_ids(config, task, str(FIXTURES))
    rows = []
    for position, (question, digest) in enumerate(list(expected.items())[: len(expected) - drop]):
        rng = np.random.default_rng(position)
        root = rng.uniform(-1, 1, EMBEDDING_DIM)
        nodes = [_node((), root, 0.0, 0.0)]
        for length in range(1, depth + 1):
            for path in itertools.product(range(len(MODELS)), repeat=length):
                context = np.clip(root + 0.1 * len(path), -1, 1)
                cost = sum(HOP_COST[i] for i in path)
                nodes.append(_node(path, context, cost, score_of(position, path)))
        rows.append(
            {
                "question_id": question,
                "question_digest": digest,
                "task": task,
                "index": position,
                "question_chars": 40 + 10 * position,
                "nodes": nodes,
            }
        )
    return rows


def _node(path, context, cost, score) -> dict:
    return {
        "path": list(path),
        "context": encode_vector(context),
        "cost": float(cost),
        "prompt_tokens": 10 * len(path),
        "completion_tokens": 2 * len(path),
        "score": score,
        "answer": None,
        "details": {},
    }


def write_tree(
    folder: Path,
    task: str,
    split: str,
    *,
    depth: int = 2,
    drop: int = 0,
    cost_bounds: dict | None = None,
    name: str | None = None,
    **changes,
) -> Path:
    """Write one (task, split) tree file into ``folder``; returns its path."""
    config = tree_config(task, split, **changes)
    header = {
        "format": TREE_FORMAT,
        "depth": depth,
        "config": config,
        "config_digest": json_digest(config),
        "cost_bounds": cost_bounds or COST_BOUNDS,
    }
    path = folder / (name or f"tree-{task}-{split}-{json_digest(config)[:12]}.jsonl")
    return HopTree(header, tree_rows(config, depth, drop)).write(path)
