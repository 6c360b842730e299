"""Live Teacher–Student envs with tiny random models: contracts, replay, batching, the builder."""

import json
import pickle
import shutil
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import data_equivalence

import routing_gym  # noqa: F401
from routing_gym.action_table import ActionTable, build_action_table
from routing_gym.envs.registration import env_ids_of
from routing_gym.errors import UnknownModelError
from routing_gym.llm import TINY_POOL
from routing_gym.vector import BatchedRoutingVecEnv, make_batched_vec_env

FIXTURES = Path(__file__).resolve().parents[1] / "data" / "fixtures"
LIVE_IDS = sorted(
    env_id
    for env_id in env_ids_of("routing_gym.envs.hotpotqa:HotpotQAEnv") + env_ids_of("routing_gym.envs.mmlu:MMLUEnv")
    if gym.spec(env_id).kwargs.get("action_type") != "hybrid"  # the hybrid-action IDs: test_haps_envs.py
)


def tiny_config(env_id: str, tmp_path: Path, **extra) -> dict:
    """A fast config: tiny random models, self-written fixture questions, a private cache."""
    protocol = {"student_max_new_tokens": 6, "teacher_max_new_tokens": 4}
    config = {
        "models": list(TINY_POOL),
        "data_dir": str(FIXTURES),
        "cache_path": str(tmp_path / "responses.sqlite"),
        "protocol": protocol,
    }
    if "MMLU" in env_id:
        config["split"] = "dev"
    else:
        protocol["search_budget"] = 1
    config.update(extra)
    return config


def rollout(env, seed: int, actions_seed: int = 0, episodes: int = 2):
    """Observations, rewards and infos of a few episodes with seeded actions."""
    rng = np.random.default_rng(actions_seed)
    trace = []
    obs, info = env.reset(seed=seed)
    trace.append((obs, info))
    for _ in range(episodes):
        done = False
        while not done:
            if isinstance(env.action_space, gym.spaces.Discrete):
                action = int(rng.integers(env.action_space.n))
            else:
                action = rng.integers(env.action_space.nvec)
            obs, reward, terminated, truncated, info = env.step(action)
            trace.append((obs, reward, terminated, truncated, info))
            done = terminated or truncated
        obs, info = env.reset()
        trace.append((obs, info))
    return trace



def test_live_ids_are_registered():
    assert {"LLMRouting-HotpotQA-v0", "LLMRouting-MMLU-v0", "LLMRouting-HotpotQA-Assign-v0",
            "LLMRouting-MMLU-Assign-v0"} <= set(LIVE_IDS)
    assert gym.spec("LLMRouting-HotpotQA-v0").nondeterministic


@pytest.mark.parametrize("env_id", LIVE_IDS)
def test_seeded_rollout_replays_exactly_from_a_warm_cache(env_id, tmp_path):
    config = tiny_config(env_id, tmp_path, protocol={"temperature": 0.8, "student_max_new_tokens": 6,
                                                     "teacher_max_new_tokens": 4})
    first = gym.make(env_id, config=config)
    cold = rollout(first, seed=3)
    first.close()
    second = gym.make(env_id, config=config)
    warm = rollout(second, seed=3)
    second.close()
    assert data_equivalence(cold, warm, exact=True)


@pytest.mark.parametrize("env_id", LIVE_IDS)
def test_env_pickles_and_its_spec_serializes(env_id, tmp_path):
    env = gym.make(env_id, config=tiny_config(env_id, tmp_path))
    env.reset(seed=0)
    clone = pickle.loads(pickle.dumps(env))
    a, _ = env.reset(seed=5)
    b, _ = clone.reset(seed=5)
    assert data_equivalence(a, b, exact=True)
    assert json.loads(env.spec.to_json())["id"] == env_id
    env.close()
    clone.close()


