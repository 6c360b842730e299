"""The interface every backend implements; the pool talks to nothing else.

A backend offers
- generation: ``prompt_ids`` / ``request_key`` (what identifies a request in the cache) and
  ``generate`` (a batch of requests, in order);
- choice scoring: ``score_choices`` (log-probability of each choice string after a prompt);
- token log-probs: ``token_logprobs`` (teacher forcing, differentiable; white-box only);
- LoRA shapes: ``lora_shapes`` (the ``o_proj`` layers a per-query LoRA attaches to; white-box only);
- the weights themselves: ``white_box_model`` (the loaded model and its tokenizer, e.g. for an
  agent's prompt encoder; white-box only);
- capabilities: ``capabilities`` says which of these a backend really has.

The in-process transformers backend is white-box; a model behind an HTTP server is not.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

from routing_gym.errors import BackendError
from routing_gym.llm import model_store
from routing_gym.llm.requests import GenerationRequest
from routing_gym.llm.spec import ModelSpec

if TYPE_CHECKING:
    import torch

    from routing_gym.llm.lora import LoRAAdapter


@dataclass
class Completion:
    """What a backend returns for one request, before caching and pricing.

    ``prompt_tokens`` / ``completion_tokens`` are the counts a server reports in ``usage``
    when it returns no token ids; a local backend leaves them None and gives the ids.
    """

    text: str
    completion_ids: list[int]
    finish_reason: str
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


@dataclass
class ChoiceScores:
    """Log-probability of each choice string after a prompt, with what scoring them cost.

    ``source`` says how they were read: ``"teacher-forcing"`` (exact, local weights),
    ``"logprobs"`` (exact, from a server's completion log-probs) or ``"text"`` (a fallback
    for servers without log-probs: the choice the generated text starts with gets 0.0,
    every other choice ``-inf``).
    """

    logprobs: list[float]
    source: str
    prompt_tokens: int = 0
    completion_tokens: int = 0


@dataclass(frozen=True)
class Capabilities:
    """What a backend can do beyond generation."""

    #: The weights are in this process: teacher-forced token log-probs and per-query LoRA work.
    white_box: bool
    #: How ``score_choices`` reads choice log-probs: "teacher-forcing", or "logprobs-or-text".
    choice_scoring: str

    @property
    def token_logprobs(self) -> bool:
        """Differentiable per-token log-probs (HAPS training) need the weights."""
        return self.white_box

    @property
    def lora(self) -> bool:
        """Per-query LoRA attaches to ``o_proj`` layers, so it needs the weights."""
        return self.white_box


class Backend(abc.ABC):
    """Runs one model. Preparing a request (tokenizing, rendering) is separate from
    generation so that a cache hit never needs the weights or the server."""

    def __init__(self, spec: ModelSpec):
        self.spec = spec

    # -- identity and capabilities -----------------------------------------------------------
    @property
    @abc.abstractmethod
    def model_id(self) -> str:
        """The model's name plus a digest of its weights or the server's model id: part of every cache key."""

    @property
    @abc.abstractmethod
    def capabilities(self) -> Capabilities:
        """What this backend offers beyond generation."""

    @property
    def supports_scoring(self) -> bool:
        """Whether token log-probabilities (teacher forcing) are available."""
        return self.capabilities.token_logprobs

    def is_loaded(self) -> bool:
        """Whether the weights are in memory (a cache hit must not load them)."""
        return False

    def close(self) -> None:
        """Release connections or other resources (idempotent); weights stay shared in the process."""

    # -- generation -------------------------------------------------------------------------
    @abc.abstractmethod
    def prompt_ids(self, request: GenerationRequest) -> list[int] | None:
        """The exact prompt token ids the model would see, or None where they are not known locally."""

    def request_key(self, request: GenerationRequest) -> dict[str, Any]:
        """What, besides the prompt ids and the decoding parameters, identifies a request in the cache.

        A server backend returns the exact request it sends (its prompt ids are unknown here).
        """
        return {}

    @abc.abstractmethod
    def generate(
        self, requests: Sequence[GenerationRequest], prompt_ids: Sequence[list[int] | None]
    ) -> list[Completion]:
        """Complete a batch of requests for this model, in order; raise rather than return a partial batch."""

    # -- scoring ----------------------------------------------------------------------------
    @abc.abstractmethod
    def score_choices(
        self, request: GenerationRequest, prompt_ids: list[int] | None, choices: Sequence[str]
    ) -> ChoiceScores:
        """Log-probability of each choice string as the continuation of ``request``'s prompt."""

    def score_choices_batch(
        self,
        requests: Sequence[GenerationRequest],
        prompt_ids: Sequence[list[int] | None],
        choices: Sequence[Sequence[str]],
    ) -> list[ChoiceScores]:
        """``score_choices`` for several requests, in order; a backend that can score them in one
        batch (one forward pass) overrides this one-at-a-time default."""
        return [self.score_choices(r, p, c) for r, p, c in zip(requests, prompt_ids, choices)]

    def token_logprobs(
        self,
        prompt_ids: Sequence[list[int]],
        completion_ids: Sequence[list[int]],
        adapters: Sequence[LoRAAdapter | None] | None = None,
    ) -> list[torch.Tensor]:
        """Differentiable per-token log-probs of completions (teacher forcing); white-box backends only."""
        raise BackendError(
            f"Model {self.spec.name!r} ({self.spec.backend} backend) is not white-box: it gives no "
            "differentiable token log-probs, so it cannot be trained through (e.g. by HAPS)."
        )

    def lora_shapes(self) -> dict[int, tuple[int, int]]:
        """``{layer: (out_features, in_features)}`` of the ``o_proj`` layers a per-query LoRA attaches to."""
        raise BackendError(
            f"Model {self.spec.name!r} ({self.spec.backend} backend) is not white-box: it has no "
            "o_proj layers to take a per-query LoRA."
        )

    def white_box_model(self) -> tuple[Any, Any]:
        """The loaded ``(model, tokenizer)``: a transformers causal LM shared by the whole process, and its
        tokenizer; white-box backends only. Train a copy of the model, never the shared one."""
        raise BackendError(
            f"Model {self.spec.name!r} ({self.spec.backend} backend) is not white-box: its weights are "
            "not in this process, so it has no model and tokenizer to hand out."
        )


class LocalWeightsBackend(Backend):
    """A backend whose weights are files on this machine: their digest names them in every cache key."""

    def __init__(self, spec: ModelSpec):
        super().__init__(spec)
        self._digest: str | None = None

    @property
    def digest(self) -> str:
        """sha256 of the model's weights or source (``model_store.model_digest``), computed once:
        hashing a GGUF reads every byte."""
        if self._digest is None:
            self._digest = model_store.model_digest(self.spec)
        return self._digest
