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
    assert "none.jsonl has 0/2 questions" in lines[0] and "routing-gym precompute" in lines[0]
    assert lines[-2].startswith(f"waits    {chosen[0].slug}")
    per_run = (
        2 * claims.SECONDS_PER_UPDATE_OF_4 / 4
        + 2 * claims.SECONDS_PER_EPISODE
        + 2 * claims.SECONDS_PER_EPISODE
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
