"""The HAPS claims renderer on a hand-made summary: verdicts, seed spreads, the computed block."""

from __future__ import annotations

import json

import pytest

from routing_gym.bench import published
from routing_gym.bench.claims import (
    HELD,
    NOT_HELD,
    NOT_RESOLVED,
    NOT_RUN,
    claim_verdict,
    claims_table,
    find_group,
    plot_learning_curves,
    verdicts,
)
from routing_gym.stats import Interval


def test_a_claim_holds_only_where_every_interval_lies_above_zero():
    above, below = Interval(0.1, 0.05, 0.2, 100), Interval(-0.1, -0.2, -0.05, 100)
    straddles = Interval(0.02, -0.01, 0.05, 100)
    assert claim_verdict([above, above]) == HELD
    assert claim_verdict([above, straddles]) == NOT_RESOLVED
    assert claim_verdict([above, below]) == NOT_HELD
    assert claim_verdict([straddles, below]) == NOT_HELD
    assert claim_verdict([]) == NOT_RUN


def values(reward, perf=None):
    return {"perf": perf or reward, "normalized_cost": [0.5] * len(reward), "reward": reward}


def seed(reward, better=0, worse=0):
    return {
        **values(reward),
        "vs_table": {"better": better, "worse": worse, "same": 4 - better - worse},
        "curve": {"train": [[1, 0.1], [2, 0.3]], "stop": [[2, 0.2]]},
        "episodes_per_update": 4,
    }


SUMMARY = {
    "format": "routing_gym.haps_claims/1",
    "groups": [
        {
            "task": "mmlu",
            "pool": "lq",
            "regime": "balanced",
            "lam": 0.5,
            "metric": "accuracy",
            "question_ids": ["q1", "q2", "q3", "q4"],
            "best_fixed": "a/b",
            "seeds_planned": 2,
            "baselines": {
                "Random (expectation over the assignments)": values([0.1] * 4),
                "Fixed a/a": values([0.0, 0.2, 0.0, 0.2]),
                "Fixed a/b": values([0.1, 0.3, 0.1, 0.3]),
                "Oracle (hindsight upper bound)": values([1.0] * 4),
            },
            "variants": {
                # per question, the mean over the two seeds is 0.6
                "HAPS": {"0": seed([0.5] * 4, better=1), "1": seed([0.7] * 4, worse=2)},
                "HAPS without LoRA": {"0": seed([0.6] * 4), "1": seed([0.6] * 4)},
            },
        }
    ],
}


def test_the_table_gives_seed_spreads_paired_differences_and_verdicts(tmp_path):
    group = find_group(SUMMARY, "mmlu", "lq", "balanced")
    # HAPS − Random is 0.5 on every question, − Fixed a/a and a/b 0.4–0.6 and 0.3–0.5: all above 0;
    # HAPS − without LoRA is 0 on every question; without sharing has no run
    assert verdicts(group) == {"1": HELD, "2": NOT_RESOLVED, "3": NOT_RUN}
    text = claims_table(group)
    assert "| HAPS | 2 | 0.600 ± 0.141 | 0.500 ± 0.000 | 0.600 ± 0.141 |" in text
    haps = next(line for line in text.splitlines() if line.startswith("| HAPS |"))
    # vs best fixed a/b: the mean of 0.5, 0.3, 0.5, 0.3; vs without LoRA: 0 on every question
    # (perf is the reward here, so each Δ appears for both)
    assert haps.endswith(
        "| +0.400 [+0.300, +0.500] resolved " * 2 + "| 0.000 [0.000, 0.000] not resolved " * 2 + "|"
    )
    assert "- HAPS: seed 0: 1 / 0 / 3; seed 1: 0 / 2 / 2" in text
    assert "Claim 3 (sharing the backbone between the two levels helps): **not run yet**" in text
    assert "| Oracle (hindsight upper bound) | 1 | 1.000 | 0.500 | 1.000 |" in text
    with pytest.raises(ValueError, match="no group mmlu/mixed/balanced"):
        find_group(SUMMARY, "mmlu", "mixed", "balanced")
    assert plot_learning_curves(group, tmp_path / "curve.png").stat().st_size > 0


def test_the_computed_block_is_rewritten_from_the_summary(tmp_path):
    (tmp_path / "claims.json").write_text(json.dumps(SUMMARY))
    page = tmp_path / "page.md"
    page.write_text(
        "# Claims\n\n<!-- computed: haps_claims claims.json mmlu lq balanced -->\nold\n"
        "<!-- end computed -->\n"
    )
    assert published.rewrite(page)
    assert claims_table(SUMMARY["groups"][0]) in page.read_text()
    assert all(old == new for _, old, new in published.blocks(page))


def test_the_table_states_the_sizes_the_runs_ran_at():
    group = find_group(SUMMARY, "mmlu", "lq", "balanced")
    assert "Models" not in claims_table(group).splitlines()[0]
    sized = {
        **group,
        "sizes": {"train": 48, "stop": 16, "report": 100, "models": ["a", "b"], "closed": ["b"]},
    }
    heading = claims_table(sized).splitlines()[0]
    assert heading.endswith(
        "Models a, b (b closed); 48 train and 16 early-stopping questions, 100 reported planned."
    )
