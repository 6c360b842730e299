"""Per-answer scoring functions for the benchmark tasks (pure, no I/O)."""

from routing_gym.metrics.choice import choice_accuracy, choice_score, extract_choice_letter
from routing_gym.metrics.code import extract_code, pass_at_1
from routing_gym.metrics.math import extract_final_number, gsm8k_score, numbers_match
from routing_gym.metrics.math_answer import math_score, parse_math_answer
from routing_gym.metrics.qa import exact_match, f1_score, normalize_answer, precision_recall_f1

__all__ = [
    "choice_accuracy",
    "choice_score",
    "exact_match",
    "extract_choice_letter",
    "extract_code",
    "extract_final_number",
    "f1_score",
    "gsm8k_score",
    "math_score",
    "normalize_answer",
    "numbers_match",
    "parse_math_answer",
    "pass_at_1",
    "precision_recall_f1",
]
