"""The HAPS claims plan on tiny models and fixture questions: resume after kills, the listing,
the report's summary."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from agents.base import single_threaded
from agents.haps import claims
from agents.haps.checkpoints import JointCheckpoint
from routing_gym import records
from routing_gym.action_table import build_action_table

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "data" / "fixtures"
PROTOCOL = {"student_max_new_tokens": 6, "teacher_max_new_tokens": 4}
MODELS = ("tiny-llama", "tiny-qwen2")


class Killed(Exception):
    """Stands for the process being killed at that point."""


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    with single_threaded():
        yield


@pytest.fixture(scope="module")
def table(tmp_path_factory) -> Path:
    """The exhaustive table of the first two fixture MMLU questions (the train and the reported ones)."""
    path = tmp_path_factory.mktemp("tables") / "table.jsonl"
    config = {
        "models": list(MODELS),
        "data_dir": str(FIXTURES),
        "protocol": PROTOCOL,
        "cache_mode": "off",
        "split": "dev",
        "limit": 2,
    }
    build_action_table("LLMRouting-MMLU-v0", path, config=config, progress=False)
    return path


def tiny_plan(table: Path, **changes) -> claims.Plan:
    """Train on fixture MMLU questions 0-1, stop early on question 2, report on 0-1."""
    task = claims.Task(
        "LLMRouting-MMLU-HAPS-v0",
        "LLMRouting-MMLU-Assign-v0",
        "dev",
        2,
        1,
        "dev",
        2,
        str(table),
        str(table),
        metric="accuracy",
    )
    plan = claims.Plan(
        tasks={"mmlu": task},
        pools={
            "lq": {"models": MODELS, "closed": ()},
            "mixed": {"models": MODELS, "closed": MODELS[1:]},
        },
        regimes=("balanced",),
        seeds=(0,),
        training={
            "updates": 2,
            "episodes_per_update": 1,
            "rollout_envs": 1,
            "eval_every": 1,
            "patience": 2,
            "warmup_epochs": 2,
        },
        data_dir=str(FIXTURES),
        extra=(
            "--backbone",
            "tiny-llama",
            "--protocol",
            json.dumps(PROTOCOL),
            "--cache-mode",
            "off",
            "--lora-scale",
            "30",
        ),
    )
    return dataclasses.replace(plan, **changes)


def test_the_plan_lists_each_run_once_and_selects_with_only(table, tmp_path):
    plan = tiny_plan(table, seeds=(0, 1, 2))
    runs = plan.runs()
    # HAPS and without sharing per pool; without LoRA once (a closed model changes nothing for it)
    assert len(runs) == (2 * 2 + 1) * 3
    assert {r.pool for r in runs if r.variant == claims.NO_LORA} == {"lq"}
    mixed = claims.Run("mmlu", "mixed", "balanced", claims.NO_LORA, 1)
    assert plan.reported_run(mixed).pool == "lq"
    chosen = claims.select(runs, ["variant=HAPS", "seed=0,2"])
    assert [(r.pool, r.seed) for r in chosen] == [("lq", 0), ("lq", 2), ("mixed", 0), ("mixed", 2)]
    with pytest.raises(ValueError, match="no such seed"):
        claims.select(runs, ["seed=5"])
    with pytest.raises(ValueError, match="expected FIELD=VALUE"):
        claims.select(runs, ["colour=red"])
    lines = claims.plan_lines(plan, chosen, tmp_path / "runs", tmp_path / "work")
    assert sum(line.startswith("left") for line in lines) == 4
    assert lines[-1].startswith("0 of 4 runs done")
    # the estimate is the measured times scaled by the counts: 2 updates of 1 episode, 2 early
    # stops of 1 question, 2 reported questions
    missing = dataclasses.replace(plan.tasks["mmlu"], train_table=str(tmp_path / "none.jsonl"))
    waiting = dataclasses.replace(plan, tasks={"mmlu": missing})
    lines = claims.plan_lines(waiting, chosen[:1], tmp_path / "runs", tmp_path / "work")
    missing_line = next(line for line in lines if "none.jsonl" in line)
    assert "none.jsonl has 0/2 questions" in missing_line
    assert "routing-gym precompute" in missing_line
    assert lines[-2].startswith(f"waits    {chosen[0].slug}")
    per_run = (
        2 * claims.SECONDS_PER_UPDATE_OF_4["lq"] / 4
        + 2 * claims.SECONDS_PER_EPISODE["lq"]
        + 2 * claims.SECONDS_PER_EPISODE["lq"]
    )
    assert claims.estimate_seconds(plan, chosen[0]) == pytest.approx(per_run)


def run_once(plan: claims.Plan, run: claims.Run, root: Path) -> dict:
    return claims.execute(
        claims.RunFiles(plan, run, root / "runs", root / "work"), log=lambda _: None
    )


def test_a_run_killed_in_training_and_in_evaluation_resumes_to_the_uninterrupted_result(
    table, tmp_path, monkeypatch
):
    plan = tiny_plan(table)
    run = claims.Run("mmlu", "lq", "balanced", "HAPS", 0)
    whole = run_once(plan, run, tmp_path / "whole")
    assert len(whole["per_episode"]) == 2
    assert whole["sizes"] == {
        "train": 2,
        "stop": 1,
        "report": 2,
        "models": list(MODELS),
        "closed": [],
    }
    assert [u for u, _ in whole["curve"]["train"]] == [1, 2]

    root = tmp_path / "killed"
    files = claims.RunFiles(plan, run, root / "runs", root / "work")
    save = JointCheckpoint.save

    def save_then_die(self, agent, next_update, stopper, finished):
        save(self, agent, next_update, stopper, finished)
        if not finished:
            raise Killed

    monkeypatch.setattr(JointCheckpoint, "save", save_then_die)
    with pytest.raises(Killed):
        run_once(plan, run, root)
    monkeypatch.undo()
    listed = claims.plan_lines(plan, [run], root / "runs", root / "work")
    assert "update 1/2, 0/2 questions played" in listed[-2] and listed[-2].startswith("started")

    append = records.append_record

    def append_then_tear(path, record):  # one whole line, then a torn one, then the kill
        append(path, record)
        with open(path, "a") as handle:
            handle.write('{"question": "tor')
        raise Killed

    monkeypatch.setattr(records, "append_record", append_then_tear)
    with pytest.raises(Killed):
        run_once(plan, run, root)
    monkeypatch.undo()
    assert (
        "training finished, 1/2 questions played"
        in claims.plan_lines(plan, [run], root / "runs", root / "work")[-2]
    )

    resumed = run_once(plan, run, root)
    assert resumed["key"] == whole["key"]
    assert resumed["curve"] == whole["curve"]
    assert resumed["per_episode"] == whole["per_episode"]
    assert files.done()
    assert (
        claims.plan_lines(plan, [run], root / "runs", root / "work")[-2] == f"done     {run.slug}"
    )


def test_the_report_puts_finished_runs_beside_the_baselines(table, tmp_path):
    from routing_gym.bench.claims import claims_table, find_group, plot_learning_curves

    plan = tiny_plan(table, variants=("HAPS", claims.NO_LORA))
    for run in plan.runs():
        run_once(plan, run, tmp_path)
    summary = claims.report_summary(plan, tmp_path / "runs", tmp_path / "work", one_shot=False)
    assert [(g["pool"], g["regime"]) for g in summary["groups"]] == [
        ("lq", "balanced"),
        ("mixed", "balanced"),
    ]
    assert summary["plan"]["tasks"] == {"mmlu": {"train": 2, "stop": 1, "report": 2}}
    assert summary["groups"][1]["sizes"]["closed"] == list(MODELS[1:])
    for group in summary["groups"]:
        # the variant without LoRA ran once and is reported in both pools
        assert set(group["variants"]) == {"HAPS", claims.NO_LORA}
        assert len(group["question_ids"]) == 2
        assert "Random (expectation over the assignments)" in group["baselines"]
        assert any(label.startswith("Fixed ") for label in group["baselines"])
        # greedy without an adapter replays the table: LoRA changed nothing there
        assert group["variants"][claims.NO_LORA]["0"]["vs_table"]["same"] == 2
    group = find_group(json.loads(json.dumps(summary)), "mmlu", "lq", "balanced")
    text = claims_table(group)
    assert "| HAPS | 1 |" in text and "Claim 2" in text
    assert plot_learning_curves(group, tmp_path / "curve.png").stat().st_size > 0


def parsed_plan(*argv: str) -> claims.Plan:
    import argparse

    parser = argparse.ArgumentParser()
    claims.add_plan_flags(parser)
    return claims.plan_from_args(parser.parse_args(list(argv)), REPO)


def test_the_flags_choose_the_tasks_pools_variants_and_sizes():
    plan = parsed_plan(
        "--tasks", "mmlu", "--pools", "small", "--regimes", "balanced",
        "--variants", "haps,HAPS without LoRA", "--seeds", "0,1",
        "--mmlu-train", "48", "--mmlu-stop", "16", "--mmlu-report", "100",
    )  # fmt: skip
    assert [(r.task, r.pool, r.regime, r.variant, r.seed) for r in plan.runs()] == [
        ("mmlu", "small", "balanced", variant, seed)
        for variant in ("HAPS", claims.NO_LORA)
        for seed in (0, 1)
    ]
    assert plan.sizes("mmlu", "small") == {
        "train": 48,
        "stop": 16,
        "report": 100,
        "models": ["smollm2-135m", "qwen2.5-coder-0.5b"],
        "closed": [],
    }
    # the defaults: both tasks, the Qwen pair's two pools, every variant, their sizes
    default = parsed_plan()
    assert list(default.pools) == ["lq", "mixed"] and list(default.tasks) == ["hotpotqa", "mmlu"]
    assert default.tasks["mmlu"] == claims.TASKS["mmlu"]
    assert len(default.runs()) == 90
    # the run without LoRA is shared only between pools of the same models
    three = parsed_plan(
        "--pools", "small,mixed,lq", "--tasks", "mmlu", "--variants", "haps-without-lora"
    )
    assert sorted({r.pool for r in three.runs()}) == ["lq", "small"]
    run = claims.Run("mmlu", "mixed", "balanced", claims.NO_LORA, 0)
    assert three.reported_run(run).pool == "lq"
    assert three.reported_run(dataclasses.replace(run, pool="small")).pool == "small"


@pytest.mark.parametrize(
    "argv, message",
    [
        (("--pools", "lq,tiny"), "--pools 'tiny': choose from lq, mixed, small."),
        (("--tasks", "mmlu,arc"), "--tasks 'arc': choose from hotpotqa, mmlu."),
        (("--variants", "haps,fast"), "--variants 'fast': choose from HAPS, "),
        (("--regimes", "greedy"), "--regimes 'greedy': choose from balanced, "),
        (("--hotpotqa-stop", "0"), "--hotpotqa-stop 0: must be a positive number"),
    ],
)
def test_an_unknown_name_or_a_bad_size_is_a_one_line_error(argv, message):
    with pytest.raises(ValueError) as error:
        parsed_plan(*argv)
    assert str(error.value).startswith(message) and "\n" not in str(error.value)


def test_each_pools_models_have_their_own_tables():
    default = parsed_plan("--pools", "lq,mixed,small")
    sized = parsed_plan("--pools", "lq,mixed,small", "--mmlu-train", "48", "--hotpotqa-train", "64")

    def path(plan: claims.Plan, task: str, which: str, pool: str) -> str:
        return plan.table(task, which, pool).relative_to(REPO).as_posix()

    tables = "docs/action_tables/"
    for pool in ("lq", "mixed"):  # the Qwen pair's tables at the default sizes, as they were
        assert [
            path(default, task, which, pool)
            for task in ("hotpotqa", "mmlu")
            for which in ("train_table", "report_table")
        ] == [
            tables + "hotpotqa_train268_qwen_pair.jsonl",
            tables + "hotpotqa_valid_qwen_pair.jsonl",
            tables + "mmlu_val300_qwen_pair.jsonl",
            tables + "mmlu_test_qwen_pair.jsonl",
        ]
    assert [
        path(sized, task, which, "small")
        for task in ("hotpotqa", "mmlu")
        for which in ("train_table", "report_table")
    ] == [
        tables + "hotpotqa_train64_small_pair.jsonl",
        tables + "hotpotqa_valid_small_pair.jsonl",
        tables + "mmlu_val48_small_pair.jsonl",
        tables + "mmlu_test_small_pair.jsonl",
    ]
    # a train table holds exactly the train questions: another train count, another table
    assert path(sized, "mmlu", "train_table", "lq") == tables + "mmlu_val48_qwen_pair.jsonl"
    # a table flag of one pool overrides that pool's only; the task's, every pool's
    given = parsed_plan("--pools", "lq,small", "--mmlu-small-report-table", "elsewhere.jsonl")
    assert path(given, "mmlu", "report_table", "small") == "elsewhere.jsonl"
    assert path(given, "mmlu", "report_table", "lq") == tables + "mmlu_test_qwen_pair.jsonl"
    every = parsed_plan("--pools", "lq,small", "--mmlu-report-table", "all.jsonl")
    assert {path(every, "mmlu", "report_table", p) for p in ("lq", "small")} == {"all.jsonl"}


def test_the_plan_prints_the_precompute_command_that_completes_a_table(table, tmp_path):
    import shlex

    from routing_gym.cli import main as routing_gym

    plan = tiny_plan(table)
    partial = tmp_path / "partial.jsonl"
    lines = table.read_text().splitlines()
    first = json.loads(lines[1])["question_id"]  # the header, then the rows
    partial.write_text(
        "\n".join([lines[0], *(r for r in lines[1:] if json.loads(r)["question_id"] == first)])
        + "\n"
    )
    plan.tables[("mmlu", "lq", "report_table")] = str(partial)
    run = claims.Run("mmlu", "lq", "balanced", "HAPS", 0)
    listed = claims.plan_lines(plan, [run], tmp_path / "runs", tmp_path / "work")
    assert listed[:2] == [
        "task mmlu: train 2 (dev), early stopping 1 (the next dev questions), report 2 (dev)",
        "pool lq: tiny-llama, tiny-qwen2, all open",
    ]
    line = next(line for line in listed if "partial.jsonl" in line)
    assert "partial.jsonl has 1/2 questions" in line
    command = line.split(": ", 2)[2]
    assert command.startswith(
        "routing-gym precompute --env LLMRouting-MMLU-v0 --split dev --limit 2 "
        f"--models tiny-llama tiny-qwen2 --out {partial}"
    )
    assert listed[-2].startswith(f"waits    {run.slug}")
    # the command resumes into the same file: the first question's rows stay, the second is added
    before = partial.read_text()
    argv = shlex.split(command)[1:] + ["--cache-mode", "off"]
    assert routing_gym(argv) == 0
    assert partial.read_text().startswith(before)
    assert plan.tables_ready("mmlu", "lq")
    listed = claims.plan_lines(plan, [run], tmp_path / "runs", tmp_path / "work")
    assert f"{partial} (complete)" in next(line for line in listed if "partial.jsonl" in line)
    assert listed[-2].startswith(f"left     {run.slug}")


def test_a_train_table_with_other_questions_is_not_ready(table, tmp_path):
    # the table holds questions 0-1; trained on question 0 only, the warm-up would fail
    plan = tiny_plan(table)
    one = dataclasses.replace(plan.tasks["mmlu"], train=1)
    plan = dataclasses.replace(plan, tasks={"mmlu": one})
    assert not plan.tables_ready("mmlu", "lq")
    run = claims.Run("mmlu", "lq", "balanced", "HAPS", 0)
    listed = claims.plan_lines(plan, [run], tmp_path / "runs", tmp_path / "work")
    assert any("holds 1 questions besides the 1 trained on" in line for line in listed)


def test_the_key_changes_with_each_size_and_the_pool_models(table, tmp_path):
    plan = tiny_plan(table)
    run = claims.Run("mmlu", "lq", "balanced", "HAPS", 0)

    def key(plan: claims.Plan) -> str:
        return claims.RunFiles(plan, run, tmp_path / "runs", tmp_path / "work").key()

    task = plan.tasks["mmlu"]
    keys = [key(plan)] + [
        key(dataclasses.replace(plan, tasks={"mmlu": dataclasses.replace(task, **change)}))
        for change in ({"train": 1}, {"stop": 2}, {"report": 1})
    ]
    other_models = {**plan.pools, "lq": {"models": MODELS[::-1], "closed": ()}}
    keys.append(key(dataclasses.replace(plan, pools=other_models)))
    assert len(set(keys)) == len(keys)
    assert key(tiny_plan(table)) == keys[0]  # the same sizes: the same key
