"""Routing metrics over (cost, performance) operating points: PGR, APGR/CPT, the hull, AIQ, Pareto set.

Every router is reduced to operating points ``(cost, perf)``: the mean normalized cost and
the mean performance of one evaluation (one λ regime, or one point of a swept curve). From them:

* **PGR** (performance gap recovered, RouteLLM, Ong et al. 2024):
  ``(perf − perf_weak) / (perf_strong − perf_weak)``, per point, with ``perf_weak`` the
  cheapest single model (lowest mean cost) and ``perf_strong`` the best single model (highest
  mean perf) on the same queries: 0 means no better than always calling the cheapest model, 1
  as good as always calling the best one; above 1 beats every single model.
* **Mean PGR**: the mean of the per-point PGR over an agent's λ regimes. It is *not*
  RouteLLM's APGR (below), which integrates over a whole threshold sweep; the two must not be
  put side by side.
* **APGR** and **CPT(x%)** (RouteLLM, two-model pools only): from a curve of (share of calls
  to the strong model, perf) points, exactly as RouteLLM's ``routellm/evals/evaluate.py``
  computes them (``apgr_metric`` and ``pct_call_metric``): see ``routellm_apgr`` and
  ``cost_to_performance``.
* **Non-decreasing convex hull** (RouterBench, Hu et al. 2024): the upper concave envelope
  of the non-dominated points. It is what one can reach by mixing routers at random between
  two points, and paying more never lowers it.
* **AIQ** (average improvement in quality, RouterBench): the area under that hull over a
  common cost range ``[low, high]``, divided by the range's width. Below the cheapest point
  nothing is affordable (the curve is 0); beyond the most accurate point the curve stays at
  its perf. RouterBench takes the range ``[0, max cost of the routers compared]``; so do the
  reports of ``routing_gym.bench``.
* **Pareto set**: the points no other point dominates (another point with cost <= and
  perf >=, one of them strictly).
"""

from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np


def _points(points: Iterable[Sequence[float]]) -> np.ndarray:
    array = np.asarray(list(points), dtype=np.float64).reshape(-1, 2)
    if not np.all(np.isfinite(array)):
        raise ValueError(f"points must be finite (cost, perf) pairs, got {array.tolist()}.")
    return array


def pgr(perf: float, perf_weak: float, perf_strong: float) -> float:
    """Performance gap recovered of one point: 0 at the weak model's perf, 1 at the strong one's."""
    gap = perf_strong - perf_weak
    if not np.isfinite(gap) or gap <= 0:
        raise ValueError(
            f"PGR needs perf_strong > perf_weak, got strong {perf_strong!r} and weak {perf_weak!r}."
        )
    return float((perf - perf_weak) / gap)


def mean_pgr(perfs: Iterable[float], perf_weak: float, perf_strong: float) -> float:
    """Mean PGR over an agent's operating points (e.g. one per λ regime); not RouteLLM's APGR."""
    values = [pgr(p, perf_weak, perf_strong) for p in perfs]
    if not values:
        raise ValueError("Mean PGR needs at least one point.")
    return float(np.mean(values))


def _strong_share_curve(
    strong_share: Iterable[float], perf: Iterable[float]
) -> tuple[np.ndarray, np.ndarray]:
    """The points sorted by strong share (stable: ties keep their sweep order), as arrays."""
    share = np.asarray(list(strong_share), dtype=np.float64)
    perf = np.asarray(list(perf), dtype=np.float64)
    if share.shape != perf.shape or share.ndim != 1 or len(share) < 2:
        raise ValueError(
            f"A strong-share curve needs at least two (share, perf) points of equal count, got "
            f"{share.size} shares and {perf.size} perfs."
        )
    if not (np.all(np.isfinite(share)) and np.all(np.isfinite(perf))):
        raise ValueError("A strong-share curve must hold finite numbers.")
    if share.min() < 0 or share.max() > 1:
        raise ValueError(f"Strong shares must lie in [0, 1], got {share.min()}..{share.max()}.")
    order = np.argsort(share, kind="stable")
    return share[order], perf[order]


def routellm_apgr(
    strong_share: Iterable[float], perf: Iterable[float], perf_weak: float, perf_strong: float
) -> float:
    """RouteLLM's APGR of a two-model curve: the mean PGR over the swept strong-call share.

    Computed as ``apgr_metric`` in lm-sys/RouteLLM ``routellm/evals/evaluate.py``: the points
    are sorted by strong share; AUC = ``trapz(perf, share)``; the weak and strong AUCs are the
    same trapezoid rule over constant curves at ``perf_weak`` and ``perf_strong``; APGR =
    (AUC − weak AUC) / (strong AUC − weak AUC). Over a sweep from 0 to 100% strong calls (what
    RouteLLM's thresholds produce) this is the area under the PGR curve; over a narrower sweep
    it is the mean PGR over the share range covered.
    """
    share, perf = _strong_share_curve(strong_share, perf)
    if not perf_strong > perf_weak:
        raise ValueError(
            f"APGR needs perf_strong > perf_weak, got strong {perf_strong!r} and weak {perf_weak!r}."
        )
    width = share[-1] - share[0]
    if width <= 0:
        raise ValueError("APGR needs points at two different strong shares.")
    auc = np.trapezoid(perf, share)
    weak_auc, strong_auc = perf_weak * width, perf_strong * width
    return float((auc - weak_auc) / (strong_auc - weak_auc))


