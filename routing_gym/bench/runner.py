"""Run agents × envs × λ regimes × seeds on outcome-table envs, one JSON line per result.

For every (env, seed) the one-shot routers are fit once on the train split; for every regime
HierRouter's PPO is trained on the train split at that λ and the Oracle is fit on the
evaluation split; then every agent plays each evaluation query once
(``agents.evaluation.evaluate_agent``). Each (agent, env, regime, seed) result is appended to
``<out>/rows.jsonl`` and flushed as soon as it exists, so an interrupted run keeps what it
finished; the same command resumes it and skips the rows already there (a row counts only if
its settings fingerprint matches, so changed settings are recomputed).

``<out>/rows.jsonl`` holds two kinds of line: ``{"kind": "env", ...}`` (the evaluation split's
single-model references, once per env) and ``{"kind": "row", ...}`` (one result).
``routing_gym.bench.report`` turns them into tables, JSON, CSV and plots.
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import json
import multiprocessing
import os
import queue as queue_module
import time
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import gymnasium as gym
import numpy as np
from stable_baselines3.common.callbacks import BaseCallback
from tqdm.auto import tqdm

import routing_gym  # noqa: F401  (registers the LLMRouting IDs)
from routing_gym.action_table import ActionTable
from routing_gym.records import append_record, drop_partial_last_line, json_digest, read_records
from routing_gym.bench.roster import (
    DEFAULT_AGENTS,
    FIT_ON_EVAL,
    TRAIN_ONCE,
    TRAIN_PER_REGIME,
    build_agent,
    entry,
)
from routing_gym.cost import REGIMES, resolve_lambda
from routing_gym.envs.registration import is_live_env_id
from routing_gym.outcomes import Outcomes
from routing_gym.evaluation import evaluate_agent
from routing_gym.routers import Router, TrainingRun, load_router_class, router_names

ROWS_FILE = "rows.jsonl"


_DIGESTS: dict[tuple[str, int, int], str] = {}  # (path, size, mtime) -> sha256, per process


def _file_sha256(path: Path) -> str:
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _DIGESTS:
        with open(path, "rb") as handle:
            _DIGESTS[key] = hashlib.file_digest(handle, "sha256").hexdigest()
    return _DIGESTS[key]


def data_digests(env_config: dict[str, Any]) -> dict[str, str]:
    """sha256 of every file the env config names (``table``, ``prices``, any other path) and of
    the default table when it names none, keyed by config key.

    Resumed rows are keyed by these, so a table, price file or action table edited in place
    has its rows recomputed rather than reported from the old contents.
    """
    from routing_gym.data.outcome_table import ensure_default_table

    files: dict[str, Path] = {}
    if env_config.get("table") is None:
        files["table"] = ensure_default_table()
    for key, value in env_config.items():
        if isinstance(value, (str, os.PathLike)) and Path(value).expanduser().is_file():
            files[key] = Path(value).expanduser()
    return {key: _file_sha256(path) for key, path in sorted(files.items())}


def regime_label(regime: str | float) -> str:
    """A regime's name in tables: the preset name, or ``λ=<value>`` for a number."""
    if isinstance(regime, str) and regime.strip().lower().replace("_", "-") in REGIMES:
        return regime.strip().lower().replace("_", "-")
    return f"λ={resolve_lambda(float(regime)):g}"


#: Env config keys the benchmark sets itself for each row, and what sets them instead.
BENCH_OWNED = {
    "split": "train_split and eval_split (--train-split, --eval-split)",
    "lam": "regimes (--regimes)",
}
#: The same for ``train_agent`` on an outcome-table env.
TRAIN_OWNED = {
    "split": "train_split and eval_split (--train-split, --eval-split)",
    "lam": "lam (--lam)",
}


def owned_by_rows(env_config: dict[str, Any], owned: dict[str, str], where: str) -> None:
    """Raise ValueError if ``env_config`` sets a key that each row sets itself (it would be
    silently replaced), naming the key and what sets it."""
    for key, setter in owned.items():
        if key in env_config:
            raise ValueError(
                f"{where} sets {key!r} = {env_config[key]!r}, which every row sets itself; "
                f"use {setter}."
            )


