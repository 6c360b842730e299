"""The live multi-hop env (HierRouter's MDP) with tiny random models and self-written fixtures."""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from gymnasium.utils.env_checker import data_equivalence

import routing_gym  # noqa: F401
from routing_gym.envs.registration import env_ids_of
from routing_gym.errors import UnknownModelError
from routing_gym.llm import TINY_POOL
from routing_gym.engine import TurnCalls
from routing_gym.llm.requests import GenerationResult

FIXTURES = Path(__file__).resolve().parents[1] / "data" / "fixtures"
MULTIHOP_IDS = sorted(env_ids_of("routing_gym.envs.multihop:MultiHopEnv"))


def tiny_config(tmp_path: Path, **extra) -> dict:
    """Tiny random models, the fixture queries (all in "test"), a private cache, short replies."""
    config = {
        "models": list(TINY_POOL),
        "data_dir": str(FIXTURES),
        "fractions": {"test": 1.0},  # the few fixture queries all land in the test split
        "splits": {"mmlu": "train"},  # the MMLU fixture is a dev folder
        "humaneval_path": str(FIXTURES / "humaneval_toy.jsonl"),
        "cache_path": str(tmp_path / "responses.sqlite"),
        "max_new_tokens": 8,
        "sandbox": {"timeout_s": 3, "cpu_seconds": 2},
    }
    config.update(extra)
    return config


def reply_step(env, move, reply: GenerationResult):
    """Finish a planned hop with ``reply`` as its model output: the env's own step path
    (plan -> engine -> finish) with the model call replaced by a hand-written reply."""
    if move is None:  # STOP makes no call
        return env.finish(None, None)
    request = env.engine.request(move)
    return env.finish(move, env.engine.apply(TurnCalls(move, request, reply, [])))


def rollout(env, seed: int, episodes: int = 3):
    rng = np.random.default_rng(seed)
    trace = [env.reset(seed=seed)]
    for _ in range(episodes):
        done = False
        while not done:
            valid = np.flatnonzero(env.unwrapped.action_masks())
            obs, reward, terminated, truncated, info = env.step(int(rng.choice(valid)))
            trace.append((obs, reward, terminated, truncated, info))
            done = terminated or truncated
        trace.append(env.reset())
    return trace



def test_all_seven_ids_are_registered():
    assert MULTIHOP_IDS == sorted(
        ["LLMRouting-MultiHop-v0"]
        + [f"LLMRouting-MultiHop-{t}-v0" for t in ("GSM8K", "MATH", "MBPP", "ARC", "MMLU", "HumanEval")]
    )
    assert all(gym.spec(env_id).nondeterministic for env_id in MULTIHOP_IDS)
    assert gym.make("LLMRouting-MultiHop-ARC-v0", config={"models": list(TINY_POOL)}).unwrapped.config["tasks"] == [
        "arc_challenge"]


def test_seeded_rollout_replays_exactly_from_a_warm_cache(tmp_path):
    config = tiny_config(tmp_path, temperature=0.9)
    first = gym.make("LLMRouting-MultiHop-v0", config=config)
    cold = rollout(first, seed=4)
    first.close()
    second = gym.make("LLMRouting-MultiHop-v0", config=config)
    warm = rollout(second, seed=4)
    stats = second.unwrapped.pool.cache.stats()
    second.close()
    assert data_equivalence(cold, warm, exact=True)
    assert sum(s["hits"] for s in stats.values()) > 0


def test_env_pickles_and_its_spec_serializes(tmp_path):
    env = gym.make("LLMRouting-MultiHop-MBPP-v0", config=tiny_config(tmp_path))
    env.reset(seed=0)
    env.step(0)
    clone = pickle.loads(pickle.dumps(env))
    assert data_equivalence(env.reset(seed=5), clone.reset(seed=5), exact=True)
    assert data_equivalence(env.step(1)[:4], clone.step(1)[:4], exact=True)
    assert json.loads(env.spec.to_json())["id"] == "LLMRouting-MultiHop-MBPP-v0"
    env.close()
    clone.close()


