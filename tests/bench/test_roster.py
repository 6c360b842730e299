"""The roster's data-built keys read an Outcomes by model name."""

from __future__ import annotations

from routing_gym.bench.roster import build_agent, strongest_model
from routing_gym.outcomes import Outcomes


def test_strongest_model_of_a_one_pick_table_is_named():
    data = Outcomes(models=("cheap", "strong"), scores=[[0.2, 0.9], [0.4, 0.7]], costs=[[1, 5], [1, 5]],
                    query_ids=("a", "b"))
    assert strongest_model(data) == {"model": "strong"}
    assert strongest_model(data.select_models(["strong", "cheap"])) == {"model": "strong"}
    assert build_agent("fixed-strongest", 0, data=data).config.model == "strong"


def test_strongest_model_of_an_assignment_table_names_each_role():
    data = Outcomes(models=("a", "b"), scores=[[0.1, 0.8, 0.3, 0.2]], costs=[[1, 2, 3, 4]], query_ids=("q",),
                    arms=((0, 0), (0, 1), (1, 0), (1, 1)), roles=("student", "teacher"))
    assert strongest_model(data) == {"assignment": {"student": "a", "teacher": "b"}}
