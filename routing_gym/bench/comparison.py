"""Comparison tables with n, 95% intervals and paired differences from a reference method.

Every comparison table the project prints goes through ``comparison_table``: one row per
method, the number of questions, each metric's mean with its bootstrap interval, and for the
compared metrics the paired interval of the difference from a reference (the best fixed
choice picked on the train split, where there is one). A difference is marked ``**beats**``
only where its interval excludes 0 (``routing_gym.stats.difference_cell``); otherwise the
cell says ``not resolved``.

The source-specific tables (``haps_comparison``, ``multihop_comparison``,
``pool_quality_tables``) turn one script's per-question output into such tables; the
scripts print them and ``routing_gym.bench.published`` recomputes the committed ones.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from routing_gym import stats


@dataclass(frozen=True)
class Metric:
    """One per-question quantity of a comparison table."""

    key: str
    name: str
    higher_is_better: bool = True
    compare: bool = False  # add a column with the paired difference from the reference
    digits: int = 3


def comparison_table(
    methods: Mapping[str, Mapping[str, Sequence[float]]],
    metrics: Sequence[Metric],
    reference: str | None,
    text_columns: Mapping[str, Mapping[str, str]] | None = None,
    bounds: Iterable[str] = (),
    label: str = "method",
    reference_name: str | None = None,
) -> str:
    """A Markdown table: method, n, each metric's mean [95% interval], then for every compared
    metric the paired difference from ``reference`` [95% interval] and its verdict.

    ``methods`` maps a label to {metric key: per-question values}, every method over the same
    questions in the same order. ``bounds`` (the Oracle: upper bounds, not routers) get their
    difference without a mark. ``text_columns`` maps a column header to {label: text};
    ``reference_name`` names the reference in the headers (default: its label).
    """
    if not methods:
        raise ValueError("comparison_table needs at least one method.")
    if reference is not None and reference not in methods:
        raise ValueError(f"reference {reference!r} is not one of the methods {list(methods)}.")
    sizes = {}
    for name, values in methods.items():
        found = {len(values[m.key]) for m in metrics}
        if len(found) != 1:
            raise ValueError(
                f"method {name!r} has metrics over different numbers of questions: {found}."
            )
        sizes[name] = found.pop()
    if reference is not None:
        for name, size in sizes.items():
            if size != sizes[reference]:
                raise ValueError(
                    f"method {name!r} has {size} questions, the reference {reference!r} "
                    f"{sizes[reference]}: a paired difference needs the same questions."
                )
    text_columns = dict(text_columns or {})
    bounds = set(bounds)
    compared = [m for m in metrics if m.compare and reference is not None]
    header = [label, "n"]
    header += [f"{m.name} {'↑' if m.higher_is_better else '↓'} [95% CI]" for m in metrics]
    header += [f"Δ {m.name} vs {reference_name or reference} [95% CI]" for m in compared]
    header += list(text_columns)
    lines = [
        "| " + " | ".join(header) + " |",
        "|---|" + "---:|" * (1 + len(metrics) + len(compared)) + "---|" * len(text_columns),
    ]
    for name, values in methods.items():
        cells = [name, str(sizes[name])]
        cells += [stats.mean_interval(values[m.key]).format(m.digits) for m in metrics]
        for m in compared:
            if name == reference:
                cells.append("reference")
                continue
            difference = stats.paired_difference_interval(values[m.key], methods[reference][m.key])
            if name in bounds:
                cells.append(f"{difference.format(m.digits, signed=True)} (bound)")
            else:
                cells.append(stats.difference_cell(difference, m.higher_is_better, m.digits))
        cells += [text_columns[column].get(name, "") for column in text_columns]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


# ---------------------------------------------------------------------------- HAPS (compare_haps)

HAPS_REFERENCE_PREFIX = "Best fixed on train"
HAPS_BOUNDS = ("Oracle (hindsight upper bound)",)


def haps_comparison(lam: float, table: Mapping[str, Mapping[str, Any]], metric: str = "F1") -> str:
    """``examples/compare_haps.py``'s table at one λ: every row's F1, normalized cost and reward
    with intervals over the valid questions, and Δ F1 / Δ reward from the best fixed
    assignment on train. ``table`` is one λ of that script's summary (rows with ``per_question``)."""
    rows = {label: row for label, row in table.items()}
    missing = [label for label, row in rows.items() if "per_question" not in row]
    if missing:
        raise ValueError(f"rows {missing} have no per-question values ('per_question').")
    reference = next((label for label in rows if label.startswith(HAPS_REFERENCE_PREFIX)), None)
    ids = next(iter(rows.values()))["per_question"]["question_id"]
    for label, row in rows.items():
        if row["per_question"]["question_id"] != ids:
            raise ValueError(f"row {label!r} is not over the same valid questions as the others.")
    methods = {
        label: {key: row["per_question"][key] for key in ("perf", "normalized_cost", "reward")}
        for label, row in rows.items()
    }
    metrics = [
        Metric("perf", f"valid {metric}", compare=True),
        Metric("normalized_cost", "norm. cost", higher_is_better=False),
        Metric("reward", "reward", compare=True),
    ]
    played = {
        label: ", ".join(f"{k} {v}" for k, v in sorted(row.get("assignments", {}).items()))
        for label, row in rows.items()
        if not label.startswith(("Fixed ", HAPS_REFERENCE_PREFIX))
    }
    text = {"assignments played": played}
    if any("table_matches" in row for row in rows.values()):
        text["table matches"] = {
            l: r["table_matches"] for l, r in rows.items() if "table_matches" in r
        }
        text[f"{metric} vs the table's episode: better / worse / same"] = {
            l: "{better} / {worse} / {same}".format(**r["vs_table"])
            for l, r in rows.items()
            if "vs_table" in r
        }
    caption = (
        f"Valid questions: {len(ids)}, λ = {lam:g} (student/teacher; cost normalized on train). "
        "Means over the valid questions with 95% bootstrap intervals; Δ is paired over the same "
        "questions against the best fixed assignment chosen on the train table."
    )
    return (
        caption
        + "\n\n"
        + comparison_table(
            methods,
            metrics,
            reference,
            text,
            bounds=HAPS_BOUNDS,
            label="router",
            reference_name="best fixed on train",
        )
    )


