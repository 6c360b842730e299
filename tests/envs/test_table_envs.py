"""The outcome-table envs: Gymnasium/SB3 contracts, table consistency, learning, bring-your-own."""

from __future__ import annotations

import json
import pickle
import warnings

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env, data_equivalence
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import routing_gym
from routing_gym.data.outcome_table import load_outcome_table
from routing_gym.envs.registration import HIERROUTER_TASKS, TABLE_TASK_VARIANTS, env_ids_of
from routing_gym.errors import DataFormatError

routing_gym.register_envs()
CASCADE_IDS = env_ids_of("routing_gym.envs.table_cascade:TableCascadeEnv")
TABLE_IDS = sorted(env_ids_of("routing_gym.envs.table:TableRoutingEnv") + CASCADE_IDS)


def _rollout(env: gym.Env, seed: int, steps: int) -> list:
    """Observations, rewards, flags and infos of ``steps`` random steps from ``reset(seed)``."""
    env.action_space.seed(seed)
    obs, info = env.reset(seed=seed)
    trace = [(obs, info)]
    for _ in range(steps):
        action = env.action_space.sample()
        if hasattr(env.unwrapped, "action_masks"):
            valid = np.flatnonzero(env.unwrapped.action_masks())
            action = int(valid[action % len(valid)])
        obs, reward, terminated, truncated, info = env.step(action)
        trace.append((obs, reward, terminated, truncated, info))
        if terminated or truncated:
            trace.append(env.reset())
    return trace



# ---------------------------------------------------------------- registry and contracts


def test_registry_covers_every_task_and_the_hierrouter_cascades():
    assert "LLMRouting-Table-v0" in TABLE_IDS and "LLMRouting-Table-Cascade-v0" in TABLE_IDS
    for name in ("GSM8K", "MATH", "MBPP", "ARC", "MMLU", "HumanEval"):
        assert f"LLMRouting-Table-{name}-v0" in TABLE_IDS
    assert set(TABLE_TASK_VARIANTS) == set(load_outcome_table().task_names)
    assert len(CASCADE_IDS) == 1 + len(HIERROUTER_TASKS)


def test_register_envs_is_idempotent():
    before = sorted(gym.registry)
    routing_gym.register_envs()
    assert sorted(gym.registry) == before


@pytest.mark.parametrize("env_id", TABLE_IDS)
def test_passes_gymnasium_and_sb3_checkers(env_id):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(gym.make(env_id).unwrapped, skip_render_check=False)
        sb3_check_env(gym.make(env_id).unwrapped)
    assert [str(w.message) for w in caught] == []


@pytest.mark.parametrize("env_id", TABLE_IDS)
def test_same_seed_gives_identical_rollouts(env_id):
    a = _rollout(gym.make(env_id), seed=7, steps=60)
    b = _rollout(gym.make(env_id), seed=7, steps=60)
    assert data_equivalence(a, b, exact=True)
    c = _rollout(gym.make(env_id), seed=8, steps=60)
    assert [t[1]["query_id"] for t in a if len(t) == 2] != [
        t[1]["query_id"] for t in c if len(t) == 2
    ]


@pytest.mark.parametrize("env_id", TABLE_IDS)
def test_pickle_round_trip_continues_identically(env_id):
    env = gym.make(env_id).unwrapped
    _rollout(env, seed=3, steps=5)
    clone = pickle.loads(pickle.dumps(env))
    assert len(pickle.dumps(env)) < 100_000  # arrays are rebuilt, not pickled
    for _ in range(3):
        assert data_equivalence(env.reset(), clone.reset(), exact=True)
        action = int(np.flatnonzero(env.action_masks())[0]) if hasattr(env, "action_masks") else 0
        assert data_equivalence(env.step(action), clone.step(action), exact=True)


@pytest.mark.parametrize("env_id", TABLE_IDS)
def test_spec_round_trips_through_json(env_id):
    spec = gym.spec(env_id)
    text = spec.to_json()
    assert gym.envs.registration.EnvSpec.from_json(text) == spec
    json.loads(text)  # kwargs are plain JSON


