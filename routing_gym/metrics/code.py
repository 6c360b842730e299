"""Code answers: pull the program out of a model's reply, and pass@1 over outcomes (pure).

Running a program against its tests is the tasks layer's job (``routing_gym.tasks.code_tasks``).
"""

from __future__ import annotations

import re
from typing import Sequence

_FENCE = re.compile(r"```[ \t]*(?:python3?|py)?[ \t]*\n(.*?)(?:```|\Z)", re.DOTALL | re.IGNORECASE)


def extract_code(text: str) -> str:
    """The code of a reply: its fenced blocks joined (an unclosed last fence counts), else the text."""
    if not text:
        return ""
    blocks = [block.strip("\n") for block in _FENCE.findall(text)]
    blocks = [block for block in blocks if block.strip()]
    return "\n\n".join(blocks) if blocks else text.strip("\n")


def pass_at_1(outcomes: Sequence[bool]) -> float:
    """The share of problems whose single sample passed."""
    if not outcomes:
        raise ValueError("pass_at_1 needs at least one outcome")
    return sum(bool(o) for o in outcomes) / len(outcomes)