@dataclass
class BenchConfig:
    """What a benchmark runs: agents × envs × regimes × seeds, and where results go."""

    agents: list[str] = field(default_factory=lambda: list(DEFAULT_AGENTS))
    envs: list[str] = field(default_factory=lambda: ["LLMRouting-Table-v0"])
    regimes: list[str | float] = field(default_factory=lambda: list(REGIMES))
    seeds: list[int] = field(default_factory=lambda: [0, 1])
    timesteps: int = 20_000  # PPO steps per (env, regime, seed)
    train_split: str = "train"
    eval_split: str = "test"
    env_config: dict[str, Any] = field(default_factory=dict)  # extra config of every env
    agent_config: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> config keys
    out: str = "results/bench"

    def __post_init__(self):
        for key in ("agents", "envs", "regimes", "seeds"):
            value = getattr(self, key)
            if isinstance(value, (str, int, float)):
                value = [value]
            if not value:
                raise ValueError(f"BenchConfig key {key!r} must not be empty.")
            setattr(self, key, list(value))
        for name in self.agents:
            entry(name)  # raises naming the unknown agent
        unknown = sorted(set(self.agent_config) - set(self.agents))
        if unknown:
            raise ValueError(
                f"BenchConfig key 'agent_config' names {unknown}, which are not in agents {self.agents}."
            )
        owned_by_rows(self.env_config, BENCH_OWNED, "BenchConfig key 'env_config'")
        for env_id in self.envs:
            if env_id not in gym.registry:
                raise ValueError(f"BenchConfig key 'envs': {env_id!r} is not a registered env ID.")
            if is_live_env_id(env_id):
                raise ValueError(
                    f"BenchConfig key 'envs': {env_id!r} is a live env; the benchmark runs on the "
                    "outcome-table envs (LLMRouting-Table-*). Compare live agents on an exhaustive-"
                    "builder table with examples/compare_agents.py --action-table."
                )
        for regime in self.regimes:
            try:
                resolve_lambda(regime)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"BenchConfig key 'regimes': {exc}") from None
        if len({regime_label(r) for r in self.regimes}) != len(self.regimes):
            raise ValueError(f"BenchConfig key 'regimes' repeats a regime: {self.regimes}.")
        if len(set(self.seeds)) != len(self.seeds) or not all(
            isinstance(s, int) and not isinstance(s, bool) for s in self.seeds
        ):
            raise ValueError(f"BenchConfig key 'seeds' must be distinct ints, got {self.seeds}.")
        if not isinstance(self.timesteps, int) or self.timesteps < 1:
            raise ValueError(
                f"BenchConfig key 'timesteps' must be a positive int, got {self.timesteps!r}."
            )
        if self.train_split == self.eval_split:
            raise ValueError(
                f"BenchConfig: train_split and eval_split are both {self.train_split!r}; "
                "scores on the training queries say nothing about routing new ones."
            )

    @property
    def rows_path(self) -> Path:
        """Where the per-result JSON lines go."""
        return Path(self.out) / ROWS_FILE

    def fingerprint(self, agent: str, env_id: str) -> str:
        """A short hash of every setting that changes one agent's rows on one env."""
        spec = entry(agent)
        settings = {
            "agent": agent,
            "config": self.agent_config.get(agent, {}),
            "timesteps": self.timesteps if spec.training == TRAIN_PER_REGIME else None,
            "env": env_id,
            "env_config": self.env_config,
            "data": data_digests(self.env_config),  # what the files hold, not just their paths
            "splits": [self.train_split, self.eval_split],
        }
        return json_digest(settings)[:12]

    def planned(self) -> list[tuple[str, str, str, int, str]]:
        """Every (env, agent, regime label, seed, fingerprint) the run must produce."""
        return [
            (env_id, agent, regime_label(regime), seed, self.fingerprint(agent, env_id))
            for env_id in self.envs
            for seed in self.seeds
            for regime in self.regimes
            for agent in self.agents
        ]

    def to_dict(self) -> dict[str, Any]:
        """The settings as plain JSON-able data."""
        return dataclasses.asdict(self)


