"""Benchmark results: aggregation over seeds, routing metrics, and JSON / CSV / Markdown output.

``build_report(records, settings)`` turns the lines of ``rows.jsonl`` (see
``routing_gym.bench.runner``) into one JSON document with a stable schema
(``SCHEMA_VERSION``; the key sets below are fixed, tested, and change only with the version):

* ``schema_version`` (int), ``generator`` (``"routing_gym <version>"``), ``created`` (UTC ISO
  8601), ``settings`` (what was run), ``complete`` (every planned row present) and ``missing``
  (how many are not), ``regimes`` ({label: λ}).
* ``envs``: {env ID: ``ENV_KEYS``}: the evaluation split's size, models, tasks, each single
  model's mean perf / normalized cost / USD, the cheapest and the strongest model (the PGR
  references) and the per-query oracle's perf.
* ``results``: one object per (env, agent, regime) with ``RESULT_KEYS``: ``perf_mean`` /
  ``perf_std``, ``cost_mean`` / ``cost_std`` (normalized cost), ``reward_mean`` /
  ``reward_std`` (over seeds: the std is the sample std, ddof=1, 0.0 for one seed),
  ``usd_mean``, ``episodes`` (evaluation episodes per seed), ``seeds`` and ``n_seeds``,
  ``share`` ({model: mean share of calls}), ``by_task`` ({task: mean perf}), ``fit_s`` /
  ``eval_s`` / ``wall_s`` (mean seconds per seed; a one-shot router's single fit serves every
  regime and is counted in each of its results), ``pgr`` (per-point PGR), ``pareto`` (in the
  env's Pareto set), ``upper_bound`` (reads the evaluation outcomes: the Oracle),
  ``training`` (``"once"``, ``"per-regime"`` or ``"on-eval"``, see
  ``routing_gym.bench.roster``), ``detail`` (e.g. the model "Fixed: best at λ" picked);
  ``per_query`` ({query_ids, tasks, perf, cost, reward}: each evaluation question's values,
  averaged over seeds, ids sorted), ``n`` (its questions), ``perf_ci`` / ``cost_ci`` /
  ``reward_ci`` ([low, high], 95% bootstrap intervals over the questions, see
  ``routing_gym.stats``) and ``vs_reference`` ({agent, perf, reward}: the paired difference
  from ``REFERENCE_AGENT`` at the same regime, each {estimate, low, high, verdict}); these
  are null for rows written without per-question values, and ``vs_reference`` is null
  where the run has no ``REFERENCE_AGENT``.
* ``agents``: one object per (env, agent) with ``AGENT_KEYS``: ``mean_pgr`` (mean PGR over its
  regimes; not RouteLLM's APGR, which ``routing_gym.bench.curves`` computes from a sweep),
  ``aiq`` (area under its non-decreasing hull over the env's ``cost_range``), ``points`` (how many regimes it was scored at) and ``wall_s`` (seconds per seed to train
  and score it at every regime, a shared fit counted once).
* ``frontier``: {env ID: ``FRONTIER_KEYS``}: ``cost_range`` ([0, max cost of the routers]),
  ``hull`` (the non-decreasing convex hull vertices [[cost, perf], ...] of every router's
  points), ``pareto`` (the non-dominated points, each {agent, regime, cost, perf}) and
  ``aiq`` (the AIQ of the hull of all routers together). The Oracle is left out of all three.

Metric definitions are in ``routing_gym.bench.metrics``.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections import defaultdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np

from routing_gym import __version__, stats
from routing_gym.bench import metrics

# 2: the agents' "apgr" (a mean over regimes) renamed "mean_pgr"; 3: per-question values and
# 95% intervals (n, perf_ci, cost_ci, reward_ci, vs_reference, per_query)
SCHEMA_VERSION = 3
#: The reference of the paired differences: the best fixed model at λ, chosen on the train split.
REFERENCE_AGENT = "fixed-best"
TOP_KEYS = (
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
ENV_KEYS = (
    "queries",
    "models",
    "tasks",
    "single_models",
    "cheapest_model",
    "strongest_model",
    "oracle_perf",
)
RESULT_KEYS = (
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
AGENT_KEYS = (
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
FRONTIER_KEYS = ("cost_range", "hull", "pareto", "aiq")


def _finite(value: float) -> float | None:
    """JSON has no NaN: missing numbers are null."""
    return None if value is None or not np.isfinite(value) else float(value)


def build_report(
    records: Iterable[Mapping[str, Any]],
    settings: Mapping[str, Any] | None = None,
    regimes: Mapping[str, float] | None = None,
    agent_order: Iterable[str] | None = None,
    planned: int | None = None,
) -> dict[str, Any]:
    """The JSON document of a run from its ``rows.jsonl`` records (see the module docstring)."""
    records = list(records)
    envs = {r["env"]: r for r in records if r.get("kind") == "env"}
    rows = [r for r in records if r.get("kind") == "row"]
    order = list(agent_order or dict.fromkeys(r["agent"] for r in rows))
    if regimes is None:
        regimes = {r["regime"]: r["lam"] for r in sorted(rows, key=lambda r: r["lam"])}
    regime_order = list(regimes)

    groups: dict[tuple[str, str, str], list[Mapping[str, Any]]] = defaultdict(list)
    for row in rows:
        groups[(row["env"], row["agent"], row["regime"])].append(row)

    def sort_key(key: tuple[str, str, str]):
        env, agent, regime = key
        return (
            list(envs).index(env) if env in envs else len(envs),
            order.index(agent) if agent in order else len(order),
            regime_order.index(regime) if regime in regime_order else len(regime_order),
        )

    results = []
    for key in sorted(groups, key=sort_key):
        env, agent, regime = key
        items = sorted(groups[key], key=lambda r: r["seed"])
        results.append(_aggregate(items, envs.get(env)))
    references = {
        (r["env"], r["regime"]): r
        for r in results
        if r["agent"] == REFERENCE_AGENT and r["per_query"] is not None
    }
    for r in results:
        reference = references.get((r["env"], r["regime"]))
        if r["per_query"] is not None and reference is not None:
            r["vs_reference"] = _versus(r, reference)

    frontier = {}
    for env in dict.fromkeys(r["env"] for r in results):
        routers = [r for r in results if r["env"] == env and not r["upper_bound"]]
        if not routers:
            continue
        points = [(r["cost_mean"], r["perf_mean"]) for r in routers]
        high = max(c for c, _ in points)
        cost_range = [0.0, high if high > 0 else 1.0]
        mask = metrics.pareto_mask(points)
        for router, on_front in zip(routers, mask):
            router["pareto"] = bool(on_front)
        frontier[env] = {
            "cost_range": cost_range,
            "hull": metrics.nondecreasing_hull(points).tolist(),
            "pareto": sorted(
                (
                    {
                        "agent": r["agent"],
                        "regime": r["regime"],
                        "cost": r["cost_mean"],
                        "perf": r["perf_mean"],
                    }
                    for r, on_front in zip(routers, mask)
                    if on_front
                ),
                key=lambda p: (p["cost"], -p["perf"]),
            ),
            "aiq": metrics.aiq(points, tuple(cost_range)),
        }

    agents = []
    for env, agent in dict.fromkeys((r["env"], r["agent"]) for r in results):
        mine = [r for r in results if r["env"] == env and r["agent"] == agent]
        pgrs = [r["pgr"] for r in mine if r["pgr"] is not None]
        cost_range = frontier.get(env, {}).get("cost_range")
        aiq = (
            metrics.aiq([(r["cost_mean"], r["perf_mean"]) for r in mine], tuple(cost_range))
            if cost_range
            else None
        )
        # a one-shot router's single fit serves every regime: count it once
        fits = [r["fit_s"] for r in mine]
        fit_s = max(fits) if mine[0]["training"] == "once" else sum(fits)
        agents.append(
            {
                "env": env,
                "agent": agent,
                "label": mine[0]["label"],
                "training": mine[0]["training"],
                "points": len(mine),
                "mean_pgr": _finite(float(np.mean(pgrs))) if pgrs else None,
                "aiq": _finite(aiq) if aiq is not None else None,
                "wall_s": fit_s + sum(r["eval_s"] for r in mine),
                "upper_bound": mine[0]["upper_bound"],
            }
        )

    return {
        "schema_version": SCHEMA_VERSION,
        "generator": f"routing_gym {__version__}",
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "settings": dict(settings or {}),
        "complete": planned is None or len(rows) >= planned,
        "missing": 0 if planned is None else max(0, planned - len(rows)),
        "regimes": dict(regimes),
        "envs": {env: {k: record[k] for k in ENV_KEYS} for env, record in envs.items()},
        "results": results,
        "agents": agents,
        "frontier": frontier,
    }


def _aggregate(items: list[Mapping[str, Any]], env: Mapping[str, Any] | None) -> dict[str, Any]:
    """One (env, agent, regime) over its seeds."""
    first = items[0]
    stats = {}
    for name in ("perf", "cost", "reward"):
        mean, std = metrics.mean_std(r[name] for r in items)
        stats[f"{name}_mean"], stats[f"{name}_std"] = _finite(mean), _finite(std)
    usd = [r["usd"] for r in items if r.get("usd") is not None and np.isfinite(r["usd"])]
    models = sorted({m for r in items for m in r.get("share", {})})
    share = {m: float(np.mean([r.get("share", {}).get(m, 0.0) for r in items])) for m in models}
    tasks = sorted({t for r in items for t in r.get("by_task", {})})
    by_task = {
        t: float(np.mean([r["by_task"][t]["perf"] for r in items if t in r.get("by_task", {})]))
        for t in tasks
    }
    pgr = None
    if env is not None and stats["perf_mean"] is not None:
        weak = env["single_models"][env["cheapest_model"]]["perf"]
        strong = env["single_models"][env["strongest_model"]]["perf"]
        if strong > weak:
            pgr = metrics.pgr(stats["perf_mean"], weak, strong)
    per_query = _per_query_over_seeds(items)
    fit_s = float(np.mean([r.get("fit_s", 0.0) for r in items]))
    eval_s = float(np.mean([r.get("eval_s", 0.0) for r in items]))
    details = list(dict.fromkeys(r.get("detail", "") for r in items if r.get("detail")))
    return {
        "env": first["env"],
        "agent": first["agent"],
        "label": first["label"],
        "detail": ", ".join(details),
        "regime": first["regime"],
        "lam": first["lam"],
        "seeds": [r["seed"] for r in items],
        "n_seeds": len(items),
        **stats,
        "usd_mean": _finite(float(np.mean(usd))) if usd else None,
        "episodes": int(round(np.mean([r["episodes"] for r in items]))),
        "share": share,
        "by_task": by_task,
        "fit_s": fit_s,
        "eval_s": eval_s,
        "wall_s": fit_s + eval_s,
        "pgr": _finite(pgr) if pgr is not None else None,
        "pareto": False,
        "upper_bound": bool(first.get("upper_bound", False)),
        "training": first.get("training", ""),
        "n": None if per_query is None else len(per_query["query_ids"]),
        **{f"{k}_ci": _ci(per_query, k) for k in ("perf", "cost", "reward")},
        "vs_reference": None,
        "per_query": per_query,
    }


def _per_query_over_seeds(items: list[Mapping[str, Any]]) -> dict[str, list] | None:
    """Each question's perf, cost and reward averaged over the seeds, ids sorted; None unless
    every seed kept per-question values for the same questions."""
    if not all(r.get("per_query") for r in items):
        return None
    values: dict[str, dict[str, list[float]]] = {}
    tasks: dict[str, Any] = {}
    for r in items:
        q = r["per_query"]
        for i, qid in enumerate(q["query_ids"]):
            mine = values.setdefault(str(qid), {"perf": [], "cost": [], "reward": []})
            for key in mine:
                mine[key].append(float(q[key][i]))
            tasks[str(qid)] = q["tasks"][i]
    if any(len(v["perf"]) != len(items) for v in values.values()):
        return None  # the seeds played different questions: no per-question pairing
    ids = sorted(values)
    out: dict[str, list] = {"query_ids": ids, "tasks": [tasks[q] for q in ids]}
    for key in ("perf", "cost", "reward"):
        out[key] = [float(np.mean(values[q][key])) for q in ids]
    return out


def _ci(per_query: Mapping[str, list] | None, key: str) -> list[float] | None:
    if per_query is None:
        return None
    interval = stats.mean_interval(per_query[key])
    return [interval.low, interval.high]


def _versus(result: Mapping[str, Any], reference: Mapping[str, Any]) -> dict[str, Any] | None:
    """Paired differences of perf and reward from the reference, over the same questions."""
    mine, theirs = result["per_query"], reference["per_query"]
    if mine["query_ids"] != theirs["query_ids"]:
        return None
    out: dict[str, Any] = {"agent": reference["agent"]}
    for key in ("perf", "reward"):
        d = stats.paired_difference_interval(mine[key], theirs[key])
        out[key] = {
            "estimate": d.estimate,
            "low": d.low,
            "high": d.high,
            "verdict": stats.verdict(d),
        }
    return out


def write_json(report: Mapping[str, Any], path: str | os.PathLike) -> Path:
    """Write the report as indented JSON."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def write_csv(report: Mapping[str, Any], path: str | os.PathLike) -> Path:
    """One line per (env, agent, regime): the scalar result keys, mean PGR, AIQ and ``share_<model>``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(csv_text(report), encoding="utf-8")
    return path


def csv_text(report: Mapping[str, Any]) -> str:
    """The CSV of ``write_csv`` as a string."""
    per_agent = {(a["env"], a["agent"]): a for a in report["agents"]}
    models = sorted({m for r in report["results"] for m in r["share"]})
    nested = (
        *("share", "by_task", "seeds"),
        *("perf_ci", "cost_ci", "reward_ci", "vs_reference", "per_query"),
    )
    scalar = [k for k in RESULT_KEYS if k not in nested]
    intervals = ["perf_ci_low", "perf_ci_high", "reward_ci_low", "reward_ci_high"]
    versus = ["reward_vs_reference", "reward_vs_reference_low", "reward_vs_reference_high"]
    header = scalar + intervals + versus + ["mean_pgr", "aiq"] + [f"share_{m}" for m in models]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    for r in report["results"]:
        agent = per_agent.get((r["env"], r["agent"]), {})
        ci = [(r[k] or [None, None])[i] for k in ("perf_ci", "reward_ci") for i in (0, 1)]
        d = (r["vs_reference"] or {}).get("reward") or {}
        writer.writerow(
            [r[k] for k in scalar]
            + ci
            + [d.get("estimate"), d.get("low"), d.get("high")]
            + [agent.get("mean_pgr"), agent.get("aiq")]
            + [r["share"].get(m, 0.0) for m in models]
        )
    return buffer.getvalue()


# ---------------------------------------------------------------------------- Markdown tables


def _pm(mean: float | None, std: float | None, n: int) -> str:
    if mean is None:
        return "–"
    return f"{mean:.3f} ± {std:.3f}" if n > 1 and std is not None else f"{mean:.3f}"


def _num(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def _label(r: Mapping[str, Any], with_detail: bool = False) -> str:
    text = r["label"]
    if with_detail and r.get("detail") and r["agent"].startswith("fixed"):
        text += f" [{r['detail']}]"
    return text


def _short(model: str, width: int = 18) -> str:
    return model if len(model) <= width else model[: width - 1] + "…"


def regime_table(report: Mapping[str, Any], env: str) -> str:
    """HAPS's performance–cost table: rows agents; Perf ↑ and Cost ↓ per regime; mean PGR, AIQ."""
    results = [r for r in report["results"] if r["env"] == env]
    regimes = [g for g in report["regimes"] if any(r["regime"] == g for r in results)]
    per_agent = {a["agent"]: a for a in report["agents"] if a["env"] == env}
    header = ["Agent"]
    for g in regimes:
        name = g if g.startswith("λ") else g.replace("-", " ").capitalize()
        header += [f"{name} Perf ↑", f"{name} Cost ↓"]
    header += ["Mean PGR ↑", "AIQ ↑"]
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|",
    ]
    for agent in dict.fromkeys(r["agent"] for r in results):
        mine = {r["regime"]: r for r in results if r["agent"] == agent}
        first = next(iter(mine.values()))
        cells = [first["label"] + (" *" if any(r["pareto"] for r in mine.values()) else "")]
        for g in regimes:
            r = mine.get(g)
            cells += (
                ["–", "–"]
                if r is None
                else [
                    _pm(r["perf_mean"], r["perf_std"], r["n_seeds"]),
                    _pm(r["cost_mean"], r["cost_std"], r["n_seeds"]),
                ]
            )
        a = per_agent.get(agent, {})
        cells += [_num(a.get("mean_pgr")), _num(a.get("aiq"))]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def overall_table(report: Mapping[str, Any], regime: str | None = None) -> str:
    """HAPS's overall comparison at one regime (default balanced): rows agents; columns the Perf
    on each env or, for one env, on each of its tasks, then over all queries, then the Cost,
    each a mean with its 95% interval over the questions (n in the header). A router is in bold
    only where its paired interval against every other router of the column excludes 0
    (``routing_gym.stats.resolved_best``); the Oracle, an upper bound, never is."""
    from routing_gym.envs.registration import TABLE_TASK_VARIANTS

    regimes = list(report["regimes"])
    regime = regime or ("balanced" if "balanced" in regimes else regimes[0])
    results = [r for r in report["results"] if r["regime"] == regime]
    envs = list(dict.fromkeys(r["env"] for r in results))
    rows: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for r in results:
        rows[r["agent"]].append(r)

    def values(r: Mapping[str, Any], key: str, task: str | None = None) -> list[float] | None:
        q = r.get("per_query")
        if q is None:
            return None
        return [v for v, t in zip(q[key], q["tasks"]) if task is None or t == task]

    # (header, mean of a result or None, its per-question values or None, which way is better)
    columns: list[tuple[str, Any, Any, str]] = []
    if len(envs) == 1:
        tasks = list(report["envs"].get(envs[0], {}).get("tasks", {}))
        if len(tasks) > 1:
            columns += [
                (
                    TABLE_TASK_VARIANTS.get(t, t),
                    lambda r, t=t: r["by_task"].get(t),
                    lambda r, t=t: values(r, "perf", t),
                    "max",
                )
                for t in tasks
            ]
        columns.append(("All", lambda r: r["perf_mean"], lambda r: values(r, "perf"), "max"))
        columns.append(("Cost ↓", lambda r: r["cost_mean"], lambda r: values(r, "cost"), "min"))
    else:
        columns += [
            (
                e.replace("LLMRouting-", ""),
                lambda r, e=e: r["perf_mean"] if r["env"] == e else None,
                lambda r, e=e: values(r, "perf") if r["env"] == e else None,
                "max",
            )
            for e in envs
        ]
    best, sizes = {}, {}
    for name, get, per_question, better in columns:
        routers = [
            r
            for group in rows.values()
            for r in group
            if not r["upper_bound"] and get(r) is not None
        ]
        samples = {r["agent"]: per_question(r) for r in routers}
        known = {a: v for a, v in samples.items() if v}
        sizes[name] = {len(v) for v in known.values()}
        # a best mark needs every router's questions, the same ones
        if known and len(known) == len(samples) and len(sizes[name]) == 1:
            best[name] = stats.resolved_best(known, higher_is_better=better == "max")
    header = ["Agent"] + [
        f"{name} (n={next(iter(sizes[name]))})" if len(sizes[name]) == 1 else name
        for name, _, _, _ in columns
    ]
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join(["---"] + ["---:"] * len(columns)) + "|",
    ]
    for agent, group in rows.items():
        cells = [group[0]["label"]]
        for name, get, per_question, _ in columns:
            r = next((r for r in group if get(r) is not None), None)
            if r is None:
                cells.append("–")
                continue
            sample = per_question(r)
            text = stats.mean_interval(sample).format() if sample else _num(get(r))
            if best.get(name) == agent and not r["upper_bound"]:
                text = f"**{text}**"
            cells.append(text)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def paired_table(report: Mapping[str, Any], env: str) -> str:
    """Per regime: every agent's n, Perf, Cost and Reward with 95% intervals over the questions
    (per-question values averaged over seeds), and its paired Δ Perf and Δ Reward from "Fixed:
    best at λ" (the best single model chosen on the train split) with the verdict."""
    from routing_gym.bench.comparison import Metric, comparison_table

    results = [r for r in report["results"] if r["env"] == env]
    parts = []
    for regime in (g for g in report["regimes"] if any(r["regime"] == g for r in results)):
        mine = [r for r in results if r["regime"] == regime]
        kept = [r for r in mine if r.get("per_query")]
        lam = report["regimes"][regime]
        if not kept:
            parts.append(f"{regime} (λ={lam:g}): no per-question values in these rows.")
            continue
        reference = next((r for r in kept if r["agent"] == REFERENCE_AGENT), None)
        methods = {
            r["label"]: {k: r["per_query"][k] for k in ("perf", "cost", "reward")} for r in kept
        }
        metrics = [
            Metric("perf", "Perf", compare=True),
            Metric("cost", "Cost", higher_is_better=False),
            Metric("reward", "Reward", compare=True),
        ]
        note = (
            f"reference {reference['label']}"
            + (f" ({reference['detail']})" if reference["detail"] else "")
            + ", chosen on the train split"
            if reference is not None
            else f"no {REFERENCE_AGENT!r} in this run, so no paired differences"
        )
        skipped = [r["label"] for r in mine if not r.get("per_query")]
        if skipped:
            note += f"; without per-question values: {', '.join(skipped)}"
        bounds = [r["label"] for r in kept if r["upper_bound"]]
        parts.append(
            f"{regime} (λ={lam:g}); {note}.\n\n"
            + comparison_table(
                methods,
                metrics,
                reference["label"] if reference else None,
                bounds=bounds,
                label="Agent",
            )
        )
    return "\n\n".join(parts)


