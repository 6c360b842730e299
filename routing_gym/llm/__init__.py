"""The LLM layer: model specs, backends, the batched pool and the response cache."""

from routing_gym.llm.cache import ResponseCache
from routing_gym.llm.pool import LLMPool
from routing_gym.llm.requests import GenerationRequest, GenerationResult
from routing_gym.llm.spec import BUILTIN_SPECS, REAL_POOL, TINY_POOL, ModelSpec, resolve_spec

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
