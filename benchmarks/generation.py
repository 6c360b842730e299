"""Generation throughput of every built-in real model: fp32 against bf16 at batch 1, 8 and 32,
how often their greedy outputs agree, and the cache-hit speed-up.

Usage: python benchmarks/generation.py [--models ...] [--dtypes float32 bfloat16]
                                       [--batches 1 8 32] [--new-tokens 32]

Every figure of one model comes from the same run, so the ratios (batch 32 against batch 1,
bf16 against fp32) hold on a noisy machine even where the absolute numbers drift. bf16 pays
off only where the CPU has native bf16 units (AMX or AVX512-BF16); elsewhere it is emulated.
Prints a table and, as its last line, one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

from routing_gym.llm import GenerationRequest, LLMPool
from routing_gym.llm.backends.transformers_backend import fast_bf16
from routing_gym.llm.spec import BUILTIN_SPECS, REAL_MODELS

TOPICS = ["the ocean", "a library", "mountains", "trains", "coffee", "the moon", "rivers", "music"]


def make_requests(model: str, count: int, new_tokens: int, offset: int) -> list[GenerationRequest]:
    # Distinct chat prompts so that no two rows share a cache key or a completion.
    return [
        GenerationRequest(
            model=model,
            messages=[{"role": "user", "content": f"In one paragraph, describe {TOPICS[i % len(TOPICS)]} (#{offset + i})."}],
            max_new_tokens=new_tokens,
        )
        for i in range(count)
    ]


def timed(pool: LLMPool, requests) -> tuple[float, list]:
    start = time.perf_counter()
    results = pool.generate(requests)
    return time.perf_counter() - start, results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(REAL_MODELS))
    parser.add_argument("--dtypes", nargs="+", default=["float32", "bfloat16"])
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 8, 32])
    parser.add_argument("--new-tokens", type=int, default=32)
    args = parser.parse_args()

    rows, figures = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        for model in args.models:
            base = BUILTIN_SPECS[model]
            variants = {d: replace(base, name=f"{model}-{d}", options={**base.options, "dtype": d}) for d in args.dtypes}
            pool = LLMPool(list(variants.values()), cache=Path(tmp) / f"{model}.sqlite", max_batch_size=max(args.batches))
            rates: dict[str, dict[int, float]] = {}
            outputs: dict[str, list[list[int]]] = {}
            for dtype, spec in variants.items():
                pool.generate(make_requests(spec.name, 1, 4, offset=10_000))  # load and warm up, untimed
                rates[dtype], outputs[dtype] = {}, []
                for batch in args.batches:
                    seconds, results = timed(pool, make_requests(spec.name, batch, args.new_tokens, offset=batch * 100))
                    tokens = sum(r.completion_tokens for r in results)
                    rates[dtype][batch] = tokens / seconds
                    outputs[dtype].extend(r.completion_ids for r in results)
                    rows.append((model, dtype, batch, tokens, seconds, rates[dtype][batch]))
            cold = rows[-len(args.batches)][4]
            last = variants[args.dtypes[-1]].name
            warm = sorted(timed(pool, make_requests(last, 1, args.new_tokens, offset=100))[0] for _ in range(20))[10]
            entry = {
                dtype: {f"tok_per_s_batch{b}": round(r, 2) for b, r in rates[dtype].items()} for dtype in args.dtypes
            }
            for dtype in args.dtypes:
                entry[dtype]["batch_speedup"] = round(rates[dtype][max(args.batches)] / rates[dtype][min(args.batches)], 2)
            if {"float32", "bfloat16"} <= set(args.dtypes):
                entry["bf16_over_fp32"] = {
                    f"batch{b}": round(rates["bfloat16"][b] / rates["float32"][b], 2) for b in args.batches
                }
                pairs = list(zip(outputs["float32"], outputs["bfloat16"]))
                entry["greedy_agreement"] = round(sum(a == b for a, b in pairs) / len(pairs), 3)
            entry["cache_speedup"] = round(cold / warm, 1)
            figures[model] = entry
            pool.close()

    print(f"{'model':<22}{'dtype':>10}{'batch':>7}{'tokens':>8}{'seconds':>10}{'tok/s':>9}")
    for model, dtype, batch, tokens, seconds, rate in rows:
        print(f"{model:<22}{dtype:>10}{batch:>7}{tokens:>8}{seconds:>10.2f}{rate:>9.1f}")
    print()
    print(f"{'model':<22}{'bf16/fp32 by batch':>32}{'greedy agree':>14}{'cache speed-up':>16}")
    for model, entry in figures.items():
        ratio = " ".join(f"{k}:{v:.2f}x" for k, v in entry.get("bf16_over_fp32", {}).items())
        agree = entry.get("greedy_agreement", float("nan"))
        print(f"{model:<22}{ratio:>32}{agree:>14.3f}{entry['cache_speedup']:>15.0f}x")
    print(
        json.dumps(
            {
                "benchmark": "generation",
                "new_tokens": args.new_tokens,
                "threads": torch.get_num_threads(),
                "cpu_native_bf16": fast_bf16(torch.device("cpu")),
                "models": figures,
            }
        )
    )


if __name__ == "__main__":
    main()
