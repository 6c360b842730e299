"""Loaders: fixture files (always), the real data in $ROUTING_GYM_DATA (when present),
and malformed files written here, whose errors must name file, line and field."""

from __future__ import annotations

import dataclasses
import gzip
import json
import os
from pathlib import Path

import pytest

from routing_gym.data import (
    GSM8KExample,
    HotpotQAExample,
    MMLUExample,
    load_gsm8k,
    load_hotpotqa,
    load_humaneval,
    load_mmlu,
    load_mmlu_file,
    mmlu_subjects,
)
from routing_gym.errors import DataFormatError

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="module")
def real_data() -> Path:
    root = os.environ.get("ROUTING_GYM_DATA")
    if not root:
        pytest.skip("data missing: ROUTING_GYM_DATA is not set; real-data checks need the shared data folder")
    if not Path(root, "hotpotqa").is_dir():
        pytest.skip(f"data missing: ROUTING_GYM_DATA={root} has no hotpotqa/ folder")
    return Path(root)


def write_lines(path: Path, lines: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def assert_names(exc: DataFormatError, path: Path, line: int | None, field: str | None) -> None:
    message = str(exc)
    assert path.name in message
    assert exc.line == line
    assert exc.field == field
    if line is not None:
        assert f"line {line}" in message
    if field is not None:
        assert repr(field) in message


def hotpot_row(**overrides) -> dict:
    row = json.loads((FIXTURES / "hotpotqa" / "valid.jsonl").read_text().splitlines()[0])
    row.update(overrides)
    return row


# ---------------------------------------------------------------- HotpotQA


def test_hotpotqa_fixture_parses_every_field():
    examples = load_hotpotqa("valid", data_dir=FIXTURES)
    assert [e.id for e in examples] == ["toy-bridge-1", "toy-comparison-2"]  # blank line skipped
    first = examples[0]
    assert first.answer == "Blue River" and first.type == "bridge" and first.level == "hard"
    assert first.titles == ("Freedonia", "Blue River", "Red Hill")
    sentences = ("Freedonia is a made-up country.", " Its capital is Sylvania City.")
    assert first.context[0] == ("Freedonia", sentences)
    assert first.supporting_facts == (("Freedonia", 1), ("Blue River", 0))
    assert first.supporting_sentences() == [
        " Its capital is Sylvania City.",
        "The Blue River flows through Sylvania City.",
    ]
    assert first.paragraph_texts()[0] == "".join(sentences)


def test_hotpotqa_examples_are_frozen_and_hashable():
    example = load_hotpotqa("valid", data_dir=FIXTURES)[0]
    with pytest.raises(dataclasses.FrozenInstanceError):
        example.answer = "other"
    assert hash(example) == hash(load_hotpotqa("valid", data_dir=FIXTURES)[0])


def test_hotpotqa_limit_keeps_the_first_rows():
    assert [e.id for e in load_hotpotqa("valid", data_dir=FIXTURES, limit=1)] == ["toy-bridge-1"]
    assert load_hotpotqa("valid", data_dir=FIXTURES, limit=0) == []
    with pytest.raises(ValueError, match="limit"):
        load_hotpotqa("valid", data_dir=FIXTURES, limit=-1)


def test_hotpotqa_reads_official_json_list_and_gzip_the_same(tmp_path):
    expected = load_hotpotqa("valid", data_dir=FIXTURES)
    lines = (FIXTURES / "hotpotqa" / "valid.jsonl").read_text().splitlines()
    rows = [json.loads(line) for line in lines if line]
    as_list = tmp_path / "hotpot_dev_distractor_v1.json"
    as_list.write_text(json.dumps(rows), encoding="utf-8")
    gz = tmp_path / "valid.jsonl.gz"
    with gzip.open(gz, "wt", encoding="utf-8") as handle:
        handle.write("\n".join(json.dumps(r) for r in rows))
    assert load_hotpotqa(as_list) == expected
    assert load_hotpotqa(str(gz)) == expected


def test_hotpotqa_split_name_falls_back_to_json_file(tmp_path):
    rows = [hotpot_row()]
    (tmp_path / "hotpotqa").mkdir()
    (tmp_path / "hotpotqa" / "dev.json").write_text(json.dumps(rows), encoding="utf-8")
    assert [e.id for e in load_hotpotqa("dev", data_dir=tmp_path)] == ["toy-bridge-1"]


def test_hotpotqa_missing_file_raises_file_not_found_with_path(tmp_path):
    (tmp_path / "hotpotqa").mkdir()
    with pytest.raises(FileNotFoundError, match="train.jsonl"):
        load_hotpotqa("train", data_dir=tmp_path)
    with pytest.raises(FileNotFoundError, match="nowhere.jsonl"):
        load_hotpotqa(tmp_path / "nowhere.jsonl")


def test_hotpotqa_without_data_dir_names_the_env_var(monkeypatch):
    monkeypatch.delenv("ROUTING_GYM_DATA", raising=False)
    with pytest.raises(FileNotFoundError, match="ROUTING_GYM_DATA"):
        load_hotpotqa("valid")


@pytest.mark.parametrize(
    "bad_line, field",
    [
        (json.dumps({k: v for k, v in hotpot_row().items() if k != "answer"}), "answer"),
        (json.dumps(hotpot_row(answer=42)), "answer"),
        (json.dumps({k: v for k, v in hotpot_row().items() if k != "_id"}), "_id"),
        (json.dumps(hotpot_row(context="Freedonia")), "context"),
        (json.dumps(hotpot_row(context=[["Freedonia", "one sentence, not a list"]])), "context"),
        (json.dumps(hotpot_row(context=[["Freedonia"]])), "context"),
        (json.dumps(hotpot_row(supporting_facts=[["Freedonia", "0"]])), "supporting_facts"),
        (json.dumps(hotpot_row(supporting_facts=[["Freedonia", -1]])), "supporting_facts"),
        (json.dumps(hotpot_row(_id="toy-comparison-2")), "_id"),  # duplicate of line 1
        ('{"_id": "x", "question": ', None),  # not JSON
        ("[1, 2, 3]", None),  # JSON, but not an object
    ],
)
def test_hotpotqa_malformed_row_names_file_line_field(tmp_path, bad_line, field):
    good = json.dumps(hotpot_row(_id="toy-comparison-2"))
    path = write_lines(tmp_path / "broken.jsonl", [good, "", bad_line])
    with pytest.raises(DataFormatError) as info:
        load_hotpotqa(path)
    assert_names(info.value, path, line=3, field=field)


def test_hotpotqa_json_list_errors_name_the_record(tmp_path):
    path = tmp_path / "broken.json"
    rows = [hotpot_row(), hotpot_row(_id="b", context=[[1, []]])]
    path.write_text(json.dumps(rows), encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"broken\.json.*'context'.*record 2") as info:
        load_hotpotqa(path)
    assert info.value.field == "context"
    not_a_list = tmp_path / "object.json"
    not_a_list.write_text(json.dumps(hotpot_row()), encoding="utf-8")
    with pytest.raises(DataFormatError, match="JSON list"):
        load_hotpotqa(not_a_list)


def test_hotpotqa_real_data_counts(real_data):
    train = load_hotpotqa("train", data_dir=real_data)
    valid = load_hotpotqa("valid", data_dir=real_data)
    assert (len(train), len(valid)) == (300, 100)
    assert not {e.id for e in train} & {e.id for e in valid}
    assert all(isinstance(e, HotpotQAExample) and len(e.context) >= 2 for e in train + valid)
    assert {e.type for e in valid} <= {"bridge", "comparison"}
    # every supporting fact points at a context title in this release
    assert all(len(e.supporting_sentences()) == len(e.supporting_facts) for e in valid)


# ---------------------------------------------------------------- MMLU


def test_mmlu_fixture_handles_quoted_commas_and_newlines():
    examples = load_mmlu("dev", data_dir=FIXTURES)
    assert [e.id for e in examples] == [
        "mmlu/dev/toy_arithmetic/0",
        "mmlu/dev/toy_arithmetic/1",
        "mmlu/dev/toy_arithmetic/2",
        "mmlu/dev/toy_arithmetic/3",
        "mmlu/dev/toy_numbers/0",
    ]
    sorted_q = examples[1]
    assert sorted_q.choices == ("1, 2, 3", "3, 2, 1", "2, 1, 3", "1, 3, 2")
    assert sorted_q.answer == "A"
    multiline = examples[2]
    assert multiline.question == "Which poem line\nspans two lines?"
    assert multiline.choices[0] == "Roses are red,\nviolets are blue"
    assert examples[3].answer_index == 2 and examples[3].answer_text == "Blue"
    assert all(isinstance(e, MMLUExample) for e in examples)


def test_mmlu_subject_filter_and_listing():
    assert mmlu_subjects("dev", data_dir=FIXTURES) == ["toy_arithmetic", "toy_numbers"]
    only = load_mmlu("dev", subjects=["toy_numbers"], data_dir=FIXTURES)
    assert [(e.subject, e.answer) for e in only] == [("toy_numbers", "C")]
    with pytest.raises(FileNotFoundError, match="toy_missing_dev.csv"):
        load_mmlu("dev", subjects=["toy_missing"], data_dir=FIXTURES)
    with pytest.raises(TypeError):
        load_mmlu("dev", subjects="toy_numbers", data_dir=FIXTURES)
    with pytest.raises(FileNotFoundError, match="test"):
        load_mmlu("test", data_dir=FIXTURES)


@pytest.mark.parametrize(
    "bad_row, field",
    [
        ("What is 1 + 1?,1,2,3,B", "columns"),
        ("What is 1 + 1?,1,2,3,4,B,extra", "columns"),
        ("What is 1 + 1?,1,2,3,4,E", "answer"),
        ("What is 1 + 1?,1,2,3,4,b", "answer"),
        ("What is 1 + 1?,1,2,3,4,", "answer"),
        (",1,2,3,4,B", "question"),
        ('"A two-line\nbad row",1,2,3,4,E', "answer"),  # reported at its first line
    ],
)
def test_mmlu_malformed_row_names_file_line_field(tmp_path, bad_row, field):
    # the quoted row spans lines 2-3, so the bad row starts on line 4
    lines = ["What is 2 + 2?,3,4,5,6,B", '"Two\nline question",a,b,c,d,A', bad_row]
    path = write_lines(tmp_path / "mmlu" / "dev" / "broken_dev.csv", lines)
    with pytest.raises(DataFormatError) as info:
        load_mmlu("dev", data_dir=tmp_path)
    assert_names(info.value, path, line=4, field=field)


def test_mmlu_file_loader_takes_subject_from_file_name(tmp_path):
    path = write_lines(tmp_path / "high_school_physics_val.csv", ["Q?,a,b,c,d,D"])
    (example,) = load_mmlu_file(path)
    assert example.subject == "high_school_physics"
    assert example.id == "mmlu/val/high_school_physics/0"
    assert example.answer == "D"


def test_mmlu_real_data_counts(real_data):
    dev = load_mmlu("dev", data_dir=real_data)
    assert len(dev) == 285
    assert len({e.subject for e in dev}) == 57
    assert len(load_mmlu("val", data_dir=real_data)) == 1542
    assert len({e.id for e in dev}) == 285
    assert {e.answer for e in dev} == {"A", "B", "C", "D"}


# ---------------------------------------------------------------- GSM8K


def test_gsm8k_fixture_final_answers_drop_commas_and_keep_sign():
    examples = load_gsm8k("test", data_dir=FIXTURES)
    assert [(e.id, e.final_answer) for e in examples] == [
        ("gsm8k/test/0", "1200"),
        ("gsm8k/test/1", "-5"),
    ]
    assert examples[0].rationale == "3 boxes hold 3 * 400 = <<3*400=1200>>1200 marbles."
    assert all(isinstance(e, GSM8KExample) for e in examples)
    assert len(load_gsm8k("test", data_dir=FIXTURES, limit=1)) == 1


@pytest.mark.parametrize(
    "bad_row, field",
    [
        ({"question": "Q?", "answer": "It is 5."}, "answer"),
        ({"question": "Q?", "answer": "It is five.\n#### five"}, "answer"),
        ({"question": "Q?"}, "answer"),
        ({"answer": "#### 5"}, "question"),
    ],
)
def test_gsm8k_malformed_row_names_file_line_field(tmp_path, bad_row, field):
    good = json.dumps({"question": "Q?", "answer": "#### 1"})
    path = write_lines(tmp_path / "gsm8k_broken.jsonl", [good, json.dumps(bad_row)])
    with pytest.raises(DataFormatError) as info:
        load_gsm8k(path)
    assert_names(info.value, path, line=2, field=field)


def test_gsm8k_real_data_counts(real_data):
    test = load_gsm8k("test", data_dir=real_data)
    assert len(test) == 1319
    assert test[0].final_answer == "18"
    assert all(e.final_answer.lstrip("-").replace(".", "", 1).isdigit() for e in test)


# ---------------------------------------------------------------- HumanEval


def test_humaneval_packaged_set_has_164_problems():
    problems = load_humaneval()
    assert len(problems) == 164
    assert problems[0].task_id == problems[0].id == "HumanEval/0"
    assert all(p.entry_point in p.prompt for p in problems)


def test_humaneval_from_path_and_limit():
    problems = load_humaneval(FIXTURES / "humaneval_toy.jsonl")
    assert [p.entry_point for p in problems] == ["add", "neg"]
    namespace: dict = {}
    exec(problems[0].prompt + problems[0].canonical_solution + problems[0].test, namespace)
    namespace["check"](namespace["add"])
    assert len(load_humaneval(FIXTURES / "humaneval_toy.jsonl", limit=1)) == 1


@pytest.mark.parametrize(
    "drop, field", [("test", "test"), ("entry_point", "entry_point"), (None, "task_id")]
)
def test_humaneval_malformed_row_names_file_line_field(tmp_path, drop, field):
    lines = (FIXTURES / "humaneval_toy.jsonl").read_text().splitlines()
    rows = [json.loads(line) for line in lines]
    if drop is None:
        rows[1]["task_id"] = rows[0]["task_id"]  # duplicate
    else:
        del rows[1][drop]
    path = write_lines(tmp_path / "he_broken.jsonl", [json.dumps(r) for r in rows])
    with pytest.raises(DataFormatError) as info:
        load_humaneval(path)
    assert_names(info.value, path, line=2, field=field)
