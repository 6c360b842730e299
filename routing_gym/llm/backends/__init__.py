"""Backends that run models; the pool buckets requests by model and calls one of these."""

from routing_gym.llm.backends.base import Backend, Capabilities, ChoiceScores, Completion
from routing_gym.llm.spec import ModelSpec


def make_backend(spec: ModelSpec) -> Backend:
    """The backend object for a spec (imports stay lazy)."""
    if spec.backend == "transformers":
        from routing_gym.llm.backends.transformers_backend import TransformersBackend

        return TransformersBackend(spec)
    if spec.backend == "llama_cpp":
        from routing_gym.llm.backends.llama_cpp_backend import LlamaCppBackend

        return LlamaCppBackend(spec)
    if spec.backend == "openai":
        from routing_gym.llm.backends.openai_backend import OpenAIBackend

        return OpenAIBackend(spec)
    raise ValueError(f"Model {spec.name!r}: unknown backend {spec.backend!r}.")


__all__ = ["Backend", "Capabilities", "ChoiceScores", "Completion", "make_backend"]