def test_stop_is_masked_at_depth_0_and_the_horizon_ends_the_episode(tmp_path):
    env = gym.make("LLMRouting-MultiHop-GSM8K-v0", config=tiny_config(tmp_path, horizon=2)).unwrapped
    env.reset(seed=0)
    stop = env.stop_action
    assert env.action_space.n == 3 and stop == 2
    assert env.action_masks().tolist() == [True, True, False]
    _, reward, terminated, _, info = env.step(stop)  # an agent ignoring the mask: no answer, no cost
    assert terminated and reward == 0.0 and info["perf"] == 0.0 and info["models"] == []
    env.reset(seed=0)
    obs, _, terminated, _, info = env.step(1)
    assert not terminated and env.action_masks().tolist() == [True, True, True]
    assert obs["depth"][0] == pytest.approx(0.5) and obs["answered"].tolist() == [0.0, 1.0]
    assert info["hops"][0]["model"] == "tiny-qwen2" and info["hops"][0]["completion_tokens"] > 0
    obs, _, terminated, _, info = env.step(1)
    assert terminated and obs["depth"][0] == 1.0 and info["models"] == ["tiny-qwen2", "tiny-qwen2"]
    with pytest.raises(RuntimeError, match="episode is over"):
        env.step(0)


def test_a_right_final_answer_scores_and_the_reward_subtracts_the_cost(tmp_path):
    env = gym.make("LLMRouting-MultiHop-MBPP-v0", config=tiny_config(tmp_path, lam=2.0, shuffle=False)).unwrapped
    env.reset(seed=0, options={"index": 0})  # add_two
    move = env.plan(0)
    request = env.engine.request(move)
    assert "assert add_two(1, 2) == 3" in request.messages[0]["content"]
    reply = GenerationResult(model=request.model, text="```python\ndef add_two(a, b):\n    return a + b\n```",
                             prompt_ids=[1] * 50, completion_ids=[2] * 20, cost=1e-6)
    reply_step(env, move, reply)
    request = env.engine.request(env.plan(1))
    assert "--- Answer 1 ---\n```python\ndef add_two" in request.messages[0]["content"]  # the next hop sees it
    _, reward, terminated, _, info = reply_step(env, env.plan(env.stop_action), None)
    assert terminated and info["perf"] == 1.0 and info["execution"] == "passed"
    # one hop at 1e-6 USD; the default bound is 3 hops (the horizon) of the dearest hop, 1024 prompt
    # and 8 new tokens on tiny-qwen2 (0.02 / 0.04 USD per 1M): 3 · 20.8e-6 = 62.4e-6
    assert info["normalized_cost"] == pytest.approx(1e-6 / 62.4e-6)
    assert reward == pytest.approx(1.0 - 2.0 * 1e-6 / 62.4e-6)
    assert info["reward_parts"]["score"] == 1.0
    env.reset(seed=0, options={"index": 0})
    wrong = GenerationResult(model="tiny-llama", text="def add_two(a, b):\n    while True:\n        pass\n",
                             prompt_ids=[1], completion_ids=[2], cost=0.0)
    reply_step(env, env.plan(0), wrong)
    _, reward, _, _, info = reply_step(env, None, None)
    assert info["perf"] == 0.0 and info["execution"] == "timeout"


@pytest.mark.parametrize("task, text, gold_score", [
    ("GSM8K", "400 * 3 = 1200\n#### 1200", 1.0),
    ("MATH", "$\\boxed{5}$", 1.0),
    ("ARC", "Water is a liquid. Answer: B", 1.0),
    ("ARC", "Answer: A", 0.0),
])
def test_each_task_scores_its_final_answer(task, text, gold_score, tmp_path):
    env = gym.make(f"LLMRouting-MultiHop-{task}-v0", config=tiny_config(tmp_path, shuffle=False)).unwrapped
    env.reset(seed=0, options={"index": 0})
    reply_step(env, env.plan(0), GenerationResult(model="tiny-llama", text=text, prompt_ids=[1], completion_ids=[2],
                                                  cost=0.0))
    _, _, _, _, info = reply_step(env, None, None)
    assert info["perf"] == gold_score


