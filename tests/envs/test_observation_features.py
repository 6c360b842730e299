"""The ``features`` option: the task one-hot and the scaled log prompt length beside the embedding.

Values are checked by hand on a tiny table whose prompt lengths are 0, 9 and 99 tokens, so the
scaled ``log1p`` length is 0, log(10)/log(100) = 0.5 and 1; on a hand-written hop tree; and
against the default observations, which must not change.
"""

from __future__ import annotations

import json
import math
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import routing_gym  # noqa: F401
from agents import HierRouter, KNNRouter, MLPRouter
from agents.calibrated_router import CalibratedRouter
from routing_gym.envs.features import check_features, flatten_observation, scaled_log_length
from routing_gym.envs.multihop import MULTIHOP_FEATURES, hop_observation_space
from routing_gym.envs.multihop_table import MultiHopTableEnv
from routing_gym.hop_tree import TREE_FORMAT, encode_vector

ALL = ["embedding", "task", "length"]
TOKENS = (0, 99, 9)  # row i has TOKENS[i % 3] prompt tokens: scaled length 0, 1, 0.5
LENGTH = {0: 0.0, 99: 1.0, 9: 0.5}


@pytest.fixture
def tiny_table(tmp_path) -> dict:
    """Two tasks with opposite best models and one embedding for every row: only the task
    tells the queries apart. 'alpha' rows: 'cheap' scores 1, 'dear' 0; 'beta' rows: reversed."""
    rows = []
    for i in range(48):
        task = "alpha" if i % 2 == 0 else "beta"
        scores = {"cheap": 1.0, "dear": 0.0} if task == "alpha" else {"cheap": 0.0, "dear": 1.0}
        rows.append({"id": f"q{i}", "task": task, "prompt_tokens": TOKENS[i % 3],
                     "embedding": [1.0, 0.0, 0.0, 0.0], **scores})
    table = tmp_path / "table.jsonl"
    table.write_text("".join(json.dumps(row) + "\n" for row in rows))
    prices = tmp_path / "prices.json"
    prices.write_text(json.dumps({"cheap": {"input_price": 1.0, "output_price": 2.0},
                                  "dear": {"input_price": 10.0, "output_price": 20.0}}))
    return {"table": str(table), "prices": str(prices), "completion_tokens": 10, "split": "all",
            "shuffle": False, "lam": 0.0}


def row_of(env, query_id: str) -> int:
    return env.unwrapped.query_ids.index(query_id)


# ---------------------------------------------------------------- defaults unchanged


def test_default_features_keep_every_observation_as_it_was():
    table = gym.make("LLMRouting-Table-v0")
    assert table.unwrapped.config["features"] == ["embedding"]
    assert table.observation_space == gym.spaces.Box(-1.0, 1.0, (384,), np.float32)
    obs, _ = table.reset(seed=0)
    assert isinstance(obs, np.ndarray) and obs.shape == (384,)
    cascade = gym.make("LLMRouting-Table-Cascade-v0")
    assert set(cascade.observation_space.spaces) == {"embedding", "depth", "cost", "tried", "outcomes"}
    assert MULTIHOP_FEATURES == ("embedding", "task")
    assert set(hop_observation_space(3).spaces) == {"context", "depth", "cost", "task", "answered"}
    assert set(hop_observation_space(3, ["embedding"]).spaces) == {"context", "depth", "cost", "answered"}


# ---------------------------------------------------------------- table and cascade


def test_table_env_task_one_hot_and_length_by_hand(tiny_table):
    env = gym.make("LLMRouting-Table-v0", **tiny_table, features=ALL)
    assert env.unwrapped.task_list == ("alpha", "beta")  # the table's tasks, sorted
    assert env.observation_space["task"].shape == (2,) and env.observation_space["length"].shape == (1,)
    for i in (0, 1, 2, 3, 4, 5):
        obs, info = env.reset(options={"index": row_of(env, f"q{i}")})
        assert info["query_id"] == f"q{i}"
        expected_task = [1.0, 0.0] if i % 2 == 0 else [0.0, 1.0]
        assert obs["task"].tolist() == expected_task
        assert obs["length"].tolist() == pytest.approx([LENGTH[TOKENS[i % 3]]], abs=1e-6)
        assert obs["embedding"].tolist() == [1.0, 0.0, 0.0, 0.0]
        assert obs["task"].dtype == np.float32 and obs["length"].dtype == np.float32


