"""What the ``bench`` and ``demo`` commands share: a ``BenchConfig`` from their flags, ``--fresh``,
``--jobs``, and a run that writes its report even after Ctrl-C.

Bad values raise ``UsageError`` naming the flag (the command line prints it and exits 2).
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

from routing_gym.bench.runner import BenchConfig, run_bench, write_results
from routing_gym.errors import UsageError


def parse_mapping(value: Any, flag: str) -> dict[str, Any]:
    """A flag holding a mapping: a dict (from a config file) or a JSON object string."""
    if value is None or value == "":
        return {}
    if isinstance(value, dict):
        return value
    try:
        data = json.loads(value)
    except json.JSONDecodeError as exc:
        raise UsageError(f"{flag}: not valid JSON ({exc.msg}): {value!r}") from None
    if not isinstance(data, dict):
        raise UsageError(f"{flag} must be a JSON object, got {value!r}.")
    return data


def regime_value(value: Any) -> str | float:
    """A regime flag value: a preset name, or a number (λ)."""
    if isinstance(value, (int, float)):
        return float(value)
    try:
        return float(value)
    except ValueError:
        return str(value)


def bench_config_from_args(args: argparse.Namespace, envs: list[str]) -> BenchConfig:
    """The BenchConfig of a ``bench`` or ``demo`` command line; a bad value exits naming it."""
    try:
        return BenchConfig(
            agents=list(args.agents),
            envs=envs,
            regimes=[regime_value(r) for r in args.regimes],
            seeds=[int(s) for s in args.seeds],
            timesteps=int(args.timesteps),
            train_split=args.train_split,
            eval_split=args.eval_split,
            env_config=parse_mapping(getattr(args, "env_config", None), "--env-config"),
            agent_config=parse_mapping(getattr(args, "agent_config", None), "--agent-config"),
            out=args.out,
        )
    except ValueError as exc:
        raise UsageError(f"routing-gym {args.command}: {exc}") from None


def start_fresh(config: BenchConfig) -> None:
    """Forget the rows of an earlier run in the same output folder."""
    if config.rows_path.exists():
        config.rows_path.unlink()
        print(f"--fresh: removed {config.rows_path}.")


def resolve_jobs(jobs: int, config: BenchConfig) -> int:
    """``--jobs``: 0 means one per core, at most one per (env, seed) pair."""
    if jobs < 0:
        raise UsageError(f"--jobs must be >= 0, got {jobs}.")
    pairs = len(config.envs) * len(config.seeds)
    # the cores this process may use (a container can see more than it gets)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return min(pairs, jobs or cores or 1)


def run_and_report(
    config: BenchConfig, json_path: str | None, progress: bool, plot: bool = True, jobs: int = 1
):
    """Run (or resume) a benchmark and write its outputs, even after Ctrl-C.

    Returns ``(report, paths, interrupted)``.
    """
    interrupted = False
    try:
        run_bench(config, progress=progress, jobs=jobs)
    except KeyboardInterrupt:
        interrupted = True
        print(
            f"\nInterrupted: the rows finished so far are in {config.rows_path}; "
            "run the same command again to resume.",
            flush=True,
        )
    report, paths = write_results(config, json_path=json_path, plot=plot)
    return report, paths, interrupted
