"""A short live comparison: the fixed Teacher–Student assignments on a few real questions.

Every assignment (one model per role) of the pool answers the same questions of a live
assignment env (``LLMRouting-HotpotQA-Assign-v0`` by default) with the real models. Episodes
run through the exhaustive builder (``routing_gym.action_table.build_action_table``): all
assignments and questions in lockstep batches, every call through the response cache, so a
second run replays in seconds, and an interrupted one resumes.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

import gymnasium as gym
import numpy as np

import routing_gym  # noqa: F401  (registers the LLMRouting IDs)
from routing_gym.cost import REGIMES, routing_reward
from routing_gym.llm.spec import REAL_POOL
from routing_gym.records import json_digest
from routing_gym.stats import mean_interval

#: Protocol limits that keep a CPU run to about a minute per few questions.
CPU_PROTOCOL: dict[str, Any] = {
    "search_budget": 1,
    "student_max_new_tokens": 32,
    "teacher_max_new_tokens": 16,
}


def live_data_missing(
    split: str = "valid", data_dir: str | os.PathLike | None = None, task: str = "hotpotqa"
) -> str | None:
    """Why the live questions cannot be read (None when ``<data dir>/<task>/<split>.jsonl`` exists)."""
    from routing_gym.paths import data_dir as resolve

    try:
        root = resolve(data_dir)
    except FileNotFoundError as exc:
        return str(exc)
    folder = root / task
    if not any((folder / f"{split}{suffix}").exists() for suffix in (".jsonl", ".json")):
        return f"{folder}/{split}.jsonl not found."
    return None


def _cache_totals(path: Path) -> tuple[int, int]:
    """Hits and misses recorded in a response cache file, summed over models (0, 0 if none)."""
    if not path.exists():
        return 0, 0
    from routing_gym.llm.cache import ResponseCache

    with ResponseCache(path, mode="ro") as cache:
        stats = cache.stats()
    return sum(s["hits"] for s in stats.values()), sum(s["misses"] for s in stats.values())


def compare_assignments_live(
    questions: int = 2,
    models: Sequence[str] = tuple(REAL_POOL),
    protocol: Mapping[str, Any] | None = None,
    split: str = "valid",
    data_dir: str | os.PathLike | None = None,
    env_id: str = "LLMRouting-HotpotQA-Assign-v0",
    out_dir: str | os.PathLike = "results/demo",
    cache_path: str | os.PathLike | None = None,
    progress: bool = True,
    fresh: bool = False,
) -> dict[str, Any]:
    """Run every assignment on the first ``questions`` questions of ``split``; their mean scores.

    Returns ``{"env", "questions", "seconds", "table" (the JSONL path), "calls": {"generated",
    "cached"}, "rows": [{"student", "teacher", "perf", "cost", "usd", "tokens", "turns",
    "reward": {regime: value}}...], "oracle": {"perf", "reward": {regime: value}}}``; cost is
    normalized with the env's frozen bounds.
    """
    if questions < 1:
        raise ValueError(f"questions must be >= 1, got {questions}.")
    config: dict[str, Any] = {
        "models": list(models),
        "split": split,
        "limit": int(questions),
        "protocol": dict(CPU_PROTOCOL if protocol is None else protocol),
        "shuffle": False,
    }
    if data_dir is not None:
        config["data_dir"] = str(data_dir)
    if cache_path is not None:
        config["cache_path"] = str(cache_path)
    # one table file per setting: rows of another protocol or pool must not be resumed into it
    digest = json_digest({**config, "env": env_id})[:10]
    table_path = Path(out_dir) / f"live_{env_id}_{digest}.jsonl"

    from routing_gym.action_table import ActionTable, build_action_table
    from routing_gym.llm.cache import default_cache_path

    if fresh and table_path.exists():
        table_path.unlink()  # episodes run again (their model calls may still replay from the cache)
    cache_file = Path(cache_path) if cache_path is not None else default_cache_path()
    hits0, misses0 = _cache_totals(cache_file)
    start = time.perf_counter()
    build_action_table(env_id, table_path, config, questions_per_batch=questions, progress=progress)
    seconds = time.perf_counter() - start
    hits1, misses1 = _cache_totals(cache_file)

    env = gym.make(env_id, config=config)
    normalizer = env.unwrapped.cost_normalizer
    env.close()
    table = ActionTable.load(table_path)
    by_assignment: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row in table.rows:
        by_assignment.setdefault(tuple(row["assignment"][r] for r in table.roles), []).append(row)
    rows = []
    for key, items in sorted(by_assignment.items()):
        perf = float(np.mean([r["perf"] for r in items]))
        cost = float(np.mean([normalizer(r["cost"]) for r in items]))
        perf_ci = mean_interval([r["perf"] for r in items])
        reward_ci = {
            g: mean_interval([routing_reward(r["perf"], normalizer(r["cost"]), lam) for r in items])
            for g, lam in REGIMES.items()
        }
        rows.append(
            {
                **dict(zip(table.roles, key)),
                "perf": perf,
                "perf_ci": [perf_ci.low, perf_ci.high],
                "reward_ci": {g: [ci.low, ci.high] for g, ci in reward_ci.items()},
                "cost": cost,
                "usd": float(np.mean([r["cost"] for r in items])),
                "tokens": float(
                    np.mean([r["prompt_tokens"] + r["completion_tokens"] for r in items])
                ),
                "turns": float(np.mean([r["turns"] for r in items])),
                "episodes": len(items),
                "reward": {g: routing_reward(perf, cost, lam) for g, lam in REGIMES.items()},
            }
        )
    oracle = {"perf": table.oracle(0.0, normalizer)["perf"], "reward": {}}
    for g, lam in REGIMES.items():
        oracle["reward"][g] = table.oracle(lam, normalizer)["reward"]
    return {
        "env": env_id,
        "questions": len(table.question_ids),
        "seconds": seconds,
        "table": str(table_path),
        "calls": {"generated": max(0, misses1 - misses0), "cached": max(0, hits1 - hits0)},
        "rows": rows,
        "oracle": oracle,
    }


def live_markdown(result: Mapping[str, Any]) -> str:
    """The live comparison as a Markdown table: one line per assignment, then the oracle.

    Perf and rewards are means over the table's n questions with their 95% bootstrap interval
    (``routing_gym.stats.mean_interval``); the title line gives n.
    """
    regimes = list(REGIMES)
    header = ["Student", "Teacher", "Perf (F1) [95% CI]", "Cost (norm.)", "USD", "Tokens", "Turns"]
    header += [f"Reward {g} [95% CI]" for g in regimes]

    def cell(mean: float, bounds: Sequence[float] | None) -> str:
        if bounds is None:
            return f"{mean:.3f}"
        return f"{mean:.3f} [{bounds[0]:.3f}, {bounds[1]:.3f}]"

    lines = [
        f"n = {result.get('questions', '?')} questions, every assignment on the same ones",
        "",
        "| " + " | ".join(header) + " |",
        "|---|---|" + "---:|" * (len(header) - 2),
    ]
    for r in result["rows"]:
        lines.append(
            "| "
            + " | ".join(
                [
                    r["student"],
                    r["teacher"],
                    cell(r["perf"], r.get("perf_ci")),
                    f"{r['cost']:.3f}",
                    f"{r['usd']:.2e}",
                    f"{r['tokens']:.0f}",
                    f"{r['turns']:.1f}",
                ]
                + [cell(r["reward"][g], r.get("reward_ci", {}).get(g)) for g in regimes]
            )
            + " |"
        )
    oracle = result["oracle"]
    lines.append(
        "| "
        + " | ".join(
            ["Oracle (best per question)", "", f"{oracle['perf']:.3f}", "", "", "", ""]
            + [f"{oracle['reward'][g]:.3f}" for g in regimes]
        )
        + " |"
    )
    return "\n".join(lines)
