"""examples/two_model_table.py: two-model tables in the wide CSV format that the envs load."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import routing_gym  # noqa: F401
from routing_gym.data.outcome_table import load_outcome_table

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def script(run_example):
    """examples/two_model_table.py run as a script; the finished process."""
    return lambda *argv: run_example("two_model_table.py", [str(a) for a in argv])


def refused(done) -> str:
    """The one-line error of a run that must refuse its input."""
    assert done.returncode != 0 and "Traceback" not in done.stderr, done.stderr[-3000:]
    return done.stderr


def test_two_columns_of_an_outcome_table_keep_scores_costs_and_ids(script, tmp_path):
    source = tmp_path / "three.csv"
    with open(source, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "task", "embedding", "a", "b", "c", "a|cost", "b|cost", "c|cost"])
        for i in range(12):
            vector = json.dumps([float(i % 3 == k) for k in range(3)])
            writer.writerow([f"q{i}", "t", vector, i % 2, 1, 0, 1e-6, 2e-6, 3e-6 + i * 1e-7])
    out = tmp_path / "pair.csv"
    done = script("--table", source, "--models", "c", "a", "--out", out)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "prices:" not in done.stdout and sorted(p.name for p in tmp_path.iterdir()) == ["pair.csv", "three.csv"]
    pair, full = load_outcome_table(out), load_outcome_table(source)
    assert pair.models == ("c", "a") and pair.ids.tolist() == full.ids.tolist()
    assert np.array_equal(pair.scores, full.scores[:, [2, 0]])
    assert np.allclose(pair.costs(), full.costs()[:, [2, 0]])
    assert "'z' is not a model" in refused(script("--table", source, "--models", "a", "z", "--out", tmp_path / "bad.csv"))


def test_pool_quality_scores_become_a_table_with_embeddings_and_prices(script, tmp_path, data_root):
    from routing_gym.tasks import HOP_TASKS, LoadOptions

    examples = HOP_TASKS["gsm8k"].load(LoadOptions(split="test", data_dir=str(data_root)))[:6]
    weak, strong = "qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b"
    scores = tmp_path / "scores.csv"  # the columns benchmarks/pool_quality.py writes
    with open(scores, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            ["id", "task", weak, strong]
            + [f"{m}|prompt_tokens" for m in (weak, strong)]
            + [f"{m}|completion_tokens" for m in (weak, strong)]
        )
        for i, example in enumerate(examples):
            writer.writerow([example.id, "gsm8k", i % 2, 1, 100 + i, 100 + i, 50, 60])
    out, prices = tmp_path / "pair.csv", tmp_path / "prices.json"
    done = script("--pool-quality", scores, "--models", weak, strong, "--out", out,
                  "--prices-out", prices, "--data-dir", data_root)
    assert done.returncode == 0, done.stderr[-3000:]
    table = load_outcome_table(out)
    assert table.models == (weak, strong) and len(table) == 6
    assert table.embeddings.shape == (6, 384)
    assert np.allclose(np.linalg.norm(table.embeddings, axis=1), 1.0, atol=1e-4)
    # costs from the tokens and the built-in prices (0.20/0.40 and 0.60/1.20 USD per 1M)
    env = gym.make("LLMRouting-Table-v0", table=str(out), prices=str(prices), split="all")
    costs = np.asarray(env.unwrapped.costs)
    assert costs[0] == pytest.approx([(100 * 0.2 + 50 * 0.4) / 1e6, (100 * 0.6 + 60 * 1.2) / 1e6])
    missing = tmp_path / "missing.csv"
    missing.write_text(scores.read_text().replace(str(examples[0].id), "no-such-id", 1))
    assert "no-such-id" in refused(script("--pool-quality", missing, "--models", weak, strong,
                                          "--out", tmp_path / "x.csv", "--prices-out", tmp_path / "x.json",
                                          "--data-dir", data_root))
