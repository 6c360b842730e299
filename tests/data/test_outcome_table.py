"""The default outcome table, its cost model, the wide CSV/JSONL reader and the builder."""

from __future__ import annotations

import csv
import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pytest

from routing_gym.cost import Price
from routing_gym.data.outcome_table import (
    DEFAULT_COMPLETION_TOKENS,
    count_prompt_tokens,
    ensure_default_table,
    load_outcome_table,
    load_prices,
    query_id,
    read_wide_table,
)
from routing_gym.data.records import iter_json_records
from routing_gym.data.splits import assign_split
from routing_gym.errors import DataFormatError

REPO = Path(__file__).resolve().parents[2]
NINE_MODELS = {
    "qwen2.5-7b-instruct",
    "llama3-chatqa-1.5-8b",
    "llama-3.1-nemotron-51b-instruct",
    "llama3-chatqa-1.5-70b",
    "mistral-7b-instruct-v0.3",
    "gemma-2-9b-it",
    "codegemma-7b",
    "llama-3.1-8b-instruct",
    "llama-3.3-nemotron-super-49b-v1",
}


def _build_script():
    from routing_gym.data import build_outcome_table

    return build_outcome_table


# ---------------------------------------------------------------- default table


def test_default_table_holds_numbers_only_and_stays_small(data_root):
    path = ensure_default_table()
    assert path.stat().st_size < 10e6
    with np.load(path, allow_pickle=False) as data:
        assert set(data.files) == {
            "ids",
            "tasks",
            "embeddings",
            "scores",
            "prompt_tokens",
            "models",
            "input_price",
            "output_price",
            "meta",
        }
        assert all(re.fullmatch(r"[0-9a-f]{16}", i) for i in data["ids"].tolist())
        assert data["embeddings"].dtype == np.float16 and data["embeddings"].shape[1] == 384
        assert data["scores"].dtype == np.float32
        for name in ("tasks", "models"):
            assert max(len(s) for s in data[name].tolist()) < 40  # names, not text
        meta = json.loads(str(data["meta"]))
    assert set(meta) >= {"format_version", "attribution", "report", "encoder", "prompt_tokens"}
    assert "MIT" in meta["attribution"] and "U Lab @UIUC" in meta["attribution"]


def test_default_table_loads_with_consistent_shapes(data_root):
    table = load_outcome_table()
    n, m = table.scores.shape
    assert set(table.models) == NINE_MODELS and m == 9
    assert table.embeddings.shape == (n, 384) and table.embeddings.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(table.embeddings, axis=1), 1.0, atol=2e-3)
    assert len(table.task_names) == 14 and len(set(table.ids.tolist())) == n
    assert (table.prompt_tokens > 0).all() and not table.embeddings.flags.writeable
    assert load_outcome_table() is table  # cached per process


def test_default_table_matches_the_source_scores_and_tasks(data_root):
    source = json.loads((data_root / "llmrouter" / "scores_train.json").read_text())
    tasks = {}
    for record in iter_json_records(data_root / "llmrouter" / "queries_train.jsonl"):
        row = record.data
        tasks.setdefault(row["query"], set()).add(row["task_name"])
    by_id = {query_id(r["question"]): r for r in source}
    table = load_outcome_table()
    ambiguous = [q for q, t in tasks.items() if len(t) > 1]
    assert len(table) == len(source) - len(ambiguous)
    assert not {query_id(q) for q in ambiguous} & set(table.ids.tolist())
    for i, qid in enumerate(table.ids.tolist()):
        row = by_id[qid]
        np.testing.assert_array_equal(
            table.scores[i], np.float32([row["scores"][m] for m in table.models])
        )
        assert tasks[row["question"]] == {table.tasks[i]}
    # the README's figures: best single ~0.62, oracle ~0.80
    assert table.scores.mean(axis=0).max() == pytest.approx(0.62, abs=0.01)
    assert table.scores.max(axis=1).mean() == pytest.approx(0.80, abs=0.01)


