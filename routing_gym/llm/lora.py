"""Per-query LoRA on ``o_proj``: adapters, batched injection, white-box scoring and PEFT export.

HAPS generates, for each query, rank-r factors for the attention output projection
(``self_attn.o_proj``) of the last k decoder layers of the chosen model. With the HAPS
convention ``delta W = alpha * A @ B`` (A: out x r, B: r x in), a row x of the batch gets

    o_proj(x) + alpha * (x @ B.T) @ A.T

Every row of a batch carries its own factors (or none). ``LoRAInjector`` adds the deltas
with two ``torch.bmm`` per adapted layer from forward hooks, so the base weights are never
copied, merged or swapped, one forward pass serves the whole mixed batch, and removing
the hooks restores the base model bit for bit.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Iterator, Mapping, Sequence

import torch
from torch import nn


#: Digest format version: bump it if the digest's inputs change.
DIGEST_VERSION = 1

# Decoder layer i's attention output projection, whatever the prefix (model., model.language_model., ...).
_O_PROJ_NAME = re.compile(r"(?:^|\.)layers\.(\d+)\.self_attn\.o_proj$")

Factors = Mapping[int, tuple[torch.Tensor, torch.Tensor]]


# -- model shapes --------------------------------------------------------------------------
def o_proj_modules(model: nn.Module) -> dict[int, tuple[str, nn.Linear]]:
    """``{layer_index: (full module name, o_proj Linear)}`` for every decoder layer of ``model``."""
    found: dict[int, tuple[str, nn.Linear]] = {}
    for name, module in model.named_modules():
        match = _O_PROJ_NAME.search(name)
        if match is None or not isinstance(module, nn.Linear):
            continue
        index = int(match.group(1))
        if index in found:
            raise ValueError(f"Two o_proj modules for decoder layer {index}: {found[index][0]!r} and {name!r}.")
        found[index] = (name, module)
    if not found:
        raise ValueError(f"{type(model).__name__} has no '*.layers.N.self_attn.o_proj' Linear modules.")
    if sorted(found) != list(range(len(found))):
        raise ValueError(f"{type(model).__name__}: o_proj layer indices {sorted(found)} are not 0..{len(found) - 1}.")
    return dict(sorted(found.items()))


def o_proj_shapes(model: nn.Module) -> dict[int, tuple[int, int]]:
    """``{layer_index: (out_features, in_features)}`` of every decoder layer's ``o_proj``."""
    return {i: (m.out_features, m.in_features) for i, (_, m) in o_proj_modules(model).items()}


def target_layers(num_layers: int, k: int | str = 1) -> list[int]:
    """The indices of the last ``k`` decoder layers (``k="all"`` for every layer)."""
    if num_layers < 1:
        raise ValueError(f"target_layers: num_layers must be >= 1, got {num_layers}.")
    if k == "all":
        return list(range(num_layers))
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= num_layers:
        raise ValueError(f"target_layers: k must be an int in [1, {num_layers}] or 'all', got {k!r}.")
    return list(range(num_layers - k, num_layers))


# -- the adapter ---------------------------------------------------------------------------
def _where(model: str | None, layer: int) -> str:
    return f"{model or 'LoRAAdapter'} layer {layer} o_proj"


def _check_finite(model: str | None, layer: int, label: str, tensor: torch.Tensor) -> None:
    with torch.no_grad():
        if torch.isnan(tensor).any():
            raise ValueError(f"{_where(model, layer)}: {label} contains NaN.")
        if torch.isinf(tensor).any():
            raise ValueError(f"{_where(model, layer)}: {label} contains inf.")


