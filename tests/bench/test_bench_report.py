"""The results document: its stable schema, the aggregation over seeds, CSV and Markdown."""

import csv
import io
import json

import pytest

from routing_gym.bench.report import (
    AGENT_KEYS,
    ENV_KEYS,
    FRONTIER_KEYS,
    RESULT_KEYS,
    SCHEMA_VERSION,
    TOP_KEYS,
    build_report,
    csv_text,
    markdown_report,
    overall_table,
    regime_table,
    reward_table,
)

ENV = "LLMRouting-Table-Toy-v0"


def env_record() -> dict:
    """Two single models: "small" (cheap, perf 0.5) and "large" (dear, perf 0.7)."""
    return {
        "kind": "env",
        "env": ENV,
        "eval_split": "test",
        "env_config": {},
        "queries": 10,
        "models": ["small", "large"],
        "tasks": {"a": 6, "b": 4},
        "single_models": {
            "small": {"perf": 0.5, "cost": 0.1, "usd": 1e-5},
            "large": {"perf": 0.7, "cost": 0.9, "usd": 9e-5},
        },
        "cheapest_model": "small",
        "strongest_model": "large",
        "oracle_perf": 0.8,
    }


def row(agent, regime, lam, seed, perf, cost, upper_bound=False, training="once") -> dict:
    return {
        "kind": "row",
        "env": ENV,
        "agent": agent,
        "label": agent.upper(),
        "detail": "",
        "regime": regime,
        "lam": lam,
        "seed": seed,
        "fingerprint": "x",
        "upper_bound": upper_bound,
        "training": training,
        "perf": perf,
        "cost": cost,
        "reward": perf - lam * cost,
        "reward_std": 0.0,
        "usd": 1e-5,
        "episodes": 10,
        "steps_per_episode": 1.0,
        "calls_per_episode": 1.0,
        "share": {"small": 1 - cost, "large": cost},
        "by_task": {
            "a": {"perf": perf + 0.1, "cost": cost, "episodes": 6},
            "b": {"perf": perf - 0.15, "cost": cost, "episodes": 4},
        },
        "fit_s": 2.0,
        "eval_s": 0.5,
    }


@pytest.fixture()
def report() -> dict:
    records = [
        env_record(),
        # router "r": seeds 0 and 1 at both regimes
        row("r", "balanced", 0.5, 0, 0.60, 0.30),
        row("r", "balanced", 0.5, 1, 0.64, 0.34),
        row("r", "cost-first", 1.0, 0, 0.55, 0.20),
        row("r", "cost-first", 1.0, 1, 0.55, 0.20),
        # "cheap" always calls the small model
        row("cheap", "balanced", 0.5, 0, 0.50, 0.10),
        row("cheap", "balanced", 0.5, 1, 0.50, 0.10),
        row("cheap", "cost-first", 1.0, 0, 0.50, 0.10),
        row("cheap", "cost-first", 1.0, 1, 0.50, 0.10),
        # "bad" is dearer and worse than "r" at every point
        row("bad", "balanced", 0.5, 0, 0.45, 0.50, training="per-regime"),
        row("bad", "balanced", 0.5, 1, 0.45, 0.50, training="per-regime"),
        row("bad", "cost-first", 1.0, 0, 0.45, 0.50, training="per-regime"),
        row("bad", "cost-first", 1.0, 1, 0.45, 0.50, training="per-regime"),
        # the oracle beats everyone but is an upper bound
        row("oracle", "balanced", 0.5, 0, 0.80, 0.05, True, "on-eval"),
        row("oracle", "balanced", 0.5, 1, 0.80, 0.05, True, "on-eval"),
    ]
    return build_report(
        records,
        settings={"seeds": [0, 1]},
        regimes={"balanced": 0.5, "cost-first": 1.0},
        agent_order=["cheap", "r", "bad", "oracle"],
        planned=16,
    )


def test_schema_has_exactly_the_documented_keys(report):
    assert report["schema_version"] == SCHEMA_VERSION == 2
    assert tuple(report) == TOP_KEYS
    assert set(report["envs"][ENV]) == set(ENV_KEYS)
    for result in report["results"]:
        assert tuple(result) == RESULT_KEYS
    for agent in report["agents"]:
        assert tuple(agent) == AGENT_KEYS
    assert tuple(report["frontier"][ENV]) == FRONTIER_KEYS
    # plain JSON: no NaN, survives a round trip unchanged
    text = json.dumps(report, allow_nan=False)
    assert json.loads(text) == report


def test_the_key_lists_are_pinned():
    # Changing any of these is a schema change: bump SCHEMA_VERSION and update the README.
    assert TOP_KEYS == (
        "schema_version",
        "generator",
        "created",
        "settings",
        "complete",
        "missing",
        "regimes",
        "envs",
        "results",
        "agents",
        "frontier",
    )
    assert RESULT_KEYS == (
        "env",
        "agent",
        "label",
        "detail",
        "regime",
        "lam",
        "seeds",
        "n_seeds",
        "perf_mean",
        "perf_std",
        "cost_mean",
        "cost_std",
        "reward_mean",
        "reward_std",
        "usd_mean",
        "episodes",
        "share",
        "by_task",
        "fit_s",
        "eval_s",
        "wall_s",
        "pgr",
        "pareto",
        "upper_bound",
        "training",
    )
    assert AGENT_KEYS == (
        "env",
        "agent",
        "label",
        "training",
        "points",
        "mean_pgr",
        "aiq",
        "wall_s",
        "upper_bound",
    )
    assert FRONTIER_KEYS == ("cost_range", "hull", "pareto", "aiq")