def test_action_outside_the_space_is_rejected(tmp_path):
    env = gym.make("LLMRouting-HotpotQA-v0", config=tiny_config("HotpotQA", tmp_path))
    env.reset(seed=0)
    with pytest.raises(ValueError, match="outside the action space"):
        env.unwrapped.step(7)
    assign = gym.make("LLMRouting-HotpotQA-Assign-v0", config=tiny_config("HotpotQA", tmp_path))
    assign.reset(seed=0)
    with pytest.raises(ValueError, match="outside the action space"):
        assign.unwrapped.step(np.array([0, 5]))


def test_bad_config_is_named(tmp_path):
    with pytest.raises(ValueError, match="colour"):
        gym.make("LLMRouting-HotpotQA-v0", config={**tiny_config("HotpotQA", tmp_path), "colour": "red"})
    with pytest.raises(ValueError, match="action_type"):
        gym.make("LLMRouting-HotpotQA-v0", config={**tiny_config("HotpotQA", tmp_path), "action_type": "both"})
    with pytest.raises(ValueError, match="cheap-first"):
        gym.make("LLMRouting-HotpotQA-v0", config={**tiny_config("HotpotQA", tmp_path), "lam": "cheap-first"})
    with pytest.raises(UnknownModelError, match="gpt-17"):
        gym.make("LLMRouting-HotpotQA-v0", config={**tiny_config("HotpotQA", tmp_path), "models": ["gpt-17"]})
    env = gym.make("LLMRouting-HotpotQA-v0", config=tiny_config("HotpotQA", tmp_path))
    for bad_index in (99, -1, 1.7, True, "0"):
        with pytest.raises(ValueError, match="index"):
            env.reset(seed=0, options={"index": bad_index})
    with pytest.raises(ValueError, match="indx"):
        env.reset(seed=0, options={"indx": 0})
    with pytest.raises(ValueError, match="models"):
        env.reset(options={"config": {"models": ["tiny-llama"]}})


#: USD per 1M input and output tokens of the tiny models; a cost bound far above a tiny episode's cost.
TINY_PRICES = {"tiny-llama": (0.01, 0.02), "tiny-qwen2": (0.02, 0.04)}
BOUNDS = {"low": 0.0, "high": 1e-2}


def tiny_cost(info: dict, input_price: float, output_price: float) -> float:
    """An episode's USD cost from its token counts, generation and scoring passes, one model's prices."""
    prompt = info["prompt_tokens"] + info["scoring_prompt_tokens"]
    completion = info["completion_tokens"] + info["scoring_completion_tokens"]
    return (prompt * input_price + completion * output_price) / 1e6


def test_per_step_cost_gives_the_same_episode_total(tmp_path):
    totals = []
    for per_step in (False, True):
        env = gym.make("LLMRouting-HotpotQA-v0", config=tiny_config("HotpotQA", tmp_path, per_step_cost=per_step,
                                                                     lam=5.0, cost_bounds=BOUNDS))
        env.reset(seed=1)
        total, done, rewards = 0.0, False, []
        while not done:
            _, reward, terminated, truncated, info = env.step(0)
            rewards.append(reward)
            total += reward
            done = terminated or truncated
        assert set(info["models"]) == {"tiny-llama"}
        totals.append((total, info["perf"] - 5.0 * tiny_cost(info, *TINY_PRICES["tiny-llama"]) / BOUNDS["high"]))
        if per_step:
            assert sum(r != 0 for r in rewards[:-1]) > 0  # the cost really is spread over the steps
        env.close()
    assert totals[0][0] == pytest.approx(totals[0][1])
    assert totals[1][0] == pytest.approx(totals[0][0])


