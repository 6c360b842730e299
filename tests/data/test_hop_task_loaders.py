"""Loaders of MBPP, ARC-Challenge and MATH: fixtures, the real files, and errors naming file/line/field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from routing_gym.data import load_arc_challenge, load_math, load_mbpp, last_boxed, select_split
from routing_gym.data.splits import assign_split
from routing_gym.errors import DataFormatError

FIXTURES = Path(__file__).parent / "fixtures"


def write_rows(path: Path, rows: list) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def test_mbpp_standard_split_is_by_task_id():
    assert [e.task_id for e in load_mbpp("test", data_dir=FIXTURES)] == [11, 12, 13]
    train = load_mbpp("train", data_dir=FIXTURES)
    assert [e.task_id for e in train] == [602]
    assert load_mbpp("valid", data_dir=FIXTURES) == []
    example = load_mbpp("test", data_dir=FIXTURES)[0]
    assert example.id == "mbpp/11" and example.entry_point == "add_two"
    assert "\r" not in example.code and example.tests[0] == "assert add_two(1, 2) == 3"
    with pytest.raises(ValueError, match="unknown MBPP split 'dev'"):
        load_mbpp("dev", data_dir=FIXTURES)


def test_mbpp_errors_name_file_line_and_field(tmp_path):
    good = {"task_id": 11, "text": "t", "code": "def f(): pass", "test_list": ["assert f() is None"]}
    path = write_rows(tmp_path / "m.jsonl", [good, {**good, "task_id": 12, "test_list": []}])
    with pytest.raises(DataFormatError, match=r"m\.jsonl, line 2, field 'test_list'"):
        load_mbpp("all", path=path)
    path = write_rows(tmp_path / "d.jsonl", [good, good])
    with pytest.raises(DataFormatError, match=r"line 2, field 'task_id': duplicate"):
        load_mbpp("all", path=path)
    path = write_rows(tmp_path / "t.jsonl", [{**good, "test_list": ["assert 1", 7]}])
    with pytest.raises(DataFormatError, match=r"line 1, field 'test_list': item 1 is int"):
        load_mbpp("all", path=path)


def test_arc_relabels_numeric_and_odd_sized_choices():
    examples = {e.id: e for e in load_arc_challenge("all", data_dir=FIXTURES)}
    numeric = examples["arc_challenge/toy_arc_2"]
    assert numeric.labels == ("1", "2", "3", "4") and numeric.answer == "C"
    assert numeric.choices[numeric.answer_index] == "sunlight"
    assert len(examples["arc_challenge/toy_arc_3"].choices) == 3
    five = examples["arc_challenge/toy_arc_4"]
    assert len(five.choices) == 5 and five.answer == "D"


def test_arc_hash_split_partitions_the_questions():
    everything = load_arc_challenge("all", data_dir=FIXTURES)
    parts = {s: load_arc_challenge(s, data_dir=FIXTURES) for s in ("train", "valid", "test")}
    assert sorted(e.id for part in parts.values() for e in part) == sorted(e.id for e in everything)
    for split, part in parts.items():
        assert all(assign_split(e.id) == split for e in part)
    with pytest.raises(ValueError, match="unknown split 'dev'"):
        select_split(everything, "dev")


def test_arc_errors_name_file_line_and_field(tmp_path):
    row = json.loads((FIXTURES / "arc_challenge" / "test.jsonl").read_text().splitlines()[0])
    bad_key = write_rows(tmp_path / "a.jsonl", [row, {**row, "id": "x", "answerKey": "Z"}])
    with pytest.raises(DataFormatError, match=r"a\.jsonl, line 2, field 'answerKey'"):
        load_arc_challenge(path=bad_key)
    two = {**row, "question": {"stem": "s", "choices": row["question"]["choices"][:2]}}
    with pytest.raises(DataFormatError, match=r"line 1, field 'question.choices': expected a list of 3 to 5"):
        load_arc_challenge(path=write_rows(tmp_path / "b.jsonl", [two]))


def test_math_answers_come_from_the_last_balanced_box():
    test = load_math("test", data_dir=FIXTURES)
    assert [e.answer for e in test] == ["5", "\\frac{1}{2}", "3"]
    assert test[0].id == "math/test/0" and test[0].level == 1 and test[0].subject == "Prealgebra"
    five_hundred = load_math("math500", data_dir=FIXTURES)
    assert five_hundred[1].id == "math500/test/prealgebra/1.json" and five_hundred[1].level == 2
    assert last_boxed("a \\boxed{\\frac{1}{\\sqrt{2}}} b") == "\\frac{1}{\\sqrt{2}}"
    assert last_boxed("no box") is None and last_boxed("\\boxed{open") is None


def test_math_errors_name_file_line_and_field(tmp_path):
    row = {"problem": "p", "level": "Level 2", "type": "Algebra", "solution": "$\\boxed{1}$", "idx": 0}
    no_box = write_rows(tmp_path / "test.jsonl", [row, {**row, "idx": 1, "solution": "just 1"}])
    with pytest.raises(DataFormatError, match=r"test\.jsonl, line 2, field 'solution': no .boxed"):
        load_math("test", path=no_box)
    level = write_rows(tmp_path / "l.jsonl", [{**row, "level": "Level 9"}])
    with pytest.raises(DataFormatError, match=r"line 1, field 'level'"):
        load_math("test", path=level)
    dup = write_rows(tmp_path / "d.jsonl", [row, row])
    with pytest.raises(DataFormatError, match=r"line 2, field 'idx': duplicate"):
        load_math("test", path=dup)


def test_real_files_load_with_their_documented_sizes(data_root):
    if not (data_root / "mbpp").is_dir():
        pytest.skip("data missing: no mbpp/ in the data directory")
    assert len(load_mbpp("test", data_dir=data_root)) == 500
    assert len(load_mbpp("all", data_dir=data_root, variant="sanitized")) == 427
    arc = load_arc_challenge("all", data_dir=data_root)
    assert len(arc) == 1172 and sum(len(e.choices) == 3 for e in arc) == 4
    assert sum(e.labels[0] == "1" for e in arc) == 22
    assert len(load_math("test", data_dir=data_root)) == 5000
    assert len(load_math("math500", data_dir=data_root)) == 500


def test_a_limited_mmlu_task_spreads_over_the_subjects(data_root):
    from routing_gym.tasks import get_task
    from routing_gym.tasks.base import LoadOptions

    if not (data_root / "mmlu").is_dir():
        pytest.skip("data missing: no mmlu/ in the data directory")
    task = get_task("mmlu")
    limited = task.load(LoadOptions(split="test", data_dir=data_root, limit=60))
    assert len(limited) == 60
    assert len({e.id.split("/")[2] for e in limited}) >= 20  # a prefix would be abstract algebra only
    assert [e.id for e in task.load(LoadOptions(split="test", data_dir=data_root, limit=60))] == [e.id for e in limited]
    everything = {e.id for e in task.load(LoadOptions(split="test", data_dir=data_root))}
    assert {e.id for e in limited} <= everything
