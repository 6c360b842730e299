"""F1/EM, letter accuracy, GSM8K numbers and the task scorers, on cases worked out by hand."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from routing_gym.metrics import (
    choice_accuracy,
    choice_score,
    exact_match,
    extract_choice_letter,
    extract_final_number,
    f1_score,
    gsm8k_score,
    normalize_answer,
    numbers_match,
    precision_recall_f1,
)
from routing_gym.tasks import get_task

# ---------------------------------------------------------------- HotpotQA F1 / EM


def test_f1_overlap_is_a_multiset_not_a_set():
    # pred [red, red, red], gold [red, red, blue]: common = min(3, 2) = 2 (a set would count 1)
    # P = 2/3, R = 2/3, F1 = 2/3
    assert precision_recall_f1("red red red", "red red blue") == pytest.approx((2 / 3, 2 / 3, 2 / 3))
    # pred [x, x, y], gold [x, x]: common 2 (a set: 1); P = 2/3, R = 1; F1 = (4/3)/(5/3) = 0.8
    assert f1_score("x x y", "x x") == pytest.approx(0.8)


def test_f1_precision_and_recall_are_not_swapped():
    # pred [barack, obama], gold [president, barack, obama]: common 2
    # P = 2/2 = 1, R = 2/3, F1 = 2·1·(2/3) / (5/3) = 0.8
    p, r, f1 = precision_recall_f1("Barack Obama", "President Barack Obama")
    assert (p, r) == pytest.approx((1.0, 2 / 3)) and f1 == pytest.approx(0.8)
    # pred [one, two, three, four], gold [one]: P = 1/4, R = 1, F1 = 2·0.25 / 1.25 = 0.4
    assert precision_recall_f1("one two three four", "one") == pytest.approx((0.25, 1.0, 0.4))


@pytest.mark.parametrize(
    "prediction, gold, expected",
    [
        ("yes", "yes", (1.0, 1.0, 1.0)),
        ("Yes.", "yes", (1.0, 1.0, 1.0)),  # normalized alike
        ("yes it is", "yes", (0.0, 0.0, 0.0)),  # gold is a label: no partial credit
        ("no", "no answer", (0.0, 0.0, 0.0)),  # prediction is a label
        ("noanswer", "noanswer", (1.0, 1.0, 1.0)),
        ("", "", (0.0, 0.0, 0.0)),  # nothing in common, as the official script scores it
        ("paris", "london", (0.0, 0.0, 0.0)),
    ],
)
def test_f1_label_rule_and_empty_answers(prediction, gold, expected):
    assert precision_recall_f1(prediction, gold) == expected


@pytest.mark.parametrize(
    "raw, normalized",
    [
        ("The  Eiffel-Tower!", "eiffeltower"),  # lower, punctuation out, article out, spaces collapsed
        ("An apple a day", "apple day"),
        ("theatre", "theatre"),  # "the" only as a whole word
        ("  A\tB  ", "b"),
    ],
)
def test_normalize_answer_by_hand(raw, normalized):
    assert normalize_answer(raw) == normalized


def test_exact_match_is_one_or_zero_after_normalization():
    assert exact_match("The Eiffel Tower.", "eiffel tower") == 1.0
    assert exact_match("Eiffel Tower in Paris", "eiffel tower") == 0.0
    assert exact_match("tower eiffel", "eiffel tower") == 0.0  # order matters for EM, not for F1
    assert f1_score("tower eiffel", "eiffel tower") == 1.0


# ---------------------------------------------------------------- letters


@pytest.mark.parametrize(
    "text, num_choices, letter",
    [
        ("Answer: B", 4, "B"),
        ("the answer is (c).", 4, "C"),
        ("I think D", 4, None),  # no statement, no opening letter, no brackets
        ("A) because it floats", 4, "A"),
        ("Answer: E", 4, None),  # past the 4 choices
        ("Answer: E", 5, "E"),
        ("Answer: A. On reflection, the answer is C.", 4, "C"),  # the last statement wins
        ("I pick (B), not (D)", 4, None),  # two distinct bracketed letters commit to none
        ("I pick (B) and again (b)", 4, "B"),
        ("", 4, None),
    ],
)
def test_extract_choice_letter_by_hand(text, num_choices, letter):
    assert extract_choice_letter(text, num_choices) == letter


def test_letter_accuracy_is_the_share_of_right_letters():
    predictions = ["Answer: B", "the answer is (c).", "I think D", "A) because"]
    golds = ["B", "c", "D", "A"]
    # right, right (gold case ignored), no letter, right: 3 of 4
    assert choice_accuracy(predictions, golds) == 0.75
    assert [choice_score(p, g) for p, g in zip(predictions, golds)] == [1.0, 1.0, 0.0, 1.0]
    with pytest.raises(ValueError, match="2 predictions for 1 gold"):
        choice_accuracy(["A", "B"], ["A"])
    # "E" is a choice only when there are at least five: 4 by default
    assert choice_accuracy(["Answer: E", "Answer: A"], ["E", "A"]) == 0.5
    assert choice_accuracy(["Answer: E", "Answer: A"], ["E", "A"], num_choices=5) == 1.0


# ---------------------------------------------------------------- GSM8K numbers


@pytest.mark.parametrize(
    "text, number",
    [
        ("so 3 + 4 = 7\n#### 1,234.50", "1234.5"),  # after ####: commas and trailing zeros go
        ("#### -12", "-12"),
        ("it costs $18.00 in the end", "18"),
        ("between 3-5 apples, i.e. 5", "5"),
        ("\\boxed{42} and later 7", "42"),  # a boxed number beats the last number
        ("no number here", None),
        ("#### -0.00", "0"),  # zero has no sign
        ("#### .50", "0.5"),  # a bare decimal part gets its leading 0
    ],
)
def test_extract_final_number_by_hand(text, number):
    assert extract_final_number(text) == number


def test_numbers_match_compares_values():
    assert numbers_match("1,234.50", "1234.5") and numbers_match("$5", 5)
    assert not numbers_match("12", "-12") and not numbers_match(None, "0")
    assert not numbers_match(True, 1)  # a bool is not a number answer
    assert gsm8k_score("the total is 1200\n#### 1200", "1,200") == 1.0
    assert gsm8k_score("#### 1201", "1200") == 0.0
    # a Unicode minus sign, a trailing percent sign
    assert numbers_match("\u22125", -5) and numbers_match("50%", "50")
    # not numbers: letters after the digits, infinity (equal to itself, but never an answer)
    assert not numbers_match("5X", 5) and not numbers_match("Infinity", "Infinity")


# ---------------------------------------------------------------- task scorers


def test_gsm8k_task_scores_and_reads_the_final_number():
    example = SimpleNamespace(id="g1", question="q", final_answer="72")
    score = get_task("gsm8k").score("48 + 24 = 72\n#### 72", example)
    assert (score.value, score.answer) == (1.0, "72")
    score = get_task("gsm8k").score("#### 70", example)
    assert (score.value, score.answer) == (0.0, "70")


@pytest.mark.parametrize("task", ["arc_challenge", "mmlu"])
def test_choice_tasks_score_the_letter_within_their_choices(task):
    three = SimpleNamespace(id="c1", question="q", choices=["x", "y", "z"], answer="C")
    scorer = get_task(task)
    assert (scorer.score("Answer: C", three).value, scorer.score("Answer: C", three).answer) == (1.0, "C")
    assert (scorer.score("Answer: B", three).value, scorer.score("Answer: B", three).answer) == (0.0, "B")
    # D is not one of three choices: no letter, score 0
    assert (scorer.score("Answer: D", three).value, scorer.score("Answer: D", three).answer) == (0.0, None)


def test_math_task_scores_by_equivalence_and_keeps_the_answer():
    example = SimpleNamespace(id="m1", problem="p", answer="\\frac{1}{2}")
    right = get_task("math").score("so $\\boxed{0.5}$", example)
    assert right.value == 1.0 and right.answer is not None
    assert get_task("math").score("so $\\boxed{2}$", example).value == 0.0
    empty = get_task("math").score("", example)
    assert (empty.value, empty.answer) == (0.0, None)
