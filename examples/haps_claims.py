"""HAPS's three claims: every planned run, resumable update by update, and the report.

The plan (``agents/haps/claims.py``): per task (HotpotQA: train on the first 268 train
questions, stop early on the last 32, report on the 100 valid ones; MMLU: train on 300 val
questions, stop early on the next 32, report on 400 test ones), per pool (``lq``: Qwen2.5-Coder
0.5B and 1.5B both open; ``mixed``: 1.5B closed; ``small``, not in the default plan:
SmolLM2-135M and Qwen2.5-Coder-0.5B both open), per regime and per seed: HAPS, HAPS without
LoRA and HAPS without sharing. ``--tasks``, ``--pools``, ``--variants``, ``--regimes``,
``--seeds`` and ``--<task>-train/-stop/-report N`` size the plan; the finished files and the
report record the sizes. Each run warms up on its exhaustive train table, trains jointly
(checkpointed after every update) and plays the reported questions (one JSON line each); the
same command resumes whatever was stopped. A finished run is one file under ``--runs-dir``.

    python examples/haps_claims.py --plan                          # done / left, with hours
    python examples/haps_claims.py --only task=hotpotqa --only regime=balanced --only seed=0
    python examples/haps_claims.py --tasks mmlu --pools small --regimes balanced \
        --mmlu-train 48 --mmlu-stop 16 --mmlu-report 100 --plan     # a smaller plan
    python examples/haps_claims.py --report                        # summary, PNGs, the page

``--report`` writes ``docs/results/haps_claims.json`` (every group's per-question values),
the learning curves ``docs/haps/claims_<task>_<pool>_<regime>.png`` and rewrites the computed
blocks of ``docs/results/haps_claims.md``. Flags after ``--`` go to every run's train-haps.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run as a script from anywhere

import routing_gym  # noqa: F401  (registers the IDs)
from agents.haps.claims import (
    RunFiles,
    add_plan_flags,
    execute,
    plan_from_args,
    plan_lines,
    report_summary,
    select,
)
from routing_gym.errors import RoutingGymError


def parse_args(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    extra = argv[argv.index("--") + 1 :] if "--" in argv else []
    argv = argv[: argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--plan", action="store_true", help="list done / left runs and exit")
    parser.add_argument("--report", action="store_true", help="write the summary, PNGs and page")
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="FIELD=VALUE[,VALUE]",
        help="task, pool, regime, variant or seed (repeatable: all must hold)",
    )
    parser.add_argument(
        "--runs-dir", default="docs/results/haps_claims", help="finished run files (commit them)"
    )
    parser.add_argument(
        "--work-dir", default="runs/haps_claims", help="checkpoints, logs, per-question lines"
    )
    parser.add_argument("--summary", default="docs/results/haps_claims.json")
    parser.add_argument("--page", default="docs/results/haps_claims.md")
    parser.add_argument("--figures", default="docs/haps")
    parser.add_argument(
        "--no-one-shot", action="store_true", help="report without the one-shot routers"
    )
    add_plan_flags(parser)
    return parser.parse_args(argv), extra


def main(argv: list[str] | None = None) -> int:
    args, extra = parse_args(list(sys.argv[1:] if argv is None else argv))
    plan = plan_from_args(args, Path("."), extra)
    runs = select(plan.runs(), args.only)
    runs_dir, work_dir = Path(args.runs_dir), Path(args.work_dir)
    if args.plan:
        print("\n".join(plan_lines(plan, runs, runs_dir, work_dir)))
        return 0
    if args.report:
        from routing_gym.bench.claims import plot_learning_curves
        from routing_gym.bench.published import rewrite

        summary = report_summary(plan, runs_dir, work_dir, one_shot=not args.no_one_shot)
        Path(args.summary).parent.mkdir(parents=True, exist_ok=True)
        Path(args.summary).write_text(json.dumps(summary) + "\n")
        print(f"wrote {args.summary} ({len(summary['groups'])} groups)")
        for group in summary["groups"]:
            name = f"claims_{group['task']}_{group['pool']}_{group['regime']}.png"
            if plot_learning_curves(group, Path(args.figures) / name):
                print(f"wrote {Path(args.figures) / name}")
        if Path(args.page).exists() and rewrite(Path(args.page)):
            print(f"rewrote {args.page}")
        return 0
    for run in runs:
        files = RunFiles(plan, run, runs_dir, work_dir)
        if not plan.tables_ready(run.task, run.pool):
            print(f"skip {run.slug}: its exhaustive tables are not complete (see --plan)")
            continue
        if files.done():
            continue
        print(f"== {run.slug}", flush=True)
        result = execute(files)
        print(
            f"{run.slug}: reward {result['reward']:.3f} on {len(result['per_episode'])} "
            f"questions -> {files.finished}",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (ValueError, RoutingGymError) as exc:  # bad input: one line, no traceback
        sys.exit(f"haps_claims.py: {exc}")