def cost_to_performance(
    strong_share: Iterable[float],
    perf: Iterable[float],
    perf_weak: float,
    perf_strong: float,
    fraction: float,
) -> float:
    """RouteLLM's CPT(x%): the strong-call share at which the curve reaches ``fraction`` of the gap.

    Computed as ``pct_call_metric`` in lm-sys/RouteLLM ``routellm/evals/evaluate.py``:
    ``np.interp(perf_weak + fraction·(perf_strong − perf_weak), perf, share)`` with the points
    sorted by strong share. Like RouteLLM, it reads the curve as if perf rose with the share:
    below the first point's perf it returns the first share, above the last point's the last
    share. Returns a share in [0, 1] (RouteLLM prints it as a percentage).
    """
    share, perf = _strong_share_curve(strong_share, perf)
    if not 0 <= fraction <= 1:
        raise ValueError(f"fraction must be in [0, 1], got {fraction!r}.")
    target = perf_weak + fraction * (perf_strong - perf_weak)
    return float(np.interp(target, perf, share))


def gap_captured(value: float, best_single: float, oracle: float) -> float:
    """Share of the best-single-to-oracle gap a router closes: (value − best) / (oracle − best).

    0: no better than the best single model; 1: as good as the per-query oracle. ``value`` is
    the router's mean reward (perf at λ = 0) at some λ, and the references are at that λ.
    """
    gap = oracle - best_single
    if not np.isfinite(gap) or gap <= 0:
        raise ValueError(
            f"gap captured needs oracle > best single, got oracle {oracle!r} and best single "
            f"{best_single!r}."
        )
    return float((value - best_single) / gap)


def pareto_mask(points: Iterable[Sequence[float]]) -> np.ndarray:
    """Boolean mask of the non-dominated ``(cost, perf)`` points (lower cost, higher perf)."""
    p = _points(points)
    keep = np.ones(len(p), dtype=bool)
    for i, (cost, perf) in enumerate(p):
        no_worse = (p[:, 0] <= cost) & (p[:, 1] >= perf)
        better = (p[:, 0] < cost) | (p[:, 1] > perf)
        keep[i] = not np.any(no_worse & better)
    return keep


def nondecreasing_hull(points: Iterable[Sequence[float]]) -> np.ndarray:
    """Vertices ``(m, 2)`` of the non-decreasing upper convex hull, sorted by cost.

    Hand-written (Andrew's monotone chain on the Pareto points, a few lines) because
    ``scipy.spatial.ConvexHull`` rejects the fewer-than-three or collinear point sets that
    routers often produce (three λ regimes on one line, or one point).
    """
    p = _points(points)
    if not len(p):
        return p
    front = np.unique(p[pareto_mask(p)], axis=0)  # sorted by cost; perf rises with cost
    hull: list[np.ndarray] = []
    for point in front:
        # drop the last vertex while it lies on or under the chord from its predecessor to point
        while len(hull) >= 2:
            (x1, y1), (x2, y2) = hull[-2], hull[-1]
            cross = (x2 - x1) * (point[1] - y1) - (y2 - y1) * (point[0] - x1)
            if cross < 0:
                break
            hull.pop()
        hull.append(point)
    return np.array(hull)


def hull_value(hull: np.ndarray, cost: float | np.ndarray) -> np.ndarray:
    """The hull's perf at ``cost``: 0 below its cheapest vertex, flat after its last one."""
    cost = np.asarray(cost, dtype=np.float64)
    if not len(hull):
        return np.zeros_like(cost)
    value = np.interp(cost, hull[:, 0], hull[:, 1])  # flat beyond either end
    return np.where(cost < hull[0, 0], 0.0, value)


def aiq(points: Iterable[Sequence[float]], cost_range: tuple[float, float]) -> float:
    """Area under the non-decreasing hull over ``cost_range``, divided by the range's width."""
    low, high = (float(c) for c in cost_range)
    if not np.isfinite(low) or not np.isfinite(high) or high <= low:
        raise ValueError(f"cost_range must be (low, high) with low < high, got {cost_range!r}.")
    hull = nondecreasing_hull(points)
    if not len(hull):
        raise ValueError("AIQ needs at least one point.")
    # 0 below the cheapest vertex, then piecewise linear and continuous: trapezoids over the
    # breakpoints from there on are exact.
    start = max(low, float(hull[0, 0]))
    if start >= high:
        return 0.0
    inside = hull[(hull[:, 0] > start) & (hull[:, 0] < high), 0]
    xs = np.concatenate([[start], inside, [high]])
    ys = np.interp(xs, hull[:, 0], hull[:, 1])
    area = float(np.sum(0.5 * (ys[1:] + ys[:-1]) * np.diff(xs)))
    return float(area / (high - low))


def mean_std(values: Iterable[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof=1; 0.0 for a single value)."""
    array = np.asarray(list(values), dtype=np.float64)
    if not len(array):
        return float("nan"), float("nan")
    return float(array.mean()), float(array.std(ddof=1)) if len(array) > 1 else 0.0
