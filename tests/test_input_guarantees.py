"""Small inputs that used to be accepted silently (issue "trust boundaries"): each now gives an
error naming the key and the value, or the documented behaviour."""

from __future__ import annotations

import json
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import routing_gym  # noqa: F401
from routing_gym.bench import BenchConfig
from routing_gym.cli import main
from routing_gym.cost import MAX_CALL_TOKENS, resolve_lambda
from routing_gym.data.gsm8k import load_gsm8k
from routing_gym.data.outcome_table import read_wide_table, resolve_completion_tokens
from routing_gym.errors import DataFormatError

ENV = "LLMRouting-Table-GSM8K-v0"


def toy_table(path: Path, **overrides) -> Path:
    """Six queries of two models with 4-dim embeddings; ``overrides`` set fields of row 0 (a new
    column holds 100 in the other rows)."""
    rng = np.random.default_rng(0)
    with open(path, "w", encoding="utf-8") as handle:
        for i in range(6):
            row = {"id": f"q{i}", "embedding": rng.normal(size=4).tolist(), "a": 1.0, "b": 0.0}
            row.update({"a|cost": 0.1, "b|cost": 0.2})
            for key, value in overrides.items():  # a column is in every row; row 0 has the value
                row[key] = value if i == 0 else row.get(key, 100)
            handle.write(json.dumps(row) + "\n")
    return path


def test_lam_true_is_refused_not_read_as_one():
    for value in (True, False, np.bool_(True)):
        with pytest.raises(ValueError, match="boolean"):
            resolve_lambda(value)
    with pytest.raises(ValueError, match="config key 'lam'.*boolean True"):
        gym.make(ENV, config={"lam": True})
    assert resolve_lambda(1) == 1.0 and resolve_lambda("cost-first") == 1.0


def test_an_id_of_null_is_refused_not_turned_into_the_text_none(tmp_path):
    table = toy_table(tmp_path / "t.jsonl", id=None)
    with pytest.raises(
        DataFormatError, match=r"t.jsonl, line 1, field 'id': expected an id .* got None"
    ):
        read_wide_table(table)
    numbered = read_wide_table(toy_table(tmp_path / "n.jsonl", id=7))
    assert numbered.ids.tolist()[0] == "7"  # an integer id is its decimal text


@pytest.mark.parametrize("column", ["prompt_tokens", "a|prompt_tokens", "a|completion_tokens"])
def test_token_counts_beyond_any_context_window_are_refused(column, tmp_path):
    table = toy_table(tmp_path / "t.jsonl", **{column: 1e300})
    with pytest.raises(
        DataFormatError,
        match=rf"line 1, field '{column}'.*token count in \[0, {MAX_CALL_TOKENS}\], got 1e\+300",
    ):
        read_wide_table(table)
    accepted = read_wide_table(toy_table(tmp_path / "ok.jsonl", **{column: MAX_CALL_TOKENS}))
    assert (
        np.nanmax(accepted.prompt_tokens if "prompt" in column else accepted.completion_tokens)
        == MAX_CALL_TOKENS
    )


def test_an_assumed_completion_length_of_1e300_is_refused():
    with pytest.raises(
        ValueError,
        match=r"completion_tokens\['gsm8k'\] must be a number in \[0, 10000000\], got 1e\+300",
    ):
        resolve_completion_tokens(1e300, ["gsm8k"])
    with pytest.raises(ValueError, match="completion_tokens"):
        gym.make(ENV, config={"completion_tokens": 1e300})


def test_a_blank_question_is_refused_naming_file_line_and_field(tmp_path):
    data = tmp_path / "gsm8k.jsonl"
    data.write_text(
        json.dumps({"question": "What is 2 + 2?", "answer": "4\n#### 4"})
        + "\n"
        + json.dumps({"question": "   ", "answer": "1\n#### 1"})
        + "\n"
    )
    with pytest.raises(
        DataFormatError, match=r"gsm8k.jsonl, line 2, field 'question': expected non-empty text"
    ):
        load_gsm8k(split=str(data))


@pytest.mark.parametrize(
    ("key", "value", "setter"), [("split", "test", "--eval-split"), ("lam", 5, "--regimes")]
)
def test_bench_env_config_cannot_set_what_each_row_sets(key, value, setter, tmp_path, capsys):
    with pytest.raises(ValueError, match=rf"env_config' sets '{key}' = {value!r}.*{setter}"):
        BenchConfig(agents=["knn"], envs=[ENV], env_config={key: value}, out=str(tmp_path))
    with pytest.raises(SystemExit) as caught:
        main(
            [
                "bench",
                "--agents",
                "knn",
                "--envs",
                ENV,
                "--env-config",
                json.dumps({key: value}),
                "--out",
                str(tmp_path),
            ]
        )
    assert caught.value.code == 2 and setter in capsys.readouterr().err
    assert not (tmp_path / "rows.jsonl").exists()


def test_train_env_config_cannot_set_lam_or_the_split(tmp_path, capsys):
    for key in ("lam", "split"):
        with pytest.raises(SystemExit) as caught:
            main(
                [
                    "train",
                    "--agent",
                    "knn",
                    "--env",
                    ENV,
                    "--env-config",
                    json.dumps({key: "test" if key == "split" else 0.1}),
                    "--out",
                    str(tmp_path / "k.pt"),
                ]
            )
        assert caught.value.code == 2 and f"'{key}'" in capsys.readouterr().err
    assert not (tmp_path / "k.pt").exists()


@pytest.mark.parametrize("limit", ["0", "-3"])
def test_precompute_limit_zero_is_an_error_not_the_default_hundred(limit, tmp_path, capsys):
    out = tmp_path / "table.jsonl"
    with pytest.raises(SystemExit) as caught:
        main(["precompute", "--limit", limit, "--out", str(out)])
    assert caught.value.code == 2
    assert f"--limit must be a positive number of questions, got {limit}" in capsys.readouterr().err
    assert not out.exists()