def test_costs_are_prompt_times_input_price_plus_assumed_completion_times_output_price():
    table = load_outcome_table()
    costs = table.costs()
    for i in (0, 100, 4000):
        for j, model in enumerate(table.models):
            price = table.prices[model]
            completion = DEFAULT_COMPLETION_TOKENS[str(table.tasks[i])]
            expected = (
                table.prompt_tokens[i, j] * price.input_per_m + completion * price.output_per_m
            ) / 1e6
            assert costs[i, j] == pytest.approx(expected)
    flat = table.costs(completion_tokens=0)
    np.testing.assert_allclose(
        flat[:, 0], table.prompt_tokens[:, 0] * table.prices[table.models[0]].input_per_m / 1e6
    )
    doubled = table.costs(
        prices={m: Price(2 * p.input_per_m, 2 * p.output_per_m) for m, p in table.prices.items()}
    )
    np.testing.assert_allclose(doubled, 2 * costs)


def test_completion_assumption_rejects_a_task_without_a_number():
    table = load_outcome_table()
    with pytest.raises(ValueError, match="no entry for task 'agentverse-logicgrid'"):
        table.costs(completion_tokens={"gsm8k": 100})
    with pytest.raises(ValueError, match="completion_tokens"):
        table.costs(completion_tokens=-5)
    custom = table.costs(completion_tokens={"default": 10, "math": 1000})
    assert custom[table.tasks == "math"].mean() > custom[table.tasks == "gsm8k"].mean()


def test_splits_are_the_stable_id_hash_of_routing_gym_data_splits():
    table = load_outcome_table()
    labels = table.split_labels()
    assert [assign_split(i) for i in table.ids[:50].tolist()] == labels[:50].tolist()
    counts = {s: int((labels == s).sum()) for s in ("train", "valid", "test")}
    assert counts["train"] > 0.75 * len(table) and min(counts.values()) > 0.08 * len(table)
    assert not np.array_equal(table.split_labels(salt="other"), labels)


# ---------------------------------------------------------------- prices


def test_load_prices_accepts_the_llmrouter_layout_and_the_simple_one(tmp_path):
    llmrouter = tmp_path / "models.json"
    llmrouter.write_text(
        json.dumps(
            {
                "a": {
                    "size": "7B",
                    "feature": "...",
                    "input_price": 0.2,
                    "output_price": 0.3,
                    "model": "x/a",
                    "service": "NVIDIA",
                }
            }
        )
    )
    assert load_prices(llmrouter) == {"a": Price(0.2, 0.3)}
    assert load_prices({"b": {"input_price": 1, "output_price": 2}}) == {"b": Price(1.0, 2.0)}
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"a": {"input_price": "cheap", "output_price": 1}}))
    with pytest.raises(DataFormatError, match="'a.input_price'"):
        load_prices(bad)


def test_load_prices_reads_the_real_models_json(data_root):
    prices = load_prices(data_root / "llmrouter" / "models.json")
    assert NINE_MODELS <= set(prices) and prices["gemma-2-9b-it"] == Price(0.1, 0.1)


# ---------------------------------------------------------------- wide CSV / JSONL


def _write_csv(path, header, rows):
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def test_wide_csv_reads_ids_embeddings_splits_and_per_model_costs(tmp_path):
    path = _write_csv(
        tmp_path / "t.csv",
        ["id", "embedding", "split", "m1", "m2", "m1|cost", "m2|cost"],
        [
            ["a", "[3, 4]", "train", "1", "0.5", "0.01", "0.02"],
            ["b", "[0, 2]", "test", "0", "1", "0.01", "0.03"],
        ],
    )
    table = read_wide_table(path)
    assert table.models == ("m1", "m2") and table.ids.tolist() == ["a", "b"]
    np.testing.assert_allclose(table.embeddings[0], [0.6, 0.8])  # L2-normalized
    assert table.split_labels().tolist() == ["train", "test"]
    np.testing.assert_allclose(table.costs(), [[0.01, 0.02], [0.01, 0.03]])  # no prices needed
    assert table.tasks.tolist() == ["default", "default"]


