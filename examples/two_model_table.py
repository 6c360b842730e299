"""Build a two-model outcome table in the documented wide CSV format, then run the curves on it.

Two sources, both real per-question outcomes:

* ``--pool-quality results/pool_quality/scores.csv``: the per-question scores of
  ``benchmarks/pool_quality.py`` (ids, tasks, scores and token counts of the built-in models).
  That file holds no question text or embedding, so each question is looked up by its id
  through the same task loaders (``routing_gym.tasks``), its prompt embedded
  with MiniLM (cached), and the embedding written instead of the text; prices are the
  built-in models' own (``--prices-out``).
* ``--table`` (default: the LLMRouter outcome table): any two of its models, with the same
  embeddings and per-query USD costs (``<model>|cost``) and the same ids, hence the same splits.

    python examples/two_model_table.py --models gemma-2-9b-it llama-3.1-nemotron-51b-instruct \\
        --out results/two_model/llmrouter_pair.csv --run
    python examples/two_model_table.py --pool-quality results/pool_quality/scores.csv \\
        --models qwen2.5-coder-0.5b qwen2.5-coder-1.5b --out results/two_model/qwen_pair.csv --run

``--run`` then runs ``routing-gym bench --curves`` on it (the one-shot routers, HierRouter and
the Oracle; ``--bench-out``), which prints RouteLLM's APGR and CPT(50%/80%), AIQ and the gap
captured, and draws the figure. The table is a derived file (numbers and ids only); it is not
part of the repository.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import numpy as np

from routing_gym.cli import main as cli
from routing_gym.data.outcome_table import load_outcome_table
from routing_gym.llm.spec import BUILTIN_SPECS
from routing_gym.retrieval.encoder import default_encoder
from routing_gym.tasks import HOP_TASKS, LoadOptions
from routing_gym.tasks.qa_tasks import HotpotQAGoldTask


def from_outcome_table(source: str | None, models: list[str], out: Path) -> tuple[Path, None]:
    """Two columns of an outcome table, with embeddings and per-query USD costs."""
    table = load_outcome_table(source)
    missing = [m for m in models if m not in table.models]
    if missing:
        raise SystemExit(
            f"{missing[0]!r} is not a model of {table.source}; it has {list(table.models)}."
        )
    columns = [table.models.index(m) for m in models]
    costs = table.costs()
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "task", "embedding", *models, *(f"{m}|cost" for m in models)])
        for r in range(len(table)):
            writer.writerow(
                [
                    table.ids[r],
                    table.tasks[r],
                    json.dumps([round(float(v), 6) for v in table.embeddings[r]]),
                ]
                + [f"{table.scores[r, j]:.4f}" for j in columns]
                + [f"{costs[r, j]:.10g}" for j in columns]
            )
    return out, None


def quality_tasks() -> dict:
    """The tasks ``benchmarks/pool_quality.py`` measures, by the name its CSV's ``task`` holds."""

    return {**HOP_TASKS, "hotpotqa_gold": HotpotQAGoldTask()}


def question_prompts(task, ids: set[str], data_dir: str | None) -> dict[str, str]:
    """The user prompt a model saw for each id (pool_quality samples test, then valid, train)."""

    found: dict[str, str] = {}
    for split in ("test", "valid", "train"):
        for example in task.load(LoadOptions(split=split, data_dir=data_dir)):
            key = str(example.id)
            if key in ids and key not in found:
                messages = task.messages(example, [], 0)
                found[key] = "\n".join(m["content"] for m in messages if m["role"] == "user")
        if len(found) == len(ids):
            break
    return found


