"""The one outcome matrix: validation, selection by name, and its constructors from each source."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import routing_gym  # noqa: F401  (registers the IDs)
from routing_gym.action_table import ActionTable
from routing_gym.cost import CostNormalizer
from routing_gym.errors import UnknownModelError
from routing_gym.hop_tree import TREE_FORMAT, HopTree, encode_vector
from routing_gym.outcomes import Outcomes


def three_by_two(**changes) -> Outcomes:
    fields = dict(
        models=("small", "large"),
        scores=[[0.0, 1.0], [1.0, 1.0], [0.5, 0.0]],
        costs=[[1.0, 4.0], [1.0, 4.0], [2.0, 8.0]],
        query_ids=("q0", "q1", "q2"),
        features=np.eye(3, dtype=np.float32),
        tasks=("a", "b", "a"),
    )
    fields.update(changes)
    return Outcomes(**fields)


# ---------------------------------------------------------------------------- validation


def test_default_arms_are_one_per_model_and_arrays_are_copied():
    scores = np.array([[0.0, 1.0], [1.0, 1.0], [0.5, 0.0]])
    data = three_by_two(scores=scores)
    scores[0, 0] = 0.9
    assert data.arms == ((0,), (1,))
    assert data.arm_models == (("small",), ("large",))
    assert data.scores[0, 0] == 0.0  # not an alias of the caller's array
    assert len(data) == 3 and data.num_arms == 2 and data.cost_unit == "usd"


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"costs": [[1.0, 4.0], [1.0, 4.0]]}, "costs (2, 2) and scores (3, 2) differ in shape"),
        ({"scores": [0.0, 1.0, 0.5]}, "scores must be a 2-D"),
        ({"scores": [[0.0, np.nan], [1.0, 1.0], [0.5, 0.0]]}, "scores has a NaN or infinite value at query 'q0', column 1"),
        ({"costs": [[1.0, 4.0], [1.0, np.inf], [2.0, 8.0]]}, "costs has a NaN or infinite value at query 'q1'"),
        ({"models": ("small", "small")}, "model name 'small' appears twice"),
        ({"query_ids": ("q0", "q0", "q2")}, "query id 'q0' appears twice"),
        ({"query_ids": ("q0", "q1")}, "2 query ids for 3 score rows"),
        ({"features": np.eye(2)}, "features (2, 2) must have n = 3 rows"),
        ({"tasks": ("a",)}, "1 task labels for 3 score rows"),
        ({"tokens": [[1.0, 2.0]]}, "tokens (1, 2) and scores (3, 2) differ in shape"),
        ({"arms": ((0,), (2,))}, "arm (2,) indexes outside the 2 models"),
        ({"arms": ((0,), (0,))}, "arm (0,) appears twice"),
        ({"arms": ((0,),)}, "1 arms for 2 score columns"),
        ({"cost_unit": "eur"}, "cost_unit must be one of"),
        ({"roles": ("student", "teacher")}, "one model per role"),
    ],
)
def test_bad_input_is_refused_in_one_line_naming_it(changes, message):
    with pytest.raises(ValueError) as caught:
        three_by_two(**changes)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_the_dataclass_is_frozen():
    with pytest.raises(AttributeError):
        three_by_two().models = ("x", "y")


# ---------------------------------------------------------------------------- selections


def test_select_models_matches_by_name_and_reorders_the_columns():
    data = three_by_two(tokens=[[10, 20], [11, 21], [12, 22]])
    swapped = data.select_models(["large", "small"])
    assert swapped.models == ("large", "small")
    assert swapped.arm_models == (("large",), ("small",))
    np.testing.assert_array_equal(swapped.scores[:, 0], data.scores[:, 1])
    np.testing.assert_array_equal(swapped.costs[:, 1], data.costs[:, 0])
    np.testing.assert_array_equal(swapped.tokens[:, 0], [20, 21, 22])
    only = data.select_models(["large"])
    assert only.models == ("large",) and only.scores.shape == (3, 1)
    np.testing.assert_array_equal(only.scores[:, 0], data.scores[:, 1])


def test_an_unknown_model_name_is_refused():
    data = three_by_two()
    with pytest.raises(UnknownModelError, match="Unknown model 'medium'"):
        data.select_models(["medium"])
    with pytest.raises(UnknownModelError, match="Unknown model 'medium'"):
        data.column("medium")
    assert data.column("large") == 1


def test_select_models_keeps_the_assignments_that_use_only_the_named_models():
    data = Outcomes(
        models=("a", "b", "c"),
        scores=[[0.1, 0.2, 0.3]],
        costs=[[1.0, 2.0, 3.0]],
        query_ids=("q",),
        arms=((0, 1), (2, 0), (1, 1)),
        roles=("student", "teacher"),
    )
    kept = data.select_models(["b", "a"])
    assert kept.arm_models == (("a", "b"), ("b", "b"))
    assert kept.arms == ((1, 0), (0, 0))  # indices into the new order ("b", "a")
    np.testing.assert_array_equal(kept.scores, [[0.1, 0.3]])
    assert kept.column("a", "b") == 0


def test_subset_and_select_queries_keep_every_per_query_field_aligned():
    data = three_by_two()
    picked = data.select_queries(["q2", "q0"])
    assert picked.query_ids == ("q2", "q0") and picked.tasks == ("a", "a")
    np.testing.assert_array_equal(picked.scores, data.scores[[2, 0]])
    np.testing.assert_array_equal(picked.features, data.features[[2, 0]])
    masked = data.subset(np.array([False, True, True]))
    assert masked.query_ids == ("q1", "q2")
    with pytest.raises(ValueError, match="no query 'q9'"):
        data.select_queries(["q9"])
    with pytest.raises(ValueError, match="out of range"):
        data.subset([3])


# ---------------------------------------------------------------------------- per-query values


def test_rewards_oracle_and_best_fixed_by_hand():
    data = three_by_two().normalized(CostNormalizer(0.0, 8.0))
    assert data.cost_unit == "normalized"
    np.testing.assert_allclose(data.costs, [[0.125, 0.5], [0.125, 0.5], [0.25, 1.0]])
    # λ = 1: rewards [[-0.125, 0.5], [0.875, 0.5], [0.25, -1.0]]
    np.testing.assert_allclose(data.rewards(1.0), [[-0.125, 0.5], [0.875, 0.5], [0.25, -1.0]])
    np.testing.assert_array_equal(data.oracle_arms(1.0), [1, 0, 0])
    assert data.best_fixed_arm(1.0) == 0  # means: small 1/3, large 0
    assert data.best_fixed_arm(0.0) == 1  # means: small 0.5, large 2/3
    # a tie in score goes to the cheaper arm
    assert data.oracle_arms(0.0)[1] == 0
    scores, costs = data.picked([1, 0, 0])
    np.testing.assert_allclose(scores, [1.0, 1.0, 0.5])
    np.testing.assert_allclose(costs, [0.5, 0.125, 0.25])
    with pytest.raises(ValueError, match="already normalized"):
        data.normalized(CostNormalizer(0.0, 8.0))
    with pytest.raises(ValueError, match="2 choices for 3 queries"):
        data.picked([0, 1])


# ---------------------------------------------------------------------------- constructors


def test_from_table_env_equals_the_envs_own_arrays():
    env = gym.make("LLMRouting-Table-v0", split="test")
    base = env.unwrapped
    usd = Outcomes.from_table_env(env, cost_unit="usd")
    data = Outcomes.from_table_env(env)
    assert usd.models == data.models == tuple(base.model_names)
    assert data.query_ids == tuple(base.query_ids) and data.tasks == tuple(base.query_tasks)
    np.testing.assert_array_equal(usd.costs, base.costs)
    np.testing.assert_allclose(data.costs, base.cost_normalizer(base.costs))
    np.testing.assert_array_equal(data.features, base.embeddings)  # default features: the embedding alone
    # the env's reward of one step is the matrix's reward of that (query, model)
    base.lam = 0.5
    obs, info = env.reset(seed=0)
    row = data.query_ids.index(info["query_id"])
    _, reward, *_ = env.step(3)
    assert reward == pytest.approx(data.rewards(0.5)[row, 3])
    with pytest.raises(ValueError, match="not an outcome-table env"):
        Outcomes.from_table_env(object())


def action_rows(models=("a", "b")) -> list[dict]:
    rows = []
    for q, base_perf in (("q1", 0.0), ("q0", 0.5)):
        for s, student in enumerate(models):
            for t, teacher in enumerate(models):
                rows.append({"question_id": q, "index": 0, "assignment": {"student": student, "teacher": teacher},
                             "perf": base_perf + 0.1 * s + 0.2 * t, "cost": 1.0 + s + 2 * t,
                             "prompt_tokens": 10 * (s + 1), "completion_tokens": t, "turns": []})
    return rows


def test_from_action_table_one_arm_per_assignment_by_name():
    table = ActionTable(action_rows())
    # models given in another order than the rows name them: matched by name
    data = Outcomes.from_action_table(table, ["b", "a"], question_ids=["q0", "q1", "absent"],
                                      features={"q0": [1.0, 0.0], "q1": [0.0, 1.0]})
    assert data.roles == ("student", "teacher") and data.query_ids == ("q0", "q1")
    assert data.arms == ((0, 0), (0, 1), (1, 0), (1, 1))
    student_a_teacher_b = data.column("a", "b")
    assert data.scores[0, student_a_teacher_b] == pytest.approx(0.5 + 0.2)
    assert data.costs[1, student_a_teacher_b] == pytest.approx(1.0 + 2.0)
    assert data.tokens[1, student_a_teacher_b] == 10 + 1
    np.testing.assert_array_equal(data.features, [[1.0, 0.0], [0.0, 1.0]])
    normalized = Outcomes.from_action_table(table, ["a", "b"], normalizer=CostNormalizer(1.0, 5.0))
    assert normalized.cost_unit == "normalized" and normalized.costs.max() == pytest.approx((4.0 - 1.0) / 4.0)


def test_from_action_table_refuses_an_unknown_model_and_an_unfinished_build():
    with pytest.raises(UnknownModelError, match="uses model 'b', which is not among"):
        Outcomes.from_action_table(ActionTable(action_rows()), ["a"])
    with pytest.raises(ValueError, match="has 3 of 4 assignments"):
        Outcomes.from_action_table(ActionTable(action_rows()[:-1]), ["a", "b"])
    with pytest.raises(ValueError, match="question 'q1' has no features"):
        Outcomes.from_action_table(ActionTable(action_rows()), ["a", "b"], features={"q0": [1.0]})


def hop_tree(models=("a", "b"), depth=2) -> HopTree:
    rows = []
    for q, shift in (("q0", 0.0), ("q1", 0.5)):
        nodes = [{"path": [], "context": encode_vector([shift, 1.0]), "cost": 0.0, "prompt_tokens": 0,
                  "completion_tokens": 0, "score": 0.0}]
        for length in range(1, depth + 1):
            for path in np.ndindex(*(len(models),) * length):
                nodes.append({"path": list(path), "context": encode_vector([shift, len(path)]),
                              "cost": float(sum(path)) + length, "prompt_tokens": 5 * length,
                              "completion_tokens": 1, "score": shift + 0.1 * path[-1]})
        rows.append({"question_id": q, "task": "math" if q == "q0" else "code", "index": 0, "nodes": nodes})
    return HopTree({"format": TREE_FORMAT, "depth": depth, "config": {"models": list(models)}}, rows)


def test_from_hop_tree_one_arm_per_path_with_the_root_context_as_features():
    data = Outcomes.from_hop_tree(hop_tree())
    assert data.arms == ((0,), (1,), (0, 0), (0, 1), (1, 0), (1, 1))
    assert data.tasks == ("math", "code")
    np.testing.assert_array_equal(data.features, [[0.0, 1.0], [0.5, 1.0]])
    path = data.arms.index((1, 0))
    assert data.scores[1, path] == pytest.approx(0.5)
    assert data.costs[0, path] == pytest.approx(3.0)
    assert data.tokens[0, path] == 11
    assert data.arm_models[path] == ("b", "a")
    one_hop = Outcomes.from_hop_tree(hop_tree(), lengths=[1])
    assert one_hop.arms == ((0,), (1,))
    with pytest.raises(ValueError, match="path length 3 outside 1..2"):
        Outcomes.from_hop_tree(hop_tree(), lengths=[3])
