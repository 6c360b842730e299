"""HotpotQA as a Teacher–Student dialogue: the Student searches and answers, the Teacher reviews."""

from __future__ import annotations

import functools
import re
from typing import Any

from routing_gym.metrics import f1_score
from routing_gym.protocols.base import STUDENT, TEACHER, EpisodeState, Turn
from routing_gym.protocols.dialogue import RoundProtocol, clip, verdict_text
from routing_gym.retrieval.encoder import SentenceEncoder, default_encoder
from routing_gym.retrieval.retriever import ParagraphIndex, retriever_for_example

# "Action: Search[Reggie Jackson]", "finish[yes"; the closing bracket is usually cut off by
# the "]" stop string, so the argument may also end at the line or text end.
_ACTION = re.compile(r"\b(?P<kind>search|finish)\s*\[(?P<arg>[^\]\n]*)", re.IGNORECASE)
_THOUGHT = re.compile(r"^\s*thought\s*:\s*", re.IGNORECASE)
_TRAILING_ACTION = re.compile(r"\s*action\s*:?\s*$", re.IGNORECASE)

STUDENT_PREFIX = "Thought:"
FORCED_PREFIX = "Action: Finish["


@functools.lru_cache(maxsize=None)
def _encoder(cache: str | None) -> SentenceEncoder:
    # One encoder per cache path and process, so MiniLM loads at most once.
    return default_encoder() if cache == "default" else SentenceEncoder(cache_path=cache)


