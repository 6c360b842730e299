"""Every routing env rejects the same bad actions the same way, naming the action space, and
refuses a render mode it cannot serve when it is made."""

from __future__ import annotations

import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import routing_gym  # noqa: F401
from routing_gym.envs.validation import require_action

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_live_envs import tiny_config  # noqa: E402

BAD_ACTIONS = [2.5, "1", True, np.True_, np.float32(1.7), float("nan"), None, "gemma-2-9b-it", 1.0]


@pytest.mark.parametrize(
    "env_id", ["LLMRouting-Table-GSM8K-v0", "LLMRouting-Table-Cascade-GSM8K-v0"]
)
@pytest.mark.parametrize("action", BAD_ACTIONS, ids=repr)
def test_table_envs_reject_non_integer_actions_naming_the_space(env_id, action):
    env = gym.make(env_id)
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"outside the action space Discrete\(1?\d\)"):
        env.step(action)
    # nothing ran: the episode is still open and a valid action still works
    _, _, _, _, info = env.step(np.int64(1))
    assert info["model"] == env.unwrapped.models[1]


def test_table_env_accepts_python_and_numpy_integers():
    env = gym.make("LLMRouting-Table-GSM8K-v0")
    for action in (3, np.int64(3), np.int32(3), np.array(3)):
        env.reset(seed=0, options={"index": 0})
        assert env.step(action)[-1]["model"] == env.unwrapped.models[3]


def test_live_env_rejects_the_same_actions_the_same_way(tmp_path):
    env = gym.make("LLMRouting-HotpotQA-v0", config=tiny_config("LLMRouting-HotpotQA-v0", tmp_path))
    try:
        env.reset(seed=0)
        for action in BAD_ACTIONS:
            with pytest.raises(ValueError, match=r"outside the action space Discrete\(2\)"):
                env.step(action)
    finally:
        env.close()


def test_assignment_actions_reject_booleans_and_floats():
    space = gym.spaces.MultiDiscrete([2, 2])
    require_action(space, np.array([1, 0]))
    for action in (np.array([True, False]), [True, 0], np.array([1.0, 0.0]), [1, 2], [1]):
        with pytest.raises(ValueError, match=r"outside the action space MultiDiscrete"):
            require_action(space, action)


def test_render_mode_human_is_refused_at_construction(tmp_path):
    with pytest.raises(ValueError, match="render_mode='human'"):
        gym.make("LLMRouting-Table-v0", render_mode="human")
    with pytest.raises(ValueError, match="render_mode='human'"):
        gym.make("LLMRouting-Table-Cascade-GSM8K-v0", render_mode="human")
    config = tiny_config("LLMRouting-MMLU-v0", tmp_path)
    with pytest.raises(ValueError, match="render_mode='human'"):
        gym.make("LLMRouting-MMLU-v0", config=config, render_mode="human")
    # SB3's make_vec_env asks for "rgb_array": tolerated, render() then returns None
    env = gym.make("LLMRouting-Table-GSM8K-v0", render_mode="rgb_array")
    env.reset(seed=0)
    assert env.unwrapped.render() is None
