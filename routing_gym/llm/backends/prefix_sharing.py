"""Prefill a shared prompt prefix once per batch instead of once per row.

The rows of one generation batch often start alike: every Student turn of a dialogue opens
with the same system prompt, and every turn on one question repeats the question. On a CPU,
prefilling those tokens dominates a turn's time. Here each row gets the longest prefix it
shares with another row of its batch (at least ``min_tokens``), each distinct prefix is
prefilled once, and the batch is laid out as::

    [pad ... prefix_i][pad ... rest_i]

with the prefixes' keys and values as the cache of the first part. Positions come from the
attention mask, so every real token keeps the position it has in the plain left-padded
batch. transformers has the pieces (a pre-filled ``DynamicCache`` passed to ``generate``)
but no per-row prefix grouping, hence this module.
"""

from __future__ import annotations

from typing import Sequence

import torch

#: Model types whose attention is full (no sliding window) and whose cache is a plain
#: DynamicCache: a stored prefix is then valid at any batch position.
SUPPORTED_MODEL_TYPES = ("llama", "qwen2")


def _common_length(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n


def shared_prefix_lengths(prompts: Sequence[Sequence[int]], min_tokens: int = 32) -> list[int]:
    """Per row, the longest prefix it shares with another row (0 if under ``min_tokens``).

    At least one token of every row is left out, since generation must run on it.
    """
    order = sorted(range(len(prompts)), key=lambda i: list(prompts[i]))
    best = [0] * len(prompts)
    for a, b in zip(order, order[1:]):  # in sorted order, a row's best partner is a neighbour
        common = _common_length(prompts[a], prompts[b])
        best[a], best[b] = max(best[a], common), max(best[b], common)
    lengths = [min(length, len(prompts[i]) - 1) for i, length in enumerate(best)]
    return [length if length >= min_tokens else 0 for length in lengths]


@torch.inference_mode()
def prefilled_batch(model, prompts: Sequence[Sequence[int]], lengths: Sequence[int], pad_id: int, device):
    """``(input_ids, attention_mask, cache)`` for ``generate``, with each row's prefix of
    ``lengths[i]`` tokens already in ``cache`` (a DynamicCache)."""
    from transformers import DynamicCache

    layers: dict[tuple[int, ...], list[tuple[torch.Tensor, torch.Tensor]]] = {}
    for prompt, length in zip(prompts, lengths):
        key = tuple(prompt[:length])
        if length and key not in layers:
            # logits_to_keep=1: the prefix needs keys and values, not a 150k-vocabulary row per token
            out = model(input_ids=torch.tensor([key], device=device), use_cache=True, logits_to_keep=1)
            layers[key] = [(layer.keys, layer.values) for layer in out.cache.layers]
    head = max(lengths)
    tail = max(len(p) - n for p, n in zip(prompts, lengths))
    rows = len(prompts)
    input_ids = torch.full((rows, head + tail), pad_id, dtype=torch.long)
    mask = torch.zeros((rows, head + tail), dtype=torch.long)
    for row, (prompt, length) in enumerate(zip(prompts, lengths)):
        rest = prompt[length:]
        input_ids[row, head - length : head] = torch.tensor(prompt[:length], dtype=torch.long)
        mask[row, head - length : head] = 1
        input_ids[row, head + tail - len(rest) :] = torch.tensor(rest, dtype=torch.long)
        mask[row, head + tail - len(rest) :] = 1
    sample = next(iter(layers.values()))
    cache_data = []
    for index, (keys, values) in enumerate(sample):
        shape = (rows, keys.shape[1], head, keys.shape[3])
        k = torch.zeros(shape, dtype=keys.dtype, device=keys.device)
        v = torch.zeros((rows, values.shape[1], head, values.shape[3]), dtype=values.dtype, device=values.device)
        for row, (prompt, length) in enumerate(zip(prompts, lengths)):
            if length:
                stored_k, stored_v = layers[tuple(prompt[:length])][index]
                k[row, :, head - length :] = stored_k[0]
                v[row, :, head - length :] = stored_v[0]
        cache_data.append((k, v))
    return input_ids.to(device), mask.to(device), DynamicCache(ddp_cache_data=cache_data, config=model.config)
