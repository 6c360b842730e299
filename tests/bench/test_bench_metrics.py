"""PGR, RouteLLM's APGR and CPT, the non-decreasing hull, AIQ and the Pareto set against
hand-computed cases."""

import numpy as np
import pytest

from routing_gym.bench.metrics import (
    aiq,
    cost_to_performance,
    hull_value,
    mean_pgr,
    mean_std,
    nondecreasing_hull,
    pareto_mask,
    pgr,
    routellm_apgr,
)


def test_pgr_is_zero_at_the_weak_model_and_one_at_the_strong_model():
    # weak 0.5, strong 0.7: the gap is 0.2
    assert pgr(0.5, 0.5, 0.7) == pytest.approx(0.0)
    assert pgr(0.7, 0.5, 0.7) == pytest.approx(1.0)
    assert pgr(0.6, 0.5, 0.7) == pytest.approx(0.5)  # (0.6 − 0.5) / 0.2
    assert pgr(0.4, 0.5, 0.7) == pytest.approx(-0.5)  # worse than the weak model
    assert pgr(0.8, 0.5, 0.7) == pytest.approx(1.5)  # better than the strong model


def test_mean_pgr_averages_the_per_point_pgr():
    # points at perf 0.55, 0.6, 0.75 with weak 0.5, strong 0.7 -> PGR 0.25, 0.5, 1.25; mean 2/3
    assert mean_pgr([0.55, 0.6, 0.75], 0.5, 0.7) == pytest.approx((0.25 + 0.5 + 1.25) / 3)


def test_pgr_rejects_a_strong_model_no_better_than_the_weak_one():
    with pytest.raises(ValueError, match="perf_strong > perf_weak"):
        pgr(0.5, 0.6, 0.6)
    with pytest.raises(ValueError, match="at least one point"):
        mean_pgr([], 0.5, 0.7)


# A two-model curve worked by hand: weak perf 0.4, strong perf 0.8 (gap 0.4), five points given
# out of order (the metrics sort them by strong share, as RouteLLM does):
#   share 0.0 0.25 0.5 0.75 1.0
#   perf  0.4 0.6  0.7 0.75 0.8
CURVE_SHARE = [0.5, 0.0, 1.0, 0.25, 0.75]
CURVE_PERF = [0.7, 0.4, 0.8, 0.6, 0.75]


def test_routellm_apgr_is_the_trapezoid_area_over_the_gap():
    # AUC = 0.25 × [(0.4+0.6)/2 + (0.6+0.7)/2 + (0.7+0.75)/2 + (0.75+0.8)/2]
    #     = 0.25 × (0.5 + 0.65 + 0.725 + 0.775) = 0.6625
    # weak AUC = 0.4 × 1 = 0.4, strong AUC = 0.8 × 1 = 0.8 -> APGR = 0.2625 / 0.4 = 0.65625
    assert routellm_apgr(CURVE_SHARE, CURVE_PERF, 0.4, 0.8) == pytest.approx(0.65625)
    # a router no better than mixing the two at random scores 0.5 (the diagonal)
    assert routellm_apgr([0, 0.5, 1], [0.4, 0.6, 0.8], 0.4, 0.8) == pytest.approx(0.5)
    # over a partial sweep (shares 0.25..0.75) it is the mean PGR over that range:
    # AUC = 0.25 × (0.65 + 0.725) = 0.34375; weak 0.4 × 0.5 = 0.2; strong 0.8 × 0.5 = 0.4
    partial = routellm_apgr([0.25, 0.5, 0.75], [0.6, 0.7, 0.75], 0.4, 0.8)
    assert partial == pytest.approx((0.34375 - 0.2) / 0.2)


def test_cpt_interpolates_the_share_that_recovers_a_fraction_of_the_gap():
    # 50%: target perf 0.6 -> share 0.25 exactly (a point)
    assert cost_to_performance(CURVE_SHARE, CURVE_PERF, 0.4, 0.8, 0.5) == pytest.approx(0.25)
    # 80%: target 0.72, between (0.5, 0.7) and (0.75, 0.75): 0.5 + 0.25 × 0.02/0.05 = 0.6
    assert cost_to_performance(CURVE_SHARE, CURVE_PERF, 0.4, 0.8, 0.8) == pytest.approx(0.6)
    # 20%: target 0.48, between (0, 0.4) and (0.25, 0.6): 0.25 × 0.08/0.2 = 0.1
    assert cost_to_performance(CURVE_SHARE, CURVE_PERF, 0.4, 0.8, 0.2) == pytest.approx(0.1)
    # a target the curve never reaches reads the last share, as np.interp does in RouteLLM
    assert cost_to_performance([0, 1], [0.4, 0.7], 0.4, 0.8, 1.0) == pytest.approx(1.0)


