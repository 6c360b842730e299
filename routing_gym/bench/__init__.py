"""Benchmark harness: train and compare routers over envs, λ regimes and seeds, then report.

``run_bench(BenchConfig(...))`` writes one JSON line per (agent, env, regime, seed) result;
``write_results(config)`` aggregates them (mean ± std over seeds, PGR, AIQ, the Pareto
set) into JSON, CSV, Markdown and a Pareto plot. ``routing-gym bench`` and ``routing-gym
demo`` are the command-line front ends.
"""

from routing_gym.bench.metrics import (
    aiq,
    cost_to_performance,
    mean_pgr,
    nondecreasing_hull,
    pareto_mask,
    pgr,
    routellm_apgr,
)
from routing_gym.bench.report import SCHEMA_VERSION, build_report, markdown_report
from routing_gym.bench.roster import DEFAULT_AGENTS, ROSTER, build_agent
from routing_gym.bench.runner import (
    BenchConfig,
    load_checkpoint,
    read_records,
    run_bench,
    train_agent,
    write_results,
)

__all__ = [
    "BenchConfig",
    "run_bench",
    "write_results",
    "train_agent",
    "load_checkpoint",
    "read_records",
    "build_report",
    "markdown_report",
    "SCHEMA_VERSION",
    "ROSTER",
    "DEFAULT_AGENTS",
    "build_agent",
    "pgr",
    "mean_pgr",
    "routellm_apgr",
    "cost_to_performance",
    "aiq",
    "nondecreasing_hull",
    "pareto_mask",
]
