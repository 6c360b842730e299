"""Scorers of the multi-hop tasks: MATH by math-verify, ARC letters, code by pass@1 in the sandbox."""

from __future__ import annotations

from pathlib import Path

import pytest

from routing_gym.data import load_arc_challenge, load_humaneval, load_mbpp
from routing_gym.execution import Sandbox
from routing_gym.metrics import choice_score, extract_code, math_score, pass_at_1
from routing_gym.tasks.code_tasks import humaneval_program, humaneval_score, mbpp_program, mbpp_score

FIXTURES = Path(__file__).resolve().parents[1] / "data" / "fixtures"


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory):
    return Sandbox(timeout_s=3, cpu_seconds=2, temp_root=tmp_path_factory.mktemp("runs"))


@pytest.mark.parametrize(
    "text, gold, score",
    [
        ("so the result is $\\boxed{\\frac{1}{2}}$", "\\frac{1}{2}", 1.0),
        ("The answer is 0.5", "\\frac{1}{2}", 1.0),
        ("$\\boxed{\\dfrac{2}{4}}$", "\\frac{1}{2}", 1.0),
        ("Thus $x = \\boxed{3}$.", "3", 1.0),
        ("Thus $x = \\boxed{4}$.", "3", 0.0),
        ("$\\boxed{(3, \\frac{\\pi}{2})}$", "\\left( 3, \\frac{\\pi}{2} \\right)", 1.0),
        ("", "3", 0.0),
        ("I do not know.", "3", 0.0),
    ],
)
def test_math_score_compares_answers_mathematically(text, gold, score):
    assert math_score(text, gold) == score


def test_arc_letters_with_three_five_and_numeric_choices():
    examples = {e.id: e for e in load_arc_challenge("all", data_dir=FIXTURES)}
    numeric = examples["arc_challenge/toy_arc_2"]  # file labels 1-4, gold "3" -> C
    assert choice_score("Answer: C", numeric.answer, len(numeric.choices)) == 1.0
    three = examples["arc_challenge/toy_arc_3"]
    assert choice_score("Answer: D", three.answer, len(three.choices)) == 0.0  # D is not a choice of three
    five = examples["arc_challenge/toy_arc_4"]
    assert choice_score("The answer is (D).", five.answer, len(five.choices)) == 1.0
    assert choice_score("Answer: E", five.answer, len(five.choices)) == 0.0


def test_extract_code_takes_fenced_blocks_or_the_whole_reply():
    reply = "Here you go:\n```python\ndef f():\n    return 1\n```\nThat is all."
    assert extract_code(reply) == "def f():\n    return 1"
    assert extract_code("```\nx = 1\n") == "x = 1"  # an unclosed fence at the end of a cut-off reply
    assert extract_code("def g():\n    return 2\n") == "def g():\n    return 2"


def test_mbpp_pass_at_1_runs_the_asserts(sandbox):
    task = load_mbpp("test", data_dir=FIXTURES)[0]
    assert mbpp_score(f"```python\n{task.code}\n```", task, sandbox) == 1.0
    assert mbpp_score("def add_two(a, b):\n    return a - b\n", task, sandbox) == 0.0
    assert mbpp_score("def add_two(a, b):\n    while True:\n        pass\n", task, sandbox) == 0.0
    assert mbpp_program("X", task).tests.endswith("assert add_two(-1, 1) == 0\n")


def test_humaneval_pass_at_1_accepts_a_body_or_a_whole_function(sandbox):
    problem = load_humaneval(FIXTURES / "humaneval_toy.jsonl")[0]
    assert humaneval_score(problem.canonical_solution, problem, sandbox) == 1.0
    whole = "```python\ndef add(a, b):\n    return b + a\n```"
    assert humaneval_score(whole, problem, sandbox) == 1.0
    assert humaneval_score("    return a * b\n", problem, sandbox) == 0.0
    assert humaneval_program(whole, problem).tests.endswith("check(add)\n")


def test_pass_at_1_is_the_share_that_passed():
    assert pass_at_1([True, False, True, True]) == 0.75
    with pytest.raises(ValueError):
        pass_at_1([])
