"""MATH scoring: answer equivalence with Hugging Face's ``math-verify``.

math-verify extracts the final answer of free text (boxed, "the answer is", or a bare
expression), parses LaTeX into sympy and compares symbolically; comparing LaTeX by hand
misses equal forms such as ``\\frac{1}{2}`` and ``0.5``.
"""

from __future__ import annotations

import threading

_TIMEOUT_SECONDS = 5


def _timeout() -> int | None:
    # math-verify times out with signal.alarm, which only the main thread may set
    return _TIMEOUT_SECONDS if threading.current_thread() is threading.main_thread() else None


def parse_math_answer(text: str) -> list:
    """The answers math-verify reads from ``text`` (sympy objects and their strings); [] for none."""
    from math_verify import parse

    if not text:
        return []
    return parse(text, parsing_timeout=_timeout())


def math_score(text: str, gold: str) -> float:
    """1.0 when the final answer of ``text`` is mathematically equal to the gold LaTeX answer."""
    from math_verify import verify

    predicted = parse_math_answer(text)
    if not predicted:
        return 0.0
    gold_parsed = parse_math_answer(f"${gold}$")
    if not gold_parsed:
        raise ValueError(f"math-verify cannot parse the gold answer {gold!r}")
    return float(verify(gold_parsed, predicted, timeout_seconds=_timeout()))
