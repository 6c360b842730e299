"""Aggregate generation throughput of the real pool at batch 1, 8 and 32, and the cache-hit speed-up.

Usage: python benchmarks/generation.py [--models smollm2-135m gemma3-270m] [--new-tokens 32]

Prints a table and, as its last line, one JSON object with the headline figures.
Targets: SmolLM2 batch 32 reaches >= 8x the tokens/s of batch 1; a warm-cache call is
>= 1000x faster than the same call cold.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from routing_gym.llm import REAL_POOL, GenerationRequest, LLMPool

TOPICS = ["the ocean", "a library", "mountains", "trains", "coffee", "the moon", "rivers", "music"]


def make_requests(model: str, count: int, new_tokens: int, offset: int) -> list[GenerationRequest]:
    # Distinct prompts so that no two rows share a cache key or a completion.
    return [
        GenerationRequest(
            model=model,
            prompt=f"Story {offset + i}: a short paragraph about {TOPICS[i % len(TOPICS)]}. Once upon a time,",
            max_new_tokens=new_tokens,
        )
        for i in range(count)
    ]


def timed(pool: LLMPool, requests) -> tuple[float, int]:
    start = time.perf_counter()
    results = pool.generate(requests)
    return time.perf_counter() - start, sum(r.completion_tokens for r in results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(REAL_POOL))
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 8, 32])
    parser.add_argument("--new-tokens", type=int, default=32)
    args = parser.parse_args()
    torch.set_num_threads(torch.get_num_threads())

    rows, headline = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        pool = LLMPool(args.models, cache=Path(tmp) / "bench.sqlite", max_batch_size=max(args.batches))
        for model in args.models:
            pool.generate(make_requests(model, 1, 4, offset=10_000))  # load and warm up outside the timings
            rates = {}
            for batch in args.batches:
                seconds, tokens = timed(pool, make_requests(model, batch, args.new_tokens, offset=batch * 100))
                rates[batch] = tokens / seconds
                rows.append((model, batch, tokens, seconds, rates[batch]))
            # The batch-1 request above is now cached: replay it and compare.
            cold_seconds = rows[-len(args.batches)][3]
            warm = [timed(pool, make_requests(model, 1, args.new_tokens, offset=100))[0] for _ in range(20)]
            warm_seconds = sorted(warm)[len(warm) // 2]
            headline[model] = {
                **{f"tok_per_s_batch{b}": round(r, 1) for b, r in rates.items()},
                "batch_speedup": round(rates[max(args.batches)] / rates[min(args.batches)], 2),
                "cold_call_s": round(cold_seconds, 4),
                "warm_call_s": round(warm_seconds, 6),
                "cache_speedup": round(cold_seconds / warm_seconds, 1),
            }
        pool.close()

    print(f"{'model':<16}{'batch':>6}{'tokens':>8}{'seconds':>10}{'tok/s':>10}")
    for model, batch, tokens, seconds, rate in rows:
        print(f"{model:<16}{batch:>6}{tokens:>8}{seconds:>10.2f}{rate:>10.1f}")
    print()
    print(f"{'model':<16}{'batch speed-up':>16}{'cold call s':>13}{'warm call s':>13}{'cache speed-up':>16}")
    for model, h in headline.items():
        print(f"{model:<16}{h['batch_speedup']:>15.1f}x{h['cold_call_s']:>13.3f}{h['warm_call_s']:>13.5f}"
              f"{h['cache_speedup']:>15.0f}x")
    print(json.dumps({"benchmark": "generation", "new_tokens": args.new_tokens, "threads": torch.get_num_threads(),
                      "models": headline}))


if __name__ == "__main__":
    main()
