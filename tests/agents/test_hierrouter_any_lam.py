"""One PPO for every λ reads λ: on a two-model table whose right choice at each λ is known, its
choices flip where the reward says they should (docs/results/two_model_lambda.md)."""

from __future__ import annotations

import json
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import routing_gym  # noqa: F401  (registers the envs)
from agents.hierrouter import HierRouter
from routing_gym.bench.curves import any_lam_env_config
from routing_gym.outcomes import Outcomes
from routing_gym.routers import TrainingRun

ENV_ID = "LLMRouting-Table-v0"
#: The strong model's margin over the weak one on each cluster; it costs 1 more (normalized),
#: so on a cluster the strong model is the better call exactly below λ = its margin.
MARGINS = (0.3, 0.1)


def write_fixed_margin_table(path: Path, n: int = 120) -> Path:
    """Two clusters of 8-d embeddings; the strong model scores 1 at normalized cost 1, the weak
    one 1 − margin at cost 0. Right strong share: 100% below λ = 0.1, 50% up to 0.3, 0% above.
    The first 3/4 of the rows train, the rest test."""
    rng = np.random.default_rng(0)
    cluster = np.arange(n) % 2
    x = rng.normal(scale=0.1, size=(n, 8))
    x[np.arange(n), cluster] += 1.0
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    lines = ["id,split,embedding,weak,strong,weak|cost,strong|cost"]
    for i in range(n):
        split = "train" if i < 0.75 * n else "test"
        weak = 1.0 - MARGINS[cluster[i]]
        vector = json.dumps([round(float(v), 6) for v in x[i]])
        # the cost normalizer maps the cheapest call to 0 and the dearest to 1
        lines.append(f'q{i},{split},"{vector}",{weak:.2f},1.0,1e-06,1e-05')
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    table = str(write_fixed_margin_table(tmp_path_factory.mktemp("margin") / "margin.csv"))
    # the bench's recipe for one PPO across λ (HierRouter's defaults), on [0, 1], 8,192 steps
    config = any_lam_env_config({"table": table}, "train", lam_max=1.0)
    agent = HierRouter(seed=0, total_timesteps=8192)
    agent.learn(TrainingRun(ENV_ID, config, timesteps=8192))
    return agent, table


def strong_calls(agent: HierRouter, table: str, lam: float) -> tuple[np.ndarray, np.ndarray]:
    """Whether the agent calls the strong model on each test query at ``lam``, and each
    query's margin (which cluster it is in)."""
    env = gym.make(ENV_ID, config={**any_lam_env_config({"table": table}, "test"), "lam": lam})
    agent.adapt_to(env)
    data = Outcomes.from_table_env(env)
    obs = {
        "embedding": data.features,
        "lam": np.repeat(env.unwrapped.lam_observation()[None, :], len(data), axis=0),
    }
    actions, _ = agent.predict(obs, deterministic=True)
    assert data.models == ("weak", "strong")
    margin = np.round(data.scores[:, 1] - data.scores[:, 0], 6)  # scores are float32
    return np.asarray(actions) == data.models.index("strong"), margin


def test_the_table_rewards_the_strong_model_exactly_below_each_clusters_margin(tmp_path):
    table = str(write_fixed_margin_table(tmp_path / "margin.csv"))
    data = Outcomes.from_table_env(gym.make(ENV_ID, table=table, split="test"))
    np.testing.assert_allclose(data.costs, np.tile([0.0, 1.0], (len(data), 1)))
    margin = np.round(data.scores[:, 1] - data.scores[:, 0], 6)  # scores are float32
    assert sorted(np.unique(margin)) == sorted(MARGINS)


@pytest.mark.parametrize(
    "lam", [0.0, 0.05, 0.2, 0.4, 0.5, 1.0]
)
def test_one_ppo_across_lam_calls_the_strong_model_exactly_where_it_pays(trained, lam):
    agent, table = trained
    strong, margin = strong_calls(agent, table, lam)
    for m in MARGINS:
        share = float(strong[margin == m].mean())
        right = 1.0 if lam < m else 0.0  # the strong model pays exactly below its margin
        # λ is at least 0.05 from every flip: the policy must be right on (nearly) every query
        assert share == pytest.approx(right, abs=0.1), (lam, m, share)
