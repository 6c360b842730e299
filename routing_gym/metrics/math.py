"""GSM8K scoring: pull the final number out of free text and compare numerically."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

# A number: optional sign (not when it follows a word or digit, so "3-5" is 3 and 5),
# optional "$", then thousands-grouped or plain digits with an optional decimal part.
_NUMBER = re.compile(
    r"""(?P<sign>(?<![\w)\]])[-\u2212])?\$?\s?
        (?P<digits>(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|\.\d+)
        (?!\d|,\d)""",
    re.VERBOSE,
)
_BOXED = re.compile(r"\\boxed\{([^{}]*)\}")
_MARKER = "####"


def _canonical(sign: str, digits: str) -> str:
    digits = digits.replace(",", "")
    if "." in digits:
        digits = digits.rstrip("0").rstrip(".")
    whole, dot, frac = digits.partition(".")
    digits = str(int(whole or "0")) + (dot + frac if frac else "")
    return digits if not sign or digits == "0" else "-" + digits


def _last_number(text: str) -> str | None:
    last = None
    for last in _NUMBER.finditer(text):
        pass
    return None if last is None else _canonical(last.group("sign") or "", last.group("digits"))


def extract_final_number(text: str | None) -> str | None:
    """The answer number of a response, canonical (no commas or "$", no trailing zeros), or None.

    Takes the first number after the last ``####`` when there is one, else the last
    ``\\boxed{...}`` that holds a number, else the last number in the text.
    """
    if not text:
        return None
    if _MARKER in text:
        found = _NUMBER.search(text.rpartition(_MARKER)[2])
        if found:
            return _canonical(found.group("sign") or "", found.group("digits"))
    for boxed in reversed(_BOXED.findall(text)):
        number = _last_number(boxed)
        if number is not None:
            return number
    return _last_number(text)


def _to_decimal(value: str | int | float | Decimal | None) -> Decimal | None:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (int, Decimal)):
        return Decimal(value)
    if isinstance(value, float):
        return Decimal(repr(value))
    cleaned = value.strip().replace(",", "").replace("$", "").replace("\u2212", "-")
    cleaned = cleaned.rstrip("%")
    try:
        number = Decimal(cleaned)
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def numbers_match(pred: str | int | float | None, gold: str | int | float) -> bool:
    """Whether two numbers or number strings ("1,234", "$5", "18.00") are equal; None never is."""
    a, b = _to_decimal(pred), _to_decimal(gold)
    return a is not None and b is not None and a == b


def gsm8k_score(text: str, gold: str) -> float:
    """1.0 when the final number of ``text`` equals the gold final answer, else 0.0."""
    return float(numbers_match(extract_final_number(text), gold))
