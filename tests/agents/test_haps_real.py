"""HAPS on the real pool (SmolLM2-135M, Gemma-3-270M) and real HotpotQA questions (slow)."""

import gymnasium as gym
import numpy as np
import pytest

import routing_gym  # noqa: F401
from agents.haps import HAPSAgent, HAPSConfig, haps_env_config
from routing_gym.llm import REAL_POOL

pytestmark = pytest.mark.slow


def test_one_joint_update_on_the_real_pool_moves_the_adapters(data_root, tmp_path):
    config = HAPSConfig(backbone="smollm2-135m", progress_bar=False, lr=1e-3, zero_init_a=False)
    env = gym.make(
        "LLMRouting-HotpotQA-HAPS-v0",
        config=haps_env_config(
            config,
            temperature=0.7,
            models=list(REAL_POOL),
            data_dir=str(data_root),
            split="train",
            limit=2,
            cache_path=str(tmp_path / "responses.sqlite"),
            protocol={
                "search_budget": 1,
                "student_max_new_tokens": 24,
                "teacher_max_new_tokens": 12,
            },
        ),
    )
    agent = HAPSAgent(config)
    agent.adapt_to(env)
    # the generators produce each real model's o_proj shapes (SmolLM2 576x576, Gemma-3 640x1024)
    layout = agent.layout
    assert layout.vector_size("smollm2-135m") == 8 * (576 + 576)
    assert layout.vector_size("gemma3-270m") == 8 * (640 + 1024)

    question = env.unwrapped.examples[0]
    before = agent.predict_episode(question)["lora"]
    episodes = agent.rollout(env, 1)
    episode = episodes[0]
    assert episode.calls and {c["model"] for c in episode.calls} <= set(REAL_POOL)
    stats = agent.update(episodes, [1.0], env.unwrapped.pool)
    assert np.isfinite(stats["loss"]) and stats["token_logprob"] < 0 and stats["grad_norm"] > 0
    after = agent.predict_episode(question)["lora"]
    played = {c["model"] for c in episode.calls}
    assert any(not np.array_equal(before[m], after[m]) for m in played)
    env.close()
