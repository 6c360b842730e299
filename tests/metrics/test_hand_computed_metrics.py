"""F1/EM, letter accuracy, GSM8K numbers and the task scorers, on cases worked out by hand."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from routing_gym.metrics import (
    choice_accuracy,
    choice_score,
    exact_match,
    extract_choice_letter,
    extract_code,
    extract_final_number,
    f1_score,
    gsm8k_score,
    normalize_answer,
    numbers_match,
    precision_recall_f1,
)
from routing_gym.tasks import get_task

FIXTURES = Path(__file__).resolve().parents[1] / "data" / "fixtures"

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
    assert choice_score("Answer: E", "E") == 0.0 and choice_score("Answer: E", "E", 5) == 1.0
    # 2 to 26 choices, both ends included
    assert extract_choice_letter("Answer: Z", 26) == "Z" and extract_choice_letter("Answer: B", 2) == "B"
    assert extract_choice_letter("E) because", 4) is None  # a leading letter past the choices
    for bad in (1, 27):
        with pytest.raises(ValueError, match="num_choices"):
            extract_choice_letter("Answer: A", bad)
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
        ("#### 5 was a guess\n#### 7", "7"),  # the number after the last ####
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
    # the answer kept is the LaTeX math-verify read, not the sympy form ("1/2")
    assert get_task("math").score("so $\\boxed{\\frac{1}{2}}$", example).answer == "\\frac{1}{2}"


def test_math_score_works_off_the_main_thread():
    # math-verify's time limit uses signal.alarm, which only the main thread may set; in a
    # worker thread the scorer must run without it rather than fail to parse
    from concurrent.futures import ThreadPoolExecutor

    from routing_gym.metrics import math_score

    with ThreadPoolExecutor(1) as pool:
        assert pool.submit(math_score, "so $\\boxed{3}$", "3").result() == 1.0
    assert math_score("so $\\boxed{3}$", "3") == 1.0


def test_extract_code_keeps_indentation_and_joins_blocks():
    assert extract_code("") == ""
    # a bare body keeps its indentation: HumanEval appends it to the prompt
    assert extract_code("    return 2\n") == "    return 2"
    assert extract_code("```python\n    return 1\n```") == "    return 1"
    assert extract_code("X\n") == "X" and extract_code("```\nX\n```") == "X"
    assert extract_code("```python\na = 1\n```\ntext\n```python\nb = 2\n```") == "a = 1\n\nb = 2"


def test_choice_task_scores_a_fifth_choice_when_there_are_five():
    five = SimpleNamespace(id="c5", question="q", choices=["v", "w", "x", "y", "z"], answer="E")
    score = get_task("arc_challenge").score("Answer: E", five)
    assert (score.value, score.answer) == (1.0, "E")


def test_hotpotqa_gold_task_scores_the_first_line_after_its_label():
    example = SimpleNamespace(id="h1", answer="Paris")
    from routing_gym.tasks.qa_tasks import HotpotQAGoldTask

    task = HotpotQAGoldTask()
    score = task.score("Answer: Paris\nbecause the paragraphs say so", example)
    assert (score.value, score.answer) == (1.0, "Paris")
    # "paris france" against "paris": P = 1/2, R = 1, F1 = 2·(1/2)/(3/2) = 2/3
    score = task.score("  Paris France  ", example)
    assert score.value == pytest.approx(2 / 3) and score.answer == "Paris France"
    # only the exact label is dropped; a lower-case one is part of the answer: "answer paris", F1 2/3
    assert task.score("answer: Paris", example).value == pytest.approx(2 / 3)
    empty = task.score(" \n ", example)
    assert (empty.value, empty.answer) == (0.0, "")


class _CountingSandbox:
    """A real sandbox that also keeps the programs it was given."""

    def __init__(self, sandbox):
        self.sandbox, self.programs = sandbox, []

    def run(self, program):
        self.programs.append(program)
        return self.sandbox.run(program)


def test_code_tasks_run_the_reply_in_the_given_sandbox(tmp_path):
    from routing_gym.data import load_humaneval, load_mbpp
    from routing_gym.execution import Sandbox

    sandbox = _CountingSandbox(Sandbox(timeout_s=3, cpu_seconds=2, temp_root=tmp_path))
    mbpp = load_mbpp("test", data_dir=FIXTURES)[0]  # add_two(a, b)
    right = get_task("mbpp").score("```python\ndef add_two(a, b):\n    return a + b\n```", mbpp, sandbox)
    assert (right.value, right.answer, dict(right.details)) == (1.0, "passed", {"execution": "passed"})
    wrong = get_task("mbpp").score("def add_two(a, b):\n    return a - b\n", mbpp, sandbox)
    assert wrong.value == 0.0 and wrong.answer != "passed" and wrong.details == {"execution": wrong.answer}
    # the program holds the fenced code only, and the task's own asserts
    program = sandbox.programs[0]
    assert "def add_two(a, b):\n    return a + b" in program.solution and "```" not in program.solution
    assert program.tests.endswith("assert add_two(-1, 1) == 0\n")
    problem = load_humaneval(FIXTURES / "humaneval_toy.jsonl")[0]  # add(a, b)
    assert get_task("human_eval").score("    return a + b\n", problem, sandbox).value == 1.0
    assert get_task("human_eval").score("    return a * b\n", problem, sandbox).value == 0.0
    assert sandbox.programs[-1].tests.endswith("check(add)\n") and len(sandbox.programs) == 4