def test_info_reports_reward_parts_and_optionally_the_calls(tmp_path):
    env = gym.make("LLMRouting-HotpotQA-v0",
                   config=tiny_config("HotpotQA", tmp_path, record_text=True, cost_bounds=BOUNDS), render_mode="ansi")
    env.reset(seed=0)
    done = False
    while not done:
        _, reward, terminated, truncated, info = env.step(1)
        done = terminated or truncated
    assert set(info["models"]) == {"tiny-qwen2"}
    assert info["prompt_tokens"] > 0 and info["completion_tokens"] > 0
    # balanced λ = 0.5; the cost priced by hand from the token counts, over the given bound
    assert reward == pytest.approx(info["perf"] - 0.5 * tiny_cost(info, *TINY_PRICES["tiny-qwen2"]) / BOUNDS["high"])
    calls = info["calls"]
    assert len(calls) == len(info["models"]) and all(c["prompt_ids"] and c["completion_ids"] for c in calls)
    assert {c["role"] for c in calls} <= {"student", "teacher"}
    text = env.render()
    assert info["question"] in text and "tiny-qwen2" in text
    light = gym.make("LLMRouting-HotpotQA-v0", config=tiny_config("HotpotQA", tmp_path))
    _, info = light.reset(seed=0)
    assert "calls" not in info and "transcript" not in info


def test_assignment_env_runs_the_episode_in_one_step(tmp_path):
    env = gym.make("LLMRouting-HotpotQA-Assign-v0", config=tiny_config("HotpotQA", tmp_path))
    env.reset(seed=0)
    _, reward, terminated, truncated, info = env.step(np.array([0, 1]))
    assert terminated and not truncated
    assert info["assignment"] == {"student": "tiny-llama", "teacher": "tiny-qwen2"}
    roles_models = set(zip(info["roles"], info["models"]))
    assert roles_models <= {("student", "tiny-llama"), ("teacher", "tiny-qwen2")}


def test_batched_vector_env_matches_single_envs_with_one_pool_call_per_step(tmp_path, monkeypatch):
    config = tiny_config("HotpotQA", tmp_path)
    vec = make_batched_vec_env("LLMRouting-HotpotQA-v0", n_envs=4, seed=0, env_kwargs={"config": config})
    assert isinstance(vec, BatchedRoutingVecEnv)
    calls = []
    pool = vec.envs[0].unwrapped.pool
    original = type(pool).generate
    monkeypatch.setattr(type(pool), "generate", lambda self, reqs: calls.append(len(reqs)) or original(self, reqs))
    vec.reset()
    rewards = []
    for step in range(6):
        _, reward, _, _ = vec.step(np.array([step % 2] * 4))
        rewards.append(reward)
    assert calls and all(n == 4 for n in calls)  # every step: one batched call for all four envs
    vec.close()
    monkeypatch.undo()
    # The same seeds stepped one env at a time give the same rewards.
    singles = [gym.make("LLMRouting-HotpotQA-v0", config=config) for _ in range(4)]
    from stable_baselines3.common.vec_env import DummyVecEnv

    plain = DummyVecEnv([lambda e=e: e for e in singles])
    plain.seed(0)
    plain.reset()
    for step in range(6):
        _, reward, _, _ = plain.step(np.array([step % 2] * 4))
        np.testing.assert_allclose(reward, rewards[step])