# ---------------------------------------------------------------------------- recording


class EpisodeLog(gym.Wrapper):
    """Keeps the query, task, perf, normalized cost and return of every finished episode (for
    per-task tables and the per-question intervals of the report)."""

    def __init__(self, env: gym.Env):
        super().__init__(env)
        self.episodes: list[dict[str, Any]] = []
        self._return = 0.0

    def reset(self, **kwargs):
        self._return = 0.0
        return self.env.reset(**kwargs)

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self._return += float(reward)
        if terminated or truncated:
            self.episodes.append(
                {
                    "query_id": info.get("query_id"),
                    "task": info.get("task"),
                    "perf": float(info.get("perf", np.nan)),
                    "cost": float(info.get("normalized_cost", np.nan)),
                    "reward": self._return,
                }
            )
            self._return = 0.0
        return obs, reward, terminated, truncated, info

    def per_query(self) -> dict[str, list]:
        """Each episode's query id, task, perf, normalized cost and return, in play order."""
        return {
            "query_ids": [e["query_id"] for e in self.episodes],
            "tasks": [e["task"] for e in self.episodes],
            "perf": [e["perf"] for e in self.episodes],
            "cost": [e["cost"] for e in self.episodes],
            "reward": [e["reward"] for e in self.episodes],
        }

    def by_task(self) -> dict[str, dict[str, float]]:
        """Mean perf and cost and the episode count of each task."""
        groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for episode in self.episodes:
            if episode["task"] is not None:
                groups[str(episode["task"])].append(episode)
        return {
            task: {
                "perf": float(np.mean([e["perf"] for e in items])),
                "cost": float(np.mean([e["cost"] for e in items])),
                "episodes": len(items),
            }
            for task, items in sorted(groups.items())
        }


class TqdmCallback(BaseCallback):
    """A tqdm bar over PPO's timesteps (SB3's own bar needs ``rich``)."""

    def __init__(self, total: int, desc: str, enabled: bool = True):
        super().__init__()
        self._total, self._desc, self._enabled = total, desc, enabled
        self._bar: tqdm | None = None

    def _on_training_start(self) -> None:
        self._bar = tqdm(
            total=self._total, desc=self._desc, unit="step", leave=False, disable=not self._enabled
        )

    def _on_step(self) -> bool:
        self._bar.update(self.training_env.num_envs)
        return True

    def _on_training_end(self) -> None:
        self._bar.close()


def _row_key(record: dict[str, Any]) -> tuple:
    return (record["env"], record["agent"], record["regime"], record["seed"], record["fingerprint"])


