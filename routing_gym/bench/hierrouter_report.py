"""HierRouter's report over seeds and feature sets: tables per task and the verdict on its claim.

``examples/hierrouter_multihop.py`` writes, per λ, every method's quality, normalized cost and
reward on every held-out query (``per_query``). A trained router runs once per seed; its runs
are listed under ``per_query[λ]["groups"]`` (group label -> the method of each seed). Here:

* ``report_table``: per group, the mean over seeds ± their spread (``stats.seed_spread``) of
  quality, cost and reward, and the 95% paired-bootstrap interval over the held-out queries of
  its difference from the best single model chosen on train. The paired difference takes each
  query's outcome averaged over the seeds, so the interval is over queries, not seeds.
* ``claim_verdict``: HierRouter's claim, that the pipeline beats each single model's quality at
  a fraction of the largest model's cost, on one set of queries: ``held`` where every quality
  interval lies above 0 and the cost interval against the largest model below 0; ``did not
  hold`` where one of them is shown on the wrong side (or equal on every query); otherwise
  ``not resolved``.
* ``verdict_table``: that verdict per HierRouter group and λ, per task and overall.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from routing_gym import stats

HELD, DID_NOT_HOLD, NOT_RESOLVED = "held", "did not hold", "not resolved"
#: The trained pipeline's group labels start with this.
HIERROUTER = "HierRouter (MaskablePPO)"
SINGLE_PREFIX = "single "
#: Upper bounds, not routers: their differences carry no verdict.
BOUNDS = ("Oracle", "Oracle (quality)")
KEYS = ("quality", "cost", "reward")


@dataclass(frozen=True)
class ClaimVerdict:
    """The verdict on the claim and the intervals behind it."""

    verdict: str
    quality: dict[str, stats.Interval]  # single model -> Δ quality (router − single)
    cost: stats.Interval  # Δ normalized cost (router − largest model)

    def reason(self, digits: int = 3) -> str:
        """The narrowest quality margin and the cost difference, as one line."""
        weakest = min(self.quality, key=lambda name: self.quality[name].low)
        return (
            f"Δ quality vs {weakest} {self.quality[weakest].format(digits, signed=True)}; "
            f"Δ cost vs largest {self.cost.format(digits, signed=True)}"
        )


def _shown_above(interval: stats.Interval) -> bool:
    return interval.excludes_zero and interval.low > 0


def _shown_not_above(interval: stats.Interval) -> bool:
    """Below 0, or 0 (or less) on every query: the data say it is not above."""
    if interval.n < 2:
        return False
    return interval.high < 0 or (interval.width == 0 and interval.estimate <= 0)


def claim_verdict(
    router_quality: Sequence[float],
    router_cost: Sequence[float],
    single_quality: Mapping[str, Sequence[float]],
    largest_cost: Sequence[float],
) -> ClaimVerdict:
    """The claim on one set of queries, all paired: the router's quality against each single
    model's (matched by name) and its normalized cost against the largest model's."""
    if not single_quality:
        raise ValueError("claim_verdict needs the quality of at least one single model.")
    quality = {
        name: stats.paired_difference_interval(router_quality, values)
        for name, values in single_quality.items()
    }
    cost = stats.paired_difference_interval(router_cost, largest_cost)
    # the cost claim is the quality one mirrored: largest − router above 0
    saving = stats.paired_difference_interval(largest_cost, router_cost)
    cheaper_shown, cost_not_below = _shown_above(saving), _shown_not_above(saving)
    if all(_shown_above(i) for i in quality.values()) and cheaper_shown:
        verdict = HELD
    elif any(_shown_not_above(i) for i in quality.values()) or cost_not_below:
        verdict = DID_NOT_HOLD
    else:
        verdict = NOT_RESOLVED
    return ClaimVerdict(verdict, quality, cost)


def groups(per_query: Mapping[str, Any]) -> dict[str, list[str]]:
    """Group label -> its methods (one per seed); a method outside every group is its own."""
    listed = {label: list(members) for label, members in per_query.get("groups", {}).items()}
    grouped = {m for members in listed.values() for m in members}
    out: dict[str, list[str]] = {}
    for method in per_query["methods"]:
        if method in grouped:
            label = next(label for label, members in listed.items() if method in members)
            out.setdefault(label, listed[label])
        else:
            out[method] = [method]
    return out


def _select(per_query: Mapping[str, Any], task: str | None) -> np.ndarray:
    tasks = np.asarray(per_query["tasks"])
    mask = np.ones(len(tasks), dtype=bool) if task is None else tasks == task
    if not mask.any():
        raise ValueError(f"no held-out query of task {task!r} (tasks: {sorted(set(tasks))}).")
    return mask


def seed_values(
    per_query: Mapping[str, Any], members: Sequence[str], key: str, mask: np.ndarray
) -> np.ndarray:
    """(seeds, queries): each member's ``key`` on the selected queries."""
    return np.array([np.asarray(per_query["methods"][m][key], dtype=float)[mask] for m in members])


def _lam_entry(result: Mapping[str, Any], lam: str) -> Mapping[str, Any]:
    per_query = result.get("per_query", {}).get(lam)
    if per_query is None:
        raise ValueError(
            f"the result has no per-query outcomes at λ = {lam} (it has {list(result.get('per_query', {}))})."
        )
    return per_query


