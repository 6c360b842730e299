"""λ in the observation and λ drawn per episode: the options behind one policy for every λ."""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from scipy import stats
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import routing_gym

routing_gym.register_envs()
IDS = ["LLMRouting-Table-v0", "LLMRouting-Table-Cascade-v0"]


@pytest.mark.parametrize("env_id", IDS)
def test_lam_in_obs_envs_pass_both_checkers(env_id):
    env = gym.make(env_id, lam_in_obs=True, lam_range=[0.0, 2.0]).unwrapped
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env, skip_render_check=True)
        sb3_check_env(env, warn=True)
    assert [str(w.message) for w in caught] == []  # a checker's warning is a failure here
    assert env.observation_space["lam"] == gym.spaces.Box(0.0, 1.0, (1,), np.float32)


def test_lam_entry_is_lam_over_one_plus_lam_and_the_reward_uses_that_lam():
    env = gym.make("LLMRouting-Table-v0", lam_in_obs=True, lam=3.0)
    obs, _ = env.reset(seed=0)
    assert isinstance(obs, dict) and set(obs) == {"embedding", "lam"}
    assert obs["lam"][0] == pytest.approx(0.75)  # 3 / (1 + 3)
    _, reward, _, _, info = env.step(0)
    assert info["lam"] == 3.0
    costs = env.unwrapped.costs  # the train split: low = its cheapest call, high = its 0.99 quantile
    low, high = costs.min(), np.quantile(costs, 0.99)
    assert reward == pytest.approx(info["perf"] - 3.0 * min(1.0, (info["cost"] - low) / (high - low)))


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


# ---------------------------------------------------------------- how lam_range draws λ


def write_break_even_table(path) -> str:
    """Two clusters of queries on a two-model table where the right share at each λ is known.

    The strong model scores 1 everywhere and costs 1 (normalized), the weak one costs 0 and
    scores 0.7 on cluster A, 0.9 on cluster B: the strong model is the better call on A for
    λ < 0.3 and on B for λ < 0.1, so the right strong share is 100% below λ = 0.1, 50%
    between 0.1 and 0.3, and 0% above.
    """
    rows = ["id,split,embedding,weak,strong,weak|cost,strong|cost"]
    for i in range(40):
        vector = "[1.0, 0.0]" if i % 2 == 0 else "[0.0, 1.0]"
        rows.append(f'q{i},train,"{vector}",{0.7 if i % 2 == 0 else 0.9},1.0,1e-06,1e-05')
    path.write_text("\n".join(rows) + "\n")
    return str(path)


def drawn_lams(table: str, sampling: str, episodes: int = 4000) -> np.ndarray:
    env = gym.make(
        "LLMRouting-Table-v0",
        table=table,
        lam_in_obs=True,
        lam_range=[0.0, 2.0],
        lam_sampling=sampling,
    )
    lams, obs = [], []
    env.reset(seed=3)
    for _ in range(episodes):
        observation, _ = env.reset()
        lams.append(env.unwrapped.lam)
        obs.append(float(observation["lam"][0]))
    assert np.allclose(obs, np.asarray(lams) / (1 + np.asarray(lams)), atol=1e-6)
    return np.asarray(lams)


def test_break_even_table_rewards_match_the_known_right_choice(tmp_path):
    table = write_break_even_table(tmp_path / "pair.csv")
    env = gym.make("LLMRouting-Table-v0", table=table, lam_in_obs=True, shuffle=False)
    assert np.allclose(env.unwrapped.normalized_costs, [[0.0, 1.0]] * 40)
    for lam, right in ((0.05, (1, 1)), (0.2, (1, 0)), (0.5, (0, 0))):  # (cluster A, cluster B)
        for row, strong_is_right in enumerate(right):
            rewards = []
            for action in (0, 1):
                env.reset(options={"index": row, "config": {"lam": lam}})
                rewards.append(env.step(action)[1])
            assert (rewards[1] > rewards[0]) == bool(strong_is_right), (lam, row, rewards)


def test_uniform_obs_draws_small_lams_as_often_as_the_observation_range_says(tmp_path):
    table = write_break_even_table(tmp_path / "pair.csv")
    new, old = drawn_lams(table, "uniform-obs"), drawn_lams(table, "uniform")
    assert new.min() >= 0.0 and new.max() <= 2.0
    # λ/(1+λ) uniform on [0, 2/3]: P(λ < x) = (x / (1 + x)) / (2/3)
    regimes = [(0.0, 0.1), (0.1, 0.3), (0.3, 2.0)]  # right share 100%, 50%, 0%
    expected_new = [0.1364, 0.2098, 0.6538]  # (0.1/1.1)/(2/3), (0.3/1.3 − 0.1/1.1)/(2/3), rest
    expected_old = [0.05, 0.10, 0.85]  # uniform λ on [0, 2]
    for (low, high), want_new, want_old in zip(regimes, expected_new, expected_old):
        assert np.mean((new >= low) & (new < high)) == pytest.approx(want_new, abs=0.025)
        assert np.mean((old >= low) & (old < high)) == pytest.approx(want_old, abs=0.025)
    # the observed entry is uniform on [0, 2/3]
    assert stats.kstest(new / (1 + new), stats.uniform(0, 2 / 3).cdf).pvalue > 0.01


