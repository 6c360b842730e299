"""The three-model HierRouter report by hand: the verdict on the claim, the seed spread, the
paired interval over queries of the seed-averaged outcomes, and the computed blocks."""

from __future__ import annotations

import json

import numpy as np
import pytest

from routing_gym import stats
from routing_gym.bench import published
from routing_gym.bench.hierrouter_report import (
    DID_NOT_HOLD,
    HELD,
    NOT_RESOLVED,
    claim_verdict,
    groups,
    report_table,
    verdict_table,
    verdicts,
)

N = 20
ZEROS, ONES = [0.0] * N, [1.0] * N


def test_claim_held_when_every_quality_margin_and_the_saving_exclude_zero():
    found = claim_verdict(ONES, [0.2] * N, {"small": ZEROS, "large": [0.0, 1.0] * (N // 2)}, [1.0] * N)
    assert found.verdict == HELD
    assert found.quality["small"].estimate == pytest.approx(1.0)
    assert found.quality["large"].estimate == pytest.approx(0.5)
    assert found.cost.estimate == pytest.approx(-0.8)
    assert "Δ quality vs large +0.500" in found.reason()


def test_claim_did_not_hold_when_equal_on_every_query_below_or_dearer():
    # the same answers as the large model on every query: not above it
    same = [0.0, 1.0] * (N // 2)
    assert claim_verdict(same, [0.2] * N, {"large": same}, [1.0] * N).verdict == DID_NOT_HOLD
    # below a single model on most queries
    below = [0.0] * (N - 2) + [1.0, 1.0]
    assert claim_verdict(below, [0.2] * N, {"large": ONES}, [1.0] * N).verdict == DID_NOT_HOLD
    # above in quality but dearer than the largest model
    assert claim_verdict(ONES, [1.5] * N, {"small": ZEROS}, [1.0] * N).verdict == DID_NOT_HOLD
    # exactly the largest model's cost on every query: not a fraction of it
    assert claim_verdict(ONES, [1.0] * N, {"small": ZEROS}, [1.0] * N).verdict == DID_NOT_HOLD


def test_claim_not_resolved_when_an_interval_straddles_zero_or_one_query():
    mixed = [1.0, 0.0, 1.0, 0.0, 1.0] + [0.5] * (N - 5)
    other = [0.0, 1.0, 0.0, 1.0, 0.0] + [0.5] * (N - 5)  # Δ: +1 −1 +1 −1 +1, then 0
    assert stats.paired_difference_interval(mixed, other).excludes_zero is False
    assert claim_verdict(mixed, [0.2] * N, {"small": other}, [1.0] * N).verdict == NOT_RESOLVED
    # above, but the saving is not resolved
    costs = [0.5, 1.5] * (N // 2)
    assert claim_verdict(ONES, costs, {"small": ZEROS}, [1.0] * N).verdict == NOT_RESOLVED
    # one query is no evidence either way
    assert claim_verdict([1.0], [0.1], {"small": [0.0]}, [1.0]).verdict == NOT_RESOLVED


def hand_result() -> dict:
    """Two tasks of four held-out queries; HierRouter twice (seeds 0 and 1)."""
    tasks = ["a"] * 4 + ["b"] * 4
    outcome = {
        "HierRouter (MaskablePPO) seed 0": ([1, 1, 1, 0, 1, 1, 1, 1], [0.2] * 8),
        "HierRouter (MaskablePPO) seed 1": ([1, 0, 0, 0, 1, 1, 1, 1], [0.4] * 8),
        "single small": ([0, 0, 0, 0, 1, 0, 1, 0], [0.1] * 8),
        "single large": ([1, 0, 1, 0, 1, 1, 1, 0], [1.0] * 8),
        "Oracle": ([1, 1, 1, 0, 1, 1, 1, 1], [0.1] * 8),
    }
    lam = 0.5
    methods = {
        name: {
            "quality": [float(q) for q in quality],
            "cost": cost,
            "reward": [q - lam * c for q, c in zip(quality, cost)],
        }
        for name, (quality, cost) in outcome.items()
    }
    groups = {"HierRouter (MaskablePPO)": list(outcome)[:2]}
    per_query = {"question_ids": [f"q{i}" for i in range(8)], "tasks": tasks, "methods": methods}
    return {
        "models": ["small", "large"],
        "largest_model": "large",
        "tasks": ["a", "b"],
        "best_single": {"0.5": "large"},
        "per_query": {"0.5": {**per_query, "groups": groups}},
    }


def test_groups_gather_the_seeds_and_leave_the_rest_alone():
    per_query = hand_result()["per_query"]["0.5"]
    found = groups(per_query)
    assert found["HierRouter (MaskablePPO)"] == [
        "HierRouter (MaskablePPO) seed 0",
        "HierRouter (MaskablePPO) seed 1",
    ]
    assert found["single small"] == ["single small"] and len(found) == 4


def test_report_table_spread_over_seeds_and_interval_over_seed_averaged_queries():
    result = hand_result()
    table = report_table(result, "0.5")
    row = next(line for line in table.splitlines() if line.startswith("| HierRouter"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    # quality: seed 0 mean 7/8, seed 1 mean 5/8 -> 0.75 ± std(ddof 1) = 0.177
    spread = stats.seed_spread([7 / 8, 5 / 8])
    assert (spread.mean, round(spread.std, 3)) == (0.75, 0.177)
    assert cells[:4] == ["HierRouter (MaskablePPO)", "8", "2", "0.750 ± 0.177"]
    assert cells[4] == "0.300 ± 0.141"  # costs 0.2 and 0.4
    averaged = np.mean([[1, 1, 1, 0, 1, 1, 1, 1], [1, 0, 0, 0, 1, 1, 1, 1]], axis=0)
    expected = stats.paired_difference_interval(averaged, [1, 0, 1, 0, 1, 1, 1, 0])
    assert cells[6] == stats.difference_cell(expected)
    assert "| single large | 8 | 1 | 0.625 | 1.000 |" in table and "reference" in table
    assert "(bound)" in next(line for line in table.splitlines() if line.startswith("| Oracle"))
    task_a = report_table(result, "0.5", "a")
    assert "task a: 4 held-out queries" in task_a and "| HierRouter (MaskablePPO) | 4 | 2 |" in task_a
    with pytest.raises(ValueError, match="no held-out query of task 'c'"):
        report_table(result, "0.5", "c")
    with pytest.raises(ValueError, match="no per-query outcomes at λ = 0.1"):
        report_table(result, "0.1")


def test_verdicts_per_task_and_overall_match_claim_verdict_by_hand():
    result = hand_result()
    found = verdicts(result)["0.5"]["HierRouter (MaskablePPO)"]
    assert set(found) == {"a", "b", "overall"}
    averaged = np.mean([[1, 1, 1, 0, 1, 1, 1, 1], [1, 0, 0, 0, 1, 1, 1, 1]], axis=0)
    by_hand = claim_verdict(
        averaged,
        [0.3] * 8,
        {"small": [0, 0, 0, 0, 1, 0, 1, 0], "large": [1, 0, 1, 0, 1, 1, 1, 0]},
        [1.0] * 8,
    )
    assert found["overall"] == by_hand
    table = verdict_table(result)
    assert table.count("| 0.5 | HierRouter (MaskablePPO) |") == 1
    assert f"**{by_hand.verdict}**" in table


def test_computed_blocks_render_the_report(tmp_path):
    (tmp_path / "result.json").write_text(json.dumps(hand_result()))
    page = tmp_path / "page.md"
    page.write_text(
        "<!-- computed: hierrouter_seeds result.json 0.5 -->\n<!-- end computed -->\n"
        "<!-- computed: hierrouter_seeds result.json 0.5 b -->\n<!-- end computed -->\n"
        "<!-- computed: hierrouter_verdict result.json -->\n<!-- end computed -->\n"
    )
    assert published.rewrite(page)
    text = page.read_text()
    assert report_table(hand_result(), "0.5") in text
    assert report_table(hand_result(), "0.5", "b") in text
    assert verdict_table(hand_result()) in text
    assert all(old == new for _, old, new in published.blocks(page))