def test_per_step_cost_gives_the_same_episode_total(tmp_path):
    totals = []
    for per_step in (False, True):
        env = gym.make("LLMRouting-MultiHop-GSM8K-v0", config=tiny_config(tmp_path, per_step_cost=per_step, lam=5.0))
        env.reset(seed=1)
        rewards = []
        for action in (0, 1, 0):
            _, reward, terminated, _, info = env.step(action)
            rewards.append(reward)
        assert terminated
        totals.append(sum(rewards))
        if per_step:
            assert all(r < 0 for r in rewards[:-1])  # the cost really is paid hop by hop
        else:
            assert rewards[:-1] == [0.0, 0.0]
            price = {"tiny-llama": (0.01, 0.02), "tiny-qwen2": (0.02, 0.04)}  # USD per 1M in, out
            cost = sum((hop["prompt_tokens"] * price[hop["model"]][0]
                        + hop["completion_tokens"] * price[hop["model"]][1]) / 1e6 for hop in info["hops"])
            assert [hop["model"] for hop in info["hops"]] == ["tiny-llama", "tiny-qwen2", "tiny-llama"]
            # the default bound: 3 hops of 1024 prompt and 8 new tokens on tiny-qwen2, 3 · 20.8e-6
            assert totals[0] == pytest.approx(info["perf"] - 5.0 * cost / 62.4e-6)
        env.close()
    assert totals[1] == pytest.approx(totals[0])


def test_text_is_opt_in(tmp_path):
    env = gym.make("LLMRouting-MultiHop-ARC-v0", config=tiny_config(tmp_path, record_text=True), render_mode="ansi")
    env.reset(seed=0)
    _, _, _, _, info = env.step(0)
    assert info["text"]["responses"] and info["text"]["messages"][0][0]["role"] == "user"
    assert info["text"]["question"] in env.render()
    light = gym.make("LLMRouting-MultiHop-ARC-v0", config=tiny_config(tmp_path))
    light.reset(seed=0)
    assert "text" not in light.step(0)[4]


def test_bad_actions_and_config_are_named(tmp_path):
    env = gym.make("LLMRouting-MultiHop-GSM8K-v0", config=tiny_config(tmp_path)).unwrapped
    env.reset(seed=0)
    for bad in (3, -1, 1.0, True, "0"):
        with pytest.raises(ValueError, match="outside the action space"):
            env.step(bad)
    with pytest.raises(ValueError, match="colour"):
        gym.make("LLMRouting-MultiHop-v0", config={**tiny_config(tmp_path), "colour": 1})
    with pytest.raises(ValueError, match="hotpotqa"):
        gym.make("LLMRouting-MultiHop-v0", config={**tiny_config(tmp_path), "tasks": ["hotpotqa"]})
    with pytest.raises(ValueError, match="horizon"):
        gym.make("LLMRouting-MultiHop-v0", config={**tiny_config(tmp_path), "horizon": 0})
    with pytest.raises(ValueError, match="sandbox"):
        gym.make("LLMRouting-MultiHop-v0", config={**tiny_config(tmp_path), "sandbox": {"wall": 3}})
    with pytest.raises(UnknownModelError, match="gpt-17"):
        gym.make("LLMRouting-MultiHop-v0", config={**tiny_config(tmp_path), "models": ["gpt-17"]})
    with pytest.raises(ValueError, match="split must be one of"):
        gym.make("LLMRouting-MultiHop-v0", config={**tiny_config(tmp_path), "split": "dev"}).reset(seed=0)
    with pytest.raises(ValueError, match="models"):
        env.reset(options={"config": {"models": ["tiny-llama"]}})
    for bad_index in (99, 0.5, True):
        with pytest.raises(ValueError, match="index"):
            env.reset(seed=0, options={"index": bad_index})
    with pytest.raises(ValueError, match="indx"):
        env.reset(seed=0, options={"indx": 0})


def test_maskable_ppo_trains_and_never_stops_before_the_first_hop(tmp_path):
    from sb3_contrib import MaskablePPO
    from stable_baselines3.common.env_util import make_vec_env

    config = tiny_config(tmp_path, lam=10.0, per_step_cost=True, max_new_tokens=4)
    vec = make_vec_env("LLMRouting-MultiHop-GSM8K-v0", n_envs=2, seed=0, env_kwargs={"config": config,
                                                                                  "render_mode": None})
    model = MaskablePPO("MultiInputPolicy", vec, n_steps=16, batch_size=32, n_epochs=2, seed=0)
    model.learn(total_timesteps=32)
    env = gym.make("LLMRouting-MultiHop-GSM8K-v0", config=config).unwrapped
    for seed in range(5):
        obs, _ = env.reset(seed=seed)
        action, _ = model.predict(obs, action_masks=env.action_masks(), deterministic=False)
        assert int(action) != env.stop_action
    vec.close()


