"""Machinery shared by the round-based Student/Teacher protocols (HotpotQA, MMLU).

An episode is a sequence of rounds; each round is one Student turn, then one Teacher
turn. This class owns what both tasks do alike: the common config keys and their checks,
who speaks next, building a ``Turn`` from a pool result, the bounded memories, the
Teacher's verdict parsing and the text given to the observation encoder. Task classes
write the prompts, parse the Student and decide when the episode ends.
"""

from __future__ import annotations

import abc
import dataclasses
import functools
import importlib.resources
import re
import string
from typing import Any, Mapping, Sequence

from routing_gym.llm.requests import (
    GenerationRequest,
    GenerationResult,
    ScoringRequest,
    ScoringResult,
)
from routing_gym.protocols.base import STUDENT, TEACHER, EpisodeState, TeacherStudentProtocol, Turn

VERDICT_MODES = ("text", "text_then_logprob")
_SECTION = re.compile(r"^\[(?P<name>[a-z_]+)\]\s*$", re.MULTILINE)


@functools.lru_cache(maxsize=None)
def load_prompts(name: str) -> dict[str, string.Template]:
    """The ``[section]`` templates of ``prompts/<name>.txt`` (``string.Template`` syntax)."""
    resource = importlib.resources.files("routing_gym.protocols").joinpath("prompts", f"{name}.txt")
    text = resource.read_text("utf-8")
    marks = list(_SECTION.finditer(text))
    if not marks:
        raise ValueError(f"Prompt file {name}.txt has no [section] headers.")
    sections = {}
    for mark, following in zip(marks, marks[1:] + [None]):
        body = text[mark.end() : following.start() if following else len(text)]
        sections[mark.group("name")] = string.Template(body.strip("\n"))
    return sections


