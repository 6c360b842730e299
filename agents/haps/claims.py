"""HAPS's three claims, planned as runs that stop and resume step by step, and their report.

The plan (``Plan``) is every (task, pool, regime, variant, seed). One run trains HAPS through
``routing-gym train-haps``'s own pieces (warm-up on the exhaustive train table, joint REINFORCE
checkpointed after every update, early stopping on a slice kept apart from the train questions),
then plays the reported questions greedily, appending one JSON line per question keyed by its
content digest (``routing_gym.records``). A killed run resumes from its checkpoint, or from the
questions it already played; when all are played the run writes its *finished file*
(``<runs>/<task>/<pool>/<regime>/<variant>/seed<k>.json``: the per-question rows, the learning
curve and the run's sizes), the one file of the run to commit. Work files (checkpoint,
TensorBoard log, the per-question lines) stay under the work folder, keyed by the run's settings.

``report_summary`` puts the finished runs beside the tables' baselines (``comparison``), one group
per (task, pool, regime); ``routing_gym.bench.claims`` renders it. The variant without LoRA has
no generated adapter, so a closed model makes no difference to it: it runs once per pool
models, under the first pool of those models, and every pool of the same models reports it.

The exhaustive tables are per (task, pool models): ``default_table`` names them after the task,
the split, the train count (a train table holds exactly the train questions, as the warm-up
requires) and the pair (``qwen_pair``, ``small_pair``).
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import hashlib
import json
import shlex
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

#: Rough seconds per joint update of 4 episodes and per greedy episode, per pool, on this 2-core
#: CPU; the plan's estimate scales them by the run's counts. Qwen pair: measured
#: (docs/performance.md, "HAPS: one joint step", mixed-source, fine-tuned backbone: 403.5 s per
#: update, about 100 s per episode); ``lq`` reuses them (its backward through the 1.5B costs more).
#: Small pair: not measured yet, scaled from the Qwen pair by prompt tokens per episode times a
#: per-token cost of 1 (1.5B), 1/3 (0.5B), 1/11 (SmolLM2-135M), half the tokens per role. In
#: docs/action_tables/mmlu_val_default_pool.jsonl (48 MMLU val questions, prompt plus scoring
#: tokens) the Qwen pair's 4 assignments average 3,153 tokens (2,059 1.5B-token units) and the
#: small pair's 3,905 tokens (776 units): 776 / 2,059 = 0.377 of the Qwen pair's time.
SMALL_OVER_QWEN = 0.377
SECONDS_PER_UPDATE_OF_4 = {"lq": 403.5, "mixed": 403.5, "small": 403.5 * SMALL_OVER_QWEN}
SECONDS_PER_EPISODE = {"lq": 100.0, "mixed": 100.0, "small": 100.0 * SMALL_OVER_QWEN}
ASSIGNMENTS = 4  # two roles, two models: the exhaustive tables play 4 episodes per question

RUN_FORMAT = "routing_gym.haps_claims_run/1"


@dataclasses.dataclass(frozen=True)
class Task:
    """One task of the plan: its envs, splits, question counts and exhaustive tables."""

    env: str
    assign_env: str
    train_split: str
    train: int  # the first ``train`` questions of train_split
    stop: int  # early stopping: the next ``stop`` questions of train_split
    report_split: str
    report: int
    #: the plan's tables for every pool of the task (None: ``default_table`` of each pool's models)
    train_table: str | None = None  # exhaustive, of exactly the train questions
    report_table: str | None = None  # exhaustive, covering the reported questions
    env_config: dict = dataclasses.field(default_factory=dict)
    metric: str = "F1"


QWEN_PAIR = ("qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b")
SMALL_PAIR = ("smollm2-135m", "qwen2.5-coder-0.5b")
#: The pool models' name in their tables' file names.
PAIR_NAMES = {QWEN_PAIR: "qwen_pair", SMALL_PAIR: "small_pair"}
TASKS = {
    "hotpotqa": Task(
        "LLMRouting-HotpotQA-HAPS-v0",
        "LLMRouting-HotpotQA-Assign-v0",
        "train",
        268,
        32,
        "valid",
        100,
    ),
    "mmlu": Task(
        "LLMRouting-MMLU-HAPS-v0",
        "LLMRouting-MMLU-Assign-v0",
        "val",
        300,
        32,
        "test",
        400,
        metric="accuracy",
    ),
}
#: Pools: the models, and those used as they are (no LoRA generator). The first is the default.
POOLS = {
    "lq": {"models": QWEN_PAIR, "closed": ()},
    "mixed": {"models": QWEN_PAIR, "closed": (QWEN_PAIR[1],)},
    "small": {"models": SMALL_PAIR, "closed": ()},
}
DEFAULT_POOLS = ("lq", "mixed")
REGIMES = ("balanced", "performance-first", "cost-first")
#: The variants (train-haps flags); the backbone is fine-tuned in each, shared unless said.
VARIANTS = {
    "HAPS": ["--finetune-backbone"],
    "HAPS without LoRA": ["--finetune-backbone", "--no-lora"],
    "HAPS without sharing": ["--finetune-backbone", "--no-share-backbone"],
}
NO_LORA = "HAPS without LoRA"


def variant_slug(variant: str) -> str:
    return variant.lower().replace(" ", "-")


#: The joint phase: updates of episodes in lockstep copies, early stopping every few updates.
TRAINING = {
    "updates": 16,
    "episodes_per_update": 4,
    "rollout_envs": 4,
    "eval_every": 4,
    "patience": 2,
    "warmup_epochs": 30,
}


@dataclasses.dataclass(frozen=True)
class Run:
    """One (task, pool, regime, variant, seed) of the plan."""

    task: str
    pool: str
    regime: str
    variant: str
    seed: int

    @property
    def slug(self) -> str:
        return "/".join(
            [
                self.task,
                self.pool,
                self.regime,
                variant_slug(self.variant),
                f"seed{self.seed}",
            ]
        )

    def fields(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass
class Plan:
    """Every run and how each is trained; ``extra`` flags go to every run (tests: tiny models)."""

    tasks: dict[str, Task] = dataclasses.field(default_factory=lambda: dict(TASKS))
    pools: dict[str, dict] = dataclasses.field(default_factory=lambda: dict(POOLS))
    regimes: Sequence[str] = REGIMES
    variants: Sequence[str] = tuple(VARIANTS)
    seeds: Sequence[int] = (0, 1, 2)
    training: dict[str, int] = dataclasses.field(default_factory=lambda: dict(TRAINING))
    data_dir: str | None = None
    extra: Sequence[str] = ()
    root: Path = Path(".")  # table paths are relative to it
    #: table paths by (task, pool, "train_table" | "report_table"), over the task's and the default
    tables: dict[tuple[str, str, str], str] = dataclasses.field(default_factory=dict)

    def runs(self) -> list[Run]:
        """Every run, the variant without LoRA once per (task, pool models, regime, seed)."""
        return [
            run
            for task in self.tasks
            for pool in self.pools
            for regime in self.regimes
            for variant in self.variants
            for seed in self.seeds
            if self.reported_run(run := Run(task, pool, regime, variant, seed)) == run
        ]

    def reported_run(self, run: Run) -> Run:
        """The run whose file a (task, pool, regime, variant, seed) reads (no-LoRA: the first pool
        of the same models)."""
        if run.variant == NO_LORA:
            models = tuple(self.pools[run.pool]["models"])
            first = next(p for p, s in self.pools.items() if tuple(s["models"]) == models)
            return dataclasses.replace(run, pool=first)
        return run

    def sizes(self, task: str, pool: str) -> dict[str, Any]:
        """What a run of (task, pool) trains and reports on: its question counts and models."""
        spec, models = self.tasks[task], self.pools[pool]
        return {
            "train": spec.train,
            "stop": spec.stop,
            "report": spec.report,
            "models": list(models["models"]),
            "closed": list(models["closed"]),
        }

    def table(self, task: str, which: str, pool: str) -> Path:
        """A table of (task, pool): given for the pool, else for the task, else the default."""
        path = (
            self.tables.get((task, pool, which))
            or getattr(self.tasks[task], which)
            or default_table(task, self.tasks[task], which, self.pools[pool]["models"])
        )
        return self.root / path

    def table_questions(self, task: str, which: str) -> list[str]:
        """The ids of the questions a table must hold: the train ones, or the reported ones."""
        spec = self.tasks[task]
        split, count = (
            (spec.train_split, spec.train)
            if which == "train_table"
            else (spec.report_split, spec.report)
        )
        return list(
            split_questions(spec.env, split, count, self.data_dir, json.dumps(spec.env_config))
        )

    def table_state(self, task: str, which: str, pool: str) -> tuple[int, int]:
        """(questions of the table's set it holds complete, questions it holds outside the set)."""
        wanted = set(self.table_questions(task, which))
        complete, held = table_questions(self.table(task, which, pool))
        return len(wanted & complete), len(held - wanted)

    def table_ready(self, task: str, which: str, pool: str) -> bool:
        """Complete on its questions; a train table also holds no other (the warm-up needs that)."""
        have, other = self.table_state(task, which, pool)
        return have == len(self.table_questions(task, which)) and not (
            which == "train_table" and other
        )

    def tables_ready(self, task: str, pool: str) -> bool:
        """Whether both exhaustive tables of (task, pool) are ready for a run."""
        return all(self.table_ready(task, w, pool) for w in ("train_table", "report_table"))


def default_table(task_name: str, task: Task, which: str, models: Sequence[str]) -> str:
    """The table of (task, pool models): docs/action_tables/<task>_<split>[<train>]_<pair>.jsonl."""
    pair = PAIR_NAMES.get(tuple(models))
    if pair is None:
        raise ValueError(
            f"no table name for the models {', '.join(models)}: give the table with its flag."
        )
    if which == "train_table":
        return f"docs/action_tables/{task_name}_{task.train_split}{task.train}_{pair}.jsonl"
    return f"docs/action_tables/{task_name}_{task.report_split}_{pair}.jsonl"


@functools.lru_cache(maxsize=32)
def split_questions(
    env_id: str, split: str, limit: int, data_dir: str | None, env_config: str
) -> tuple[str, ...]:
    """The ids of the first ``limit`` questions of a split, as the task's envs choose them."""
    import gymnasium as gym

    config = {**json.loads(env_config), "split": split, "limit": limit}
    if data_dir:
        config["data_dir"] = str(data_dir)
    env = gym.make(env_id.replace("-HAPS", ""), config=config)  # models load lazily: none here
    try:
        return tuple(str(e.id) for e in env.unwrapped.examples)
    finally:
        env.close()


def table_questions(path: Path) -> tuple[frozenset[str], frozenset[str]]:
    """(questions with every assignment, every question) of an exhaustive table (none for no
    file): a question still being built is not complete."""
    path = Path(path)
    if not path.exists():
        return frozenset(), frozenset()
    stat = path.stat()
    return _table_questions(str(path), stat.st_mtime_ns, stat.st_size)


def complete_questions(path: Path) -> int:
    """How many questions of an exhaustive table have every assignment (0 for no file)."""
    return len(table_questions(path)[0])


@functools.lru_cache(maxsize=16)
def _table_questions(path: str, mtime_ns: int, size: int) -> tuple[frozenset[str], frozenset[str]]:
    from collections import Counter

    from routing_gym.action_table import ActionTable
    from routing_gym.errors import DataFormatError

    try:
        table = ActionTable.load(path)
    except DataFormatError:  # empty: only a header so far
        return frozenset(), frozenset()
    per_question = Counter(str(row["question_id"]) for row in table.rows)
    full = len(table.models) ** len(table.roles)
    complete = frozenset(q for q, count in per_question.items() if count >= full)
    return complete, frozenset(per_question)


def select(runs: Iterable[Run], only: Sequence[str]) -> list[Run]:
    """The runs matching every ``FIELD=VALUE[,VALUE...]`` of ``only`` (task, pool, regime,
    variant, seed); an unknown field or a value no run has is a ``ValueError``."""
    runs = list(runs)
    for condition in only:
        name, _, values = condition.partition("=")
        if name not in Run.__dataclass_fields__ or not values:
            raise ValueError(
                f"--only {condition!r}: expected FIELD=VALUE with FIELD one of "
                f"{', '.join(Run.__dataclass_fields__)}."
            )
        wanted = set(values.split(","))
        known = {str(getattr(r, name)) for r in runs}
        unknown = sorted(wanted - known)
        if unknown:
            raise ValueError(
                f"--only {name}={unknown[0]!r}: no such {name} in the plan "
                f"(it has {', '.join(sorted(known))})."
            )
        runs = [r for r in runs if str(getattr(r, name)) in wanted]
    return runs


def file_digest(path: Path) -> str:
    """sha256 of a file's bytes (the tables key a run by their content, not their path)."""
    stat = Path(path).stat()
    return _file_digest(str(path), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=16)
def _file_digest(path: str, mtime_ns: int, size: int) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


# -- one run ---------------------------------------------------------------------------------
class RunFiles:
    """Where a run's finished file and its work files are."""

    def __init__(self, plan: Plan, run: Run, runs_dir: Path, work_dir: Path):
        self.plan, self.run = plan, run
        self.finished = Path(runs_dir) / f"{run.slug}.json"
        self.work_dir = Path(work_dir)

    @property
    def work(self) -> Path:
        """The work folder of these settings (other settings start afresh, never mix)."""
        return self.work_dir / self.run.slug / self.key()[:16]

    @property
    def checkpoint(self) -> Path:
        return self.work / "joint_checkpoint.pt"

    @property
    def tensorboard(self) -> Path:
        return self.work / "tb"

    @property
    def episodes(self) -> Path:
        return self.work / "report_episodes.jsonl"

    def flags(self) -> list[str]:
        """The train-haps flags of the run."""
        plan, run = self.plan, self.run
        task, pool, training = plan.tasks[run.task], plan.pools[run.pool], plan.training
        flags = [
            "--env",
            task.env,
            "--models",
            ",".join(pool["models"]),
            "--closed",
            ",".join(pool["closed"]),
            "--train-split",
            task.train_split,
            "--train-limit",
            str(task.train),
            "--action-table",
            str(plan.table(run.task, "train_table", run.pool)),
            "--stop-split",
            task.train_split,
            "--stop-skip",
            str(task.train),
            "--stop-limit",
            str(task.stop),
            "--valid-episodes",
            str(task.stop),
            "--valid-split",
            task.report_split,
            "--valid-limit",
            str(task.report),
            "--env-config",
            json.dumps(task.env_config),
            "--lam",
            run.regime,
            "--updates",
            str(training["updates"]),
            "--episodes-per-update",
            str(training["episodes_per_update"]),
            "--rollout-envs",
            str(training["rollout_envs"]),
            "--eval-every",
            str(training["eval_every"]),
            "--patience",
            str(training["patience"]),
            "--warmup-epochs",
            str(training["warmup_epochs"]),
            *VARIANTS[run.variant],
            "--seed",
            str(run.seed),
            "--no-progress-bar",
        ]
        if plan.data_dir:
            flags += ["--data-dir", str(plan.data_dir)]
        return flags + list(plan.extra)

    def key(self) -> str:
        """The run's settings with its tables by content: a finished file of other settings is
        stale, and the work folder is this key's. The sizes (question counts, pool models) are
        among the flags, so another size is another key."""
        from routing_gym.records import json_digest

        tables = {
            which: file_digest(self.plan.table(self.run.task, which, self.run.pool))
            for which in ("train_table", "report_table")
        }
        flags = self.flags()
        at = flags.index("--action-table")
        flags[at + 1] = tables["train_table"]
        return json_digest({"run": self.run.fields(), "flags": flags, "tables": tables})

    def done(self) -> bool:
        if not self.finished.exists():
            return False
        try:
            return json.loads(self.finished.read_text())["key"] == self.key()
        except (ValueError, KeyError):
            return False

    def progress(self) -> dict[str, Any]:
        """Where the run stands: updates done (from its checkpoint) and questions played."""
        from routing_gym.records import read_records

        state = {"updates": 0, "training_finished": False, "played": 0}
        if self.checkpoint.exists():
            import torch

            # mmap: only the two small fields are read, not the saved weights
            saved = torch.load(self.checkpoint, map_location="cpu", weights_only=True, mmap=True)
            state["updates"] = int(saved["next_update"])
            state["training_finished"] = bool(saved["finished"])
        state["played"] = len(read_records(self.episodes))
        return state


def learning_curve(tensorboard: Path) -> dict[str, list[list[float]]]:
    """Train reward (``joint/reward``) and early-stopping reward (``valid/env_reward``) per joint
    update, read from the run's TensorBoard log; a resumed run's replayed updates replace the
    ones logged before the kill (the accumulator drops those orphaned steps)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    if not Path(tensorboard).exists():
        return {"train": [], "stop": []}
    events = EventAccumulator(str(tensorboard), size_guidance={"scalars": 0})
    events.Reload()
    tags = set(events.Tags().get("scalars", []))
    curve = {}
    for name, tag in (("train", "joint/reward"), ("stop", "valid/env_reward")):
        last = {e.step: e.value for e in events.Scalars(tag)} if tag in tags else {}
        curve[name] = [[int(step), float(last[step])] for step in sorted(last)]
    return curve


def execute(files: RunFiles, log=print) -> dict[str, Any]:
    """Train (or resume) the run, play its reported questions (or the rest of them), and write
    its finished file. Returns the finished file's content."""
    import gymnasium as gym  # noqa: F401

    from agents.haps import cli
    from agents.haps.agent import HAPSAgent
    from agents.haps.rollouts import batched_env, play_schedule
    from routing_gym.action_table import ActionTable
    from routing_gym.evaluation import episode_row
    from routing_gym.records import (
        append_record,
        content_digest,
        drop_partial_last_line,
        read_records,
    )

    key = files.key()
    flags = files.flags() + [
        "--checkpoint",
        str(files.checkpoint),
        "--tensorboard-log",
        str(files.tensorboard),
    ]
    args = cli.parse_args(flags)
    config = cli.config_from_args(args)
    table = ActionTable.load(args.action_table)
    train_env, report_env, stop_env = cli.make_envs(args, config, cli.env_settings(args, table))
    files.work.mkdir(parents=True, exist_ok=True)
    (files.work / "key.txt").write_text(key + "\n")
    agent = HAPSAgent(config)
    start = time.perf_counter()
    # a finished checkpoint restores the final weights without training again
    agent.fit_env(train_env, action_table=table, valid_env=stop_env, checkpoint=files.checkpoint)
    log(f"{files.run.slug}: trained ({time.perf_counter() - start:.0f} s this sitting)")

    examples = report_env.unwrapped.examples
    digests = [content_digest(e) for e in examples]
    drop_partial_last_line(files.episodes)
    played = {r["question"]: r for r in read_records(files.episodes)}
    copies = max(1, config.rollout_envs)
    agent.adapt_to(report_env)
    env = batched_env(report_env, copies, config.seed) if copies > 1 else report_env
    try:
        # chunks on fixed boundaries: a resumed run plays each question in the same company
        for first in range(0, len(examples), copies):
            chunk = list(range(first, min(first + copies, len(examples))))
            if all(digests[i] in played for i in chunk):
                continue
            schedule = [(i, config.seed) for i in chunk]
            for index, episode in zip(chunk, play_schedule(agent, env, schedule, True)):
                if digests[index] in played:
                    continue
                row = {"question": digests[index], **episode_row(episode.info, episode.env_reward)}
                append_record(files.episodes, row)
                played[digests[index]] = row
    finally:
        if env is not report_env:
            env.close()
    rows = [played[d] for d in digests]
    result = {
        "format": RUN_FORMAT,
        "key": key,
        "run": files.run.fields(),
        "sizes": files.plan.sizes(files.run.task, files.run.pool),
        "config": {"lam": files.run.regime},  # what agents.haps.comparison reads of a run
        "flags": files.flags(),
        "episodes_per_update": config.episodes_per_update,
        "curve": learning_curve(files.tensorboard),
        "per_episode": rows,
        "perf": float(np.mean([r["perf"] for r in rows])),
        "reward": float(np.mean([r["reward"] for r in rows])),
    }
    files.finished.parent.mkdir(parents=True, exist_ok=True)
    partial = files.finished.with_name(files.finished.name + ".partial")
    partial.write_text(json.dumps(result, indent=1) + "\n")
    partial.replace(files.finished)
    for env_ in (train_env, report_env, stop_env):
        env_.close()
    return result


# -- the plan's state and estimate -------------------------------------------------------------
def estimate_seconds(plan: Plan, run: Run, progress: dict[str, Any] | None = None) -> float:
    """Seconds left for a run on this CPU, from its pool's step and episode times (an upper
    bound: early stopping may end training sooner)."""
    task, training = plan.tasks[run.task], plan.training
    progress = progress or {"updates": 0, "training_finished": False, "played": 0}
    per_update = SECONDS_PER_UPDATE_OF_4[run.pool] * training["episodes_per_update"] / 4
    per_episode = SECONDS_PER_EPISODE[run.pool]
    updates_left = 0 if progress["training_finished"] else training["updates"] - progress["updates"]
    evals_left = updates_left // max(1, training["eval_every"])
    return (
        updates_left * per_update
        + evals_left * task.stop * per_episode
        + (task.report - progress["played"]) * per_episode
    )


def precompute_command(plan: Plan, task_name: str, which: str, pool: str) -> str:
    """The ``routing-gym precompute`` command that builds (or resumes) a table of the plan."""
    task, models = plan.tasks[task_name], plan.pools[pool]["models"]
    split, count = (
        (task.train_split, task.train)
        if which == "train_table"
        else (task.report_split, task.report)
    )
    words = [
        "routing-gym precompute",
        f"--env {task.env.replace('-HAPS', '')}",
        f"--split {split}",
        f"--limit {count}",
        f"--models {' '.join(models)}",
        f"--out {shlex.quote(str(plan.table(task_name, which, pool)))}",
    ]
    if task.env_config:
        words.append(f"--env-config {shlex.quote(json.dumps(task.env_config))}")
    if plan.data_dir:
        words.append(f"--data-dir {shlex.quote(str(plan.data_dir))}")
    extra = list(plan.extra)
    if "--protocol" in extra:  # the runs check their tables were built with the same protocol
        words.append(f"--protocol {shlex.quote(extra[extra.index('--protocol') + 1])}")
    return " ".join(words)


def plan_lines(plan: Plan, runs: Sequence[Run], runs_dir: Path, work_dir: Path) -> list[str]:
    """The sizes, one line per table (complete, or what is left and the command that builds
    it) and per run (done / in progress / not started), and the total left."""
    lines, left = [], 0.0
    for name in [t for t in plan.tasks if any(r.task == t for r in runs)]:
        task = plan.tasks[name]
        lines.append(
            f"task {name}: train {task.train} ({task.train_split}), early stopping {task.stop} "
            f"(the next {task.train_split} questions), report {task.report} ({task.report_split})"
        )
    for pool in [p for p in plan.pools if any(r.pool == p for r in runs)]:
        spec = plan.pools[pool]
        closed = f", closed {', '.join(spec['closed'])}" if spec["closed"] else ", all open"
        lines.append(f"pool {pool}: {', '.join(spec['models'])}{closed}")
    seen = set()
    for run in runs:
        for which in ("train_table", "report_table"):
            path = plan.table(run.task, which, run.pool)
            if path in seen:
                continue
            seen.add(path)
            count = len(plan.table_questions(run.task, which))
            have, other = plan.table_state(run.task, which, run.pool)
            label = f"table {run.task} {which} ({', '.join(plan.pools[run.pool]['models'])})"
            if which == "train_table" and other:
                lines.append(
                    f"{label}: {path} holds {other} questions besides the {count} trained on; "
                    "the warm-up needs exactly the train questions: give a table of them with "
                    f"--{run.task}-{run.pool}-train-table"
                )
            elif have == count:
                lines.append(f"{label}: {path} (complete)")
            else:
                seconds = (count - have) * ASSIGNMENTS * SECONDS_PER_EPISODE[run.pool]
                left += seconds
                command = precompute_command(plan, run.task, which, run.pool)
                lines.append(
                    f"{label}: {path} has {have}/{count} questions, about "
                    f"{seconds / 3600:.1f} h left: {command}"
                )
    done = 0
    for run in runs:
        files = RunFiles(plan, run, runs_dir, work_dir)
        ready = plan.tables_ready(run.task, run.pool)
        if ready and files.done():
            done += 1
            lines.append(f"done     {run.slug}")
            continue
        # a run is keyed by its tables' content: none can start before they are complete
        progress = files.progress() if ready else None
        seconds = estimate_seconds(plan, run, progress)
        left += seconds
        if progress is None:
            lines.append(f"waits    {run.slug}: its tables; about {seconds / 3600:.1f} h")
            continue
        state = (
            "training finished"
            if progress["training_finished"]
            else f"update {progress['updates']}/{plan.training['updates']}"
        )
        status = "started " if progress["updates"] or progress["played"] else "left    "
        lines.append(
            f"{status} {run.slug}: {state}, {progress['played']}/"
            f"{plan.tasks[run.task].report} questions played; about {seconds / 3600:.1f} h"
        )
    times = "; ".join(
        f"{pool} {SECONDS_PER_UPDATE_OF_4[pool]:.0f} s per update of 4 episodes, "
        f"{SECONDS_PER_EPISODE[pool]:.0f} s per episode"
        for pool in plan.pools
        if any(r.pool == pool for r in runs)
    )
    lines.append(
        f"{done} of {len(runs)} runs done; about {left / 3600:.1f} h left on this "
        f"2-core CPU ({2 * left / 3600:.1f} CPU core-hours), from rough per-pool times ({times})"
    )
    return lines


# -- the report --------------------------------------------------------------------------------
def report_summary(plan: Plan, runs_dir: Path, work_dir: Path, one_shot: bool = True) -> dict:
    """Per (task, pool, regime) whose tables are ready: the baselines' and the finished runs'
    per-question values on the same reported questions, and the sizes they ran at
    (``routing_gym.bench.claims`` renders it)."""
    from agents.haps.comparison import HAPSComparison, compared_questions, one_shot_choices
    from routing_gym.action_table import ActionTable
    from routing_gym.cost import resolve_lambda

    groups = []
    for task_name, task in plan.tasks.items():
        for pool_name, pool in plan.pools.items():
            if not plan.tables_ready(task_name, pool_name):
                continue
            train, report = (
                ActionTable.load(plan.table(task_name, w, pool_name))
                for w in ("train_table", "report_table")
            )
            normalizer = train.fit_cost_normalizer()
            finished: dict[tuple[str, str], dict] = {}
            for regime in plan.regimes:
                for variant in plan.variants:
                    for seed in plan.seeds:
                        run = plan.reported_run(Run(task_name, pool_name, regime, variant, seed))
                        files = RunFiles(plan, run, runs_dir, work_dir)
                        if files.done():
                            finished[(regime, f"{variant}|{seed}")] = json.loads(
                                files.finished.read_text()
                            )
            played = compared_questions(
                report, {str(i): r for i, r in enumerate(finished.values())}
            )
            questions = played if finished else plan.table_questions(task_name, "report_table")
            lams = [resolve_lambda(r) for r in plan.regimes]
            choices = {}
            if one_shot:
                env_config = {"models": list(pool["models"]), **task.env_config}
                if plan.data_dir:
                    env_config["data_dir"] = str(plan.data_dir)
                choices = one_shot_choices(
                    task.assign_env,
                    env_config,
                    (task.train_split, task.report_split),
                    (train, report),
                    normalizer,
                    questions,
                    lams,
                )
            for regime, lam in zip(plan.regimes, lams):
                comparison = HAPSComparison(lam, train, report, questions, normalizer)
                rows = comparison.rows({}, choices.get(lam, {}))
                best = next(label for label in rows if label.startswith("Best fixed on train"))
                baselines = {
                    label: pick(row)
                    for label, row in rows.items()
                    if not label.startswith("Best fixed on train")
                }
                variants: dict[str, dict] = {}
                for (at, label), result in finished.items():
                    if at != regime:
                        continue
                    variant, seed = label.split("|")
                    row = comparison.run_row(label, result)
                    variants.setdefault(variant, {})[seed] = {
                        **pick(row),
                        "vs_table": row["vs_table"],
                        "curve": result["curve"],
                        "episodes_per_update": result["episodes_per_update"],
                    }
                groups.append(
                    {
                        "task": task_name,
                        "pool": pool_name,
                        "regime": regime,
                        "lam": lam,
                        "metric": task.metric,
                        "question_ids": list(comparison.questions),
                        "best_fixed": best.split(": ", 1)[1],
                        "baselines": baselines,
                        "variants": variants,
                        "seeds_planned": len(plan.seeds),
                        "sizes": plan.sizes(task_name, pool_name),
                    }
                )
    return {
        "format": "routing_gym.haps_claims/1",
        "plan": {
            "tasks": {
                name: {"train": t.train, "stop": t.stop, "report": t.report}
                for name, t in plan.tasks.items()
            },
            "pools": {
                name: {"models": list(p["models"]), "closed": list(p["closed"])}
                for name, p in plan.pools.items()
            },
            "regimes": list(plan.regimes),
            "variants": list(plan.variants),
            "seeds": list(plan.seeds),
            "training": dict(plan.training),
        },
        "groups": groups,
    }


def pick(row: dict) -> dict[str, list[float]]:
    """A row's per-question perf, normalized cost and reward."""
    return {k: row["per_question"][k] for k in ("perf", "normalized_cost", "reward")}


def add_plan_flags(parser: argparse.ArgumentParser) -> None:
    """Flags that change the plan (what runs, its sizes, its tables, its data)."""
    parser.add_argument("--tasks", default=",".join(TASKS), help="comma-separated tasks")
    parser.add_argument("--pools", default=",".join(DEFAULT_POOLS), help=f"of {', '.join(POOLS)}")
    parser.add_argument(
        "--variants", default=",".join(VARIANTS), help="comma-separated variant names or slugs"
    )
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated training seeds")
    parser.add_argument("--regimes", default=",".join(REGIMES))
    parser.add_argument("--updates", type=int, default=TRAINING["updates"])
    parser.add_argument("--data-dir", default=None)
    for name, task in TASKS.items():
        for size, default, what in (
            ("train", task.train, f"first {task.train_split} questions trained on"),
            ("stop", task.stop, f"next {task.train_split} questions for early stopping"),
            ("report", task.report, f"first {task.report_split} questions reported"),
        ):
            parser.add_argument(f"--{name}-{size}", type=int, default=default, help=what)
        # every pool's table of the task, then one pool's (default: default_table)
        parser.add_argument(f"--{name}-train-table", default=None)
        parser.add_argument(f"--{name}-report-table", default=None)
        for pool in POOLS:
            parser.add_argument(f"--{name}-{pool}-train-table", default=None)
            parser.add_argument(f"--{name}-{pool}-report-table", default=None)


def choose(flag: str, given: str, choices: dict[str, Any], aliases: dict[str, str] | None = None):
    """The names of ``choices`` a comma list gives, in the choices' order; an unknown name is a
    one-line ``ValueError`` naming it and the choices."""
    aliases = aliases or {}
    wanted = [aliases.get(w.strip(), w.strip()) for w in given.split(",")]
    unknown = [w for w in wanted if w not in choices]
    if unknown:
        raise ValueError(f"{flag} {unknown[0]!r}: choose from {', '.join([*choices, *aliases])}.")
    return [name for name in choices if name in wanted]


def plan_from_args(args: argparse.Namespace, root: Path, extra: Sequence[str] = ()) -> Plan:
    tasks = {}
    for name in choose("--tasks", args.tasks, TASKS):
        sizes = {size: getattr(args, f"{name}_{size}") for size in ("train", "stop", "report")}
        for size, count in sizes.items():
            if count < 1:
                raise ValueError(
                    f"--{name}-{size} {count}: must be a positive number of questions."
                )
        tasks[name] = dataclasses.replace(
            TASKS[name],
            **sizes,
            train_table=getattr(args, f"{name}_train_table"),
            report_table=getattr(args, f"{name}_report_table"),
        )
    pools = {name: POOLS[name] for name in choose("--pools", args.pools, POOLS)}
    tables = {
        (task, pool, which): path
        for task in tasks
        for pool in pools
        for which in ("train_table", "report_table")
        if (path := getattr(args, f"{task}_{pool}_{which}"))
    }
    variants = choose("--variants", args.variants, VARIANTS, {variant_slug(v): v for v in VARIANTS})
    regimes = choose("--regimes", args.regimes, dict.fromkeys(REGIMES))
    try:
        seeds = tuple(int(s) for s in args.seeds.split(","))
    except ValueError:
        raise ValueError(f"--seeds {args.seeds!r}: expected comma-separated integers.") from None
    return Plan(
        tasks=tasks,
        pools=pools,
        regimes=tuple(regimes),
        variants=tuple(variants),
        seeds=seeds,
        training={**TRAINING, "updates": args.updates},
        data_dir=args.data_dir,
        extra=tuple(extra),
        root=root,
        tables=tables,
    )