def test_batched_vector_env_steps_the_multihop_env(tmp_path):
    from routing_gym.vector import make_batched_vec_env

    vec = make_batched_vec_env("LLMRouting-MultiHop-v0", n_envs=2, seed=0,
                               env_kwargs={"config": tiny_config(tmp_path)})
    vec.reset()
    dones = []
    for _ in range(3):
        _, _, done, _ = vec.step(np.array([0, 1]))
        dones.append(done)
    # horizon 3 and no STOP: the third hop ends both episodes, and not before (then auto-reset)
    assert [d.tolist() for d in dones] == [[False, False], [False, False], [True, True]]
    vec.close()


@pytest.mark.timeout(600)
def test_subprocess_workers_share_one_cache(tmp_path):
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import SubprocVecEnv

    from routing_gym.llm import ResponseCache

    config = tiny_config(tmp_path)
    # "module:ID" makes each fresh worker process import routing_gym, which registers the ID
    vec = make_vec_env("routing_gym:LLMRouting-MultiHop-v0", n_envs=2, seed=0, vec_env_cls=SubprocVecEnv,
                       vec_env_kwargs={"start_method": "forkserver"}, env_kwargs={"config": config, "render_mode": None})
    vec.reset()
    for _ in range(3):
        vec.step(np.array([0, 1]))
    vec.close()
    stats = ResponseCache(config["cache_path"]).stats()
    assert stats["tiny-llama"]["entries"] >= 3 and stats["tiny-qwen2"]["entries"] >= 3


