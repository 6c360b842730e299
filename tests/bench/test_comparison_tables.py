"""Comparison tables: n, 95% intervals, paired differences and marks, on hand-checkable inputs."""

import pytest

from routing_gym.bench.comparison import (
    Metric,
    comparison_table,
    haps_comparison,
    multihop_comparison,
    multihop_counts,
    pool_quality_tables,
)

PERF = Metric("perf", "F1", compare=True)


def rows_of(table: str) -> dict[str, list[str]]:
    return {
        line.split(" | ")[0][2:]: [c.strip() for c in line.strip("| ").split(" | ")]
        for line in table.splitlines()[2:]
    }


def test_a_constant_gain_is_marked_and_a_tie_is_not():
    methods = {
        "ref": {"perf": [0.0, 0.5, 1.0, 0.5]},
        "up": {"perf": [0.1, 0.6, 1.1, 0.6]},  # +0.1 on every question
        "tie": {"perf": [0.0, 0.5, 1.0, 0.5]},
    }
    table = comparison_table(methods, [PERF], "ref")
    assert table.splitlines()[0] == "| method | n | F1 ↑ [95% CI] | Δ F1 vs ref [95% CI] |"
    rows = rows_of(table)
    assert rows["ref"] == ["ref", "4", rows["ref"][2], "reference"]
    assert rows["ref"][2].startswith("0.500 [")
    assert rows["up"][3] == "+0.100 [+0.100, +0.100] **beats**"
    assert rows["tie"][3] == "0.000 [0.000, 0.000] not resolved"


def test_a_lower_cost_beats_and_bounds_are_never_marked():
    cost = Metric("cost", "cost", higher_is_better=False, compare=True)
    methods = {
        "ref": {"cost": [0.5, 0.5, 0.5]},
        "cheap": {"cost": [0.2, 0.2, 0.2]},
        "Oracle": {"cost": [0.1, 0.1, 0.1]},
    }
    rows = rows_of(comparison_table(methods, [cost], "ref", bounds=["Oracle"]))
    assert rows["cheap"][3] == "-0.300 [-0.300, -0.300] **beats**"
    assert rows["Oracle"][3] == "-0.400 [-0.400, -0.400] (bound)"


def test_methods_over_other_questions_are_refused():
    with pytest.raises(ValueError, match="method 'b' has 2 questions, the reference 'a' 3"):
        comparison_table({"a": {"perf": [1, 0, 1]}, "b": {"perf": [1, 0]}}, [PERF], "a")
    with pytest.raises(ValueError, match="reference 'c' is not one of the methods"):
        comparison_table({"a": {"perf": [1]}}, [PERF], "c")


def haps_row(perf, cost, lam=0.5, **extra):
    ids = [f"q{i}" for i in range(len(perf))]
    return {
        "perf": sum(perf) / len(perf),
        "per_question": {
            "question_id": ids,
            "perf": perf,
            "normalized_cost": cost,
            "reward": [p - lam * c for p, c in zip(perf, cost)],
        },
        **extra,
    }


def test_haps_table_compares_every_row_with_the_best_fixed_assignment_on_train():
    table = {
        "Best fixed on train: a/b": haps_row([0.0, 1.0, 0.0, 1.0], [0.2] * 4),
        "Fixed a/b": haps_row([0.0, 1.0, 0.0, 1.0], [0.2] * 4),
        "HAPS": haps_row([1.0, 1.0, 1.0, 1.0], [0.2] * 4, assignments={"a/b": 4}),
    }
    text = haps_comparison(0.5, table)
    assert text.startswith("Valid questions: 4, λ = 0.5")
    rows = rows_of(text.split("\n\n", 1)[1])
    # HAPS: +0.5 F1 on the mean but 0 on two questions and +1 on two: the paired interval
    # of the differences [1, 0, 1, 0] is [0, 1] and does not exclude 0
    assert rows["HAPS"][5].startswith("+0.500 [") and rows["HAPS"][5].endswith("not resolved")
    assert rows["HAPS"][7] == "a/b 4"
    assert rows["Best fixed on train: a/b"][5] == "reference"
    assert rows["Fixed a/b"][5] == "0.000 [0.000, 0.000] not resolved"


def test_haps_table_needs_per_question_values():
    with pytest.raises(ValueError, match=r"rows \['Old'\] have no per-question values"):
        haps_comparison(0.5, {"Old": {"perf": 0.1}})


def test_multihop_table_reads_the_per_query_outcomes():
    result = {
        "best_two_hop": {"0.5": "m -> m"},
        "per_query": {
            "0.5": {
                "question_ids": ["a", "b"],
                "tasks": ["gsm8k", "mbpp"],
                "methods": {
                    "HierRouter (MaskablePPO)": {
                        "quality": [1.0, 1.0],
                        "cost": [0.1, 0.1],
                        "reward": [0.95, 0.95],
                    },
                    "best two-hop": {
                        "quality": [0.0, 1.0],
                        "cost": [0.3, 0.3],
                        "reward": [-0.15, 0.85],
                    },
                },
            }
        },
    }
    text = multihop_comparison(result, "0.5")
    assert (
        "2 held-out queries; reference = the best fixed two-hop pipeline on the train queries (m -> m)"
        in text
    )
    rows = rows_of(text.split("\n\n", 1)[1])
    assert rows["HierRouter (MaskablePPO)"][1] == "2"
    # Δ reward: +1.1 and +0.1: mean +0.6; Δ quality [1, 0]
    assert rows["HierRouter (MaskablePPO)"][5].startswith("+0.500 [")
    assert rows["HierRouter (MaskablePPO)"][6].startswith("+0.600 [")
    with pytest.raises(ValueError, match="no per-query outcomes at λ = 1.0"):
        multihop_comparison(result, "1.0")


def test_multihop_counts_give_the_smallest_possible_mcnemar_p():
    n = 10
    result = {
        "heldout_queries": n,
        "best_two_hop": {"0.5": "m -> m"},
        "results": {
            "0.5": {
                "best two-hop": {"overall": {"quality": 0.2, "cost": 0.3, "reward": 0.05}},
                "close": {"overall": {"quality": 0.3, "cost": 0.1, "reward": 0.25}},
                "far": {"overall": {"quality": 0.9, "cost": 0.1, "reward": 0.85}},
                "Random": {"overall": {"quality": 0.4, "cost": 0.2, "reward": 0.3}},
            }
        },
    }
    rows = rows_of(multihop_counts(result, "0.5").split("\n\n", 1)[1])
    # "close": 3 correct against 2, net +1: p >= 2 · 0.5^1 = 1
    assert rows["close"][3:7] == ["3", "+1", "1", "not resolved"]
    # "far": net +7: p could be as small as 2 · 0.5^7 = 0.015625: undecided without the pairs
    assert rows["far"][3:7] == ["9", "+7", "0.0156", "needs the per-query outcomes"]
    assert rows["Random"][2] == "0.400 (an expectation)"


def test_pool_quality_tables_add_mcnemar_on_zero_one_tasks():
    rows = [
        {"id": str(i), "task": "t", "small": s, "big": b}
        for i, (s, b) in enumerate([("1", "1"), ("0", "1"), ("0", "1"), ("0", "0")])
    ]
    text = pool_quality_tables(rows, ["small", "big"], "big")
    assert text.startswith("**t** (4 questions)")
    table = rows_of(text.split("\n\n", 1)[1])
    # small alone right 0 times, big alone 2: p = 2 · 0.5^2 = 0.5
    assert table["small"][4] == "0.5 (0 / 2)"
    assert table["small"][3].startswith("-0.500 [")
