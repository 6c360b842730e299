"""agents.haps.comparison on hand-written tables: compare_haps.py's rows, without models."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from agents.haps.comparison import HAPSComparison, compared_questions, load_runs, parse_lams
from routing_gym.action_table import ActionTable
from routing_gym.cost import CostNormalizer

ROLES = ("student", "teacher")  # the tables' own roles, written into their rows
ARMS = [("a", "a"), ("a", "b"), ("b", "a"), ("b", "b")]


def write_table(
    path: Path, perf: dict[str, list[float]], cost: dict[str, list[float]]
) -> ActionTable:
    """One row per (question, assignment in ARMS order) with the given perf and USD cost."""
    rows = [
        {
            "question_id": q,
            "index": i,
            "assignment": dict(zip(ROLES, arm)),
            "perf": perf[q][j],
            "cost": cost[q][j],
            "prompt_tokens": 1,
            "completion_tokens": 1,
            "turns": 2,
        }
        for i, q in enumerate(perf)
        for j, arm in enumerate(ARMS)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return ActionTable.load(path)


@pytest.fixture
def tables(tmp_path):
    # costs 0..4 USD normalize to 0..1 (the normalizer is fitted on train: low 0, high 4)
    train = write_table(
        tmp_path / "train.jsonl",
        {"t1": [1, 1, 0, 0], "t2": [1, 0, 1, 0]},
        {"t1": [0, 4, 2, 2], "t2": [0, 4, 2, 2]},
    )
    valid = write_table(
        tmp_path / "valid.jsonl",
        {"v1": [0, 1, 1, 0], "v2": [1, 1, 0, 0]},
        {"v1": [0, 4, 0, 4], "v2": [4, 0, 4, 4]},
    )
    return train, valid


def test_rows_by_hand(tables):
    train, valid = tables
    normalizer = train.fit_cost_normalizer()
    assert (normalizer.low, normalizer.high) == (0.0, 4.0)
    rows = HAPSComparison(0.5, train, valid, ["v1", "v2"], normalizer).rows({}, {})
    # train mean rewards at λ = 0.5: a/a 1.0, a/b 0.0, b/a 0.25, b/b -0.25
    assert "Best fixed on train: a/a" in rows
    assert rows["Fixed a/b"]["per_question"]["reward"] == [0.5, 1.0]  # 1 − 0.5·1, 1 − 0
    random = rows["Random (expectation over the assignments)"]
    assert random["per_question"]["perf"] == [0.5, 0.5]
    assert random["reward"] == pytest.approx(np.mean([[0, 0.5, 1, -0.5], [0.5, 1, -0.5, -0.5]]))
    oracle = rows["Oracle (hindsight upper bound)"]
    assert oracle["assignments"] == {"b/a": 1, "a/b": 1}  # v1: b/a (1 − 0), v2: a/b (1 − 0)
    assert oracle["reward"] == 1.0 and oracle["usd"] == 0.0
    # at λ = 0 v1 ties between a/b and b/a (F1 1): the last by name, as before
    assert HAPSComparison(0.0, train, valid, ["v1", "v2"], normalizer).oracle() == {
        "v1": ("b", "a"),
        "v2": ("a", "b"),
    }


def test_a_run_is_compared_with_the_tables_episodes(tables, tmp_path):
    train, valid = tables
    episodes = [
        {
            "question_id": "v1",
            "assignment": {"teacher": "b", "student": "a"},
            "perf": 1.0,
            "cost": 4.0,
        },
        {
            "question_id": "v2",
            "assignment": {"student": "b", "teacher": "b"},
            "perf": 0.5,
            "cost": 4.0,
        },
    ]
    path = tmp_path / "run.json"
    path.write_text(json.dumps({"config": {"lam": "balanced"}, "per_episode": episodes}))
    lams = parse_lams("performance-first, 0.5")
    assert lams == [0.1, 0.5]
    runs = load_runs([f"HAPS={path}"], lams)
    assert compared_questions(valid, runs) == ["v1", "v2"]
    comparison = HAPSComparison(0.5, train, valid, ["v1", "v2"], train.fit_cost_normalizer())
    row = comparison.rows(runs, {})["HAPS"]
    assert (
        row["table_matches"] == "1/2"
    )  # v1 is the table's a/b episode; v2 scored 0.5 against b/b's 0
    assert row["vs_table"] == {"better": 1, "worse": 0, "same": 1}
    assert row["assignments"] == {"a/b": 1, "b/b": 1}
    assert row["per_question"]["reward"] == [0.5, 0.0]
    assert "HAPS" not in HAPSComparison(
        0.1, train, valid, ["v1", "v2"], CostNormalizer(0.0, 4.0)
    ).rows(runs, {})
    with pytest.raises(ValueError, match="not in --lam 0.1"):
        load_runs([f"HAPS={path}"], [0.1])
    with pytest.raises(ValueError, match="expected LABEL=PATH"):
        load_runs(["HAPS"], lams)