# ---------------------------------------------------------------------------- multi-hop

MULTIHOP_REFERENCE = "best two-hop"
MULTIHOP_BOUNDS = ("Oracle", "Oracle (quality)")
#: Rows that are exact expectations over paths, not one path's 0/1 outcome per query.
MULTIHOP_EXPECTATIONS = ("Random",)


def multihop_comparison(result: Mapping[str, Any], lam: str) -> str:
    """``examples/hierrouter_multihop.py``'s comparison at one λ over the held-out queries:
    quality, normalized cost and reward [95% CI] per method and Δ reward / Δ quality from the
    best fixed two-hop pipeline chosen on the train queries. Needs the result's ``per_query``."""
    per_query = result.get("per_query", {}).get(lam)
    if per_query is None:
        raise ValueError(
            f"the result has no per-query outcomes at λ = {lam} ('per_query'): it was written "
            "before they were kept, so it has no intervals."
        )
    methods = {
        method: {key: outcomes[key] for key in ("quality", "cost", "reward")}
        for method, outcomes in per_query["methods"].items()
    }
    metrics = [
        Metric("quality", "quality", compare=True),
        Metric("cost", "norm. cost", higher_is_better=False),
        Metric("reward", "reward", compare=True),
    ]
    caption = (
        f"λ = {lam}: {len(per_query['question_ids'])} held-out queries; reference = the best "
        f"fixed two-hop pipeline on the train queries ({result['best_two_hop'][lam]})."
    )
    return (
        caption
        + "\n\n"
        + comparison_table(methods, metrics, MULTIHOP_REFERENCE, bounds=MULTIHOP_BOUNDS)
    )


# ---------------------------------------------------------------------------- pool quality


