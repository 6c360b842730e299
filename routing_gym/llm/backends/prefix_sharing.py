"""Prefill a shared prompt prefix once per batch instead of once per row.

The rows of one generation batch often start alike: every Student turn of a dialogue opens
with the same system prompt, and every turn on one question repeats the question. On a CPU,
prefilling those tokens dominates a turn's time. Here each row gets the longest prefix it
shares with another row of its batch (at least ``min_tokens``), each distinct prefix is
prefilled once, and the batch is laid out as::

    [pad ... prefix_i][pad ... rest_i]

with the prefixes' keys and values as the cache of the first part. Positions come from the
attention mask, so every real token keeps the position it has in the plain left-padded
batch. A ``PrefixStore`` keeps computed prefixes across calls (the next turn of a dialogue
repeats the same system prompt and question), and extends a stored prefix rather than
prefilling a longer one from scratch. transformers has the pieces (a pre-filled
``DynamicCache`` passed to ``generate``) but no per-row prefix grouping, hence this module.
"""

from __future__ import annotations

from collections import OrderedDict
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


KeyValues = list[tuple[torch.Tensor, torch.Tensor]]  # per layer: (keys, values), batch 1


class PrefixStore:
    """Keys and values of prompt prefixes, least recently used first out past ``max_bytes``."""

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self._entries: OrderedDict[tuple[int, ...], KeyValues] = OrderedDict()
        self._bytes = 0
        self.prefilled_tokens = 0  # tokens run through the model to fill the store
        self.hits = 0

    def __len__(self) -> int:
        return len(self._entries)

    def longest(self, prompt: Sequence[int]) -> int:
        """The length of the longest stored prefix of ``prompt`` that leaves a token to run."""
        prompt = tuple(prompt)
        return max((len(k) for k in self._entries if len(k) < len(prompt) and prompt[: len(k)] == k), default=0)

    @torch.inference_mode()
    def get(self, model, prefix: tuple[int, ...], device, keep: bool = True) -> KeyValues:
        """The prefix's keys and values: stored, or the longest stored prefix of it extended.

        ``keep=False`` computes a prefix without storing it (one that no later call repeats).
        """
        from transformers import DynamicCache

        if prefix in self._entries:
            self._entries.move_to_end(prefix)
            self.hits += 1
            return self._entries[prefix]
        start = self.longest(prefix)
        # logits_to_keep=1: a prefix needs keys and values, not a 150k-vocabulary row per token
        kwargs = {"use_cache": True, "logits_to_keep": 1}
        if start:
            # update() concatenates into new tensors, so the stored entry stays as it is
            kwargs["cache"] = DynamicCache(ddp_cache_data=self._entries[prefix[:start]], config=model.config)
        out = model(input_ids=torch.tensor([prefix[start:]], device=device), **kwargs)
        self.prefilled_tokens += len(prefix) - start
        entry = [(layer.keys, layer.values) for layer in out.cache.layers]
        if not keep:
            return entry
        self._entries[prefix] = entry
        self._bytes += sum(k.nbytes + v.nbytes for k, v in entry)
        while self._bytes > self.max_bytes and len(self._entries) > 1:
            _, dropped = self._entries.popitem(last=False)
            self._bytes -= sum(k.nbytes + v.nbytes for k, v in dropped)
        return entry


@torch.inference_mode()
def prefilled_batch(model, prompts: Sequence[Sequence[int]], lengths: Sequence[int], pad_id: int, device,
                    store: PrefixStore, keep: bool = True):
    """``(input_ids, attention_mask, cache)`` for ``generate``, with each row's prefix of
    ``lengths[i]`` tokens already in ``cache`` (a DynamicCache), taken from ``store``
    (``keep=False``: prefixes it lacks are computed but not stored)."""
    from transformers import DynamicCache

    layers: dict[tuple[int, ...], KeyValues] = {}
    for prompt, length in zip(prompts, lengths):
        key = tuple(prompt[:length])
        if length and key not in layers:
            layers[key] = store.get(model, key, device, keep=keep)
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


def rest_positions(mask: torch.Tensor, head: int) -> torch.Tensor:
    """Position ids of the tokens after the prefix part of a ``prefilled_batch`` layout, counted
    over real tokens only (``generate`` derives the same from the mask; a plain forward needs them)."""
    return (mask.cumsum(-1) - 1).clamp(min=0)[:, head:]
