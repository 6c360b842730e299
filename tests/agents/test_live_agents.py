"""Agents on the live Teacher–Student envs with tiny random models: ActionTable routers, per-turn replay, PPO."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import routing_gym  # noqa: F401
from agents import (
    FixedRouter,
    GraphRouter,
    HierRouter,
    IRTRouter,
    KNNRouter,
    MFRouter,
    MLPRouter,
    OracleRouter,
    RandomRouter,
    action_table_outcomes,
)
from agents.base import single_threaded
from agents.evaluation import evaluate_agent, evaluate_on_data
from routing_gym.action_table import ActionTable, build_action_table
from routing_gym.llm import TINY_POOL
from routing_gym.vector import BatchedRoutingVecEnv

FIXTURES = Path(__file__).resolve().parents[1] / "data" / "fixtures"


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny models on short prompts: one torch thread is several times faster than two on a busy CPU."""
    with single_threaded():
        yield


@pytest.fixture(scope="module")
def config(tmp_path_factory) -> dict:
    """Tiny random models on the fixture questions, one private cache for the whole module."""
    cache = tmp_path_factory.mktemp("live") / "responses.sqlite"
    return {
        "models": list(TINY_POOL),
        "data_dir": str(FIXTURES),
        "cache_path": str(cache),
        "protocol": {"search_budget": 1, "student_max_new_tokens": 6, "teacher_max_new_tokens": 4},
    }


@pytest.fixture(scope="module")
def table_path(config, tmp_path_factory) -> Path:
    """Every assignment on every fixture question (this also warms the response cache)."""
    path = tmp_path_factory.mktemp("table") / "action_table.jsonl"
    return build_action_table("LLMRouting-HotpotQA-v0", path, config, progress=False)


@pytest.fixture(scope="module")
def table(table_path) -> ActionTable:
    return ActionTable.load(table_path)


@pytest.fixture(scope="module")
def assign_env(config):
    env = gym.make("LLMRouting-HotpotQA-Assign-v0", config=config)
    yield env
    env.close()


@pytest.fixture(scope="module")
def turn_env(config):
    env = gym.make("LLMRouting-HotpotQA-v0", config=config)
    yield env
    env.close()


def test_routing_data_from_action_table_has_every_assignment(table, assign_env):
    data = action_table_outcomes(table, assign_env)
    m = len(TINY_POOL)
    assert list(data.arms) == list(itertools.product(range(m), repeat=2))
    assert data.scores.shape == (len(table.question_ids), m * m)
    assert data.features.shape == (len(table.question_ids), 384)
    row = table.rows[0]
    q = data.query_ids.index(row["question_id"])
    arm = data.arms.index(
        tuple(data.models.index(row["assignment"][r]) for r in ("student", "teacher"))
    )
    assert data.scores[q, arm] == row["perf"]
    assert data.costs[q, arm] == pytest.approx(assign_env.unwrapped.cost_normalizer(row["cost"]))


ROUTERS = {
    "random": lambda: RandomRouter(seed=0),
    "fixed": lambda: FixedRouter(rule="best"),
    "routellm-mf": lambda: MFRouter(epochs=2, dim=8),
    "irt-router": lambda: IRTRouter(epochs=5),
    "graphrouter": lambda: GraphRouter(epochs=5, hidden=8),
    "knn": lambda: KNNRouter(k=1),
    "mlp": lambda: MLPRouter(max_iter=5),
}


def test_assignment_routers_play_the_assign_env_under_the_oracle(table, assign_env):
    oracle = OracleRouter().fit_env(assign_env, action_table=table)
    best = evaluate_agent(oracle, assign_env)
    n = len(table.question_ids)
    assert best["episodes"] == n
    data = action_table_outcomes(table, assign_env)
    # the env replays the table: the Oracle's live reward is the table's hindsight best
    assert best["reward"] == pytest.approx(
        data.rewards(assign_env.unwrapped.lam).max(axis=1).mean()
    )
    for name, make in ROUTERS.items():
        agent = make().fit_env(assign_env, action_table=table)
        scores = evaluate_agent(agent, assign_env)
        assert scores["episodes"] == n, name
        assert scores["reward"] <= best["reward"] + 1e-9, name
        offline = evaluate_on_data(agent if name != "random" else make().fit(data), data)
        assert offline["episodes"] == n


