"""A resumed benchmark is keyed by what its table and price files hold, not by their paths."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from routing_gym.bench import BenchConfig, run_bench
from routing_gym.bench.runner import current_records, read_records

SPLITS = ["train"] * 30 + ["valid"] * 5 + ["test"] * 10


def write_table(path: Path, best: str) -> Path:
    """Two models on 45 queries; ``best`` answers every query, the other none."""
    rng = np.random.default_rng(0)
    with open(path, "w", encoding="utf-8") as handle:
        for i, split in enumerate(SPLITS):
            row = {"id": f"q{i}", "split": split, "embedding": rng.normal(size=8).tolist()}
            for model in ("a", "b"):
                row[model] = 1.0 if model == best else 0.0
            row["prompt_tokens"] = 100
            handle.write(json.dumps(row) + "\n")
    return path


def write_prices(path: Path, price_of_b: float) -> Path:
    prices = {"a": {"input_price": 1.0, "output_price": 1.0}}
    prices["b"] = {"input_price": price_of_b, "output_price": price_of_b}
    path.write_text(json.dumps(prices))
    return path


def bench(tmp_path: Path, table: Path, prices: Path) -> BenchConfig:
    return BenchConfig(
        agents=["fixed-best"],
        envs=["LLMRouting-Table-v0"],
        regimes=["performance-first"],
        seeds=[0],
        env_config={"table": str(table), "prices": str(prices), "completion_tokens": 10},
        out=str(tmp_path / "out"),
    )


def results(config: BenchConfig) -> tuple[dict, dict]:
    records = current_records(config, read_records(config.rows_path))
    row = next(r for r in records if r["kind"] == "row")
    env = next(r for r in records if r["kind"] == "env")
    return row, env


def test_editing_the_table_in_place_recomputes_its_rows(tmp_path):
    table = write_table(tmp_path / "table.jsonl", best="a")
    prices = write_prices(tmp_path / "prices.json", 2.0)
    config = bench(tmp_path, table, prices)
    run_bench(config, progress=False)
    row, env = results(config)
    assert row["perf"] == 1.0 and row["share"] == {"a": 1.0}
    assert env["single_models"]["a"]["perf"] == 1.0

    write_table(table, best="b")  # same path, new scores
    run_bench(config, progress=False)
    row, env = results(config)
    assert row["perf"] == 1.0 and row["share"] == {"b": 1.0}  # refit on the new contents
    assert env["single_models"]["b"]["perf"] == 1.0 and env["single_models"]["a"]["perf"] == 0.0


def test_editing_the_price_file_in_place_changes_the_fingerprint(tmp_path):
    table = write_table(tmp_path / "table.jsonl", best="a")
    prices = write_prices(tmp_path / "prices.json", 2.0)
    before = bench(tmp_path, table, prices).fingerprint("fixed-best", "LLMRouting-Table-v0")
    write_prices(prices, 0.5)
    after = bench(tmp_path, table, prices).fingerprint("fixed-best", "LLMRouting-Table-v0")
    assert before != after
    # a copy with the same contents elsewhere differs only by path: the digests agree
    copy = tmp_path / "copy"
    copy.mkdir()
    same = bench(tmp_path, table, write_prices(copy / "prices.json", 0.5)).env_config
    from routing_gym.bench.runner import data_digests

    assert (
        data_digests(same)["prices"]
        == data_digests(bench(tmp_path, table, prices).env_config)["prices"]
    )