def test_task_list_follows_the_tasks_key_and_only_task_or_length_can_be_asked(tiny_table):
    env = gym.make("LLMRouting-Table-v0", **tiny_table, tasks=["beta", "alpha"], features=["embedding", "task"])
    assert env.unwrapped.task_list == ("beta", "alpha")
    obs, _ = env.reset(options={"index": row_of(env, "q0")})  # an alpha row: the second column
    assert set(obs) == {"embedding", "task"} and obs["task"].tolist() == [0.0, 1.0]
    only_length = gym.make("LLMRouting-Table-v0", **tiny_table, features=["embedding", "length"])
    obs, _ = only_length.reset(options={"index": row_of(only_length, "q2")})
    assert set(obs) == {"embedding", "length"} and obs["length"].tolist() == pytest.approx([0.5])


def test_length_is_scaled_on_train_and_clipped():
    # bounds in log1p units: [log 10, log 100]; 9 tokens -> 0, 99 -> 1, 999 -> clipped to 1
    out = scaled_log_length(np.array([0, 9, 10**1.5 - 1, 99, 999]), math.log(10), math.log(100))
    assert out.shape == (5, 1) and out.dtype == np.float32
    assert out[:, 0].tolist() == pytest.approx([0.0, 0.0, 0.5, 1.0, 1.0], abs=1e-6)


def test_cascade_observes_the_same_features(tiny_table):
    env = gym.make("LLMRouting-Table-Cascade-v0", **tiny_table, features=ALL, max_depth=2)
    obs, _ = env.reset(options={"index": row_of(env, "q3")})
    assert obs["task"].tolist() == [0.0, 1.0] and obs["length"].tolist() == pytest.approx([0.0])
    obs, *_ = env.step(0)  # the features stay through the episode
    assert obs["task"].tolist() == [0.0, 1.0] and obs["tried"].tolist() == [1, 0]


@pytest.mark.parametrize("env_id", ["LLMRouting-Table-v0", "LLMRouting-Table-Cascade-v0"])
def test_envs_with_features_pass_gymnasium_and_sb3_checkers(env_id):
    env = gym.make(env_id, features=ALL)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gym_check_env(env.unwrapped, skip_render_check=True)
        sb3_check_env(env.unwrapped, warn=True)
    assert not [f"{w.category.__name__}: {w.message}" for w in caught]


def test_features_with_lam_in_obs_keep_every_entry(tiny_table):
    env = gym.make("LLMRouting-Table-v0", **tiny_table, features=ALL, lam_in_obs=True)
    obs, _ = env.reset(options={"index": 0})
    assert set(obs) == {"embedding", "task", "length", "lam"} and env.observation_space.contains(obs)


# ---------------------------------------------------------------- bad names


@pytest.mark.parametrize(
    "value, message",
    [
        (["embedding", "colour"], "config key 'features': unknown feature 'colour'; choose from"),
        (["task"], "must include 'embedding'"),
        ("embedding", "must be a list of feature names"),
        (["embedding", "task", "task"], "names a feature twice"),
    ],
)
def test_a_bad_features_value_is_one_line_naming_the_option(tiny_table, value, message):
    with pytest.raises(ValueError, match=message) as error:
        gym.make("LLMRouting-Table-v0", **tiny_table, features=value)
    assert "\n" not in str(error.value)
    with pytest.raises(ValueError, match=message):
        check_features(value)


def test_features_are_fixed_at_construction(tiny_table):
    env = gym.make("LLMRouting-Table-v0", **tiny_table)
    with pytest.raises(ValueError, match="'features' fixes the spaces"):
        env.reset(options={"config": {"features": ALL}})


# ---------------------------------------------------------------- multi-hop replay


