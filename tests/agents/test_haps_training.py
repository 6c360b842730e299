"""`routing-gym train-haps` and examples/compare_haps.py on tiny random models and fixture data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agents.base import single_threaded
from routing_gym.action_table import build_action_table
from routing_gym.cli import main as cli_main

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "data" / "fixtures"
PROTOCOL = {"student_max_new_tokens": 6, "teacher_max_new_tokens": 4, "search_budget": 1}
MODELS = ["tiny-llama", "tiny-qwen2"]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    with single_threaded():
        yield


def tiny_flags() -> list[str]:
    """The fixture questions (one split: valid), the tiny pool, no response cache."""
    return [
        "train-haps",
        "--models",
        ",".join(MODELS),
        "--backbone",
        "tiny-llama",
        "--data-dir",
        str(FIXTURES),
        "--train-split",
        "valid",
        "--protocol",
        json.dumps(PROTOCOL),
        "--cache-mode",
        "off",
        "--lora-scale",
        "30",
        "--no-progress-bar",
    ]


def compare_haps(run_example, argv: list[str]) -> tuple[dict, str]:
    """examples/compare_haps.py run as a script: its summary (the last line) and its output."""
    done = run_example("compare_haps.py", argv)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1]), done.stdout


def compare_haps_error(run_example, argv: list[str]) -> str:
    """The one-line error of a compare_haps.py run that must refuse its input."""
    done = run_example("compare_haps.py", argv)
    assert done.returncode != 0 and "Traceback" not in done.stderr, done.stderr[-3000:]
    return done.stderr


def test_cli_profiles_one_joint_step_per_batch_size(capsys):
    assert cli_main([*tiny_flags(), "--profile-step", "1", "2"]) == 0
    out = capsys.readouterr().out
    profile = json.loads(out.strip().splitlines()[-1])["profile"]
    assert [(row["batch"], row["lockstep"]) for row in profile] == [(1, 0), (2, 1), (2, 0)]
    assert "batch 2: episodes in lockstep take" in out
    for row in profile:
        assert row["calls"] >= 2 * row["batch"]  # at least a Student and a Teacher call each
        assert row["prompt_tokens"] > 0 and row["generated_tokens"] > 0
        assert row["step_s"] >= row["episodes_s"] > 0 and row["update_s"] > 0
        assert row["peak_rss_mib"] > 0


@pytest.fixture(scope="module")
def tables(tmp_path_factory):
    """The exhaustive action table of the fixture questions with the tiny pool."""
    path = tmp_path_factory.mktemp("tables") / "valid_table.jsonl"
    config = {
        "models": MODELS,
        "data_dir": str(FIXTURES),
        "protocol": PROTOCOL,
        "cache_mode": "off",
    }
    build_action_table("LLMRouting-HotpotQA-v0", path, config=config, progress=False)
    return path


def test_no_lora_run_replays_the_exhaustive_table_and_is_compared(tables, tmp_path, capsys, run_example):
    results = tmp_path / "no_lora.json"
    flags = [
        *tiny_flags(),
        "--no-lora",
        "--action-table",
        str(tables),
        "--warmup-epochs",
        "2",
        "--updates",
        "1",
        "--episodes-per-update",
        "1",
        "--valid-limit",
        "2",
        "--results-json",
        str(results),
        "--out",
        str(tmp_path / "agent"),
    ]
    assert cli_main(flags) == 0
    capsys.readouterr()
    run = json.loads(results.read_text())
    assert len(run["per_episode"]) == 2
    assert {e["index"] for e in run["per_episode"]} == {0, 1}
    assert (tmp_path / "agent").is_dir()

    summary, _ = compare_haps(
        run_example,
        [
            "--train-table",
            str(tables),
            "--valid-table",
            str(tables),
            "--run",
            f"HAPS without LoRA={results}",
        ]
    )
    env_config = {"models": MODELS, "data_dir": str(FIXTURES), "protocol": PROTOCOL, "cache_mode": "off"}
    regimes, _ = compare_haps(
        run_example,
        ["--train-table", str(tables), "--valid-table", str(tables), "--run", f"HAPS without LoRA={results}",
         "--env", "LLMRouting-HotpotQA-Assign-v0", "--env-config", json.dumps(env_config),
         "--train-split", "valid", "--valid-split", "valid", "--lam", "performance-first,balanced,cost-first"]
    )
    assert len(regimes["tables"]) == 3
    for lam, table in regimes["tables"].items():
        # the run shows only in the table of the λ it was trained at (balanced, 0.5)
        assert ("HAPS without LoRA" in table) == (float(lam) == 0.5)
        one_shot = [label for label in table if label.endswith("(one-shot)")]
        assert len(one_shot) == 5
        oracle = table["Oracle (hindsight upper bound)"]["reward"]
        assert all(row["reward"] <= oracle + 1e-12 for row in table.values())
    assert "not in --lam" in compare_haps_error(
        run_example, ["--train-table", str(tables), "--valid-table", str(tables),
                      "--run", f"HAPS without LoRA={results}", "--lam", "cost-first"])
    row = summary["rows"]["HAPS without LoRA"]
    # greedy episodes without an adapter are the table's episodes, question by question
    assert row["table_matches"] == "2/2"
    assert row["vs_table"] == {"better": 0, "worse": 0, "same": 2}
    assert row["perf"] == pytest.approx(run["perf"])
    # a run whose episode scored otherwise than the table's (as a LoRA would make it) is counted
    changed = json.loads(results.read_text())
    changed["per_episode"][0]["perf"] += 0.25
    changed_path = tmp_path / "changed.json"
    changed_path.write_text(json.dumps(changed))
    other_summary, other_out = compare_haps(
        run_example, ["--train-table", str(tables), "--valid-table", str(tables), "--run", f"HAPS={changed_path}"]
    )
    other = other_summary["rows"]["HAPS"]
    assert other["vs_table"] == {"better": 1, "worse": 0, "same": 1}
    assert other["table_matches"] == "1/2"
    assert "F1 vs the table's episode: better / worse / same" in other_out
    random_row = summary["rows"]["Random (expectation over the assignments)"]
    oracle = summary["rows"]["Oracle (hindsight upper bound)"]
    assert oracle["reward"] >= max(row["reward"], random_row["reward"]) - 1e-12
    assert summary["questions"] == 2


def test_compare_haps_names_a_results_file_without_episodes(tables, tmp_path, run_example):
    bad = tmp_path / "scores_only.json"
    bad.write_text(json.dumps({"perf": 0.1}))
    assert "scores_only.json: no 'per_episode'" in compare_haps_error(
        run_example, ["--train-table", str(tables), "--valid-table", str(tables), "--run", f"HAPS={bad}"]
    )


def test_joint_phase_plays_its_episodes_in_lockstep_env_copies(tmp_path, monkeypatch):
    import gymnasium as gym

    from agents.haps import HAPSAgent, HAPSConfig, haps_env_config
    from routing_gym.llm.pool import LLMPool

    config = HAPSConfig(backbone="tiny-llama", joint_updates=1, episodes_per_update=4, rollout_envs=2,
                        progress_bar=False, warmup_epochs=0)
    env = gym.make("LLMRouting-HotpotQA-HAPS-v0", config=haps_env_config(
        config, 0.7, models=MODELS, data_dir=str(FIXTURES), split="valid", cache_mode="off", protocol=PROTOCOL,
        lora_scale=30.0))
    agent = HAPSAgent(config)
    agent.adapt_to(env)
    sizes = []
    original = LLMPool.generate
    monkeypatch.setattr(LLMPool, "generate", lambda self, reqs: sizes.append(len(reqs)) or original(self, reqs))
    vec = agent.batched_env(env, 2)
    episodes = agent.rollout(vec, 4)
    vec.close()
    assert len(episodes) == 4 and all(e.calls for e in episodes)
    assert max(sizes) == 2  # the two copies' turns share one generation call
    sizes.clear()
    agent.fit_env(env)  # rollout_envs=2: the joint phase itself runs through the copies
    assert max(sizes) == 2
    with pytest.raises(ValueError, match="must divide"):
        HAPSAgent(HAPSConfig(episodes_per_update=4, rollout_envs=3))


def test_mixed_source_setting_gives_lora_only_to_the_open_model(capsys):
    from agents.haps.cli import pool_models
    from routing_gym.errors import UsageError

    with pytest.raises(UsageError, match="gpt-17"):
        pool_models("tiny-llama,tiny-qwen2", "gpt-17")
    assert cli_main([*tiny_flags(), "--closed", "tiny-qwen2", "--profile-step", "1"]) == 0
    out = capsys.readouterr().out
    assert json.loads(out.strip().splitlines()[-1])["profile"][0]["calls"] >= 2
    import gymnasium as gym

    env = gym.make("LLMRouting-HotpotQA-HAPS-v0", config={
        "models": pool_models("tiny-llama,tiny-qwen2", "tiny-qwen2"), "data_dir": str(FIXTURES),
        "cache_mode": "off", "protocol": PROTOCOL})
    assert list(env.action_space["lora"].spaces) == ["tiny-llama"]
    assert env.unwrapped.model_names == ["tiny-llama", "tiny-qwen2"]


def test_a_table_of_another_protocol_is_refused_before_training(tables, tmp_path, capsys):
    other = {**PROTOCOL, "teacher_max_new_tokens": PROTOCOL.get("teacher_max_new_tokens", 4) + 1}
    flags = [*tiny_flags(), "--action-table", str(tables), "--warmup-epochs", "1", "--updates", "0"]
    flags[flags.index("--protocol") + 1] = json.dumps(other)
    assert cli_main(flags) != 0
    err = capsys.readouterr().err
    assert "ActionTable built with protocol" in err and "teacher_max_new_tokens" in err


def test_early_stopping_questions_are_kept_apart_from_the_trained_and_reported_ones(tmp_path, capsys):
    base = [*tiny_flags(), "--warmup-epochs", "0", "--updates", "1", "--episodes-per-update", "1",
            "--eval-every", "1", "--valid-episodes", "1", "--train-limit", "1", "--valid-limit", "1",
            "--stop-split", "valid", "--stop-limit", "1"]
    assert cli_main([*base, "--stop-skip", "0"]) != 0
    err = capsys.readouterr().err
    assert "1 early-stopping questions are also train questions" in err and "toy-" in err
    results = tmp_path / "run.json"
    assert cli_main([*base, "--stop-skip", "1", "--results-json", str(results)]) == 0
    run = json.loads(results.read_text())
    assert [e["index"] for e in run["per_episode"]] == [0]  # reported: the first valid question only


def test_the_same_command_resumes_a_finished_or_stopped_run(tmp_path, capsys):
    flags = [*tiny_flags(), "--updates", "2", "--episodes-per-update", "1", "--valid-limit", "1",
             "--warmup-epochs", "0", "--out", str(tmp_path / "agent")]
    assert cli_main(flags) == 0
    first = capsys.readouterr()
    checkpoint = tmp_path / "agent" / "joint_checkpoint.pt"
    assert checkpoint.exists() and "Resuming" not in first.err
    assert cli_main(flags) == 0
    again = capsys.readouterr()
    assert f"Resuming from {checkpoint}: training finished." in again.err
    assert again.out.strip().splitlines()[-1] == first.out.strip().splitlines()[-1]  # the same valid scores
    assert cli_main([*flags[:-4], "--lr", "0.5", *flags[-4:]]) == 1
    err = capsys.readouterr().err
    assert "checkpoint of another run" in err and "Resuming" not in err and "Traceback" not in err


def test_env_config_reaches_every_env_and_bad_values_are_named(capsys):
    assert cli_main([*tiny_flags(), "--env-config", '{"shuffle": false}', "--profile-step", "1"]) == 0
    capsys.readouterr()
    assert cli_main([*tiny_flags(), "--env-config", '{"colour": "red"}', "--profile-step", "1"]) == 1
    assert "colour" in capsys.readouterr().err
    from routing_gym.errors import UsageError

    for value, message in (('{"split": "train"}', "--env-config 'split': set it with its own flag"),
                           ("{oops", "--env-config: not valid JSON"), ("[1]", "must be a JSON object")):
        with pytest.raises(UsageError) as exc:
            cli_main([*tiny_flags(), "--env-config", value])
        assert exc.value.code == 2 and message in capsys.readouterr().err


def test_haps_regimes_trains_each_variant_once_and_compares_them(tables, tmp_path, run_example):
    train_table = tmp_path / "train_table.jsonl"
    build_action_table("LLMRouting-HotpotQA-v0", train_table, progress=False, config={
        "models": MODELS, "data_dir": str(FIXTURES), "protocol": PROTOCOL, "cache_mode": "off", "limit": 1})
    argv = ["--task", "hotpotqa", "--train-table", str(train_table), "--valid-table", str(tables),
            "--out-dir", str(tmp_path / "runs"), "--models", ",".join(MODELS), "--closed", "tiny-qwen2",
            "--data-dir", str(FIXTURES), "--train-split", "valid", "--train", "1", "--stop", "1", "--valid", "1",
            "--regimes", "balanced", "--variants", "HAPS,HAPS without LoRA", "--",
            "--backbone", "tiny-llama", "--protocol", json.dumps(PROTOCOL), "--cache-mode", "off",
            "--lora-scale", "30", "--no-progress-bar", "--updates", "1", "--episodes-per-update", "1",
            "--rollout-envs", "1", "--eval-every", "1", "--warmup-epochs", "1"]
    done = run_example("haps_regimes.py", argv)
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    summary = json.loads(out.strip().splitlines()[-1])
    table = summary["tables"]["0.5"]
    assert summary["metric"] == "F1" and summary["questions"] == 1
    assert table["HAPS (balanced)"]["table_matches"].endswith("/1")
    assert table["HAPS without LoRA (balanced)"]["table_matches"] == "1/1"  # no LoRA: the table's episode
    assert any(label.startswith("knn") or "kNN" in label for label in table)
    runs = sorted(p.parent.name for p in (tmp_path / "runs" / "hotpotqa").glob("*/results.json"))
    assert runs == ["haps-balanced", "haps-without-lora-balanced"]
    # a second call finds both results and only compares
    done = run_example("haps_regimes.py", argv)
    assert done.returncode == 0, done.stderr[-3000:]
    again = done.stdout
    assert "== hotpotqa" not in again and json.loads(again.strip().splitlines()[-1]) == summary
