"""REINFORCE through the last decoder layer from the hidden states that generation computed.

With a LoRA adapter on the ``o_proj`` of the last decoder layer alone, neither the residual
stream entering that layer nor the attention output entering its ``o_proj`` depends on the
adapter: both come from the base weights of the layers before and from the last layer's own
keys, values and queries. A completion's log-probs, and their gradient with respect to the
adapter, then depend on the adapter only through

    h = resid + o_proj(attn)                    (the adapter's delta added by its hook)
    out = h + mlp(post_attention_layernorm(h))
    logits = lm_head(norm(out))

at the positions whose logits score the completion's tokens: the prompt's last position and
every generated position but the last. ``TailCapture`` keeps ``resid`` and ``attn`` at those
positions while a batch generates; ``GenerationTails`` stores them keyed by the content they
score (prompt and completion token ids, compute dtype); ``tail_logits`` rebuilds the logits
from them with autograd on. The scoring pass then prefills nothing at all.
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from typing import Sequence

import torch

#: Model types whose decoder layer is exactly the pre-norm block written above (checked
#: against transformers' Llama and Qwen2 layers); any other type scores the way it did before.
TAIL_LAYER_TYPES = ("llama", "qwen2")


def last_layer_parts(model) -> tuple[torch.nn.Module, torch.nn.Module]:
    """``(last decoder layer, its self_attn.o_proj)`` of a Llama- or Qwen2-style causal LM."""
    layer = model.model.layers[-1]
    return layer, layer.self_attn.o_proj


def tail_key(dtype: torch.dtype, prompt_ids: Sequence[int], completion_ids: Sequence[int]) -> str:
    """The content a stored tail scores: prompt and completion token ids, and the compute dtype."""
    content = json.dumps([str(dtype), [int(t) for t in prompt_ids], [int(t) for t in completion_ids]])
    return hashlib.sha256(content.encode()).hexdigest()


class TailCapture:
    """Forward pre-hooks that keep, for every forward pass, the last position's input of the last
    decoder layer (``resid``) and of its ``o_proj`` (``attn``), one row per batch row.

    Every row of a left-padded batch (and of a prefix-shared one) ends at the last column, so
    the last position is the one whose logits pick each row's next token.
    """

    def __init__(self, model):
        layer, o_proj = last_layer_parts(model)
        self.steps: list[tuple[torch.Tensor, torch.Tensor]] = []  # (batch, hidden) each
        self.step_rows: list[list[int] | None] = []  # original row of each batch row (None: all)
        self._resid: torch.Tensor | None = None
        self._handles = [
            layer.register_forward_pre_hook(self._on_layer, with_kwargs=True),
            o_proj.register_forward_pre_hook(self._on_o_proj),
        ]

    def _on_layer(self, module, args, kwargs):
        hidden = args[0] if args else kwargs["hidden_states"]
        self._resid = hidden[:, -1].clone()  # a clone: a view would keep the whole prefill alive

    def _on_o_proj(self, module, args):
        self.steps.append((self._resid, args[0][:, -1].clone()))
        self.step_rows.append(None)

    def mark_rows(self, rows: Sequence[int]) -> None:
        """Name the original rows of the last forward pass's batch (compact decode drops rows)."""
        self.step_rows[-1] = list(rows)

    def close(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def passes(self, row: int) -> int:
        """How many forward passes ran ``row``."""
        return sum(rows is None or row in rows for rows in self.step_rows)

    def row(self, row: int, count: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``(resid, attn)``, each ``(count, hidden)``, of the first ``count`` passes that ran ``row``."""
        resid, attn = [], []
        for (r, a), rows in zip(self.steps, self.step_rows):
            if len(resid) == count:
                break
            if rows is None or row in rows:
                index = row if rows is None else rows.index(row)
                resid.append(r[index])
                attn.append(a[index])
        # Generation runs under inference mode; what autograd will read must be plain tensors.
        with torch.inference_mode(False):
            return torch.stack(resid), torch.stack(attn)


class GenerationTails:
    """Captured ``(resid, attn)`` per completion, least recently used first out past ``max_bytes``.

    Hand-written as ``PrefixStore`` is: ``functools.lru_cache`` bounds entries, not bytes, and
    no byte-bounded LRU is among the dependencies.
    """

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self._entries: OrderedDict[str, tuple[torch.Tensor, torch.Tensor]] = OrderedDict()
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: str) -> bool:
        return key in self._entries

    def put(self, key: str, resid: torch.Tensor, attn: torch.Tensor) -> None:
        if key in self._entries:
            old = self._entries.pop(key)
            self._bytes -= sum(t.nbytes for t in old)
        self._entries[key] = (resid, attn)
        self._bytes += resid.nbytes + attn.nbytes
        while self._bytes > self.max_bytes and self._entries:
            _, dropped = self._entries.popitem(last=False)
            self._bytes -= sum(t.nbytes for t in dropped)

    def get(self, key: str) -> tuple[torch.Tensor, torch.Tensor] | None:
        entry = self._entries.get(key)
        if entry is not None:
            self._entries.move_to_end(key)
        return entry


def tail_logits(model, resid: torch.Tensor, attn: torch.Tensor) -> torch.Tensor:
    """Logits from the last layer's inputs ``(rows, positions, hidden)``: the graph autograd sees.

    The caller applies the rows' adapters (the injector's hooks on ``o_proj``) around this call.
    """
    layer, o_proj = last_layer_parts(model)
    hidden = resid + o_proj(attn)
    hidden = hidden + layer.mlp(layer.post_attention_layernorm(hidden))
    return model.lm_head(model.model.norm(hidden))
