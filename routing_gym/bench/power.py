"""Power before a run: what differences a reported question set can detect, from an exhaustive table.

The per-question spread of the difference between two assignments, measured on an existing
action table, stands for the spread of the differences a routing run will measure on the same
kind of questions. ``power_table`` reports, for every assignment against the table's best
fixed assignment, that spread and the smallest true difference (two-sided, 95%, power 0.8)
that the table's own questions and a planned report size would detect
(``routing_gym.stats.minimum_detectable_difference``), with the Oracle's room above the best
fixed assignment for scale: a router whose gain is below the detectable difference cannot be
told from the best fixed assignment at that size.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from routing_gym.action_table import ActionTable
from routing_gym.outcomes import Outcomes
from routing_gym.stats import LEVEL, POWER, mean_interval, minimum_detectable_difference


def assignment_matrix(table: ActionTable, models: Sequence[str] | None = None):
    """(question ids, assignment names, perf matrix questions × assignments) over ``models``.

    Assignments are named ``role=model`` joined by ``/`` in the table's role order; only the
    questions that have every assignment are kept (an unfinished build keeps its finished ones).
    """
    keep = sorted(set(models)) if models else table.models
    rows = [row for row in table.rows if set(row["assignment"].values()) <= set(keep)]
    if not rows:
        raise ValueError(f"the action table has no rows whose models are all among {keep}.")
    chosen = ActionTable(rows, table.header)
    arms = {tuple(keep.index(row["assignment"][role]) for role in chosen.roles) for row in rows}
    have: dict[str, int] = {}
    for row in rows:
        have[str(row["question_id"])] = have.get(str(row["question_id"]), 0) + 1
    complete = [q for q in chosen.question_ids if have[str(q)] == len(arms)]
    if len(complete) < 2:
        raise ValueError(f"only {len(complete)} question(s) have all {len(arms)} assignments; need 2 or more.")
    outcomes = Outcomes.from_action_table(chosen, keep, question_ids=complete, arms=sorted(arms))
    names = ["/".join(f"{role}={model}" for role, model in zip(outcomes.roles, arm)) for arm in outcomes.arm_models]
    order = np.argsort(names, kind="stable")
    return list(outcomes.query_ids), [names[i] for i in order], outcomes.scores[:, order]


def power_summary(table: ActionTable, n_report: int, models: Sequence[str] | None = None) -> dict:
    """The figures of ``power_table`` as data."""
    questions, names, perf = assignment_matrix(table, models)
    means = perf.mean(axis=0)
    best = int(np.argmax(means))
    oracle = perf.max(axis=1)
    rows = []
    for column, name in enumerate(names):
        row = {"assignment": name, "mean": dataclasses.asdict(mean_interval(perf[:, column]))}
        if column != best:
            difference = perf[:, column] - perf[:, best]
            row.update(sd=float(difference.std(ddof=1)),
                       mdd_table=minimum_detectable_difference(difference),
                       mdd_report=minimum_detectable_difference(difference, n_report))
        rows.append(row)
    room = oracle - perf[:, best]
    return {"n_table": len(questions), "n_report": int(n_report), "best": names[best], "rows": rows,
            "oracle_room": float(room.mean()),
            "oracle_room_mdd_report": minimum_detectable_difference(room, n_report),
            "level": LEVEL, "power": POWER}


def power_table(path: str | Path, n_report: int, models: Sequence[str] | None = None) -> str:
    """A Markdown table: each assignment's mean, and the difference from the best fixed
    assignment that ``n_report`` questions would detect."""
    summary = power_summary(ActionTable.load(path), n_report, models)
    n_table, n_report = summary["n_table"], summary["n_report"]
    lines = [
        f"Measured on {n_table} questions with every assignment; planned report: {n_report} questions. "
        f"Detectable = the smallest true paired difference from the best fixed assignment "
        f"({summary['best']}) found with power {summary['power']:.1f} by a two-sided "
        f"{summary['level']:.0%} test.",
        "",
        f"| assignment | mean [95% CI], n = {n_table} | sd of the paired difference | "
        f"detectable at n = {n_table} | detectable at n = {n_report} |",
        "|---|---:|---:|---:|---:|",
    ]
    if n_report == n_table:  # one size: one column
        lines[2:4] = [f"| assignment | mean [95% CI], n = {n_table} | sd of the paired difference | "
                      f"detectable at n = {n_table} |", "|---|---:|---:|---:|"]
    for row in summary["rows"]:
        mean = row["mean"]
        cell = f"{mean['estimate']:.3f} [{mean['low']:.3f}, {mean['high']:.3f}]"
        if "sd" in row:
            cells = [cell, f"{row['sd']:.3f}", f"±{row['mdd_table']:.3f}", f"±{row['mdd_report']:.3f}"]
        else:
            cells = [cell, "reference", "–", "–"]
        label = row["assignment"] + ("" if "sd" in row else " (best fixed)")
        lines.append("| " + " | ".join([label, *cells[: 4 if n_report != n_table else 3]]) + " |")
    room = [f"{summary['oracle_room']:+.3f}", "–", "–", f"±{summary['oracle_room_mdd_report']:.3f}"]
    if n_report == n_table:
        room = [room[0], "–", room[3]]
    lines.append("| " + " | ".join(["Oracle − best fixed (room)", *room]) + " |")
    return "\n".join(lines)