def test_step_returns_python_types_and_fresh_arrays():
    env = gym.make("LLMRouting-Table-v0").unwrapped
    obs, _ = env.reset(seed=0)
    obs[:] = 0.0  # the caller owns the array: the table must not change
    obs2, reward, terminated, truncated, info = env.step(0)
    assert type(reward) is float and type(terminated) is bool and type(truncated) is bool
    assert np.abs(obs2).sum() > 0 and obs2.dtype == np.float32
    assert info["vector_reward"][0] == pytest.approx(info["score"])
    assert reward == pytest.approx(
        info["vector_reward"][0] + info["lam"] * info["vector_reward"][1], abs=1e-6
    )


def test_render_ansi_describes_the_step():
    env = gym.make("LLMRouting-Table-v0", render_mode="ansi")
    env.reset(seed=0)
    _, _, _, _, info = env.step(2)
    text = env.render()
    assert info["model"] in text and info["query_id"] in text


# ---------------------------------------------------------------- config


def test_unknown_config_key_and_bad_value_name_the_key():
    with pytest.raises(ValueError, match="'no_such_key'"):
        gym.make("LLMRouting-Table-v0", no_such_key=1)
    with pytest.raises(ValueError, match="'split'"):
        gym.make("LLMRouting-Table-v0", config={"split": "dev"})
    with pytest.raises(ValueError, match="'lam'"):
        gym.make("LLMRouting-Table-v0", lam="thrifty")
    with pytest.raises(ValueError, match="'tasks'"):
        gym.make("LLMRouting-Table-v0", tasks=["chess"])
    with pytest.raises(ValueError, match="'max_depth'"):
        gym.make("LLMRouting-Table-Cascade-v0", max_depth=10)
    env = gym.make("LLMRouting-Table-v0")
    with pytest.raises(ValueError, match="'table'"):
        env.reset(options={"config": {"table": "other.csv"}})
    with pytest.raises(ValueError, match="'tasks'"):
        env.reset(options={"config": {"tasks": ["chess"]}})
    assert env.unwrapped.config["tasks"] is None  # a rejected change leaves the env as it was
    assert env.reset(seed=0)[1]["task"] in TABLE_TASK_VARIANTS


def test_reset_config_changes_lambda_and_split():
    env = gym.make("LLMRouting-Table-v0").unwrapped
    env.reset(seed=0, options={"index": 0})
    _, r_balanced, _, _, info = env.step(8)
    env.reset(options={"index": 0, "config": {"lam": "cost-first"}})
    _, r_cost, _, _, info2 = env.step(8)
    assert info2["lam"] == 1.0 and info["lam"] == 0.5
    # the default bounds: low = the cheapest train call, high = the 0.99 quantile of train calls
    low, high = env.costs.min(), np.quantile(env.costs, 0.99)
    normalized = min(1.0, (info["cost"] - low) / (high - low))
    assert r_balanced == pytest.approx(info["score"] - 0.5 * normalized)
    assert r_cost == pytest.approx(info["score"] - 1.0 * normalized)
    test_n = env.num_queries
    env.reset(options={"config": {"split": "test"}})
    assert env.num_queries < test_n


def test_reset_index_and_seeded_order_visit_every_query_once_per_pass():
    env = gym.make("LLMRouting-Table-GSM8K-v0").unwrapped
    _, info = env.reset(seed=1, options={"index": 5})
    assert info["query_id"] == env.query_ids[5]
    seen = [env.reset(seed=2)[1]["query_id"]] + [
        env.reset()[1]["query_id"] for _ in range(env.num_queries - 1)
    ]
    assert sorted(seen) == sorted(env.query_ids)
    assert seen != env.query_ids  # shuffled
    assert env.reset(seed=2)[1]["query_id"] == seen[0]  # a seed rewinds the order
    ordered = gym.make("LLMRouting-Table-GSM8K-v0", shuffle=False).unwrapped
    assert [ordered.reset()[1]["index"] for _ in range(4)] == [0, 1, 2, 3]


