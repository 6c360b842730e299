"""A resumed benchmark gives the rows an uninterrupted one gives: each row's randomness comes
from the row's own key (env, agent, regime, seed), never from the rows played before it."""

from __future__ import annotations

import json

import pytest

import routing_gym  # noqa: F401
from routing_gym.bench import BenchConfig, read_records, run_bench
from routing_gym.bench import runner
from routing_gym.bench.runner import row_seed

ENV = "LLMRouting-Table-GSM8K-v0"
TIMINGS = ("fit_s", "eval_s")  # wall-clock seconds differ between any two runs


def config(out) -> BenchConfig:
    """3 agents × 3 regimes × 2 seeds = 18 rows; Random comes first in every regime."""
    return BenchConfig(
        agents=["random", "knn", "fixed-best"],
        envs=[ENV],
        regimes=["balanced", "cost-first", "performance-first"],
        seeds=[0, 1],
        out=str(out),
    )


def row_bytes(out) -> dict[tuple, bytes]:
    """Each row's JSON without its timings, keyed by (agent, regime, seed)."""
    rows = [r for r in read_records(out / "rows.jsonl") if r["kind"] == "row"]
    return {
        (r["agent"], r["regime"], r["seed"]): json.dumps(
            {k: v for k, v in r.items() if k not in TIMINGS}, sort_keys=True
        ).encode()
        for r in rows
    }


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    out = tmp_path_factory.mktemp("straight")
    run_bench(config(out), progress=False)
    rows = row_bytes(out)
    assert len(rows) == 18
    return rows


@pytest.mark.parametrize("k", [1, 2, 4, 7, 10])
def test_resume_after_k_rows_gives_byte_equal_rows(k, uninterrupted, tmp_path, monkeypatch):
    written = []
    real_append = runner.append_record

    def interrupt_after_k_rows(path, record):
        if record["kind"] == "row" and len(written) == k:
            raise KeyboardInterrupt  # Ctrl-C while row k + 1 is being written
        real_append(path, record)
        if record["kind"] == "row":
            written.append(record)

    monkeypatch.setattr(runner, "append_record", interrupt_after_k_rows)
    with pytest.raises(KeyboardInterrupt):
        run_bench(config(tmp_path), progress=False)
    assert len(row_bytes(tmp_path)) == k
    monkeypatch.setattr(runner, "append_record", real_append)
    run_bench(config(tmp_path), progress=False)  # the same command again resumes
    resumed = row_bytes(tmp_path)
    assert resumed.keys() == uninterrupted.keys()
    differing = [key for key in resumed if resumed[key] != uninterrupted[key]]
    assert differing == []


def test_random_rows_differ_between_regimes_and_seeds(uninterrupted):
    """The seeds are the rows' own: two rows of Random do not replay one stream."""
    picks = {
        key: json.loads(row)["share"] for key, row in uninterrupted.items() if key[0] == "random"
    }
    assert len({json.dumps(p) for p in picks.values()}) == len(picks) == 6


def test_row_seed_depends_on_every_part_of_the_key():
    base = row_seed(ENV, "random", "balanced", 0)
    assert base == row_seed(ENV, "random", "balanced", 0)
    others = [
        row_seed("LLMRouting-Table-v0", "random", "balanced", 0),
        row_seed(ENV, "knn", "balanced", 0),
        row_seed(ENV, "random", "cost-first", 0),
        row_seed(ENV, "random", "balanced", 1),
    ]
    assert base not in others and len(set(others)) == 4