def write_tree(path, question_chars: int | None) -> str:
    """A depth-1 tree of two models and one GSM8K query, written by hand."""
    header = {"format": TREE_FORMAT, "depth": 1, "config": {"models": ["a", "b"]},
              "cost_bounds": {"low": 0.0, "high": 1.0}}
    context = encode_vector(np.full(384, 0.01, dtype=np.float32))
    node = lambda p, s: {"path": p, "context": context, "cost": 0.1 * len(p), "prompt_tokens": 5,  # noqa: E731
                         "completion_tokens": 3, "score": s, "answer": "1", "details": {}}
    row = {"question_id": "gsm8k/test/0", "task": "gsm8k", "index": 0,
           "nodes": [node([], 0.0), node([0], 1.0), node([1], 0.0)]}
    if question_chars is not None:
        row["question_chars"] = question_chars
    path.write_text(json.dumps(header) + "\n" + json.dumps(row) + "\n")
    return str(path)


def test_multihop_replay_features_by_hand(tmp_path):
    tree = write_tree(tmp_path / "tree.jsonl", question_chars=128)
    default = MultiHopTableEnv(tree_path=tree)
    obs, _ = default.reset(seed=0)
    assert set(obs) == {"context", "depth", "cost", "task", "answered"}
    assert obs["task"].tolist() == [1.0, 0, 0, 0, 0, 0]  # gsm8k is the first of HOP_TASKS
    full = MultiHopTableEnv(tree_path=tree, features=ALL)
    obs, _ = full.reset(seed=0)
    expected = (math.log1p(128) - math.log1p(16)) / (math.log1p(8192) - math.log1p(16))
    assert obs["length"].tolist() == pytest.approx([expected], abs=1e-6)
    assert full.observation_space.contains(obs)
    bare = MultiHopTableEnv(tree_path=tree, features=["embedding"])
    obs, _ = bare.reset(seed=0)
    assert "task" not in obs and bare.observation_space.contains(obs)


def test_multihop_replay_refuses_length_from_a_tree_without_question_lengths(tmp_path):
    tree = write_tree(tmp_path / "old.jsonl", question_chars=None)
    MultiHopTableEnv(tree_path=tree)  # the default needs no length
    with pytest.raises(ValueError, match="'length' needs each row's question_chars"):
        MultiHopTableEnv(tree_path=tree, features=ALL)
    with pytest.raises(ValueError, match="unknown feature 'size'"):
        MultiHopTableEnv(tree_path=tree, features=["embedding", "size"])


# ---------------------------------------------------------------- routers read them


def test_flatten_observation_orders_embedding_task_length():
    single = {"length": np.array([0.5], np.float32), "task": np.array([0, 1], np.float32),
              "embedding": np.array([1, 2, 3], np.float32), "lam": np.array([0.3], np.float32)}
    x, batched = flatten_observation(single)
    assert not batched and x.tolist() == [[1, 2, 3, 0, 1, 0.5]]  # lam is not a query feature
    batch = {k: np.stack([v, v]) for k, v in single.items()}
    x, batched = flatten_observation(batch)
    assert batched and x.shape == (2, 6)


@pytest.mark.parametrize("router_cls", [KNNRouter, MLPRouter, CalibratedRouter])
def test_a_router_trained_with_features_uses_the_task(tiny_table, router_cls):
    # every row has the same embedding: only the task one-hot can tell 'cheap' rows from 'dear' rows
    settings = {KNNRouter: {"k": 5}, MLPRouter: {"max_iter": 400, "early_stopping": False}, CalibratedRouter: {}}
    with_task = gym.make("LLMRouting-Table-v0", **tiny_table, features=ALL)
    router = router_cls(**settings[router_cls]).fit_env(with_task)
    assert router.embedding_dim == 4 + 2 + 1
    for i in range(6):
        obs, _ = with_task.reset(options={"index": row_of(with_task, f"q{i}")})
        action, _ = router.predict(obs)
        assert with_task.unwrapped.model_names[int(action)] == ("cheap" if i % 2 == 0 else "dear")
    blind = gym.make("LLMRouting-Table-v0", **tiny_table)
    plain = router_cls(**settings[router_cls]).fit_env(blind)
    picks = {int(plain.predict(blind.reset(options={"index": i})[0])[0]) for i in range(6)}
    assert len(picks) == 1  # the embedding alone cannot tell the tasks apart
    with pytest.raises(ValueError, match="the same features"):
        router.predict(blind.reset(options={"index": 0})[0])