def test_cost_normalizer_is_fitted_on_train_and_frozen_across_splits():
    train = gym.make("LLMRouting-Table-v0", split="train").unwrapped
    test = gym.make("LLMRouting-Table-v0", split="test").unwrapped
    assert train.cost_normalizer == test.cost_normalizer
    assert train.cost_normalizer.low == pytest.approx(train.costs.min())
    assert train.cost_normalizer.high == pytest.approx(np.quantile(train.costs, 0.99))
    plain = gym.make("LLMRouting-Table-v0", split="test", cost_quantile=1.0).unwrapped
    assert plain.cost_normalizer.high == pytest.approx(train.costs.max())
    assert (
        plain.normalized_costs.max() <= 1.0 and test.normalized_costs.max() == 1.0
    )  # clipped above q


def test_lambda_regimes_change_the_best_single_model():
    best = {}
    for regime in ("performance-first", "cost-first"):
        env = gym.make("LLMRouting-Table-v0", lam=regime).unwrapped
        low, high = env.costs.min(), np.quantile(env.costs, 0.99)  # the train split's bounds
        normalized = np.clip((env.costs - low) / (high - low), 0.0, 1.0)
        best[regime] = int(np.argmax((env.scores - env.lam * normalized).mean(axis=0)))
    costs = env.costs.mean(axis=0)
    assert costs[best["cost-first"]] < costs[best["performance-first"]]


# ---------------------------------------------------------------- table consistency


def test_oracle_equals_the_per_query_max_of_the_table():
    env = gym.make("LLMRouting-Table-v0", split="test", lam=0.0, shuffle=False).unwrapped
    table = load_outcome_table()
    row_of = {qid: i for i, qid in enumerate(table.ids.tolist())}
    total = 0.0
    for i in range(env.num_queries):
        env.reset(options={"index": i})
        best = int(np.argmax(env.scores[i]))
        _, reward, _, _, info = env.step(best)
        expected = float(table.scores[row_of[info["query_id"]]].max())
        assert reward == pytest.approx(expected) and info["oracle_score"] == pytest.approx(expected)
        total += reward
    assert total / env.num_queries == pytest.approx(env.scores.max(axis=1).mean())


def test_best_single_model_mean_on_test_equals_the_table_column_mean():
    table = load_outcome_table()
    test_rows = table.split_labels() == "test"
    column_means = table.scores[test_rows].mean(axis=0)
    best = int(np.argmax(table.scores[table.split_labels() == "train"].mean(axis=0)))
    env = gym.make("LLMRouting-Table-v0", split="test", lam=0.0, shuffle=False).unwrapped
    rewards = []
    for i in range(env.num_queries):
        env.reset(options={"index": i})
        rewards.append(env.step(best)[1])
    assert env.num_queries == int(test_rows.sum())
    assert np.mean(rewards) == pytest.approx(float(column_means[best]), abs=1e-6)


def test_ppo_beats_random_and_nears_the_best_single_model_on_the_test_split():
    from stable_baselines3 import PPO
    from stable_baselines3.common.evaluation import evaluate_policy
    from stable_baselines3.common.monitor import Monitor

    torch.set_num_threads(1)
    train_env = gym.make("LLMRouting-Table-v0", split="train", lam=0.0)
    model = PPO(
        "MlpPolicy",
        train_env,
        n_steps=256,
        batch_size=64,
        n_epochs=4,
        learning_rate=1e-3,
        gamma=0.0,
        ent_coef=0.0,
        seed=0,
        verbose=0,
    )
    model.learn(4096)
    test_env = gym.make("LLMRouting-Table-v0", split="test", lam=0.0, shuffle=False)
    n = test_env.unwrapped.num_queries
    ppo, _ = evaluate_policy(model, Monitor(test_env), n_eval_episodes=n, deterministic=True)
    scores = test_env.unwrapped.scores
    random_mean = float(scores.mean())  # expected score of a uniform random pick
    best_single = float(scores[:, int(np.argmax(train_env.unwrapped.scores.mean(axis=0)))].mean())
    assert ppo > random_mean + 0.8 * (best_single - random_mean)
    assert ppo > best_single - 0.03


# ---------------------------------------------------------------- cascade


