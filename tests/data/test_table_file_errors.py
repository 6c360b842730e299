"""Bring-your-own table files: a BOM is read, and every malformed file names itself and the line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from routing_gym.data.outcome_table import load_outcome_table, read_wide_table
from routing_gym.data.records import iter_json_records
from routing_gym.errors import DataFormatError

EMBEDDING = json.dumps([1.0, 0.0, 0.0])


def write_csv(path: Path, header: str, rows: list[str], prefix: bytes = b"") -> Path:
    path.write_bytes(prefix + "\n".join([header, *rows]).encode("utf-8") + b"\n")
    return path


def rows(n: int = 4) -> list[str]:
    return [f'q{i},"{EMBEDDING}",0.5,1,0.001,0.002' for i in range(n)]


def test_a_csv_with_a_byte_order_mark_reads_its_first_column(tmp_path):
    path = write_csv(
        tmp_path / "excel.csv", "id,embedding,a,b,a|cost,b|cost", rows(), prefix=b"\xef\xbb\xbf"
    )
    table = read_wide_table(path)
    assert table.ids.tolist() == ["q0", "q1", "q2", "q3"] and table.models == ("a", "b")


def test_a_jsonl_table_with_a_byte_order_mark_reads(tmp_path):
    path = tmp_path / "bom.jsonl"
    lines = [
        json.dumps({"id": f"q{i}", "embedding": [1, 0], "a": 1, "a|cost": 0.1}) for i in range(3)
    ]
    path.write_bytes(b"\xef\xbb\xbf" + "\n".join(lines).encode())
    assert read_wide_table(path).ids.tolist() == ["q0", "q1", "q2"]


def test_a_repeated_csv_column_is_refused_naming_it(tmp_path):
    path = write_csv(
        tmp_path / "twice.csv", "id,embedding,a,b,b,a|cost,b|cost", [r + ",0" for r in rows()]
    )
    with pytest.raises(
        DataFormatError, match=r"twice.csv, line 1, field 'b': column name appears twice"
    ):
        read_wide_table(path)


def test_a_repeated_jsonl_key_is_refused_naming_it(tmp_path):
    path = tmp_path / "twice.jsonl"
    path.write_text('{"id": "q0", "embedding": [1, 0], "b": 0, "b": 1, "b|cost": 0.1}\n')
    with pytest.raises(
        DataFormatError, match=r"twice.jsonl, line 1, field 'b': key 'b' appears twice"
    ):
        read_wide_table(path)


def test_a_table_path_that_is_a_folder_says_so(tmp_path):
    with pytest.raises(IsADirectoryError, match="is a folder"):
        load_outcome_table(tmp_path)


def test_a_cell_over_the_csv_field_limit_names_file_and_line(tmp_path):
    big = "x" * 200_000
    path = write_csv(
        tmp_path / "big.csv",
        "id,embedding,a,a|cost",
        [f'q0,"{EMBEDDING}",1,0.1', f'q1,"{EMBEDDING}",1,0.1', f'q2,"{big}",1,0.1'],
    )
    with pytest.raises(
        DataFormatError, match=r"big.csv, line 4: not readable as CSV \(field larger"
    ):
        read_wide_table(path)


def test_bytes_that_are_not_utf8_name_file_and_line(tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_bytes(
        b"id,embedding,a,a|cost\n"
        + b"".join(f'q{i},"[1,0]",1,0.1\n'.encode() for i in range(900))
        + b'caf\xe9,"[1,0]",1,0.1\n'
    )
    with pytest.raises(DataFormatError, match=r"latin1.csv, line 902: not valid UTF-8"):
        read_wide_table(path)


def test_a_lone_surrogate_in_a_jsonl_question_names_file_line_and_field(tmp_path):
    path = tmp_path / "surrogate.jsonl"
    path.write_text(
        json.dumps({"question": "fine", "a": 1, "a|cost": 0.1})
        + "\n"
        + '{"question": "broken \\ud800 text", "a": 1, "a|cost": 0.1}\n'
    )
    with pytest.raises(
        DataFormatError, match=r"surrogate.jsonl, line 2, field 'question': lone surrogate"
    ):
        read_wide_table(path)


def test_a_surrogate_pair_is_ordinary_text(tmp_path):
    path = tmp_path / "emoji.jsonl"
    path.write_text('{"question": "smile \\ud83d\\ude00", "n": 1}\n')
    assert [r.data["question"] for r in iter_json_records(path)] == ["smile \U0001f600"]
