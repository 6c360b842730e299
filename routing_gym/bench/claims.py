"""HAPS's three claims: the tables, the verdicts and the learning curve, from a claims summary.

The summary (``agents.haps.claims.report_summary``, written by ``examples/haps_claims.py
--report``) holds one group per (task, pool, regime): every baseline's per-question values
(fixed assignments, Random's exact expectation, the one-shot routers, the Oracle), the name of
the best fixed assignment chosen on train, and per HAPS variant and seed the per-question
values, how the run's answers compare with the table's episode of the same assignment played
without LoRA (``vs_table``) and its learning curve.

A method with several seeds enters the paired intervals with each question's mean over its
seeds; its mean ± spread is over the seeds' means (``stats.seed_spread``).

The claims (HAPS's Tables 2 and 3): (1) HAPS beats every fixed assignment and Random, (2)
removing the generated LoRA loses, (3) sharing the backbone helps. Each is judged on the
reward's paired 95% interval: held where every interval it rests on lies above 0, did not hold
where one lies below 0, otherwise not resolved at this size.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from routing_gym.stats import Interval, paired_difference_interval, seed_spread

HELD, NOT_HELD, NOT_RESOLVED, NOT_RUN = (
    "held",
    "did not hold",
    "not resolved at this size",
    "not run yet",
)
HAPS, NO_LORA, NO_SHARING = "HAPS", "HAPS without LoRA", "HAPS without sharing"
METRICS = ("perf", "normalized_cost", "reward")


def claim_verdict(intervals: Sequence[Interval]) -> str:
    """Held if every interval of (HAPS − comparator) lies above 0, did not hold if one lies
    below 0, otherwise not resolved; no interval at all: not run yet."""
    if not intervals:
        return NOT_RUN
    if any(i.high < 0 for i in intervals):
        return NOT_HELD
    if all(i.low > 0 for i in intervals):
        return HELD
    return NOT_RESOLVED


def methods(group: Mapping[str, Any]) -> dict[str, list[dict[str, list[float]]]]:
    """Each method's per-seed per-question values (a baseline has one 'seed')."""
    found = {label: [values] for label, values in group["baselines"].items()}
    for variant, seeds in group["variants"].items():
        found[variant] = [seeds[s] for s in sorted(seeds, key=int)]
    return found


def question_means(seeds: Sequence[Mapping[str, Sequence[float]]], key: str) -> np.ndarray:
    """Each question's mean over the seeds."""
    return np.mean([np.asarray(s[key], dtype=np.float64) for s in seeds], axis=0)


def best_fixed_label(group: Mapping[str, Any]) -> str:
    return f"Fixed {group['best_fixed']}"


def claim_intervals(group: Mapping[str, Any]) -> dict[str, list[Interval]]:
    """Per claim, the reward intervals of HAPS − its comparators (empty where a run is missing)."""
    found = methods(group)
    if HAPS not in found:
        return {"1": [], "2": [], "3": []}
    haps = question_means(found[HAPS], "reward")

    def against(label: str) -> list[Interval]:
        if label not in found:
            return []
        return [paired_difference_interval(haps, question_means(found[label], "reward"))]

    fixed = [label for label in found if label.startswith(("Fixed ", "Random"))]
    return {
        "1": [i for label in fixed for i in against(label)],
        "2": against(NO_LORA),
        "3": against(NO_SHARING),
    }


CLAIMS = {
    "1": "the hierarchical router beats every fixed assignment and Random",
    "2": "removing the low level (the generated LoRA) loses",
    "3": "sharing the backbone between the two levels helps",
}


def verdicts(group: Mapping[str, Any]) -> dict[str, str]:
    return {claim: claim_verdict(found) for claim, found in claim_intervals(group).items()}


def sizes_sentence(group: Mapping[str, Any]) -> str:
    """What the group's runs ran at (models, question counts); empty for a summary without it."""
    sizes = group.get("sizes")
    if not sizes:
        return ""
    closed = f" ({', '.join(sizes['closed'])} closed)" if sizes["closed"] else ""
    return (
        f" Models {', '.join(sizes['models'])}{closed}; {sizes['train']} train and "
        f"{sizes['stop']} early-stopping questions, {sizes['report']} reported planned."
    )