def test_cascade_masks_tried_models_and_treats_a_repeat_as_stop():
    env = gym.make("LLMRouting-Table-Cascade-v0", max_depth=3).unwrapped
    _, info = env.reset(seed=0, options={"index": 0})
    assert info["action_mask"].all()
    obs, reward, terminated, _, info = env.step(2)
    assert (
        not terminated
        and reward == 0.0
        and obs["tried"][2] == 1
        and obs["depth"][0] == pytest.approx(1 / 3)
    )
    assert not env.action_masks()[2] and env.action_masks()[env.stop_action]
    assert obs["outcomes"][2] == int(env.scores[0, 2] >= 0.5)
    cost_before = info["cost"]
    _, reward, terminated, _, info = env.step(2)
    assert terminated and info["invalid_action"] and info["model"] == "STOP"
    assert info["cost"] == cost_before
    # the cascade's bound: the 0.99 quantile over train queries of their 3 dearest calls summed
    high = np.quantile(np.sort(env.costs, axis=1)[:, -3:].sum(axis=1), 0.99)
    assert reward == pytest.approx(env.scores[0, 2] - env.lam * min(1.0, env.costs[0, 2] / high))


def test_cascade_stop_at_depth_zero_scores_nothing_and_costs_nothing():
    env = gym.make("LLMRouting-Table-Cascade-v0", lam=1.0).unwrapped
    env.reset(seed=0)
    _, reward, terminated, _, info = env.step(env.stop_action)
    assert terminated and reward == 0.0 and info["score"] == 0.0 and info["cost"] == 0.0


def test_cascade_ends_at_the_depth_cap_with_the_best_observed_score():
    env = gym.make("LLMRouting-Table-Cascade-v0", max_depth=2, lam=0.0).unwrapped
    env.reset(seed=0, options={"index": 3})
    env.step(0)
    _, reward, terminated, _, info = env.step(5)
    assert terminated and info["depth"] == 2
    assert reward == pytest.approx(max(env.scores[3, 0], env.scores[3, 5]))
    assert info["cost"] == pytest.approx(env.costs[3, 0] + env.costs[3, 5])


@pytest.mark.parametrize("index", [0, 11, 40])
def test_cascade_per_step_rewards_sum_to_the_final_reward(index):
    totals = {}
    for mode in ("final", "per_step"):
        env = gym.make("LLMRouting-Table-Cascade-v0", reward_mode=mode, lam=1.0).unwrapped
        env.reset(seed=0, options={"index": index})
        rewards = [env.step(a)[1] for a in (6, 1, 8)]
        totals[mode] = sum(rewards)
        if mode == "per_step":
            assert all(r < 0 for r in rewards[:2])
    assert totals["final"] == pytest.approx(totals["per_step"], abs=1e-9)


def test_maskable_ppo_trains_on_the_cascade():
    from sb3_contrib import MaskablePPO

    torch.set_num_threads(1)
    env = gym.make("LLMRouting-Table-Cascade-v0")
    model = MaskablePPO(
        "MultiInputPolicy", env, n_steps=128, batch_size=64, n_epochs=2, seed=0, verbose=0
    )
    model.learn(256)
    obs, _ = env.reset(seed=0)
    action, _ = model.predict(obs, action_masks=env.unwrapped.action_masks(), deterministic=True)
    assert env.unwrapped.action_masks()[int(action)]


# ---------------------------------------------------------------- bring your own table

MODELS = ("small", "large")


def _byo_rows(n: int = 40) -> list[dict]:
    rng = np.random.default_rng(0)
    rows = []
    for k in range(n):
        rows.append(
            {
                "question": f"Toy question number {k}: what is {k} plus {k}?",
                "task": "toy_math" if k % 2 else "toy_qa",
                "small": float(k % 3 == 0),
                "large": float(k % 5 != 0),
                "prompt_tokens": int(10 + k),
                "large|completion_tokens": 50,
                "embedding": rng.normal(size=8).round(4).tolist(),
            }
        )
    return rows


