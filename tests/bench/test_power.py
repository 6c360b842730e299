"""Power before a run: the detectable difference, checked by hand and on a tiny action table."""

import json
import math

import numpy as np
import pytest

from routing_gym.action_table import ActionTable
from routing_gym.bench.power import assignment_matrix, power_summary, power_table
from routing_gym.stats import minimum_detectable_difference

Z_SUM = 1.959963984540054 + 0.8416212335729143  # z_0.975 + z_0.8


def test_detectable_difference_by_hand():
    # sd (ddof=1) of [1, -1, 1, -1] is sqrt(4/3); n = 4 questions
    assert minimum_detectable_difference([1, -1, 1, -1]) == pytest.approx(Z_SUM * math.sqrt(4 / 3) / 2)
    # 100 planned questions: the same spread, sqrt(100) in the denominator
    assert minimum_detectable_difference([1, -1, 1, -1], n=100) == pytest.approx(Z_SUM * math.sqrt(4 / 3) / 10)
    # quartering the spread needs 16 times the questions for the same detectable difference
    assert minimum_detectable_difference([4, -4, 4, -4], n=1600) == pytest.approx(
        minimum_detectable_difference([1, -1, 1, -1], n=100))


def test_detectable_difference_grows_with_level_and_power():
    sample = [0.5, -0.2, 0.1, 0.0, 0.3]
    base = minimum_detectable_difference(sample, n=50)
    assert minimum_detectable_difference(sample, n=50, level=0.99) > base
    assert minimum_detectable_difference(sample, n=50, power=0.9) > base
    assert minimum_detectable_difference([0.2, 0.2, 0.2], n=10) == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("kwargs, message", [
    ({"differences": [1.0]}, "at least 2"),
    ({"differences": [1.0, float("nan")]}, "non-finite"),
    ({"differences": [1.0, 0.0], "power": 1.0}, "power"),
    ({"differences": [1.0, 0.0], "n": 0}, "positive"),
])
def test_detectable_difference_bad_input(kwargs, message):
    with pytest.raises(ValueError, match=message):
        minimum_detectable_difference(**kwargs)


def write_table(path, cells):
    """cells: question -> (student, teacher) -> perf."""
    with open(path, "w", encoding="utf-8") as handle:
        for index, (question, row) in enumerate(cells.items()):
            for (student, teacher), perf in row.items():
                handle.write(json.dumps({"question_id": question, "index": index, "turns": 2, "assignment": {"student": student, "teacher": teacher},
                                         "perf": perf, "cost": 0.001, "prompt_tokens": 10,
                                         "completion_tokens": 2}) + "\n")
    return path


def test_power_summary_on_a_tiny_table(tmp_path):
    cells = {
        "q1": {("a", "a"): 0.0, ("b", "a"): 1.0, ("c", "a"): 1.0},
        "q2": {("a", "a"): 1.0, ("b", "a"): 1.0, ("c", "a"): 0.0},
        "q3": {("a", "a"): 0.0, ("b", "a"): 0.0, ("c", "a"): 0.0},
        "q4": {("a", "a"): 0.0, ("b", "a"): 1.0},  # unfinished: left out
    }
    table = ActionTable.load(write_table(tmp_path / "t.jsonl", cells))
    questions, names, perf = assignment_matrix(table)
    assert questions == ["q1", "q2", "q3"]
    assert names == ["student=a/teacher=a", "student=b/teacher=a", "student=c/teacher=a"]
    np.testing.assert_array_equal(perf[:, 1], [1, 1, 0])
    summary = power_summary(table, n_report=300)
    assert summary["best"] == "student=b/teacher=a"  # mean 2/3
    a_row = summary["rows"][0]
    # a − b = [-1, 0, 0]: sd = sqrt(1/3)
    assert a_row["sd"] == pytest.approx(math.sqrt(1 / 3))
    assert a_row["mdd_report"] == pytest.approx(Z_SUM * math.sqrt(1 / 3) / math.sqrt(300))
    # the Oracle's room over b: per question max − b = [0, 0, 0]
    assert summary["oracle_room"] == 0.0
    # models by name: keeping only a and b drops c's column
    _, names_ab, _ = assignment_matrix(table, ["a", "b"])
    assert names_ab == ["student=a/teacher=a", "student=b/teacher=a"]
    text = power_table(tmp_path / "t.jsonl", 300)
    assert "(best fixed)" in text and "n = 300" in text


def test_power_needs_models_the_table_has(tmp_path):
    table = ActionTable.load(write_table(tmp_path / "t.jsonl", {"q1": {("a", "a"): 1.0}, "q2": {("a", "a"): 0.0}}))
    with pytest.raises(ValueError, match="no rows"):
        assignment_matrix(table, ["zzz"])