def report_table(result: Mapping[str, Any], lam: str, task: str | None = None) -> str:
    """A Markdown table at one λ over the held-out queries of ``task`` (default: all): per
    group, seeds, mean ± spread over seeds of quality, normalized cost and reward, and the
    paired Δ quality and Δ reward from the best single model on train [95% CI]."""
    per_query = _lam_entry(result, lam)
    best = result["best_single"][lam]
    reference = f"{SINGLE_PREFIX}{best}"
    if reference not in per_query["methods"]:
        raise ValueError(f"the best single model {best!r} has no outcomes at λ = {lam}.")
    mask = _select(per_query, task)
    reference_values = {key: seed_values(per_query, [reference], key, mask)[0] for key in KEYS}
    header = [
        "method",
        "n",
        "seeds",
        "quality ↑",
        "norm. cost ↓",
        "reward ↑",
        f"Δ quality vs {best} [95% CI]",
        f"Δ reward vs {best} [95% CI]",
    ]
    lines = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]
    for label, members in groups(per_query).items():
        values = {key: seed_values(per_query, members, key, mask) for key in KEYS}
        cells = [label, str(int(mask.sum())), str(len(members))]
        for key in KEYS:
            spread = stats.seed_spread(values[key].mean(axis=1))
            cells.append(
                f"{spread.mean:.3f} ± {spread.std:.3f}"
                if len(members) > 1
                else f"{spread.mean:.3f}"
            )
        for key in ("quality", "reward"):
            if label == reference:
                cells.append("reference")
                continue
            difference = stats.paired_difference_interval(
                values[key].mean(axis=0), reference_values[key]
            )
            cells.append(
                f"{difference.format(signed=True)} (bound)"
                if label in BOUNDS
                else stats.difference_cell(difference)
            )
        lines.append("| " + " | ".join(cells) + " |")
    where = f"task {task}" if task is not None else "all tasks"
    caption = (
        f"λ = {lam}, {where}: {int(mask.sum())} held-out queries; mean over seeds ± their std "
        f"(ddof 1); Δ paired over the queries (each query's outcome averaged over the seeds) "
        f"against the best single model on train ({best})."
    )
    return caption + "\n\n" + "\n".join(lines)


def verdicts(result: Mapping[str, Any]) -> dict[str, dict[str, dict[str, ClaimVerdict]]]:
    """λ -> HierRouter group -> task (and ``"overall"``) -> the verdict on the claim."""
    models, largest = result["models"], result["largest_model"]
    out: dict[str, dict[str, dict[str, ClaimVerdict]]] = {}
    for lam, per_query in result["per_query"].items():
        by_group = {}
        for label, members in groups(per_query).items():
            if not label.startswith(HIERROUTER):
                continue
            cells = {}
            for task in [*result["tasks"], None]:
                mask = _select(per_query, task)
                singles = {
                    m: seed_values(per_query, [SINGLE_PREFIX + m], "quality", mask)[0]
                    for m in models
                }
                largest_cost = seed_values(per_query, [SINGLE_PREFIX + largest], "cost", mask)[0]
                cells[task or "overall"] = claim_verdict(
                    seed_values(per_query, members, "quality", mask).mean(axis=0),
                    seed_values(per_query, members, "cost", mask).mean(axis=0),
                    singles,
                    largest_cost,
                )
            by_group[label] = cells
        out[lam] = by_group
    return out


def verdict_table(result: Mapping[str, Any]) -> str:
    """The verdict per λ and HierRouter group (rows), per task and overall (columns), with
    the narrowest quality margin and the cost difference under each."""
    columns = [*result["tasks"], "overall"]
    lines = ["| λ | router | " + " | ".join(columns) + " |", "|---|---|" + "---|" * len(columns)]
    for lam, by_group in verdicts(result).items():
        for label, cells in by_group.items():
            text = [f"**{cells[c].verdict}**<br>{cells[c].reason()}" for c in columns]
            lines.append(f"| {lam} | {label} | " + " | ".join(text) + " |")
    caption = (
        f"The claim: the pipeline's quality is above each single model's ({', '.join(result['models'])}) "
        f"at a lower normalized cost than the largest model's ({result['largest_model']}). held: every "
        "paired 95% interval on the claim's side of 0; did not hold: one on the other side (or equal "
        "on every query); otherwise not resolved. Each query's outcome is averaged over the seeds."
    )
    return caption + "\n\n" + "\n".join(lines)


def report(result: Mapping[str, Any]) -> str:
    """Every table of a result: per λ the overall and per-task tables, then the verdicts."""
    parts = []
    if result.get("skipped_tasks"):
        parts.append(
            "Tasks left out (their trees are not complete): "
            + "; ".join(f"{t}: {why}" for t, why in result["skipped_tasks"].items())
            + "."
        )
    for lam in result["per_query"]:
        parts.append(report_table(result, lam))
        parts += [report_table(result, lam, task) for task in result["tasks"]]
    if result.get("largest_model"):
        parts.append(verdict_table(result))
    else:
        parts.append(
            f"No verdict on the claim: no largest model ({result.get('largest_model_error', 'not recorded')})."
        )
    return "\n\n".join(parts)
