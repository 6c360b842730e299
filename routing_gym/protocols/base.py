"""Two-agent episode protocols: who speaks next, what they are asked, how a reply is used.

A protocol is stateless; everything about one episode lives in an ``EpisodeState``, so
one protocol object can drive many episodes in lockstep (batched across envs).

A protocol makes no model call. The episode engine (``routing_gym.engine``) asks it for the
next turn's generation (``request``), runs it through the pool, asks which scoring passes
the reply needs (``scoring_requests``: answer-letter or verdict log-probs), runs those, and
hands everything back (``advance``). So every call is batched across episodes and priced.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from routing_gym.llm.requests import (
    GenerationRequest,
    GenerationResult,
    ScoringRequest,
    ScoringResult,
)

STUDENT, TEACHER = "student", "teacher"
ROLES = (STUDENT, TEACHER)


@dataclass
class Turn:
    """One agent turn of the transcript."""

    role: str
    model: str
    text: str
    #: Parsed content, e.g. {"action": "search", "argument": "Reggie Jackson"} or {"verdict": "continue"}.
    parsed: dict[str, Any] = field(default_factory=dict)
    #: What the environment returned after the turn (retrieved paragraph, error note...).
    observation: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    #: USD of every call of the turn: its generation and its scoring passes.
    cost: float = 0.0
    #: Tokens read by the turn's scoring passes (answer letter, verdict), beyond the generation.
    scoring_prompt_tokens: int = 0
    scoring_completion_tokens: int = 0
    #: How many scoring passes the turn took (0 or 1 in the round protocols).
    scoring_calls: int = 0
    prompt_ids: list[int] = field(default_factory=list)
    completion_ids: list[int] = field(default_factory=list)
    #: The request that produced it, for white-box training (token log-probs).
    messages: list[dict[str, str]] = field(default_factory=list)
    response_prefix: str = ""


@dataclass
class EpisodeState:
    """Everything about one episode in progress."""

    example: Any
    turns: list[Turn] = field(default_factory=list)
    #: Short memories, updated every round (role -> list of notes).
    memory: dict[str, list[str]] = field(default_factory=lambda: {STUDENT: [], TEACHER: []})
    searches_left: int = 0
    rounds_done: int = 0
    answer: str | None = None
    done: bool = False
    #: Protocol-specific extras.
    extra: dict[str, Any] = field(default_factory=dict)


class EpisodeProtocol(abc.ABC):
    """What the episode engine drives: who acts next, what is asked, how a reply is used.

    The Teacher–Student protocols and the one-role multi-hop protocol both derive from it.
    """

    #: Registered name, e.g. "hotpotqa".
    name: str = ""
    #: The roles that take turns, in the order the observation's one-hot lists them.
    roles: tuple[str, ...] = ()

    def __init__(self, config: Mapping[str, Any] | None = None):
        merged = self.default_config()
        for key, value in (config or {}).items():
            if key not in merged:
                raise ValueError(
                    f"{type(self).__name__}: unknown config key {key!r}; known keys: {sorted(merged)}."
                )
            merged[key] = value
        self.config = merged
        self.validate_config()

    @classmethod
    def default_config(cls) -> dict[str, Any]:
        """Plain-dict defaults (HighwayEnv style)."""
        return {}

    def validate_config(self) -> None:
        """Raise ValueError naming the bad key."""

    @property
    @abc.abstractmethod
    def max_turns(self) -> int:
        """The most agent turns an episode can take (the depth cap)."""

    @abc.abstractmethod
    def start(self, example: Any) -> EpisodeState:
        """A fresh state for one question."""

    @abc.abstractmethod
    def next_role(self, state: EpisodeState) -> str:
        """The role that acts next (one of ``roles``); undefined once ``state.done``."""

    @abc.abstractmethod
    def request(self, state: EpisodeState, model: str, seed: int = 0) -> GenerationRequest:
        """The generation request for the next turn, to be run by ``model``."""

    def scoring_requests(
        self, state: EpisodeState, request: GenerationRequest, result: GenerationResult
    ) -> list[ScoringRequest]:
        """The scoring passes needed to read ``result`` (e.g. an answer letter); none by default.

        Depends only on the state, the request and the reply, so the engine can batch the
        scoring of many episodes before any of them advances.
        """
        return []

    @abc.abstractmethod
    def advance(
        self,
        state: EpisodeState,
        request: GenerationRequest,
        result: GenerationResult,
        scores: Sequence[ScoringResult] = (),
    ) -> Turn:
        """Use the reply and the results of its ``scoring_requests`` (in order): parse it, act
        (retrieve, revise...), update memories, maybe end."""

    @abc.abstractmethod
    def performance(self, state: EpisodeState) -> float:
        """The task score of the episode so far (F1, accuracy...), in [0, 1]."""

    @abc.abstractmethod
    def context_text(self, state: EpisodeState) -> str:
        """The question plus the transcript so far, as embedded into the observation."""

    @abc.abstractmethod
    def render(self, state: EpisodeState) -> str:
        """A human-readable transcript: question, turns with role and model, retrievals, answer."""

    @property
    def max_new_tokens_per_turn(self) -> int:
        """The longest completion one turn may produce (bounds the cost normalizer)."""
        limits = [v for k, v in self.config.items() if k.endswith("max_new_tokens")]
        return int(max(limits, default=64))

    @property
    def max_scoring_choices_per_turn(self) -> int:
        """The most choices one turn's scoring passes score (0: this protocol never scores);
        with ``max_new_tokens_per_turn`` it bounds a turn's cost."""
        return 0

    def searches_left(self, state: EpisodeState) -> int:
        """Remaining search budget (0 for protocols without search)."""
        return state.searches_left


class TeacherStudentProtocol(EpisodeProtocol):
    """Base class of the two-agent protocols (appendix B of the HAPS paper, prompts our own)."""

    roles = ROLES
