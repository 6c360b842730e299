"""PGR, APGR, CPT, the hull, AIQ and the Pareto set on small curves worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from routing_gym.bench.metrics import (
    aiq,
    cost_to_performance,
    gap_captured,
    hull_value,
    mean_pgr,
    mean_std,
    nondecreasing_hull,
    pareto_mask,
    pgr,
    routellm_apgr,
)

# A two-model curve: strong share 0, 0.5, 1 with perf 0.2, 0.5, 0.6; weak 0.2, strong 0.6.
SHARES, PERFS, WEAK, STRONG = [0.0, 0.5, 1.0], [0.2, 0.5, 0.6], 0.2, 0.6


def test_pgr_and_its_mean_by_hand():
    assert pgr(0.5, WEAK, STRONG) == pytest.approx(0.75)  # (0.5 - 0.2) / 0.4
    assert pgr(0.7, WEAK, STRONG) == pytest.approx(1.25)  # beyond the strong model
    assert mean_pgr([0.2, 0.6, 0.4], WEAK, STRONG) == pytest.approx(0.5)  # mean(0, 1, 0.5)
    assert gap_captured(0.7, 0.6, 0.8) == pytest.approx(0.5)  # (0.7 - 0.6) / 0.2
    with pytest.raises(ValueError, match="perf_strong > perf_weak"):
        pgr(0.5, 0.6, 0.6)


def test_apgr_by_the_trapezoid_rule():
    # AUC = 0.5·(0.2 + 0.5)/2 + 0.5·(0.5 + 0.6)/2 = 0.175 + 0.275 = 0.45
    # weak AUC 0.2·1, strong AUC 0.6·1: APGR = (0.45 - 0.2) / (0.6 - 0.2) = 0.625
    assert routellm_apgr(SHARES, PERFS, WEAK, STRONG) == pytest.approx(0.625)
    # the points are sorted by share first
    assert routellm_apgr([1.0, 0.0, 0.5], [0.6, 0.2, 0.5], WEAK, STRONG) == pytest.approx(0.625)
    # a sweep over [0.25, 0.75] only: AUC 0.5·(0.3 + 0.5)/2 = 0.2; weak 0.1, strong 0.3 -> 0.5
    assert routellm_apgr([0.25, 0.75], [0.3, 0.5], WEAK, STRONG) == pytest.approx(0.5)


@pytest.mark.parametrize(
    "fraction, share",
    [
        (0.5, 1 / 3),  # target 0.4: 2/3 of the way from perf 0.2 to 0.5, share 0 + 2/3·0.5
        (0.8, 0.6),  # target 0.52: 0.2 of the way from 0.5 to 0.6, share 0.5 + 0.2·0.5
        (0.0, 0.0),
        (1.0, 1.0),
    ],
)
def test_cpt_interpolates_the_share_by_hand(fraction, share):
    assert cost_to_performance(SHARES, PERFS, WEAK, STRONG, fraction) == pytest.approx(share)


# Points (cost, perf): A, B, a copy of B, C under B, F under the chord B-E, E.
POINTS = [(0.1, 0.3), (0.2, 0.5), (0.2, 0.5), (0.3, 0.4), (0.4, 0.6), (0.5, 0.9)]


def test_pareto_mask_by_hand():
    # C (0.3, 0.4) costs more than B for less; F (0.4, 0.6) is not dominated (cheaper than E,
    # better than B); equal points do not dominate each other
    assert pareto_mask(POINTS).tolist() == [True, True, True, False, True, True]


def test_hull_drops_points_under_a_chord():
    # slopes: A->B 2, B->F 0.5, F->E 3: F is under the chord B->E (slope 4/3, 0.7667 at 0.4)
    hull = nondecreasing_hull(POINTS)
    np.testing.assert_allclose(hull, [[0.1, 0.3], [0.2, 0.5], [0.5, 0.9]])
    # 0 below the cheapest vertex, on the chord between, flat after the last vertex
    np.testing.assert_allclose(hull_value(hull, [0.05, 0.15, 0.35, 0.7]), [0.0, 0.4, 0.7, 0.9])


def test_aiq_is_the_hull_area_over_the_range_width():
    # over [0, 0.6]: 0 on [0, 0.1]; 0.1·(0.3 + 0.5)/2 = 0.04; 0.3·(0.5 + 0.9)/2 = 0.21;
    # 0.1·0.9 = 0.09 after the last vertex; total 0.34 / 0.6 = 17/30
    assert aiq(POINTS, (0.0, 0.6)) == pytest.approx(17 / 30)
    # over [0.15, 0.3]: hull 0.4 at 0.15, 0.5 at 0.2, 0.5 + 0.1·4/3 at 0.3:
    # 0.05·(0.4 + 0.5)/2 + 0.1·(0.5 + 0.6333)/2 = 0.0225 + 0.056667 = 0.079167; / 0.15 = 19/36
    assert aiq(POINTS, (0.15, 0.3)) == pytest.approx(19 / 36)
    # nothing is affordable below the cheapest point
    assert aiq(POINTS, (0.0, 0.05)) == 0.0
    with pytest.raises(ValueError, match="low < high"):
        aiq(POINTS, (0.3, 0.3))


def test_mean_std_uses_the_sample_deviation():
    # mean 2.5; squared deviations 2.25 + 0.25 + 0.25 + 2.25 = 5; / (4 - 1) -> sqrt(5/3)
    mean, std = mean_std([1, 2, 3, 4])
    assert mean == 2.5 and std == pytest.approx(math.sqrt(5 / 3))
    assert mean_std([7.0]) == (7.0, 0.0)


def test_bad_curves_and_ranges_are_refused():
    with pytest.raises(ValueError, match="equal count"):
        routellm_apgr([0.0, 1.0], [0.2], WEAK, STRONG)  # two shares, one perf
    with pytest.raises(ValueError, match="finite"):
        routellm_apgr([0.0, 1.0], [0.2, float("nan")], WEAK, STRONG)
    with pytest.raises(ValueError, match="fraction"):
        cost_to_performance(SHARES, PERFS, WEAK, STRONG, 1.5)
    with pytest.raises(ValueError, match="low < high"):
        aiq(POINTS, (float("nan"), 0.6))
    for oracle in (0.6, float("nan")):  # no gap, or no number
        with pytest.raises(ValueError, match="oracle > best single"):
            gap_captured(0.7, 0.6, oracle)


def test_empty_inputs_give_zero_curves_and_nan_statistics():
    assert hull_value(np.empty((0, 2)), [0.1, 0.2]).tolist() == [0.0, 0.0]
    mean, std = mean_std([])
    assert math.isnan(mean) and math.isnan(std)
