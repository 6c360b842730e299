"""The router contract and registry: lazy entry points, one training entry, describe()."""

import subprocess
import sys
import textwrap

import gymnasium as gym
import pytest

import routing_gym  # noqa: F401
from routing_gym.bench.roster import build_agent, entry
from routing_gym.routers import (
    ROUTER_ENTRY_POINTS,
    TRAINING_KINDS,
    RouterDescription,
    TrainingRun,
    load_entry_point,
    load_router_class,
    register_router,
    router_names,
)

ENV = "LLMRouting-Table-GSM8K-v0"


def test_importing_the_bench_and_the_cli_imports_no_agent():
    code = (
        "import sys, routing_gym.bench, routing_gym.cli, routing_gym.evaluation; "
        "print(sorted(m for m in sys.modules if m == 'agents' or m.startswith('agents.')))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize("name", router_names())
def test_every_registered_router_meets_the_contract(name):
    cls = load_router_class(name)
    assert cls.name == name
    assert cls.training in TRAINING_KINDS
    assert cls.checkpoint_suffix in (".pt", ".zip", "")
    assert callable(cls.learn) and callable(cls.predict) and callable(cls.load)
    keys = cls.config_keys()
    assert "lam" in keys or "total_timesteps" in keys  # a real config, read without probing
    description = cls().describe()
    assert isinstance(description, RouterDescription)
    assert (description.name, description.training) == (name, cls.training)
    assert set(description.config) == set(keys)


def test_a_router_of_ones_own_plugs_in_by_entry_point(tmp_path, monkeypatch):
    (tmp_path / "my_routers.py").write_text(
        textwrap.dedent(
            '''
            from agents.fixed import FixedRouter


            class CheapestRouter(FixedRouter):
                """Always the cheapest model."""

                name = "cheapest-of-mine"

                def __init__(self, config=None, **overrides):
                    super().__init__(config, **{"rule": "cheapest", **overrides})
            '''
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    spec = entry("my_routers:CheapestRouter")
    assert spec.training == "once" and spec.label == "CheapestRouter"
    agent = build_agent("my_routers:CheapestRouter", seed=0)
    train = gym.make(ENV, split="train")
    agent.learn(TrainingRun(ENV, env=train))
    assert agent.describe().detail in train.unwrapped.model_names
    monkeypatch.setitem(ROUTER_ENTRY_POINTS, "cheapest-of-mine", "")  # removed again after the test
    register_router("cheapest-of-mine", "my_routers:CheapestRouter")
    assert load_router_class("cheapest-of-mine") is type(agent)


def test_an_unknown_router_is_named_with_the_known_ones():
    with pytest.raises(ValueError, match="'nope'.*knn"):
        entry("nope")
    with pytest.raises(ValueError, match="package.module:Class"):
        register_router("bad", "no_colon_here")


def test_a_foreign_package_under_the_same_name_is_named_in_the_error(tmp_path, monkeypatch):
    (tmp_path / "someagents").mkdir()
    (tmp_path / "someagents" / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ImportError) as error:
        load_entry_point("someagents.knn_router:KNNRouter")
    message = str(error.value)
    assert "someagents.knn_router:KNNRouter" in message
    assert str(tmp_path / "someagents") in message and "another installed package" in message
