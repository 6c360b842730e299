"""A task of the multi-hop env: its questions, the prompt of a hop, and the score of an answer."""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from routing_gym.data.splits import DEFAULT_FRACTIONS

#: The split names every task accepts; each maps them onto its data set's own files.
SPLITS = ("train", "valid", "test")
REFINE_NOTE = (
    "Earlier answers to this task follow, the latest last. Check the latest one and write an "
    "improved, complete answer (repeat it if it is already right), ending as instructed."
)


@dataclass(frozen=True)
class Score:
    """The task score of a final answer, with what was read from it."""

    value: float
    answer: str | None  # the extracted answer (number, letter, LaTeX) or the execution status
    details: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class LoadOptions:
    """Where and which questions a task loads."""

    split: str = "test"
    data_dir: str | None = None
    fractions: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_FRACTIONS))
    limit: int | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)  # task-specific: humaneval_path, mmlu_subjects...


class HopTask(abc.ABC):
    """One benchmark as HierRouter's pipeline sees it.

    A hop's prompt is the task instruction and question, plus the earlier hops' answers;
    the final answer is the last hop's, scored by ``score``.
    """

    name: str = ""
    instruction: str = ""
    max_new_tokens: int = 256

    @abc.abstractmethod
    def load(self, options: LoadOptions) -> list:
        """The examples of ``options.split`` (each has an ``id``)."""

    @abc.abstractmethod
    def question(self, example) -> str:
        """The question as the model sees it (choices, tests or signature included)."""

    @abc.abstractmethod
    def score(self, text: str, example, sandbox=None) -> Score:
        """The score in [0, 1] of the final answer ``text``."""

    def messages(self, example, responses: Sequence[str], response_chars: int) -> list[dict[str, str]]:
        """The chat messages of the next hop, given the earlier hops' responses."""
        parts = [self.instruction, self.question(example)]
        if responses:
            parts.append(REFINE_NOTE)
            for number, response in enumerate(responses, start=1):
                parts.append(f"--- Answer {number} ---\n{clip(response, response_chars)}")
        return [{"role": "user", "content": "\n\n".join(parts)}]

    def context(self, example, responses: Sequence[str]) -> str:
        """HierRouter's context c_t: the question followed by every earlier response."""
        return "\n\n".join([self.question(example), *responses])

    @staticmethod
    def check_split(split: str, task: str) -> None:
        if split not in SPLITS:
            raise ValueError(f"task {task!r}: split must be one of {SPLITS}, got {split!r}.")


def clip(text: str, limit: int) -> str:
    """The first ``limit`` characters of ``text``, marked when cut."""
    text = text.strip()
    return text if len(text) <= limit else text[:limit].rstrip() + " [...]"