def test_lam_sampling_is_seeded_and_a_bad_value_names_the_key(tmp_path):
    table = write_break_even_table(tmp_path / "pair.csv")
    first = drawn_lams(table, "uniform-obs", 20)
    assert np.array_equal(first, drawn_lams(table, "uniform-obs", 20))
    with pytest.raises(ValueError, match="'lam_sampling'"):
        gym.make("LLMRouting-Table-v0", table=table, lam_sampling="log")


# ---------------------------------------------------------------- the reward scaled by 1/(1+λ)


@pytest.mark.parametrize("lam", [0.0, 0.25, 1.0, 3.0])
def test_lam_reward_scale_divides_the_reward_by_one_plus_lam(tmp_path, lam):
    table = write_break_even_table(tmp_path / "pair.csv")
    env = gym.make(
        "LLMRouting-Table-v0", table=table, lam=lam, lam_reward_scale="1/(1+lam)", shuffle=False
    )
    plain = gym.make("LLMRouting-Table-v0", table=table, lam=lam, shuffle=False)
    # row 0 is cluster A: weak scores 0.7 at normalized cost 0, strong scores 1 at cost 1
    for action, unscaled in ((0, 0.7), (1, 1.0 - lam)):
        env.reset(options={"index": 0})
        plain.reset(options={"index": 0})
        _, reward, _, _, info = env.step(action)
        assert reward == pytest.approx(unscaled / (1.0 + lam))
        assert plain.step(action)[1] == pytest.approx(unscaled)  # the default leaves it as is
        assert info["perf"] == pytest.approx(0.7 if action == 0 else 1.0)  # info is not scaled


def test_lam_reward_scale_uses_each_episodes_drawn_lam_in_the_cascade_too(tmp_path):
    table = write_break_even_table(tmp_path / "pair.csv")

    def episodes(scale: str) -> list[tuple[float, float]]:
        env = gym.make(
            "LLMRouting-Table-Cascade-v0",
            table=table,
            lam_in_obs=True,
            lam_range=[0.0, 2.0],
            lam_sampling="uniform-obs",
            lam_reward_scale=scale,
            shuffle=False,
            max_depth=2,
        )
        env.reset(seed=1)
        out = []
        for _ in range(5):
            env.reset(options={"index": 0})
            rewards = [env.step(1)[1], env.step(2)[1]]  # the strong model, then STOP
            out.append((env.unwrapped.lam, sum(rewards)))
        return out

    scaled, plain = episodes("1/(1+lam)"), episodes("none")
    assert [lam for lam, _ in scaled] == [lam for lam, _ in plain]  # the same seeded draws
    assert len({lam for lam, _ in scaled}) == 5
    for (lam, mine), (_, theirs) in zip(scaled, plain):
        assert abs(theirs) > 0.01  # score 1 minus λ times a nonzero cost
        assert mine == pytest.approx(theirs / (1.0 + lam))


def test_bad_lam_reward_scale_names_the_key():
    with pytest.raises(ValueError, match="'lam_reward_scale'"):
        gym.make("LLMRouting-Table-v0", lam_reward_scale="1/lam")
    with pytest.raises(ValueError, match="'lam_reward_scale'"):
        gym.make("LLMRouting-Table-Cascade-v0", lam_reward_scale=None)


@pytest.mark.parametrize("env_id", IDS)
def test_lam_obs_copies_repeat_lam_in_every_entry_and_pass_both_checkers(env_id):
    env = gym.make(env_id, lam_in_obs=True, lam_obs_copies=4, lam_range=[0.0, 2.0]).unwrapped
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env, skip_render_check=True)
        sb3_check_env(env, warn=True)
    assert [str(w.message) for w in caught] == []
    assert env.observation_space["lam"] == gym.spaces.Box(0.0, 1.0, (4,), np.float32)
    obs, _ = env.reset(seed=3)
    lam = env.lam
    assert obs["lam"].shape == (4,) and obs["lam"].dtype == np.float32
    np.testing.assert_array_equal(obs["lam"], np.float32(lam / (1.0 + lam)))


@pytest.mark.parametrize("bad", [0, -1, 2.0, True, "32", None])
def test_bad_lam_obs_copies_names_the_key(bad):
    with pytest.raises(ValueError, match="'lam_obs_copies'"):
        gym.make("LLMRouting-Table-v0", lam_in_obs=True, lam_obs_copies=bad)


def test_lam_obs_copies_fix_the_space_and_cannot_change_after_construction():
    env = gym.make("LLMRouting-Table-v0", lam_in_obs=True, lam_obs_copies=2)
    with pytest.raises(ValueError, match="'lam_obs_copies'"):
        env.reset(seed=0, options={"config": {"lam_obs_copies": 3}})
