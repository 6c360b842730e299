"""The cost–performance (Pareto) plot of a benchmark report, saved as a PNG (matplotlib, Agg)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

import matplotlib

matplotlib.use("Agg")  # files only: no display on servers and CI
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from routing_gym.bench import metrics  # noqa: E402

#: One marker shape per regime, in report order.
REGIME_MARKERS = ("o", "s", "^", "D", "v", "P", "X")


def pareto_plot(
    report: Mapping[str, Any], env: str, path: str | os.PathLike, title: str | None = None
) -> Path:
    """Cost against perf for every agent × regime, the routers' hull and the single models.

    Colour = agent, shape = regime, error bars = std over seeds; black-edged markers are on the
    Pareto front; the dashed line is the non-decreasing convex hull of the routers (the Oracle,
    an upper bound, is drawn as a star and left out of it); grey crosses are the single models.
    When the routers crowd the cheap end, a second panel zooms on the cheapest third of the
    cost range.
    """
    results = [r for r in report["results"] if r["env"] == env]
    if not results:
        raise ValueError(f"The report has no results for {env!r}.")
    regimes = [g for g in report["regimes"] if any(r["regime"] == g for r in results)]
    agents = list(dict.fromkeys(r["agent"] for r in results))
    colour_of = {a: PALETTE[i % len(PALETTE)] for i, a in enumerate(agents)}
    routers = [r for r in results if not r["upper_bound"]]
    hull = metrics.nondecreasing_hull([(r["cost_mean"], r["perf_mean"]) for r in routers])
    right = report.get("frontier", {}).get(env, {}).get("cost_range", [0.0, 0.0])[1]

    zoom = _zoom_box(routers)
    fig, axes = plt.subplots(
        1, 2 if zoom else 1, figsize=(14.5 if zoom else 9.5, 5.8), dpi=110, squeeze=False
    )
    for ax in axes[0]:
        _draw(ax, report, env, results, regimes, colour_of, hull, right)
    main = axes[0][0]
    main.set_title(
        title
        or f"{env}: cost vs. performance ({report.get('settings', {}).get('eval_split', 'test')} split)"
    )
    if zoom:
        (x0, x1), (y0, y1) = zoom
        axes[0][1].set_xlim(x0, x1)
        axes[0][1].set_ylim(y0, y1)
        axes[0][1].set_title("zoom: the cheapest third of the cost range")
        main.add_patch(
            plt.Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, linestyle=":", color="0.4")
        )

    legend_ax = axes[0][-1]
    for agent in agents:
        bound = any(r["upper_bound"] for r in results if r["agent"] == agent)
        legend_ax.scatter(
            [],
            [],
            marker="*" if bound else "o",
            color=colour_of[agent],
            label=next(r["label"] for r in results if r["agent"] == agent),
        )
    for g in regimes:
        lam = report["regimes"].get(g)
        legend_ax.scatter(
            [],
            [],
            marker=REGIME_MARKERS[regimes.index(g) % len(REGIME_MARKERS)],
            color="0.5",
            label=f"{g} (λ={lam:g})" if lam is not None else g,
        )
    legend_ax.scatter(
        [], [], marker="o", color="white", edgecolors="black", label="on the Pareto front"
    )
    legend_ax.scatter([], [], marker="x", color="0.6", label="single models")
    legend_ax.plot([], [], "--", color="0.25", label="hull of the routers")
    legend_ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=7.5, frameon=False)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


#: Distinct colours for up to 12 agents (tab10, then black and olive-brown).
PALETTE = (*plt.get_cmap("tab10").colors, (0.0, 0.0, 0.0), (0.5, 0.4, 0.1))


def _zoom_box(routers) -> tuple[tuple[float, float], tuple[float, float]] | None:
    """Axis limits around the routers in the cheapest third of the cost range, if worth a panel."""
    if len(routers) < 4:
        return None
    costs = np.array([r["cost_mean"] for r in routers])
    perfs = np.array([r["perf_mean"] for r in routers])
    low, high = costs.min(), costs.max()
    inside = costs <= low + (high - low) / 3
    if inside.sum() < 4 or inside.all():
        return None
    x0, x1 = costs[inside].min(), costs[inside].max()
    y0, y1 = perfs[inside].min(), perfs[inside].max()
    dx, dy = max(x1 - x0, 1e-3) * 0.12, max(y1 - y0, 1e-3) * 0.15
    return (x0 - dx, x1 + dx), (y0 - dy, y1 + dy)


def _draw(ax, report, env, results, regimes, colour_of, hull, right) -> None:
    """Single models, the hull and every agent × regime point on one axes."""
    info = report["envs"].get(env)
    if info:
        singles = info["single_models"]
        middle = np.mean(
            [min(s["cost"] for s in singles.values()), max(s["cost"] for s in singles.values())]
        )
        for model, stats in singles.items():
            ax.scatter(stats["cost"], stats["perf"], marker="x", s=28, color="0.6", zorder=1)
            right_half = (
                stats["cost"] > middle
            )  # label leftwards there, so it stays inside the axes
            ax.annotate(
                model,
                (stats["cost"], stats["perf"]),
                fontsize=6.5,
                color="0.45",
                xytext=(-4 if right_half else 4, -9),
                textcoords="offset points",
                ha="right" if right_half else "left",
                annotation_clip=True,
            )
    if len(hull):
        xs = np.append(hull[:, 0], max(right, hull[-1, 0]))
        ys = np.append(hull[:, 1], hull[-1, 1])
        ax.plot(xs, ys, "--", color="0.25", linewidth=1.2, zorder=2)
    stacked: dict[tuple[float, float], list[str]] = {}
    for r in results:
        colour = colour_of[r["agent"]]
        # agents at the same point (e.g. two fixed rules picking one model) shrink on top of
        # each other, so every colour stays visible
        spot = (round(r["cost_mean"], 3), round(r["perf_mean"], 3))
        here = stacked.setdefault(spot, [])
        if r["agent"] not in here:
            here.append(r["agent"])
        depth = here.index(r["agent"])
        marker = (
            "*"
            if r["upper_bound"]
            else REGIME_MARKERS[regimes.index(r["regime"]) % len(REGIME_MARKERS)]
        )
        if r["n_seeds"] > 1:
            ax.errorbar(
                r["cost_mean"],
                r["perf_mean"],
                xerr=r["cost_std"],
                yerr=r["perf_std"],
                fmt="none",
                ecolor=colour,
                elinewidth=0.8,
                alpha=0.6,
                zorder=3,
            )
        size = (150 if r["upper_bound"] else 60) * 0.5**depth
        ax.scatter(
            r["cost_mean"],
            r["perf_mean"],
            marker=marker,
            s=size,
            color=colour,
            edgecolors="black" if r["pareto"] else "none",
            linewidths=1.1,
            zorder=4 + depth,
        )
    ax.set_xlabel("normalized cost (mean per query) ↓")
    ax.set_ylabel("performance (mean score) ↑")
    ax.grid(True, alpha=0.3)


def curve_plot(
    env: Mapping[str, Any], env_id: str, path: str | os.PathLike, seed: str | None = None
) -> Path:
    """Every router's curve over its cost knob, the single models as points and the Oracle.

    ``env`` is one env of ``routing_gym.bench.curves.write_curves``'s summary; the curves of
    ``seed`` (default: the first) are drawn. Left: normalized cost against perf (the dashed black
    line is the Oracle, an upper bound). Right: on a two-model pool RouteLLM's view, the share of
    calls to the strong model against perf (the two models as horizontal lines); otherwise a
    zoom on the cheapest third of the cost range, where the routers crowd.
    """
    curves = env["curves"]
    if not curves:
        raise ValueError(f"No curves for {env_id!r}.")
    two_model = env.get("strong") is not None
    fig, axes = plt.subplots(1, 2, figsize=(15.0, 5.8), dpi=110, squeeze=False)
    routers = [c for c in curves if c["name"] != "oracle"]
    colour_of = {c["name"]: PALETTE[i % len(PALETTE)] for i, c in enumerate(routers)}
    chosen = {
        c["name"]: c["points"][seed if seed in c["points"] else next(iter(c["points"]))]
        for c in curves
    }
    panels = [("cost", "normalized cost (mean per query) ↓")]
    if two_model:
        panels.append(("strong", f"share of calls to the strong model ({env['strong']})"))
    else:
        panels.append(("cost", "normalized cost (mean per query) ↓, the cheapest third"))
    for ax, (axis, xlabel) in zip(axes[0], panels):
        strong = env.get("strong")
        x_of = (lambda p: p["cost"]) if axis == "cost" else (lambda p, s=strong: p["share"][s])
        for curve in curves:
            points = sorted(chosen[curve["name"]], key=lambda p: (x_of(p), p["perf"]))
            xs, ys = [x_of(p) for p in points], [p["perf"] for p in points]
            if curve["name"] == "oracle":
                ax.plot(xs, ys, "--", color="black", linewidth=1.3, label=curve["label"], zorder=2)
                continue
            style = {"color": colour_of[curve["name"]], "label": curve["label"], "zorder": 3}
            if len(points) == 1 or "trained at each" in curve["knob"]:
                ax.plot(xs, ys, marker="D", markersize=6, linewidth=1.0, linestyle=":", **style)
            else:
                ax.plot(xs, ys, marker=".", markersize=3, linewidth=1.4, **style)
        for model, p in env["singles"].items():
            if axis == "cost":
                ax.scatter(p["cost"], p["perf"], marker="x", s=36, color="0.35", zorder=4)
                ax.annotate(
                    model,
                    (p["cost"], p["perf"]),
                    fontsize=6.5,
                    color="0.35",
                    xytext=(4, -9),
                    textcoords="offset points",
                    annotation_clip=True,
                )
            else:
                ax.axhline(p["perf"], color="0.5", linestyle=":", linewidth=1.0)
                ax.annotate(
                    model, (0.0, p["perf"]), fontsize=7, color="0.35", xytext=(2, 3),
                    textcoords="offset points",
                )
        ax.set_xlabel(xlabel)
        ax.set_ylabel("performance (mean score) ↑")
        ax.grid(True, alpha=0.3)
    if not two_model:  # the zoom: the routers' points in the cheapest third of the cost range
        costs = [p["cost"] for c in routers for p in chosen[c["name"]]]
        costs += [p["cost"] for p in env["singles"].values()]
        low, high = min(costs), max(costs)
        right = low + (high - low) / 3
        inside = [p["perf"] for c in routers for p in chosen[c["name"]] if p["cost"] <= right]
        if inside:
            margin = max(max(inside) - min(inside), 1e-3) * 0.08
            axes[0][1].set_xlim(low - (right - low) * 0.03, right)
            axes[0][1].set_ylim(min(inside) - margin, max(inside) + margin)
    axes[0][0].scatter([], [], marker="x", color="0.35", label="single models")
    axes[0][0].set_title(f"{env_id}: every router across its cost knob ({env['queries']} queries)")
    handles, labels = axes[0][0].get_legend_handles_labels()
    axes[0][-1].legend(
        handles, labels, loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=7.5, frameon=False
    )
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, bbox_inches="tight")  # "tight" keeps the legend outside the axes whole
    plt.close(fig)
    return path