def detail_table(report: Mapping[str, Any], env: str) -> str:
    """Every (agent, regime): Perf, Cost, Reward (mean ± std), the most-called models, episodes, time."""
    header = [
        "Regime (λ)",
        "Agent",
        "Perf",
        "Cost (norm.)",
        "Reward",
        "PGR",
        "Calls (top 3)",
        "Episodes",
        "Wall s",
    ]
    lines = ["| " + " | ".join(header) + " |", "|---|---|---:|---:|---:|---:|---|---:|---:|"]
    for r in (x for x in report["results"] if x["env"] == env):
        top = sorted(r["share"].items(), key=lambda kv: -kv[1])[:3]
        calls = ", ".join(f"{_short(m)} {s:.2f}" for m, s in top)
        lines.append(
            "| "
            + " | ".join(
                [
                    f"{r['regime']} ({r['lam']:g})",
                    _label(r, with_detail=True),
                    _pm(r["perf_mean"], r["perf_std"], r["n_seeds"]),
                    _pm(r["cost_mean"], r["cost_std"], r["n_seeds"]),
                    _pm(r["reward_mean"], r["reward_std"], r["n_seeds"]),
                    _num(r["pgr"]),
                    calls,
                    f"{r['episodes']} × {r['n_seeds']}",
                    f"{r['wall_s']:.1f}",
                ]
            )
            + " |"
        )
    return "\n".join(lines)