def _write_prices(tmp_path):
    path = tmp_path / "prices.json"
    path.write_text(
        json.dumps(
            {
                "small": {"input_price": 0.1, "output_price": 0.2},
                "large": {"input_price": 1.0, "output_price": 2.0},
            }
        )
    )
    return path


def _write_csv(path, rows, columns):
    import csv

    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        for row in rows:
            writer.writerow(
                {c: json.dumps(row[c]) if isinstance(row[c], list) else row[c] for c in columns}
            )


def test_bring_your_own_jsonl_table(tmp_path):
    rows = [
        {k: v for k, v in r.items() if k != "question"} | {"id": f"q{i}"}
        for i, r in enumerate(_byo_rows())
    ]
    table = tmp_path / "outcomes.jsonl"
    table.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    env = gym.make(
        "LLMRouting-Table-v0",
        table=str(table),
        prices=str(_write_prices(tmp_path)),
        split="all",
        lam=0.0,
        completion_tokens=20,
    )
    check_env(env.unwrapped)
    assert env.observation_space.shape == (8,) and env.action_space.n == 2
    _, info = env.reset(seed=0, options={"index": 4})
    _, reward, _, _, info = env.step(1)
    assert info["query_id"] == "q4" and reward == rows[4]["large"]
    assert info["cost"] == pytest.approx((14 * 1.0 + 50 * 2.0) / 1e6)  # per-model completion column
    env.reset(options={"index": 4})
    assert env.step(0)[-1]["cost"] == pytest.approx(
        (14 * 0.1 + 20 * 0.2) / 1e6
    )  # assumed completion


def test_bring_your_own_csv_table_embeds_question_text(tmp_path, monkeypatch):
    from routing_gym.retrieval.encoder import default_encoder

    monkeypatch.setenv("ROUTING_GYM_CACHE", str(tmp_path / "cache"))
    default_encoder.cache_clear()  # pick up the temporary cache
    try:
        rows = [r | {"large|cost": 0.001} for r in _byo_rows()]
        table = tmp_path / "outcomes.csv"
        _write_csv(
            table, rows, ["question", "task", "small", "large", "prompt_tokens", "large|cost"]
        )
        env = gym.make(
            "LLMRouting-Table-v0",
            table=str(table),
            prices=str(_write_prices(tmp_path)),
            split="all",
            tasks=["toy_math"],
            shuffle=False,
        )
        assert env.observation_space.shape == (384,)
        assert set(env.unwrapped.query_tasks) == {"toy_math"} and env.unwrapped.num_queries == 20
        obs, info = env.reset(seed=0)
        assert np.linalg.norm(obs) == pytest.approx(1.0, abs=1e-3)
        assert env.step(1)[-1]["cost"] == pytest.approx(0.001)  # the cost column wins over tokens
        assert (tmp_path / "cache" / "embeddings.sqlite").exists()
    finally:
        default_encoder.cache_clear()


def test_bring_your_own_errors_name_file_line_and_column(tmp_path):
    rows = _byo_rows(5)
    missing = tmp_path / "missing.csv"
    _write_csv(missing, rows, ["task", "small", "large", "prompt_tokens"])
    with pytest.raises(DataFormatError, match="missing.csv.*'question'"):
        gym.make("LLMRouting-Table-v0", table=str(missing), prices=str(_write_prices(tmp_path)))
    rows[2]["large"] = "often"
    bad = tmp_path / "bad.jsonl"
    bad.write_text(
        "\n".join(
            json.dumps({k: v for k, v in r.items() if k != "question"} | {"id": str(i)})
            for i, r in enumerate(rows)
        )
    )
    with pytest.raises(DataFormatError, match=r"bad.jsonl, line 3, field 'large'") as err:
        gym.make("LLMRouting-Table-v0", table=str(bad), prices=str(_write_prices(tmp_path)))
    assert err.value.line == 3 and err.value.field == "large"


def test_models_is_a_deprecated_alias_of_model_names():
    env = gym.make("LLMRouting-Table-GSM8K-v0").unwrapped
    with pytest.warns(DeprecationWarning, match="model_names"):
        assert env.models == env.model_names
    assert len(env.model_names) == env.action_space.n