def test_routellm_metrics_reject_bad_curves():
    with pytest.raises(ValueError, match="perf_strong > perf_weak"):
        routellm_apgr([0, 1], [0.5, 0.6], 0.6, 0.6)
    with pytest.raises(ValueError, match="two different strong shares"):
        routellm_apgr([0.5, 0.5], [0.5, 0.6], 0.4, 0.8)
    with pytest.raises(ValueError, match="at least two"):
        cost_to_performance([0.5], [0.6], 0.4, 0.8, 0.5)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        routellm_apgr([0, 1.5], [0.5, 0.6], 0.4, 0.8)


def test_pareto_mask_keeps_only_non_dominated_points():
    points = [
        (0.1, 0.5),  # cheapest: kept
        (0.2, 0.7),  # kept
        (0.3, 0.6),  # dominated by (0.2, 0.7): dearer and worse
        (0.2, 0.65),  # dominated by (0.2, 0.7): same cost, worse
        (0.5, 0.8),  # best perf: kept
        (0.6, 0.8),  # dominated by (0.5, 0.8): same perf, dearer
    ]
    assert pareto_mask(points).tolist() == [True, True, False, False, True, False]
    # two identical points do not dominate each other
    assert pareto_mask([(0.1, 0.5), (0.1, 0.5)]).tolist() == [True, True]


def test_hull_drops_points_under_the_chord_and_dominated_points():
    # Pareto front: (0, 0.2), (0.5, 0.4), (1, 0.9), (2, 1.0). The chord from (0, 0.2) to (1, 0.9)
    # has 0.55 at cost 0.5 > 0.4, so (0.5, 0.4) is not a hull vertex; (1.5, 0.5) is dominated.
    points = [(0.0, 0.2), (0.5, 0.4), (1.0, 0.9), (2.0, 1.0), (1.5, 0.5)]
    hull = nondecreasing_hull(points)
    assert hull.tolist() == [[0.0, 0.2], [1.0, 0.9], [2.0, 1.0]]
    # a concave front keeps every point; collinear middle points are dropped
    assert len(nondecreasing_hull([(0, 0), (1, 0.6), (2, 1.0)])) == 3
    assert nondecreasing_hull([(0, 0), (1, 0.5), (2, 1.0)]).tolist() == [[0, 0], [2, 1.0]]
    assert nondecreasing_hull([(0.3, 0.4)]).tolist() == [[0.3, 0.4]]


def test_hull_value_is_zero_below_the_cheapest_point_and_flat_after_the_best():
    hull = np.array([[0.2, 0.5], [0.6, 0.9]])
    assert hull_value(hull, [0.1, 0.2, 0.4, 0.6, 1.0]).tolist() == pytest.approx(
        [0.0, 0.5, 0.7, 0.9, 0.9]
    )


def test_aiq_of_one_point_counts_from_its_cost_on():
    # one point (0.25, 0.8) over [0, 1]: 0 on [0, 0.25), 0.8 on [0.25, 1] -> 0.8 × 0.75 = 0.6
    assert aiq([(0.25, 0.8)], (0.0, 1.0)) == pytest.approx(0.6)


def test_aiq_integrates_the_hull_exactly():
    # hull (0.2, 0.4) -> (0.6, 0.8), then flat 0.8, over [0, 1]:
    #   [0, 0.2): 0;  [0.2, 0.6]: trapezoid (0.4 + 0.8)/2 × 0.4 = 0.24;  [0.6, 1]: 0.8 × 0.4 = 0.32
    #   area 0.56 over a width of 1 -> 0.56. The dominated (0.7, 0.5) changes nothing.
    assert aiq([(0.2, 0.4), (0.6, 0.8), (0.7, 0.5)], (0.0, 1.0)) == pytest.approx(0.56)
    # over [0, 0.6]: 0.24 / 0.6 = 0.4
    assert aiq([(0.2, 0.4), (0.6, 0.8)], (0.0, 0.6)) == pytest.approx(0.4)
    # a range starting inside the hull: [0.4, 1]: perf 0.6 at 0.4, so (0.6 + 0.8)/2 × 0.2 = 0.14,
    # plus 0.32, over a width of 0.6 -> 0.46 / 0.6
    assert aiq([(0.2, 0.4), (0.6, 0.8)], (0.4, 1.0)) == pytest.approx(0.46 / 0.6)


def test_aiq_rejects_an_empty_range():
    with pytest.raises(ValueError, match="cost_range"):
        aiq([(0.1, 0.5)], (0.5, 0.5))


def test_mean_std_uses_the_sample_std_and_zero_for_one_value():
    mean, std = mean_std([0.5, 0.7])
    assert mean == pytest.approx(0.6)
    assert std == pytest.approx(np.sqrt(0.02))  # ((0.1)² + (0.1)²) / (2 − 1) = 0.02
    assert mean_std([0.4]) == (0.4, 0.0)