def reward_table(report: Mapping[str, Any], env: str) -> str:
    """Rows agents; the reward (Perf − λ·Cost, mean ± std over seeds) at each regime; the
    seconds to train and score it at every regime, per seed."""
    results = [r for r in report["results"] if r["env"] == env]
    regimes = [g for g in report["regimes"] if any(r["regime"] == g for r in results)]
    per_agent = {a["agent"]: a for a in report["agents"] if a["env"] == env}
    header = (
        ["Agent"]
        + [
            f"Reward {g}" if g.startswith("λ") else f"Reward {g} (λ={report['regimes'][g]:g})"
            for g in regimes
        ]
        + ["Wall s / seed"]
    )
    lines = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]
    for agent in dict.fromkeys(r["agent"] for r in results):
        mine = {r["regime"]: r for r in results if r["agent"] == agent}
        cells = [next(iter(mine.values()))["label"]]
        for g in regimes:
            r = mine.get(g)
            if r is None:
                cells.append("–")
            elif r["n_seeds"] > 1:
                cells.append(f"{r['reward_mean']:.3f} ± {r['reward_std']:.3f}")
            else:
                cells.append(f"{r['reward_mean']:.3f}")
        cells.append(f"{per_agent[agent]['wall_s']:.1f}" if agent in per_agent else "–")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def env_caption(report: Mapping[str, Any], env: str) -> str:
    """One line saying what was evaluated on ``env``."""
    info = report["envs"].get(env)
    settings = report.get("settings", {})
    seeds = settings.get("seeds", [])
    text = f"**{env}**"
    if info:
        text += (
            f", {settings.get('eval_split', 'test')} split: {info['queries']} queries × "
            f"{len(info['models'])} models; cheapest model {info['cheapest_model']} "
            f"(perf {info['single_models'][info['cheapest_model']]['perf']:.3f}), strongest "
            f"{info['strongest_model']} (perf {info['single_models'][info['strongest_model']]['perf']:.3f})"
        )
    if seeds:
        text += f"; mean ± std over seeds {', '.join(map(str, seeds))}"
    if settings.get("timesteps"):
        text += f"; PPO {settings['timesteps']:,} steps per regime"
    return text + "."