def test_per_turn_env_replays_the_chosen_assignment(table, assign_env, turn_env):
    oracle = OracleRouter().fit_env(turn_env, action_table=table)
    assert oracle.action_mode == "per-turn"
    per_turn = evaluate_agent(oracle, turn_env)
    oracle.adapt_to(assign_env)
    one_step = evaluate_agent(oracle, assign_env)
    assert per_turn["reward"] == pytest.approx(one_step["reward"])
    assert per_turn["steps_per_episode"] > 1.0 and one_step["steps_per_episode"] == 1.0


def test_fixed_assignment_plays_each_role_on_its_model(turn_env):
    student, teacher = TINY_POOL
    agent = FixedRouter(assignment={"student": student, "teacher": teacher}).fit_env(turn_env)
    obs, info = turn_env.reset(seed=0)
    state, start, done = None, np.ones(1, dtype=bool), False
    while not done:
        action, state = agent.predict({k: v[None] for k, v in obs.items()}, state, start)
        start = np.zeros(1, dtype=bool)
        obs, _, terminated, truncated, info = turn_env.step(int(action[0]))
        done = terminated or truncated
    assert info["models"] == [student if role == "student" else teacher for role in info["roles"]]


def test_hierrouter_ppo_runs_on_the_live_per_turn_env(table, config, turn_env):
    agent = HierRouter(n_envs=4, n_steps=32, batch_size=64, n_epochs=2, seed=0)
    agent.fit("LLMRouting-HotpotQA-v0", total_timesteps=256, env_kwargs={"config": config})
    vec = agent.model.get_env()
    assert isinstance(vec, BatchedRoutingVecEnv) and vec.num_envs == 4  # one batch of model calls a step
    assert agent.model.num_timesteps >= 256
    scores = evaluate_agent(agent, turn_env)
    assert scores["episodes"] == len(table.question_ids)
    assert set(scores["share"]) <= set(TINY_POOL)


def test_hierrouter_ppo_runs_on_the_assign_env(config):
    agent = HierRouter(n_envs=2, n_steps=16, batch_size=32, n_epochs=2, seed=0)
    agent.fit("LLMRouting-HotpotQA-Assign-v0", total_timesteps=32, env_kwargs={"config": config})
    action, _ = agent.predict(
        gym.make("LLMRouting-HotpotQA-Assign-v0", config=config).reset(seed=0)[0]
    )
    assert np.shape(action) == (2,)


def test_compare_agents_scores_an_action_table(table_path, config, run_example):
    done = run_example(
        "compare_agents.py",
        ["--skip-table-env", "--action-table", str(table_path), "--live-env",
         "LLMRouting-HotpotQA-Assign-v0", "--live-config", json.dumps(config),
         "--train-fraction", "0.5", "--seed", "0"],
    )
    assert done.returncode == 0, done.stderr[-3000:]
    # its table: | regime (λ) | agent | Perf | Cost (norm.) | Reward |, rewards to 3 decimals
    rows = [line.strip("| ").split(" | ") for line in done.stdout.splitlines() if line.startswith("| ")]
    assert rows[0] == ["regime (λ)", "agent", "Perf", "Cost (norm.)", "Reward"]
    by_regime: dict[str, dict[str, float]] = {}
    for regime, agent, _, _, reward in rows[1:]:
        by_regime.setdefault(regime, {})[agent] = float(reward)
    assert len(by_regime) == 3
    for rewards in by_regime.values():
        oracle = rewards.pop("Oracle (upper bound)")
        assert len(rewards) == 9 and all(r <= oracle + 1e-9 for r in rewards.values())
