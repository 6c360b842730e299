"""One interface for every agent: SB3 predict (single and batched), evaluate_policy, save/load, configs."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from stable_baselines3.common.evaluation import evaluate_policy

import routing_gym  # noqa: F401
from agents import (
    AGENTS,
    FixedRouter,
    GraphRouter,
    HierRouter,
    IRTRouter,
    KNNRouter,
    MFRouter,
    MLPRouter,
    OneShotRouter,
    OracleRouter,
    RandomRouter,
)
from agents.evaluation import evaluate_agent
from routing_gym.outcomes import Outcomes

#: Small, quick configurations of every one-shot router.
ONE_SHOT = {
    "random": lambda: RandomRouter(seed=3),
    "fixed": lambda: FixedRouter(rule="best"),
    "oracle": lambda: OracleRouter(),
    "routellm-mf": lambda: MFRouter(epochs=1, dim=16),
    "irt-router": lambda: IRTRouter(epochs=3),
    "graphrouter": lambda: GraphRouter(epochs=5, hidden=16),
    "knn": lambda: KNNRouter(k=5),
    "mlp": lambda: MLPRouter(max_iter=5),
}


@pytest.fixture(scope="module")
def small_env():
    """The GSM8K variant's validation split: a few dozen queries, every agent fits in a blink."""
    return gym.make("LLMRouting-Table-GSM8K-v0", split="valid")


@pytest.fixture(scope="module")
def fitted(small_env) -> dict[str, OneShotRouter]:
    return {name: make().fit_env(small_env) for name, make in ONE_SHOT.items()}


def test_registry_lists_every_agent_with_a_docstring():
    assert set(AGENTS) == {
        "hierrouter",
        "haps",
        "random",
        "fixed",
        "oracle",
        "routellm-mf",
        "irt-router",
        "graphrouter",
        "knn",
        "mlp",
    }
    for name, cls in AGENTS.items():
        assert cls.name == name
        assert (cls.__doc__ or "").strip(), name


def test_cli_list_prints_the_agents(capsys):
    from routing_gym.cli import main

    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "Agents:" in out and "routellm-mf" in out and "UPPER BOUND" in out


@pytest.mark.parametrize("name", list(ONE_SHOT))
def test_predict_handles_single_and_batched_observations(name, fitted, small_env):
    agent = fitted[name]
    data = Outcomes.from_table_env(small_env)
    batch = data.features[:7]
    actions, state = agent.predict(batch)
    assert actions.shape == (7,) and state is None
    assert all(small_env.action_space.contains(int(a)) for a in actions)
    single, _ = agent.predict(batch[2])
    assert np.ndim(single) == 0
    if name != "random":  # deterministic routers: the same query gets the same model
        assert int(single) == int(actions[2])


@pytest.mark.parametrize("name", list(ONE_SHOT))
def test_evaluate_policy_scores_every_agent(name, fitted):
    env = gym.make("LLMRouting-Table-GSM8K-v0", split="valid", shuffle=False)  # one pass, rows in order
    base = env.unwrapped
    n = base.num_queries
    mean, std = evaluate_policy(fitted[name], env, n_eval_episodes=n, warn=False)
    # the reward of every (query, model) by hand: bounds from the train split's costs (its cheapest
    # call, its 0.99 quantile), balanced λ = 0.5
    train = gym.make("LLMRouting-Table-GSM8K-v0", split="train").unwrapped.costs
    low, high = train.min(), np.quantile(train, 0.99)
    rewards = base.scores - 0.5 * np.clip((base.costs - low) / (high - low), 0.0, 1.0)
    if name == "random":  # its own random stream: between always the worst and always the best model
        assert rewards.min(axis=1).mean() <= mean <= rewards.max(axis=1).mean() and std > 0
    else:
        actions, _ = fitted[name].predict(Outcomes.from_table_env(env).features)
        per_query = rewards[np.arange(n), actions]
        assert mean == pytest.approx(per_query.mean()) and std == pytest.approx(per_query.std())


@pytest.mark.parametrize("name", list(ONE_SHOT))
def test_save_load_round_trip(name, fitted, small_env, tmp_path):
    agent = fitted[name]
    queries = Outcomes.from_table_env(small_env).features
    path = agent.save(tmp_path / f"{name}.pt")
    expected, _ = agent.predict(queries)  # Random: the copy resumes the stream from the save
    loaded = type(agent).load(path)
    got, _ = loaded.predict(queries)
    np.testing.assert_array_equal(got, expected)
    assert loaded.config == agent.config and loaded.models == agent.models


