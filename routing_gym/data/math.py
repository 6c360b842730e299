"""MATH competition problems (Hendrycks et al.): the full test set and the MATH-500 subset."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Mapping

from routing_gym.data.records import Record, iter_json_records, resolve_split_file
from routing_gym.data.splits import DEFAULT_FRACTIONS, DEFAULT_SALT, select_split

MATH_SOURCES = ("test", "math500")
_BOX_COMMANDS = ("\\boxed", "\\fbox")


@dataclass(frozen=True)
class MATHExample:
    """One MATH problem; ``answer`` is the LaTeX of the reference answer (the last box)."""

    id: str  # "math/test/<idx>" or "math500/<unique_id>"
    problem: str
    solution: str
    answer: str
    subject: str
    level: int  # 1..5

    @property
    def question(self) -> str:
        """Same as ``problem``, so every example type has a ``question``."""
        return self.problem


def last_boxed(text: str) -> str | None:
    """The content of the last ``\\boxed{...}`` (or ``\\fbox{...}``) in ``text``, braces balanced."""
    start = max(text.rfind(command + "{") for command in _BOX_COMMANDS)
    if start < 0:
        return None
    opening = text.index("{", start)
    depth = 0
    for position in range(opening, len(text)):
        if text[position] == "{":
            depth += 1
        elif text[position] == "}":
            depth -= 1
            if depth == 0:
                return text[opening + 1 : position]
    return None


def load_math(
    source: str = "math500",
    split: str | None = "all",
    data_dir: str | os.PathLike | None = None,
    path: str | os.PathLike | None = None,
    fractions: Mapping[str, float] = DEFAULT_FRACTIONS,
    salt: str = DEFAULT_SALT,
    limit: int | None = None,
) -> list[MATHExample]:
    """Load MATH problems from ``<data_dir>/math/<source>.jsonl`` ("test": all 5,000; "math500")
    or from ``path`` (laid out like ``source``).

    ``split`` ("train", "valid", "test" or "all") keeps the problems whose id hashes into it.
    Raises DataFormatError naming the file, line and field on a malformed row, e.g. a
    ``test`` solution without a ``\\boxed{}`` answer or a level outside 1..5.
    """
    if source not in MATH_SOURCES:
        raise ValueError(f"unknown MATH source {source!r}; choose one of {MATH_SOURCES}")
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be >= 0 or None, got {limit}")
    file = resolve_split_file("math", path if path is not None else source, data_dir)
    parse = _parse_math500 if source == "math500" else _parse_test
    examples: list[MATHExample] = []
    seen: set[str] = set()
    for record in iter_json_records(file):
        example = parse(record)
        if example.id in seen:
            raise record.error(f"duplicate id {example.id!r}", field="unique_id" if source == "math500" else "idx")
        seen.add(example.id)
        examples.append(example)
    examples = select_split(examples, split, fractions, salt)
    return examples if limit is None else examples[:limit]


def _level(record: Record, value) -> int:
    if isinstance(value, str) and value.startswith("Level "):
        value = value[len("Level "):]
        value = int(value) if value.isdigit() else value
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 5:
        raise record.error(f"level must be 1..5 or 'Level 1'..'Level 5', got {value!r}", field="level")
    return value


def _parse_test(record: Record) -> MATHExample:
    problem = record.require_text("problem")
    solution = record.require("solution", str)
    answer = last_boxed(solution)
    if answer is None:
        raise record.error("no \\boxed{...} answer in the solution", field="solution")
    idx = record.require("idx", int)
    return MATHExample(
        id=f"math/test/{idx}",
        problem=problem,
        solution=solution,
        answer=answer.strip(),
        subject=record.require("type", str),
        level=_level(record, record.require("level", (str, int))),
    )


def _parse_math500(record: Record) -> MATHExample:
    answer = record.require("answer", str)
    if not answer.strip():
        raise record.error("empty answer", field="answer")
    return MATHExample(
        id=f"math500/{record.require('unique_id', str)}",
        problem=record.require_text("problem"),
        solution=record.require("solution", str),
        answer=answer.strip(),
        subject=record.require("subject", str),
        level=_level(record, record.require("level", (str, int))),
    )