def pool_quality_tables(
    rows: Sequence[Mapping[str, str]], models: Sequence[str], reference: str
) -> str:
    """Per task: each model's mean score [95% CI] over the sampled questions and its paired
    difference from ``reference``; on 0/1 tasks also the exact McNemar p. ``rows`` are the
    lines of ``benchmarks/pool_quality.py``'s ``scores.csv`` (``id``, ``task``, one column per model)."""
    if reference not in models:
        raise ValueError(f"reference {reference!r} is not one of the models {list(models)}.")
    tasks = list(dict.fromkeys(row["task"] for row in rows))
    parts = []
    for task in tasks:
        mine = [row for row in rows if row["task"] == task]
        scores = {m: np.array([float(row[m]) for row in mine]) for m in models}
        binary = all(np.isin(values, (0.0, 1.0)).all() for values in scores.values())
        text = {}
        if binary:
            text["McNemar exact p vs reference (only model / only reference)"] = {
                m: _mcnemar_text(stats.mcnemar_exact(scores[m], scores[reference]))
                for m in models
                if m != reference
            }
        methods = {m: {"score": scores[m]} for m in models}
        metric = Metric("score", "F1" if not binary else "score", compare=True)
        parts.append(
            f"**{task}** ({len(mine)} questions)\n\n"
            + comparison_table(methods, [metric], reference, text, label="model")
        )
    return "\n\n".join(parts)


def _mcnemar_text(result: stats.McNemar) -> str:
    return f"{result.pvalue:.3g} ({result.only_a} / {result.only_b})"


def multihop_counts(
    result: Mapping[str, Any], lam: str, reference: str = MULTIHOP_REFERENCE
) -> str:
    """For a multi-hop result without per-query outcomes: what its counts still support.

    Quality is 0/1 per query on the six tasks, so a method's overall quality q over n queries is
    q·n correct answers, and the bootstrap interval of its mean depends on that count alone
    (``mean_interval`` of q·n ones and the rest zeros). A paired difference needs the per-query
    outcomes; without them the table gives the net difference in correct answers from
    ``reference`` and the smallest exact McNemar p any pairing could give it (all discordant
    queries one way: ``mcnemar_exact`` of that many ones against zeros). Where even that p is
    above 0.05 the difference is not resolved, whatever the pairing. Methods whose quality is
    not a count (Random's exact expectation) get no interval.
    """
    table = result["results"][lam]
    n = int(result["heldout_queries"])
    if reference not in table:
        raise ValueError(f"reference {reference!r} is not a method of the λ = {lam} table.")

    def count(method: str) -> int | None:
        if method in MULTIHOP_EXPECTATIONS:
            return None
        correct = table[method]["overall"]["quality"] * n
        return round(correct) if abs(correct - round(correct)) < 1e-6 else None

    ref_count = count(reference)
    header = (
        f"| method | n | quality ↑ [95% CI] | correct | net correct vs {reference} "
        "| smallest McNemar p of that net | verdict | norm. cost (mean) | reward (mean) |"
    )
    lines = [header, "|---|---:|---:|---:|---:|---:|---|---:|---:|"]
    for method, cells in table.items():
        k = count(method)
        overall = cells["overall"]
        means = f"{overall['cost']:.3f} | {overall['reward']:+.3f}"
        if k is None:
            lines.append(
                f"| {method} | {n} | {overall['quality']:.3f} (an expectation) | – | – | – | – | {means} |"
            )
            continue
        interval = stats.mean_interval([1.0] * k + [0.0] * (n - k))
        if method == reference:
            lines.append(
                f"| {method} | {n} | {interval.format()} | {k} | reference | – | – | {means} |"
            )
            continue
        net = k - ref_count
        best_case = stats.mcnemar_exact([1.0] * abs(net), [0.0] * abs(net)).pvalue if net else 1.0
        verdict = "not resolved" if best_case > 0.05 else "needs the per-query outcomes"
        lines.append(
            f"| {method} | {n} | {interval.format()} | {k} | {net:+d} | {best_case:.3g} | {verdict} | {means} |"
        )
    caption = (
        f"λ = {lam}: {n} held-out queries; reference {reference} "
        f"({result['best_two_hop'][lam]} on the train queries)"
        if reference == MULTIHOP_REFERENCE
        else f"λ = {lam}: {n} held-out queries; reference {reference}"
    )
    return caption + ".\n\n" + "\n".join(lines)
