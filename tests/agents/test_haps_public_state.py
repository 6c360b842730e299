"""HAPS's training, rollout and checkpoint modules reach the agent only through public names,
and those names keep the state the agent's private fields hold (no model is loaded here)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from agents.haps import HAPSAgent, HAPSConfig

HAPS = Path(__file__).resolve().parents[2] / "agents" / "haps"


def private_agent_reads(path: Path) -> list[str]:
    """``agent._name`` attribute uses in ``path``, as ``file:line agent._name``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [
        f"{path.name}:{node.lineno} agent.{node.attr}"
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and node.attr.startswith("_")
        and not node.attr.startswith("__")
        and isinstance(node.value, ast.Name)
        and node.value.id == "agent"
    ]


@pytest.mark.parametrize("module", sorted(p.name for p in HAPS.glob("*.py") if p.name != "agent.py"))
def test_haps_modules_use_only_the_agents_public_names(module):
    assert private_agent_reads(HAPS / module) == []


def test_the_check_sees_a_private_read(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text("def f(agent):\n    return agent._steps['joint']\n")
    assert private_agent_reads(sample) == ["sample.py:2 agent._steps"]


def test_logged_steps_are_a_copy_and_a_resume_sets_the_phases_it_names():
    agent = HAPSAgent(HAPSConfig())
    agent.log("joint", {})
    agent.log("joint", {})
    steps = agent.logged_steps
    assert steps == {"warmup": 0, "joint": 2}
    steps["joint"] = 99  # a copy: the agent's count is unchanged
    assert agent.logged_steps["joint"] == 2
    agent.logged_steps = {"joint": 7}
    assert agent.logged_steps == {"warmup": 0, "joint": 7}


def test_an_env_is_seeded_on_its_first_play_only():
    agent = HAPSAgent(HAPSConfig())
    env, other = object(), object()
    assert agent.record_play(env) is True
    assert agent.record_play(env) is False
    assert agent.record_play(other) is True


def test_reseeded_sampling_repeats_its_assignments():
    agent = HAPSAgent(HAPSConfig(router="random"))
    agent.arms = [(0, 0), (0, 1), (1, 0), (1, 1)]

    def draws() -> list[int]:
        return [agent.choose_arm(None, deterministic=False) for _ in range(20)]

    agent.reseed_sampling(0, 1, 5)
    first = draws()
    agent.reseed_sampling(0, 1, 5)
    assert draws() == first
    agent.reseed_sampling(0, 1, 6)
    assert draws() != first