def test_ppo_observes_the_features(tiny_table):
    env = gym.make("LLMRouting-Table-v0", **tiny_table, features=ALL)
    agent = HierRouter(total_timesteps=64, n_steps=32, batch_size=32, n_envs=1)
    agent.fit(env)
    assert set(agent.model.observation_space.spaces) == {"embedding", "task", "length"}
    obs, _ = env.reset(options={"index": 0})
    action, _ = agent.predict(obs)
    assert 0 <= int(action) < 2


def test_live_multihop_length_equals_its_replay_and_the_question_text(tmp_path):
    from pathlib import Path

    from routing_gym.envs.multihop import MultiHopEnv
    from routing_gym.hop_tree import build_hop_tree
    from routing_gym.llm import TINY_POOL
    from routing_gym.tasks import get_task

    fixtures = Path(__file__).resolve().parents[1] / "data" / "fixtures"
    config = {"models": list(TINY_POOL), "data_dir": str(fixtures), "fractions": {"test": 1.0},
              "tasks": ["gsm8k"], "limit": 2, "cache_path": str(tmp_path / "cache.sqlite"),
              "max_new_tokens": 4}
    tree = build_hop_tree(tmp_path / "tree.jsonl", config, depth=1, progress=False)
    live = MultiHopEnv(config={**config, "features": ALL})
    replay = MultiHopTableEnv(tree_path=str(tree), features=ALL, shuffle=False)
    assert live.observation_space == replay.observation_space
    low, high = math.log1p(16), math.log1p(8192)
    for index, (task, example) in enumerate(live.examples):
        live_obs, info = live.reset(options={"index": index})
        replay_obs, _ = replay.reset(options={"question_id": info["question_id"]})
        chars = len(get_task(task).question(example))
        expected = min(max((math.log1p(chars) - low) / (high - low), 0.0), 1.0)
        assert live_obs["length"].tolist() == pytest.approx([expected], abs=1e-6)
        assert replay_obs["length"].tolist() == live_obs["length"].tolist()
        assert replay_obs["task"].tolist() == live_obs["task"].tolist() == [1.0, 0, 0, 0, 0, 0]
    live.close()


def test_calibrated_router_round_trips_and_its_probabilities_are_calibrated(tiny_table, tmp_path):
    env = gym.make("LLMRouting-Table-v0", **tiny_table, features=ALL)
    router = CalibratedRouter().fit_env(env)
    x = env.unwrapped.observed_inputs
    p, cost = router.estimate(x)
    assert p.shape == (48, 2) and ((p >= 0) & (p <= 1)).all() and ((cost >= 0) & (cost <= 1)).all()
    # the task decides every score: calibrated on out-of-fold predictions, the alpha rows read
    # 'cheap' at 1 and 'dear' at 0, and the beta rows the reverse
    alpha = np.array(env.unwrapped.query_tasks) == "alpha"
    np.testing.assert_allclose(p[alpha], np.tile([1.0, 0.0], (alpha.sum(), 1)), atol=1e-9)
    np.testing.assert_allclose(p[~alpha], np.tile([0.0, 1.0], ((~alpha).sum(), 1)), atol=1e-9)
    loaded = CalibratedRouter.load(router.save(tmp_path / "calibrated.pt"))
    np.testing.assert_array_equal(loaded.estimate(x)[0], p)
    with pytest.raises(ValueError, match="'folds' must be an int >= 2"):
        CalibratedRouter(folds=1)


def test_resetting_with_the_same_features_as_a_tuple_is_no_change(tiny_table):
    env = gym.make("LLMRouting-Table-v0", **tiny_table, features=("embedding", "task"))
    obs, _ = env.reset(options={"config": {"features": ("embedding", "task")}, "index": 0})
    assert set(obs) == {"embedding", "task"}
