"""Answer metrics against hand-computed cases."""

from __future__ import annotations

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

# ---------------------------------------------------------------- HotpotQA


@pytest.mark.parametrize(
    "raw, normalized",
    [
        ("The  U.S.A.'s   answer!", "usas answer"),  # punctuation removed without a space
        ("An apple a day", "apple day"),
        ("Theater of the Absurd", "theater of absurd"),  # "the" only as a whole word
        ("  Blue\tRiver\n", "blue river"),
        ("", ""),
    ],
)
def test_normalize_answer_follows_official_steps(raw, normalized):
    assert normalize_answer(raw) == normalized


def test_f1_partial_overlap_prediction_longer_than_gold():
    # pred "the eiffel tower in paris" -> [eiffel, tower, in, paris] (4 tokens)
    # gold "eiffel tower" -> [eiffel, tower] (2 tokens); common = 2
    # P = 2/4 = 0.5, R = 2/2 = 1.0, F1 = 2 * 0.5 * 1.0 / 1.5 = 2/3
    p, r, f1 = precision_recall_f1("The Eiffel Tower in Paris", "Eiffel Tower")
    assert (p, r) == (0.5, 1.0)
    assert f1 == pytest.approx(2 / 3)
    assert f1_score("The Eiffel Tower in Paris", "Eiffel Tower") == pytest.approx(2 / 3)


def test_f1_is_order_free_and_ignores_articles_and_punctuation():
    # pred "Barack Obama, the president" -> [barack, obama, president] (3)
    # gold "President Obama Barack Hussein" -> [president, obama, barack, hussein] (4)
    # common = 3; P = 3/3 = 1, R = 3/4; F1 = 2 * 1 * 0.75 / 1.75 = 6/7
    f1 = f1_score("Barack Obama, the president", "President Obama Barack Hussein")
    assert f1 == pytest.approx(6 / 7)


def test_f1_counts_repeated_tokens_once_per_gold_occurrence():
    # pred [new, new, york] vs gold [new, york]: common = min(2,1) + 1 = 2
    # P = 2/3, R = 2/2; F1 = 2 * (2/3) * 1 / (5/3) = 0.8
    assert f1_score("new new york", "New York") == pytest.approx(0.8)


@pytest.mark.parametrize(
    "prediction, gold, f1",
    [
        ("yes", "yes indeed", 0.0),  # a yes/no label never earns partial credit
        ("no way", "no", 0.0),
        ("Yes.", "yes", 1.0),
        ("noanswer", "no answer", 0.0),
        ("Paris", "London", 0.0),
    ],
)
def test_f1_yes_no_rule_and_disjoint_answers(prediction, gold, f1):
    assert f1_score(prediction, gold) == f1


def test_empty_answers_match_exactly_but_score_zero_f1_as_officially():
    assert exact_match("", "the") == 1.0
    assert f1_score("", "") == 0.0


def test_exact_match_after_normalization():
    assert exact_match("The Beatles!", "beatles") == 1.0
    assert exact_match("Beatles band", "Beatles") == 0.0


# ---------------------------------------------------------------- MMLU


@pytest.mark.parametrize(
    "text, letter",
    [
        ("Answer: B", "B"),
        ("(C)", "C"),
        ("the answer is d.", "D"),
        ("B) Paris is the capital.", "B"),
        ("D.", "D"),
        ("b", "B"),
        ("**Answer:** D", "D"),
        ("Answer: **B**", "B"),
        ("The correct option is C.", "C"),
        ("The answer is B because the others are wrong.", "B"),
        ("The answer is B. On reflection, final answer: C", "C"),  # last explicit statement
        ("Final Answer: (a)", "A"),
        ("The answer is:\n\nB", "B"),
        ("I think (C) is right.", "C"),
        ("Answer - c", "C"),
    ],
)
def test_extract_choice_letter_reads_common_forms(text, letter):
    assert extract_choice_letter(text) == letter


@pytest.mark.parametrize(
    "text",
    [
        "A cat sat on the mat.",  # article, not a choice
        "The answer is a bit unclear.",
        "Answer: E",  # out of range for four choices
        "It is C",  # no commitment form
        "answer choices include A and B",
        "I answered A",
        "Both (A) and (C) look plausible, hmm.",  # two different bracketed letters, not at start
        "",
    ],
)
def test_extract_choice_letter_returns_none_without_a_clear_choice(text):
    assert extract_choice_letter(text) is None


def test_num_choices_widens_and_validates_the_letter_range():
    assert extract_choice_letter("Answer: E", num_choices=5) == "E"
    assert extract_choice_letter("Answer: C", num_choices=2) is None
    with pytest.raises(ValueError, match="num_choices"):
        extract_choice_letter("A", num_choices=1)


def test_choice_accuracy_averages_per_item_scores():
    predictions = ["Answer: B", "(c)", "no idea", "D) x"]
    golds = ["B", "C", "A", "a"]
    assert [choice_score(p, g) for p, g in zip(predictions, golds)] == [1.0, 1.0, 0.0, 0.0]
    assert choice_accuracy(predictions, golds) == 0.5
    with pytest.raises(ValueError):
        choice_accuracy(predictions, golds[:2])
    with pytest.raises(ValueError):
        choice_accuracy([], [])


# ---------------------------------------------------------------- GSM8K


@pytest.mark.parametrize(
    "text, number",
    [
        ("The answer is 42.", "42"),
        ("She pays 3 * 4 = 12 dollars.\n#### 1,234", "1234"),
        ("#### 5\nThe answer is 6", "5"),  # "####" wins over a later number
        ("It costs $1,234.50 in total.", "1234.5"),
        ("The temperature is -5 degrees.", "-5"),
        ("-$20 after the refund", "-20"),
        ("pages 3-5", "5"),  # a hyphen between numbers is not a sign
        ("1, 2, and 3", "3"),  # comma-space lists are not thousands groups
        ("I got 18.0", "18"),
        ("about .5 cups", "0.5"),
        ("\\boxed{17}, checked with 3 examples", "17"),
        ("equals \u22127", "-7"),
        ("no numbers here", None),
        ("", None),
    ],
)
def test_extract_final_number(text, number):
    assert extract_final_number(text) == number


@pytest.mark.parametrize(
    "pred, gold, same",
    [
        ("18", "18.00", True),
        ("1,234", "1234", True),
        ("$5", 5, True),
        ("0.1", 0.1, True),
        ("-3", "3", False),
        (None, "1", False),
        ("abc", "1", False),
        ("7", "7.0001", False),
    ],
)
def test_numbers_match_compares_values_not_strings(pred, gold, same):
    assert numbers_match(pred, gold) is same


def test_gsm8k_score_extracts_then_compares():
    assert gsm8k_score("So she makes 9 * 2 = $18 per day.", "18") == 1.0
    assert gsm8k_score("So she makes 9 * 2 = $18 per day. Wait, 20.", "18") == 0.0