def markdown_report(report: Mapping[str, Any]) -> str:
    """Every table of the report, as one Markdown document."""
    parts = []
    if not report.get("complete", True):
        parts.append(f"_Partial results: {report['missing']} planned rows are missing._")
    regimes = list(report["regimes"])
    overall_regime = "balanced" if "balanced" in regimes else regimes[0]
    parts.append(
        f"## Overall comparison ({overall_regime} regime): Perf per task and overall, then Cost\n\n"
        f"{overall_table(report, overall_regime)}\n\n"
        "Means with 95% bootstrap intervals over the questions (n in the header); a router is in "
        "bold only where its paired interval against every other router excludes 0."
    )
    for env in dict.fromkeys(r["env"] for r in report["results"]):
        parts.append(
            f"## Performance and cost at each regime: {env}\n\n{env_caption(report, env)}\n\n"
            f"{regime_table(report, env)}\n\n"
            "± is the std over seeds (the spread of training runs), not an interval over "
            "questions: those are in the paired comparison below. "
            "`*`: on the Pareto front (no router has both lower cost and higher perf) at some regime. "
            "Cost is the normalized cost in [0, 1]; mean PGR (the mean over the regimes, not "
            "RouteLLM's APGR) and AIQ are defined in "
            "`routing_gym/bench/metrics.py`."
        )
        parts.append(
            f"### Paired comparison over the questions: {env}\n\n{paired_table(report, env)}\n\n"
            "Intervals are 95% bootstrap intervals over the evaluation questions (each question's "
            "value averaged over the seeds); Δ is paired over the same questions, and `**beats**` "
            "or `below` is written only where its interval excludes 0 (`routing_gym/stats.py`)."
        )
        parts.append(f"### Reward (Perf − λ·Cost): {env}\n\n{reward_table(report, env)}")
        parts.append(f"### Every result: {env}\n\n{detail_table(report, env)}")
    return "\n\n".join(parts) + "\n"
