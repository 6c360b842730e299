"""The table of ``examples/llmrouter_features.py``: gap captured with and without query features.

Reads that script's JSON (per-query test rewards of every method, of the best single model and
of the Oracle, at each λ) and writes, for one λ, each method's share of the
best-single-to-Oracle gap with its 95% paired bootstrap interval; then, per router, the
difference that the task and length features make; then each method's difference from the
per-task best from train (all paired over the same test queries).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from routing_gym.stats import difference_cell, gap_captured_interval

#: The feature set the differences are taken against.
BASE_FEATURES = "embedding"
#: The method that reads the task alone (the per-task best from train): every other method is
#: also compared with it.
TASK_ONLY = "task"


def _setting(method: dict[str, Any]) -> str:
    setting = method.get("setting")
    if not setting:
        return "—"
    return ", ".join(
        f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in setting.items()
    )


def feature_gap_table(summary: dict[str, Any], lam_key: str) -> str:
    """Markdown for one λ (a key of ``summary["test"]["by_lam"]``): gap captured per method,
    then each router's difference with the features against the embedding alone."""
    by_lam = summary["test"]["by_lam"]
    if lam_key not in by_lam:
        raise ValueError(f"no results at λ key {lam_key!r} (have {sorted(by_lam)}).")
    block = by_lam[lam_key]
    rewards = {k: np.asarray(v, dtype=np.float64) for k, v in block["rewards"].items()}
    best, oracle = rewards["best single"], rewards["oracle"]
    n = len(best)
    lines = [
        f"λ = {block['lam']:g}; n = {n} test queries. Best single model (on test): "
        f"{block['best_single']}, mean reward {best.mean():.3f}; Oracle {oracle.mean():.3f}.",
        "",
        "| Method | features | setting (chosen on valid) | gap captured [95% CI] |",
        "|---|---|---|---|",
    ]
    methods = summary["methods"]
    for label, method in methods.items():
        interval = gap_captured_interval(rewards[label], best, oracle)
        lines.append(
            f"| {method['router']} | {method['features']} | {_setting(method)} | "
            f"{interval.format()} |"
        )
    pairs = []
    for label, method in methods.items():
        if method["features"] == BASE_FEATURES:
            continue
        twin = next(
            (other for other, m in methods.items()
             if m["features"] == BASE_FEATURES and m["router"] == method["router"]),
            None,
        )
        if twin is not None:
            pairs.append((method, label, twin))
    if pairs:
        lines += [
            "",
            f"| Router | features − {BASE_FEATURES} alone: gap captured [95% CI], paired |",
            "|---|---|",
        ]
        for method, label, twin in pairs:
            diff = gap_captured_interval(rewards[label], best, oracle, baseline=rewards[twin])
            lines.append(f"| {method['router']} ({method['features']}) | {difference_cell(diff)} |")
    reference = next((label for label, m in methods.items() if m["features"] == TASK_ONLY), None)
    if reference is not None:
        lines += [
            "",
            f"| Method − {methods[reference]['router']}: gap captured [95% CI], paired |",
            "|---|---|",
        ]
        for label, method in methods.items():
            if label == reference:
                continue
            diff = gap_captured_interval(rewards[label], best, oracle, baseline=rewards[reference])
            lines.append(f"| {method['router']} ({method['features']}) | {difference_cell(diff)} |")
    return "\n".join(lines)
