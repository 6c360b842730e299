"""HAPS's networks: the backbone that embeds the routing prompt, the high-level head over the
joint assignments, and one LoRA generator per open model."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch
from torch import nn

from agents.haps.config import HAPSConfig
from agents.haps.layout import HybridLayout
from routing_gym.llm.lora import LoRAAdapter


class PromptEncoder:
    """A transformers model that embeds texts: the masked mean of its last hidden state.

    Not an ``nn.Module`` on purpose: a frozen backbone is the pool's shared model and must
    stay out of the agent's parameters and state dicts.
    """

    def __init__(
        self,
        model: nn.Module,
        tokenizer: Any,
        max_tokens: int,
        trainable: bool,
        device: torch.device,
    ):
        self.model = model
        self.tokenizer = tokenizer
        self.max_tokens = max_tokens
        self.trainable = trainable
        self.device = device
        self.dim = int(model.get_input_embeddings().embedding_dim)
        self._cache: dict[str, torch.Tensor] = {}

    @classmethod
    def load(
        cls, source: str, max_tokens: int, trainable: bool, device: torch.device
    ) -> "PromptEncoder":
        """A built-in model name (the pool's loaded copy) or a transformers folder."""
        from routing_gym.llm.spec import BUILTIN_SPECS

        if source in BUILTIN_SPECS:
            from routing_gym.llm.pool import LLMPool

            model, tokenizer = LLMPool([source]).white_box_model(source)
        elif Path(source).is_dir():
            from transformers import AutoModel, AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(source)
            model = AutoModel.from_pretrained(source)
        else:
            raise ValueError(
                f"HAPSConfig key 'backbone': {source!r} is neither a built-in model "
                f"({sorted(BUILTIN_SPECS)}) nor a transformers folder."
            )
        if trainable:
            # The pool's model is shared by every env in the process: train a copy, in float32.
            model = copy.deepcopy(model).float().to(device)
            model.requires_grad_(True)
        return cls(model, tokenizer, max_tokens, trainable, device)

    def copy_trainable(self) -> "PromptEncoder":
        """A separate trainable copy (the generators' backbone when parameters are not shared)."""
        model = copy.deepcopy(self.model).float().to(self.device).requires_grad_(True)
        return PromptEncoder(model, self.tokenizer, self.max_tokens, True, self.device)

    def _batch(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        ids = self.tokenizer(list(texts), add_special_tokens=True)["input_ids"]
        # Keep the end: the question and the candidate models come last.
        ids = [row[-self.max_tokens :] for row in ids]
        width = max(len(row) for row in ids)
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        input_ids = torch.full((len(ids), width), pad, dtype=torch.long)
        mask = torch.zeros((len(ids), width), dtype=torch.long)
        for i, row in enumerate(ids):  # right padding: causal attention never sees the pads
            input_ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
            mask[i, : len(row)] = 1
        return input_ids, mask

    def _forward(self, texts: Sequence[str]) -> torch.Tensor:
        input_ids, mask = self._batch(texts)
        model_device = next(self.model.parameters()).device
        input_ids, mask = input_ids.to(model_device), mask.to(model_device)
        base = getattr(self.model, "base_model", self.model)  # skip a causal LM's vocabulary head
        hidden = base(input_ids=input_ids, attention_mask=mask).last_hidden_state.float()
        weights = mask.unsqueeze(-1).to(hidden.dtype)
        return ((hidden * weights).sum(1) / weights.sum(1).clamp(min=1.0)).to(self.device)

    def encode(self, texts: Sequence[str], batch_size: int = 16) -> torch.Tensor:
        """``(n, dim)`` features: frozen ones cached per text, trainable ones with gradients."""
        if self.trainable:
            return torch.cat(
                [self._forward(texts[s : s + batch_size]) for s in range(0, len(texts), batch_size)]
            )
        missing = list(dict.fromkeys(t for t in texts if t not in self._cache))
        with torch.no_grad():
            for start in range(0, len(missing), batch_size):
                chunk = missing[start : start + batch_size]
                for text, row in zip(chunk, self._forward(chunk)):
                    self._cache[text] = row.detach()
        return torch.stack([self._cache[t] for t in texts])


def mlp(inp: int, hidden: int, out: int | None = None) -> nn.Sequential:
    """Two hidden layers of ``hidden`` units (GELU), then an optional linear output."""
    layers: list[nn.Module] = [
        nn.Linear(inp, hidden),
        nn.GELU(),
        nn.Linear(hidden, hidden),
        nn.GELU(),
    ]
    if out is not None:
        layers.append(nn.Linear(hidden, out))
    return nn.Sequential(*layers)


class LoRAGenerator(nn.Module):
    """One open model's low level: features → flat [-1, 1] vector of every layer's (A, B)."""

    def __init__(
        self,
        features: int,
        hidden: int,
        shapes: Mapping[int, tuple[int, int]],
        rank: int,
        zero_a: bool,
    ):
        super().__init__()
        self.layers = list(shapes)
        self.shapes = {layer: tuple(shapes[layer]) for layer in self.layers}
        self.rank = rank
        self.trunk = mlp(features, hidden)
        self.a_heads = nn.ModuleList(
            nn.Linear(hidden, out * rank) for out, _ in self.shapes.values()
        )
        self.b_heads = nn.ModuleList(
            nn.Linear(hidden, rank * inp) for _, inp in self.shapes.values()
        )
        if zero_a:
            for head in self.a_heads:
                nn.init.zeros_(head.weight)
                nn.init.zeros_(head.bias)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """``(b, size)`` in the env's layout: per layer, A row-major then B row-major."""
        h = self.trunk(features)
        parts = []
        for a_head, b_head in zip(self.a_heads, self.b_heads):
            parts += [a_head(h), b_head(h)]
        return torch.tanh(torch.cat(parts, dim=-1))

    def adapter(self, flat: torch.Tensor, alpha: float, scale: float, model: str) -> LoRAAdapter:
        """The adapter the env builds from this vector (``adapters_from_action``), with grads."""
        factors, offset = {}, 0
        for layer, (out, inp) in self.shapes.items():
            a = flat[offset : offset + out * self.rank].reshape(out, self.rank)
            offset += out * self.rank
            b = flat[offset : offset + self.rank * inp].reshape(self.rank, inp)
            offset += self.rank * inp
            factors[layer] = (a * scale, b * scale)
        return LoRAAdapter(factors, alpha=alpha, model=model)


class HAPSPolicy(nn.Module):
    """The trained parts: the high-level head and one LoRA generator per open model."""

    def __init__(self, features: int, layout: HybridLayout, config: HAPSConfig):
        super().__init__()
        self.high = mlp(features, config.hidden_size, len(layout.models) ** len(layout.roles))
        self.open_models = list(layout.lora_shapes) if config.use_lora else []
        # A list, not a ModuleDict: model names may hold characters module names cannot.
        self.generators = nn.ModuleList(
            LoRAGenerator(
                features, config.hidden_size, layout.lora_shapes[m], layout.rank, config.zero_init_a
            )
            for m in self.open_models
        )

    def generator(self, model: str) -> LoRAGenerator | None:
        """The generator of ``model`` (None for a closed model or without LoRA)."""
        return self.generators[self.open_models.index(model)] if model in self.open_models else None
