"""Multiple-choice scoring: find the letter a model chose in free text."""

from __future__ import annotations

import re
import string
from typing import Sequence

# "Answer: B", "the answer is (c).", "Final answer - **D**", "the correct option is B"
_EXPLICIT = re.compile(
    r"""(?:\banswer|\b(?:correct|right|best)\s+(?:option|choice))
        \s*(?:is|would\s+be|should\s+be|will\s+be)?\s*[:=\-]?\s*
        (?:option|choice|letter)?\s*
        (?P<open>[(\[*"'`]*)\s*(?P<letter>[A-Za-z])(?![A-Za-z0-9])""",
    re.IGNORECASE | re.VERBOSE,
)
# at the very start: "B", "B) ...", "(C)", "**D.**", "a."
_LEADING = re.compile(r"""\A\s*(?P<open>[(\[*"'`]*)\s*(?P<letter>[A-Za-z])(?![A-Za-z0-9])""")
_PARENTHESIZED = re.compile(r"\(([A-Za-z])\)")
# a bare letter that ends a clause; anything else ("A cat", "is a bit") is prose
_CLOSER = re.compile(r"""\s*(?:[).\]:,;!?*"'`]|\Z|\n)""")


def _letters(num_choices: int) -> str:
    if not 2 <= num_choices <= 26:
        raise ValueError(f"num_choices must be in [2, 26], got {num_choices}")
    return string.ascii_uppercase[:num_choices]


def _is_choice(match: re.Match, text: str) -> bool:
    # a capital letter after "answer" is a choice ("The answer is B because ..."); a lone
    # letter elsewhere, or a lowercase one, must be bracketed or end the clause
    if match.group("open") or _CLOSER.match(text, match.end("letter")):
        return True
    return match.re is _EXPLICIT and match.group("letter").isupper()


def extract_choice_letter(text: str, num_choices: int = 4) -> str | None:
    """The upper-case choice letter a response commits to, or None when it commits to none.

    Looks, in order, for the last explicit statement ("Answer: B", "the answer is d."), a
    letter opening the response ("B) ...", "(C)", "D."), then a single distinct
    parenthesized letter anywhere ("I pick (C) here"). A letter past ``num_choices``
    gives None.
    """
    valid = _letters(num_choices)
    if not text:
        return None
    explicit = [m for m in _EXPLICIT.finditer(text) if _is_choice(m, text)]
    if explicit:
        letter = explicit[-1].group("letter").upper()
        return letter if letter in valid else None
    leading = _LEADING.match(text)
    if leading and _is_choice(leading, text):
        letter = leading.group("letter").upper()
        return letter if letter in valid else None
    bracketed = {m.upper() for m in _PARENTHESIZED.findall(text)} & set(valid)
    if len(bracketed) == 1:
        return bracketed.pop()
    return None


def choice_score(text: str, gold: str, num_choices: int = 4) -> float:
    """1.0 when the letter extracted from ``text`` equals ``gold`` (case-insensitive), else 0.0."""
    return float(extract_choice_letter(text, num_choices) == gold.strip().upper())


def choice_accuracy(
    predictions: Sequence[str], golds: Sequence[str], num_choices: int = 4
) -> float:
    """Mean ``choice_score`` over paired free-text predictions and gold letters."""
    if len(predictions) != len(golds):
        raise ValueError(f"{len(predictions)} predictions for {len(golds)} gold letters")
    if not golds:
        raise ValueError("choice_accuracy needs at least one prediction")
    return sum(choice_score(p, g, num_choices) for p, g in zip(predictions, golds)) / len(golds)
