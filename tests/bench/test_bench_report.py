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
    paired_table,
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
    assert report["schema_version"] == SCHEMA_VERSION == 3
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
        "n",
        "perf_ci",
        "cost_ci",
        "reward_ci",
        "vs_reference",
        "per_query",
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
    # rows without per-question values: means only, and nothing can be marked best
    assert "| R | 0.720 | 0.470 | 0.620 | 0.320 |" in overall
    assert "| CHEAP | 0.600 | 0.350 | 0.500 | 0.100 |" in overall
    assert "| ORACLE | 0.900 | 0.650 | 0.800 | 0.050 |" in overall
    assert "**" not in overall
    assert "Wall s / seed" in reward_table(report, ENV)
    text = markdown_report(report)
    assert "Partial results: 2 planned rows are missing" in text


# ---------------------------------------------------------------- per-question values and intervals


def per_query_row(agent, seed, perf, cost, lam=0.5, ids=("q1", "q2", "q3", "q4"), **kwargs) -> dict:
    """A row whose four questions (tasks a, a, b, b) have the given perf and cost."""
    record = row(agent, "balanced", lam, seed, float(sum(perf) / 4), float(sum(cost) / 4), **kwargs)
    tasks = {"q1": "a", "q2": "a", "q3": "b", "q4": "b"}
    record["per_query"] = {
        "query_ids": list(ids),
        "tasks": [tasks[q] for q in ids],
        "perf": list(perf),
        "cost": list(cost),
        "reward": [p - lam * c for p, c in zip(perf, cost)],
    }
    return record


@pytest.fixture()
def paired() -> dict:
    records = [
        env_record(),
        # the reference: the best fixed model on train, perf 0.2 0.4 0.6 0.8, cost 0.1
        per_query_row("fixed-best", 0, [0.2, 0.4, 0.6, 0.8], [0.1] * 4),
        per_query_row("fixed-best", 1, [0.2, 0.4, 0.6, 0.8], [0.1] * 4),
        # "r": 0.25 better on every question; seed 1 lists the questions in another order and
        # its seeds differ (0.35 / 0.55 on q1: mean 0.45 = 0.2 + 0.25)
        per_query_row("r", 0, [0.35, 0.65, 0.85, 1.05], [0.1] * 4),
        per_query_row("r", 1, [1.05, 0.85, 0.65, 0.55], [0.1] * 4, ids=("q4", "q3", "q2", "q1")),
        # "same" plays exactly what the reference plays
        per_query_row("same", 0, [0.2, 0.4, 0.6, 0.8], [0.1] * 4),
        per_query_row("same", 1, [0.2, 0.4, 0.6, 0.8], [0.1] * 4),
        per_query_row("oracle", 0, [1.0] * 4, [0.0] * 4, upper_bound=True, training="on-eval"),
        per_query_row("oracle", 1, [1.0] * 4, [0.0] * 4, upper_bound=True, training="on-eval"),
    ]
    return build_report(records, settings={"seeds": [0, 1]}, regimes={"balanced": 0.5})


def test_per_question_values_are_averaged_over_seeds_by_question_id(paired):
    r = next(x for x in paired["results"] if x["agent"] == "r")
    assert r["per_query"]["query_ids"] == ["q1", "q2", "q3", "q4"]
    assert r["per_query"]["perf"] == pytest.approx([0.45, 0.65, 0.85, 1.05])
    assert r["n"] == 4
    # reward = perf − 0.5 · 0.1 on every question
    assert r["per_query"]["reward"] == pytest.approx([0.40, 0.60, 0.80, 1.00])
    # a constant cost has a zero-width interval
    assert r["cost_ci"] == pytest.approx([0.1, 0.1])
    low, high = r["perf_ci"]
    assert 0.45 <= low < 0.75 < high <= 1.05  # the mean 0.75 inside, within the range of the data


def test_every_result_is_compared_with_the_best_fixed_model_on_the_same_questions(paired):
    by_agent = {x["agent"]: x for x in paired["results"]}
    versus = by_agent["r"]["vs_reference"]
    assert versus["agent"] == "fixed-best"
    # +0.25 on each of the four questions: the paired interval is exactly [0.25, 0.25]
    assert versus["perf"]["estimate"] == pytest.approx(0.25)
    assert (versus["perf"]["low"], versus["perf"]["high"]) == pytest.approx((0.25, 0.25))
    assert versus["reward"]["verdict"] == "resolved"
    same = by_agent["same"]["vs_reference"]["reward"]
    assert (same["estimate"], same["low"], same["high"]) == (0.0, 0.0, 0.0)
    assert same["verdict"] == "not resolved"
    text = json.dumps(paired, allow_nan=False)
    assert json.loads(text) == paired


def test_rows_without_per_question_values_have_no_intervals(report):
    r = next(x for x in report["results"] if x["agent"] == "r")
    assert (r["n"], r["perf_ci"], r["vs_reference"], r["per_query"]) == (None, None, None, None)


def test_paired_table_marks_only_resolved_differences(paired):
    table = paired_table(paired, ENV)
    assert "reference FIXED-BEST, chosen on the train split" in table
    lines = {line.split(" | ")[0]: line for line in table.splitlines() if line.startswith("| ")}
    header = "| Agent | n | Perf ↑ [95% CI] | Cost ↓ [95% CI] | Reward ↑ [95% CI] | Δ Perf vs FIXED-BEST"
    assert header in table
    assert lines["| R"].startswith("| R | 4 | ")
    assert "| 0.100 [0.100, 0.100] |" in lines["| R"]
    gain, tie = "+0.250 [+0.250, +0.250] **beats**", "0.000 [0.000, 0.000] not resolved"
    assert lines["| R"].endswith(f"| {gain} | {gain} |")
    assert lines["| SAME"].endswith(f"| {tie} | {tie} |")
    assert lines["| FIXED-BEST"].endswith("| reference | reference |")
    assert lines["| ORACLE"].endswith("(bound) |")  # an upper bound is never marked
    assert "**" not in lines["| ORACLE"]


def test_overall_table_bolds_only_a_resolved_best(paired):
    overall = overall_table(paired, "balanced")
    assert overall.splitlines()[0] == "| Agent | a (n=2) | b (n=2) | All (n=4) | Cost ↓ (n=4) |"
    r = next(line for line in overall.splitlines() if line.startswith("| R |"))
    # R beats both other routers on every question: best on All, resolved
    assert "| **0.750 [" in r
    # the cost column: every router costs 0.1 on every question: no best
    assert "**0.100" not in overall
    oracle = next(line for line in overall.splitlines() if line.startswith("| ORACLE |"))
    assert "**" not in oracle


def test_markdown_report_has_the_paired_comparison(paired):
    text = markdown_report(paired)
    assert "### Paired comparison over the questions: " + ENV in text
    assert "± is the std over seeds" in text
