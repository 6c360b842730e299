"""HierRouter's multi-hop pipeline as a one-role protocol: each hop one model improves the answer."""

from __future__ import annotations

import copy
import hashlib
from typing import Any, Mapping, Sequence

from routing_gym.llm.requests import GenerationRequest, GenerationResult, ScoringResult
from routing_gym.protocols.base import EpisodeProtocol, EpisodeState, Turn
from routing_gym.tasks import get_task

#: The one role of a multi-hop episode: every hop writes an answer (or an improved one).
SOLVER = "solver"
#: The score of an episode that stopped before any hop answered.
NO_ANSWER = {"value": 0.0, "answer": None, "details": {}}


class MultiHopProtocol(EpisodeProtocol):
    """A query of one ``HopTask`` answered in up to ``horizon`` hops (HierRouter, Gupta et al.).

    An episode's question is a ``(task name, example)`` pair. Each hop the chosen model gets the
    task prompt with every earlier hop's response (``response_chars`` of each) and writes an
    answer. The episode ends after ``horizon`` hops or when the router stops (``stop``); the
    last hop's answer is scored by its task (``state.extra["score"]``: value, answer, details).
    Code tasks run their tests in a sandbox; each verdict is kept, so a replayed or repeated
    answer costs one run and scores the same.
    """

    name = "multihop"
    roles = (SOLVER,)

    def __init__(self, config: Mapping[str, Any] | None = None):
        super().__init__(config)
        self._sandbox = None
        self._verdicts: dict[str, dict[str, Any]] = {}

    @classmethod
    def default_config(cls) -> dict[str, Any]:
        return {
            "horizon": 3,
            "temperature": 0.0,
            # None: each task's own limit
            "max_new_tokens": None,
            "response_chars": 1500,
            "sandbox": {},
        }

    def validate_config(self) -> None:
        config = self.config
        horizon = config["horizon"]
        if not isinstance(horizon, int) or isinstance(horizon, bool) or horizon < 1:
            raise ValueError(f"config['horizon'] must be a positive int, got {horizon!r}.")
        value = config["max_new_tokens"]
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
            raise ValueError(f"config['max_new_tokens'] must be a positive int or None, got {value!r}.")
        temperature = config["temperature"]
        if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not temperature >= 0:
            raise ValueError(f"config['temperature'] must be a number >= 0, got {temperature!r}.")
        chars = config["response_chars"]
        if not isinstance(chars, int) or isinstance(chars, bool) or chars < 1:
            raise ValueError(f"config['response_chars'] must be a positive int, got {chars!r}.")
        from routing_gym.execution import SandboxLimits

        if not isinstance(config["sandbox"], dict):
            raise ValueError(f"config['sandbox'] must be a dict of SandboxLimits fields, got {config['sandbox']!r}.")
        try:
            SandboxLimits(**config["sandbox"])
        except TypeError as exc:
            raise ValueError(f"config['sandbox'] has an unknown limit: {exc}.") from None

    @property
    def max_turns(self) -> int:
        return int(self.config["horizon"])

    @property
    def sandbox(self):
        """The sandbox that runs code answers (built on first use, never pickled)."""
        if self._sandbox is None:
            from routing_gym.execution import Sandbox

            self._sandbox = Sandbox(**self.config["sandbox"])
        return self._sandbox

    def max_new_tokens(self, task: str) -> int:
        """The completion limit of a hop of ``task``."""
        return self.config["max_new_tokens"] or get_task(task).max_new_tokens

    # -- an episode --------------------------------------------------------------------------
    def start(self, example: Any) -> EpisodeState:
        task, question = example
        return EpisodeState(example=question, extra={"task": task})

    def next_role(self, state: EpisodeState) -> str:
        return SOLVER

    def responses(self, state: EpisodeState) -> list[str]:
        """Every hop's response so far, the latest last."""
        return [turn.text for turn in state.turns]

    def request(self, state: EpisodeState, model: str, seed: int = 0) -> GenerationRequest:
        task = state.extra["task"]
        return GenerationRequest(
            model=model,
            messages=get_task(task).messages(state.example, self.responses(state), self.config["response_chars"]),
            max_new_tokens=self.max_new_tokens(task),
            temperature=float(self.config["temperature"]),
            seed=seed,
        )

    def advance(
        self,
        state: EpisodeState,
        request: GenerationRequest,
        result: GenerationResult,
        scores: Sequence[ScoringResult] = (),
    ) -> Turn:
        turn = Turn(
            role=SOLVER,
            model=request.model,
            text=result.text,
            prompt_tokens=result.prompt_tokens,
            completion_tokens=result.completion_tokens,
            cost=float(result.cost),
            prompt_ids=list(result.prompt_ids),
            completion_ids=list(result.completion_ids),
            messages=copy.deepcopy(list(request.messages)),
        )
        state.turns.append(turn)
        state.answer = result.text
        if len(state.turns) >= self.max_turns:
            self.stop(state)
        return turn

    def stop(self, state: EpisodeState) -> None:
        """End the episode now (the router's STOP); its last answer is scored."""
        state.done = True
        state.extra["score"] = self.stop_score(state)

    def stop_score(self, state: EpisodeState) -> dict[str, Any]:
        """The score the episode gets if it stops now: its last answer's (no answer: 0)."""
        if not state.turns:
            return copy.deepcopy(NO_ANSWER)
        task, text = state.extra["task"], state.turns[-1].text
        key = hashlib.sha256(f"{task}\0{state.example.id}\0{text}".encode()).hexdigest()
        if key not in self._verdicts:
            score = get_task(task).score(text, state.example, self.sandbox)
            self._verdicts[key] = {"value": float(score.value), "answer": score.answer, "details": dict(score.details)}
        return copy.deepcopy(self._verdicts[key])

    def performance(self, state: EpisodeState) -> float:
        """The task score of the final answer once the episode is over; 0 before."""
        return float(state.extra["score"]["value"]) if state.done else 0.0

    def context_text(self, state: EpisodeState) -> str:
        return get_task(state.extra["task"]).context(state.example, self.responses(state))

    def render(self, state: EpisodeState) -> str:
        task = state.extra["task"]
        lines = [f"[{task}] {get_task(task).question(state.example)}"]
        for turn in state.turns:
            lines.append(f"--- hop {len(lines)}: {turn.model} ---\n{turn.text}")
        if state.done:
            score = state.extra["score"]
            lines.append(f"score {score['value']} (answer {score['answer']!r})")
        return "\n".join(lines)

    @property
    def max_new_tokens_per_turn(self) -> int:
        return int(self.config["max_new_tokens"] or 0)

    # -- pickling: the sandbox is rebuilt lazily ------------------------------------------------
    def __getstate__(self):
        state = self.__dict__.copy()
        state["_sandbox"] = None
        return state
