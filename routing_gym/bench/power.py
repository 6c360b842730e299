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
from routing_gym.stats import LEVEL, POWER, mean_interval, minimum_detectable_difference


def assignment_matrix(table: ActionTable, models: Sequence[str] | None = None):
    """(question ids, assignment names, perf matrix questions × assignments) over ``models``.

    Assignments are named ``role=model`` joined by ``/`` in the table's role order; only the
    questions that have every assignment are kept (an unfinished build keeps its finished ones).
    """
    keep = None if not models else set(models)
    cells: dict[str, dict[str, float]] = {}
    for row in table.rows:
        chosen = [row["assignment"][role] for role in table.roles]
        if keep is not None and not set(chosen) <= keep:
            continue
        name = "/".join(f"{role}={model}" for role, model in zip(table.roles, chosen))
        cells.setdefault(str(row["question_id"]), {})[name] = float(row["perf"])
    if not cells:
        raise ValueError(f"the action table has no rows whose models are all among {sorted(keep or [])}.")
    names = sorted({name for per_question in cells.values() for name in per_question})
    questions = [q for q, per_question in cells.items() if len(per_question) == len(names)]
    if len(questions) < 2:
        raise ValueError(f"only {len(questions)} question(s) have all {len(names)} assignments; need 2 or more.")
    perf = np.array([[cells[q][name] for name in names] for q in questions], dtype=np.float64)
    return questions, names, perf


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
