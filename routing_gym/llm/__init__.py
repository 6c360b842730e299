"""The LLM layer: model specs, backends, the batched pool and the response cache."""

import importlib

from routing_gym.llm.requests import GenerationRequest, GenerationResult
from routing_gym.llm.spec import BUILTIN_SPECS, REAL_POOL, TINY_POOL, ModelSpec, resolve_spec

# Imported on first use, so `python -m routing_gym.llm.cache` runs a module not yet imported.
_LAZY = {"ResponseCache": "routing_gym.llm.cache", "LLMPool": "routing_gym.llm.pool"}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "BUILTIN_SPECS",
    "GenerationRequest",
    "GenerationResult",
    "LLMPool",
    "ModelSpec",
    "REAL_POOL",
    "ResponseCache",
    "TINY_POOL",
    "resolve_spec",
]
