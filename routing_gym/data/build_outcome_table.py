"""Build the default outcome table from LLMRouter's released per-query outcomes.

Reads ``<data>/llmrouter/{scores_train.json, queries_train.jsonl, models.json}`` and writes
``$ROUTING_GYM_CACHE/llmrouter_outcomes.npz``: per query an id (SHA-1 of the text, 16 hex),
the task, its all-MiniLM-L6-v2 embedding (float16), the 9 models' scores and the prompt token
count from SmolLM2's tokenizer (a proxy for the models' own), plus model names and prices.
No query or answer text is written. Every row that cannot be joined or is ambiguous is counted
and reported, never dropped silently.

``load_outcome_table()`` builds it on first use (about 10 s with a warm embedding cache, a
minute cold); to build or rebuild it by hand:

    HF_HUB_OFFLINE=1 python -m routing_gym.data.build_outcome_table --data-dir <data>
"""

from __future__ import annotations

import argparse
import ast
import json
import math
import os
import string
import sys
import tempfile
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
from tqdm import tqdm

from routing_gym.data.outcome_schema import (
    PROXY_TOKENIZER_GGUF,
    TABLE_FORMAT_VERSION,
    count_prompt_tokens,
    default_table_path,
    load_prices,
    proxy_tokenizer,
    query_id,
)
from routing_gym.data.records import iter_json_records
from routing_gym.paths import data_dir
from routing_gym.retrieval.encoder import SentenceEncoder

ATTRIBUTION = "LLMRouter (ulab-uiuc), MIT, Copyright (c) 2024 U Lab @UIUC"
REPORT_KEYS = (
    "query rows read",
    "query rows repeating a text of the same task (collapsed)",
    "ambiguous question texts (several tasks)",
    "score rows read",
    "dropped: score rows repeating a question",
    "dropped: score rows with no matching query",
    "dropped: score rows whose question appears under several tasks",
    "dropped: score rows with a different model set",
    "dropped: score rows with a non-numeric or out-of-range score",
)


def render_choices(choices, metric: str) -> str:
    """The answer options as the prompt would show them (lettered lines for multiple choice)."""
    if choices is None:
        return ""
    if isinstance(choices, str):
        try:
            choices = ast.literal_eval(choices)
        except (ValueError, SyntaxError):
            return choices
    if isinstance(choices, dict):
        texts = list(choices.get("text", []))
        labels = list(choices.get("label", choices.get("labels", [])))
    else:
        texts, labels = list(choices), []
    if metric != "em_mc":  # e.g. MBPP's test asserts, shown one per line
        return "\n".join(str(t) for t in texts)
    labels = labels if len(labels) == len(texts) else list(string.ascii_uppercase[: len(texts)])
    return "\n".join(f"{label}. {text}" for label, text in zip(labels, texts))


def join_rows(root: Path) -> tuple[list[dict], list[str], dict]:
    """Join scores to queries on the question text; return rows, model order and a drop report."""
    report: Counter = Counter()
    for key in REPORT_KEYS:  # listed even when zero, so the output shows each check ran
        report[key] = 0
    by_text: dict[str, list[dict]] = defaultdict(list)
    for record in iter_json_records(root / "queries_train.jsonl"):
        report["query rows read"] += 1
        by_text[record.require("query", str)].append(record.data)
    tasks_of = {text: sorted({q["task_name"] for q in qs}) for text, qs in by_text.items()}
    report["query rows repeating a text of the same task (collapsed)"] = sum(
        len(qs) - 1 for text, qs in by_text.items() if len(tasks_of[text]) == 1
    )
    ambiguous = {text for text, tasks in tasks_of.items() if len(tasks) > 1}

    prices = load_prices(root / "models.json")
    rows, seen = [], set()
    models: list[str] | None = None
    for record in iter_json_records(root / "scores_train.json"):
        report["score rows read"] += 1
        question = record.require_text("question")
        scores = record.require("scores", dict)
        if models is None:
            # price-file order, restricted to the scored models
            models = [m for m in prices if m in scores] + sorted(
                m for m in scores if m not in prices
            )
        if question in seen:
            report["dropped: score rows repeating a question"] += 1
            continue
        seen.add(question)
        if question not in tasks_of:
            report["dropped: score rows with no matching query"] += 1
            continue
        if question in ambiguous:
            report["dropped: score rows whose question appears under several tasks"] += 1
            continue
        if set(scores) != set(models):
            report["dropped: score rows with a different model set"] += 1
            continue
        values = [scores[m] for m in models]
        if not all(
            isinstance(v, (int, float))
            and not isinstance(v, bool)
            and math.isfinite(v)
            and 0 <= v <= 1
            for v in values
        ):
            report["dropped: score rows with a non-numeric or out-of-range score"] += 1
            continue
        first = by_text[question][0]
        options = render_choices(first.get("choices"), first.get("metric", ""))
        rows.append(
            {
                "question": question,
                "task": tasks_of[question][0],
                "prompt": f"{question}\n{options}" if options else question,
                "scores": values,
            }
        )
    missing_price = [m for m in models or [] if m not in prices]
    if missing_price:
        raise SystemExit(f"models.json has no price for {missing_price}")
    report["ambiguous question texts (several tasks)"] = len(ambiguous)
    return rows, models or [], dict(report)


