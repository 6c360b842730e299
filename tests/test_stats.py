"""routing_gym.stats against hand-computed cases."""

import numpy as np
import pytest

from routing_gym import stats


def test_mcnemar_exact_matches_the_binomial_computed_by_hand():
    a = [1, 1, 1, 1, 0, 0, 1, 0]
    b = [0, 0, 0, 0, 0, 1, 1, 0]
    # discordant: a alone right on 4 questions, b alone on 1; under the null X ~ Bin(5, 1/2):
    # p = P(X >= 4) + P(X <= 1) = (C(5,4) + C(5,5) + C(5,0) + C(5,1)) / 2^5 = 12/32 = 0.375
    result = stats.mcnemar_exact(a, b)
    assert (result.only_a, result.only_b, result.discordant, result.n) == (4, 1, 5, 8)
    assert result.pvalue == pytest.approx(0.375, abs=1e-12)


def test_mcnemar_exact_one_sided_discordance():
    # 6 discordant pairs all one way: p = 2 · (1/2)^6 = 1/32
    a = [1] * 6 + [0] * 4
    b = [0] * 6 + [0] * 4
    assert stats.mcnemar_exact(a, b).pvalue == pytest.approx(1 / 32, abs=1e-12)


def test_mcnemar_without_discordant_pairs_has_p_one():
    result = stats.mcnemar_exact([1, 0, 1], [1, 0, 1])
    assert result.discordant == 0 and result.pvalue == 1.0


def test_mcnemar_refuses_scores_that_are_not_zero_or_one():
    with pytest.raises(ValueError, match=r"0/1 outcomes; b holds 0.5"):
        stats.mcnemar_exact([1, 0], [1, 0.5])


def test_a_constant_sample_has_a_zero_width_interval_without_warnings():
    with np.testing.assert_no_warnings():
        interval = stats.mean_interval([0.25] * 30)
    assert (interval.estimate, interval.low, interval.high, interval.n) == (0.25, 0.25, 0.25, 30)
    assert interval.width == 0.0


def test_one_question_gives_a_zero_width_interval_that_calls_nothing():
    interval = stats.mean_interval([0.7])
    assert (interval.low, interval.high, interval.n) == (0.7, 0.7, 1)
    assert not interval.excludes_zero
    assert stats.verdict(interval) == "not resolved"


def test_identical_methods_differ_by_exactly_zero_and_are_not_resolved():
    values = [0.1, 0.9, 0.4, 0.0]
    difference = stats.paired_difference_interval(values, values)
    assert (difference.estimate, difference.low, difference.high) == (0.0, 0.0, 0.0)
    assert stats.verdict(difference) == "not resolved"


def test_a_constant_gain_on_every_question_is_resolved():
    b = np.array([0.1, 0.5, 0.3, 0.2])
    difference = stats.paired_difference_interval(b + 0.25, b)
    assert difference.estimate == pytest.approx(0.25)
    assert difference.low == pytest.approx(0.25) and difference.high == pytest.approx(0.25)
    assert stats.verdict(difference) == "resolved"


def test_interval_of_a_large_normal_sample_covers_the_mean_with_the_textbook_width():
    sample = np.random.default_rng(123).normal(loc=2.0, scale=1.0, size=2000)
    interval = stats.mean_interval(sample)
    assert interval.low < 2.0 < interval.high
    # 2 · 1.96 · σ / √n = 3.92 / √2000 = 0.0877
    assert interval.width == pytest.approx(3.92 / np.sqrt(2000), rel=0.1)
    assert interval.estimate == pytest.approx(sample.mean())


def test_pairing_removes_the_spread_shared_by_both_methods():
    rng = np.random.default_rng(7)
    b = rng.uniform(0, 1, size=200)
    a = b + 0.05 + rng.normal(0, 0.01, size=200)
    paired = stats.paired_difference_interval(a, b)
    # the differences have sd 0.01: width ≈ 3.92 · 0.01 / √200 = 0.0028
    assert paired.low < 0.05 < paired.high
    assert paired.width == pytest.approx(3.92 * 0.01 / np.sqrt(200), rel=0.2)
    # the unpaired spread of either mean is about 0.29 / √200 · 3.92 = 0.08: far wider
    assert stats.mean_interval(a).width > 10 * paired.width
    assert stats.verdict(paired) == "resolved"