def from_pool_quality(
    scores_csv: Path, models: list[str], out: Path, prices_out: Path, data_dir: str | None
) -> tuple[Path, Path]:
    """pool_quality's scores of two models, with each question's prompt embedding and prices."""

    with open(scores_csv, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    if not rows:
        raise SystemExit(f"{scores_csv}: no rows.")
    for model in models:
        if model not in rows[0]:
            raise SystemExit(
                f"{scores_csv}: no score column for {model!r}; columns are {list(rows[0])}."
            )
        if model not in BUILTIN_SPECS:
            raise SystemExit(f"{model!r} is not a built-in model, so it has no price.")
    tasks = quality_tasks()
    prompts: dict[tuple[str, str], str] = {}
    for name in sorted({r["task"] for r in rows}):
        if name not in tasks:
            raise SystemExit(f"{scores_csv}: unknown task {name!r}; known: {sorted(tasks)}.")
        ids = {r["id"] for r in rows if r["task"] == name}
        for key, text in question_prompts(tasks[name], ids, data_dir).items():
            prompts[(name, key)] = text
    keys = [(r["task"], r["id"]) for r in rows]
    unknown = [k for k in keys if k not in prompts]
    if unknown:
        raise SystemExit(
            f"{scores_csv}: question {unknown[0][1]!r} of {unknown[0][0]} is not in its loader."
        )
    vectors = default_encoder().encode([prompts[k] for k in keys])
    out.parent.mkdir(parents=True, exist_ok=True)
    header = ["id", "task", "embedding", *models]
    header += [f"{m}|{kind}" for kind in ("prompt_tokens", "completion_tokens") for m in models]
    with open(out, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for r, vector in zip(rows, vectors):
            writer.writerow(
                [
                    f"{r['task']}:{r['id']}",
                    r["task"],
                    json.dumps([round(float(v), 6) for v in vector]),
                ]
                + [r[m] for m in models]
                + [
                    r[f"{m}|{kind}"]
                    for kind in ("prompt_tokens", "completion_tokens")
                    for m in models
                ]
            )
    prices = {
        m: {
            "input_price": BUILTIN_SPECS[m].price.input_per_m,
            "output_price": BUILTIN_SPECS[m].price.output_per_m,
        }
        for m in models
    }
    prices_out.parent.mkdir(parents=True, exist_ok=True)
    prices_out.write_text(json.dumps(prices, indent=2) + "\n")
    return out, prices_out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs=2, required=True, metavar=("WEAK", "STRONG"))
    parser.add_argument(
        "--table", default=None, help="an outcome table (default: the LLMRouter one)"
    )
    parser.add_argument(
        "--pool-quality", default=None, help="benchmarks/pool_quality.py's scores.csv"
    )
    parser.add_argument(
        "--data-dir", default=None, help="for --pool-quality: defaults to $ROUTING_GYM_DATA"
    )
    parser.add_argument("--out", required=True, help="the two-model CSV to write")
    parser.add_argument(
        "--prices-out", default=None, help="for --pool-quality (default: next to --out)"
    )
    parser.add_argument(
        "--run", action="store_true", help="then run routing-gym bench --curves on it"
    )
    parser.add_argument(
        "--bench-out", default=None, help="bench output folder (default: next to --out)"
    )
    parser.add_argument("--seeds", nargs="+", default=["0", "1"])
    parser.add_argument(
        "--regimes",
        nargs="+",
        default=["0", "performance-first", "balanced", "cost-first"],
        help="λ regimes of the bench (λ = 0 gives the per-λ PPO's gap captured at λ = 0)",
    )
    parser.add_argument("--timesteps", default="20000", help="HierRouter PPO steps per regime")
    args = parser.parse_args(argv)
    out = Path(args.out)
    if args.pool_quality:
        prices_out = Path(args.prices_out or out.with_name(out.stem + "_prices.json"))
        table, prices = from_pool_quality(
            Path(args.pool_quality), args.models, out, prices_out, args.data_dir
        )
    else:
        table, prices = from_outcome_table(args.table, args.models, out)
    loaded = load_outcome_table(table)
    print(
        f"{table}: {len(loaded)} queries, models {list(loaded.models)}, tasks {loaded.task_names}"
    )
    for j, model in enumerate(loaded.models):
        print(f"  {model}: mean score {float(np.mean(loaded.scores[:, j])):.3f}")
    if prices:
        print(f"prices: {prices}")
    if not args.run:
        return 0

    env_config = {"table": str(table), **({"prices": str(prices)} if prices else {})}
    bench_out = args.bench_out or str(out.with_name(out.stem + "_bench"))
    return cli(
        [
            "bench",
            "--agents",
            "fixed-cheapest",
            "fixed-strongest",
            "routellm-mf",
            "irt-router",
            "knn",
            "mlp",
            "hierrouter",
            "oracle",
            "--envs",
            "LLMRouting-Table-v0",
            "--env-config",
            json.dumps(env_config),
            "--regimes",
            *args.regimes,
            "--seeds",
            *args.seeds,
            "--timesteps",
            args.timesteps,
            "--out",
            bench_out,
            "--jobs",
            "1",
            "--curves",
        ]
    )


if __name__ == "__main__":
    sys.exit(main())
