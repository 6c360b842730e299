"""Record (or replay) seeded live multi-hop episodes on the tiny random models.

``python tests/envs/multihop_reference.py OUT.json`` writes, for every multi-hop ID, a few
seeded episodes: each step's action, reward, flags, cost, tokens, answer, score and the
responses. ``tests/data/multihop_reference.json`` was written by the env as it was before it
ran on the episode engine; ``test_multihop_engine_equivalence.py`` replays it with the
current env and asks for the same results, episode for episode.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import gymnasium as gym
import numpy as np

FIXTURES = Path(__file__).resolve().parents[1] / "data" / "fixtures"
EPISODES = 4
SEED = 7


def tiny_config(cache_dir: Path) -> dict:
    """Tiny random models, the fixture queries (all in "test"), a private cache, short replies."""
    return {
        "models": ["tiny-llama", "tiny-qwen2"],
        "data_dir": str(FIXTURES),
        "fractions": {"test": 1.0},
        "splits": {"mmlu": "train"},
        "humaneval_path": str(FIXTURES / "humaneval_toy.jsonl"),
        "cache_path": str(cache_dir / "responses.sqlite"),
        "max_new_tokens": 8,
        "record_text": True,
        "per_step_cost": True,
        "lam": 3.0,
        "sandbox": {"timeout_s": 3, "cpu_seconds": 2},
    }


def record(env_id: str, cache_dir: Path) -> list[dict]:
    """``EPISODES`` seeded episodes of ``env_id``, with actions drawn from the masks."""
    env = gym.make(env_id, config=tiny_config(cache_dir)).unwrapped
    rng = np.random.default_rng(SEED)
    episodes = []
    env.reset(seed=SEED)
    for _ in range(EPISODES):
        steps = []
        done = False
        while not done:
            valid = np.flatnonzero(env.action_masks())
            action = int(rng.choice(valid))
            obs, reward, terminated, truncated, info = env.step(action)
            steps.append({
                "action": action,
                "reward": reward,
                "terminated": terminated,
                "truncated": truncated,
                "cost": info["cost"],
                "perf": info["perf"],
                "prompt_tokens": info["prompt_tokens"],
                "completion_tokens": info["completion_tokens"],
                "models": info["models"],
                "answer": info.get("answer"),
                "responses": info["text"]["responses"],
                "obs_cost": float(obs["cost"][0]),
                "obs_depth": float(obs["depth"][0]),
                "obs_answered": obs["answered"].tolist(),
                "obs_context_head": [round(float(v), 4) for v in obs["context"][:4]],
            })
            done = terminated or truncated
        episodes.append({"task": info["task"], "question_id": info["question_id"], "steps": steps})
        env.reset()
    env.close()
    return episodes


def record_all() -> dict[str, list[dict]]:
    """The reference episodes of every multi-hop ID."""
    import routing_gym  # noqa: F401
    from routing_gym.envs.registration import env_ids_of

    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for env_id in sorted(env_ids_of("routing_gym.envs.multihop:MultiHopEnv")):
            out[env_id] = record(env_id, Path(tmp))
    return out


if __name__ == "__main__":
    Path(sys.argv[1]).write_text(json.dumps(record_all(), indent=1) + "\n", encoding="utf-8")