@dataclass(frozen=True, eq=False)
class LoRAAdapter:
    """Rank-r LoRA factors for the ``o_proj`` of some decoder layers of one model.

    ``factors[layer] = (A, B)`` with A: out x r and B: r x in; the layer's output gains
    ``alpha * x @ B.T @ A.T``. The mapping is frozen; the tensors are the caller's (they may
    require grad and be updated in place by an optimizer; ``digest`` always reads the
    current values). ``model`` optionally names the model the factors were made for, so
    that errors name it and attaching to another model fails.
    """

    factors: Factors
    alpha: float = 0.01
    model: str | None = None

    def __post_init__(self):
        if not isinstance(self.factors, Mapping) or not self.factors:
            raise ValueError(f"{self.model or 'LoRAAdapter'}: factors must be a non-empty {{layer: (A, B)}} mapping.")
        alpha = float(self.alpha)
        if not math.isfinite(alpha):
            raise ValueError(f"{self.model or 'LoRAAdapter'}: alpha must be finite, got {self.alpha!r}.")
        object.__setattr__(self, "alpha", alpha)
        for layer in self.factors:
            if isinstance(layer, bool) or not isinstance(layer, int) or layer < 0:
                raise ValueError(f"{self.model or 'LoRAAdapter'}: layer index must be an int >= 0, got {layer!r}.")
        checked: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        rank = None
        for layer in sorted(self.factors):
            pair = self.factors[layer]
            if not isinstance(pair, (tuple, list)) or len(pair) != 2:
                raise ValueError(f"{_where(self.model, layer)}: factors must be a pair (A, B).")
            a, b = pair
            if not (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor)):
                raise ValueError(f"{_where(self.model, layer)}: A and B must be torch tensors.")
            if a.dim() != 2 or b.dim() != 2:
                raise ValueError(
                    f"{_where(self.model, layer)}: A and B must be 2-D, "
                    f"got shapes {tuple(a.shape)} and {tuple(b.shape)}."
                )
            if not (a.is_floating_point() and b.is_floating_point()):
                raise ValueError(f"{_where(self.model, layer)}: A and B must be floating point.")
            if a.shape[1] != b.shape[0]:
                raise ValueError(
                    f"{_where(self.model, layer)}: A has shape {tuple(a.shape)} and B {tuple(b.shape)}; "
                    "A's columns must equal B's rows (the rank)."
                )
            if rank is None:
                rank = a.shape[1]
            elif a.shape[1] != rank:
                raise ValueError(
                    f"{_where(self.model, layer)}: rank {a.shape[1]} differs from rank {rank} of the other layers."
                )
            if rank < 1:
                raise ValueError(f"{_where(self.model, layer)}: rank must be >= 1.")
            _check_finite(self.model, layer, "A", a)
            _check_finite(self.model, layer, "B", b)
            checked[layer] = (a, b)
        object.__setattr__(self, "factors", MappingProxyType(checked))

    # -- constructors -----------------------------------------------------------------------
    @classmethod
    def from_tensors(
        cls,
        a: Sequence[torch.Tensor] | torch.Tensor,
        b: Sequence[torch.Tensor] | torch.Tensor,
        num_layers: int,
        k: int | str = 1,
        alpha: float = 0.01,
        model: str | None = None,
    ) -> "LoRAAdapter":
        """Factors for the last ``k`` of ``num_layers`` layers, in layer order (a k x out x r stack works)."""
        layers = target_layers(num_layers, k)
        a_list, b_list = list(a), list(b)
        if len(a_list) != len(layers) or len(b_list) != len(layers):
            raise ValueError(
                f"{model or 'LoRAAdapter'}: k={k} targets layers {layers}, "
                f"got {len(a_list)} A and {len(b_list)} B factors."
            )
        return cls({layer: (x, y) for layer, x, y in zip(layers, a_list, b_list)}, alpha=alpha, model=model)

    @classmethod
    def random(
        cls,
        model_shapes: Mapping[int, tuple[int, int]],
        rank: int = 8,
        k: int | str = 1,
        seed: int = 0,
        scale: float = 1.0,
        alpha: float = 0.01,
        model: str | None = None,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str = "cpu",
        requires_grad: bool = False,
    ) -> "LoRAAdapter":
        """Gaussian factors (std ``scale``) for the last ``k`` layers of ``model_shapes`` (see ``o_proj_shapes``)."""
        if rank < 1:
            raise ValueError(f"LoRAAdapter.random: rank must be >= 1, got {rank}.")
        indices = sorted(model_shapes)
        chosen = [indices[i] for i in target_layers(len(indices), k)]
        generator = torch.Generator().manual_seed(int(seed))
        factors = {}
        for layer in chosen:
            out_features, in_features = model_shapes[layer]
            pair = []
            for shape in ((out_features, rank), (rank, in_features)):
                # Drawn in float32 on the CPU so a seed gives the same factors on every device.
                tensor = (torch.randn(shape, generator=generator) * scale).to(device=device, dtype=dtype)
                pair.append(tensor.requires_grad_(requires_grad))
            factors[layer] = tuple(pair)
        return cls(factors, alpha=alpha, model=model)

    # -- properties -------------------------------------------------------------------------
    @property
    def layers(self) -> list[int]:
        return list(self.factors)

    @property
    def rank(self) -> int:
        return next(iter(self.factors.values()))[0].shape[1]

    @property
    def shapes(self) -> dict[int, tuple[int, int]]:
        """``{layer: (out, in)}`` of the ``o_proj`` weights these factors fit."""
        return {layer: (a.shape[0], b.shape[1]) for layer, (a, b) in self.factors.items()}

    def parameters(self) -> list[torch.Tensor]:
        """All factor tensors, A then B per layer (e.g. for an optimizer)."""
        return [t for pair in self.factors.values() for t in pair]

    @property
    def digest(self) -> str:
        """sha256 of alpha, layers, shapes, dtypes and the exact tensor bytes; stable across processes."""
        header = {
            "v": DIGEST_VERSION,
            "alpha": repr(self.alpha),
            "layers": [
                [layer, list(a.shape), list(b.shape), str(a.dtype), str(b.dtype)]
                for layer, (a, b) in self.factors.items()
            ],
        }
        digest = hashlib.sha256(json.dumps(header, sort_keys=True).encode())
        for a, b in self.factors.values():
            for tensor in (a, b):
                # A byte view works for every dtype (bfloat16 has no numpy equivalent).
                flat = tensor.detach().to("cpu").contiguous().reshape(-1)
                digest.update(flat.view(torch.uint8).numpy().tobytes())
        return digest.hexdigest()

    def check_fits(self, shapes: Mapping[int, tuple[int, int]], model: str) -> None:
        """Raise a ValueError naming ``model`` and the layer unless these factors fit ``shapes``."""
        if self.model is not None and self.model != model:
            raise ValueError(f"LoRAAdapter made for model {self.model!r} cannot be attached to {model!r}.")
        num_layers = len(shapes)
        for layer, (a, b) in self.factors.items():
            if layer not in shapes:
                raise ValueError(
                    f"{model} layer {layer} o_proj: layer index out of range; the model has layers 0..{num_layers - 1}."
                )
            out_features, in_features = shapes[layer]
            rank = a.shape[1]
            if tuple(a.shape) != (out_features, rank):
                raise ValueError(
                    f"{model} layer {layer} o_proj: A has shape {tuple(a.shape)}, expected {(out_features, rank)}."
                )
            if tuple(b.shape) != (rank, in_features):
                raise ValueError(
                    f"{model} layer {layer} o_proj: B has shape {tuple(b.shape)}, expected {(rank, in_features)}."
                )
            # Factors may have been edited in place since construction (training steps).
            _check_finite(model, layer, "A", a)
            _check_finite(model, layer, "B", b)

    def __reduce__(self):
        # The read-only mapping does not pickle; rebuild from a plain dict (envs and requests pickle).
        return (type(self), (dict(self.factors), self.alpha, self.model))

    def __repr__(self) -> str:
        return (
            f"LoRAAdapter(model={self.model!r}, layers={self.layers}, rank={self.rank}, "
            f"alpha={self.alpha}, digest={self.digest[:12]})"
        )


