"""GSM8K grade-school math: JSON Lines ``{question, answer}``, final answer after ``#### ``."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from routing_gym.data.records import iter_json_records, looks_like_path, resolve_split_file

ANSWER_MARKER = "####"
_NUMBER = re.compile(r"-?(?:\d+(?:\.\d*)?|\.\d+)")


@dataclass(frozen=True)
class GSM8KExample:
    """One GSM8K problem; ``final_answer`` is the number after ``####``, commas removed."""

    id: str  # "gsm8k/<split>/<row>", row counted from 0 in file order
    question: str
    answer_text: str  # the full reference solution, ending in "#### <number>"
    final_answer: str

    @property
    def rationale(self) -> str:
        """The worked solution without its ``#### <number>`` line."""
        return self.answer_text.rpartition(ANSWER_MARKER)[0].rstrip()


def load_gsm8k(
    split: str | os.PathLike = "test",
    data_dir: str | os.PathLike | None = None,
    limit: int | None = None,
) -> list[GSM8KExample]:
    """Load GSM8K problems from ``<data_dir>/gsm8k/<split>.jsonl`` or a JSON Lines path.

    ``limit`` keeps the first ``limit`` problems; rows past it are not read.
    Raises FileNotFoundError (naming the paths tried) when the file is missing, and
    DataFormatError naming the file, line and field on a malformed row, e.g. an
    ``answer`` without ``####`` or with a non-numeric final answer.
    """
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be >= 0 or None, got {limit}")
    path = resolve_split_file("gsm8k", split, data_dir)
    name = path.name.split(".")[0] if looks_like_path(split) else str(split)
    examples: list[GSM8KExample] = []
    for record in iter_json_records(path):
        if limit is not None and len(examples) >= limit:
            break
        question = record.require_text("question")
        answer_text = record.require("answer", str)
        if ANSWER_MARKER not in answer_text:
            raise record.error(
                f"no {ANSWER_MARKER!r} marker before the final answer", field="answer"
            )
        final = answer_text.rpartition(ANSWER_MARKER)[2].strip().replace(",", "")
        if not _NUMBER.fullmatch(final):
            raise record.error(
                f"final answer after {ANSWER_MARKER!r} is not a number: {final!r}", field="answer"
            )
        examples.append(
            GSM8KExample(
                id=f"gsm8k/{name}/{len(examples)}",
                question=question,
                answer_text=answer_text,
                final_answer=final,
            )
        )
    return examples
