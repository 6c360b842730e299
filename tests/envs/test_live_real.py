"""A real HotpotQA episode from the shared data, routed between SmolLM2 and Gemma-3 (slow)."""

import gymnasium as gym
import pytest

import routing_gym  # noqa: F401
from routing_gym.llm import REAL_POOL

pytestmark = pytest.mark.slow


def test_real_hotpotqa_episode_with_both_real_models(data_root, tmp_path):
    config = {
        "models": list(REAL_POOL),
        "data_dir": str(data_root),
        "split": "valid",
        "limit": 3,
        "cache_path": str(tmp_path / "responses.sqlite"),
        "protocol": {"search_budget": 1, "student_max_new_tokens": 40, "teacher_max_new_tokens": 24},
        "record_text": True,
    }
    env = gym.make("LLMRouting-HotpotQA-v0", config=config, render_mode="ansi")
    obs, info = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    done, step = False, 0
    while not done:
        obs, reward, terminated, truncated, info = env.step(step % 2)  # alternate the two models
        done = terminated or truncated
        step += 1
    assert set(info["models"]) == set(REAL_POOL)
    assert 0.0 <= info["perf"] <= 1.0
    assert info["prompt_tokens"] > 100 and info["completion_tokens"] > 0
    assert reward == pytest.approx(info["perf"] - info["lam"] * info["normalized_cost"])
    transcript = env.render()
    assert info["question"] in transcript and "gemma3-270m" in transcript and "smollm2-135m" in transcript
    env.close()

    # The same seeded episode replays from the cache with identical outcomes.
    replay = gym.make("LLMRouting-HotpotQA-v0", config=config)
    replay.reset(seed=0)
    for k in range(step):
        _, again, *_ , replay_info = replay.step(k % 2)
    assert again == reward and replay_info["answer"] == info["answer"]
    replay.close()