class HotpotQAProtocol(RoundProtocol):
    """Multi-hop QA over a question's 10 paragraphs (HAPS appendix B style; prompts our own).

    ## Rounds
    Each round is one Student turn, then one Teacher turn.

    * **Student** writes ``Thought: ...`` then ``Action: Search[entity]`` or
      ``Action: Finish[answer]`` (the reply is prefilled with ``"Thought:"`` and stops at
      ``"]"``, so one action per turn). ``Search`` retrieves the best-matching paragraph of the
      question's own 10 (dense MiniLM retrieval; the index is built on the first search and
      kept in ``state.extra["retriever"]``); with ``fresh_paragraphs`` a paragraph already read
      is skipped in favour of the next best one. Each search spends one of
      ``search_budget``. ``Finish`` sets ``state.answer``.
    * **Forced finish**: when no searches are left, or on the last round, the Student's
      reply is prefilled with ``"Action: Finish["`` and stops at ``"]"`` or a newline.
    * **Teacher** reviews the Student's step and replies ``Continue`` (a useful search, or an
      answer it accepts) or ``Rethink``, then a reason. The reply is prefilled with
      ``"Verdict:"``; the first verdict word counts. A reply naming none
      (``parsed["verdict_parsed"] = False``) is read per ``verdict_mode``: by default the same
      model scores " Continue" and " Rethink" right after the prefix and the likelier wins
      (``verdict_source = "logprob"``, scores in ``verdict_logprobs``); with
      ``verdict_mode="text"`` it counts as ``default_verdict`` ("continue"). The Student reads
      the verdict and reason in its next prompt.

    ## Memories
    After every turn, ``state.memory`` gains a note (at most ``memory_chars`` characters; the
    last ``memory_length`` notes kept per agent). Student: each retrieved paragraph
    (``"Title: text"``), each answer it proposed, each Teacher verdict with its reason.
    Teacher: each Student step with its verdict.

    ## Episode end and corner cases
    * The Teacher says ``Continue`` to a ``Finish``: the episode ends with that answer
      (``state.extra["end_reason"] = "accepted"``).
    * ``Rethink`` on a ``Finish``: the answer is kept as the current one, and the Student
      gets another round if any is left (searching again if its budget allows).
    * The round cap ``max_rounds`` (default ``search_budget + 1``) is reached: the episode
      ends after that round's Teacher turn, whose verdict is recorded but changes nothing;
      the last answer proposed counts, even one the Teacher rejected (``"round_cap"``).
    * An unparseable Student reply (no ``Search[...]``/``Finish[...]``, an empty argument,
      or a search with no budget left) is recorded as ``parsed["action"] == "invalid"`` with
      the reason; it spends no search, its observation tells the Student the format, and the
      Teacher still reviews it. The round counts.
    * No answer ever proposed: the answer is ``None`` and the score 0.

    ## Score
    ``performance`` is the HotpotQA token F1 of ``state.answer`` against the gold answer.
    """

    name = "hotpotqa"
    prompt_name = "hotpotqa"
    verdict_words = {"continue": "continue", "rethink": "rethink"}

    @classmethod
    def default_config(cls) -> dict[str, Any]:
        return {
            **super().default_config(),
            "search_budget": 3,
            # None: search_budget + 1, room for every search and a final answer
            "max_rounds": None,
            "memory_length": 6,
            # characters of a retrieved paragraph shown to the agents
            "paragraph_chars": 400,
            # a search returns the best paragraph not yet retrieved in this episode
            "fresh_paragraphs": True,
            # embedding cache of the retriever: "default" (the shared user cache), a path, or None
            "encoder_cache": "default",
        }

    def validate_config(self) -> None:
        self._check_int("search_budget", 0)
        if self.config["max_rounds"] is None:
            self.config["max_rounds"] = self.config["search_budget"] + 1
        super().validate_config()
        self._check_int("paragraph_chars", 16)
        if not isinstance(self.config["fresh_paragraphs"], bool):
            raise ValueError(
                "HotpotQAProtocol: config 'fresh_paragraphs' must be a bool, "
                f"got {self.config['fresh_paragraphs']!r}."
            )
        cache = self.config["encoder_cache"]
        if cache is not None and not isinstance(cache, str):
            raise ValueError(
                "HotpotQAProtocol: config 'encoder_cache' must be 'default', a path string or None, "
                f"got {cache!r}."
            )

    # -- episode ------------------------------------------------------------------------------
    def start(self, example: Any) -> EpisodeState:
        for attribute in ("question", "answer", "context"):
            if not hasattr(example, attribute):
                raise TypeError(f"HotpotQAProtocol needs an example with .{attribute} (a HotpotQAExample).")
        # extra["retrieved"]: titles read so far, in order; extra["retriever"] appears on the first search
        budget = self.config["search_budget"]
        return EpisodeState(example=example, searches_left=budget, extra={"retrieved": []})

    def index(self, state: EpisodeState) -> ParagraphIndex:
        """The question's paragraph index, built on first use and kept in the state."""
        if "retriever" not in state.extra:
            encoder = _encoder(self.config["encoder_cache"])
            state.extra["retriever"] = retriever_for_example(state.example.context, encoder)
        return state.extra["retriever"]

    def forced_finish(self, state: EpisodeState) -> bool:
        """Whether the next Student turn must answer (no searches left, or the last round)."""
        return state.searches_left <= 0 or state.rounds_done >= self.max_rounds - 1

    def performance(self, state: EpisodeState) -> float:
        return f1_score(state.answer, state.example.answer) if state.answer else 0.0

    # -- Student --------------------------------------------------------------------------------
    def student_prompt(self, state: EpisodeState):
        prompts = self.prompts(STUDENT)
        forced = self.forced_finish(state)
        last_step = ""
        if state.turns:  # the previous round's Student and Teacher turns
            student, teacher = state.turns[-2], state.turns[-1]
            last_step = "\n" + prompts["last_step"].substitute(
                action=_action_text(student.parsed),
                result=_result_text(student),
                verdict=teacher.parsed["verdict"].capitalize(),
                feedback=teacher.parsed["reason"] or "(no reason given)",
            ) + "\n"
        user = prompts["user"].substitute(
            question=state.example.question.strip(),
            searches_left=state.searches_left,
            notes=self.notes_text(state, STUDENT),
            last_step=last_step,
            instruction=prompts["forced_instruction" if forced else "instruction"].template,
        )
        messages = self.chat(prompts, user)
        if forced:
            return messages, FORCED_PREFIX, ("]", "\n")
        return messages, STUDENT_PREFIX, ("]", "\nObservation")

    def student_step(self, state, turn, request, scores) -> None:
        forced = request.response_prefix == FORCED_PREFIX
        parsed = parse_action(turn.response_prefix + turn.text)
        parsed["forced"] = forced
        if parsed["action"] == "search" and state.searches_left <= 0:
            parsed = {**parsed, "action": "invalid", "reason": "no searches left"}
        if parsed["action"] == "search":
            hit = self._retrieve(state, parsed["argument"])
            state.searches_left -= 1
            state.extra["retrieved"].append(hit.title)
            parsed.update(title=hit.title, rank=hit.rank, score=round(hit.score, 6))
            turn.observation = f"[{hit.title}] {clip(hit.text, self.config['paragraph_chars'])}"
            self.remember(state, STUDENT, f"{hit.title}: {hit.text}")
        elif parsed["action"] == "finish":
            state.answer = parsed["argument"]
            self.remember(state, STUDENT, f"I answered: {parsed['argument']}")
        else:
            turn.observation = self.prompts(STUDENT)["invalid_observation"].template
            self.remember(state, STUDENT, "My step was not a valid action.")
        turn.parsed = parsed

    def _retrieve(self, state: EpisodeState, query: str):
        index = self.index(state)
        if not self.config["fresh_paragraphs"]:
            return index.search(query, k=1)[0]
        hits = index.search(query, k=len(index))
        seen = set(state.extra["retrieved"])
        return next((h for h in hits if h.title not in seen), hits[0])

    # -- Teacher --------------------------------------------------------------------------------
    def teacher_prompt(self, state: EpisodeState):
        prompts = self.prompts(TEACHER)
        student = state.turns[-1]
        action = student.parsed["action"]
        if action == "search":
            outcome = prompts["search_outcome"].substitute(result=student.observation)
        elif action == "finish":
            outcome = prompts["finish_outcome"].substitute(answer=student.parsed["argument"])
        else:
            outcome = prompts["invalid_outcome"].template
        user = prompts["user"].substitute(
            question=state.example.question.strip(),
            notes=self.notes_text(state, TEACHER),
            step=_step_text(student),
            outcome=outcome,
            instruction=prompts["instruction"].template,
        )
        messages = self.chat(prompts, user)
        return messages, self.teacher_prefix, ("\n\n",)

    def teacher_step(self, state, turn, request, scores) -> None:
        student = state.turns[-1]
        parsed = self.read_verdict(turn, scores)
        verdict = parsed["verdict"]
        accepted = student.parsed["action"] == "finish" and verdict == "continue"
        turn.parsed = {**parsed, "reviewed_action": student.parsed["action"], "accepted": accepted}
        self.remember_review(state, _action_text(student.parsed), verdict, parsed["reason"])
        self.end_round(state)
        if accepted:
            state.done = True
            state.extra["end_reason"] = "accepted"
        elif state.done:
            state.extra["end_reason"] = "round_cap"

    # -- text views -----------------------------------------------------------------------------
    def question_text(self, state: EpisodeState) -> str:
        return state.example.question.strip()

    def turn_summary(self, turn: Turn) -> str:
        if turn.role == STUDENT:
            line = f"Student: {_action_text(turn.parsed)}"
            return f"{line} -> {turn.observation}" if turn.observation else line
        return f"Teacher: {turn.parsed['verdict'].capitalize()}. {turn.parsed['reason']}"

    def render(self, state: EpisodeState) -> str:
        example = state.example
        lines = [f"HotpotQA {getattr(example, 'id', '')}".rstrip(), f"Question: {example.question.strip()}"]
        for i, turn in enumerate(state.turns):
            if i % 2 == 0:
                lines.append(f"--- round {i // 2 + 1} (searches left: {_searches_before(state, i)}) ---")
            lines.append(self.turn_header(turn, i // 2 + 1))
            lines.extend(self.reply_lines(turn))
            parsed = turn.parsed
            if turn.role == STUDENT:
                note = f"  => {_action_text(parsed)}" + (" (forced)" if parsed.get("forced") else "")
                if parsed["action"] == "invalid":
                    note += f" ({parsed['reason']})"
                lines.append(note)
                if parsed["action"] == "search":
                    hit = f"rank {parsed['rank']}, score {parsed['score']:.3f}"
                    lines.append(f"  retrieved ({hit}): {turn.observation}")
                elif turn.observation:
                    lines.append(f"  observation: {turn.observation}")
            else:
                accepted = ", answer accepted" if parsed["accepted"] else ""
                lines.append(f"  => {verdict_text(parsed)}{accepted}")
        status = f"done ({state.extra.get('end_reason', '')})" if state.done else "in progress"
        score = f"F1 {self.performance(state):.3f}"
        lines.append(f"Answer: {state.answer!r} | gold: {example.answer!r} | {score} | {status}")
        return "\n".join(lines)


def parse_action(text: str) -> dict[str, Any]:
    """The Student's thought and first action in ``text``; ``action`` is search, finish or invalid."""
    match = _ACTION.search(text)
    if match is None:
        thought = clip(_THOUGHT.sub("", text), 300)
        return {"action": "invalid", "reason": "no Search[...] or Finish[...] found", "thought": thought}
    thought = clip(_TRAILING_ACTION.sub("", _THOUGHT.sub("", text[: match.start()])), 300)
    argument = match.group("arg").strip().strip("\"'").strip()
    if not argument:
        reason = f"empty {match.group('kind').capitalize()}[] argument"
        return {"action": "invalid", "reason": reason, "thought": thought}
    return {"action": match.group("kind").lower(), "argument": argument, "thought": thought}


def _action_text(parsed: dict[str, Any]) -> str:
    if parsed.get("action") in ("search", "finish"):
        return f"{parsed['action'].capitalize()}[{parsed['argument']}]"
    return "an invalid action"


def _step_text(turn: Turn) -> str:
    # A valid step is shown normalized (the "]" stop string cuts the closing bracket off).
    parsed = turn.parsed
    if parsed["action"] == "invalid":
        return clip(turn.response_prefix + turn.text, 400)
    thought = f"Thought: {parsed['thought']}\n" if parsed.get("thought") else ""
    return f"{thought}Action: {_action_text(parsed)}"


def _result_text(turn: Turn) -> str:
    if turn.parsed.get("action") == "finish":
        return f"you proposed the answer {turn.parsed['argument']!r}"
    return turn.observation


def _searches_before(state: EpisodeState, turn_index: int) -> int:
    # searches left when turn ``turn_index`` began: what is left now plus what was spent since
    later = state.turns[turn_index:]
    return state.searches_left + sum(t.role == STUDENT and t.parsed.get("action") == "search" for t in later)
