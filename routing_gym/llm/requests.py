"""What a caller asks the pool for, and what it gets back."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Sequence

if TYPE_CHECKING:
    from routing_gym.llm.lora import LoRAAdapter

ChatMessages = Sequence[dict[str, str]]


@dataclass
class GenerationRequest:
    """One completion request for one model of the pool.

    Give either ``prompt`` (raw text) or ``messages`` (chat turns). Chat messages are
    rendered with the model's chat template when it has one, else as plain text.
    ``response_prefix`` is text the answer must start with (e.g. ``"Action: Finish["``); it is
    appended after the rendered prompt and is not part of the completion.
    ``temperature == 0`` means greedy decoding; ``seed`` fixes sampling otherwise.
    ``adapter`` is an optional per-query LoRA on the model's ``o_proj`` layers; its digest
    is part of the cache key (see ``routing_gym.llm.lora``).
    """

    model: str
    prompt: str | None = None
    messages: ChatMessages | None = None
    max_new_tokens: int = 64
    stop: Sequence[str] = ()
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int = 0
    response_prefix: str = ""
    adapter: LoRAAdapter | None = None

    def __post_init__(self):
        if (self.prompt is None) == (self.messages is None):
            raise ValueError(f"GenerationRequest for {self.model!r}: give exactly one of prompt= or messages=.")
        if self.max_new_tokens < 1:
            raise ValueError(f"GenerationRequest.max_new_tokens must be >= 1, got {self.max_new_tokens}.")
        if self.temperature < 0:
            raise ValueError(f"GenerationRequest.temperature must be >= 0, got {self.temperature}.")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"GenerationRequest.top_p must be in (0, 1], got {self.top_p}.")
        if isinstance(self.stop, str):
            self.stop = (self.stop,)
        self.stop = tuple(self.stop)

    def decoding_params(self) -> dict[str, Any]:
        """The decoding parameters that, with the prompt tokens, determine the output."""
        greedy = self.temperature == 0
        return {
            "max_new_tokens": int(self.max_new_tokens),
            "stop": list(self.stop),
            "temperature": float(self.temperature),
            "top_p": 1.0 if greedy else float(self.top_p),
            "seed": 0 if greedy else int(self.seed),
        }


@dataclass
class GenerationResult:
    """A completion with its token ids, token counts and price-table cost (USD).

    A model behind a server returns no token ids: ``prompt_ids``/``completion_ids`` are then
    empty and ``usage`` holds the counts the server reported.
    """

    model: str
    text: str
    prompt_ids: list[int]
    completion_ids: list[int]
    cost: float
    cached: bool = False
    finish_reason: str = "length"
    extra: dict[str, Any] = field(default_factory=dict)
    usage: dict[str, int] | None = None

    @property
    def prompt_tokens(self) -> int:
        return len(self.prompt_ids) if self.usage is None else int(self.usage["prompt_tokens"])

    @property
    def completion_tokens(self) -> int:
        return len(self.completion_ids) if self.usage is None else int(self.usage["completion_tokens"])

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(prompt_tokens=self.prompt_tokens, completion_tokens=self.completion_tokens)
        return data


@dataclass
class ScoringRequest:
    """The log-probability of each of ``choices`` as the continuation of ``request``'s prompt.

    Reading an answer letter or a verdict this way is a forward pass over the whole prompt,
    so it is batched, cached, priced and counted like a generation. ``request`` gives the
    model, the prompt (messages and response prefix) and any LoRA adapter; its decoding
    settings play no part.
    """

    request: GenerationRequest
    choices: Sequence[str]

    def __post_init__(self):
        if isinstance(self.choices, str):
            raise ValueError("ScoringRequest.choices must be a sequence of strings, got one string.")
        self.choices = tuple(self.choices)
        if not self.choices or not all(isinstance(c, str) and c for c in self.choices):
            raise ValueError(f"ScoringRequest needs non-empty choice strings, got {self.choices!r}.")

    @property
    def model(self) -> str:
        return self.request.model


@dataclass
class ScoringResult:
    """Each choice's log-probability, the tokens the scoring pass read and its cost (USD)."""

    model: str
    logprobs: list[float]
    prompt_tokens: int
    completion_tokens: int
    cost: float
    cached: bool = False
    #: How the backend read them ("teacher-forcing", "logprobs", "text"; see ``Backend.score_choices``).
    source: str = ""
