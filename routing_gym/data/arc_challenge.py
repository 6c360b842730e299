"""ARC-Challenge: grade-school science multiple choice, the original AI2 JSON Lines file."""

from __future__ import annotations

import os
import string
from dataclasses import dataclass
from typing import Mapping

from routing_gym.data.records import Record, iter_json_records, resolve_split_file
from routing_gym.data.splits import DEFAULT_FRACTIONS, DEFAULT_SALT, select_split

ARC_FILE_SPLIT = "test"  # the one file the data directory holds; train/valid/test come from id hashes
_NUMERIC_LABELS = ("1", "2", "3", "4", "5")


@dataclass(frozen=True)
class ARCExample:
    """One ARC question with 3 to 5 choices, relabelled A, B, C...; ``labels`` keeps the file's."""

    id: str  # "arc_challenge/<id>"
    question: str
    choices: tuple[str, ...]
    answer: str  # "A".."E", the position of the gold choice
    labels: tuple[str, ...]  # the file's labels ("A".."E" or "1".."4")

    @property
    def answer_index(self) -> int:
        """The gold choice as an index into ``choices``."""
        return string.ascii_uppercase.index(self.answer)


def load_arc_challenge(
    split: str | None = "all",
    data_dir: str | os.PathLike | None = None,
    path: str | os.PathLike | None = None,
    fractions: Mapping[str, float] = DEFAULT_FRACTIONS,
    salt: str = DEFAULT_SALT,
    limit: int | None = None,
) -> list[ARCExample]:
    """Load ARC-Challenge from ``<data_dir>/arc_challenge/test.jsonl`` (or ``path``).

    ``split`` ("train", "valid", "test", or "all") keeps the questions whose id hashes into it,
    as the outcome table splits. ``limit`` applies after the split.
    Raises DataFormatError naming the file, line and field on a malformed row: fewer than 3
    or more than 5 choices, repeated labels, or an ``answerKey`` that is not a label.
    """
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be >= 0 or None, got {limit}")
    file = resolve_split_file("arc_challenge", path if path is not None else ARC_FILE_SPLIT, data_dir)
    examples: list[ARCExample] = []
    seen: set[str] = set()
    for record in iter_json_records(file):
        example = _parse(record)
        if example.id in seen:
            raise record.error(f"duplicate id {example.id!r}", field="id")
        seen.add(example.id)
        examples.append(example)
    examples = select_split(examples, split, fractions, salt)
    return examples if limit is None else examples[:limit]


def _parse(record: Record) -> ARCExample:
    identifier = record.require("id", str)
    question = record.require("question", dict)
    stem = question.get("stem")
    if not isinstance(stem, str) or not stem.strip():
        raise record.error("missing or empty stem", field="question.stem")
    choices = question.get("choices")
    if not isinstance(choices, list) or not 3 <= len(choices) <= 5:
        count = len(choices) if isinstance(choices, list) else type(choices).__name__
        raise record.error(f"expected a list of 3 to 5 choices, got {count}", field="question.choices")
    texts, labels = [], []
    for position, choice in enumerate(choices):
        if not (isinstance(choice, dict) and isinstance(choice.get("text"), str)
                and isinstance(choice.get("label"), str)):
            raise record.error(f"choice {position} needs string 'text' and 'label'", field="question.choices")
        texts.append(choice["text"])
        labels.append(choice["label"].strip())
    if len(set(labels)) != len(labels):
        raise record.error(f"repeated choice labels {labels}", field="question.choices")
    key = record.require("answerKey", str).strip()
    if key not in labels:
        raise record.error(f"answerKey {key!r} is not one of the labels {labels}", field="answerKey")
    letters = string.ascii_uppercase[: len(labels)]
    return ARCExample(
        id=f"arc_challenge/{identifier}",
        question=stem,
        choices=tuple(texts),
        answer=letters[labels.index(key)],
        labels=tuple(labels),
    )