def test_exhaustive_builder_covers_every_assignment_and_resumes(tmp_path):
    out = tmp_path / "table.jsonl"
    config = tiny_config("HotpotQA", tmp_path)
    build_action_table("LLMRouting-HotpotQA-v0", out, config, progress=False)
    table = ActionTable.load(out)
    assert len(table.rows) == 2 * 4  # two fixture questions x 2^2 assignments
    assert len({(r["question_id"], tuple(r["assignment"].values())) for r in table.rows}) == 8
    # A run killed mid-write leaves a partial last line; resuming keeps whole rows and redoes the rest.
    lines = out.read_text().splitlines()
    out.write_text("\n".join(lines[:5]) + "\n" + lines[5][: len(lines[5]) // 2])
    build_action_table("LLMRouting-HotpotQA-v0", out, config, progress=False)
    again = ActionTable.load(out)
    keys = sorted((r["question_id"], tuple(r["assignment"].values())) for r in again.rows)
    assert keys == sorted((r["question_id"], tuple(r["assignment"].values())) for r in table.rows)
    # Same replies from the cache: same outcomes.
    assert {(r["question_id"], tuple(r["assignment"].values())): r["perf"] for r in again.rows} == {
        (r["question_id"], tuple(r["assignment"].values())): r["perf"] for r in table.rows
    }
    oracle = again.oracle()
    means = again.mean_by_assignment()
    assert oracle["perf"] >= max(m["perf"] for m in means.values())


def test_exhaustive_builder_resumes_by_content_not_by_path(tmp_path):
    out = tmp_path / "table.jsonl"
    data = tmp_path / "data"
    shutil.copytree(FIXTURES / "hotpotqa", data / "hotpotqa")
    config = tiny_config("HotpotQA", tmp_path, data_dir=str(data), limit=1)
    build_action_table("LLMRouting-HotpotQA-v0", out, config, progress=False)
    table = ActionTable.load(out)
    assert table.header["setting"]["seed"] == 0 and set(table.header["setting"]["models"]) == set(TINY_POOL)
    assert len(table.rows) == 4
    # Another protocol setting or seed: refused, naming what differs; the file is untouched.
    before = out.read_bytes()
    other = {**config, "protocol": {**config["protocol"], "teacher_max_new_tokens": 5}}
    with pytest.raises(ValueError, match="another setting.*protocol"):
        build_action_table("LLMRouting-HotpotQA-v0", out, other, progress=False)
    with pytest.raises(ValueError, match="another setting.*seed"):
        build_action_table("LLMRouting-HotpotQA-v0", out, config, seed=1, progress=False)
    assert out.read_bytes() == before
    # A larger limit extends the table with the new question only.
    build_action_table("LLMRouting-HotpotQA-v0", out, {**config, "limit": 2}, progress=False)
    assert len(ActionTable.load(out).rows) == 8
    # The same question id with edited content: refused.
    path = data / "hotpotqa" / "valid.jsonl"
    path.write_text(path.read_text().replace("Which river flows", "Which stream flows"))
    with pytest.raises(ValueError, match="question 'toy-bridge-1' has other content"):
        build_action_table("LLMRouting-HotpotQA-v0", out, {**config, "limit": 2}, progress=False)
    # A file of an older build (rows, no header) is read but not resumed.
    legacy = tmp_path / "legacy.jsonl"
    legacy.write_text("".join(line + "\n" for line in out.read_text().splitlines()[1:]))
    assert ActionTable.load(legacy).header is None and len(ActionTable.load(legacy).rows) == 8
    with pytest.raises(ValueError, match="no header line"):
        build_action_table("LLMRouting-HotpotQA-v0", legacy, config, progress=False)


def test_ppo_trains_on_the_discrete_live_env(tmp_path):
    from stable_baselines3 import PPO

    config = tiny_config("HotpotQA", tmp_path, lam=10.0, per_step_cost=True)
    vec = make_batched_vec_env("LLMRouting-HotpotQA-v0", n_envs=4, seed=0, env_kwargs={"config": config})
    model = PPO("MultiInputPolicy", vec, n_steps=32, batch_size=64, n_epochs=4, learning_rate=3e-3, seed=0)
    obs = vec.reset()

    def prob_cheapest():
        tensor, _ = model.policy.obs_to_tensor(obs)
        with torch.no_grad():
            return float(model.policy.get_distribution(tensor).distribution.probs[:, 0].mean())

    before = prob_cheapest()
    model.learn(total_timesteps=256)
    # Tiny random models score 0, so only cost matters: the cheaper tiny-llama (action 0) should win.
    after = prob_cheapest()
    assert after > before + 0.1, (before, after)
    vec.close()


def test_a_search_step_retrieves_through_the_env(tmp_path):
    """Tiny models never write a valid action, so hand the env a reply that searches."""
    from routing_gym.engine import TurnCalls
    from routing_gym.llm.requests import GenerationResult

    env = gym.make("LLMRouting-HotpotQA-v0", config=tiny_config("HotpotQA", tmp_path, record_text=True),
                   render_mode="ansi").unwrapped
    _, info = env.reset(seed=0, options={"index": 0})
    # the env's own step path (plan -> engine -> finish), with the model's reply written by hand
    move = env.plan(0)
    request = env.engine.request(move)
    reply = GenerationResult(model=request.model, text=" I should look it up.\nAction: Search[Freedonia]",
                             prompt_ids=[1, 2, 3], completion_ids=[4, 5], cost=1e-6)
    obs, _, terminated, truncated, info = env.finish(move, env.engine.apply(TurnCalls(move, request, reply, None)))
    assert not (terminated or truncated)
    assert info["index"] == 0
    assert obs["searches_left"][0] == 0.0  # the budget of one search is spent
    assert "Freedonia is a made-up country" in env.render()


@pytest.mark.timeout(600)
def test_subprocess_workers_share_one_cache(tmp_path):
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import SubprocVecEnv

    from routing_gym.llm import ResponseCache

    config = tiny_config("HotpotQA", tmp_path)
    # "module:ID" makes each fresh worker process import routing_gym, which registers the ID.
    vec = make_vec_env("routing_gym:LLMRouting-HotpotQA-v0", n_envs=2, seed=0, vec_env_cls=SubprocVecEnv,
                       env_kwargs={"config": config, "render_mode": None})  # forkserver: fork after torch threads can hang
    vec.reset()
    for step in range(3):
        vec.step(np.array([0, 1]))
    vec.close()  # workers close their envs, flushing their cache counts
    stats = ResponseCache(config["cache_path"]).stats()
    assert stats["tiny-llama"]["entries"] >= 3 and stats["tiny-qwen2"]["entries"] >= 3


def test_a_limited_mmlu_env_spreads_over_the_subjects(data_root, tmp_path):
    if not (data_root / "mmlu").is_dir():
        pytest.skip("data missing: no mmlu/ in the data directory")
    env = gym.make("LLMRouting-MMLU-v0", config={"data_dir": str(data_root), "split": "test", "limit": 60,
                                                  "cache_path": str(tmp_path / "c.sqlite")}).unwrapped
    subjects = [e.subject for e in env.examples]
    assert len(env.examples) == 60 and len(set(subjects)) >= 20  # a prefix would be abstract algebra only
    assert subjects == sorted(subjects)  # kept in file order


def test_skip_and_limit_pick_disjoint_question_ranges(tmp_path):
    for env_id in ("LLMRouting-HotpotQA-v0", "LLMRouting-MMLU-v0"):
        config = tiny_config(env_id.split("-")[1], tmp_path)
        full = [str(e.id) for e in gym.make(env_id, config=config).unwrapped.examples]
        first = [str(e.id) for e in gym.make(env_id, config={**config, "limit": 1}).unwrapped.examples]
        rest = [str(e.id) for e in gym.make(env_id, config={**config, "skip": 1}).unwrapped.examples]
        assert len(first) == 1 and not set(first) & set(rest) and set(first) | set(rest) == set(full)
        with pytest.raises(ValueError, match="no questions after skipping"):
            gym.make(env_id, config={**config, "skip": len(full)}).unwrapped.examples
        with pytest.raises(ValueError, match="config\\['skip'\\] must be an int >= 0"):
            gym.make(env_id, config={**config, "skip": -1})


def test_the_teacher_student_envs_share_the_cost_bounds_check(tmp_path):
    with pytest.raises(ValueError, match="low <= high"):
        gym.make("LLMRouting-HotpotQA-v0", config=tiny_config("HotpotQA", tmp_path, cost_bounds={"low": 1.0, "high": 0.0}))
    with pytest.raises(ValueError, match=r"\['high'\] must be a finite number"):
        gym.make("LLMRouting-MMLU-v0", config=tiny_config("MMLU", tmp_path, cost_bounds={"low": 0.0, "high": "1"}))