def clip(text: str, limit: int) -> str:
    """``text`` on one line, cut to at most ``limit`` characters (ending in "...")."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    return text[: max(limit - 3, 0)].rstrip() + "..."


def verdict_text(parsed: dict[str, Any]) -> str:
    """A Teacher verdict as the render shows it, with how it was read when the reply named none."""
    text = parsed["verdict"].capitalize()
    if parsed["verdict_source"] == "logprob":
        scores = ", ".join(f"{v} {lp:.2f}" for v, lp in parsed["verdict_logprobs"].items())
        return f"{text} (no verdict word; log-probs: {scores})"
    if parsed["verdict_source"] == "default":
        return f"{text} (no verdict word; default)"
    return text


class RoundProtocol(TeacherStudentProtocol):
    """A Teacher–Student protocol played in rounds of (Student turn, Teacher turn)."""

    #: Prompt files are ``prompts/<prompt_name>_student.txt`` and ``prompts/<prompt_name>_teacher.txt``.
    prompt_name: str = ""
    #: Teacher verdict words (lower case) mapped to the verdict they stand for.
    verdict_words: Mapping[str, str] = {}
    #: Response prefix of Teacher turns: the reply starts right at the verdict word.
    teacher_prefix = "Verdict:"
    #: Stop strings for every turn: a base model would go on writing the next prompt.
    common_stops: tuple[str, ...] = ("\nQuestion:", "\nStudent:", "\nTeacher:")

    @classmethod
    def default_config(cls) -> dict[str, Any]:
        return {
            "max_rounds": 3,
            "student_max_new_tokens": 48,
            "teacher_max_new_tokens": 32,
            "temperature": 0.0,
            # memory notes kept per agent, and characters per note
            "memory_length": 4,
            "memory_chars": 160,
            # characters of question + transcript handed to the observation encoder
            # (MiniLM reads 256 word pieces, about 1,000 characters of English)
            "context_chars": 1200,
            # how a Teacher reply that names no verdict word is read: "text" takes
            # default_verdict; "text_then_logprob" lets the same model score each verdict word
            # right after "Verdict:" (base models often ramble instead of naming one)
            "verdict_mode": "text_then_logprob",
            "default_verdict": "continue",
        }

    def validate_config(self) -> None:
        self._check_int("max_rounds", 1)
        self._check_int("student_max_new_tokens", 1)
        self._check_int("teacher_max_new_tokens", 1)
        self._check_int("memory_length", 0)
        self._check_int("memory_chars", 8)
        self._check_int("context_chars", 64)
        temperature = self.config["temperature"]
        if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or temperature < 0:
            raise ValueError(
                f"{type(self).__name__}: config 'temperature' must be a number >= 0, got {temperature!r}."
            )
        self.config["temperature"] = float(temperature)
        self._check_choice("verdict_mode", VERDICT_MODES)
        self._check_choice("default_verdict", self.verdicts)

    def _check_int(self, key: str, minimum: int) -> None:
        value = self.config[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ValueError(
                f"{type(self).__name__}: config {key!r} must be an int >= {minimum}, got {value!r}."
            )

    def _check_choice(self, key: str, allowed: Sequence[str]) -> None:
        if self.config[key] not in allowed:
            raise ValueError(
                f"{type(self).__name__}: config {key!r} must be one of {list(allowed)}, "
                f"got {self.config[key]!r}."
            )

    # -- turn order ---------------------------------------------------------------------------
    @property
    def max_rounds(self) -> int:
        """The round cap."""
        return int(self.config["max_rounds"])

    @property
    def max_turns(self) -> int:
        return 2 * self.max_rounds

    def next_role(self, state: EpisodeState) -> str:
        # Turns strictly alternate, Student first, so the parity says who is next.
        return STUDENT if len(state.turns) % 2 == 0 else TEACHER

    def request(self, state: EpisodeState, model: str, seed: int = 0) -> GenerationRequest:
        if state.done:
            raise ValueError("The episode is over; start a new one before asking for a request.")
        if self.next_role(state) == STUDENT:
            messages, prefix, stop = self.student_prompt(state)
            max_new_tokens = self.config["student_max_new_tokens"]
        else:
            messages, prefix, stop = self.teacher_prompt(state)
            max_new_tokens = self.config["teacher_max_new_tokens"]
        return GenerationRequest(
            model=model,
            messages=messages,
            max_new_tokens=max_new_tokens,
            stop=tuple(stop) + self.common_stops,
            temperature=self.config["temperature"],
            seed=int(seed),
            response_prefix=prefix,
        )

    @property
    def max_scoring_choices_per_turn(self) -> int:
        return len(self.verdicts) if self.config["verdict_mode"] == "text_then_logprob" else 0

    def scoring_requests(self, state, request, result) -> list[ScoringRequest]:
        if self.next_role(state) == STUDENT:
            return self.student_scoring(state, request, result)
        return self.verdict_scoring(request, result)

    def advance(self, state, request, result, scores: Sequence[ScoringResult] = ()) -> Turn:
        if state.done:
            raise ValueError("The episode is over; advance() got a result for a finished episode.")
        if result.model != request.model:
            raise ValueError(
                f"The result comes from {result.model!r} but the request was for {request.model!r}."
            )
        scores = list(scores)
        wanted = self.scoring_requests(state, request, result)
        if len(scores) != len(wanted) or any(
            s.model != w.model or len(s.logprobs) != len(w.choices) for s, w in zip(scores, wanted)
        ):
            raise ValueError(
                f"advance() got {len(scores)} scoring results for the {len(wanted)} scoring requests "
                "of this reply (scoring_requests); run them first, in order."
            )
        role = self.next_role(state)
        turn = self.make_turn(role, request, result, scores)
        if role == STUDENT:
            self.student_step(state, turn, request, scores)
        else:
            self.teacher_step(state, turn, request, scores)
        state.turns.append(turn)
        return turn

    # -- what the task classes write ------------------------------------------------------------
    @abc.abstractmethod
    def student_prompt(self, state: EpisodeState) -> tuple[list[dict[str, str]], str, Sequence[str]]:
        """Messages, response prefix and stop strings of the next Student turn."""

    @abc.abstractmethod
    def teacher_prompt(self, state: EpisodeState) -> tuple[list[dict[str, str]], str, Sequence[str]]:
        """Messages, response prefix and stop strings of the next Teacher turn."""

    def student_scoring(
        self, state: EpisodeState, request: GenerationRequest, result: GenerationResult
    ) -> list[ScoringRequest]:
        """The scoring passes a Student reply needs (none unless the task reads log-probs)."""
        return []

    @abc.abstractmethod
    def student_step(
        self, state: EpisodeState, turn: Turn, request: GenerationRequest, scores: Sequence[ScoringResult]
    ) -> None:
        """Parse a Student turn (with its ``student_scoring`` results) into ``turn.parsed`` /
        ``turn.observation`` and update the state."""

    @abc.abstractmethod
    def teacher_step(
        self, state: EpisodeState, turn: Turn, request: GenerationRequest, scores: Sequence[ScoringResult]
    ) -> None:
        """Parse a Teacher turn (with its ``verdict_scoring`` results) and update the state; ends
        the episode when the round says so."""

    @abc.abstractmethod
    def question_text(self, state: EpisodeState) -> str:
        """The question as shown to the encoder and in renders."""

    @abc.abstractmethod
    def turn_summary(self, turn: Turn) -> str:
        """One line per turn for the observation text."""

    # -- shared pieces --------------------------------------------------------------------------
    @staticmethod
    def make_turn(
        role: str,
        request: GenerationRequest,
        result: GenerationResult,
        scores: Sequence[ScoringResult] = (),
    ) -> Turn:
        """A Turn holding the reply, its tokens, the cost of every call (scoring passes
        included), and the request that produced it."""
        return Turn(
            role=role,
            model=result.model,
            text=result.text,
            prompt_tokens=result.prompt_tokens,
            completion_tokens=result.completion_tokens,
            cost=float(result.cost) + sum(float(s.cost) for s in scores),
            scoring_prompt_tokens=sum(s.prompt_tokens for s in scores),
            scoring_completion_tokens=sum(s.completion_tokens for s in scores),
            scoring_calls=len(scores),
            prompt_ids=list(result.prompt_ids),
            completion_ids=list(result.completion_ids),
            messages=[dict(m) for m in request.messages or ()],
            response_prefix=request.response_prefix,
        )

    def prompts(self, role: str) -> dict[str, string.Template]:
        """The prompt templates of ``role`` (STUDENT or TEACHER) for this task."""
        return load_prompts(f"{self.prompt_name}_{role}")

    @staticmethod
    def chat(prompts: dict[str, string.Template], user: str) -> list[dict[str, str]]:
        """Chat messages: the role's ``[system]`` section, then ``user``."""
        return [{"role": "system", "content": prompts["system"].template}, {"role": "user", "content": user}]

    def remember(self, state: EpisodeState, role: str, note: str) -> None:
        """Add a note to ``role``'s memory, keeping the last ``memory_length`` notes."""
        limit = self.config["memory_length"]
        notes = state.memory.setdefault(role, [])
        notes.append(clip(note, self.config["memory_chars"]))
        del notes[: max(len(notes) - limit, 0)]

    def remember_review(self, state: EpisodeState, step: str, verdict: str, reason: str) -> None:
        """Both memories after a Teacher turn: the Student keeps the feedback, the Teacher its ruling."""
        feedback = f": {reason}" if reason else "."
        self.remember(state, STUDENT, f"Teacher said {verdict.capitalize()}{feedback}")
        ruling = f"Round {state.rounds_done + 1}: {step}; I said {verdict.capitalize()}."
        self.remember(state, TEACHER, ruling)

    @staticmethod
    def notes_text(state: EpisodeState, role: str) -> str:
        """A role's memory as a bullet list."""
        notes = state.memory.get(role, [])
        return "\n".join(f"- {n}" for n in notes) if notes else "- (none yet)"

    @property
    def verdicts(self) -> tuple[str, ...]:
        """The distinct verdicts, in ``verdict_words`` order."""
        return tuple(dict.fromkeys(self.verdict_words.values()))

    def parse_verdict(self, text: str) -> tuple[str | None, str]:
        """(the first verdict word of a Teacher reply or None, the reason after it)."""
        words = "|".join(re.escape(w) for w in self.verdict_words)
        match = re.search(rf"\b({words})\b", text, re.IGNORECASE)
        if match is None:
            return None, clip(text, 400)
        reason = text[match.end() :].lstrip(" \t\n.:,;-!")
        return self.verdict_words[match.group(1).lower()], clip(reason, 400)

    def verdict_scoring(self, request: GenerationRequest, result: GenerationResult) -> list[ScoringRequest]:
        """Scoring of each verdict word after the prefix, when the reply names none and
        ``verdict_mode`` says to ask the model."""
        if self.parse_verdict(result.text)[0] is not None or self.config["verdict_mode"] != "text_then_logprob":
            return []
        # the same request (and adapter, if any) scores the words right after the prefix
        scoring = dataclasses.replace(request, max_new_tokens=1, stop=())
        return [ScoringRequest(scoring, [" " + v.capitalize() for v in self.verdicts])]

    def read_verdict(self, turn: Turn, scores: Sequence[ScoringResult] = ()) -> dict[str, Any]:
        """The Teacher's verdict: its first verdict word, else per ``verdict_mode``.

        Returns ``verdict``, ``verdict_source`` ("text", "logprob" or "default"),
        ``verdict_parsed`` (whether the reply named a verdict), ``reason`` and, when the
        model was asked (``scores``, from ``verdict_scoring``), ``verdict_logprobs`` (verdict ->
        log-prob of `` Verdict`` after the prefix; ties go to ``default_verdict``).
        """
        verdict, reason = self.parse_verdict(turn.text)
        parsed: dict[str, Any] = {
            "verdict": verdict, "verdict_source": "text", "verdict_parsed": verdict is not None
        }
        if verdict is None and self.config["verdict_mode"] == "text_then_logprob":
            logprobs = {v: float(x) for v, x in zip(self.verdicts, scores[0].logprobs)}
            default = self.config["default_verdict"]
            best = max(self.verdicts, key=lambda v: (logprobs[v], v == default))
            parsed.update(verdict=best, verdict_source="logprob", verdict_logprobs=logprobs)
        elif verdict is None:
            parsed.update(verdict=self.config["default_verdict"], verdict_source="default")
        parsed["reason"] = reason
        return parsed

    def end_round(self, state: EpisodeState) -> None:
        """Count a finished round; the episode ends at the round cap."""
        state.rounds_done += 1
        if state.rounds_done >= self.max_rounds:
            state.done = True

    def context_text(self, state: EpisodeState) -> str:
        # The question always fits (up to half the budget); the transcript keeps its latest lines.
        budget = self.config["context_chars"]
        question = clip(self.question_text(state), budget // 2)
        lines: list[str] = []
        room = budget - len(question)
        for turn in reversed(state.turns):
            line = clip(self.turn_summary(turn), budget // 2)
            if len(line) + 1 > room:
                break
            lines.append(line)
            room -= len(line) + 1
        return "\n".join([question, *reversed(lines)])

    @staticmethod
    def reply_lines(turn: Turn) -> list[str]:
        """The turn's reply as the model saw it (prefix included), indented for a render."""
        reply = (turn.response_prefix + turn.text).strip()
        return ["    " + line for line in reply.splitlines() or [""]]

    @staticmethod
    def turn_header(turn: Turn, round_index: int) -> str:
        """``Student [model] round 2 (123 + 20 tokens, $0.0000041)``: the render's turn header."""
        return (
            f"{turn.role.capitalize()} [{turn.model}] round {round_index} "
            f"({turn.prompt_tokens} + {turn.completion_tokens} tokens, ${turn.cost:.7f})"
        )