@pytest.mark.parametrize(
    "header,row,line,field,message",
    [
        (["id", "embedding", "m1"], ["a", "[1, 0]", "high"], 2, "m1", "score"),
        (["id", "embedding", "m1"], ["a", "[1, 0]", "1.5"], 2, "m1", "score"),
        (["id", "embedding", "m1"], ["a", "[1, 0]", ""], 2, "m1", "missing value"),
        (["id", "m1", "m1|prompt_tokens"], ["a", "1", "3"], 1, "embedding", "embedding"),
        (
            ["id", "embedding", "m1", "m9|cost"],
            ["a", "[1, 0]", "1", "3"],
            1,
            "m9|cost",
            "unknown column",
        ),
        (["id", "embedding", "split", "m1"], ["a", "[1, 0]", "dev", "1"], 2, "split", "split"),
        (["id", "embedding", "m1", "m1|cost"], ["a", "[1, 0]", "1", "-2"], 2, "m1|cost", "cost"),
        (["embedding", "m1"], ["[1, 0]", "1"], 1, "question", "missing column"),
    ],
)
def test_wide_table_errors_name_file_line_and_column(tmp_path, header, row, line, field, message):
    path = _write_csv(tmp_path / "t.csv", header, [row])
    with pytest.raises(DataFormatError, match=message) as err:
        read_wide_table(path)
    assert err.value.line == line and err.value.field == field and err.value.path == str(path)


def test_wide_jsonl_rejects_a_duplicate_id_and_a_missing_column(tmp_path):
    rows = [{"id": "a", "embedding": [1, 0], "m1": 1}, {"id": "a", "embedding": [0, 1], "m1": 0}]
    path = tmp_path / "dup.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows))
    with pytest.raises(DataFormatError, match="duplicate id 'a'") as err:
        read_wide_table(path)
    assert err.value.line == 2
    path.write_text(json.dumps(rows[0]) + "\n\n" + json.dumps({"id": "b", "embedding": [0, 1]}))
    with pytest.raises(DataFormatError, match="missing column") as err:
        read_wide_table(path)
    assert (err.value.line, err.value.field) == (3, "m1")


def test_tokens_without_prices_fail_when_costs_are_asked_for(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_text(json.dumps({"id": "a", "embedding": [1, 0], "m1": 1, "prompt_tokens": 12}))
    table = read_wide_table(path)
    with pytest.raises(ValueError, match="prices"):
        table.costs()
    with pytest.raises(ValueError, match="'m1'"):
        table.costs(prices={"other": Price(1, 1)})
    assert table.costs(completion_tokens=8, prices={"m1": Price(1, 2)})[0, 0] == pytest.approx(
        28 / 1e6
    )


@pytest.mark.slow
def test_prompt_tokens_are_counted_with_the_smollm2_proxy_tokenizer(tmp_path):
    counts = count_prompt_tokens(["Hello world", "Hello world, how are you today?"])
    assert counts[0] >= 2 and counts[1] > counts[0]
    path = tmp_path / "t.jsonl"
    path.write_text(json.dumps({"question": "Hello world", "embedding": [1, 0], "m1": 1}))
    assert read_wide_table(path).prompt_tokens[0, 0] == counts[0]


# ---------------------------------------------------------------- builder


def _toy_llmrouter(root: Path) -> Path:
    root.mkdir(parents=True)
    (root / "models.json").write_text(
        json.dumps(
            {
                "m1": {"input_price": 0.1, "output_price": 0.1},
                "m2": {"input_price": 0.9, "output_price": 0.9},
            }
        )
    )
    queries = [
        {"task_name": "t1", "query": "What is two plus two?", "metric": "em", "choices": None},
        {"task_name": "t2", "query": "Name a red fruit.", "metric": "f1_score", "choices": None},
    ]
    (root / "queries_train.jsonl").write_text("\n".join(json.dumps(q) for q in queries))
    scores = [
        {"question": "What is two plus two?", "scores": {"m1": 1.0, "m2": 0.0}},
        {"question": "Name a red fruit.", "scores": {"m1": 0.0, "m2": 1.0}},
    ]
    (root / "scores_train.json").write_text(json.dumps(scores))
    return root


def test_builder_writes_a_loadable_table_and_no_temporary_file(tmp_path):
    _toy_llmrouter(tmp_path / "data" / "llmrouter")
    out = _build_script().build_outcome_table(tmp_path / "data", tmp_path / "out" / "t.npz")
    assert sorted(p.name for p in out.parent.iterdir()) == ["t.npz"]
    table = load_outcome_table(out)
    assert list(table.models) == ["m1", "m2"] and len(table) == 2
    np.testing.assert_array_equal(table.scores, [[1.0, 0.0], [0.0, 1.0]])


def test_builder_names_a_missing_llmrouter_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="llmrouter does not exist"):
        _build_script().build_outcome_table(tmp_path, tmp_path / "t.npz")


