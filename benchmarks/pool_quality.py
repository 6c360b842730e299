"""How well each built-in model does each task, with the project's own prompts and scorers.

Usage: python benchmarks/pool_quality.py [--models ...] [--tasks ...] [--sample 50] [--seed 0]
                                         [--out results/pool_quality] [--batch-size 16]

For every (model, task) it answers a fixed seeded sample of held-out questions greedily
with the multi-hop env's one-hop prompts and scorers (``routing_gym.tasks``): GSM8K (final
number), MATH-500 (math-verify), ARC-Challenge and MMLU (the letter after "Answer:", asked for
on the first line), HumanEval and MBPP (pass@1 in the sandbox), plus HotpotQA with its
gold paragraphs (token F1). Every call goes through the response
cache in ``--out``, so an interrupted run resumes where it stopped and a finished one replays
in seconds. Per-question scores and tokens are written to ``--out/scores.csv`` (ids and
numbers only, no text); ``examples/two_model_table.py --pool-quality`` adds the question
embeddings and turns it into a bring-your-own outcome table for ``bench --curves``.

Prints the table (mean score per model and task, with the sample size), then per task each
model's mean with its 95% interval and its paired difference from the reference model (the
priciest model of ``--models``, named before the scores are seen; exact McNemar p on the 0/1
tasks), and, as its last line, one JSON object.

``--paired-with CSV`` compares each llama.cpp twin (``<model>-llamacpp``) with its torch model's
column of a committed ``scores.csv`` over the same questions (paired difference, 95% bootstrap
interval, exact McNemar on 0/1 tasks)::

    python benchmarks/pool_quality.py --models qwen2.5-coder-0.5b-llamacpp --tasks arc_challenge mmlu \
        --sample 40 --paired-with docs/pool_quality/scores_n50.csv
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import time
from pathlib import Path

from tqdm.auto import tqdm

from routing_gym.bench.comparison import pool_quality_tables
from routing_gym.llm import GenerationRequest, LLMPool
from routing_gym.llm.spec import REAL_MODELS
from routing_gym.tasks import HOP_TASKS, HopTask, LoadOptions
from routing_gym.tasks.qa_tasks import HotpotQAGoldTask

#: The six multi-hop tasks plus HotpotQA with its gold paragraphs, with the same prompts and scorers.
QUALITY_TASKS: dict[str, HopTask] = {**HOP_TASKS, "hotpotqa_gold": HotpotQAGoldTask()}


def sample_examples(task: HopTask, sample: int, seed: int, data_dir) -> list:
    """A fixed seeded sample of held-out examples: the test split first, topped up from valid, then train."""
    pool, seen = [], set()
    for split in ("test", "valid", "train"):
        for example in task.load(LoadOptions(split=split, data_dir=data_dir)):
            if example.id not in seen:
                seen.add(example.id)
                pool.append(example)
        if len(pool) >= sample:
            break
    # A seeded shuffle, then a prefix: a smaller sample is part of a larger one, so raising
    # --sample reuses every cached answer.
    pool.sort(key=lambda e: str(e.id))
    random.Random(f"{task.name}:{seed}").shuffle(pool)
    return sorted(pool[:sample], key=lambda e: str(e.id))


def run_task(pool: LLMPool, task: HopTask, examples, model: str) -> list[dict]:
    """Answer every example with ``model`` in one batched pool call; one row per example."""
    requests = [
        GenerationRequest(model=model, messages=task.messages(e, [], 0), max_new_tokens=task.max_new_tokens)
        for e in examples
    ]
    rows = []
    for example, result in zip(examples, pool.generate(requests)):
        rows.append(
            {
                "id": str(example.id),
                "score": task.score(result.text, example).value,
                "prompt_tokens": result.prompt_tokens,
                "completion_tokens": result.completion_tokens,
                "cost": result.cost,
                "cached": result.cached,
            }
        )
    return rows


def write_scores_csv(path: Path, per_task: dict[str, dict[str, list[dict]]], models: list[str]) -> None:
    """Per-question outcomes in the wide outcome-table format (numbers and ids only)."""
    header = ["id", "task"] + models
    header += [f"{m}|prompt_tokens" for m in models] + [f"{m}|completion_tokens" for m in models]
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for task, by_model in per_task.items():
            if not all(m in by_model for m in models):
                continue  # a task some model has not answered would leave holes
            by_id = {m: {r["id"]: r for r in by_model[m]} for m in models}
            for qid in sorted(by_id[models[0]]):
                rows = [by_id[m][qid] for m in models]
                writer.writerow(
                    [qid, task]
                    + [f"{r['score']:.4f}" for r in rows]
                    + [r["prompt_tokens"] for r in rows]
                    + [r["completion_tokens"] for r in rows]
                )
    os.replace(tmp, path)


def reference_model(models: list[str]) -> str:
    """The model the others are compared with: the priciest (by output price), fixed a priori."""
    from routing_gym.llm.spec import resolve_spec

    return max(models, key=lambda m: (resolve_spec(m).price.output_per_m, m))


def score_rows(
    per_task: dict[str, dict[str, list[dict]]], models: list[str]
) -> list[dict[str, str]]:
    """The lines ``write_scores_csv`` writes (id, task, one score per model), as dicts."""
    rows = []
    for task, by_model in per_task.items():
        if not all(m in by_model for m in models):
            continue
        by_id = {m: {r["id"]: r for r in by_model[m]} for m in models}
        for qid in sorted(by_id[models[0]]):
            scores = {m: f"{by_id[m][qid]['score']:.4f}" for m in models}  # as scores.csv has them
            rows.append({"id": qid, "task": task, **scores})
    return rows


def paired_with_committed(per_task: dict[str, dict[str, list[dict]]], models: list[str], path: Path) -> list[dict]:
    """Each llama.cpp twin against its torch model's column of the committed scores in ``path``,
    paired over the questions both hold; prints a table and returns its rows."""
    from routing_gym.llm.spec import LLAMA_CPP_SUFFIX
    from routing_gym.stats import difference_cell, mcnemar_exact, paired_difference_interval

    with open(path, newline="", encoding="utf-8") as handle:
        committed_rows = list(csv.DictReader(handle))
    columns = set(committed_rows[0]) if committed_rows else set()
    print(f"\nThe llama.cpp path against the committed torch scores of {path} (same questions, paired):\n")
    print("| model | task | n | torch | llama.cpp | Δ llama.cpp − torch [95% CI] | McNemar exact p (only llama.cpp / only torch) |")
    print("|---|---|---:|---:|---:|---:|---|")
    out = []
    for model in models:
        base = model.removesuffix(LLAMA_CPP_SUFFIX)
        if base == model or base not in columns:
            continue
        for task, by_model in per_task.items():
            if model not in by_model:
                continue
            committed = {r["id"]: float(r[base]) for r in committed_rows if r["task"] == task}
            mine = {r["id"]: float(f"{r['score']:.4f}") for r in by_model[model]}  # as scores.csv rounds
            common = sorted(set(mine) & set(committed))
            if len(common) < 2:
                continue
            llama, torch_ = [mine[i] for i in common], [committed[i] for i in common]
            diff = paired_difference_interval(llama, torch_)
            binary = all(v in (0.0, 1.0) for v in llama + torch_)
            test = mcnemar_exact(llama, torch_) if binary else None
            cell = f"{test.pvalue:.3g} ({test.only_a} / {test.only_b})" if test else ""
            print(f"| {model} | {task} | {len(common)} | {sum(torch_) / len(common):.3f} | "
                  f"{sum(llama) / len(common):.3f} | {difference_cell(diff)} | {cell} |")
            out.append({"model": model, "task": task, "n": len(common), "torch": sum(torch_) / len(common),
                        "llama_cpp": sum(llama) / len(common), "diff": diff.estimate, "low": diff.low,
                        "high": diff.high, "mcnemar_p": test.pvalue if test else None})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(REAL_MODELS))
    parser.add_argument("--tasks", nargs="+", default=list(QUALITY_TASKS), choices=list(QUALITY_TASKS))
    parser.add_argument("--sample", type=int, default=50, help="questions per task (fixed seeded sample)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--data-dir", default=None, help="defaults to $ROUTING_GYM_DATA")
    parser.add_argument("--out", default="results/pool_quality")
    parser.add_argument("--paired-with", default=None, metavar="CSV",
                        help="committed scores.csv to pair each <model>-llamacpp with its torch model's column")
    args = parser.parse_args()

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    pool = LLMPool(args.models, cache=out / "responses.sqlite", max_batch_size=args.batch_size)
    per_task: dict[str, dict[str, list[dict]]] = {}
    skipped: dict[str, str] = {}
    seconds: dict[str, dict[str, float]] = {}
    jobs = [(task, model) for task in args.tasks for model in args.models]
    items_of: dict[str, list] = {}
    with tqdm(jobs, desc="pool quality", unit="run") as bar:
        for task_name, model in bar:
            bar.set_postfix_str(f"{model} / {task_name}")
            if task_name in skipped:
                continue
            task = QUALITY_TASKS[task_name]
            if task_name not in items_of:
                try:
                    items_of[task_name] = sample_examples(task, args.sample, args.seed, args.data_dir)
                except FileNotFoundError as exc:
                    skipped[task_name] = f"not measured: {exc}"
                    continue
            start = time.perf_counter()
            rows = run_task(pool, task, items_of[task_name], model)
            seconds.setdefault(task_name, {})[model] = time.perf_counter() - start
            per_task.setdefault(task_name, {})[model] = rows
            with open(out / "runs.jsonl", "a", encoding="utf-8") as log:
                log.write(json.dumps({"task": task_name, "model": model, "rows": rows}) + "\n")
            write_scores_csv(out / "scores.csv", per_task, args.models)
    pool.close()

    table = {
        model: {
            task: round(sum(r["score"] for r in per_task[task][model]) / len(per_task[task][model]), 3)
            for task in args.tasks
            if task in per_task and model in per_task[task]
        }
        for model in args.models
    }
    widths = max(len(m) for m in args.models) + 2
    print(f"\n{'model':<{widths}}" + "".join(f"{t:>15}" for t in args.tasks))
    for model in args.models:
        cells = [f"{table[model][t]:>15.3f}" if t in table[model] else f"{'not measured':>15}" for t in args.tasks]
        print(f"{model:<{widths}}" + "".join(cells))
    print("n per task: " + ", ".join(f"{t}={len(items_of.get(t, []))}" for t in args.tasks))
    reference = reference_model(args.models)
    print(f"\nPer task, with 95% intervals; reference {reference} (the priciest model):\n")
    print(pool_quality_tables(score_rows(per_task, args.models), args.models, reference))
    for task, why in skipped.items():
        print(f"{task}: {why}")
    paired = paired_with_committed(per_task, args.models, Path(args.paired_with)) if args.paired_with else []
    print(
        json.dumps(
            {
                "benchmark": "pool_quality",
                "sample": args.sample,
                "seed": args.seed,
                "n": {t: len(items_of.get(t, [])) for t in args.tasks},
                "scores": table,
                "not_measured": skipped,
                "seconds": {t: {m: round(s, 1) for m, s in v.items()} for t, v in seconds.items()},
                "scores_csv": str(out / "scores.csv"),
                "paired_with_committed": paired,
            }
        )
    )


if __name__ == "__main__":
    main()
