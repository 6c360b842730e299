"""The live envs' Gymnasium vector env: one batch per step, the same episodes as single envs,
and stable-baselines3 training on it."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import data_equivalence

import routing_gym  # noqa: F401
from routing_gym.envs.registration import ENV_IDS, env_ids_of
from routing_gym.vector import BatchedRoutingVecEnv, MultiHopVectorEnv, RoutingVectorEnv
from test_multihop_env import tiny_config

LIVE_IDS = [
    env_id
    for entry in ("hotpotqa:HotpotQAEnv", "mmlu:MMLUEnv", "multihop:MultiHopEnv")
    for env_id in env_ids_of(f"routing_gym.envs.{entry}")
]


def test_every_live_id_has_a_vector_entry_point_and_no_table_id_does():
    for env_id in ENV_IDS:
        entry = gym.spec(env_id).vector_entry_point
        assert (entry is not None) == (env_id in LIVE_IDS), env_id
    assert len(LIVE_IDS) == 6 + 7


def test_make_vec_steps_like_single_envs_with_one_model_call_per_step(tmp_path, monkeypatch):
    env_id = "LLMRouting-MultiHop-GSM8K-v0"
    config = tiny_config(tmp_path, horizon=2)
    vec = gym.make_vec(env_id, num_envs=3, vectorization_mode="vector_entry_point", config=config)
    assert isinstance(vec, MultiHopVectorEnv) and vec.num_envs == 3
    assert vec.single_action_space == gym.spaces.Discrete(3)
    calls = []
    pool = vec.envs[0].pool
    generate = type(pool).generate
    monkeypatch.setattr(type(pool), "generate", lambda self, reqs: calls.append(len(reqs)) or generate(self, reqs))
    singles = [gym.make(env_id, config=config) for _ in range(3)]
    obs, _ = vec.reset(seed=10)
    single_obs = [env.reset(seed=10 + i)[0] for i, env in enumerate(singles)]
    for i in range(3):
        assert data_equivalence({k: v[i] for k, v in obs.items()}, single_obs[i], exact=True)
    # step 0: every env answers; step 1: env 0 reaches the horizon, envs 1 and 2 stop; step 2: new episodes
    plan = [[0, 1, 1], [1, 2, 2], [0, 0, 0]]
    for step, actions in enumerate(plan):
        calls.clear()
        obs, rewards, terminated, truncated, infos = vec.step(np.array(actions))
        models = sum(a != 2 for a in actions)
        assert calls == ([models] if models else [])  # every model call of the step in one batch
        for i, env in enumerate(singles):
            s_obs, s_reward, s_term, s_trunc, s_info = env.step(actions[i])
            assert rewards[i] == s_reward and terminated[i] == s_term and truncated[i] == s_trunc
            if s_term:  # the vector env starts the next episode in the same step
                assert infos["_final_info"][i]
                assert infos["final_info"]["cost"][i] == s_info["cost"]
                assert infos["final_info"]["models"][i] == s_info["models"]
                assert data_equivalence(infos["final_obs"][i], s_obs, exact=True)
                s_obs, _ = env.reset()
            assert data_equivalence({k: v[i] for k, v in obs.items()}, s_obs, exact=True)
    vec.close()
    for env in singles:
        env.close()


def test_a_wrong_number_of_actions_is_refused(tmp_path):
    vec = gym.make_vec("LLMRouting-MultiHop-ARC-v0", num_envs=2, vectorization_mode="vector_entry_point",
                       config=tiny_config(tmp_path))
    vec.reset(seed=0)
    with pytest.raises(ValueError, match="one action per env"):
        vec.step([0, 1, 0])
    with pytest.raises(ValueError, match="num_envs"):
        MultiHopVectorEnv(num_envs=0, config=tiny_config(tmp_path))
    vec.close()


def test_sb3_sees_the_finished_episode_and_ppo_trains_on_the_vector_env(tmp_path):
    from stable_baselines3 import PPO

    vector = gym.make_vec("LLMRouting-MultiHop-GSM8K-v0", num_envs=2, vectorization_mode="vector_entry_point",
                          config=tiny_config(tmp_path, horizon=2, max_new_tokens=4))
    assert isinstance(vector, RoutingVectorEnv)
    vec = BatchedRoutingVecEnv(vector)
    vec.seed(0)
    obs = vec.reset()
    assert obs["depth"].tolist() == [[0.0], [0.0]]
    vec.step(np.array([0, 1]))
    obs, rewards, dones, infos = vec.step(np.array([1, 1]))  # the horizon of 2 ends both
    assert dones.tolist() == [True, True]
    for i, info in enumerate(infos):
        assert info["terminal_observation"]["depth"].tolist() == [1.0]  # the finished episode's last obs
        assert info["models"] == [["tiny-llama", "tiny-qwen2"][j] for j in ([0, 1] if i == 0 else [1, 1])]
        assert info["episode"]["l"] == 2 and info["episode"]["r"] == pytest.approx(rewards[i], abs=1e-6)
        assert not info["TimeLimit.truncated"]
    assert obs["depth"].tolist() == [[0.0], [0.0]]  # each env already asks its next query
    model = PPO("MultiInputPolicy", vec, n_steps=8, batch_size=16, n_epochs=1, seed=0)
    model.learn(total_timesteps=16)
    assert model.num_timesteps == 16
    assert len(model.ep_info_buffer) > 0 and all(1 <= ep["l"] <= 2 for ep in model.ep_info_buffer)
    vec.close()
