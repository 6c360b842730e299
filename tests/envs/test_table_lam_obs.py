"""λ in the observation and λ drawn per episode: the options behind one policy for every λ."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import routing_gym

routing_gym.register_envs()
IDS = ["LLMRouting-Table-v0", "LLMRouting-Table-Cascade-v0"]


@pytest.mark.parametrize("env_id", IDS)
def test_lam_in_obs_envs_pass_both_checkers(env_id):
    env = gym.make(env_id, lam_in_obs=True, lam_range=[0.0, 2.0]).unwrapped
    check_env(env, skip_render_check=True)
    sb3_check_env(env, warn=True)
    assert env.observation_space["lam"] == gym.spaces.Box(0.0, 1.0, (1,), np.float32)


def test_lam_entry_is_lam_over_one_plus_lam_and_the_reward_uses_that_lam():
    env = gym.make("LLMRouting-Table-v0", lam_in_obs=True, lam=3.0)
    obs, _ = env.reset(seed=0)
    assert isinstance(obs, dict) and set(obs) == {"embedding", "lam"}
    assert obs["lam"][0] == pytest.approx(0.75)  # 3 / (1 + 3)
    _, reward, _, _, info = env.step(0)
    assert info["lam"] == 3.0
    assert reward == pytest.approx(info["perf"] - 3.0 * info["normalized_cost"])


def test_without_the_option_the_observation_is_the_plain_embedding():
    env = gym.make("LLMRouting-Table-v0")
    obs, _ = env.reset(seed=0)
    assert isinstance(env.observation_space, gym.spaces.Box) and obs.shape == (384,)


@pytest.mark.parametrize("env_id", IDS)
def test_lam_range_draws_a_new_seeded_lam_every_episode(env_id):
    def lams(seed):
        env = gym.make(env_id, lam_in_obs=True, lam_range=[0.2, 1.5])
        out = []
        obs, _ = env.reset(seed=seed)
        for _ in range(6):
            lam = env.unwrapped.lam
            assert obs["lam"][0] == pytest.approx(lam / (1 + lam))
            done = False
            while not done:  # the cascade stops at once: its last action is STOP
                obs, _, done, _, info = env.step(env.action_space.n - 1)
            assert info["lam"] == lam  # the reward of the episode used the drawn λ
            out.append(lam)
            obs, _ = env.reset()
        return out

    first, again, other = lams(7), lams(7), lams(8)
    assert first == again  # seeded: the same λ sequence
    assert first != other
    assert len(set(first)) == 6 and all(0.2 <= lam <= 1.5 for lam in first)


def test_bad_lam_options_name_the_key():
    with pytest.raises(ValueError, match="'lam_range'"):
        gym.make("LLMRouting-Table-v0", lam_range=[1.0, 0.5])
    with pytest.raises(ValueError, match="'lam_range'"):
        gym.make("LLMRouting-Table-v0", lam_range=[0.0, float("nan")])
    with pytest.raises(ValueError, match="'lam_in_obs'"):
        gym.make("LLMRouting-Table-v0", lam_in_obs="yes")
    env = gym.make("LLMRouting-Table-v0", lam_in_obs=True)
    with pytest.raises(ValueError, match="'lam_in_obs' fixes the spaces"):
        env.reset(options={"config": {"lam_in_obs": False}})