def test_build_script_join_counts_every_dropped_or_collapsed_row(tmp_path):
    root = tmp_path / "llmrouter"
    root.mkdir()
    (root / "models.json").write_text(
        json.dumps(
            {
                "m1": {"input_price": 0.1, "output_price": 0.1},
                "m2": {"input_price": 0.9, "output_price": 0.9},
            }
        )
    )
    queries = [
        {"task_name": "t1", "query": "q1", "metric": "em_mc", "choices": "['x', 'y']"},
        {
            "task_name": "t1",
            "query": "q1",
            "metric": "em_mc",
            "choices": "['x', 'y']",
        },  # repeat, same task
        {"task_name": "t1", "query": "q2", "metric": "f1_score", "choices": None},
        {"task_name": "t2", "query": "q2", "metric": "f1_score", "choices": None},  # q2: two tasks
        {"task_name": "t2", "query": "q3", "metric": "f1_score", "choices": None},
        {"task_name": "t2", "query": "q5", "metric": "f1_score", "choices": None},
    ]
    (root / "queries_train.jsonl").write_text("\n".join(json.dumps(q) for q in queries))
    scores = [
        {"question": "q1", "scores": {"m1": 1.0, "m2": 0.0}},
        {"question": "q1", "scores": {"m1": 1.0, "m2": 0.0}},  # repeated question
        {"question": "q2", "scores": {"m1": 0.0, "m2": 1.0}},  # ambiguous task
        {"question": "q3", "scores": {"m1": 0.0, "m2": 1.0}},
        {"question": "q4", "scores": {"m1": 0.0, "m2": 1.0}},  # no query row
        {"question": "q5", "scores": {"m1": 0.0}},  # a model missing
    ]
    (root / "scores_train.json").write_text(json.dumps(scores))
    rows, models, report = _build_script().join_rows(root)
    assert models == ["m1", "m2"]
    assert [(r["question"], r["task"]) for r in rows] == [("q1", "t1"), ("q3", "t2")]
    assert rows[0]["prompt"] == "q1\nA. x\nB. y"
    assert report["query rows repeating a text of the same task (collapsed)"] == 1
    assert report["dropped: score rows repeating a question"] == 1
    assert report["dropped: score rows whose question appears under several tasks"] == 1
    assert report["dropped: score rows with no matching query"] == 1
    assert report["dropped: score rows with a different model set"] == 1
    assert report["score rows read"] == 6 and report["query rows read"] == 6


def test_query_id_is_the_short_sha1_of_the_text():
    assert query_id("What is 2+2?") == hashlib.sha1(b"What is 2+2?").hexdigest()[:16]