def test_a_difference_of_one_question_in_fifty_is_not_resolved():
    b = np.zeros(50)
    a = b.copy()
    a[0] = 1.0  # one more question right: +0.02
    difference = stats.paired_difference_interval(a, b)
    assert difference.estimate == pytest.approx(0.02)
    assert difference.low <= 0.0 <= difference.high
    assert stats.verdict(difference) == "not resolved"


def test_the_same_seed_gives_the_same_interval():
    sample = np.random.default_rng(0).uniform(size=40)
    assert stats.mean_interval(sample, rng=5) == stats.mean_interval(sample, rng=5)


def test_seed_spread_is_the_mean_and_sample_std():
    spread = stats.seed_spread([0.1, 0.2, 0.3])
    assert spread.mean == pytest.approx(0.2) and spread.std == pytest.approx(0.1)
    assert spread.n_seeds == 3
    assert spread.format() == "0.200 ± 0.100 (3 seeds)"
    one = stats.seed_spread([0.4])
    assert (one.std, one.n_seeds, one.format()) == (0.0, 1, "0.400 (1 seed)")


def test_interval_text_and_difference_cells():
    assert stats.Interval(0.1234, 0.1, 0.15, 50).format() == "0.123 [0.100, 0.150]"
    gain = stats.Interval(0.05, 0.01, 0.09, 50)
    loss = stats.Interval(-0.05, -0.09, -0.01, 50)
    tie = stats.Interval(0.002, -0.0001, 0.004, 50)
    assert stats.difference_cell(gain) == "+0.050 [+0.010, +0.090] **beats**"
    assert stats.difference_cell(loss) == "-0.050 [-0.090, -0.010] below"
    assert stats.difference_cell(tie) == "+0.002 [0.000, +0.004] not resolved"
    # for a cost, lower is better
    assert stats.difference_cell(loss, higher_is_better=False).endswith("**beats**")


def test_resolved_best_names_a_method_only_when_it_beats_every_other():
    base = np.random.default_rng(1).uniform(size=100)
    clear = {"a": base + 0.2, "b": base, "c": base + 0.1}
    assert stats.resolved_best(clear) == "a"
    assert stats.resolved_best(clear, higher_is_better=False) == "b"
    close = {"a": base, "b": base.copy()}
    close["b"][0] += 0.01  # best by one hundredth of one question
    assert stats.resolved_best(close) is None
    assert stats.resolved_best({"a": base}) is None


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: stats.mean_interval([]), "values is empty"),
        (lambda: stats.mean_interval([0.1, float("nan")]), "non-finite value"),
        (
            lambda: stats.paired_difference_interval([1, 2], [1]),
            "same questions: 2 values against 1",
        ),
        (lambda: stats.mean_interval([1, 2], level=95), "level must be in"),
    ],
)
def test_bad_input_names_what_is_wrong(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_gap_captured_interval_estimate_by_hand_and_paired_difference():
    from routing_gym.stats import gap_captured_interval

    # best single 0.5 everywhere, oracle 1.0: a gap of 0.5 per question; the router gains
    # 0.25 on half the questions and 0 on the rest: mean gain 0.125, share 0.125 / 0.5 = 0.25
    best = np.full(40, 0.5)
    oracle = np.ones(40)
    router = np.where(np.arange(40) % 2 == 0, 0.75, 0.5)
    share = gap_captured_interval(router, best, oracle)
    assert share.estimate == pytest.approx(0.25) and share.n == 40
    assert share.low < 0.25 < share.high and share.excludes_zero
    # against itself the difference is exactly 0 and calls nothing
    same = gap_captured_interval(router, best, oracle, baseline=router)
    assert (same.estimate, same.low, same.high) == (0.0, 0.0, 0.0) and not same.excludes_zero
    # against the best single model the difference is the share itself
    assert gap_captured_interval(router, best, oracle, baseline=best).estimate == pytest.approx(0.25)
    with pytest.raises(ValueError, match="oracle above the best single"):
        gap_captured_interval(router, best, best)
    with pytest.raises(ValueError, match="same questions"):
        gap_captured_interval(router[:10], best, oracle)
