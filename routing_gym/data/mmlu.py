"""MMLU in the Hendrycks CSV layout: ``mmlu/<split>/<subject>_<split>.csv``."""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from routing_gym.errors import DataFormatError
from routing_gym.paths import data_dir as resolve_data_dir

CHOICE_LETTERS = ("A", "B", "C", "D")
_COLUMNS = ("question", "A", "B", "C", "D", "answer")


@dataclass(frozen=True)
class MMLUExample:
    """One four-way multiple-choice MMLU question."""

    id: str  # "mmlu/<split>/<subject>/<row>", row counted from 0 within the subject file
    subject: str
    question: str
    choices: tuple[str, str, str, str]
    answer: str  # "A".."D"

    @property
    def answer_index(self) -> int:
        """The gold choice as an index into ``choices``."""
        return CHOICE_LETTERS.index(self.answer)

    @property
    def answer_text(self) -> str:
        """The text of the gold choice."""
        return self.choices[self.answer_index]


def mmlu_subjects(split: str = "val", data_dir: str | os.PathLike | None = None) -> list[str]:
    """The subjects that have a ``<subject>_<split>.csv`` file, sorted."""
    folder = _split_folder(split, data_dir)
    suffix = f"_{split}.csv"
    return sorted(p.name[: -len(suffix)] for p in folder.glob(f"*{suffix}") if p.is_file())


def load_mmlu(
    split: str = "val",
    subjects: Iterable[str] | None = None,
    data_dir: str | os.PathLike | None = None,
) -> list[MMLUExample]:
    """Load MMLU questions of ``split`` ("dev", "val" or "test") for ``subjects`` (default: all).

    Examples come subject by subject in sorted subject order, rows in file order.
    Raises FileNotFoundError (naming the path) when the split folder, or the file of a
    requested subject, is missing, and DataFormatError naming the file, line and field on a
    row with the wrong column count, an empty question or an answer letter outside A-D.
    """
    if isinstance(subjects, str):
        raise TypeError("subjects must be a list of subject names, not a single string")
    folder = _split_folder(split, data_dir)
    names = mmlu_subjects(split, data_dir) if subjects is None else sorted(set(subjects))
    if not names:
        raise FileNotFoundError(f"No MMLU files matching *_{split}.csv in {folder}.")
    examples: list[MMLUExample] = []
    for subject in names:
        path = folder / f"{subject}_{split}.csv"
        if not path.is_file():
            raise FileNotFoundError(f"No MMLU file for subject {subject!r}: {path} does not exist.")
        examples.extend(load_mmlu_file(path, subject=subject, split=split))
    return examples


def load_mmlu_file(
    path: str | os.PathLike, subject: str | None = None, split: str | None = None
) -> list[MMLUExample]:
    """Load one Hendrycks-layout CSV file (no header; ``question,A,B,C,D,answer``).

    ``subject`` and ``split`` default to what the file name ``<subject>_<split>.csv`` says.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"MMLU file {path} does not exist.")
    stem_subject, _, stem_split = path.stem.rpartition("_")
    subject = subject or stem_subject or path.stem
    split = split or stem_split
    examples = []
    # newline="" lets the csv module handle quoted fields that span several lines
    with open(path, encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle)
        last_line = 0
        try:
            for row in reader:
                first_line, last_line = last_line + 1, reader.line_num
                if not row:
                    continue
                examples.append(_parse_row(row, path, first_line, subject, split, len(examples)))
        except csv.Error as exc:
            raise DataFormatError(path, f"not valid CSV ({exc})", line=reader.line_num) from exc
        except UnicodeDecodeError as exc:
            raise DataFormatError(
                path, f"not valid UTF-8 ({exc.reason})", line=last_line + 1
            ) from exc
    return examples


def _parse_row(
    row: list[str], path: Path, line: int, subject: str, split: str, index: int
) -> MMLUExample:
    if len(row) != len(_COLUMNS):
        raise DataFormatError(
            path,
            f"expected {len(_COLUMNS)} columns (question,A,B,C,D,answer), got {len(row)}",
            line=line,
            field="columns",
        )
    question, a, b, c, d, answer = row
    if not question.strip():
        raise DataFormatError(path, "empty question", line=line, field="question")
    answer = answer.strip()
    if answer not in CHOICE_LETTERS:
        raise DataFormatError(
            path, f"answer must be one of A, B, C, D, got {answer!r}", line=line, field="answer"
        )
    return MMLUExample(
        id=f"mmlu/{split}/{subject}/{index}",
        subject=subject,
        question=question,
        choices=(a, b, c, d),
        answer=answer,
    )


def _split_folder(split: str, data_dir: str | os.PathLike | None) -> Path:
    if not split or "/" in split or os.sep in split:
        raise ValueError(
            f"MMLU split must be a folder name such as 'dev', 'val', 'test'; got {split!r}"
        )
    folder = resolve_data_dir(data_dir) / "mmlu" / split
    if not folder.is_dir():
        raise FileNotFoundError(f"No MMLU split {split!r}: folder {folder} does not exist.")
    return folder
