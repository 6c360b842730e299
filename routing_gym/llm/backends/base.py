"""The interface every backend implements; the pool talks to nothing else."""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Sequence

from routing_gym.llm.requests import GenerationRequest
from routing_gym.llm.spec import ModelSpec


@dataclass
class Completion:
    """What a backend returns for one request, before caching and pricing."""

    text: str
    completion_ids: list[int]
    finish_reason: str


class Backend(abc.ABC):
    """Runs one model. Tokenization is separate from generation so that a cache hit
    needs only the tokenizer, never the weights."""

    def __init__(self, spec: ModelSpec):
        self.spec = spec

    @property
    @abc.abstractmethod
    def model_id(self) -> str:
        """The model's name plus a digest of its weights or source."""

    @property
    def supports_scoring(self) -> bool:
        """Whether token log-probabilities (teacher forcing) are available."""
        return False

    @abc.abstractmethod
    def prompt_ids(self, request: GenerationRequest) -> list[int]:
        """The exact prompt token ids the model would see for ``request``."""

    @abc.abstractmethod
    def generate(self, requests: Sequence[GenerationRequest], prompt_ids: Sequence[list[int]]) -> list[Completion]:
        """Complete a batch of requests for this model, in order."""

    def is_loaded(self) -> bool:
        """Whether the weights are in memory (a cache hit must not load them)."""
        return False