def claims_table(group: Mapping[str, Any]) -> str:
    """One group's Markdown: the methods table, where LoRA changed answers, the verdicts."""
    found = methods(group)
    metric = group.get("metric", "F1")
    n = len(group["question_ids"])
    reference = best_fixed_label(group)
    lines = [
        (
            f"**{group['task']}, pool {group['pool']}, {group['regime']} (λ = {group['lam']:g})**: "
            f"{n} reported questions. Mean over seeds ± seed spread; each Δ is paired over the "
            "same questions (each question's mean over seeds), 95% bootstrap interval. Best "
            f"fixed on train: {group['best_fixed']}.{sizes_sentence(group)}"
        ),
        "",
        (
            f"| method | seeds | {metric} | norm. cost | reward | Δ {metric} vs best fixed | "
            f"Δ reward vs best fixed | Δ {metric} vs {NO_LORA} | Δ reward vs {NO_LORA} |"
        ),
        "|---|---:|---:|---:|---:|---|---|---|---|",
    ]
    for label, seeds in found.items():
        cells = []
        for key in METRICS:
            spread = seed_spread([float(np.mean(s[key])) for s in seeds])
            cells.append(
                f"{spread.mean:.3f} ± {spread.std:.3f}"
                if spread.n_seeds > 1
                else f"{spread.mean:.3f}"
            )
        deltas = []
        for other in (reference, NO_LORA):
            for key in ("perf", "reward"):
                if other not in found or other == label:
                    deltas.append("—")
                    continue
                interval = paired_difference_interval(
                    question_means(seeds, key), question_means(found[other], key)
                )
                verdict = "resolved" if interval.excludes_zero else "not resolved"
                deltas.append(f"{interval.format(3, signed=True)} {verdict}")
        lines.append(f"| {label} | {len(seeds)} | " + " | ".join(cells + deltas) + " |")
    changed = [(label, seeds) for label, seeds in group["variants"].items() if label != NO_LORA]
    if changed:
        lines += [
            "",
            (
                f"Where LoRA changed answers ({metric} against the table's episode of the "
                "same assignment without LoRA), per seed: improved / hurt / unchanged"
            ),
            "",
        ]
        for label, seeds in changed:
            counts = [
                f"seed {s}: {v['vs_table']['better']} / {v['vs_table']['worse']} / "
                f"{v['vs_table']['same']}"
                for s, v in sorted(seeds.items(), key=lambda x: int(x[0]))
            ]
            lines.append(f"- {label}: " + "; ".join(counts))
    lines += ["", "Verdicts:", ""]
    for claim, verdict in verdicts(group).items():
        lines.append(f"- Claim {claim} ({CLAIMS[claim]}): **{verdict}**")
    return "\n".join(lines)


def find_group(summary: Mapping[str, Any], task: str, pool: str, regime: str) -> Mapping[str, Any]:
    for group in summary["groups"]:
        if (group["task"], group["pool"], group["regime"]) == (task, pool, regime):
            return group
    have = [f"{g['task']}/{g['pool']}/{g['regime']}" for g in summary["groups"]]
    raise ValueError(f"no group {task}/{pool}/{regime} in the claims summary (it has {have}).")


def plot_learning_curves(group: Mapping[str, Any], path: str | Path) -> Path | None:
    """Train and early-stopping reward against training episodes, per variant (mean over the
    seeds at each update), as a PNG; None when no run has a curve."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(10, 3.6), sharey=False)
    drawn = False
    for variant, seeds in group["variants"].items():
        for axis, part in zip(axes, ("train", "stop")):
            per_update: dict[int, list[float]] = {}
            for run in seeds.values():
                for update, value in run["curve"][part]:
                    per_update.setdefault(int(update) * run["episodes_per_update"], []).append(
                        value
                    )
            if per_update:
                episodes = sorted(per_update)
                axis.plot(
                    episodes,
                    [np.mean(per_update[e]) for e in episodes],
                    marker="o",
                    label=f"{variant} ({len(seeds)} seeds)",
                )
                drawn = True
    if not drawn:
        plt.close(figure)
        return None
    for axis, title in zip(axes, ("train reward (sampled)", "early-stopping reward (greedy)")):
        axis.set_xlabel("training episodes")
        axis.set_ylabel("reward")
        axis.set_title(title)
        axis.legend(fontsize=7)
    figure.suptitle(f"{group['task']}, pool {group['pool']}, {group['regime']}")
    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path