def test_results_aggregate_over_seeds(report):
    r = next(x for x in report["results"] if x["agent"] == "r" and x["regime"] == "balanced")
    assert r["seeds"] == [0, 1] and r["n_seeds"] == 2
    assert r["perf_mean"] == pytest.approx(0.62)
    assert r["perf_std"] == pytest.approx(0.02 * 2**0.5)  # sample std of 0.60, 0.64
    assert r["cost_mean"] == pytest.approx(0.32)
    assert r["share"] == pytest.approx({"small": 0.68, "large": 0.32})
    assert r["by_task"] == pytest.approx({"a": 0.72, "b": 0.47})
    assert r["wall_s"] == pytest.approx(2.5)
    assert r["pgr"] == pytest.approx((0.62 - 0.5) / 0.2)
    assert report["complete"] is False and report["missing"] == 2  # 14 of 16 planned rows


def test_agents_get_mean_pgr_aiq_and_a_shared_fit_counted_once(report):
    agents = {a["agent"]: a for a in report["agents"]}
    # r: PGR 0.6 at balanced (perf 0.62), 0.25 at cost-first (0.55) -> mean PGR 0.425
    assert agents["r"]["mean_pgr"] == pytest.approx((0.6 + 0.25) / 2)
    assert agents["cheap"]["mean_pgr"] == pytest.approx(0.0)
    assert "apgr" not in agents["r"]  # RouteLLM's APGR needs a sweep: see bench.curves
    # r's hull (0.2, 0.55) -> (0.32, 0.62) over [0, 0.5] (0.5 = the dearest router, "bad"):
    # 0 on [0, 0.2), (0.55 + 0.62)/2 × 0.12 = 0.0702, then 0.62 × 0.18 = 0.1116 -> 0.1818 / 0.5
    assert agents["r"]["aiq"] == pytest.approx(0.1818 / 0.5)
    assert report["frontier"][ENV]["cost_range"] == [0.0, 0.5]
    # wall time per seed: a once-fit router counts its fit once, a per-regime one at each regime
    assert agents["r"]["wall_s"] == pytest.approx(2.0 + 2 * 0.5)
    assert agents["bad"]["wall_s"] == pytest.approx(2 * 2.0 + 2 * 0.5)


def test_pareto_set_and_hull_leave_out_dominated_points_and_the_oracle(report):
    flags = {(x["agent"], x["regime"]): x["pareto"] for x in report["results"]}
    assert flags[("cheap", "balanced")] and flags[("r", "balanced")] and flags[("r", "cost-first")]
    assert not flags[("bad", "balanced")] and not flags[("bad", "cost-first")]
    assert not flags[("oracle", "balanced")]  # better than all, but not a router
    front = report["frontier"][ENV]["pareto"]
    assert [p["cost"] for p in front] == sorted(p["cost"] for p in front)
    assert {p["agent"] for p in front} == {"cheap", "r"}
    hull = report["frontier"][ENV]["hull"]
    assert hull[0] == pytest.approx([0.1, 0.5]) and hull[-1] == pytest.approx([0.32, 0.62])


def test_csv_has_one_line_per_result_with_shares(report):
    rows = list(csv.DictReader(io.StringIO(csv_text(report))))
    assert len(rows) == len(report["results"]) == 7
    assert {"share_small", "share_large", "mean_pgr", "aiq", "perf_mean", "perf_std"} <= set(rows[0])
    r = next(x for x in rows if x["agent"] == "r" and x["regime"] == "balanced")
    assert float(r["perf_mean"]) == pytest.approx(0.62)
    assert float(r["share_large"]) == pytest.approx(0.32)


def test_markdown_tables_mirror_the_haps_layouts(report):
    table = regime_table(report, ENV)
    assert (
        "| Agent | Balanced Perf ↑ | Balanced Cost ↓ | Cost first Perf ↑ | Cost first Cost ↓ | Mean PGR ↑ | AIQ ↑ |"
        in table
    )
    assert "| R * | 0.620 ± 0.028 | 0.320 ± 0.028 |" in table  # on the front, mean ± std
    assert "| BAD |" in table  # not on the front: no star
    overall = overall_table(report, "balanced")
    assert (
        overall.splitlines()[0] == "| Agent | a | b | All | Cost ↓ |"
    )  # per task, all queries, cost
    assert "| R | **0.720** | **0.470** | **0.620** | 0.320 |" in overall  # best router in bold
    assert "| CHEAP | 0.600 | 0.350 | 0.500 | **0.100** |" in overall  # lowest cost in bold
    assert "| ORACLE | 0.900 | 0.650 | 0.800 | 0.050 |" in overall  # an upper bound is never bold
    assert "Wall s / seed" in reward_table(report, ENV)
    text = markdown_report(report)
    assert "Partial results: 2 planned rows are missing" in text