def current_records(config: BenchConfig, records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The env records and the rows of ``records`` that belong to ``config``'s plan (last wins)."""
    planned = set(config.planned())
    envs: dict[str, dict[str, Any]] = {}
    rows: dict[tuple, dict[str, Any]] = {}
    for record in records:
        if record.get("kind") == "env" and record["env"] in config.envs:
            if (
                record.get("eval_split") == config.eval_split
                and record.get("env_config") == config.env_config
                and record.get("data") == data_digests(config.env_config)
            ):
                envs[record["env"]] = record
        elif record.get("kind") == "row" and _row_key(record) in planned:
            rows[_row_key(record)] = record
    return list(envs.values()) + list(rows.values())


# ---------------------------------------------------------------------------- envs


def make_table_env(
    env_id: str, split: str, lam: float | str, env_config: dict[str, Any]
) -> gym.Env:
    """An outcome-table env on one split at one λ."""
    env = gym.make(env_id, config={**env_config, "split": split, "lam": lam})
    if not hasattr(env.unwrapped, "scores"):
        raise ValueError(f"{env_id} is not an outcome-table env (it has no 'scores').")
    return env


def env_record(env: gym.Env, env_id: str, config: BenchConfig) -> dict[str, Any]:
    """The evaluation split's references: every single model's mean perf and cost, the tasks."""
    base = env.unwrapped
    scores = np.asarray(base.scores, dtype=np.float64)
    usd = np.asarray(base.costs, dtype=np.float64)
    ncost = np.asarray(base.cost_normalizer(usd), dtype=np.float64)
    models = list(base.model_names)
    singles = {
        m: {
            "perf": float(scores[:, i].mean()),
            "cost": float(ncost[:, i].mean()),
            "usd": float(usd[:, i].mean()),
        }
        for i, m in enumerate(models)
    }
    tasks = list(base.query_tasks)
    return {
        "kind": "env",
        "env": env_id,
        "eval_split": config.eval_split,
        "env_config": config.env_config,
        "data": data_digests(config.env_config),
        "queries": int(len(scores)),
        "models": models,
        "tasks": {t: tasks.count(t) for t in sorted(set(tasks))},
        "single_models": singles,
        "cheapest_model": min(models, key=lambda m: (singles[m]["cost"], -singles[m]["perf"])),
        "strongest_model": max(models, key=lambda m: (singles[m]["perf"], -singles[m]["cost"])),
        "oracle_perf": float(scores.max(axis=1).mean()),
    }


# ---------------------------------------------------------------------------- the run


def train_per_regime(
    name: str,
    seed: int,
    env_id: str,
    env_config: dict[str, Any],
    timesteps: int,
    agent_config: dict[str, Any] | None,
    label: str,
    progress: bool,
) -> Router:
    """Build a per-regime agent (PPO...) and let it learn on ``env_id`` at one λ.

    ``timesteps`` is the step budget unless the agent's config sets ``total_timesteps``.
    """
    agent_config = dict(agent_config or {})
    steps = agent_config.get("total_timesteps", timesteps)
    agent = build_agent(name, seed, agent_config)
    callback = TqdmCallback(steps, f"PPO {label} seed {seed}", enabled=progress)
    run = TrainingRun(env_id, env_config, timesteps=steps, callback=callback)
    return agent.learn(run)


def run_bench(
    config: BenchConfig,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
    jobs: int = 1,
) -> Path:
    """Produce every planned row not already in ``config.rows_path``; returns that path.

    ``jobs`` > 1 runs that many (env, seed) pairs at once in worker processes (each agent
    trains on one thread, so one job per core); the rows are the same as with one job. A
    ``KeyboardInterrupt`` propagates after the rows finished so far are on disk.
    """
    log = log or (lambda message: tqdm.write(message))
    path = config.rows_path
    drop_partial_last_line(path)
    existing = current_records(config, read_records(path))
    done = {_row_key(r) for r in existing if r["kind"] == "row"}
    have_env = {r["env"] for r in existing if r["kind"] == "env"}
    plan = config.planned()
    if done:
        log(f"Resuming: {len(done)} of {len(plan)} rows already in {path}.")
    tasks = []
    for env_id in config.envs:
        for seed in config.seeds:
            todo = {p[1:3] for p in plan if p[0] == env_id and p[3] == seed and p not in done}
            write_env = env_id not in have_env
            if todo or write_env:
                tasks.append((env_id, seed, todo, write_env))
                have_env.add(env_id)
    bar = tqdm(total=len(plan), initial=len(done), desc="bench", unit="row", disable=not progress)
    try:
        if jobs <= 1 or len(tasks) <= 1:
            for env_id, seed, todo, write_env in tasks:
                for record in env_seed_records(config, env_id, seed, todo, write_env, progress):
                    _consume(record, path, bar)
        else:
            _run_parallel(config, tasks, min(jobs, len(tasks)), path, bar)
    finally:
        bar.close()
    return path


def _consume(record: dict[str, Any], path: Path, bar: tqdm) -> None:
    """Write a record (or show a status line) as it arrives."""
    if record["kind"] == "status":
        bar.set_postfix_str(record["text"])
        return
    append_record(path, record)
    if record["kind"] == "row":
        bar.update(1)


def _run_parallel(config: BenchConfig, tasks: list, jobs: int, path: Path, bar: tqdm) -> None:
    """Run (env, seed) tasks in worker processes; only this process writes the rows file."""
    # fork: workers start at once, and this process has run no torch thread pool yet
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    context = multiprocessing.get_context(method)
    with context.Manager() as manager:
        records = manager.Queue()
        with ProcessPoolExecutor(max_workers=jobs, mp_context=context) as pool:
            futures = [pool.submit(_worker, config, *task, records) for task in tasks]
            while True:
                try:
                    _consume(records.get(timeout=0.2), path, bar)
                    continue
                except queue_module.Empty:
                    pass
                if all(f.done() for f in futures):
                    while True:  # what arrived after the last check
                        try:
                            _consume(records.get_nowait(), path, bar)
                        except queue_module.Empty:
                            break
                    for future in futures:
                        future.result()  # re-raises a worker's exception here
                    return


def _worker(
    config: BenchConfig, env_id: str, seed: int, todo: set, write_env: bool, records
) -> None:
    for record in env_seed_records(config, env_id, seed, todo, write_env, progress=False):
        records.put(record)


def env_seed_records(
    config: BenchConfig,
    env_id: str,
    seed: int,
    todo: set[tuple[str, str]],
    write_env: bool,
    progress: bool = True,
) -> Iterator[dict[str, Any]]:
    """The records of one (env, seed): its env record if asked, then one row per missing
    (agent, regime label) in ``todo``; ``{"kind": "status"}`` items say what runs next."""
    if write_env:
        probe = make_table_env(env_id, config.eval_split, REGIMES["balanced"], config.env_config)
        yield env_record(probe, env_id, config)
        probe.close()
    if not todo:
        return
    train_env = make_table_env(env_id, config.train_split, REGIMES["balanced"], config.env_config)
    train_data: Outcomes | None = None
    fitted: dict[str, tuple[Router, float]] = {}  # one-shot routers: fit once, used at every λ
    for regime in config.regimes:
        label, lam = regime_label(regime), resolve_lambda(regime)
        names = [a for a in config.agents if (a, label) in todo]
        if not names:
            continue
        test_env = make_table_env(env_id, config.eval_split, lam, config.env_config)
        for name in names:
            spec = entry(name)
            yield {"kind": "status", "text": f"{env_id} seed {seed} {label}: {name}"}
            start = time.perf_counter()
            if spec.training == TRAIN_ONCE:
                if name not in fitted:
                    if spec.from_data is not None and train_data is None:
                        train_data = Outcomes.from_table_env(train_env)
                    agent = build_agent(name, seed, config.agent_config.get(name), train_data)
                    agent.learn(TrainingRun(env_id, env=train_env))
                    fitted[name] = (agent, time.perf_counter() - start)
                agent, fit_s = fitted[name]
            elif spec.training == FIT_ON_EVAL:
                agent = build_agent(name, seed, config.agent_config.get(name))
                agent.learn(TrainingRun(env_id, env=test_env))
                fit_s = time.perf_counter() - start
            else:
                train_config = {**config.env_config, "split": config.train_split, "lam": lam}
                agent = train_per_regime(
                    name,
                    seed,
                    env_id,
                    train_config,
                    config.timesteps,
                    config.agent_config.get(name),
                    label,
                    progress,
                )
                fit_s = time.perf_counter() - start
            if hasattr(agent, "reseed"):  # a one-shot router is shared by the regimes' rows
                agent.reseed(row_seed(env_id, name, label, seed))
            log_env = EpisodeLog(test_env)
            start = time.perf_counter()
            scores = evaluate_agent(agent, log_env, seed=seed)
            eval_s = time.perf_counter() - start
            yield {
                "kind": "row",
                "env": env_id,
                "agent": name,
                "label": spec.label,
                "detail": agent.describe().detail,
                "regime": label,
                "lam": lam,
                "seed": seed,
                "fingerprint": config.fingerprint(name, env_id),
                "upper_bound": spec.upper_bound,
                "training": spec.training,
                **scores,
                "by_task": log_env.by_task(),
                "per_query": log_env.per_query(),
                "fit_s": fit_s,
                "eval_s": eval_s,
            }
        test_env.close()
    train_env.close()


def row_seed(env_id: str, agent: str, regime: str, seed: int) -> int:
    """The seed of one row's random choices, from the row's own key alone: a resumed run, which
    skips the rows already done, plays every other row exactly as an uninterrupted run."""
    key = json.dumps([env_id, agent, regime, seed]).encode()
    return int.from_bytes(hashlib.sha256(key).digest()[:8], "big")


# ---------------------------------------------------------------------------- one agent


def default_checkpoint(
    name: str, env_id: str, regime: str, seed: int, out_dir: str = "results/train"
) -> Path:
    """``<out_dir>/<agent>_<env>_<regime>_s<seed><suffix>``, the suffix the agent's class saves
    (``.zip`` for PPO, ``.pt`` for a file of tensors, none for a folder)."""
    suffix = load_router_class(entry(name).agent).checkpoint_suffix
    return Path(out_dir) / f"{name}_{env_id}_{regime.replace('=', '')}_s{seed}{suffix}"


def train_agent(
    name: str,
    env_id: str,
    lam: str | float = "balanced",
    seed: int = 0,
    timesteps: int = 20_000,
    agent_config: dict[str, Any] | None = None,
    env_config: dict[str, Any] | None = None,
    train_split: str = "train",
    eval_split: str | None = "test",
    out: str | os.PathLike | None = None,
    action_table: str | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Train one agent on one env, save its checkpoint, score it on the held-out split.

    On an outcome-table env the agent trains on ``train_split`` and is scored on ``eval_split``
    (None: not scored). On a live env, ``env_config`` picks the questions; one-shot routers
    then need an exhaustive-builder ``action_table``, and nothing is scored here.
    Returns ``{"checkpoint": path, "fit_s": ..., "scores": {...} or None}``.
    """
    spec = entry(name)
    label, lam_value = regime_label(lam), resolve_lambda(lam)
    env_config = dict(env_config or {})
    live = is_live_env_id(env_id)
    owned_by_rows(env_config, {"lam": TRAIN_OWNED["lam"]} if live else TRAIN_OWNED, "env_config")
    train_config = {**env_config, "lam": lam_value, **({} if live else {"split": train_split})}
    path = Path(out) if out else default_checkpoint(name, env_id, label, seed)
    suffix = load_router_class(spec.agent).checkpoint_suffix
    if out and suffix and path.suffix and path.suffix != suffix:
        # checked before training: the file's name says which loader reads it
        raise ValueError(
            f"out {str(out)!r}: {name} saves a '{suffix}' file, not '{path.suffix}'; "
            f"use {str(path.with_suffix(suffix))!r}."
        )
    start = time.perf_counter()
    train_env = gym.make(env_id, config=train_config)
    if spec.training == TRAIN_PER_REGIME:
        agent = train_per_regime(
            name, seed, env_id, train_config, timesteps, agent_config, label, progress
        )
    else:
        table = None
        if action_table is not None:
            table = ActionTable.load(action_table)
        elif live:
            raise ValueError(
                f"{name} on the live env {env_id} needs an action table (--action-table)."
            )
        data = None
        if entry(name).from_data is not None:
            data = (
                Outcomes.from_action_table(table, train_env.unwrapped.model_names)
                if table
                else Outcomes.from_table_env(train_env)
            )
        agent = build_agent(name, seed, agent_config, data)
        agent.learn(TrainingRun(env_id, train_config, env=train_env, action_table=table))
    fit_s = time.perf_counter() - start
    train_env.close()
    saved = agent.save(path)
    scores = None
    if eval_split is not None and not live:
        test_env = make_table_env(env_id, eval_split, lam_value, env_config)
        scores = evaluate_agent(agent, test_env, seed=seed)
        test_env.close()
    return {
        "checkpoint": str(saved),
        "agent": name,
        "env": env_id,
        "regime": label,
        "lam": lam_value,
        "seed": seed,
        "fit_s": fit_s,
        "scores": scores,
    }


def load_checkpoint(
    path: str | os.PathLike, agent: str | None = None, trust_pickle: bool = False
) -> Router:
    """Read an agent saved by ``train_agent``; ``agent`` (a name or entry point) says which class.

    Without ``agent`` the file's contents decide, whatever its name: an SB3 zip goes to the one
    class that saves ``.zip`` files, a folder to the one that saves folders, a ``torch.save``
    file to the class it names. Nothing is unpickled unless ``trust_pickle`` (see
    ``routing_gym.checkpoints``).
    """
    from routing_gym.checkpoints import is_sb3_zip, read_agent_file

    path = Path(path)
    if agent is not None:
        return _load_router(load_router_class(agent), path, trust_pickle)
    classes = [load_router_class(name) for name in router_names()]
    kind = ".zip" if is_sb3_zip(path) else "" if path.is_dir() else None
    if kind is not None:
        owners = [cls for cls in classes if cls.checkpoint_suffix == kind]
        if len(owners) == 1:
            return _load_router(owners[0], path, trust_pickle)
    # errors name the path and the file's kind
    payload = read_agent_file(path, "load_checkpoint", trust_pickle=trust_pickle)
    by_class = {cls.__name__: cls for cls in classes if cls.checkpoint_suffix == ".pt"}
    cls = by_class.get(payload.get("agent") if isinstance(payload, dict) else None)
    if cls is None:
        raise ValueError(
            f"{path} is not an agent checkpoint of a known class ({sorted(by_class)})."
        )
    return cls.load(path, trust_pickle=trust_pickle)


def _load_router(cls: type, path: Path, trust_pickle: bool) -> Router:
    """``cls.load(path)``, with ``trust_pickle`` where the class takes it (HAPS never unpickles)."""
    if trust_pickle and "trust_pickle" in inspect.signature(cls.load).parameters:
        return cls.load(path, trust_pickle=True)
    return cls.load(path)


# ---------------------------------------------------------------------------- outputs


def write_results(
    config: BenchConfig, json_path: str | os.PathLike | None = None, plot: bool = True
):
    """Aggregate ``rows.jsonl`` into ``results.json`` (and ``json_path``), ``results.csv``,
    ``results.md`` and one Pareto plot per env, all under ``config.out``.

    Returns ``(report, {"json": ..., "csv": ..., "markdown": ..., "plots": [...]})``.
    """
    from routing_gym.bench.report import build_report, markdown_report, write_csv, write_json

    records = current_records(config, read_records(config.rows_path))
    report = build_report(
        records,
        settings=config.to_dict(),
        regimes={regime_label(r): resolve_lambda(r) for r in config.regimes},
        agent_order=config.agents,
        planned=len(config.planned()),
    )
    out = Path(config.out)
    paths: dict[str, Any] = {"json": write_json(report, out / "results.json")}
    if json_path is not None and Path(json_path) != paths["json"]:
        paths["json"] = write_json(report, json_path)
    paths["csv"] = write_csv(report, out / "results.csv")
    (out / "results.md").write_text(markdown_report(report), encoding="utf-8")
    paths["markdown"] = out / "results.md"
    paths["plots"] = []
    if plot:
        from routing_gym.bench.plot import pareto_plot

        envs = list(dict.fromkeys(r["env"] for r in report["results"]))
        for env in envs:
            name = "pareto.png" if len(envs) == 1 else f"pareto_{env}.png"
            paths["plots"].append(pareto_plot(report, env, out / name))
    return report, paths
