"""Cost of per-query LoRA injection on o_proj: batched adapters vs the base model and vs a per-row loop.

Usage:
    python benchmarks/lora_injection.py [--model smollm2-135m gemma3-270m] [--batches 1 8 32]
    python benchmarks/lora_injection.py --random-shape llama-3.1-8b      # CUDA only

For each model and batch size it times a prefill forward pass and a generation of
``--new-tokens`` tokens (KV cache, greedy), three ways:
- base: the model alone;
- lora: every row with its own rank-r adapter on the last k layers, batched (``LoRAInjector``);
- loop: the merge-free per-row loop (each row alone with its adapter). The loop costs the
  same per row at every batch size, so it is timed on ``--loop-rows`` rows and scaled.
Targets at batch 32: lora overhead <= 10% over base, lora >= 10x faster than the loop.
The loop ratio can never beat the base model's own batching gain (batch-B time vs B times
batch 1): on a GPU, where decoding is memory-bound, that gain is large; on a small CPU,
where every step is compute-bound, it is a few times at most.
Prints a table and, as its last line, one JSON object with the headline ratios.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Callable

import torch

from routing_gym.llm import REAL_POOL, LLMPool
from routing_gym.llm.lora import LoRAAdapter, LoRAInjector

# Randomly initialised models shaped like real ones, for throughput only (never for results).
RANDOM_SHAPES = {
    "llama-3.1-8b": dict(
        vocab_size=128256, hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
        num_attention_heads=32, num_key_value_heads=8, max_position_embeddings=8192, rope_theta=500000.0,
    ),
    # A small shape that runs anywhere: checks the random-shape path without a GPU.
    "tiny": dict(
        vocab_size=512, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
    ),
}
NEEDS_CUDA = {"llama-3.1-8b"}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], object], device: torch.device) -> float:
    """Wall-clock seconds of one call, waiting for the GPU when there is one."""
    sync(device)
    start = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - start


def load_real(name: str):
    backend = LLMPool([name]).backend(name)
    backend.tokenizer  # noqa: B018 - the tokenizer loads first, as in the pool
    return backend.model, backend.injector


def load_random(shape: str):
    from transformers import LlamaConfig, LlamaForCausalLM

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    config = LlamaConfig(tie_word_embeddings=False, **RANDOM_SHAPES[shape])
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)  # build 8B parameters directly in bf16 on the GPU
    try:
        with torch.device(device):
            torch.manual_seed(0)
            model = LlamaForCausalLM(config)
    finally:
        torch.set_default_dtype(previous)
    model.eval().requires_grad_(False)
    return model, LoRAInjector(model, name=f"random {shape}")


def bench_model(label: str, model, injector: LoRAInjector, args) -> list[dict]:
    device = next(model.parameters()).device
    dtype = next(model.parameters()).dtype
    vocab = model.config.vocab_size
    generator = torch.Generator().manual_seed(0)
    most = max(args.batches)
    ids_all = torch.randint(10, vocab, (most, args.prompt_tokens), generator=generator).to(device)
    adapters_all = [
        LoRAAdapter.random(injector.shapes, rank=args.rank, k=args.k, seed=i, scale=1.0, alpha=0.01,
                           dtype=dtype, device=device)
        for i in range(most)
    ]
    settings = dict(max_new_tokens=args.new_tokens, min_new_tokens=args.new_tokens, do_sample=False,
                    pad_token_id=0)

    def forward(ids, adapters=None):
        mask = torch.ones_like(ids)
        if adapters is None:
            return model(input_ids=ids, attention_mask=mask, logits_to_keep=1)
        with injector.apply(adapters):
            return model(input_ids=ids, attention_mask=mask, logits_to_keep=1)

    def generate(ids, adapters=None):
        mask = torch.ones_like(ids)
        if adapters is None:
            return model.generate(input_ids=ids, attention_mask=mask, **settings)
        with injector.apply(adapters):
            return model.generate(input_ids=ids, attention_mask=mask, **settings)

    # Matmul FLOPs per token: every Linear (lm_head included) vs the two LoRA matmuls per adapted layer.
    base_flops = sum(2 * m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear))
    lora_flops = sum(2 * args.rank * (o + i) for o, i in (injector.shapes[l] for l in adapters_all[0].layers))
    flops_share = lora_flops / base_flops

    rows = []
    with torch.inference_mode():
        for batch in sorted({1, most}):  # warm-up outside the timings (allocator, kernels)
            for fn in (forward, generate):
                fn(ids_all[:batch])
                fn(ids_all[:batch], adapters_all[:batch])
        # The loop baseline: each row alone with its adapter; per-row cost does not depend on the batch.
        loop_rows = min(args.loop_rows, most)
        loop = {}
        for mode, fn in (("forward", forward), ("generate", generate)):
            per_row = [
                min(timed(lambda i=i: fn(ids_all[i : i + 1], adapters_all[i : i + 1]), device)
                    for _ in range(args.repeats))
                for i in range(loop_rows)
            ]
            loop[mode] = statistics.mean(per_row)
        for batch in args.batches:
            ids, adapters = ids_all[:batch], adapters_all[:batch]
            for mode, fn in (("forward", forward), ("generate", generate)):
                base_times, lora_times = [], []
                for _ in range(args.repeats):  # interleaved, so drifting load hits both alike
                    base_times.append(timed(lambda: fn(ids), device))
                    lora_times.append(timed(lambda: fn(ids, adapters), device))
                # The fastest run is the one least disturbed by other work on the machine.
                base, lora = min(base_times), min(lora_times)
                loop_s = loop[mode] * batch
                rows.append({
                    "model": label, "batch": batch, "mode": mode, "base_s": base, "lora_s": lora,
                    "overhead": lora / base - 1.0, "loop_s": loop_s, "loop_rows": loop_rows,
                    "loop_speedup": loop_s / lora, "lora_flops_share": flops_share,
                })
                print(f"  {label} batch {batch} {mode}: base {base:.3f}s lora {lora:.3f}s loop {loop_s:.3f}s",
                      flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", nargs="+", default=None, help=f"pool models (default {list(REAL_POOL)})")
    parser.add_argument("--random-shape", choices=sorted(RANDOM_SHAPES), default=None,
                        help="a randomly initialised model of this shape instead of the real pool")
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 8, 32])
    parser.add_argument("--prompt-tokens", type=int, default=32)
    parser.add_argument("--new-tokens", type=int, default=16)
    parser.add_argument("--rank", type=int, default=8)
    parser.add_argument("--k", default="1", help="adapted layers: the last k, or 'all'")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--loop-rows", type=int, default=4, help="rows the per-row loop is timed on, then scaled")
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads for torch (1 is steadier on a shared machine)")
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    args.k = args.k if args.k == "all" else int(args.k)
    if args.random_shape in NEEDS_CUDA and not torch.cuda.is_available():
        parser.error(f"--random-shape {args.random_shape} needs a CUDA GPU (about 16 GB in bfloat16); "
                     "none is available here. Use --random-shape tiny to check the path on a CPU.")

    rows = []
    if args.random_shape is not None:
        model, injector = load_random(args.random_shape)
        rows += bench_model(f"random {args.random_shape}", model, injector, args)
    for name in args.model or ([] if args.random_shape else list(REAL_POOL)):
        model, injector = load_real(name)
        rows += bench_model(name, model, injector, args)

    if torch.cuda.is_available():
        device = "cuda " + torch.cuda.get_device_name()
    else:
        device = f"cpu ({torch.get_num_threads()} threads)"
    print(f"\nrank {args.rank}, k={args.k}, prompt {args.prompt_tokens} tokens, {args.new_tokens} new tokens, "
          f"{device}; loop timed on {args.loop_rows} rows and scaled to the batch")
    header = (f"{'model':<22}{'batch':>6}{'mode':>10}{'base s':>10}{'lora s':>10}{'overhead':>10}"
              f"{'loop s':>10}{'vs loop':>9}")
    print(header)
    print("-" * len(header))
    for r in rows:
        print(f"{r['model']:<22}{r['batch']:>6}{r['mode']:>10}{r['base_s']:>10.3f}{r['lora_s']:>10.3f}"
              f"{r['overhead']:>+10.1%}{r['loop_s']:>10.3f}{r['loop_speedup']:>8.1f}x")
    for model in dict.fromkeys(r["model"] for r in rows):
        share = next(r["lora_flops_share"] for r in rows if r["model"] == model)
        print(f"{model}: the LoRA matmuls add {share:.4%} to the matmul FLOPs per token")

    top = max(args.batches)
    headline: dict = {"batch": top, "rank": args.rank, "k": args.k, "device": device}
    for r in rows:
        if r["batch"] == top:
            entry = headline.setdefault(r["model"], {})
            entry[f"{r['mode']}_overhead"] = round(r["overhead"], 4)
            entry[f"{r['mode']}_vs_loop"] = round(r["loop_speedup"], 1)
            entry["lora_flops_share"] = float(f"{r['lora_flops_share']:.3g}")
    at_top = [headline[m] for m in dict.fromkeys(r["model"] for r in rows)]
    modes = ("forward", "generate")
    headline["overhead_target_met"] = all(h[f"{mode}_overhead"] <= 0.10 for h in at_top for mode in modes)
    headline["loop_target_met"] = all(h[f"{mode}_vs_loop"] >= 10 for h in at_top for mode in modes)
    print(json.dumps(headline))


if __name__ == "__main__":
    main()