# -- batched injection ---------------------------------------------------------------------
class _BatchedDelta:
    """A forward hook that adds one layer's per-row LoRA deltas to the ``o_proj`` output.

    Rows without factors for this layer skip the matmuls and keep the base output bit for
    bit (``index_add`` touches only the adapted rows); when every row is adapted the
    gather/scatter is skipped too.
    """

    def __init__(self, batch: int, rows: list[int], b_t: torch.Tensor, a_t: torch.Tensor, where: str):
        self.batch = batch
        self.where = where
        self.all_rows = rows == list(range(batch))
        self.rows = torch.tensor(rows, dtype=torch.long, device=b_t.device)
        self.b_t = b_t  # (n, in, r)
        self.a_t = a_t  # (n, r, out), alpha folded in

    def __call__(self, module: nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor:
        x = args[0]
        if x.shape[0] != self.batch:
            raise RuntimeError(
                f"{self.where}: LoRA adapters were set for a batch of {self.batch} rows, "
                f"but the forward pass has {x.shape[0]}."
            )
        b_t, a_t = self.b_t, self.a_t
        if b_t.dtype != x.dtype:
            b_t, a_t = b_t.to(x.dtype), a_t.to(x.dtype)
        flat = x.reshape(x.shape[0], -1, x.shape[-1])  # (batch, tokens, in)
        if self.all_rows:
            delta = torch.bmm(torch.bmm(flat, b_t), a_t)
            return output + delta.reshape(output.shape)
        delta = torch.bmm(torch.bmm(flat.index_select(0, self.rows), b_t), a_t)
        out = output.reshape(output.shape[0], -1, output.shape[-1])
        return out.index_add(0, self.rows, delta).reshape(output.shape)


class LoRAInjector:
    """Applies per-row LoRA adapters to a loaded model's ``o_proj`` layers for one batch at a time.

    Use ``with injector.apply(adapters): model(...)`` where ``adapters[i]`` is the
    ``LoRAAdapter`` (or None) of batch row i. The context registers forward hooks on the
    adapted layers and always removes them, so nothing leaks on exceptions and the base
    model is exactly restored. One model serves one batch at a time: the hooks see every
    forward pass of the model while the context is open.

    Args:
        model: a transformers causal LM (any family with ``layers.N.self_attn.o_proj``).
        name: the model's name, used in error messages and checked against ``adapter.model``.
        open: False for a closed model, whose weights may not be adapted.
    """

    def __init__(self, model: nn.Module, name: str = "model", open: bool = True):
        self.model = model
        self.name = name
        self.open = open
        self.modules = o_proj_modules(model)
        self.shapes = {i: (m.out_features, m.in_features) for i, (_, m) in self.modules.items()}

    @property
    def num_layers(self) -> int:
        return len(self.modules)

    def check(self, adapter: "LoRAAdapter") -> None:
        """Raise a ValueError naming the model and layer unless ``adapter`` can be attached here."""
        if not isinstance(adapter, LoRAAdapter):
            raise TypeError(f"{self.name}: expected a LoRAAdapter or None, got {type(adapter).__name__}.")
        if not self.open:
            raise ValueError(
                f"Model {self.name!r} is closed (open=False): its o_proj weights cannot take a LoRA adapter."
            )
        adapter.check_fits(self.shapes, self.name)

    @contextmanager
    def apply(self, adapters: Sequence["LoRAAdapter | None"]) -> Iterator[None]:
        """Within the context, forward passes add each row's LoRA delta; hooks go on exit."""
        adapters = list(adapters)
        for adapter in {id(a): a for a in adapters if a is not None}.values():  # a shared adapter once
            self.check(adapter)
        handles = []
        try:
            for layer in sorted({layer for a in adapters if a is not None for layer in a.layers}):
                hook = self._layer_hook(layer, adapters)
                handles.append(self.modules[layer][1].register_forward_hook(hook))
            yield
        finally:
            for handle in handles:
                handle.remove()

    def _layer_hook(self, layer: int, adapters: list["LoRAAdapter | None"]) -> _BatchedDelta:
        """Stack the factors of the rows that adapt ``layer``, transposed for ``x @ B.T @ A.T``."""
        name, module = self.modules[layer]
        weight = module.weight
        rows = [i for i, a in enumerate(adapters) if a is not None and layer in a.factors]
        rank = max(adapters[i].rank for i in rows)
        b_t, a_t = [], []
        for i in rows:
            adapter = adapters[i]
            a, b = adapter.factors[layer]
            pad = rank - adapter.rank  # mixed ranks: zero columns add exactly nothing
            b_t.append(nn.functional.pad(b.t(), (0, pad)))
            a_t.append(nn.functional.pad((a * adapter.alpha).t(), (0, 0, 0, pad)))
        cast = {"device": weight.device, "dtype": weight.dtype}
        return _BatchedDelta(
            len(adapters), rows, torch.stack(b_t).to(**cast), torch.stack(a_t).to(**cast), f"{self.name} {name}"
        )


# -- PEFT export ---------------------------------------------------------------------------
def export_peft(adapter: LoRAAdapter, model: nn.Module, folder: str | Path, name: str | None = None) -> Path:
    """Write ``adapter`` as a PEFT LoRA folder for ``model``; returns the folder.

    PEFT computes ``lora_B @ lora_A * lora_alpha / r`` with lora_A: r x in and lora_B: out x r,
    so lora_A = B, lora_B = A and lora_alpha = alpha * r reproduce ``alpha * A @ B``.
    """
    from peft import LoraConfig
    from safetensors.torch import save_file

    name = name or adapter.model or getattr(getattr(model, "config", None), "name_or_path", None) or "model"
    modules = o_proj_modules(model)
    adapter.check_fits({i: (m.out_features, m.in_features) for i, (_, m) in modules.items()}, adapter.model or name)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    config = LoraConfig(
        r=adapter.rank,
        lora_alpha=adapter.alpha * adapter.rank,
        target_modules=[modules[layer][0] for layer in adapter.layers],
        lora_dropout=0.0,
        bias="none",
        task_type="CAUSAL_LM",
        base_model_name_or_path=name,
        inference_mode=True,
    )
    config.save_pretrained(str(folder))
    tensors = {}
    for layer, (a, b) in adapter.factors.items():
        prefix = f"base_model.model.{modules[layer][0]}"
        tensors[f"{prefix}.lora_A.weight"] = b.detach().to("cpu").contiguous().clone()
        tensors[f"{prefix}.lora_B.weight"] = a.detach().to("cpu").contiguous().clone()
    save_file(tensors, str(folder / "adapter_model.safetensors"), metadata={"format": "pt"})
    return folder


__all__ = [
    "LoRAAdapter",
    "LoRAInjector",
    "export_peft",
    "o_proj_modules",
    "o_proj_shapes",
    "target_layers",
]
