"""Roles as data: an env says who takes turns, and the action tables and agents read it from there."""

from __future__ import annotations

import json
from pathlib import Path

import gymnasium as gym
import pytest

import routing_gym  # noqa: F401
from agents import FixedRouter
from routing_gym.action_table import ROW_FIELDS, ActionTable
from routing_gym.errors import DataFormatError

FIXTURES = Path(__file__).resolve().parents[1] / "data" / "fixtures"
TINY = {"models": ["tiny-llama", "tiny-qwen2"], "data_dir": str(FIXTURES), "cache_mode": "off"}


def test_each_live_env_says_its_roles_in_action_order():
    assert gym.make("LLMRouting-HotpotQA-Assign-v0", config=TINY).unwrapped.roles == ("student", "teacher")
    assert gym.make("LLMRouting-MMLU-v0", config={**TINY, "split": "dev"}).unwrapped.roles == ("student", "teacher")
    assert gym.make("LLMRouting-MultiHop-v0", config=TINY).unwrapped.roles == ("solver",)


def test_an_action_table_takes_its_roles_from_its_rows(tmp_path):
    row = {"question_id": "q", "assignment": {"student": "a", "teacher": "b"}, "perf": 1.0, "cost": 0.0,
           "prompt_tokens": 1, "completion_tokens": 1}
    assert ActionTable([row]).roles == ("student", "teacher")
    path = tmp_path / "t.jsonl"
    full = {**{f: 0 for f in ROW_FIELDS}, **row}
    other = {**full, "assignment": {"student": "a", "solver": "b"}}
    path.write_text(json.dumps(full) + "\n" + json.dumps(other) + "\n")
    with pytest.raises(DataFormatError, match="assignment must map \\['student', 'teacher'\\]"):
        ActionTable.load(path)


def test_a_fixed_assignment_must_name_the_env_roles():
    env = gym.make("LLMRouting-HotpotQA-Assign-v0", config=TINY)
    with pytest.raises(ValueError, match="must map the env's roles \\['student', 'teacher'\\]"):
        FixedRouter(assignment={"student": "tiny-llama", "solver": "tiny-qwen2"}).fit_env(env)
    agent = FixedRouter(assignment={"teacher": "tiny-llama", "student": "tiny-qwen2"}).fit_env(env)
    assert agent.arms[agent.arm] == (1, 0)  # student first, as the env's roles say
