"""The feature-gap table against shares worked out by hand."""

from __future__ import annotations

import pytest

from routing_gym.bench.feature_gap import feature_gap_table


def summary() -> dict:
    # 20 queries; best single 0 and Oracle 1 on each: a share is the router's mean reward.
    # kNN on the embedding gets 1 on 4 queries (share 0.2), with the features on 10 (0.5);
    # the per-task best gets 1 on 12 (0.6).
    def ones(k):
        return [1.0] * k + [0.0] * (20 - k)

    rewards = {"best single": [0.0] * 20, "oracle": [1.0] * 20, "kNN [embedding]": ones(4),
               "kNN [embedding+task+length]": ones(10), "Per-task best from train [task]": ones(12)}
    return {
        "methods": {
            "kNN [embedding]": {"router": "kNN", "features": "embedding", "setting": {"k": 20}},
            "kNN [embedding+task+length]": {"router": "kNN", "features": "embedding+task+length",
                                            "setting": {"k": 40}},
            "Per-task best from train [task]": {"router": "Per-task best from train", "features": "task"},
        },
        "test": {"by_lam": {"0": {"lam": 0.0, "best_single": "m1", "rewards": rewards}}},
    }


def test_shares_and_paired_differences_by_hand():
    text = feature_gap_table(summary(), "0")
    assert "n = 20 test queries" in text and "Best single model (on test): m1" in text
    assert "| kNN | embedding | k=20 | 0.200 [" in text
    assert "| kNN | embedding+task+length | k=40 | 0.500 [" in text
    assert "| Per-task best from train | task | — | 0.600 [" in text
    assert "| kNN (embedding+task+length) | +0.300 [" in text  # 0.5 − 0.2, paired
    assert "| kNN (embedding) | -0.400 [" in text  # 0.2 − 0.6 against the per-task best


def test_an_unknown_lambda_key_is_named():
    with pytest.raises(ValueError, match="no results at λ key 'balanced'"):
        feature_gap_table(summary(), "balanced")
