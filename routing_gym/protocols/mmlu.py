"""MMLU as a Teacher–Student dialogue: the Student solves, the Teacher submits or sends it back."""

from __future__ import annotations

import dataclasses
import math
import string
from typing import Any

from routing_gym.llm.requests import ScoringRequest
from routing_gym.metrics import extract_choice_letter
from routing_gym.protocols.base import STUDENT, TEACHER, EpisodeState, Turn
from routing_gym.protocols.dialogue import RoundProtocol, clip, verdict_text

LETTER_MODES = ("logprob", "regex", "regex_then_logprob")
STUDENT_PREFIX = "Solution:"
#: Appended after the Student's solution to read its letter from the next-token log-probs.
ANSWER_CUE = "\nAnswer: ("


class MMLUProtocol(RoundProtocol):
    """Multiple-choice QA in up to ``max_rounds`` rounds of solve-and-review (HAPS appendix B style).

    ## Rounds
    * **Student** writes a short solution ending in ``Answer: X`` (prefilled with
      ``"Solution:"``). Its letter is read according to ``letter_mode``:

      - ``"logprob"`` (default): the same model scores each letter as the continuation of
        its own prompt + solution + ``"\\nAnswer: ("`` (``LLMPool.choice_logprobs``, cached);
        the argmax wins, ties going to the earlier letter. Small models seldom write a clean
        letter, but they do put more mass on the one their solution points to.
      - ``"regex"``: ``extract_choice_letter`` on the solution; when it finds none, the turn
        has no letter (``parsed["letter"] is None``) and the previous answer stands.
      - ``"regex_then_logprob"``: the regex, and the log-probs only when it finds none.

      ``parsed`` records ``letter``, ``letter_source`` ("logprob", "regex" or "none"), the
      regex's own reading ``regex_letter`` and, when scored, ``letter_logprobs``
      (letter -> log-prob). The scoring pass is a forward pass of the same model, so the turn's
      cost and scoring token counts include it.
    * **Teacher** reads the solution and replies ``Submit`` (hand the answer in) or
      ``Continue`` (``Revise`` also counts as Continue): the Student revises in the next round,
      seeing its previous solution, letter and the Teacher's reason. The reply is prefilled
      with ``"Verdict:"``; the first verdict word counts. A reply naming none
      (``parsed["verdict_parsed"] = False``) is read per ``verdict_mode``: by default the same
      model scores " Submit" and " Continue" after the prefix (``verdict_source = "logprob"``);
      with ``verdict_mode="text"`` it counts as ``default_verdict`` ("continue").

    ## Memories
    Student: its answer of each round and each Teacher verdict with reason. Teacher: each
    answer it reviewed with its verdict. At most ``memory_length`` notes of ``memory_chars``.

    ## Episode end
    ``Submit`` ends the episode (``state.extra["end_reason"] = "submitted"``); otherwise it
    ends after the Teacher turn of round ``max_rounds`` (``"round_cap"``; that verdict is
    recorded but changes nothing). The last letter the Student gave counts.

    ## Score
    ``performance`` is 1.0 when ``state.answer`` is the gold letter, else 0.0 (no letter: 0).
    """

    name = "mmlu"
    prompt_name = "mmlu"
    verdict_words = {"submit": "submit", "continue": "continue", "revise": "continue"}

    @classmethod
    def default_config(cls) -> dict[str, Any]:
        return {
            **super().default_config(),
            "max_rounds": 3,
            "student_max_new_tokens": 64,
            "letter_mode": "logprob",
            # characters of the previous solution shown back to both agents
            "solution_chars": 400,
        }

    def validate_config(self) -> None:
        super().validate_config()
        self._check_choice("letter_mode", LETTER_MODES)
        self._check_int("solution_chars", 16)

    # -- episode ------------------------------------------------------------------------------
    def start(self, example: Any) -> EpisodeState:
        for attribute in ("question", "choices", "answer"):
            if not hasattr(example, attribute):
                raise TypeError(f"MMLUProtocol needs an example with .{attribute} (an MMLUExample).")
        if not 2 <= len(example.choices) <= 26:
            raise ValueError(f"MMLUProtocol: an example needs 2 to 26 choices, got {len(example.choices)}.")
        return EpisodeState(example=example, searches_left=0)

    @staticmethod
    def letters(state: EpisodeState) -> tuple[str, ...]:
        """The choice letters of the question ("A".."D" for MMLU)."""
        return tuple(string.ascii_uppercase[: len(state.example.choices)])

    def performance(self, state: EpisodeState) -> float:
        return float(state.answer is not None and state.answer == state.example.answer.strip().upper())

    # -- Student --------------------------------------------------------------------------------
    def student_prompt(self, state: EpisodeState):
        prompts = self.prompts(STUDENT)
        history = ""
        if state.turns:
            student, teacher = state.turns[-2], state.turns[-1]
            history = "\n" + prompts["history"].substitute(
                solution=clip(student.text, self.config["solution_chars"]),
                letter=student.parsed["letter"] or "none",
                verdict=teacher.parsed["verdict"].capitalize(),
                feedback=teacher.parsed["reason"] or "(no reason given)",
            ) + "\n"
        user = prompts["user"].substitute(
            question=state.example.question.strip(),
            choices=_choices_text(state),
            history=history,
            instruction=prompts["revise_instruction" if state.turns else "instruction"].template,
        )
        return self.chat(prompts, user), STUDENT_PREFIX, ()

    @property
    def max_scoring_choices_per_turn(self) -> int:
        # MMLU's four letters (a question with more choices costs more than this bound says)
        letters = 0 if self.config["letter_mode"] == "regex" else 4
        return max(super().max_scoring_choices_per_turn, letters)

    def student_scoring(self, state, request, result) -> list[ScoringRequest]:
        """The letters scored after the solution, unless ``letter_mode`` lets the regex decide."""
        mode = self.config["letter_mode"]
        letters = self.letters(state)
        regex_letter = extract_choice_letter(result.text, num_choices=len(letters))
        if mode == "regex" or (mode != "logprob" and regex_letter is not None):
            return []
        # the turn's own request (model, adapter) reads the letter after its solution
        cue = request.response_prefix + result.text + ANSWER_CUE
        scoring = dataclasses.replace(request, max_new_tokens=1, stop=(), response_prefix=cue)
        return [ScoringRequest(scoring, letters)]

    def student_step(self, state, turn, request, scores) -> None:
        mode = self.config["letter_mode"]
        letters = self.letters(state)
        regex_letter = extract_choice_letter(turn.text, num_choices=len(letters))
        parsed: dict[str, Any] = {"letter": None, "letter_source": "none", "regex_letter": regex_letter}
        if mode != "logprob" and regex_letter is not None:
            parsed.update(letter=regex_letter, letter_source="regex")
        elif mode != "regex":
            logprobs = scores[0].logprobs
            best = max(range(len(letters)), key=lambda i: (logprobs[i], -i))  # ties: earlier letter
            parsed.update(
                letter=letters[best],
                letter_source="logprob",
                letter_logprobs={letter: float(lp) for letter, lp in zip(letters, logprobs)},
            )
        if parsed["letter"] is not None:
            state.answer = parsed["letter"]
        turn.parsed = parsed
        turn.observation = f"answer {parsed['letter']}" if parsed["letter"] else "no answer letter found"
        answered = parsed["letter"] or "nothing"
        self.remember(state, STUDENT, f"Round {state.rounds_done + 1}: I answered {answered}.")

    # -- Teacher --------------------------------------------------------------------------------
    def teacher_prompt(self, state: EpisodeState):
        prompts = self.prompts(TEACHER)
        student = state.turns[-1]
        user = prompts["user"].substitute(
            question=state.example.question.strip(),
            choices=_choices_text(state),
            notes=self.notes_text(state, TEACHER),
            solution=clip(student.text, self.config["solution_chars"]),
            letter=student.parsed["letter"] or "none",
            instruction=prompts["instruction"].template,
        )
        return self.chat(prompts, user), self.teacher_prefix, ("\n\n",)

    def teacher_step(self, state, turn, request, scores) -> None:
        student = state.turns[-1]
        parsed = self.read_verdict(turn, scores)
        verdict = parsed["verdict"]
        turn.parsed = {**parsed, "reviewed_letter": student.parsed["letter"]}
        self.remember_review(state, f"answer {student.parsed['letter'] or 'none'}", verdict, parsed["reason"])
        self.end_round(state)
        if verdict == "submit":
            state.done = True
            state.extra["end_reason"] = "submitted"
        elif state.done:
            state.extra["end_reason"] = "round_cap"

    # -- text views -----------------------------------------------------------------------------
    def question_text(self, state: EpisodeState) -> str:
        return f"{state.example.question.strip()}\n{_choices_text(state)}"

    def turn_summary(self, turn: Turn) -> str:
        if turn.role == STUDENT:
            return f"Student: {clip(turn.text, 200)} -> answer {turn.parsed['letter'] or 'none'}"
        return f"Teacher: {turn.parsed['verdict'].capitalize()}. {turn.parsed['reason']}"

    def render(self, state: EpisodeState) -> str:
        example = state.example
        header = f"MMLU {getattr(example, 'id', '')}".rstrip()
        lines = [header, example.question.strip(), _choices_text(state)]
        for i, turn in enumerate(state.turns):
            if i % 2 == 0:
                lines.append(f"--- round {i // 2 + 1} ---")
            lines.append(self.turn_header(turn, i // 2 + 1))
            lines.extend(self.reply_lines(turn))
            parsed = turn.parsed
            if turn.role == STUDENT:
                detail = ""
                if "letter_logprobs" in parsed:
                    probs = _softmax(parsed["letter_logprobs"])
                    detail = " (" + ", ".join(f"{k} {p:.2f}" for k, p in probs.items()) + ")"
                letter = parsed["letter"] or "none"
                lines.append(f"  => answer {letter} via {parsed['letter_source']}{detail}")
            else:
                lines.append(f"  => {verdict_text(parsed)}")
        status = f"done ({state.extra.get('end_reason', '')})" if state.done else "in progress"
        score = f"score {self.performance(state):.0f}"
        lines.append(f"Answer: {state.answer} | gold: {example.answer} | {score} | {status}")
        return "\n".join(lines)


def _choices_text(state: EpisodeState) -> str:
    choices = state.example.choices
    return "\n".join(f"{letter}. {choice}" for letter, choice in zip(string.ascii_uppercase, choices))


def _softmax(logprobs: dict[str, float]) -> dict[str, float]:
    # Letter probabilities renormalized over the choices, for a readable render.
    top = max(logprobs.values())
    weights = {k: math.exp(v - top) for k, v in logprobs.items()}
    total = sum(weights.values())
    return {k: w / total for k, w in weights.items()}
