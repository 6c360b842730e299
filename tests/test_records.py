"""routing_gym.records: digests that resumed results are keyed by, and JSON Lines record files."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from routing_gym.records import (
    append_record,
    content_digest,
    drop_partial_last_line,
    json_digest,
    read_records,
)


@dataclasses.dataclass
class Question:
    id: str
    text: str
    path: Path


PAYLOADS = [
    {"b": 1, "a": [1, 2.5, None], "c": {"z": "ü", "y": True}},
    {"env": "LLMRouting-HotpotQA-Assign-v0", "models": ["tiny-llama", "tiny-qwen2"], "limit": 3},
    ["not", "a", "dict", 0],
    "a string",
    {"path": Path("/tmp/x"), "nested": {"b": (1, 2), "a": 0}},  # written through default=str
]


@pytest.mark.parametrize("payload", PAYLOADS)
def test_json_digest_is_the_expression_it_replaces(payload):
    # the expression written out at each call site before; a changed byte would orphan results on disk
    old = hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()
    assert json_digest(payload) == old
    if not any(isinstance(v, Path) for v in (payload.values() if isinstance(payload, dict) else [])):
        assert json_digest(payload) == hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def test_json_digest_of_a_hand_written_canonical_form():
    canonical = b'{"a": [1, 2], "b": {"c": "\\u00fc", "d": null}}'  # sorted keys, ASCII escapes
    assert json_digest({"b": {"d": None, "c": "ü"}, "a": [1, 2]}) == hashlib.sha256(canonical).hexdigest()


def test_content_digest_is_the_old_question_digest():
    question = Question("q1", "Who?", Path("data/q1.json"))
    fields = {"id": "q1", "text": "Who?", "path": "data/q1.json"}
    expected = hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()
    assert content_digest(question) == expected
    assert content_digest(("q1", 2)) == hashlib.sha256(json.dumps("('q1', 2)").encode()).hexdigest()


def test_a_torn_last_line_is_dropped_and_appending_resumes_clean(tmp_path):
    path = tmp_path / "rows.jsonl"
    append_record(path, {"k": 1, "x": np.float32(0.5), "v": np.arange(2)})
    with open(path, "a", encoding="utf-8") as handle:
        handle.write('{"k": 2, "x"')  # a run killed mid-write
    assert read_records(path) == [{"k": 1, "x": 0.5, "v": [0, 1]}]
    drop_partial_last_line(path)
    assert path.read_text() == '{"k": 1, "x": 0.5, "v": [0, 1]}\n'
    append_record(path, {"k": 3})
    assert [r["k"] for r in read_records(path)] == [1, 3]


def test_a_bad_line_before_the_last_is_an_error_naming_it(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text('{"k": 1}\nnot json\n{"k": 2}\n')
    with pytest.raises(ValueError, match="rows.jsonl, line 2: not valid JSON"):
        read_records(path)
    assert read_records(tmp_path / "missing.jsonl") == []