def test_hop_tree_builds_resumes_and_its_table_env_replays_the_live_env(tmp_path):
    from routing_gym.envs.multihop_table import MultiHopTableEnv
    from routing_gym.hop_tree import HopTree, build_hop_tree

    config = tiny_config(tmp_path, tasks=["gsm8k", "mbpp", "arc_challenge"], limit=2, horizon=2)
    out = tmp_path / "tree.jsonl"
    build_hop_tree(out, config, depth=2, queries_per_batch=4, progress=False)
    tree = HopTree.load(out)
    assert len(tree.queries) == 6
    assert all(len(q["nodes"]) == 1 + 2 + 4 for q in tree.queries.values())  # root, M, M^2
    # A run killed mid-write leaves a partial last line; resuming rebuilds it from the cache.
    lines = out.read_text().splitlines()
    out.write_text("\n".join(lines[:4]) + "\n" + lines[4][: len(lines[4]) // 2])
    build_hop_tree(out, config, depth=2, progress=False)
    again = HopTree.load(out)
    assert again.queries.keys() == tree.queries.keys()
    assert {q: [n["score"] for n in r["nodes"].values()] for q, r in again.queries.items()} == {
        q: [n["score"] for n in r["nodes"].values()] for q, r in tree.queries.items()}
    with pytest.raises(ValueError, match="another config"):
        build_hop_tree(out, {**config, "response_chars": 10}, depth=2, progress=False)

    table = MultiHopTableEnv(tree_path=str(out), lam=3.0)
    gym_check_env(table, skip_render_check=True)
    with pytest.raises(ValueError, match="index"):
        table.reset(seed=0, options={"index": 0})  # the replay env picks a query by question_id
    live = gym.make("LLMRouting-MultiHop-v0", config={**config, "lam": 3.0}).unwrapped

    def policy(obs, mask):  # depends on the observation, so a wrong replay shows up as a different path
        scores = [float(obs["context"][:8].sum()) * (i + 1) % 1.0 for i in range(3)]
        return int(np.argmax(np.where(mask, scores, -np.inf)))

    for index, (task, example) in enumerate(live.examples):
        obs_live, _ = live.reset(seed=index, options={"index": index})
        obs_table, _ = table.reset(seed=index, options={"question_id": str(example.id)})
        done = False
        while not done:
            assert data_equivalence(obs_live, obs_table, exact=True)
            action = policy(obs_live, live.action_masks())
            assert action == policy(obs_table, table.action_masks())
            obs_live, r_live, done, _, info_live = live.step(action)
            obs_table, r_table, done_table, _, info_table = table.step(action)
            assert done == done_table and r_live == pytest.approx(r_table, abs=1e-12)
        assert info_live["perf"] == info_table["perf"] and info_live["models"] == info_table["models"]
        assert info_live["cost"] == pytest.approx(info_table["cost"], abs=1e-15)
    oracle = tree.oracle(3.0, table.cost_normalizer)
    for path in [(0,), (1,), (0, 1), (1, 1)]:  # the per-query best is at least as good as any fixed pipeline
        fixed = np.mean([table.cost_normalizer(tree.node(q, path)["cost"]) * -3.0 + tree.node(q, path)["score"]
                         for q in tree.queries])
        assert oracle["reward"] >= fixed - 1e-12


def test_hop_tree_refuses_to_resume_a_query_whose_content_changed(tmp_path):
    from routing_gym.hop_tree import HopTree, build_hop_tree

    data = tmp_path / "data"
    shutil.copytree(FIXTURES / "gsm8k", data / "gsm8k")
    config = tiny_config(tmp_path, tasks=["gsm8k"], data_dir=str(data), limit=1, horizon=1)
    out = tmp_path / "tree.jsonl"
    build_hop_tree(out, config, depth=1, progress=False)
    header = HopTree.load(out).header
    assert set(header["config"]["model_ids"]) == set(TINY_POOL) and set(header["config"]["prices"]) == set(TINY_POOL)
    source = data / "gsm8k" / "test.jsonl"
    source.write_text(source.read_text().replace("3 boxes of 400 marbles", "3 boxes of 500 marbles"))
    with pytest.raises(ValueError, match="has other content"):
        build_hop_tree(out, config, depth=1, progress=False)


@pytest.mark.parametrize("bounds, named", [
    ({"low": 2e-5, "high": 1e-5}, "low <= high"),
    ({"low": 0.0, "high": float("nan")}, r"\['high'\] must be a finite number"),
    ({"low": "0", "high": 1.0}, r"\['low'\] must be a finite number"),
    ({"low": True, "high": 1.0}, r"\['low'\] must be a finite number"),
    ({"low": 0.0}, r"cost_bounds'\] must be None or"),
])
def test_bad_cost_bounds_are_refused_naming_the_key(bounds, named, tmp_path):
    with pytest.raises(ValueError, match=named):
        gym.make("LLMRouting-MultiHop-GSM8K-v0", config=tiny_config(tmp_path, cost_bounds=bounds))


def test_given_cost_bounds_normalize_the_cost(tmp_path):
    env = gym.make("LLMRouting-MultiHop-GSM8K-v0", config=tiny_config(tmp_path, cost_bounds={"low": 0, "high": 1e-9}))
    env.reset(seed=0)
    _, _, _, _, info = env.step(0)
    # any real hop costs more than 1e-9 USD, so the normalized cost is clipped to 1
    assert info["cost"] > 1e-9 and info["normalized_cost"] == 1.0


def test_a_task_listed_twice_is_refused_and_a_bad_reset_config_changes_nothing(tmp_path):
    with pytest.raises(ValueError, match="'gsm8k' more than once"):
        gym.make("LLMRouting-MultiHop-v0", config=tiny_config(tmp_path, tasks=["gsm8k", "arc_challenge", "gsm8k"]))
    env = gym.make("LLMRouting-MultiHop-v0", config=tiny_config(tmp_path, tasks=["gsm8k", "arc_challenge"])).unwrapped
    env.reset(seed=0)
    with pytest.raises(ValueError, match="more than once"):
        env.reset(options={"config": {"tasks": ["arc_challenge", "arc_challenge"]}})
    with pytest.raises(ValueError, match="horizon"):
        env.reset(options={"config": {"horizon": 0, "lam": 7.0}})
    assert env.config["tasks"] == ["gsm8k", "arc_challenge"] and env.config["horizon"] == 3 and env.lam != 7.0
    assert env.protocol.max_turns == 3