def build_outcome_table(
    data_root: str | os.PathLike | None = None,
    out: str | os.PathLike | None = None,
    batch_size: int = 256,
    verbose: bool = False,
) -> Path:
    """Join, embed and write the table to ``out`` (default: the cached default table).

    The file is written next to ``out`` and renamed into place, so a killed build leaves no
    half-written table.
    """
    root = data_dir(data_root) / "llmrouter"
    if not root.is_dir():
        raise FileNotFoundError(
            f"{root} does not exist: the outcome table is built from LLMRouter's files there "
            "(scores_train.json, queries_train.jsonl, models.json)."
        )
    rows, models, report = join_rows(root)
    ids = [query_id(r["question"]) for r in rows]
    if len(set(ids)) != len(ids):
        raise SystemExit(
            "query id collision: lengthen the id in routing_gym.data.outcome_schema.query_id"
        )

    encoder = SentenceEncoder()
    questions = [r["question"] for r in rows]
    chunks = []
    for start in tqdm(range(0, len(questions), batch_size), desc="embedding", unit="batch"):
        chunks.append(encoder.encode(questions[start : start + batch_size]))
    embeddings = np.concatenate(chunks).astype(np.float16)

    tokens = count_prompt_tokens([r["prompt"] for r in rows], proxy_tokenizer())
    prices = load_prices(root / "models.json")
    tasks = [r["task"] for r in rows]
    scores = np.array([r["scores"] for r in rows], dtype=np.float32)
    meta = {
        "format_version": TABLE_FORMAT_VERSION,
        "source": "LLMRouter scores_train.json joined with queries_train.jsonl on question text",
        "attribution": ATTRIBUTION,
        "encoder": encoder.name,
        "prompt_tokens": "question (+ rendered choices) tokens, "
        f"SmolLM2 tokenizer ({PROXY_TOKENIZER_GGUF}), "
        "no chat template; a proxy for each model's own tokenizer",
        "prices": "USD per 1M tokens, from models.json",
        "rows": len(rows),
        "report": report,
    }
    out = Path(out) if out is not None else default_table_path()
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=out.name, suffix=".tmp.npz")
    try:
        with os.fdopen(fd, "wb") as handle:
            np.savez_compressed(
                handle,
                ids=np.array(ids),
                tasks=np.array(tasks),
                embeddings=embeddings,
                scores=scores,
                prompt_tokens=tokens.astype(np.int32),
                models=np.array(models),
                input_price=np.array([prices[m].input_per_m for m in models]),
                output_price=np.array([prices[m].output_per_m for m in models]),
                meta=np.array(json.dumps(meta, sort_keys=True)),
            )
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    if verbose:
        print_report(report, tasks, scores, tokens, models, out)
    return out


def print_report(report, tasks, scores, tokens, models, out: Path) -> None:
    """What was kept and dropped, and per-task figures."""
    print("\nJoin report")
    for key, value in report.items():
        print(f"  {key:<66} {value:>6}")
    print(f"  {'rows written':<66} {len(tasks):>6}")
    print("\nPer task (rows, best single-model mean, oracle mean, median prompt tokens)")
    task_arr = np.array(tasks)
    for task in sorted(set(tasks)):
        sel = task_arr == task
        print(
            f"  {task:<22} {sel.sum():>5}  {scores[sel].mean(0).max():.3f}  {scores[sel].max(1).mean():.3f}"
            f"  {int(np.median(tokens[sel])):>5}"
        )
    print(f"\nModels: {', '.join(models)}")
    print(f"Best single mean {scores.mean(0).max():.4f}, oracle mean {scores.max(1).mean():.4f}")
    print(f"Wrote {out} ({out.stat().st_size / 1e6:.2f} MB)")


def main(argv: list[str] | None = None) -> int:
    """Build the table and print what was kept and dropped."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--data-dir", default=None, help="folder holding llmrouter/ (default $ROUTING_GYM_DATA)"
    )
    parser.add_argument(
        "--out", default=None, help="output .npz (default: the cached default table)"
    )
    parser.add_argument("--batch-size", type=int, default=256, help="embedding batch size")
    args = parser.parse_args(argv)
    build_outcome_table(args.data_dir, args.out, args.batch_size, verbose=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