def test_load_refuses_another_agents_file(fitted, tmp_path):
    path = fitted["knn"].save(tmp_path / "knn.pt")
    with pytest.raises(ValueError, match="KNNRouter"):
        IRTRouter.load(path)


def test_one_shot_router_calls_one_model_then_stops_in_the_cascade():
    train = gym.make("LLMRouting-Table-Cascade-GSM8K-v0", split="valid")
    agent = KNNRouter(k=5).fit_env(train)
    scores = evaluate_agent(agent, train)
    assert scores["calls_per_episode"] == 1.0 and scores["steps_per_episode"] == 2.0
    assert scores["episodes"] == train.unwrapped.num_queries


def test_evaluate_agent_reports_the_env_rewards(fitted, small_env):
    scores = evaluate_agent(fitted["fixed"], small_env)
    base = small_env.unwrapped
    arm = fitted["fixed"].arm
    assert scores["perf"] == pytest.approx(base.scores[:, arm].mean())
    assert scores["cost"] == pytest.approx(base.normalized_costs[:, arm].mean())
    assert scores["reward"] == pytest.approx(scores["perf"] - base.lam * scores["cost"])
    assert scores["share"] == {base.model_names[arm]: 1.0}


def test_lambda_follows_the_env_unless_pinned(fitted):
    agent = KNNRouter(k=3)
    agent.fit_env(gym.make("LLMRouting-Table-GSM8K-v0", split="valid", lam="cost-first"))
    assert agent.lam == 1.0
    agent.adapt_to(gym.make("LLMRouting-Table-GSM8K-v0", split="valid", lam=0.1))
    assert agent.lam == 0.1
    pinned = KNNRouter(k=3, lam="balanced")
    pinned.adapt_to(gym.make("LLMRouting-Table-GSM8K-v0", split="valid", lam=0.1))
    assert pinned.lam == 0.5


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: KNNRouter(neighbours=3), "neighbours"),
        (lambda: KNNRouter(k=0), "'k'"),
        (lambda: IRTRouter(lam="greedy"), "'lam'"),
        (lambda: MFRouter(threshold=2.0), "'threshold'"),
        (lambda: FixedRouter(rule="priciest"), "'rule'"),
        (lambda: FixedRouter(model="a", assignment={"student": "a", "teacher": "b"}), "not both"),
        (lambda: GraphRouter(mask_fraction=1.5), "'mask_fraction'"),
        (lambda: HierRouter(vec_env="threads"), "'vec_env'"),
    ],
)
def test_bad_config_raises_value_error_naming_the_key(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_fixed_router_rejects_an_unknown_model(small_env):
    with pytest.raises(ValueError, match="unknown model 'gpt-9'"):
        FixedRouter(model="gpt-9").fit_env(small_env)


def test_fit_rejects_unnormalized_costs():
    x = np.random.default_rng(0).normal(size=(10, 4)).astype(np.float32)
    with pytest.raises(ValueError, match="normalized"):
        KNNRouter().fit(x, np.ones((10, 2)), np.full((10, 2), 3.0))


def test_fit_on_plain_arrays_names_models_and_routes_by_score():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 8)).astype(np.float32)
    # model 1 is right exactly when the first feature is positive, model 0 otherwise
    scores = np.stack([(x[:, 0] <= 0), (x[:, 0] > 0)], axis=1).astype(float)
    costs = np.full((200, 2), 0.1)
    agent = KNNRouter(k=5, lam=0.5).fit(x, scores, costs)
    assert agent.models == ("model_0", "model_1")
    chosen = agent.select_arms(x)
    assert (chosen == (x[:, 0] > 0)).mean() > 0.9


def test_an_agent_fit_on_models_refuses_an_assignment_env(fitted, tmp_path):
    from routing_gym.llm import TINY_POOL

    live = gym.make(
        "LLMRouting-HotpotQA-Assign-v0",
        config={"models": list(TINY_POOL), "cache_path": str(tmp_path / "c.sqlite")},
    )
    with pytest.raises(ValueError, match="assignment"):
        fitted["knn"].adapt_to(live)
